"""Skeleton clips from a prepared sample store, with per-item seeded augmentation.

Every random choice for item ``i`` in epoch ``e`` comes from
``np.random.default_rng([seed, e, i])`` (clip ``k`` of a multi-clip item:
``[seed, e, i, k]``), so a batch does not depend on the number of loader workers, on their
order, or on whether the run was resumed.

With several skeleton conventions (MS-CLR, :mod:`.skeleton_conventions`) every convention of a
clip runs through its own pipeline (built for its joint layout) with a generator seeded by the
same key, so the conventions of one clip or view share the temporal crop and every draw made
before the first per-joint draw.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from .skeleton_conventions import (CONVENTIONS, CONVENTIONS_KEY, SENSOR_CONVENTION, check_pose_available,
                                   load_conventions, match_valid_frames)
from .store.sample_store import SampleStore

ClipTransform = Callable[[np.ndarray, np.random.Generator], np.ndarray]
"""``(x float32 [M, T, V, C], rng) -> x' float32 [M, T', V, C']``."""
ClipTransforms = Union[ClipTransform, Mapping[str, ClipTransform]]
"""One transform for every convention, or ``{convention: transform}`` (each built for its layout)."""


def fit_persons(x: np.ndarray, max_persons: int) -> np.ndarray:
    """float32 [M, T, V, C] -> [max_persons, T, V, C]: extra persons dropped, missing ones zero."""
    persons = x.shape[0]
    if persons == max_persons:
        return x
    if persons > max_persons:
        return x[:max_persons]
    pad = np.zeros((max_persons - persons,) + x.shape[1:], dtype=x.dtype)
    return np.concatenate([x, pad], axis=0)


def fit_length(x: np.ndarray, clip_len: int) -> np.ndarray:
    """float32 [M, T, V, C] -> [M, clip_len, V, C].

    Longer clips are resampled to ``clip_len`` frames by linear interpolation over time (as the
    crop-resize transform does); shorter ones are padded with zero frames at the end (as the
    CTR-GCN feeder pads). A clip of the right length is returned unchanged.
    """
    frames = x.shape[1]
    if frames == clip_len:
        return x
    if frames > clip_len:
        position = np.linspace(0.0, frames - 1, clip_len)
        low = np.floor(position).astype(np.int64)
        high = np.minimum(low + 1, frames - 1)
        weight = (position - low).astype(x.dtype)[None, :, None, None]
        return x[:, low] * (1 - weight) + x[:, high] * weight
    pad = np.zeros((x.shape[0], clip_len - frames) + x.shape[2:], dtype=x.dtype)
    return np.concatenate([x, pad], axis=1)


