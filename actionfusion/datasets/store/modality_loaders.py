"""The typed per-modality readers every store shares (folder store and sharded store).

A store class mixes in :class:`ModalityLoaders` and provides three things: ``_load_array(name,
modality)`` (the modality's ``.npy``), ``frame_pack(name, modality)`` (an open
:class:`~.frame_pack.FramePack` of ``rgb`` or ``depth``) and ``location`` (the path or URL that
error messages name). Shapes and units are the store layout's (:mod:`.layout`).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ...errors import StoreError
from .frame_pack import FramePack


class ModalityLoaders:
    """``load_<modality>`` for every stored modality, over ``_load_array`` and ``frame_pack``."""

    @property
    def location(self) -> str:
        """The store's path or URL, for messages."""
        raise NotImplementedError

    def _load_array(self, name: str, modality: str) -> np.ndarray:
        raise NotImplementedError

    def frame_pack(self, name: str, modality: str) -> FramePack:
        raise NotImplementedError

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
