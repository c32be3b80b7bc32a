"""Pose heatmap volumes (PoseC3D / EPAM-Net input): 2D keypoints -> per-joint Gaussian maps per frame.

Input: float32 keypoints [M, T, K, 3] = (x, y, score) in source-frame pixels (pixel centres at
integer coordinates), any joint layout; a keypoint is missing where x, y or score is NaN or
the score is <= 0. Output: float32 [K, T, H, W] (joints as channels), or [K + L, T, H, W]
with L limb channels appended, values in [0, 1].

Steps (defaults: PoseC3D, Duan et al. 2022, pyskl ``PoseCompact`` + ``GeneratePoseTarget``, as
used by EPAM-Net):

1. Crop: ONE square box around every valid keypoint of the clip (all persons and frames),
   each side enlarged by ``padding`` (0.25) about the centre, at least ``min_box_side`` pixels
   (pyskl's threshold 10), not clipped to the image (pyskl ``allow_imgpad``). A box may also be
   given, e.g. the RGB crop box via :func:`pixel_box_edges`. The box is continuous: its edges
   map onto the outer edges of the H x W heatmap, ``u = (x - x0) W / (x1 - x0) - 0.5``.
2. Joint maps: ``score * exp(-d^2 / (2 sigma^2))`` around each keypoint, ``sigma`` in heatmap
   pixels (EPAM 0.6), cut to the square window ``|du|, |dv| <= 3 sigma``; persons are combined
   with a maximum.
3. Limb maps (optional; pairs from a layout's tree, :func:`layout_limbs`): pyskl's line
   Gaussian ``min(score_a, score_b) exp(-d_seg^2 / (2 sigma^2))`` with ``d_seg`` the distance to
   the segment a-b, cut to the segment's bounding box grown by 3 sigma; a segment shorter than
   one pixel is drawn as the point map of its start (pyskl).

Deviations from pyskl: its windows are ``int(mu - 3 sigma) .. int(mu + 3 sigma)`` (asymmetric by
up to a pixel, values there < exp(-4.5) = 0.011); here the window is symmetric so that a
horizontal flip maps volumes exactly. Scores are clipped to [0, 1].

The implementation is vectorised over persons, joints and frames. A joint map is non-zero
only in its 3-sigma window, so the joint maps are computed as small window patches (the
Gaussian is separable: an outer product of two 1D profiles) scattered into the volume with a
maximum; limb maps are computed on the full grid, ``frame_chunk`` frames at a time to bound
memory. ``benchmarks/bench_heatmap_volume.py`` holds the per-joint, per-frame loop both are
checked against.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from actionfusion.modalities.image_boxes import Box
from actionfusion.modalities.skeleton.layouts import JointLayout, get_layout

HEATMAP_SIGMA = 0.6
"""Gaussian sigma in heatmap pixels (EPAM-Net / PoseC3D ``GeneratePoseTarget(sigma=0.6)``)."""
HEATMAP_SIZE = 56
"""Heatmap side (EPAM-Net pose input 17 x 48 x 56 x 56; PoseC3D resizes to 56 x 56)."""
BOX_PADDING = 0.25
"""Relative enlargement of the keypoint box (pyskl ``PoseCompact(padding=0.25)``)."""
MIN_BOX_SIDE = 10.0
"""Smallest box side in source pixels (pyskl ``PoseCompact(threshold=10)``)."""
WINDOW_SIGMAS = 3.0
"""Maps are cut at 3 sigma from the keypoint / segment (pyskl ``GeneratePoseTarget``)."""

FloatBox = tuple[float, float, float, float]
"""(x0, y0, x1, y1) box edges in source pixels (continuous; pixel i spans [i - 0.5, i + 0.5])."""


def _check_keypoints(keypoints: np.ndarray) -> np.ndarray:
    kp = np.asarray(keypoints, dtype=np.float32)
    if kp.ndim != 4 or kp.shape[-1] != 3:
        raise ValueError(f"expected keypoints [M, T, K, 3] (x, y, score), got shape {kp.shape}")
    return kp


def valid_keypoints(keypoints: np.ndarray) -> np.ndarray:
    """bool [M, T, K]: finite x, y and score, and score > 0."""
    kp = _check_keypoints(keypoints)
    return np.isfinite(kp).all(axis=-1) & (kp[..., 2] > 0)


def keypoint_box(keypoints: np.ndarray, padding: float = BOX_PADDING,
                 min_side: float = MIN_BOX_SIDE) -> Optional[FloatBox]:
    """The square box around all valid keypoints of a clip (every person and frame).

    Args:
        keypoints: float32 [M, T, K, 3] (x, y, score) in source pixels.
        padding: each side grows by the factor ``1 + padding`` about the centre.
        min_side: smallest side, source pixels.
    Returns:
        (x0, y0, x1, y1) edges with ``x1 - x0 == y1 - y0``, or None if no keypoint is valid.
    """
    if padding < 0 or min_side <= 0:
        raise ValueError(f"need padding >= 0 and min_side > 0, got {padding}, {min_side}")
    kp = _check_keypoints(keypoints)
    pts = kp[valid_keypoints(kp)][:, :2].astype(np.float64)
    if len(pts) == 0:
        return None
    (min_x, min_y), (max_x, max_y) = pts.min(axis=0), pts.max(axis=0)
    side = max(max(max_x - min_x, max_y - min_y) * (1 + padding), min_side)
    cx, cy = (min_x + max_x) / 2, (min_y + max_y) / 2
    return (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


def pixel_box_edges(box: Box) -> FloatBox:
    """Edges of an integer end-exclusive pixel box (e.g. the store's RGB crop box) for :func:`heatmap_volume`."""
    x0, y0, x1, y1 = box
    return (x0 - 0.5, y0 - 0.5, x1 - 0.5, y1 - 0.5)


def keypoints_to_heatmap(keypoints: np.ndarray, box: FloatBox, size_hw: tuple[int, int]) -> np.ndarray:
    """Map keypoints into heatmap pixels: box edges -> heatmap edges.

    Args:
        keypoints: float32 [M, T, K, 3] (x, y, score) in source pixels.
        box: (x0, y0, x1, y1) edges in source pixels.
        size_hw: heatmap (H, W).
    Returns:
        float32 [M, T, K, 3] (u, v, score) with ``u = (x - x0) W / (x1 - x0) - 0.5``.
    """
    kp = _check_keypoints(keypoints)
    x0, y0, x1, y1 = (float(v) for v in box)
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"empty box {box}")
    out = kp.copy()
    out[..., 0] = (kp[..., 0] - x0) * (size_hw[1] / (x1 - x0)) - 0.5
    out[..., 1] = (kp[..., 1] - y0) * (size_hw[0] / (y1 - y0)) - 0.5
    return out


