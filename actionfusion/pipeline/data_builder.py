"""Build the train / val / test clip datasets an :class:`ExperimentConfig` describes.

The trainer owns loaders and samplers; this module only opens the store, splits the samples
and builds the transform pipelines.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from ..datasets.clip_dataset import SkeletonClipDataset, ClipTransform
from ..datasets.modality_clips import (ClipReader, DepthClipReader, HandGlimpseClipReader, HeatmapClipReader,
                                       PointClipReader, RGBClipReader)
from ..datasets.multimodal_clip_dataset import MultiModalClipDataset
from ..datasets.benchmarks import BenchmarkLists, resolve_benchmark
from ..datasets.ntu.longtail_splits import base_benchmark, parse_longtail_benchmark
from ..datasets.ntu.splits import split_samples
from ..datasets.store.layout import split_file
from ..datasets.store.sample_store import SampleStore
from ..datasets.store.sharded_store import ShardedStore
from ..datasets.store.split_files import lt_split_command, read_split_file
from ..errors import StoreError
from .config import ConfigError, DataConfig, ExperimentConfig

PipelineBuilder = Callable[[list[dict[str, Any]], str, bool], ClipTransform]
"""``build_skeleton_pipeline(specs, layout, train) -> (x [M, T, V, C], rng) -> x'``."""


def _pipeline_builder() -> PipelineBuilder:
    from ..modalities.skeleton.transforms import build_skeleton_pipeline

    return build_skeleton_pipeline


def _resolve_spec(spec: dict[str, Any], data: DataConfig, train: bool) -> dict[str, Any]:
    """A transform spec of the config, completed for ``build_skeleton_pipeline``.

    ``valid_crop_resize`` gets ``out_len = data.clip_len`` unless it names one; in
    ``test_transforms`` its ``p_interval`` is the evaluation crop, passed on as ``test_p_interval``
    (the pipeline reads ``p_interval`` only when training).
    """
    spec = dict(spec)
    if spec.get("name") == "valid_crop_resize":
        spec.setdefault("out_len", data.clip_len)
        if not train and "p_interval" in spec:
            spec.setdefault("test_p_interval", spec.pop("p_interval"))
    return spec


def build_view_transforms(data: DataConfig, builder: Optional[PipelineBuilder] = None,
                          layout: Optional[str] = None) -> list[ClipTransform]:
    """One training pipeline per view (``data.views`` > 1), from ``data.view_transforms`` (or
    ``train_transforms`` for every view); empty for one view. ``layout`` replaces ``data.layout``."""
    if data.views == 1:
        return []
    specs = data.view_transforms or [data.train_transforms] * data.views
    return [build_transform(dataclasses.replace(data, train_transforms=list(view)), True, builder, layout)
            for view in specs]


def skeleton_sources(data: DataConfig) -> tuple[str, ...]:
    """The skeleton conventions a clip loads: ``data.skeleton_source``, then ``data.conventions``."""
    return (data.skeleton_source,) + tuple(c for c in data.conventions if c != data.skeleton_source)


def build_convention_transforms(data: DataConfig, train: bool,
                                builder: Optional[PipelineBuilder] = None) -> tuple[Any, list[Any]]:
    """(transform, view transforms) of a skeleton clip dataset. For the sensor skeleton alone: the
    plain pipelines; otherwise ``{convention: pipeline built for its layout}`` for every convention
    of :func:`skeleton_sources` (the view transforms only when ``train``).

    Raises:
        ConfigError: with several conventions, a transform list whose temporal crop would differ
            between conventions (:func:`~actionfusion.datasets.skeleton_conventions.check_shared_crop`).
    """
    from ..datasets.skeleton_conventions import CONVENTION_LAYOUTS, SENSOR_CONVENTION, check_shared_crop

    sources = skeleton_sources(data)
    if sources == ("ntu25",):
        return build_transform(data, train, builder), (build_view_transforms(data, builder) if train else [])
    if len(sources) > 1:
        lists = [("train_transforms" if train else "test_transforms",
                  data.train_transforms if train else data.test_transforms)]
        lists += [(f"view_transforms[{v}]", specs) for v, specs in enumerate(data.view_transforms)] if train else []
        for key, specs in lists:
            problem = check_shared_crop(specs)
            if problem:
                raise ConfigError(f"data.{key}", problem)
    layouts = {c: data.layout if c == SENSOR_CONVENTION else CONVENTION_LAYOUTS[c] for c in sources}
    transform = {c: build_transform(data, train, builder, layout=layouts[c]) for c in sources}
    per_layout = {c: build_view_transforms(data, builder, layout=layouts[c]) for c in sources} if train else {}
    views = [{c: per_layout[c][v] for c in sources} for v in range(len(next(iter(per_layout.values()), [])))]
    return transform, views


