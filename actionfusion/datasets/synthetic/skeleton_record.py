"""Fill every field of an NTU ``.skeleton`` record from a synthetic sensor readout.

- x, y, z: the noisy camera-space joints; depthX/Y their projection with the depth
  intrinsics :data:`KINECT_V2_DEPTH_3DV`; colorX/Y their projection with the 1920x1080
  colour camera :data:`KINECT_V2_COLOR_APPROX` (placed at the depth camera's origin).
- orientation W, X, Y, Z: unit quaternions of the bone frames (Y along the bone to the
  child, Z towards the torso's front); 0 0 0 0 at the leaf joints, as in the real files.
- body info: clipedEdges 0, hand confidences and states, isResticted 0, leanX/leanY from
  the torso lean, trackingState 2 (Tracked).
"""

from __future__ import annotations

import numpy as np

from ...geometry import KINECT_V2_COLOR_APPROX, KINECT_V2_DEPTH_3DV, quaternion_from_matrix
from ..ntu.skeleton_file import SkeletonFile
from .kinect_body import LEAF_JOINTS, joint_frames
from .noise import SensorSkeleton

BODY_ID_BASE = 72057594037927936
"""2**56: real NTU body IDs are this plus a small tracking counter (e.g. 72057594037944738)."""

_HAND_STATES = np.array([1, 2, 3, 4])  # Kinect v2 HandState: NotTracked, Open, Closed, Lasso
_HAND_STATE_P = np.array([0.35, 0.3, 0.3, 0.05])


def draw_body_ids(rng: np.random.Generator, num_bodies: int) -> np.ndarray:
    """int64 [B] distinct IDs near 2**56, increasing like the Kinect's tracking counter."""
    first = BODY_ID_BASE + int(rng.integers(1_000, 40_000))
    steps = rng.integers(1, 9, size=max(num_bodies - 1, 0))
    return np.array([first] + [first + int(s) for s in np.cumsum(steps)], dtype=np.int64)


def _hand_track(rng: np.random.Generator, t: int) -> tuple[np.ndarray, np.ndarray]:
    """(confidence [T], state [T]): a sticky random HandState sequence."""
    states = np.empty(t)
    current = rng.choice(_HAND_STATES, p=_HAND_STATE_P)
    switches = rng.random(t) < 0.06
    draws = rng.choice(_HAND_STATES, size=t, p=_HAND_STATE_P)
    for i in range(t):
        if switches[i]:
            current = draws[i]
        states[i] = current
    confidence = np.where(states == 1, 0.0, (rng.random(t) < 0.85).astype(float))
    return confidence, states


def build_skeleton_file(rng: np.random.Generator, sensor: SensorSkeleton, true_joints: np.ndarray,
                        forward: np.ndarray, lean: np.ndarray) -> SkeletonFile:
    """Assemble the record of one camera.

    Args:
        rng: the sample's generator.
        sensor: noisy joints [B, T, 25, 3], tracking [B, T, 25], presence [B, T].
        true_joints: float [B, T, 25, 3] noise-free camera-space joints (for orientations).
        forward: float [B, T, 3] torso forward axes, camera space.
        lean: float [B, T, 3] torso angles (forward, side, twist), radians.
    Returns:
        The :class:`SkeletonFile` (joints float32 [B, T, 25, 12], NaN where absent).
    """
    b, t = sensor.present.shape
    xyz = sensor.joints
    joints = np.full((b, t, 25, 12), np.nan, np.float32)
    joints[..., 0:3] = xyz
    joints[..., 3:5] = KINECT_V2_DEPTH_3DV.project(xyz)
    joints[..., 5:7] = KINECT_V2_COLOR_APPROX.project(xyz)
    quats = np.zeros((b, t, 25, 4))
    for body in range(b):
        frames = joint_frames(true_joints[body], forward[body])
        q = quaternion_from_matrix(np.where(np.abs(frames).sum(axis=(-1, -2), keepdims=True) > 0,
                                            frames, np.eye(3)))
        q[:, list(LEAF_JOINTS)] = 0.0
        quats[body] = q
    joints[..., 7:11] = quats
    joints[..., 11] = sensor.tracking

    info = np.full((b, t, 9), np.nan, np.float32)
    info[..., 0] = 0  # clipedEdges
    for body in range(b):
        info[body, :, 1], info[body, :, 2] = _hand_track(rng, t)
        info[body, :, 3], info[body, :, 4] = _hand_track(rng, t)
    info[..., 5] = 0  # isResticted
    info[..., 6] = np.clip(-lean[..., 1] / 0.5 + rng.normal(0, 0.03, (b, t)), -1, 1)  # leanX
    info[..., 7] = np.clip(lean[..., 0] / 0.5 + rng.normal(0, 0.03, (b, t)), -1, 1)  # leanY
    info[..., 8] = 2  # trackingState

    present = sensor.present
    order = np.where(present, np.cumsum(present, axis=0) - 1, -1).astype(np.int16)
    joints[~present] = np.nan
    info[~present] = np.nan
    return SkeletonFile(num_frames=t, body_ids=draw_body_ids(rng, b), joints=joints,
                        body_info=info, body_order=order)
