"""Typed experiment configs: YAML files with ``_base_`` inheritance and dotted ``--set`` overrides.

A config file holds one experiment::

    _base_: ../base/skeleton.yaml   # optional: a file (or list of files) whose values this one overrides
    experiment: synthetic_ctrgcn
    seed: 0
    source: {raw_root: null, pose_source: sensor}   # optional: what `actionfusion run` prepares data.store from
    data: {store: demo_output/store, benchmark: ntu60_xsub, clip_len: 64, ...}
    model: {name: ctrgcn, num_classes: 60, kwargs: {}}
    optim: {name: sgd, lr: 0.1, ...}
    schedule: {name: step, epochs: 65, ...}
    train: {label_smoothing: 0.0, ...}

Loading merges the bases (mappings merge key by key, every other value -- lists included --
is replaced), applies the overrides (``"data.clip_len=32"``, ``"schedule.milestones=[2, 3]"``,
``"model.kwargs.drop_rate=0.1"``; values parsed with ``yaml.safe_load``), then builds the
dataclasses, checking every key and type. A bad key or value raises :class:`ConfigError`
naming the full dotted key (and, for an unknown key, the allowed ones).

Types: ``int`` fields take ints only (a string or a float is an error; ``True`` is not an int);
``float`` fields take ints and floats, and also strings that ``float()`` parses, because YAML 1.1
reads ``1e-4`` (no dot) as a string; ``bool`` fields take booleans only.

The configs are frozen dataclasses; their lists and dicts are plain containers, so treat them
as read-only too. ``ExperimentConfig.from_dict(cfg.to_dict()) == cfg`` always holds.
"""

from __future__ import annotations

import math

import contextlib

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Union

import yaml

from ..datasets.benchmarks.resolve import is_benchmark_name
from ..datasets.ntu.longtail_splits import parse_longtail_benchmark
from ..datasets.ntu.splits import BENCHMARKS
from ..datasets.skeleton_conventions import CONVENTIONS
from ..io import atomic_write_text
from ..modalities.rgb.hand_glimpses import HAND_JOINTS
from ..modalities.skeleton.streams import STREAM_NAMES
from .config_clips import (
    KEYPOINT_SOURCES, POSE_SOURCES, DepthClipConfig, HandGlimpseClipConfig, HeatmapClipConfig, PointClipConfig,
    RGBClipConfig, SourceConfig,
)
from .config_source import BASE_KEY, ConfigError, PathLike, apply_overrides, load_config_dict, parse_override

__all__ = [
    "BASE_KEY", "ConfigError", "DataConfig", "ModelConfig", "ObjectiveConfig", "OptimConfig", "ScheduleConfig", "SourceConfig", "TrainConfig",
    "ExperimentConfig", "load_config", "load_config_dict", "save_config", "apply_overrides", "parse_override",
]

STREAMS: tuple[str, ...] = STREAM_NAMES + ("unified12",)
"""``data.stream`` values: a stream of the transform pipeline's ``stream`` step, or ``"unified12"``:
PSUMNet's joint, bone, joint-motion and bone-motion streams concatenated on the channel axis (12 channels)."""

MODALITIES: tuple[str, ...] = ("skeleton", "rgb", "rgb_hands", "pose_heatmap", "depth", "points")
"""``data.modalities`` values: the batch keys a clip dataset can deliver."""
LAYOUTS: tuple[str, ...] = ("ntu25", "nw_ucla20")
"""``data.layout``: the joints of the store's ``skeleton.npy`` (NTU RGB+D and PKU-MMD: ``ntu25``; NW-UCLA:
``nw_ucla20``). Extracted poses name their layout through ``data.skeleton_source``."""
SELECT_BY_EXAMPLES: tuple[str, ...] = ("val/top1", "val/loss", "val/knn_top1", "last")
"""``train.select_by``: ``last`` or a validation metric ``val/<name>`` the run computes (supervised
training: top1, top5, mean_class_accuracy, loss; pretraining: loss, knn_top1). ``val_top1`` is the
older spelling of ``val/top1``."""


def _default_train_transforms() -> list[dict[str, Any]]:
    # CTR-GCN feeder: valid crop-resize with p in [0.5, 1], random rotation up to 0.3 rad.
    return [{"name": "valid_crop_resize", "p_interval": [0.5, 1.0]}, {"name": "random_rotation", "max_angle": 0.3}]