def build_transform(data: DataConfig, train: bool, builder: Optional[PipelineBuilder] = None,
                    layout: Optional[str] = None) -> ClipTransform:
    """The clip pipeline ``(x float32 [M, T, V, 3], rng) -> [M, T', V, C]``.

    ``data.train_transforms`` (or ``test_transforms``), then the stream step: ``{"name": "stream"}``
    for one stream (C = 3), or ``unified_12ch`` for ``stream: unified12`` (joint, bone, joint
    motion, bone motion concatenated: C = 12), computed after the augmentations as in CTR-GCN's
    and PSUMNet's feeders. Steps are built for ``layout`` (default ``data.layout``), e.g. one
    pipeline per skeleton convention.
    """
    build = builder or _pipeline_builder()
    specs = [_resolve_spec(spec, data, train) for spec in (data.train_transforms if train else data.test_transforms)]
    if data.stream == "unified12":
        specs.append({"name": "unified_12ch"})
    else:
        specs.append({"name": "stream", "stream": data.stream})
    return build(specs, layout or data.layout, train)


def open_store(path: str, storage_options: Optional[dict[str, Any]] = None) -> Any:
    """Open the configured store, or explain how to make one.

    A URL (``s3://bucket/prefix``) or a folder holding ``shards.json`` opens the sharded store
    ``actionfusion pack`` wrote (:class:`~actionfusion.datasets.store.sharded_store.ShardedStore`, the
    same read interface, the same clips); any other path the folder store.

    Raises:
        ConfigError: ``data.store`` is not a prepared sample store.
        StoreError: a sharded store that cannot be read (unreachable endpoint, missing shard index).
    """
    from ..datasets.store.sharded_store import ShardedStore, is_sharded_store

    if is_sharded_store(path):
        return ShardedStore(path, storage_options)
    hint = ("prepare one with `actionfusion prepare ROOT --out STORE` (real NTU data), or run `make demo` "
            "(synthetic data into demo_output/store), then point data.store at it")
    if not Path(path).is_dir():
        raise ConfigError("data.store", f"no sample store at {path!r} (relative to {Path.cwd()}); {hint}")
    try:
        return SampleStore(path)
    except StoreError as err:
        raise ConfigError("data.store", f"{err}; {hint}") from err


def benchmark_lists(cfg: ExperimentConfig, store: Any) -> BenchmarkLists:
    """The lists of ``cfg.data.benchmark`` over the store's samples (:func:`resolve_benchmark`): NTU's
    benchmarks, a long-tailed ``<base>_lt<rho>``, the store's own benchmark files, a pyskl import's
    named splits, or a user's CSV/JSON list.

    NTU validation holds out whole training groups (:func:`split_samples`). When that leaves it empty
    although ``validation_fraction > 0`` -- a small store whose performers miss the held-out
    groups, like the synthetic set -- a seeded per-sample fraction of train is held out instead,
    with a warning (on real NTU data the group carve-out is never empty). Other benchmarks without a
    validation list get a stratified seeded share of train.

    A long-tailed benchmark ``<base>_lt<rho>`` takes its training list from the store's split file
    (``actionfusion lt-split``) and the base benchmark's test set; validation is carved out of that
    list in the same way, so training keeps the split's counts less the held-out samples
    (``data.validation_fraction: 0`` trains on the split's exact counts).
    """
    data = cfg.data
    lists = resolve_benchmark(data.benchmark, store, validation_fraction=data.validation_fraction, seed=cfg.seed,
                              longtail_train=lambda base, rho: longtail_train_names(cfg, store.names, base, rho))
    splits = lists.splits
    if lists.by_ntu_names and data.validation_fraction > 0 and not splits["val"] and len(splits["train"]) >= 2:
        train = splits["train"]
        count = min(len(train) - 1, max(1, int(round(data.validation_fraction * len(train)))))
        chosen = set(np.random.default_rng(cfg.seed).permutation(len(train))[:count].tolist())
        splits = {**splits, "val": sorted(train[i] for i in chosen),
                  "train": [name for i, name in enumerate(train) if i not in chosen]}
        warnings.warn(
            f"{data.benchmark}: no sample of the store belongs to the held-out validation groups; "
            f"holding out {count} random training samples (seed {cfg.seed}) instead. Samples of one "
            "performer can then lie in both train and val, so val accuracy is optimistic.",
            stacklevel=2,
        )
        lists = dataclasses.replace(lists, splits=splits)
    return lists


