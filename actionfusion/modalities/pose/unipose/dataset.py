"""Per-frame UniPose inputs, the simulated 2D detector, the naive baseline, and the torch datasets.

A :class:`SequenceRecord` holds one sample's kept frames as arrays (built by
``actionfusion.pipeline.pose3d`` from an NTU-format root):

- ``points`` float32 [T, N, 3]: masked depth back-projected with the depth intrinsics, N points;
- ``det`` float32 [T, 17, 3]: COCO-17 2D detections (u, v, score) in depth pixels;
- ``depth_crop`` float32 [T, 1, S, S] and optionally ``rgb_crop`` float32 [T, 3, S, S]: the
  square crops around the detections (:func:`detection_box`) used by the lifting networks;
- ``box`` float32 [T, 4] and ``ref_depth`` float32 [T]: each crop's depth-pixel box and
  reference depth in metres (median valid depth in the box);
- ``surface`` float32 [T, 17, 2]: body-volume depth targets and weights
  (:func:`surface_thickness_targets`), a weak cue from depth and detections;
- ``reference`` float32 [T, 17, 3]: the held-out 3D reference (Kinect skeleton in COCO-17, NaN
  at the face joints, which have no Kinect twin: :func:`kinect_reference_coco17`).
  Only evaluation reads it: the training datasets below never put it into an item, and
  :func:`assert_no_reference` checks batches for it.

Simulated detector (synthetic data): the rendered skeleton's depth-image projections
(depthX/depthY) converted from Kinect-25 to COCO-17 (face joints = the Kinect head, the nearest
joint), then, per joint, Gaussian pixel noise, misses (score and coordinates 0), outliers (a
uniform displacement of up to ``outlier_pixels``) and, per frame, left/right swaps of all COCO
pairs; scores of detected joints are uniform in ``score_range``, uninformative about errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ....geometry import CameraIntrinsics
from ...skeleton.layouts import convert_layout, get_layout

NUM_JOINTS = 17
LAYOUT = "coco17"
DEPTH_CROP_RANGE_M = 0.75
"""Depth crops hold clip((z - ref) / 0.75 m, -1, 1); background pixels hold 1 (far)."""

REFERENCE_KEYS = frozenset({"reference", "reference_3d", "gt", "gt_3d", "joints_3d"})
"""Keys that would carry the held-out 3D reference; no training item may have one."""


@dataclass
class SequenceRecord:
    """One sample's kept frames (module docstring for the fields)."""

    name: str
    frame_indices: np.ndarray
    points: np.ndarray
    det: np.ndarray
    depth_crop: np.ndarray
    box: np.ndarray
    ref_depth: np.ndarray
    reference: np.ndarray
    surface: np.ndarray
    rgb_crop: Optional[np.ndarray] = None

    @property
    def num_frames(self) -> int:
        """T."""
        return int(self.points.shape[0])


NO_KINECT_TWIN = (0, 1, 2, 3, 4)
"""COCO-17 joints with no Kinect-25 twin: nose, eyes, ears (Kinect's "head" is the head centre).
The evaluation reference holds NaN there, so no copied face joint is scored."""


def kinect_reference_coco17(xyz: np.ndarray) -> np.ndarray:
    """xyz float [..., 25, 3] Kinect joints (metres) -> float32 [..., 17, 3] COCO-17 evaluation reference,
    NaN at :data:`NO_KINECT_TWIN` and where the Kinect joint is missing (all zero)."""
    ref = convert_layout(np.nan_to_num(np.asarray(xyz, np.float32)), "ntu25", LAYOUT, missing="nan")
    ref[..., list(NO_KINECT_TWIN), :] = np.nan
    ref[~np.any(ref != 0, axis=-1)] = np.nan
    return ref


def assert_no_reference(item: dict) -> None:
    """Raise AssertionError if a training item or batch carries the held-out 3D reference."""
    leaked = REFERENCE_KEYS & set(item)
    assert not leaked, f"training data must never see the 3D reference, found keys {sorted(leaked)}"