def _default_test_transforms() -> list[dict[str, Any]]:
    return [{"name": "valid_crop_resize", "p_interval": [0.95]}]


@dataclass(frozen=True)
class DataConfig:
    """Where the samples come from and how clips are made.

    Attributes:
        store: prepared sample store (path relative to the current directory).
        benchmark: one of :data:`BENCHMARKS`, or a long-tailed ``<base>_lt<rho>`` whose training list is
            the store's split file (``actionfusion lt-split``; see :func:`.data_builder.split_names`).
        validation_fraction: share of training groups (performers; setups for xset) held out
            for validation, in [0, 1). Model selection uses val, never test.
        modalities: batch keys to deliver, from :data:`MODALITIES` (``skeleton`` and/or the image-like
            and point modalities, whose clip settings are the blocks ``rgb``, ``pose_heatmap``,
            ``depth`` and ``points``).
        layout: joint layout of the store's skeletons (``"ntu25"``).
        skeleton_source: the skeleton convention the batch key ``"skeleton"`` holds, one of
            :data:`~actionfusion.datasets.skeleton_conventions.CONVENTIONS`: ``ntu25`` (the sensor's
            ``skeleton.npy``, default), ``blazepose33`` (the world keypoints of ``actionfusion
            extract-poses``) or ``coco17`` (derived from them); the transforms run with its layout.
            A linear probe per convention sets it with ``model.kwargs.convention`` of ``stgcn_unified``.
        conventions: skeleton conventions every clip and view also holds, as ``"conventions":
            {name: [M, T, V_name, C]}`` (MS-CLR's ``msclr`` objective reads them); empty = off. Each
            runs the same transform list built for its own layout, with the same random draws, so
            the conventions of one view share the temporal crop (:mod:`~actionfusion.datasets.skeleton_conventions`).
            Skeleton-only (``modalities: [skeleton]``).
        stream: one of :data:`STREAMS`; ``"unified12"`` gives 12 channels.
        clip_len: frames T of every clip.
        max_persons: persons M per clip (padded with zeros or truncated).
        train_transforms: transform specs (``{"name": ..., **options}``) of training clips.
        test_transforms: transform specs of validation and test clips.
        test_clips: clips K per validation/test sample (K > 1: "skeleton" is [K, M, T, V, C]).
        views: views N of every training sample (N > 1: items hold ``"views"``, a list of N dicts
            of modality tensors, each drawn with its own random stream; contrastive objectives).
        view_transforms: one transform list per view (empty: every view uses ``train_transforms``).
        batch_size: GLOBAL batch size (per process = batch_size / world_size).
        num_workers: data loader worker processes per process.
        flip_p: probability of a horizontal flip of training clips of rgb and pose_heatmap (applied
            to both together, left/right joints swapped).
        strict_samples: fail on a sample of a split that lacks a modality the config reads (a partial
            sample), instead of leaving it out, logging it and counting it in ``metrics.json``.
        rgb, pose_heatmap, depth, points: clip settings of those modalities (:mod:`.config_clips`).
        storage_options: fsspec options of a sharded ``store`` given as a URL (``s3://bucket/prefix``,
            written by ``actionfusion pack``), e.g. ``{endpoint_url: "http://minio:9000"}``. Credentials
            are refused here (the config is copied into every work dir): they come from the standard
            variables (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``; the endpoint
            also from ``AWS_ENDPOINT_URL``).
        shard_streaming: train by streaming the sharded ``store`` shard by shard (each shard in one
            sequential read, shards permuted per epoch from ``(seed, epoch)``; every DDP rank streams
            ``ceil(N / world_size)`` samples, see :class:`~actionfusion.datasets.shard_stream.PaddedShardStream`)
            instead of one range read per file. Needs a sharded store (``actionfusion pack``); validation
            and test read by random access either way. Batches differ from the random-access mode
            (another order), and with the number of loader workers; resume (per epoch) stays exact.
    """

    store: str = "demo_output/store"
    benchmark: str = "ntu60_xsub"
    validation_fraction: float = 0.1
    modalities: list[str] = field(default_factory=lambda: ["skeleton"])
    layout: str = "ntu25"
    skeleton_source: str = "ntu25"
    conventions: list[str] = field(default_factory=list)
    stream: str = "joint"
    clip_len: int = 64
    max_persons: int = 2
    train_transforms: list[dict[str, Any]] = field(default_factory=_default_train_transforms)
    test_transforms: list[dict[str, Any]] = field(default_factory=_default_test_transforms)
    test_clips: int = 1
    views: int = 1
    view_transforms: list[list[dict[str, Any]]] = field(default_factory=list)
    batch_size: int = 16
    num_workers: int = 2
    flip_p: float = 0.5
    strict_samples: bool = False
    rgb: RGBClipConfig = field(default_factory=RGBClipConfig)
    rgb_hands: HandGlimpseClipConfig = field(default_factory=HandGlimpseClipConfig)
    pose_heatmap: HeatmapClipConfig = field(default_factory=HeatmapClipConfig)
    depth: DepthClipConfig = field(default_factory=DepthClipConfig)
    points: PointClipConfig = field(default_factory=PointClipConfig)
    storage_options: dict[str, Any] = field(default_factory=dict)
    shard_streaming: bool = False


