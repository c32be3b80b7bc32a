"""Skeleton clips from a prepared sample store, with per-item seeded augmentation.

Every random choice for item ``i`` in epoch ``e`` comes from
``np.random.default_rng([seed, e, i])`` (clip ``k`` of a multi-clip item:
``[seed, e, i, k]``), so a batch does not depend on the number of loader workers, on their
order, or on whether the run was resumed.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from .store.sample_store import SampleStore

ClipTransform = Callable[[np.ndarray, np.random.Generator], np.ndarray]
"""``(x float32 [M, T, V, C], rng) -> x' float32 [M, T', V, C']``."""


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

    Items: ``{"skeleton": float32 tensor [M, T, V, C] (K > 1: [K, M, T, V, C]),
    "label": int64 scalar tensor, "index": int}`` (+ ``"views"``).
    """

    def __init__(
        self,
        store: SampleStore,
        names: Sequence[str],
        transform: ClipTransform,
        clip_len: int,
        num_clips: int = 1,
        seed: int = 0,
        max_persons: int = 2,
        train: bool = True,
        labels: Optional[Sequence[int]] = None,
        view_transforms: Optional[Sequence[ClipTransform]] = None,
    ) -> None:
        if clip_len < 1 or num_clips < 1 or max_persons < 1:
            raise ValueError(f"clip_len, num_clips and max_persons must be >= 1, got {clip_len}, {num_clips}, {max_persons}")
        self._store: Optional[SampleStore] = store
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
        self.epoch = 0

    @property
    def store(self) -> SampleStore:
        """The sample store (reopened from its path after the dataset was pickled into a worker)."""
        if self._store is None:
            self._store = SampleStore(self._store_path)
        return self._store

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_store"] = None  # reopened lazily: the store's caches are per process
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

    def clip(self, raw: np.ndarray, rng: np.random.Generator, transform: Optional[ClipTransform] = None) -> np.ndarray:
        """float32 [M, clip_len, V, C]: ``raw`` [M, T, V, 3] through the transform, length fixed."""
        x = np.asarray((transform or self.transform)(raw.copy(), rng), dtype=np.float32)
        if x.ndim != 4 or x.shape[0] != self.max_persons:
            raise ValueError(f"the transform returned shape {x.shape}; expected [{self.max_persons}, T, V, C]")
        return np.ascontiguousarray(fit_length(x, self.clip_len))

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self.names):
            raise IndexError(f"index {index} out of range for {len(self.names)} samples")
        raw = self.load(index)
        if self.view_transforms:
            views = [torch.from_numpy(self.clip(raw, np.random.default_rng([self.seed, self.epoch, int(index), 0, v]),
                                                transform))
                     for v, transform in enumerate(self.view_transforms)]
            return {"skeleton": views[0], "views": [{"skeleton": view} for view in views],
                    "label": torch.tensor(self.labels[index], dtype=torch.int64), "index": int(index)}
        if self.num_clips == 1:
            skeleton = self.clip(raw, self.rng(index))
        else:
            skeleton = np.stack([self.clip(raw, self.rng(index, k)) for k in range(self.num_clips)])
        return {
            "skeleton": torch.from_numpy(skeleton),
            "label": torch.tensor(self.labels[index], dtype=torch.int64),
            "index": int(index),
        }