def simulate_detections(
    depth_xy: np.ndarray,
    rng: np.random.Generator,
    pixel_sigma: float = 2.0,
    miss_prob: float = 0.05,
    swap_prob: float = 0.03,
    outlier_prob: float = 0.04,
    outlier_pixels: float = 25.0,
    score_range: tuple[float, float] = (0.5, 1.0),
) -> np.ndarray:
    """Detector-like COCO-17 2D poses from Kinect-25 depth-image projections.

    Args:
        depth_xy: float [T, 25, 2] depthX/depthY of one body.
        rng: noise generator.
    Returns:
        float32 [T, 17, 3] (u, v, score); missed joints are all zero.
    """
    xy = convert_layout(depth_xy, "ntu25", LAYOUT, missing="nearest").astype(np.float64)  # [T, 17, 2]
    t, j, _ = xy.shape
    xy = xy + rng.normal(0.0, pixel_sigma, size=xy.shape)
    outlier = rng.random((t, j)) < outlier_prob
    xy[outlier] += rng.uniform(-outlier_pixels, outlier_pixels, size=(int(outlier.sum()), 2))
    swap = rng.random(t) < swap_prob
    if swap.any():
        perm = np.arange(j)
        for a, b in get_layout(LAYOUT).mirror_pairs:
            perm[a], perm[b] = b, a
        xy[swap] = xy[swap][:, perm]
    score = rng.uniform(score_range[0], score_range[1], size=(t, j))
    miss = rng.random((t, j)) < miss_prob
    out = np.concatenate([xy, score[..., None]], axis=-1)
    out[miss] = 0.0
    return out.astype(np.float32)


def detection_box(det: np.ndarray, padding: float, image_hw: tuple[int, int], min_side: float = 32.0) -> np.ndarray:
    """Square box float32 [4] (x0, y0, x1, y1) around the detected joints of det float [17, 3].

    The box's side is the larger extent times (1 + padding), at least ``min_side``; it is not
    clipped to the image (crops pad outside with background). With no detection, the image
    centre is used.
    """
    valid = det[:, 2] > 0
    if valid.any():
        lo, hi = det[valid, :2].min(0), det[valid, :2].max(0)
    else:
        lo = hi = np.array([image_hw[1] / 2.0, image_hw[0] / 2.0])
    centre = (lo + hi) / 2.0
    side = max(float((hi - lo).max()) * (1.0 + padding), min_side)
    half = side / 2.0
    return np.array([centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half], np.float32)


def _crop_resize(image: np.ndarray, box: np.ndarray, size: int, interpolation: int, fill: float) -> np.ndarray:
    """Crop ``image`` [H, W] or [H, W, C] to ``box`` with an affine warp to size x size."""
    x0, y0, x1, y1 = (float(b) for b in box)
    sx, sy = size / (x1 - x0), size / (y1 - y0)
    m = np.array([[sx, 0.0, -x0 * sx], [0.0, sy, -y0 * sy]], dtype=np.float64)
    return cv2.warpAffine(image, m, (size, size), flags=interpolation, borderMode=cv2.BORDER_CONSTANT, borderValue=fill)


def window_depth_m(depth_mm: np.ndarray, u: float, v: float, window: int) -> float:
    """Depth (metres) at pixel (u, v) if valid, else the median valid depth of a window x window
    neighbourhood; NaN when none is valid or the pixel is outside the image."""
    h, w = depth_mm.shape
    iu, iv = int(round(u)), int(round(v))
    if not (0 <= iu < w and 0 <= iv < h):
        return float("nan")
    if depth_mm[iv, iu] > 0:
        return float(depth_mm[iv, iu]) / 1000.0
    r = window // 2
    patch = depth_mm[max(iv - r, 0): iv + r + 1, max(iu - r, 0): iu + r + 1]
    valid = patch[patch > 0]
    return float(np.median(valid)) / 1000.0 if valid.size else float("nan")


def _run_length(line: np.ndarray, i: int, z_mm: float, tol_mm: float) -> int:
    """Length of the run of pixels around index i of a 1D depth line within tol of z_mm (0 = invalid)."""
    ok = (line > 0) & (np.abs(line.astype(np.float64) - z_mm) < tol_mm)
    if not ok[i]:
        return 0
    lo = i
    while lo > 0 and ok[lo - 1]:
        lo -= 1
    hi = i
    while hi < len(line) - 1 and ok[hi + 1]:
        hi += 1
    return hi - lo + 1