AUTO_CLASSES = "auto"
"""``model.num_classes: auto``: the benchmark's class count (:func:`.data_builder.resolve_num_classes`)."""

SECRET_OPTION_WORDS = ("key", "secret", "token", "password", "credential")
"""Words of a ``data.storage_options`` key that holds a credential (refused: credentials come from the environment)."""


@dataclass(frozen=True)
class ModelConfig:
    """``create_model(name, num_classes=num_classes, **kwargs)``.

    ``init`` starts sub-modules from trained weights before training: ``{module path: weights
    file}``, e.g. EPAM-Net's stage 2 from its stage-1 streams
    ``{rgb: work_dirs/epam_rgb/best.safetensors, pose: work_dirs/epam_pose/best.safetensors}``
    (``""`` = the whole model). Files load safely (safetensors, or ``torch.load(weights_only=True)``).

    ``pretrained`` loads an encoder written by ``actionfusion pretrain`` (``encoder.safetensors``)
    into the whole model; only the head's tensors may be missing from it.

    ``num_classes: auto`` takes the class count of ``data.benchmark`` when the datasets are built
    (your own videos, PKU-MMD, NW-UCLA, a pyskl pickle); the work dir's ``config.yaml`` records the number.
    """

    name: str = "ctrgcn"
    num_classes: Union[int, str] = 60
    kwargs: dict[str, Any] = field(default_factory=dict)
    init: dict[str, str] = field(default_factory=dict)
    pretrained: Optional[str] = None


@dataclass(frozen=True)
class ObjectiveConfig:
    """``create_objective(name, **kwargs)``: what the engine optimises (:mod:`actionfusion.objectives`).

    ``cross_entropy`` (supervised; ``train.label_smoothing`` applies unless kwargs set it), ``mamp``
    (masked motion prediction pretraining), and any objective registered by a package or test.
    ``init`` starts the objective's own parameters (e.g. MAMP's decoder, converted from an official
    checkpoint by ``convert-checkpoint --from mamp_pretrain``) from a weights file, strictly.
    """

    name: str = "cross_entropy"
    kwargs: dict[str, Any] = field(default_factory=dict)
    init: Optional[str] = None


@dataclass(frozen=True)
class OptimConfig:
    """The optimizer: ``name`` one of ``pipeline.optim.OPTIMIZERS`` (sgd, adamw, adamw_layer_decay).

    ``layer_decay`` (only with ``adamw_layer_decay``) scales each layer's lr by decay^(depth - layer);
    ``momentum`` and ``nesterov`` apply to sgd, ``betas`` to the AdamW variants; with
    ``decay_norm_and_bias: false`` biases and norm parameters (every 1-D tensor) get no weight decay. ``lr_mult``
    {module path: multiplier} sets the lr of a part of the model to ``lr * multiplier`` (e.g. a
    Recognizer's recurrent fusion: ``{fusion: 0.1}``).
    """

    name: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 0.0004
    layer_decay: Optional[float] = None
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    lr_mult: dict[str, float] = field(default_factory=dict)
    decay_norm_and_bias: bool = True