def layout_limbs(layout: "str | JointLayout") -> tuple[tuple[int, int], ...]:
    """(child, parent) joint pairs of a layout's tree, one limb channel each (pyskl's skeleton edges)."""
    return get_layout(layout).edges()


def _joint_maps(uvw: np.ndarray, sigma: float, out: np.ndarray) -> None:
    """Draw [M, T, K, 3] heatmap-space keypoints with weights into ``out`` float32 [K, T, H, W] (C-contiguous).

    Each keypoint's map is non-zero only in its 3-sigma window, at most P x P pixels with
    ``P = floor(6 sigma) + 1``: the windows are computed as [M, T, K, P, P] patches (the
    Gaussian is separable: an outer product of two 1D profiles) and scattered with a
    maximum, one person at a time (windows of one person never share a pixel).
    """
    reach = WINDOW_SIGMAS * sigma
    num_persons, num_frames, num_joints = uvw.shape[:3]
    height, width = out.shape[2:]
    steps = np.arange(int(np.floor(2 * reach)) + 1, dtype=np.float32)  # [P]
    u, v, weight = uvw[..., 0], uvw[..., 1], uvw[..., 2]
    xs = np.ceil(u - reach)[..., None] + steps  # [M, T, K, P] window columns
    ys = np.ceil(v - reach)[..., None] + steps
    dx, dy = xs - u[..., None], ys - v[..., None]
    keep_x = (dx <= reach) & (xs >= 0) & (xs < width)
    keep_y = (dy <= reach) & (ys >= 0) & (ys < height) & (weight[..., None] > 0)
    prof_x = np.exp(dx * dx * np.float32(-0.5 / sigma**2))
    prof_y = np.exp(dy * dy * np.float32(-0.5 / sigma**2)) * weight[..., None]
    cols = np.clip(xs, -1, width).astype(np.intp)  # far-off windows are dropped by keep_x / keep_y
    rows = np.clip(ys, -1, height).astype(np.intp)
    flat = out.reshape(-1)  # a view: ``out`` is C-contiguous
    # offset of map (k, t) in ``flat``: [T, K]
    base = (np.arange(num_joints)[None, :] * num_frames + np.arange(num_frames)[:, None]) * (height * width)
    for m in range(num_persons):
        keep = keep_y[m][..., :, None] & keep_x[m][..., None, :]  # [T, K, P, P]
        index = (base[..., None, None] + rows[m][..., :, None] * width + cols[m][..., None, :])[keep]
        values = (prof_y[m][..., :, None] * prof_x[m][..., None, :])[keep]
        flat[index] = np.maximum(flat[index], values)


