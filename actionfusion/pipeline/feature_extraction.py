"""The feature-extraction API: per-modality and fused features of any trained model, from raw files or a store.

::

    from actionfusion import FeatureExtractor
    fx = FeatureExtractor.from_checkpoint("work_dirs/synthetic_late_skeleton_depth")
    feats = fx("S001C001P001R001A001_rgb.avi")        # video (+ its .skeleton / masked depth when found)
    feats.fused, feats.modalities["skeleton"], feats.probabilities
    many = fx(["a.skeleton", "store::S001C001P001R001A002", RawSample(video="x.mp4")])

Every input goes through exactly the evaluation's clip pipeline: the readers and skeleton
transform of ``data`` built in test mode (:func:`~actionfusion.pipeline.data_builder.build_readers`,
:func:`~actionfusion.pipeline.data_builder.build_transform`), ``data.test_clips`` clips per
sample. Features are averaged over the clips; ``probabilities`` is the mean of the clips'
softmax (the score :func:`~actionfusion.pipeline.evaluation.predict` uses), ``logits`` the mean
of the clips' logits. Raw inputs are prepared first (:mod:`.feature_cache`) with the training
store's PrepareConfig when the config's ``data.store`` is found (so crops and sizes match
training), else the defaults, restricted to the modalities the model reads.

Each sample gets its own clip dataset (index 0, labels ``[0]``: raw inputs have no label), so
its clips never depend on the other inputs. The same input therefore gives the same features
alone or inside a batch up to float rounding: batched convolutions and matrix products may
accumulate in another order (oneDNN / cuBLAS pick kernels by batch size), so results agree to
about 1e-7 of each vector's largest magnitude, not bit for bit (the tests check 1e-5 of it). Inputs with the same available modalities are batched together,
so the batch never changes which encoders run.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from einops import rearrange
from torch import nn

from ..datasets.clip_dataset import SkeletonClipDataset
from ..datasets.multimodal_clip_dataset import MultiModalClipDataset
from ..datasets.store.layout import MODALITIES as PREPARE_MODALITIES
from ..datasets.store.prepare_config import PrepareConfig
from ..datasets.store.prepare_sample import error_text
from ..datasets.store.sample_store import SampleStore
from ..errors import ActionFusionError
from .checkpoints import load_weights, read_class_names
from .config import ConfigError, ExperimentConfig
from .data_builder import build_convention_transforms, build_readers, build_transform
from .feature_cache import PendingPreparation, RawSampleCache
from .feature_checkpoint import prepared_modalities, resolve_checkpoint, stored_modalities, training_prepare_config
from .feature_inputs import (
    FeatureInput,
    FeatureInputError,
    MissingModalityError,
    RawSample,
    ResolvedInput,
    StoreSample,
    describe_input,
    resolve_inputs,
)
from .model_inputs import flatten_clips, model_input_keys
from .trainer import build_model

PathLike = Union[str, "os.PathLike[str]"]


@dataclass
class SampleFeatures:
    """The features of one input (numpy, float32, on the CPU).

    Attributes:
        name: the sample name.
        fused: [D_f] the model's clip feature (the Recognizer's fused feature; a single encoder's pooled one).
        modalities: {encoder: [D_m]} each encoder's pooled feature (a single-encoder model: one entry,
            named by its input key).
        branches: {encoder: [D_m']} each modality's feature after the fusion (Recognizer only; the
            encoders that ran).
        logits: [C] clip-averaged logits.
        probabilities: [C] clip-averaged softmax.
        modalities_used: the batch keys the model was given (``skeleton``, ``rgb``, ``depth``, ...).
        input: the input as text.
        class_names: the model's class names by label (the training run's ``classes.json``), or None
            (NTU RGB+D 120's names).
    """

    name: str
    fused: np.ndarray
    modalities: dict[str, np.ndarray]
    branches: dict[str, np.ndarray]
    logits: np.ndarray
    probabilities: np.ndarray
    modalities_used: list[str]
    input: str = ""
    class_names: Optional[tuple[str, ...]] = None

    @property
    def top1(self) -> int:
        """The index of the most probable class."""
        return int(np.argmax(self.probabilities))

    @property
    def top1_class(self) -> Optional[str]:
        """The name of :attr:`top1` (None when it has none)."""
        from ..datasets.ntu.constants import NTU120_CLASS_NAMES

        names = NTU120_CLASS_NAMES if self.class_names is None else self.class_names
        return names[self.top1] if 0 <= self.top1 < len(names) else None


@dataclass
class ExtractionOutcome:
    """One input's result in :meth:`FeatureExtractor.iter_extract`: features or the error."""

    position: int
    input: str
    name: Optional[str]
    features: Optional[SampleFeatures] = None
    error: Optional[ActionFusionError] = None


# ---------------------------------------------------------------------------- the extractor


class FeatureExtractor:
    """Features of a trained model for raw recordings and store samples.

    Args:
        model: the model (weights loaded); put in eval mode on ``device``.
        cfg: its experiment config (clips, transforms, modalities).
        device: torch device.
        batch_size: samples per forward pass.
        cache_dir: where raw inputs are prepared (kept and reused across runs); None: a temporary
            folder owned by the extractor, removed by :meth:`close` or when it is garbage-collected.
        progress: a tqdm bar over the inputs.
        prepare_config: the PrepareConfig of raw inputs (its modalities are replaced by those the
            model reads); None: the training store's (see :func:`training_prepare_config`) or the defaults.
        config_dir: the folder of the config file (to find a relative ``data.store``).
        prepare_workers: worker processes preparing raw inputs, one batch ahead of the model
            (0: prepare in this process, between batches).
    """

    def __init__(self, model: nn.Module, cfg: ExperimentConfig, device: Union[str, torch.device] = "cpu",
                 batch_size: int = 8, cache_dir: Optional[PathLike] = None, progress: bool = True,
                 prepare_config: Optional[PrepareConfig] = None, config_dir: Optional[Path] = None,
                 prepare_workers: int = 1) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.cfg = cfg
        self.class_names: Optional[tuple[str, ...]] = None  # the model's class names (None: NTU RGB+D 120's)
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.batch_size = int(batch_size)
        self.progress = bool(progress)
        groups = getattr(model, "encoder_keys", None)
        self.any_subset = isinstance(groups, Mapping) and bool(groups)
        if self.any_subset:
            self.key_groups: dict[str, tuple[str, ...]] = {str(k): tuple(v) for k, v in groups.items()}
        else:
            keys = model_input_keys(model)
            self.key_groups = {keys[0] if len(keys) == 1 else cfg.model.name: keys}
        self.input_keys = tuple(dict.fromkeys(k for keys in self.key_groups.values() for k in keys))
        missing = [k for k in self.input_keys if k not in cfg.data.modalities]
        if missing:
            raise ConfigError("data.modalities", f"the model reads {list(self.input_keys)} but the config "
                                                 f"delivers {cfg.data.modalities} (missing {missing})")
        self._readers = build_readers(cfg.data)
        self._transform: Any = None
        if "skeleton" in cfg.data.modalities:  # skeleton-only: the pipeline of data.skeleton_source's layout, as training
            self._transform = (build_transform(cfg.data, train=False) if self._readers
                               else build_convention_transforms(cfg.data, train=False)[0])
        self._max_frames = max((r.num_frames for r in self._readers.values()), default=0)
        near = [config_dir, *list(config_dir.parents)[:2]] if config_dir is not None else []
        base, self.prepare_config_source = ((prepare_config, "given") if prepare_config is not None
                                            else training_prepare_config(cfg, near))
        needed = {m for k in self.input_keys for m in (prepared_modalities(k, cfg) or ())}
        wanted = tuple(m for m in PREPARE_MODALITIES if m in needed)  # the store layout's order
        self.prepare_config: Optional[PrepareConfig] = replace(base or PrepareConfig(), modalities=wanted) if wanted else None
        self._tmp = None if cache_dir is not None else tempfile.TemporaryDirectory(prefix="actionfusion-features-")
        self.cache_dir = Path(cache_dir) if cache_dir is not None else Path(self._tmp.name)
        self._cache = (RawSampleCache(self.cache_dir, self.prepare_config, workers=prepare_workers)
                       if self.prepare_config else None)
        self._stores: dict[str, SampleStore] = {}
        self._warned_defaults = False

    @classmethod
    def from_checkpoint(cls, path: PathLike, device: Union[str, torch.device] = "cpu", batch_size: int = 8,
                        cache_dir: Optional[PathLike] = None, progress: bool = True,
                        config: Union[None, PathLike, ExperimentConfig] = None,
                        prepare_config: Optional[PrepareConfig] = None, prepare_workers: int = 1) -> "FeatureExtractor":
        """Load a training work dir (``config.yaml`` + ``best.safetensors``), an epoch checkpoint dir
        (``work_dir/checkpoints/epoch_NNNN``) or a weights file with ``config.yaml`` beside it or
        above it; ``config`` gives the YAML (or config) explicitly. Weights load safely and strictly
        (:func:`~actionfusion.pipeline.checkpoints.load_weights`)."""
        weights, cfg, config_path = resolve_checkpoint(path, config)
        model = build_model(cfg)
        load_weights(weights, model, strict=True)
        extractor = cls(model, cfg, device=device, batch_size=batch_size, cache_dir=cache_dir, progress=progress,
                        prepare_config=prepare_config, config_dir=config_path.parent if config_path else None,
                        prepare_workers=prepare_workers)
        extractor.class_names = read_class_names(config_path.parent) if config_path else None
        return extractor

    # -- lifecycle

    def close(self) -> None:
        """Stop the preparation workers; remove the temporary cache (a given ``cache_dir`` is kept)."""
        if self._cache is not None:
            self._cache.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> "FeatureExtractor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- inputs

    def resolve(self, inputs: Iterable[Any]) -> list[Union[ResolvedInput, FeatureInputError]]:
        """The inputs as resolved samples (an input that cannot be resolved gives its error in place)."""
        out: list[Union[ResolvedInput, FeatureInputError]] = []
        for item in inputs:
            out.extend([item] if isinstance(item, ResolvedInput) else resolve_inputs([item], self._stores))
        return out

    def usable_keys(self, resolved: ResolvedInput) -> tuple[str, ...]:
        """The batch keys the model reads from ``resolved``: every encoder whose inputs it provides
        (a single-encoder model: all of its keys).

        Raises:
            MissingModalityError: nothing usable, naming the input and what the model needs.
        """
        def has(key: str) -> bool:
            if resolved.is_raw and prepared_modalities(key, self.cfg) is None:
                return False
            return all(m in resolved.provides for m in stored_modalities(key, self.cfg))

        entries = [keys for keys in self.key_groups.values() if all(has(k) for k in keys)]
        if entries and (self.any_subset or len(entries) == len(self.key_groups)):
            return tuple(k for k in self.input_keys if any(k in keys for keys in entries))
        needs = (" or ".join("+".join(keys) for keys in self.key_groups.values()) if self.any_subset
                 else "+".join(self.input_keys))
        given = sorted(resolved.provides) or ["nothing"]
        hint = ("; extracted poses (pose2d, pose3d_world) come only from a store: run `actionfusion prepare VIDEO_DIR "
                "--out STORE` (or `actionfusion extract-poses`) and pass STORE::NAME"
                if resolved.is_raw and any(prepared_modalities(k, self.cfg) is None for k in self.input_keys) else "")
        raise MissingModalityError(resolved.label, f"provides {', '.join(given)} but the model needs {needs}{hint}")

    # -- extraction

    def __call__(self, inputs: Union[FeatureInput, Sequence[FeatureInput]]) -> Union[SampleFeatures, list[SampleFeatures]]:
        """Features of one input (a SampleFeatures) or of a list of inputs (a list, in input order;
        ``"STORE_DIR::*"`` also gives a list).

        Raises:
            FeatureInputError: the first input that cannot be used (its subclasses
                :class:`MissingModalityError`, :class:`SamplePreparationError`).
        """
        one = isinstance(inputs, (str, os.PathLike, RawSample, StoreSample, ResolvedInput))
        single = one and not (isinstance(inputs, str) and inputs.endswith("::*"))  # a whole store gives a list
        outcomes = list(self.iter_extract([inputs] if one else list(inputs), errors="raise"))
        results = [o.features for o in sorted(outcomes, key=lambda o: o.position)]
        return results[0] if single else results

    def iter_extract(self, inputs: Iterable[Any], errors: str = "raise") -> Iterator[ExtractionOutcome]:
        """Yield one :class:`ExtractionOutcome` per input as soon as its batch is done (grouped by
        available modalities, so not in input order; ``position`` is the input's index).

        Args:
            inputs: inputs or :class:`ResolvedInput` objects.
            errors: ``"raise"`` (the first bad input raises) or ``"yield"`` (an outcome with ``error``).
        """
        if errors not in ("raise", "yield"):
            raise ValueError(f"errors must be 'raise' or 'yield', not {errors!r}")
        resolved = self.resolve(inputs)
        groups: dict[tuple[str, ...], list[tuple[int, ResolvedInput]]] = {}
        failed: list[ExtractionOutcome] = []
        for position, item in enumerate(resolved):
            try:
                if isinstance(item, FeatureInputError):
                    raise item
                groups.setdefault(self.usable_keys(item), []).append((position, item))
            except FeatureInputError as err:
                if errors == "raise":
                    raise
                failed.append(ExtractionOutcome(position, err.input, getattr(item, "name", None), error=err))
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=len(resolved), desc="features", unit="input", dynamic_ncols=True, disable=None)
        chunks = [(keys, members[start:start + self.batch_size]) for keys, members in groups.items()
                  for start in range(0, len(members), self.batch_size)]
        pending: dict[int, PendingPreparation] = {}
        try:
            for outcome in failed:
                if bar is not None:
                    bar.update(1)
                yield outcome
            for i, (keys, chunk) in enumerate(chunks):
                for _, ahead in chunks[i:i + 2]:  # this batch's raw inputs and the next one's, in the workers
                    self._start_preparations(ahead, pending)
                yield from self._run_chunk(keys, chunk, errors, pending)
                if bar is not None:
                    bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()

    def _start_preparations(self, chunk: list[tuple[int, ResolvedInput]], pending: dict[int, PendingPreparation]) -> None:
        for position, item in chunk:
            if item.is_raw and self._cache is not None and position not in pending:
                self._warn_default_prepare_config()
                pending[position] = self._cache.start(item)

    def _run_chunk(self, keys: tuple[str, ...], chunk: list[tuple[int, ResolvedInput]], errors: str,
                   pending: dict[int, PendingPreparation]) -> Iterator[ExtractionOutcome]:
        ready: list[tuple[int, ResolvedInput, dict[str, torch.Tensor]]] = []
        for position, item in chunk:
            try:
                ready.append((position, item, self.sample_clips(item, keys, pending.pop(position, None))))
            except FeatureInputError as err:
                if errors == "raise":
                    raise
                yield ExtractionOutcome(position, item.label, item.out_name, error=err)
        if not ready:
            return
        features = self.forward([clips for _, _, clips in ready], keys)
        for (position, item, _), feats in zip(ready, features):
            feats.name, feats.input = item.out_name, item.label
            yield ExtractionOutcome(position, item.label, item.out_name, features=feats)

    def _warn_default_prepare_config(self) -> None:
        if self.prepare_config_source.startswith("defaults") and not self._warned_defaults:
            self._warned_defaults = True
            warnings.warn(f"raw inputs are prepared with the default PrepareConfig: {self.prepare_config_source}; "
                          "person crops may differ from training (pass prepare_config= or run from the "
                          "folder the store path is relative to)", stacklevel=5)

    def sample_store(self, item: ResolvedInput, pending: Optional[PendingPreparation] = None) -> tuple[SampleStore, str]:
        """(the store holding ``item``, its sample name); raw inputs are prepared into the cache first
        (or ``pending``, their preparation already under way, is waited for)."""
        if item.is_raw:
            if self._cache is None:
                raise MissingModalityError(item.label, "the model reads nothing that raw files can give")
            if pending is None:
                self._warn_default_prepare_config()
                pending = self._cache.start(item)
            return SampleStore(pending.wait()), item.name
        key = str(Path(item.store).resolve())
        if key not in self._stores:
            self._stores[key] = SampleStore(item.store)
        return self._stores[key], item.name

    def sample_clips(self, item: ResolvedInput, keys: tuple[str, ...],
                     pending: Optional[PendingPreparation] = None) -> dict[str, torch.Tensor]:
        """{key: the test clips of ``item``} ([K, ...] when data.test_clips > 1), as evaluation builds them.

        Raises:
            FeatureInputError: preparation or reading failed (typed; names the input).
        """
        try:
            store, name = self.sample_store(item, pending)
            data = self.cfg.data
            transform = self._transform if "skeleton" in keys else None
            common = dict(clip_len=data.clip_len, num_clips=data.test_clips, seed=self.cfg.seed,
                          max_persons=data.max_persons, train=False, labels=[0])
            if self._readers:
                readers = {k: r for k, r in self._readers.items() if k in keys}
                dataset: SkeletonClipDataset = MultiModalClipDataset(store, [name], readers, skeleton_transform=transform,
                                                                     flip_p=data.flip_p, **common)
                # Clip times come from the longest configured reader, as in evaluation, even when
                # this input lacks that modality (else the frames of the others would shift).
                dataset.max_frames = self._max_frames
            else:
                dataset = SkeletonClipDataset(store, [name], transform, source=data.skeleton_source, **common)
            item_clips = dataset[0]
        except FeatureInputError:
            raise
        except (ActionFusionError, ValueError, OSError) as err:
            raise FeatureInputError(item.label, f"reading its clips failed: {error_text(err)}") from err
        return {k: item_clips[k] for k in keys}

    @torch.no_grad()
    def forward(self, clips: Sequence[Mapping[str, torch.Tensor]], keys: tuple[str, ...]) -> list[SampleFeatures]:
        """Features of a batch of samples' clips ({key: [K, ...] or [...]} each), one per sample."""
        batch = {k: torch.stack([c[k] for c in clips]).to(self.device) for k in keys}
        x, num_clips = flatten_clips(batch, keys)
        model_input = x if (self.any_subset or len(keys) > 1) else x[keys[0]]
        feats = self.model.forward_features(model_input)
        logits = self.model.forward_head(feats).float()
        encoders = getattr(feats, "modalities", None)
        if isinstance(encoders, Mapping):
            fused = feats.fused
            modalities = {e: out.pooled for e, out in encoders.items()}
            branches = {e: feats.branches[e] for e in encoders if e in feats.branches}
        else:
            fused = feats.pooled
            modalities = {next(iter(self.key_groups)): feats.pooled}
            branches = {}

        def per_sample(t: torch.Tensor) -> np.ndarray:
            """[(B K), D] -> float32 [B, D], averaged over the K clips."""
            mean = rearrange(t.float(), "(b k) d -> b k d", k=num_clips).mean(dim=1)
            return mean.cpu().numpy().astype(np.float32)

        probabilities = per_sample(torch.softmax(logits, dim=-1))
        fused_np, logits_np = per_sample(fused), per_sample(logits)
        modality_np = {e: per_sample(t) for e, t in modalities.items()}
        branch_np = {e: per_sample(t) for e, t in branches.items()}
        return [SampleFeatures(name="", fused=fused_np[i], modalities={e: v[i] for e, v in modality_np.items()},
                               branches={e: v[i] for e, v in branch_np.items()}, logits=logits_np[i],
                               probabilities=probabilities[i], modalities_used=list(keys),
                               class_names=self.class_names)
                for i in range(len(clips))]


__all__ = ["ExtractionOutcome", "FeatureExtractor", "RawSample", "SampleFeatures", "StoreSample",
           "describe_input", "resolve_checkpoint", "training_prepare_config"]  # re-exported for users
