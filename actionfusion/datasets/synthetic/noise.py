"""Kinect-like sensor noise: joint jitter, inferred / untracked joints, lost frames, depth noise.

The magnitudes follow what the Kinect v2 literature reports and NTU's files show: a few
millimetres of jitter on tracked joints, centimetres on inferred ones, hands and feet
more often inferred than the spine, and occasional frames in which no body is reported
(NTU's Matlab reader handles ``bodyCount 0``).
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import cv2
import numpy as np

from .kinect_body import J

TRACKED, INFERRED, NOT_TRACKED = 2, 1, 0
"""Kinect v2 ``TrackingState`` values."""

_EXTREMITIES = [J[n] for n in ("WristLeft", "HandLeft", "WristRight", "HandRight", "AnkleLeft",
                               "FootLeft", "AnkleRight", "FootRight", "HandTipLeft", "ThumbLeft",
                               "HandTipRight", "ThumbRight")]
_P_INFERRED = np.full(25, 0.006)
_P_INFERRED[_EXTREMITIES] = 0.06
_P_NOT_TRACKED = np.zeros(25)
_P_NOT_TRACKED[_EXTREMITIES] = 0.008
_JITTER_M = {TRACKED: 0.004, INFERRED: 0.02, NOT_TRACKED: 0.05}
"""Standard deviation of the position error per tracking state, metres."""


@dataclass
class SensorSkeleton:
    """What the sensor reports for one camera.

    Attributes:
        joints: float64 [B, T, 25, 3] noisy camera-space joints, metres.
        tracking: int8 [B, T, 25] TrackingState per joint.
        present: bool [B, T] body reported in the frame.
    """

    joints: np.ndarray
    tracking: np.ndarray
    present: np.ndarray


def _smooth_time(x: np.ndarray, width: int) -> np.ndarray:
    """Box-filter ``x`` [B, T, ...] along T (edge-padded), keeping unit variance."""
    if width <= 1 or x.shape[1] < 2:
        return x
    pad = width // 2
    xp = np.concatenate([np.repeat(x[:, :1], pad, 1), x, np.repeat(x[:, -1:], width - 1 - pad, 1)], 1)
    csum = np.concatenate([np.zeros_like(xp[:, :1]), np.cumsum(xp, axis=1)], axis=1)
    out = (csum[:, width:] - csum[:, :-width]) / width
    return out * np.sqrt(width)


def _runs_above(rng: np.random.Generator, shape: tuple, prob: np.ndarray, width: int = 5) -> np.ndarray:
    """bool [B, T, 25]: temporally correlated events with per-joint rate ``prob`` [25]."""
    field = _smooth_time(rng.standard_normal(shape), width)
    quantile = np.array([NormalDist().inv_cdf(1 - p) for p in np.clip(prob, 1e-9, 0.5)])
    return field > quantile[None, None, :]


def sensor_skeleton(rng: np.random.Generator, true_joints: np.ndarray) -> SensorSkeleton:
    """Corrupt true camera-space joints like a Kinect v2.

    Args:
        rng: the sample's generator.
        true_joints: float [B, T, 25, 3] camera space.
    """
    b, t = true_joints.shape[:2]
    inferred = _runs_above(rng, (b, t, 25), _P_INFERRED)
    lost = _runs_above(rng, (b, t, 25), _P_NOT_TRACKED)
    tracking = np.where(lost, NOT_TRACKED, np.where(inferred, INFERRED, TRACKED)).astype(np.int8)
    sigma = np.choose(tracking, [_JITTER_M[NOT_TRACKED], _JITTER_M[INFERRED], _JITTER_M[TRACKED]])
    sigma = sigma * np.where(np.isin(np.arange(25), _EXTREMITIES), 1.8, 1.0)[None, None, :]
    wobble = _smooth_time(rng.standard_normal((b, t, 25, 3)), 3) / np.sqrt(3)
    joints = true_joints + wobble * sigma[..., None]

    present = np.ones((b, t), bool)
    if t > 4 and rng.random() < 0.3:  # whole frames lost
        for start in rng.choice(np.arange(1, t - 1), size=int(rng.integers(1, 3)), replace=False):
            present[:, start:start + int(rng.integers(1, 3))] = False
    if b > 1 and t > 8 and rng.random() < 0.2:  # the second person briefly lost
        start = int(rng.integers(1, t - 5))
        present[1, start:start + int(rng.integers(1, 5))] = False
    present[:, 0] = True
    return SensorSkeleton(joints=joints, tracking=tracking, present=present)


def noisy_depth_mm(rng: np.random.Generator, depth_m: np.ndarray) -> np.ndarray:
    """Masked Kinect depth: millimetres with noise and ragged silhouette edges.

    Args:
        rng: the sample's generator.
        depth_m: float32 [H, W] metres, +inf where empty.
    Returns:
        uint16 [H, W] millimetres, 0 where empty.
    """
    mask = np.isfinite(depth_m)
    mm = np.zeros(depth_m.shape, np.uint16)
    if not mask.any():
        return mm
    values = depth_m[mask] * 1000.0
    values += rng.normal(0.0, 1.0, values.shape) * (0.5 + 0.35 * (values / 1000.0) ** 2)
    mm[mask] = np.clip(np.rint(values), 1, 65535).astype(np.uint16)
    eroded = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    edge = mask & ~eroded
    vs, us = np.nonzero(edge)
    drop = rng.random(vs.shape[0]) < 0.3
    mm[vs[drop], us[drop]] = 0
    return mm
