"""What every store reader shares (the folder store and the sharded store).

A store subclasses :class:`StoreReader`, sets ``_names`` (sorted sample names) and ``manifest``,
and implements ``location`` (the path or URL that messages name), ``__contains__``,
``_load_array(name, modality)`` (the modality's ``.npy``) and ``frame_pack(name, modality)`` (an
open :class:`~.frame_pack.FramePack` of ``rgb`` or ``depth``). The names, the prepare config and
the typed ``load_<modality>`` readers are written once here. Shapes and units are the store
layout's (:mod:`.layout`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Optional, Sequence

import numpy as np

from ...errors import StoreError
from .frame_pack import FramePack


class StoreReader(ABC):
    """Sample names, the prepare config and ``load_<modality>`` for every stored modality."""

    _names: list[str]
    manifest: dict[str, Any]

    @property
    @abstractmethod
    def location(self) -> str:
        """The store's path or URL, for messages."""

    @abstractmethod
    def __contains__(self, name: object) -> bool:
        """Whether ``name`` is a finished sample of the store."""

    @abstractmethod
    def _load_array(self, name: str, modality: str) -> np.ndarray:
        """The modality's array of sample ``name`` (may be memory-mapped)."""

    @abstractmethod
    def frame_pack(self, name: str, modality: str) -> FramePack:
        """The open frame pack of ``rgb`` or ``depth`` of sample ``name``."""

    @property
    def names(self) -> list[str]:
        """Sorted names of the finished samples (status ``ok`` or ``partial``) when the store was
        opened (for a sharded store: when it was packed)."""
        return list(self._names)

    def __len__(self) -> int:
        return len(self._names)

    @property
    def config(self) -> dict[str, Any]:
        """The PrepareConfig (as a dict) the store was prepared with."""
        return dict(self.manifest.get("config") or {})

    def load_skeleton(self, name: str) -> np.ndarray:
        """float32 [M, T, 25, 3] denoised actors in camera space (metres)."""
        return np.array(self._load_array(name, "skeleton"), dtype=np.float32)

    def load_pose2d_sensor(self, name: str) -> np.ndarray:
        """float32 [M, T, 25, 3] the sensor's 2D keypoints (colorX, colorY, score), aligned with
        :meth:`load_skeleton`'s actors and frames; score 0 where the actor is absent."""
        return np.array(self._load_array(name, "pose2d_sensor"), dtype=np.float32)

    def load_pose2d(self, name: str) -> np.ndarray:
        """float32 [M, T, K, 3] 2D keypoints (x, y, score) in pixels of the source frames."""
        return np.array(self._load_array(name, "pose2d"), dtype=np.float32)

    def load_pose3d_world(self, name: str) -> np.ndarray:
        """float32 [M, T, K, 3] the pose model's world keypoints (metres; hip-centred for BlazePose)."""
        return np.array(self._load_array(name, "pose3d_world"), dtype=np.float32)

    def load_rgb(self, name: str, frames: Optional[Sequence[int]] = None) -> np.ndarray:
        """uint8 [t, S, S, 3] RGB person crops; only ``frames`` (all if ``None``) are decoded."""
        return self._load_pack(name, "rgb", frames)

    def load_depth(self, name: str, frames: Optional[Sequence[int]] = None) -> np.ndarray:
        """uint16 [t, D, D] cropped depth in millimetres (0 = no data / masked out)."""
        return self._load_pack(name, "depth", frames)

    def load_points(self, name: str, frames: Optional[Sequence[int]] = None) -> np.ndarray:
        """float32 [t, N, 3] point clouds in camera space (metres, y up)."""
        points = self._load_array(name, "points")
        if frames is not None:
            index = np.asarray(frames, dtype=np.int64)
            if index.size and (index.min() < -points.shape[0] or index.max() >= points.shape[0]):
                raise StoreError(f"{self.location}: {name} points: frame index out of range for {points.shape[0]} frames")
            points = points[index]
        return np.asarray(points, dtype=np.float32)

    def _load_pack(self, name: str, modality: str, frames: Optional[Sequence[int]]) -> np.ndarray:
        with self.frame_pack(name, modality) as pack:
            try:
                return pack.read(frames)
            except IndexError as err:
                raise StoreError(str(err)) from err