@dataclass(frozen=True)
class ScheduleConfig:
    """The learning-rate schedule: linear warm-up, then ``step`` (x gamma at each milestone epoch),
    ``cosine`` (to ``min_lr``) or ``constant`` (``pipeline.optim.SCHEDULES``)."""

    name: str = "step"
    epochs: int = 65
    warmup_epochs: int = 5
    milestones: list[int] = field(default_factory=lambda: [35, 55])
    gamma: float = 0.1
    min_lr: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    """Loss and loop settings (``grad_clip`` None = no clipping; ``keep_last`` checkpoints kept)."""

    label_smoothing: float = 0.0
    grad_clip: Optional[float] = None
    # "global_norm": one norm over every gradient (clip_grad_norm_); "per_parameter": each
    # parameter's gradient clipped on its own (STARS, DINO).
    grad_clip_mode: str = "global_norm"
    amp: bool = True
    eval_every: int = 1
    keep_last: int = 2
    log_every: int = 20
    deterministic: bool = True
    # CPU only: torch intra-op threads of each training process. None = the cores left after the
    # loader workers (at least 1). Two spinning threads on a core that a loader worker or another
    # process also wants made a CPU step 2-10x slower (measured on 2 cores).
    cpu_threads: Optional[int] = None
    # Which weights the final evaluation uses: a validation metric ("val/top1", the default; "val/loss"
    # is minimised, every other metric maximised; pretraining offers "val/loss" and "val/knn_top1")
    # or "last" (the final epoch; validation is still measured and logged). "last" is for validation
    # splits too small to rank epochs, e.g. 45 synthetic clips (2.2% steps).
    select_by: str = "val/top1"
    # Pretraining: an online kNN monitor (cosine, k = 1, train bank vs validation) every
    # ``knn_every`` epochs (0 = off); it is what ``select_by: val/knn_top1`` reads.
    knn_every: int = 0
    # Run the training step (model + objective, inside DDP) through torch.compile (inductor,
    # default mode, layout optimisation off: pipeline/compiled_step.py says why); evaluation stays
    # eager. On CPU it does not pay for the GCNs since their eager steps compute 1x1 convolutions
    # and the graph aggregations as batched matmuls: on 2 cores at batch 16 x 64 frames
    # (benchmarks/bench_skeleton_train_step.py --compile) CTR-GCN's compiled step took 1.08x its
    # eager one (convolutions left to inductor while it traces; 1.43x before that, when the
    # compiled step also took 1.3-1.55x for ST-GCN, Hyper-GCN and PSUMNet, 0.93x for ST-GCN++,
    # 1.04x for MAMP). The first compilation takes 60-270 s; torch caches it on disk. Off by
    # default: measure your model (and your device) first.
    # Compiled dropout draws its masks from inductor's own random stream, so a run with dropout
    # trains differently from the eager one (without dropout the weights agree to 1e-5).
    compile: bool = False


