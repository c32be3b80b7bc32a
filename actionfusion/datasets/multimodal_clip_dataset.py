"""Clips of several modalities of one sample, aligned in time, for training and evaluation.

An item holds one tensor per modality (``rgb`` [3, T, H, W], ``pose_heatmap`` [K, T, H, W],
``depth`` [1, T, H, W], ``points`` [T, P, 3], ``skeleton`` [M, T, V, C]), plus ``label`` and
``index``. Multi-clip items stack K clips: ``[K, ...]`` per modality.

The frame-based modalities share their clip times (:func:`segment_times` over the largest
frame count, each modality taking its share with :func:`times_for`), so EPAM's 16 RGB frames
are exactly every 3rd of its 48 pose frames. The skeleton keeps its own pipeline (crop-resize,
rotation), as the skeleton encoders were trained with it.

As in :class:`~actionfusion.datasets.clip_dataset.SkeletonClipDataset`, every random choice of
item ``i`` in epoch ``e`` comes from ``np.random.default_rng([seed, e, i])`` (clip ``k``:
``[seed, e, i, k]``): batches do not depend on the workers or on resuming.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch

from .clip_dataset import SkeletonClipDataset
from .modality_clips import ClipReader, segment_times, times_for
from .store.sample_store import SampleStore


class MultiModalClipDataset(SkeletonClipDataset):
    """Aligned clips of the configured modalities of the named samples of a store.

    Args:
        store, names, clip_len, num_clips, seed, max_persons, train, labels: as in
            :class:`SkeletonClipDataset` (the skeleton settings apply when ``skeleton`` is used).
        readers: {batch key: reader} of the frame-based modalities (:mod:`.modality_clips`).
        skeleton_transform: the skeleton pipeline; ``None`` leaves ``skeleton`` out of the items.
        flip_p: probability that a training item is mirrored (passed to every reader).
    """

    def __init__(
        self,
        store: SampleStore,
        names: Sequence[str],
        readers: Mapping[str, ClipReader],
        skeleton_transform: Optional[Any] = None,
        clip_len: int = 64,
        num_clips: int = 1,
        seed: int = 0,
        max_persons: int = 2,
        train: bool = True,
        labels: Optional[Sequence[int]] = None,
        flip_p: float = 0.5,
    ) -> None:
        if not readers and skeleton_transform is None:
            raise ValueError("no modality to read: give readers and/or a skeleton transform")
        super().__init__(store, names, skeleton_transform, clip_len=clip_len, num_clips=num_clips, seed=seed,
                         max_persons=max_persons, train=train, labels=labels)
        self.readers = dict(readers)
        self.flip_p = float(flip_p)
        self.max_frames = max((reader.num_frames for reader in self.readers.values()), default=0)

    def modalities(self) -> list[str]:
        """The batch keys of every item (besides ``label`` and ``index``)."""
        return (["skeleton"] if self.transform is not None else []) + list(self.readers)

    def one_clip(self, index: int, rng: np.random.Generator, clip: int) -> dict[str, np.ndarray]:
        """{modality: array} of one clip of item ``index``."""
        out: dict[str, np.ndarray] = {}
        name = self.names[index]
        flip = self.train and self.flip_p > 0 and bool(rng.random() < self.flip_p)
        if self.readers:
            times = segment_times(self.max_frames, self.train, rng, clip, self.num_clips)
            for key, reader in self.readers.items():
                array = reader.read(self.store, name, times_for(times, reader.num_frames), self.train, rng, flip)
                out[key] = np.ascontiguousarray(array, dtype=np.float32)
        if self.transform is not None:
            out["skeleton"] = self.clip(self.load(index), rng)
        return out

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self.names):
            raise IndexError(f"index {index} out of range for {len(self.names)} samples")
        if self.num_clips == 1:
            clip = self.one_clip(index, self.rng(index), 0)
        else:
            clips = [self.one_clip(index, self.rng(index, k), k) for k in range(self.num_clips)]
            clip = {key: np.stack([c[key] for c in clips]) for key in clips[0]}
        item: dict[str, Any] = {key: torch.from_numpy(value) for key, value in clip.items()}
        item["label"] = torch.tensor(self.labels[index], dtype=torch.int64)
        item["index"] = int(index)
        return item
