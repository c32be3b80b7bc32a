"""Other per-joint fields of a skeleton file (colorX/Y, depthX/Y, ...) in the actor slots of
:func:`~actionfusion.datasets.ntu.denoise.denoise_skeleton`.

The denoiser returns camera-space joints only; its report says which bodies went into which
actor slot and which file frames were kept. :func:`actor_joint_fields` replays that
assignment for any columns of :attr:`SkeletonFile.joints`, so the sensor's 2D keypoints line
up frame for frame and actor for actor with the stored 3D skeleton.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .denoise import DenoiseReport
from .skeleton_file import SkeletonFile

COLOR_XY_COLUMNS: tuple[int, int] = (5, 6)
"""colorX, colorY in :data:`~actionfusion.datasets.ntu.skeleton_file.JOINT_FIELDS` (pixels of the 1920x1080 colour camera)."""
DEPTH_XY_COLUMNS: tuple[int, int] = (3, 4)
"""depthX, depthY (pixels of the 512x424 depth camera)."""


def actor_joint_fields(sk: SkeletonFile, report: DenoiseReport, columns: Sequence[int]) -> np.ndarray:
    """float32 [M, T', 25, len(columns)]: ``sk.joints[..., columns]`` placed as the denoiser placed xyz.

    Args:
        sk: the parsed file the report was computed from.
        report: :func:`denoise_skeleton`'s report (``actor_bodies``, ``kept_frames``).
        columns: joint-field columns to take (e.g. :data:`COLOR_XY_COLUMNS`).
    Returns:
        M = ``len(report.actor_bodies)`` slots, T' = ``len(report.kept_frames)`` frames; NaN
        where a slot holds no body in that frame (the 3D skeleton has zeros there). Later
        bodies of a slot overwrite earlier ones on a shared frame, as in the denoiser.
    """
    cols = list(columns)
    kept = np.asarray(report.kept_frames, dtype=np.int64)
    out = np.full((len(report.actor_bodies), kept.size, sk.joints.shape[2], len(cols)), np.nan, dtype=np.float32)
    if kept.size == 0:
        return out
    position = np.full(int(sk.num_frames), -1, dtype=np.int64)
    position[kept] = np.arange(kept.size)
    # the denoiser's own test of "body present in frame": listed, with finite xyz
    present = np.asarray(sk.present()) & np.isfinite(sk.joints[..., 0:3]).all(axis=(2, 3))
    row_of = {int(body_id): row for row, body_id in enumerate(sk.body_ids)}
    for slot, body_ids in enumerate(report.actor_bodies):
        for body_id in body_ids:
            row = row_of[int(body_id)]
            frames = np.flatnonzero(present[row] & (position >= 0))
            values = sk.joints[row, frames][..., cols]
            frames, values = frames[np.isfinite(values).all(axis=(1, 2))], values[np.isfinite(values).all(axis=(1, 2))]
            out[slot, position[frames]] = values
    return out


def sensor_keypoints_2d(sk: SkeletonFile, report: DenoiseReport) -> np.ndarray:
    """float32 [M, T', 25, 3]: the sensor's colour-image keypoints (colorX, colorY, score).

    Score is 1 where the slot has a body in that frame and 0 elsewhere (x = y = 0 there), the
    layout of extracted 2D poses (``pose2d``), so heatmap volumes treat both alike.
    """
    xy = actor_joint_fields(sk, report, COLOR_XY_COLUMNS)
    valid = np.isfinite(xy).all(axis=-1, keepdims=True)
    return np.concatenate([np.where(valid, xy, 0.0), valid.astype(np.float32)], axis=-1).astype(np.float32)
