"""Geometric skeleton transforms on one sample ``x`` float32 [M, T, V, C] (zero = missing).

- :func:`center`: the CTR-GCN/MAMP ``seq_transformation.py`` translation.
- :func:`pre_normalize_3d`: pyskl ``PreNormalize3D`` (kennymckormick/pyskl
  ``pyskl/datasets/pipelines/pose_related.py``, itself from 2s-AGCN ``pre_normalization``).
- :func:`valid_crop_resize`: CTR-GCN ``feeders/tools.py`` ``valid_crop_resize`` (also MAMP's).
- :func:`random_rotation`: CTR-GCN ``feeders/tools.py`` ``random_rot`` (one rotation per clip).
- :func:`random_scale`: pyskl ``RandomScale`` (one factor per axis).
- :func:`mirror_flip`: negate camera x and swap left/right joints.

Every function returns a new float32 array and leaves ``x`` untouched. Random ones take a
``numpy.random.Generator``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .layouts import JointLayout, get_layout

CROP_MIN_FRAMES = 64
"""CTR-GCN ``valid_crop_resize``: a training crop is at least 64 frames (or the valid length)."""

PRENORM_CENTER_JOINT = 1
"""pyskl ``PreNormalize3D``: origin = joint 1 (0-based; NTU SpineMid) for 25-joint skeletons,
the last joint otherwise."""
PRENORM_ZAXIS = (0, 1)
"""pyskl ``PreNormalize3D`` ``zaxis``: SpineBase (0) -> SpineMid (1) is turned onto +z."""
PRENORM_XAXIS = (8, 4)
"""pyskl ``PreNormalize3D`` ``xaxis``: the vector ShoulderLeft (4) -> ShoulderRight (8), i.e.
``x[8] - x[4]``, is then turned onto +x."""


def _check(x: np.ndarray, min_channels: int = 1) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 4 or x.shape[-1] < min_channels:
        raise ValueError(f"expected a skeleton [M, T, V, C] with C >= {min_channels}, got shape {x.shape}")
    return x


def _present(x: np.ndarray) -> np.ndarray:
    """bool [..., V]: the joint has a non-zero coordinate."""
    return np.any(x != 0, axis=-1)


def center(x: np.ndarray, joint: "int | Sequence[int]" = 1) -> np.ndarray:
    """Subtract the origin of actor 1 in its first non-zero frame from every joint.

    Args:
        x: float [M, T, V, C]; actor 1 is ``x[0]``.
        joint: 0-based origin joint (1 = NTU SpineMid, the lineage's choice), or several joints
            whose mean (over those present in that frame) is the origin, e.g. the two hips of
            COCO-17 (:func:`.layouts.root_joints`).

    Returns:
        float32 [M, T, V, C]; missing joints (all-zero) stay zero. Unchanged copy if actor 1
        is absent throughout.
    """
    x = _check(x)
    frames = np.flatnonzero(np.any(x[0] != 0, axis=(1, 2))) if x.shape[1] else np.array([], dtype=int)
    if frames.size == 0:
        return x.copy()
    if np.isscalar(joint):
        origin = x[0, frames[0], int(joint)]
    else:
        points = x[0, frames[0], [int(j) for j in joint]]  # [J, C]
        present = np.any(points != 0, axis=-1)
        origin = points[present].mean(axis=0) if present.any() else np.zeros(x.shape[-1], dtype=x.dtype)
    return np.where(_present(x)[..., None], x - origin, 0.0).astype(np.float32)


def rotation_onto(v: np.ndarray, target: np.ndarray) -> np.ndarray:
    """float64 [3, 3] rotating ``v`` onto the direction of ``target`` about ``v x target``.

    pyskl's conventions: identity when either vector is (near) zero, when the angle is
    below 1e-6, or when the two are antiparallel (the cross product vanishes).
    """
    v, target = np.asarray(v, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if np.abs(v).sum() < 1e-6 or np.abs(target).sum() < 1e-6:
        return np.eye(3)
    angle = np.arccos(np.clip(np.dot(v / np.linalg.norm(v), target / np.linalg.norm(target)), -1.0, 1.0))
    axis = np.cross(v, target)
    if np.abs(axis).sum() < 1e-6 or abs(angle) < 1e-6:
        return np.eye(3)
    k = axis / np.linalg.norm(axis)
    cross = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(angle) * cross + (1.0 - np.cos(angle)) * cross @ cross  # Rodrigues


def pre_normalize_3d(x: np.ndarray, align_spine: bool = True, align_center: bool = True,
                     zaxis: Sequence[int] = PRENORM_ZAXIS, xaxis: Sequence[int] = PRENORM_XAXIS) -> np.ndarray:
    """pyskl's ``PreNormalize3D`` on one sample.

    Steps, as pyskl:
    1. The main actor is the one present (non-zero) in the most frames (ties: the earlier);
       it is moved to slot 0 (others keep their order) and only the frames where it is
       present are kept: **T may shrink**.
    2. ``align_center``: subtract joint :data:`PRENORM_CENTER_JOINT` (V = 25) or the last
       joint (other V) of the main actor in its first kept frame; missing joints stay zero.
    3. ``align_spine``: rotate so that ``x[zaxis[1]] - x[zaxis[0]]`` of the main actor's
       first frame points along +z, then so that ``x[xaxis[0]] - x[xaxis[1]]`` (after the
       first rotation) points along +x. The second rotation is about an axis that is not z
       in general, so the spine ends near, not exactly on, +z (pyskl does the same).

    Args:
        x: float [M, T, V, 3].

    Returns:
        float32 [M, T', V, 3], T' = frames where the main actor is present (all-zero input
        is returned unchanged).
    """
    x = _check(x)
    if x.shape[-1] != 3:
        raise ValueError(f"pre_normalize_3d needs 3D joints [M, T, V, 3], got shape {x.shape}")
    if not np.any(x != 0):
        return x.copy()
    frame_present = np.any(x != 0, axis=(2, 3))  # [M, T]
    main = int(np.argmax(frame_present.sum(axis=1)))
    order = [main] + [m for m in range(x.shape[0]) if m != main]
    x = x[order][:, frame_present[main]].astype(np.float64)
    if align_center:
        origin = x[0, 0, PRENORM_CENTER_JOINT if x.shape[2] == 25 else -1].copy()
        x = np.where(_present(x)[..., None], x - origin, 0.0)
    if align_spine:
        spine = x[0, 0, zaxis[1]] - x[0, 0, zaxis[0]]
        x = np.einsum("kd,mtvd->mtvk", rotation_onto(spine, [0.0, 0.0, 1.0]), x)
        shoulders = x[0, 0, xaxis[0]] - x[0, 0, xaxis[1]]
        x = np.einsum("kd,mtvd->mtvk", rotation_onto(shoulders, [1.0, 0.0, 0.0]), x)
    return x.astype(np.float32)


def valid_length(x: np.ndarray) -> int:
    """Number of frames with a non-zero coordinate in any actor (CTR-GCN's ``valid_frame_num``;
    like it, the valid frames are assumed to lead and any zero padding to trail)."""
    return int(np.count_nonzero(np.any(_check(x) != 0, axis=(0, 2, 3))))


def temporal_flip(x: np.ndarray) -> np.ndarray:
    """Play the valid frames backwards; trailing zero padding stays at the end.

    BRL's ``Temperal_Flip`` reverses the whole time axis, which would move the padding of a
    short sequence to the front; reversing only the valid frames keeps the layout that
    :func:`valid_length` and the crops assume. Applying it twice gives back ``x``.

    Args:
        x: float [M, T, V, C].

    Returns:
        float32 [M, T, V, C].
    """
    x = _check(x)
    out = x.astype(np.float32, copy=True)
    n = valid_length(x)
    out[:, :n] = x[:, :n][:, ::-1]
    return out


def resize_time(x: np.ndarray, out_len: int) -> np.ndarray:
    """Linear interpolation along T to ``out_len`` frames, sampling like
    ``F.interpolate(mode='bilinear', align_corners=False)`` along time (CTR-GCN's resize).

    Args:
        x: float [M, T, V, C], T >= 1.

    Returns:
        float32 [M, out_len, V, C].
    """
    t = x.shape[1]
    src = np.maximum((np.arange(out_len) + 0.5) * (t / out_len) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), t - 1)
    i1 = np.minimum(i0 + 1, t - 1)
    w = (src - i0)[None, :, None, None]
    return ((1.0 - w) * x[:, i0] + w * x[:, i1]).astype(np.float32)


def valid_crop_resize(x: np.ndarray, out_len: int, p_interval: Sequence[float] = (0.5, 1.0),
                      rng: "np.random.Generator | None" = None, min_len: int = CROP_MIN_FRAMES) -> np.ndarray:
    """CTR-GCN's valid-crop-resize.

    With L = :func:`valid_length` (frames 0..L-1):
    - one value ``p_interval = (p,)`` (test): centre crop ``[b, L - b)``, ``b = int((1 - p) L / 2)``;
    - two values ``(p0, p1)`` (train): ``p ~ U(p0, p1)``, crop length
      ``min(max(floor(L p), min_len), L)`` at a uniform random offset.
    The crop is then resized to ``out_len`` frames by :func:`resize_time`.

    Args:
        x: float [M, T, V, C].
        rng: required for two-value ``p_interval``.

    Returns:
        float32 [M, out_len, V, C] (all zero if no frame is valid).
    """
    x = _check(x)
    n = valid_length(x)
    if n == 0:
        return np.zeros((x.shape[0], out_len) + x.shape[2:], dtype=np.float32)
    if len(p_interval) == 1:
        bias = int((1 - p_interval[0]) * n / 2)
        crop = x[:, bias:n - bias]
    elif len(p_interval) == 2:
        if rng is None:
            raise ValueError("valid_crop_resize with a (p0, p1) interval needs an rng")
        p = rng.uniform(p_interval[0], p_interval[1])
        length = min(max(int(np.floor(n * p)), min_len), n)
        bias = int(rng.integers(0, n - length + 1))
        crop = x[:, bias:bias + length]
    else:
        raise ValueError(f"p_interval must hold 1 or 2 values, not {tuple(p_interval)}")
    if crop.shape[1] == 0:  # p close to 0 in test mode
        crop = x[:, n // 2:n // 2 + 1]
    return resize_time(crop, out_len)


def rotation_xyz(angles: Sequence[float]) -> np.ndarray:
    """float64 [3, 3] = Rz Ry Rx of CTR-GCN ``_rot`` (and pyskl ``RandomRot._rot3d``) for angles
    (a_x, a_y, a_z) in radians; applied as ``x' = R x``."""
    (cx, cy, cz), (sx, sy, sz) = np.cos(angles), np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, sx], [0, -sx, cx]])
    ry = np.array([[cy, 0, -sy], [0, 1, 0], [sy, 0, cy]])
    rz = np.array([[cz, sz, 0], [-sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def random_rotation(x: np.ndarray, max_angle: float = 0.3, rng: "np.random.Generator | None" = None) -> np.ndarray:
    """Rotate the whole clip by x/y/z angles ~ U(-max_angle, max_angle) rad (one draw per clip).

    Args:
        x: float [M, T, V, 3].

    Returns:
        float32 [M, T, V, 3]; missing joints stay zero.
    """
    x = _check(x, 3)
    if x.shape[-1] != 3:
        raise ValueError(f"random_rotation needs 3D joints [M, T, V, 3], got shape {x.shape}")
    rng = np.random.default_rng() if rng is None else rng
    rot = rotation_xyz(rng.uniform(-max_angle, max_angle, size=3))
    return np.einsum("kd,mtvd->mtvk", rot, x).astype(np.float32)


def random_scale(x: np.ndarray, scale: float = 0.1, rng: "np.random.Generator | None" = None) -> np.ndarray:
    """Multiply each coordinate axis c by ``1 + U(-scale, scale)`` (pyskl ``RandomScale``).

    Args:
        x: float [M, T, V, C].

    Returns:
        float32 [M, T, V, C].
    """
    x = _check(x)
    rng = np.random.default_rng() if rng is None else rng
    factors = 1.0 + rng.uniform(-1.0, 1.0, size=x.shape[-1]) * scale
    return (x * factors).astype(np.float32)


def swap_left_right(x: np.ndarray, layout: "str | JointLayout") -> np.ndarray:
    """Swap every left joint with its right twin (the layout's mirror permutation); the
    coordinates are not mirrored. Applying it twice gives back ``x``.

    Args:
        x: float [M, T, V, C], V = the layout's joint count.

    Returns:
        float32 [M, T, V, C].
    """
    x = _check(x)
    lay = get_layout(layout)
    if x.shape[2] != lay.num_joints:
        raise ValueError(f"layout {lay.name!r} has {lay.num_joints} joints, x has {x.shape[2]}")
    return x[:, :, lay.mirror_permutation()].copy()


def mirror_flip(x: np.ndarray, layout: "str | JointLayout") -> np.ndarray:
    """Mirror horizontally: negate channel 0 (camera x) and swap left/right joints.

    Use on centred coordinates (camera x is symmetric about 0). Applying it twice gives
    back ``x``.

    Args:
        x: float [M, T, V, C], V = the layout's joint count.

    Returns:
        float32 [M, T, V, C].
    """
    out = swap_left_right(x, layout)
    out[..., 0] = 0.0 - out[..., 0]  # 0 - 0 is +0: missing joints stay exactly zero
    return out