class SkeletonClipDataset(Dataset):
    """Fixed-length skeleton clips of the named samples of a store.

    Args:
        store: the prepared store (``load_skeleton(name)`` gives float32 [M, T, 25, 3]).
        names: the samples, in dataset order.
        transform: ``(x float32 [max_persons, T, V, 3], rng) -> x' [max_persons, T', V, C]``,
            the augmentation and stream pipeline (``build_skeleton_pipeline``).
        clip_len: frames T of every returned clip (fixed by :func:`fit_length` when the
            transform gives another length).
        num_clips: clips K per item; K > 1 stacks K independently sampled clips.
        seed: base seed of every random choice.
        max_persons: persons M of every clip.
        train: recorded for the caller (the transform already knows whether it trains).
        labels: the samples' 0-based labels; read from the store when None.
        view_transforms: N > 1 pipelines, one per view (self-supervised objectives): items then
            also hold ``"views"``, N dicts ``{"skeleton": [M, T, V, C]}``, view ``v`` drawn from
            ``default_rng([seed, epoch, index, 0, v])``; ``"skeleton"`` is view 0.
        source: the convention ``"skeleton"`` holds (:data:`~.skeleton_conventions.CONVENTIONS`):
            ``ntu25`` (the sensor's ``skeleton.npy``, default) or an extracted one (``coco17``,
            ``blazepose33``; ``data.skeleton_source``).
        conventions: conventions every item (and every view) also holds under ``"conventions"``
            (``data.conventions``; empty: none). ``transform`` and each of ``view_transforms`` are
            then ``{convention: transform}`` mappings built for each layout (a plain callable
            serves every convention).

    Items: ``{"skeleton": float32 tensor [M, T, V, C] (K > 1: [K, M, T, V, C]),
    "label": int64 scalar tensor, "index": int}`` (+ ``"views"``); with ``conventions`` also
    ``"conventions": {name: float32 tensor [M, T, V_name, C]}`` in the item and in every view
    (``"skeleton"`` is the same clip as ``"conventions"[source]`` when ``source`` is listed).

    ``class_names`` (set by the data builder from the benchmark) names the classes by label; None
    means NTU RGB+D's names.
    """

    class_names: Optional[tuple[str, ...]] = None

    def __init__(
        self,
        store: SampleStore,
        names: Sequence[str],
        transform: ClipTransforms,
        clip_len: int,
        num_clips: int = 1,
        seed: int = 0,
        max_persons: int = 2,
        train: bool = True,
        labels: Optional[Sequence[int]] = None,
        view_transforms: Optional[Sequence[ClipTransforms]] = None,
        source: str = SENSOR_CONVENTION,
        conventions: Sequence[str] = (),
    ) -> None:
        if clip_len < 1 or num_clips < 1 or max_persons < 1:
            raise ValueError(f"clip_len, num_clips and max_persons must be >= 1, got {clip_len}, {num_clips}, {max_persons}")
        self._store: Optional[SampleStore] = store  # or a ShardedStore: the same read interface
        self._store_path: Union[str, "os.PathLike[str]"] = store.path
        self.names: list[str] = list(names)
        self.labels: list[int] = [int(v) for v in labels] if labels is not None else [store.label(n) for n in self.names]
        if len(self.labels) != len(self.names):
            raise ValueError(f"{len(self.labels)} labels for {len(self.names)} names")
        self.transform = transform
        self.clip_len = int(clip_len)
        self.num_clips = int(num_clips)
        self.seed = int(seed)
        self.max_persons = int(max_persons)
        self.train = bool(train)
        self.view_transforms = list(view_transforms or [])
        if len(self.view_transforms) == 1 or (self.view_transforms and num_clips != 1):
            raise ValueError("view_transforms needs at least 2 views, and one clip per item")
        self.source = str(source)
        self.conventions = tuple(str(c) for c in conventions)
        self.loaded = (self.source,) + tuple(c for c in self.conventions if c != self.source)
        unknown = [c for c in self.loaded if c not in CONVENTIONS]
        if unknown or len(set(self.conventions)) != len(self.conventions):
            raise ValueError(f"conventions must be distinct names of {CONVENTIONS}, got source {source!r} and "
                             f"conventions {tuple(conventions)}")
        for transforms in [self.transform] + self.view_transforms:
            lacking = [c for c in self.loaded if isinstance(transforms, Mapping) and c not in transforms]
            if lacking:
                raise ValueError(f"the transforms of conventions {self.loaded} lack {lacking}")
        check_pose_available(store, self.names, self.loaded)
        self.epoch = 0

    @property
    def store(self) -> SampleStore:
        """The sample store (reopened from its path after the dataset was pickled into a worker)."""
        if self._store is None:
            self._store = SampleStore(self._store_path)
        return self._store

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if isinstance(self._store, SampleStore):
            state["_store"] = None  # reopened lazily: the store's caches are per process
        # a ShardedStore pickles without its connection and cache (reopened in the worker)
        return state

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random choices the next items use."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.names)

    def rng(self, index: int, clip: Optional[int] = None) -> np.random.Generator:
        """The generator of item ``index`` (clip ``clip`` of a multi-clip item) in the current epoch."""
        key = [self.seed, self.epoch, int(index)]
        if clip is not None:
            key.append(int(clip))
        return np.random.default_rng(key)

    def load(self, index: int) -> np.ndarray:
        """float32 [max_persons, T_raw, V, 3]: the stored skeleton of item ``index``, persons fitted."""
        x = self.store.load_skeleton(self.names[index])
        return fit_persons(np.ascontiguousarray(x, dtype=np.float32), self.max_persons)

    def load_conventions(self, index: int) -> dict[str, np.ndarray]:
        """``{convention: float32 [max_persons, T_raw, V_c, 3]}`` of item ``index`` for the source and
        every listed convention, on one timeline with the same non-empty frames."""
        if self.loaded == (SENSOR_CONVENTION,):
            return {SENSOR_CONVENTION: self.load(index)}
        arrays = load_conventions(self.store, self.names[index], self.loaded)
        return match_valid_frames({c: fit_persons(x, self.max_persons) for c, x in arrays.items()})

    def draw(self, raws: Mapping[str, np.ndarray], key: Sequence[int], transforms: ClipTransforms) -> dict[str, Any]:
        """One clip of every loaded convention, each through its transform with ``default_rng(key)``:
        ``{"skeleton": [M, clip_len, V, C]}`` (+ ``"conventions"``), float32 arrays."""
        clips = {c: self.clip(raws[c], np.random.default_rng(list(key)),
                              transforms[c] if isinstance(transforms, Mapping) else transforms)
                 for c in self.loaded}
        out: dict[str, Any] = {"skeleton": clips[self.source]}
        if self.conventions:
            out[CONVENTIONS_KEY] = {c: clips[c] for c in self.conventions}
        return out

    def clip(self, raw: np.ndarray, rng: np.random.Generator, transform: Optional[ClipTransform] = None) -> np.ndarray:
        """float32 [M, clip_len, V, C]: ``raw`` [M, T, V, 3] through the transform, length fixed."""
        x = np.asarray((transform or self.transform)(raw.copy(), rng), dtype=np.float32)
        if x.ndim != 4 or x.shape[0] != self.max_persons:
            raise ValueError(f"the transform returned shape {x.shape}; expected [{self.max_persons}, T, V, C]")
        return np.ascontiguousarray(fit_length(x, self.clip_len))

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self.names):
            raise IndexError(f"index {index} out of range for {len(self.names)} samples")
        raws = self.load_conventions(index)
        base = [self.seed, self.epoch, int(index)]
        if self.view_transforms:
            views = [_to_tensors(self.draw(raws, base + [0, v], transforms))
                     for v, transforms in enumerate(self.view_transforms)]
            item = {key: value for key, value in views[0].items()}
            item["views"] = views
        elif self.num_clips == 1:
            item = _to_tensors(self.draw(raws, base, self.transform))
        else:
            clips = [self.draw(raws, base + [k], self.transform) for k in range(self.num_clips)]
            item = _to_tensors(_stack(clips))
        item["label"] = torch.tensor(self.labels[index], dtype=torch.int64)
        item["index"] = int(index)
        return item


def _stack(clips: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """K clip dicts of arrays (nested dicts too) -> one dict of arrays stacked on a new first axis."""
    return {key: _stack([c[key] for c in clips]) if isinstance(value, Mapping) else np.stack([c[key] for c in clips])
            for key, value in clips[0].items()}


def _to_tensors(arrays: Mapping[str, Any]) -> dict[str, Any]:
    """A dict of arrays (nested dicts too) -> the same dict of torch tensors."""
    return {key: _to_tensors(value) if isinstance(value, Mapping) else torch.from_numpy(value)
            for key, value in arrays.items()}
