"""Clip-level transforms for point-cloud sequences: drop padding, centre, augment, resample.

Camera space as in :mod:`actionfusion.geometry`: metres, y up, so "vertical" is the y axis.
Centring uses ONE translation for the whole clip (the mean of all its points), never one per
frame, so a body walking or falling still moves across frames.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ...geometry import rotation_matrix

# Rotation about y when training: NTU's three cameras look at the subject from -45, 0 and +45
# degrees (NTU RGB+D, Shahroudy et al. CVPR 2016, Sec. 3), so +-45 degrees covers the views.
DEFAULT_MAX_ROTATION = np.pi / 4
# Scale and jitter: PointNet / PointNet++ training augmentation (jitter sigma 0.01, clip 0.05),
# with a narrower scale range since these clouds are in metres.
DEFAULT_SCALE_RANGE = (0.9, 1.1)
DEFAULT_JITTER_SIGMA = 0.01
DEFAULT_JITTER_CLIP = 0.05


def resample_indices(count: int, num_points: int, rng: Optional[np.random.Generator]) -> np.ndarray:
    """Indices into ``count`` points giving exactly ``num_points``: a subset when there are enough,
    every point repeated (then a random / evenly spread remainder) when there are fewer.

    ``rng=None`` chooses deterministically (evenly spread), for evaluation. Returns int64 [num_points].
    """
    if count <= 0:
        raise ValueError("cannot resample an empty frame")
    order = np.arange(count) if rng is None else rng.permutation(count)
    if count >= num_points:
        if rng is None:
            return np.linspace(0, count - 1, num_points).round().astype(np.int64)
        return order[:num_points].astype(np.int64)
    reps, rest = divmod(num_points, count)
    extra = order[np.linspace(0, count - 1, rest).round().astype(np.int64)] if rng is None else order[:rest]
    return np.concatenate([np.tile(order, reps), extra]).astype(np.int64)


def point_clip_pipeline(
    points: np.ndarray,
    num_points: int,
    train: bool,
    rng: Optional[np.random.Generator] = None,
    unit_extent: bool = False,
    max_rotation: float = DEFAULT_MAX_ROTATION,
    scale_range: tuple[float, float] = DEFAULT_SCALE_RANGE,
    jitter_sigma: float = DEFAULT_JITTER_SIGMA,
    jitter_clip: float = DEFAULT_JITTER_CLIP,
) -> np.ndarray:
    """Turn a stored point clip into a model input.

    Steps: drop all-zero points (the store's padding / pixels without depth); centre the clip on
    the mean of all its remaining points (one translation per clip); optionally scale so the
    farthest point is at distance 1; when ``train``: a random rotation about the vertical (y) axis
    in [-max_rotation, max_rotation], a random uniform scale in ``scale_range`` and Gaussian
    jitter (sigma ``jitter_sigma``, clipped at ``jitter_clip``; in the output's units); finally
    resample every frame to ``num_points`` (a random subset, or repeats when it has fewer; evenly
    spread and deterministic when ``rng`` is None). A frame with no points comes out as zeros.

    Args:
        points: float32 [T, P, 3] camera-space points (metres), zeros for padding.
        num_points: P', points per output frame.
        train: apply the random augmentations (needs ``rng``).
        rng: numpy Generator; None only when not training (deterministic resampling).
    Returns:
        float32 [T, P', 3].
    """
    points = np.asarray(points, dtype=np.float32)
    if points.ndim != 3 or points.shape[-1] != 3:
        raise ValueError(f"points must be [T, P, 3], got {points.shape}")
    if num_points < 1:
        raise ValueError(f"num_points must be >= 1, got {num_points}")
    if train and rng is None:
        raise ValueError("training augmentation needs an rng (numpy Generator)")
    frames = points.shape[0]
    out = np.zeros((frames, num_points, 3), dtype=np.float32)
    valid = np.any(points != 0, axis=-1) & np.all(np.isfinite(points), axis=-1)  # [T, P]
    if not valid.any():
        return out
    centred = (points - points[valid].astype(np.float64).mean(axis=0)).astype(np.float32)
    if unit_extent:
        radius = float(np.linalg.norm(centred[valid], axis=-1).max())
        if radius > 0:
            centred /= radius
    transform = np.eye(3)
    if train:
        angle = rng.uniform(-max_rotation, max_rotation)
        transform = rotation_matrix("y", angle) * rng.uniform(*scale_range)
    for t in range(frames):
        count = int(valid[t].sum())
        if count == 0:
            continue
        frame = centred[t][valid[t]]
        out[t] = frame[resample_indices(count, num_points, rng)] @ transform.T.astype(np.float32)
        if train and jitter_sigma > 0:
            noise = np.clip(rng.normal(0.0, jitter_sigma, size=(num_points, 3)), -jitter_clip, jitter_clip)
            out[t] += noise.astype(np.float32)
    return out