@dataclass(frozen=True)
class ExperimentConfig:
    """One experiment: what data, which model, how to train it."""

    experiment: str = "experiment"
    seed: int = 0
    source: SourceConfig = field(default_factory=SourceConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """A plain nested dict (deep copy) that :meth:`from_dict` turns back into an equal config."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> "ExperimentConfig":
        """Build and check a config from a nested dict (no ``_base_`` handling here).

        Raises:
            ConfigError: unknown key, wrong type or out-of-range value.
        """
        cfg = _build_dataclass(cls, data, "")
        _check_ranges(cfg)
        return cfg


# ----------------------------------------------------------------------------- type checking


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """``value`` checked against the annotation ``tp`` (and converted: int -> float, tuple -> list)."""
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin is Union or origin is types.UnionType:
        options = typing.get_args(tp)
        if value is None:
            if type(None) in options:
                return None
            raise ConfigError(key, f"must not be null (expected {_type_name(tp)})")
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except ConfigError as err:
                errors.append(err.message)
        raise ConfigError(key, "; ".join(errors))
    if origin is list:
        (item_type,) = typing.get_args(tp) or (Any,)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(key, f"expected a list, got {type(value).__name__} {value!r}")
        return [_coerce(item, item_type, f"{key}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        _, value_type = typing.get_args(tp) or (str, Any)
        if not isinstance(value, dict):
            raise ConfigError(key, f"expected a mapping, got {type(value).__name__} {value!r}")
        out = {}
        for sub_key, sub_value in value.items():
            if not isinstance(sub_key, str):
                raise ConfigError(key, f"mapping keys must be strings, got {sub_key!r}")
            out[sub_key] = _coerce(sub_value, value_type, _join(key, sub_key))
        return out
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(key, f"expected true or false, got {type(value).__name__} {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(key, f"expected an integer, got {type(value).__name__} {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" (no dot) as a string
            with contextlib.suppress(ValueError):
                return float(value)
        raise ConfigError(key, f"expected a number, got {type(value).__name__} {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(key, f"expected a string, got {type(value).__name__} {value!r}")
    if dataclasses.is_dataclass(tp):
        return _build_dataclass(tp, value, key)
    raise TypeError(f"config field {key} has an unsupported annotation {tp!r}")  # a bug in this module


def _build_dataclass(cls: Any, data: Any, prefix: str) -> Any:
    where = prefix or "config"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(where, f"expected a mapping, got {type(data).__name__} {data!r}")
    hints = typing.get_type_hints(cls)
    allowed = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in allowed:
            raise ConfigError(_join(prefix, str(key)), f"unknown key; allowed keys of {where}: {', '.join(allowed)}")
    values = {name: _coerce(data[name], hints[name], _join(prefix, name)) for name in allowed if name in data}
    return cls(**values)


def _require(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ConfigError(key, message)


CLIP_BLOCKS: tuple[str, ...] = ("rgb", "rgb_hands", "pose_heatmap", "depth", "points")
"""The ``data`` blocks of the frame-based modalities (each has ``num_frames``)."""

UPPER_BOUNDS = {
    "data.clip_len": 10_000,       # frames; NTU's longest sample has 300
    "data.max_persons": 64,
    "data.test_clips": 1_000,
    "data.batch_size": 65_536,
    "data.num_workers": 256,
    "data.points.num_points": 1_000_000,
    "image_size": 4_096,           # pixels per side of a stored or sampled frame
    "schedule.epochs": 1_000_000,
}
"""Largest accepted values: an absurd value is refused before anything is allocated for it."""


def _check_ranges(cfg: ExperimentConfig) -> None:
    data, optim, schedule, train = cfg.data, cfg.optim, cfg.schedule, cfg.train
    _require(bool(cfg.experiment), "experiment", "must not be empty")
    ntu = data.benchmark in BENCHMARKS or parse_longtail_benchmark(data.benchmark) is not None
    _require(ntu or (is_benchmark_name(data.benchmark) and not data.benchmark.lower().startswith("ntu")), "data.benchmark",
             f"{data.benchmark!r} is not one of {', '.join(BENCHMARKS)}, a long-tailed <base>_lt<rho> "
             "(e.g. ntu60_xsub_lt10, after `actionfusion lt-split`), a store's own benchmark (letters, digits, "
             "_.+-; not starting with 'ntu') nor a list file (.csv or .json)")
    _require(0.0 <= data.validation_fraction < 1.0, "data.validation_fraction", "must lie in [0, 1)")
    _require(bool(data.modalities), "data.modalities", "must name at least one modality")
    for i, name in enumerate(data.modalities):
        _require(name in MODALITIES, f"data.modalities[{i}]", f"{name!r} is not one of {', '.join(MODALITIES)}")
    _require(len(set(data.modalities)) == len(data.modalities), "data.modalities", "lists a modality twice")
    _require(0.0 <= data.flip_p <= 1.0, "data.flip_p", "must lie in [0, 1]")
    for block in CLIP_BLOCKS:
        _require(getattr(data, block).num_frames >= 1, f"data.{block}.num_frames", "must be at least 1")
    for block in ("pose_heatmap", "rgb_hands"):
        _require(getattr(data, block).keypoints in KEYPOINT_SOURCES, f"data.{block}.keypoints",
                 f"{getattr(data, block).keypoints!r} is not one of {', '.join(KEYPOINT_SOURCES)}")
    _require(data.rgb_hands.layout in HAND_JOINTS, "data.rgb_hands.layout",
             f"{data.rgb_hands.layout!r} is not one of {', '.join(HAND_JOINTS)}")
    _require(0.0 < data.rgb_hands.window <= 1.0, "data.rgb_hands.window", "must lie in (0, 1] (a fraction of the crop)")
    _require(0.0 <= data.rgb_hands.jitter <= 1.0, "data.rgb_hands.jitter", "must lie in [0, 1]")
    _require(data.layout in LAYOUTS, "data.layout", f"{data.layout!r} is not one of {', '.join(LAYOUTS)}")
    _require(data.skeleton_source in CONVENTIONS, "data.skeleton_source",
             f"{data.skeleton_source!r} is not one of {', '.join(CONVENTIONS)}")
    for i, name in enumerate(data.conventions):
        _require(name in CONVENTIONS, f"data.conventions[{i}]", f"{name!r} is not one of {', '.join(CONVENTIONS)}")
    _require(len(set(data.conventions)) == len(data.conventions), "data.conventions", "lists a convention twice")
    _require((not data.conventions and data.skeleton_source == "ntu25") or data.modalities == ["skeleton"],
             "data.conventions" if data.conventions else "data.skeleton_source",
             "skeleton conventions other than the sensor's are loaded for skeleton-only data; "
             "set data.modalities: [skeleton]")
    _require(data.stream in STREAMS, "data.stream", f"{data.stream!r} is not one of {', '.join(STREAMS)}")
    for key in ("clip_len", "max_persons", "test_clips", "batch_size"):
        _require(getattr(data, key) >= 1, f"data.{key}", "must be at least 1")
        _require(getattr(data, key) <= UPPER_BOUNDS[f"data.{key}"], f"data.{key}",
                 f"must be at most {UPPER_BOUNDS[f'data.{key}']} (bounded before anything is allocated)")
    _require(0 <= data.num_workers <= UPPER_BOUNDS["data.num_workers"], "data.num_workers",
             f"must lie in [0, {UPPER_BOUNDS['data.num_workers']}]")
    for option in data.storage_options:
        _require(isinstance(option, str), "data.storage_options", f"keys must be strings, got {option!r}")
        _require(not any(word in option.lower() for word in SECRET_OPTION_WORDS), f"data.storage_options.{option}",
                 "looks like a credential; configs are copied into every work dir: set AWS_ACCESS_KEY_ID / "
                 "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the environment instead")
    for block in CLIP_BLOCKS:
        frames = getattr(data, block).num_frames
        _require(frames <= UPPER_BOUNDS["data.clip_len"], f"data.{block}.num_frames",
                 f"must be at most {UPPER_BOUNDS['data.clip_len']}")
        size = getattr(getattr(data, block), "size", None)
        if size is not None:
            _require(1 <= size <= UPPER_BOUNDS["image_size"], f"data.{block}.size",
                     f"must lie in [1, {UPPER_BOUNDS['image_size']}]")
    _require(1 <= data.points.num_points <= UPPER_BOUNDS["data.points.num_points"], "data.points.num_points",
             f"must lie in [1, {UPPER_BOUNDS['data.points.num_points']}]")
    _require(cfg.train.cpu_threads is None or 1 <= cfg.train.cpu_threads <= 4096, "train.cpu_threads",
             "must be at least 1, or null (torch's default)")
    for list_key in ("train_transforms", "test_transforms"):
        for i, spec in enumerate(getattr(data, list_key)):
            _require(isinstance(spec.get("name"), str), f"data.{list_key}[{i}]", "each transform needs a string 'name'")
            _require(spec["name"] not in ("stream", "unified_12ch"), f"data.{list_key}[{i}]",
                     "the stream step is added from data.stream; do not list it")
    source = cfg.source
    _require(source.pose_source in POSE_SOURCES, "source.pose_source",
             f"{source.pose_source!r} is not one of {', '.join(POSE_SOURCES)}")
    _require(source.workers >= 0, "source.workers", "must not be negative")
    _require(not (source.pose_source == "extracted" and "pose_heatmap" in data.modalities
                  and data.pose_heatmap.keypoints != "pose2d"), "data.pose_heatmap.keypoints",
             "source.pose_source is 'extracted': heatmaps must read the extracted poses (keypoints: pose2d)")
    _require(cfg.model.num_classes == AUTO_CLASSES or isinstance(cfg.model.num_classes, int), "model.num_classes",
             f"must be an integer or {AUTO_CLASSES!r} (the benchmark's class count)")
    classes = 1 if cfg.model.num_classes == AUTO_CLASSES else int(cfg.model.num_classes)
    _require(classes >= 0, "model.num_classes", "must not be negative (0 = the encoder without a head)")
    _require(classes >= 1 or cfg.objective.name != "cross_entropy", "model.num_classes",
             "must be at least 1 for cross-entropy training (0, no head, is for pretraining objectives)")
    from .optim import OPTIMIZERS, SCHEDULES  # the names the trainer builds (imports torch)

    _require(optim.name in OPTIMIZERS, "optim.name", f"{optim.name!r} is not one of {', '.join(OPTIMIZERS)}")
    _require(schedule.name in SCHEDULES, "schedule.name", f"{schedule.name!r} is not one of {', '.join(SCHEDULES)}")
    _require(optim.layer_decay is None or optim.name == "adamw_layer_decay", "optim.layer_decay",
             f"only optim.name 'adamw_layer_decay' uses it (optim.name is {optim.name!r}); set it to null")
    _require(optim.lr > 0 and math.isfinite(optim.lr), "optim.lr", "must be a positive finite number")
    _require(optim.weight_decay >= 0, "optim.weight_decay", "must not be negative")
    _require(optim.layer_decay is None or 0 < optim.layer_decay <= 1, "optim.layer_decay", "must lie in (0, 1] or be null")
    _require(len(optim.betas) == 2, "optim.betas", "must hold two numbers")
    _require(1 <= schedule.epochs <= UPPER_BOUNDS["schedule.epochs"], "schedule.epochs",
             f"must lie in [1, {UPPER_BOUNDS['schedule.epochs']}]")
    _require(0 <= schedule.warmup_epochs <= schedule.epochs, "schedule.warmup_epochs", "must lie in [0, epochs]")
    _require(list(schedule.milestones) == sorted(schedule.milestones), "schedule.milestones", "must be increasing")
    _require(0 <= train.label_smoothing < 1, "train.label_smoothing", "must lie in [0, 1)")
    _require(train.grad_clip is None or train.grad_clip > 0, "train.grad_clip", "must be positive or null")
    _require(train.grad_clip_mode in ("global_norm", "per_parameter"), "train.grad_clip_mode",
             f"is {train.grad_clip_mode!r}; choose global_norm or per_parameter")
    _require(train.select_by == "last" or train.select_by.startswith(("val/", "val_")), "train.select_by",
             f"{train.select_by!r} is neither 'last' nor a validation metric such as {', '.join(SELECT_BY_EXAMPLES[:3])}")
    _require(train.knn_every >= 0, "train.knn_every", "must not be negative (0 = no kNN monitor)")
    _require(data.views >= 1, "data.views", "must be at least 1")
    _require(len(data.view_transforms) in (0, data.views), "data.view_transforms",
             f"holds {len(data.view_transforms)} lists; give one per view ({data.views}) or none")
    _require(data.views == 1 or data.modalities == ["skeleton"], "data.views",
             "several views are drawn for skeleton clips only; set data.modalities: [skeleton]")
    _require(bool(cfg.objective.name), "objective.name", "must not be empty")
    for key in ("eval_every", "keep_last", "log_every"):
        _require(getattr(train, key) >= 1, f"train.{key}", "must be at least 1")


def load_config(path: PathLike, overrides: Iterable[str] = ()) -> ExperimentConfig:
    """Load a YAML config (safe), resolve ``_base_``, apply ``--set`` overrides, check it.

    Args:
        path: the YAML file, or a config name such as ``"synthetic/ctrgcn"`` (``.yaml`` optional:
            the repository's ``configs/`` in a checkout, the wheel's copy when installed; see
            :mod:`.config_names` and ``actionfusion configs``).
        overrides: ``"dotted.key=value"`` strings, applied in order.
    Returns:
        The checked :class:`ExperimentConfig` (``experiment`` defaults to the file's stem).
    Raises:
        ConfigError: missing or invalid file, unknown key, wrong type, bad value; an unknown name is an
            :class:`~actionfusion.pipeline.config_names.UnknownConfigError` naming the closest ones.
    """
    return ExperimentConfig.from_dict(load_config_dict(path, overrides))


def save_config(cfg: ExperimentConfig, path: PathLike) -> None:
    """Write ``cfg`` as YAML (atomically) such that :func:`load_config` reads back an equal config."""
    text = yaml.safe_dump(cfg.to_dict(), sort_keys=False, default_flow_style=None)
    atomic_write_text(path, text)