def split_names(cfg: ExperimentConfig, store: Any) -> dict[str, list[str]]:
    """``{"train", "val", "test"}`` sample names of ``cfg.data.benchmark`` (:func:`benchmark_lists`)."""
    return benchmark_lists(cfg, store).splits


def longtail_train_names(cfg: ExperimentConfig, names: Sequence[str], base: str, rho: int) -> list[str]:
    """The training list of the long-tailed ``cfg.data.benchmark`` (``<base>_lt<rho>``), read from the
    split file of the store whose samples are ``names``.

    Raises:
        ConfigError: the store has no split file for the benchmark (says which command writes it).
        StoreError: the file is damaged or lists a name the store lacks (:func:`read_split_file`).
    """
    if "://" in cfg.data.store or not Path(cfg.data.store).is_dir():
        raise ConfigError("data.benchmark", f"{cfg.data.benchmark}: long-tailed splits are read from a folder store; "
                                            f"train on the folder store {cfg.data.store} was packed from")
    if not split_file(Path(cfg.data.store), cfg.data.benchmark).is_file():
        raise ConfigError("data.benchmark", f"the store {cfg.data.store} has no split file for {cfg.data.benchmark}: "
                                            f"run `{lt_split_command(cfg.data.store, base, rho)}` first")
    return list(read_split_file(cfg.data.store, cfg.data.benchmark, names)["train"])


def build_readers(data: DataConfig) -> dict[str, ClipReader]:
    """{batch key: clip reader} of the frame-based modalities in ``data.modalities``."""
    readers: dict[str, ClipReader] = {}
    for key in data.modalities:
        if key == "rgb":
            rgb = data.rgb
            low, high = (float(v) for v in rgb.scale_range)
            readers[key] = RGBClipReader(rgb.num_frames, rgb.size, (low, high))
        elif key == "rgb_hands":
            hands = data.rgb_hands
            readers[key] = HandGlimpseClipReader(hands.num_frames, hands.size, float(hands.window), float(hands.jitter),
                                                 hands.keypoints, hands.layout)
        elif key == "pose_heatmap":
            hm = data.pose_heatmap
            readers[key] = HeatmapClipReader(hm.num_frames, hm.size, hm.sigma, hm.padding, hm.keypoints, hm.layout,
                                             hm.with_limbs)
        elif key == "depth":
            low, high = (float(v) for v in data.depth.scale_range)
            readers[key] = DepthClipReader(data.depth.num_frames, data.depth.size, (low, high))
        elif key == "points":
            readers[key] = PointClipReader(data.points.num_frames, data.points.num_points)
    return readers