def _limb_maps(uvw: np.ndarray, limbs: np.ndarray, size_hw: tuple[int, int], sigma: float) -> np.ndarray:
    """[M, Tc, K, 3] heatmap-space keypoints, limbs int [L, 2] -> float32 [L, Tc, H, W] (max over M).

    The distance to segment a-b is the distance to ``a + t (b - a)`` with the projection
    ``t`` clamped to [0, 1] (pyskl's three cases: nearer a, nearer b, beside the segment).
    Terms that depend on x or y only are kept 1D ([..., 1, W] / [..., H, 1]).
    """
    start, end = uvw[:, :, limbs[:, 0]], uvw[:, :, limbs[:, 1]]  # [M, Tc, L, 3]
    sx, sy, sv = (start[..., i, None, None] for i in range(3))  # [M, Tc, L, 1, 1]
    ex, ey, ev = (end[..., i, None, None] for i in range(3))
    short = (ex - sx) ** 2 + (ey - sy) ** 2 < 1  # shorter than a pixel: the point map of the start
    dx, dy = np.where(short, 0, ex - sx), np.where(short, 0, ey - sy)
    inv_len2 = 1 / np.where(short, 1, dx * dx + dy * dy)
    gx = np.arange(size_hw[1], dtype=np.float32)[None, :] - sx  # [M, Tc, L, 1, W]
    gy = np.arange(size_hw[0], dtype=np.float32)[:, None] - sy  # [M, Tc, L, H, 1]
    t = np.clip(gx * (dx * inv_len2) + gy * (dy * inv_len2), 0, 1)  # [M, Tc, L, H, W]
    d2 = (gx - t * dx) ** 2 + (gy - t * dy) ** 2
    reach = WINDOW_SIGMAS * sigma
    inside_x = (gx >= np.minimum(dx, 0) - reach) & (gx <= np.maximum(dx, 0) + reach)
    inside_y = (gy >= np.minimum(dy, 0) - reach) & (gy <= np.maximum(dy, 0) + reach)
    both = np.minimum(sv, ev)
    value = np.where(both > 0, np.where(short, sv, both), np.float32(0))
    maps = np.exp(d2 * np.float32(-0.5 / sigma**2))
    maps *= (inside_x & inside_y) * value
    return np.transpose(maps.max(axis=0), (1, 0, 2, 3)).astype(np.float32)  # [Tc, L, H, W] -> [L, Tc, H, W]


def heatmap_volume(
    keypoints: np.ndarray,
    size: "int | tuple[int, int]" = HEATMAP_SIZE,
    sigma: float = HEATMAP_SIGMA,
    *,
    box: Optional[FloatBox] = None,
    padding: float = BOX_PADDING,
    min_box_side: float = MIN_BOX_SIDE,
    with_joints: bool = True,
    limbs: Optional[Sequence[tuple[int, int]]] = None,
    frame_chunk: int = 8,
) -> np.ndarray:
    """Per-joint (and optional per-limb) Gaussian heatmaps of a clip.

    Args:
        keypoints: float32 [M, T, K, 3] (x, y, score) in source pixels; NaN or score <= 0 = missing.
        size: heatmap side, or (H, W).
        sigma: Gaussian sigma in heatmap pixels.
        box: (x0, y0, x1, y1) crop edges in source pixels; None: :func:`keypoint_box` with
            ``padding`` and ``min_box_side``.
        with_joints: include the K joint channels.
        limbs: (a, b) joint pairs, one channel each after the joints (e.g. :func:`layout_limbs`).
        frame_chunk: frames of limb maps computed at once (they use the full grid: this
            bounds the temporary memory to a few arrays of M x L x frame_chunk x H x W floats).
    Returns:
        float32 [K + L, T, H, W] in [0, 1] (K only with joints, L only with limbs); all zero
        where a clip has no valid keypoint.
    """
    kp = _check_keypoints(keypoints)
    size_hw = (int(size), int(size)) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))
    if sigma <= 0 or frame_chunk < 1 or min(size_hw) < 1:
        raise ValueError(f"need sigma > 0, frame_chunk >= 1 and a positive size, got {sigma}, {frame_chunk}, {size}")
    limb_arr = np.asarray(limbs if limbs is not None else [], dtype=np.int64).reshape(-1, 2)
    num_kp = kp.shape[2]
    if limb_arr.size and (limb_arr.min() < 0 or limb_arr.max() >= num_kp):
        raise ValueError(f"limb joint ids must be in 0..{num_kp - 1}")
    if not with_joints and not len(limb_arr):
        raise ValueError("nothing to draw: with_joints=False and no limbs")
    channels = (num_kp if with_joints else 0) + len(limb_arr)
    num_frames = kp.shape[1]
    out = np.zeros((channels, num_frames) + size_hw, dtype=np.float32)
    if box is None:
        box = keypoint_box(kp, padding, min_box_side)
    if box is None or kp.shape[0] == 0:  # nobody in the clip
        return out
    uvw = keypoints_to_heatmap(kp, box, size_hw)
    valid = valid_keypoints(kp)
    uvw[~valid] = 0  # missing: weight 0, finite coordinates
    uvw[..., 2] = np.clip(uvw[..., 2], 0, 1)
    if with_joints:
        _joint_maps(uvw, sigma, out[:num_kp])
    if len(limb_arr):
        first_limb = num_kp if with_joints else 0
        for t0 in range(0, num_frames, frame_chunk):
            out[first_limb:, t0:t0 + frame_chunk] = _limb_maps(uvw[:, t0:t0 + frame_chunk], limb_arr, size_hw, sigma)
    return out