def surface_thickness_targets(det: np.ndarray, depth_mm: np.ndarray, intrinsics: CameraIntrinsics, window: int,
                              max_radius_m: float = 0.12, tol_m: float = 0.25) -> np.ndarray:
    """Depth targets from the body-volume prior: a joint lies behind the visible surface at its
    detection by about the local half-thickness of the body, taken as half the silhouette width
    (the shorter of the horizontal and vertical runs of similar depth through the pixel; limbs
    and torso are roughly as thick as they are wide), capped at ``max_radius_m``.

    Reconstruction (not in C3P): UniPose's "cross-modality interaction" between the depth map
    and the 2D detections, as a weak depth cue. No 3D label is involved.

    Args:
        det: float [17, 3] (u, v, score) depth pixels.
        depth_mm: uint16 [H, W] masked depth.
    Returns:
        float32 [17, 2]: (z target in metres, weight); weight 0 where the joint is missed or
        has no valid depth, else the detection score.
    """
    out = np.zeros((det.shape[0], 2), np.float32)
    h, w = depth_mm.shape
    for j, (u, v, s) in enumerate(det):
        if s <= 0:
            continue
        z = window_depth_m(depth_mm, u, v, window)
        if not np.isfinite(z):
            continue
        iu, iv = int(round(u)), int(round(v))
        if depth_mm[iv, iu] == 0 or abs(depth_mm[iv, iu] / 1000.0 - z) > tol_m:
            radius = max_radius_m / 2.0  # off the silhouette: no width measurable
        else:
            wh = _run_length(depth_mm[iv], iu, z * 1000.0, tol_m * 1000.0)
            wv = _run_length(depth_mm[:, iu], iv, z * 1000.0, tol_m * 1000.0)
            radius = min(0.5 * min(wh, wv) * z / intrinsics.fx, max_radius_m)
        out[j] = (z + radius, s)
    return out


def crop_reference_depth(depth_mm: np.ndarray, box: np.ndarray) -> float:
    """Median valid depth (metres) inside the box of a uint16 [H, W] map; 3.0 m when none."""
    h, w = depth_mm.shape
    x0, y0 = max(int(box[0]), 0), max(int(box[1]), 0)
    x1, y1 = min(int(np.ceil(box[2])), w), min(int(np.ceil(box[3])), h)
    patch = depth_mm[y0:y1, x0:x1]
    valid = patch[patch > 0]
    return float(np.median(valid)) / 1000.0 if valid.size else 3.0


def depth_crop(depth_mm: np.ndarray, box: np.ndarray, size: int, ref_depth_m: float) -> np.ndarray:
    """float32 [1, S, S] normalised depth crop (see :data:`DEPTH_CROP_RANGE_M`) of uint16 [H, W] mm."""
    crop = _crop_resize(depth_mm.astype(np.float32), box, size, cv2.INTER_NEAREST, 0.0)
    norm = np.clip((crop / 1000.0 - ref_depth_m) / DEPTH_CROP_RANGE_M, -1.0, 1.0)
    norm[crop <= 0] = 1.0
    return norm[None].astype(np.float32)


def depth_box_to_color(box: np.ndarray, depth: CameraIntrinsics, color: CameraIntrinsics) -> np.ndarray:
    """Map a depth-pixel box float [4] to colour pixels, for a colour camera at the depth camera's
    optical centre with the same orientation (true of the synthetic set): pixels map affinely,
    u_c = cx_c + fx_c (u_d - cx_d) / fx_d, and a box's relative positions are preserved."""
    x = color.cx + color.fx * (box[[0, 2]] - depth.cx) / depth.fx
    y = color.cy + color.fy * (box[[1, 3]] - depth.cy) / depth.fy
    return np.array([x[0], y[0], x[1], y[1]], np.float32)


def rgb_crop(frame: np.ndarray, box_color: np.ndarray, size: int) -> np.ndarray:
    """float32 [3, S, S] crop in [0, 1] of a uint8 [H, W, 3] RGB frame (box in its pixels)."""
    crop = _crop_resize(frame, box_color, size, cv2.INTER_AREA, 0.0)
    return (crop.astype(np.float32) / 255.0).transpose(2, 0, 1).copy()


def naive_lift(det: np.ndarray, depth_mm: np.ndarray, intrinsics: CameraIntrinsics, window: int) -> np.ndarray:
    """The naive baseline: each 2D detection lifted onto the depth surface.

    A joint's depth is the depth at its pixel, or the median valid depth of a window around it
    (:func:`window_depth_m`); it is back-projected along the detection's ray. Joints that are
    missed or find no valid depth take the mean of the frame's lifted joints (the cloud's
    median point when none lifts).

    Args:
        det: float [17, 3] (u, v, score) depth pixels.
        depth_mm: uint16 [H, W] masked depth.
    Returns:
        float32 [17, 3] metres.
    """
    out = np.full((det.shape[0], 3), np.nan)
    for j, (u, v, s) in enumerate(det):
        if s <= 0:
            continue
        z = window_depth_m(depth_mm, u, v, window)
        if np.isfinite(z):
            out[j] = intrinsics.backproject(u, v, z)
    ok = np.isfinite(out[:, 0])
    if ok.any():
        fill = out[ok].mean(0)
    else:
        rows, cols = np.nonzero(depth_mm)
        fill = (intrinsics.backproject(np.median(cols), np.median(rows), np.median(depth_mm[rows, cols]) / 1000.0)
                if rows.size else np.array([0.0, 0.0, 3.0]))
    out[~ok] = fill
    return out.astype(np.float32)