def build_datasets(cfg: ExperimentConfig, pipeline_builder: Optional[PipelineBuilder] = None,
                   train_eval: bool = False) -> dict[str, Any]:
    """``{"train", "val", "test"}`` clip datasets of the config.

    Skeleton-only configs give :class:`SkeletonClipDataset`; configs naming other modalities give
    :class:`MultiModalClipDataset` (items keyed by modality, frames aligned in time).

    Train clips use ``data.train_transforms`` (one clip per item); val and test clips use
    ``data.test_transforms`` and ``data.test_clips`` clips per item. Every dataset seeds its
    randomness with ``cfg.seed``.

    Args:
        cfg: the experiment.
        pipeline_builder: replaces ``build_skeleton_pipeline`` (tests, custom transforms).
        train_eval: also ``"train_eval"``: the training samples as evaluation clips (test
            transforms, one view), the feature bank of kNN monitors and probes; and
            ``"val_objective"``: the validation samples as training clips (augmentation, views),
            what a pretraining objective's validation loss reads.
    Raises:
        ConfigError: missing store, a split with no samples (train or test), or data.shard_streaming
            over a folder store.
    """
    data = cfg.data
    store = open_store(data.store, data.storage_options)
    if data.shard_streaming and not isinstance(store, ShardedStore):
        raise ConfigError("data.shard_streaming", f"streams a sharded store, but {data.store} is a folder store: pack "
                          f"it (`actionfusion pack {data.store} --out URL`) and set data.store to URL, or set "
                          "data.shard_streaming: false")
    lists = benchmark_lists(cfg, store)
    splits = lists.splits
    for part in ("train", "test"):
        if not splits[part]:
            hint = (" after the validation carve-out (lower data.validation_fraction or change seed)"
                    if part == "train" and splits["val"] else "")
            raise ConfigError("data.benchmark", f"the store {data.store} has no {part} samples of {data.benchmark}{hint}")
    splits, skipped = drop_incomplete_samples(cfg, store, splits)
    datasets = {}
    readers = build_readers(data)
    parts = dict(splits)
    if train_eval:
        parts["train_eval"] = splits["train"]
        if splits["val"]:
            parts["val_objective"] = splits["val"]
    for part, names in parts.items():
        train = part in ("train", "val_objective")
        if readers:
            datasets[part] = MultiModalClipDataset(
                store, names, readers,
                skeleton_transform=build_transform(data, train, pipeline_builder) if "skeleton" in data.modalities else None,
                clip_len=data.clip_len, num_clips=1 if train else data.test_clips, seed=cfg.seed,
                max_persons=data.max_persons, train=train, flip_p=data.flip_p, labels=lists.labels_of(names),
            )
            datasets[part].class_names = lists.classes
            continue
        transform, view_transforms = build_convention_transforms(data, train, pipeline_builder)
        datasets[part] = SkeletonClipDataset(
            store,
            names,
            transform,
            clip_len=data.clip_len,
            num_clips=1 if train else data.test_clips,
            seed=cfg.seed,
            max_persons=data.max_persons,
            train=train,
            view_transforms=view_transforms or None,
            source=data.skeleton_source,
            conventions=data.conventions,
            labels=lists.labels_of(names),
        )  # StoreError (one line) when a convention needs poses the store lacks
        datasets[part].class_names = lists.classes
    datasets["test"].missing_samples = missing_test_samples(cfg, store, lists)
    datasets["test"].skipped_samples = skipped["test"]
    return datasets


STORED_MODALITIES = ("skeleton", "rgb", "depth", "points")
"""Config modalities read from a store file of the same name (pose heatmaps and extracted skeleton
conventions are checked by their readers)."""