def flip_keypoints(keypoints: np.ndarray, layout: "str | JointLayout", image_width: float) -> np.ndarray:
    """Mirror keypoints left-right in an image ``image_width`` pixels wide and swap left/right joints.

    Args:
        keypoints: float32 [M, T, K, 3] (x, y, score); K must be the layout's joint count.
        layout: the joint layout (its ``mirror_pairs`` are swapped).
        image_width: width of the source frame; ``x -> image_width - 1 - x`` (pixel centres).
    Returns:
        float32 [M, T, K, 3]; the volume of the result equals :func:`flip_heatmap_volume` of the
        original's volume when the crop box follows the keypoints (or is mirrored with them).
    """
    kp = _check_keypoints(keypoints)
    lay = get_layout(layout)
    if kp.shape[2] != lay.num_joints:
        raise ValueError(f"layout {lay.name!r} has {lay.num_joints} joints, keypoints have {kp.shape[2]}")
    out = kp[:, :, lay.mirror_permutation()].copy()
    out[..., 0] = np.float32(image_width - 1) - out[..., 0]
    return out


def limb_mirror_permutation(limbs: Sequence[tuple[int, int]], layout: "str | JointLayout") -> np.ndarray:
    """int64 [L]: limb channel i of a mirrored clip is limb ``perm[i]`` of the original."""
    perm = get_layout(layout).mirror_permutation()
    index = {frozenset((int(a), int(b))): i for i, (a, b) in enumerate(limbs)}
    out = []
    for a, b in limbs:
        key = frozenset((int(perm[a]), int(perm[b])))
        if key not in index:
            raise ValueError(f"limb ({a}, {b}) has no mirror image ({perm[a]}, {perm[b]}) among the limbs")
        out.append(index[key])
    return np.asarray(out, dtype=np.int64)


def flip_heatmap_volume(
    volume: np.ndarray,
    layout: "str | JointLayout",
    *,
    with_joints: bool = True,
    limbs: Optional[Sequence[tuple[int, int]]] = None,
) -> np.ndarray:
    """Mirror a heatmap volume left-right and swap the left/right joint (and limb) channels.

    Args:
        volume: float32 [C, T, H, W] as made by :func:`heatmap_volume` with the same
            ``with_joints`` / ``limbs`` (C = K + L).
        layout: the joint layout of the keypoints.
    Returns:
        float32 [C, T, H, W], column w taken from W - 1 - w.
    """
    lay = get_layout(layout)
    parts = [lay.mirror_permutation()] if with_joints else []
    if limbs:
        parts.append(limb_mirror_permutation(limbs, lay) + (lay.num_joints if with_joints else 0))
    perm = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    if volume.ndim != 4 or volume.shape[0] != len(perm):
        raise ValueError(f"expected a volume [{len(perm)}, T, H, W] for layout {lay.name!r}, got shape {volume.shape}")
    return np.ascontiguousarray(volume[perm, :, :, ::-1])