def pose_to_crop(pose: np.ndarray, box: np.ndarray, ref_depth: np.ndarray, size: int, depth_scale: float,
                 intrinsics: CameraIntrinsics) -> tuple[np.ndarray, np.ndarray]:
    """3D poses float [T, J, 3] -> crop targets: xy float32 [T, J, 2] crop pixels, z float32 [T, J]
    = (Z - ref_depth) * depth_scale, given boxes float [T, 4] and ref_depth float [T]."""
    uv = intrinsics.project(pose)  # [T, J, 2]
    side = (box[:, 2] - box[:, 0])[:, None, None]
    xy = (uv - box[:, None, :2]) * size / side
    z = (pose[..., 2] - ref_depth[:, None]) * depth_scale
    return xy.astype(np.float32), z.astype(np.float32)


def crop_to_pose(xy: np.ndarray, z: np.ndarray, box: np.ndarray, ref_depth: np.ndarray, size: int,
                 depth_scale: float, intrinsics: CameraIntrinsics) -> np.ndarray:
    """Inverse of :func:`pose_to_crop`: float [T, J, 2] and [T, J] -> float32 [T, J, 3] metres."""
    side = (box[:, 2] - box[:, 0])[:, None, None]
    uv = xy * side / size + box[:, None, :2]
    zz = z / depth_scale + ref_depth[:, None]
    return intrinsics.backproject(uv[..., 0], uv[..., 1], zz).astype(np.float32)


def clip_starts(num_frames: int, clip_len: int) -> list[int]:
    """Start frames of half-overlapping clips of ``clip_len`` covering a sequence (none if too short)."""
    if num_frames < clip_len:
        return []
    step = max(clip_len // 2, 1)
    starts = list(range(0, num_frames - clip_len + 1, step))
    if starts[-1] != num_frames - clip_len:
        starts.append(num_frames - clip_len)
    return starts


class PointClipDataset(Dataset):
    """Stage-1 items: clips of T consecutive kept frames; points and detections only.

    Item: ``{"points": float [T, N, 3], "det": float [T, 17, 3], "surface": float [T, 17, 2]}``
    (never the 3D reference).
    """

    def __init__(self, records: Sequence[SequenceRecord], clip_len: int) -> None:
        self.records = list(records)
        self.clip_len = clip_len
        self.index = [(r, s) for r, rec in enumerate(self.records) for s in clip_starts(rec.num_frames, clip_len)]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        r, s = self.index[i]
        rec = self.records[r]
        sl = slice(s, s + self.clip_len)
        item = {"points": torch.from_numpy(rec.points[sl]), "det": torch.from_numpy(rec.det[sl]),
                "surface": torch.from_numpy(rec.surface[sl])}
        assert_no_reference(item)
        return item


class LiftFrameDataset(Dataset):
    """Stage-2 items: single frames with a crop and pseudo-label targets from the point network.

    Args:
        records: the sequences.
        pseudo_xy, pseudo_z: per record float [T, 17, 2] / [T, 17] crop targets made from the
            point network's predictions with :func:`pose_to_crop`.
        modality: "depth" or "rgb".
    Item: ``{"crop": float [C, S, S], "xy": float [17, 2], "z": float [17]}``.
    """

    def __init__(self, records: Sequence[SequenceRecord], pseudo_xy: Sequence[np.ndarray],
                 pseudo_z: Sequence[np.ndarray], modality: str) -> None:
        if modality not in ("depth", "rgb"):
            raise ValueError(f"modality must be 'depth' or 'rgb', got {modality!r}")
        if modality == "rgb" and any(r.rgb_crop is None for r in records):
            raise ValueError("rgb lifting needs records with rgb_crop (data.use_rgb: true)")
        self.records, self.xy, self.z, self.modality = list(records), list(pseudo_xy), list(pseudo_z), modality
        self.index = [(r, t) for r, rec in enumerate(self.records) for t in range(rec.num_frames)]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        r, t = self.index[i]
        rec = self.records[r]
        crop = rec.depth_crop[t] if self.modality == "depth" else rec.rgb_crop[t]
        item = {"crop": torch.from_numpy(crop), "xy": torch.from_numpy(self.xy[r][t]),
                "z": torch.from_numpy(self.z[r][t])}
        assert_no_reference(item)
        return item