def drop_incomplete_samples(cfg: ExperimentConfig, store: SampleStore, splits: dict[str, list[str]]
                            ) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Leave out samples that lack a stored modality the config reads (partial samples).

    Returns:
        (the kept names per split, the left-out names per split); each left-out sample is logged.
    Raises:
        StoreError: ``data.strict_samples`` is set and a sample is incomplete.
    """
    needed = {m for m in cfg.data.modalities if m in STORED_MODALITIES}
    if "rgb_hands" in cfg.data.modalities:  # cut from the RGB crop where the keypoints put the hands
        needed |= {"rgb", "pose2d_sensor" if cfg.data.rgb_hands.keypoints == "sensor" else "pose2d"}
    if cfg.data.skeleton_source != "ntu25" or cfg.data.conventions:
        needed.discard("skeleton")  # extracted conventions: check_pose_available's job
    kept: dict[str, list[str]] = {}
    dropped: dict[str, list[str]] = {}
    problems: dict[str, str] = {}
    for part, names in splits.items():
        kept[part], dropped[part] = [], []
        for name in names:
            problem = sample_problem(store, name, needed)
            if problem is None:
                kept[part].append(name)
            else:
                dropped[part].append(name)
                problems[name] = problem
    lost = [name for names in dropped.values() for name in names]
    if lost and cfg.data.strict_samples:
        raise StoreError(f"{store.path}: {len(lost)} samples are incomplete or damaged, first {lost[0]}: "
                         f"{problems[lost[0]]}: prepare them again, or drop data.strict_samples to leave them out")
    if lost:
        logging.getLogger(__name__).warning(
            "%s: left out %d incomplete or damaged samples (first %s: %s; train %d, val %d, test %d); counted in "
            "metrics.json", store.path, len(lost), lost[0], problems[lost[0]], len(dropped["train"]),
            len(dropped["val"]), len(dropped["test"]))
    return kept, dropped


def sample_problem(store: SampleStore, name: str, needed: set[str]) -> Optional[str]:
    """Why ``name`` cannot serve the config (a needed modality missing, or its file's size differs from
    the size ``meta.json`` records: a truncated or replaced file), or None. Only sizes are compared
    (no read); ``actionfusion store-info --verify`` compares checksums too."""
    from ..datasets.store.file_checksums import FILES_KEY
    from ..datasets.store.layout import MODALITY_FILES, sample_dir

    have = store.modalities(name)
    if not needed <= have:
        return f"lacks {', '.join(sorted(needed - have))} (it has {', '.join(sorted(have))})"
    records = store.meta(name).get(FILES_KEY) or {}
    sharded = hasattr(store, "stored_file_size")  # a ShardedStore: sizes from its shard index
    for modality in sorted(needed):
        record = records.get(MODALITY_FILES[modality])
        if not isinstance(record, dict) or not isinstance(record.get("size"), int):
            continue  # a store written before sizes were recorded
        try:
            size = (store.stored_file_size(name, MODALITY_FILES[modality]) if sharded
                    else (sample_dir(store.path, name) / MODALITY_FILES[modality]).stat().st_size)
            if size is None:
                raise FileNotFoundError(MODALITY_FILES[modality])
        except OSError:
            return f"{MODALITY_FILES[modality]} is missing"
        if size != record["size"]:
            return f"{MODALITY_FILES[modality]} holds {size} bytes, meta.json records {record['size']}"
    return None


def missing_test_samples(cfg: ExperimentConfig, store: SampleStore, lists: Optional[BenchmarkLists] = None
                         ) -> list[str]:
    """Test samples of the benchmark that the manifest records as prepared but the disk lacks (for
    NTU), or that the benchmark's list names but the store lacks (``lists.missing``).

    They are left out of the test set; the count is logged here and recorded in ``metrics.json``
    (``test.missing_samples``), so a damaged store never silently shrinks the test set.
    """
    from ..datasets.store.store_verify import missing_samples

    if lists is not None and not lists.by_ntu_names:
        lost = list(lists.missing.get("test", []))
        if lost:
            logging.getLogger(__name__).warning(
                "%s: %d test samples that %s lists are not in the store (first: %s); they are left out and counted "
                "in metrics.json", store.location, len(lost), lists.source, lost[0])
        return lost
    missing = missing_samples(store)
    if not missing:
        return []
    # The test split depends on each name alone (no validation carve-out): split the missing names only.
    test = set(split_samples(missing, base_benchmark(cfg.data.benchmark), exclude_missing=True,
                             validation_fraction=0.0, seed=cfg.seed)["test"])
    lost = [name for name in missing if name in test]
    if lost:
        logging.getLogger(__name__).warning(
            "%s: %d test samples of %s are listed in manifest.json but missing on disk (first: %s); they are left "
            "out and counted in metrics.json: run `actionfusion prepare` again to restore them",
            store.path, len(lost), cfg.data.benchmark, lost[0])
    return lost


def resolve_num_classes(cfg: ExperimentConfig, datasets: Any) -> ExperimentConfig:
    """``cfg`` with ``model.num_classes: auto`` replaced by the benchmark's class count, checked
    against the labels of ``datasets`` (``{split: dataset}``).

    The count is the number of class names the benchmark gives, else 120 for an NTU RGB+D 120 and 60
    for an NTU RGB+D 60 benchmark, else the largest label + 1.

    Raises:
        ConfigError: a label reaches ``model.num_classes`` (the head would have no output for it).
    """
    from .config import AUTO_CLASSES

    parts = [d for d in (datasets.values() if isinstance(datasets, dict) else datasets) if d is not None]
    labels = [int(label) for d in parts for label in (getattr(d, "labels", None) or [])]
    top = max(labels) if labels else -1
    names = next((d.class_names for d in parts if getattr(d, "class_names", None) is not None), None)
    configured = cfg.model.num_classes
    if configured == AUTO_CLASSES:
        benchmark = base_benchmark(cfg.data.benchmark) if parse_longtail_benchmark(cfg.data.benchmark) else \
            cfg.data.benchmark
        count = (len(names) if names is not None else 120 if benchmark.startswith("ntu120") else
                 60 if benchmark.startswith("ntu60") else top + 1)
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, num_classes=max(count, top + 1, 1)))
    elif int(configured) > 0 and top >= int(configured):
        size = f" ({cfg.data.benchmark} has {len(names)} classes)" if names is not None else ""
        raise ConfigError("model.num_classes", f"is {configured}, but the labels of {cfg.data.benchmark} reach {top}"
                                               f"{size}: set model.num_classes: auto, or {top + 1}")
    return cfg
