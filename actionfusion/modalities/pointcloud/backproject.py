"""Depth maps to point clouds in Kinect v2 camera space.

Pixels are lifted with :meth:`actionfusion.geometry.CameraIntrinsics.backproject`
(x = (u - cx) z / fx, y = (cy - v) z / fy, z = depth), so points share the skeleton's
frame: metres, x to image right, y up, z away from the camera. Pixel ``(u, v)`` is the
column and row index, the convention the skeleton's depthX/depthY follow.

Masked NTU depth is already zero outside the performer; full depth needs the background
removed first, e.g. with :func:`remove_background` from the frame's skeleton.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from actionfusion.geometry import KINECT_V2_DEPTH_3DV, CameraIntrinsics

Box = tuple[int, int, int, int]
"""(x0, y0, x1, y1) in depth pixels, end exclusive."""


def depth_to_points(
    depth_mm: np.ndarray,
    intrinsics: CameraIntrinsics = KINECT_V2_DEPTH_3DV,
    mask: Optional[np.ndarray] = None,
    min_mm: int = 1,
    max_mm: int = 8000,
    roi: Optional[Box] = None,
) -> np.ndarray:
    """Back-project the valid pixels of one depth map.

    A pixel is kept when ``min_mm <= depth <= max_mm`` (so 0, background, always goes),
    it lies inside ``roi`` if given, and ``mask`` is true there if given.

    Args:
        depth_mm: uint16 (or integer) [H, W] depth in millimetres.
        intrinsics: depth camera model; default the 3DV-PointNet++ Kinect v2 values.
        mask: optional bool [H, W], true where pixels may be kept.
        min_mm, max_mm: valid depth range in millimetres.
        roi: optional (x0, y0, x1, y1) box; pixels outside it are dropped.
    Returns:
        float32 [P, 3] points (x, y, z) in metres, in row-major pixel order.
    """
    depth = np.asarray(depth_mm)
    if depth.ndim != 2:
        raise ValueError(f"depth_mm must be [H, W], got shape {depth.shape}")
    if mask is not None and mask.shape != depth.shape:
        raise ValueError(f"mask shape {mask.shape} differs from depth shape {depth.shape}")
    x0, y0 = 0, 0
    if roi is not None:
        x0, y0 = max(int(roi[0]), 0), max(int(roi[1]), 0)
        x1, y1 = min(int(roi[2]), depth.shape[1]), min(int(roi[3]), depth.shape[0])
        depth = depth[y0:y1, x0:x1]
        mask = None if mask is None else mask[y0:y1, x0:x1]
    keep = (depth >= min_mm) & (depth <= max_mm)
    if mask is not None:
        keep &= mask.astype(bool)
    rows, cols = np.nonzero(keep)
    z_m = depth[rows, cols].astype(np.float64) / 1000.0
    points = intrinsics.backproject(cols + x0, rows + y0, z_m)
    return points.astype(np.float32).reshape(-1, 3)


def remove_background(
    depth_mm: np.ndarray,
    skeleton_xyz_depth_xy: np.ndarray,
    margin_m: float = 0.3,
    intrinsics: CameraIntrinsics = KINECT_V2_DEPTH_3DV,
) -> np.ndarray:
    """Zero every pixel of a full depth map that cannot belong to the skeleton's bodies.

    A pixel is kept when it lies inside the joints' depth-image box, enlarged on each side by
    ``margin_m`` converted to pixels at the nearest joint's depth (``margin_m * fx / z_min``),
    and its depth is within the joints' z range widened by ``margin_m`` on both ends.

    Args:
        depth_mm: uint16 [H, W] full depth in millimetres.
        skeleton_xyz_depth_xy: [..., 5] joints as (x, y, z, depthX, depthY), i.e. the first five
            fields of NTU's joint rows (``SkeletonFile.joints[..., :5]`` for one frame or several);
            NaN marks absent joints.
        margin_m: margin in metres around the body.
        intrinsics: used to convert the margin to pixels.
    Returns:
        uint16 [H, W] copy of ``depth_mm`` with the background set to 0; all zeros if no joint is finite.
    """
    depth = np.asarray(depth_mm)
    joints = np.asarray(skeleton_xyz_depth_xy, dtype=np.float64).reshape(-1, 5)
    joints = joints[np.isfinite(joints).all(axis=1) & (joints[:, 2] > 0)]
    out = np.zeros_like(depth)
    if len(joints) == 0:
        return out
    z_min, z_max = joints[:, 2].min(), joints[:, 2].max()
    margin_px = margin_m * max(intrinsics.fx, intrinsics.fy) / z_min
    x0 = max(int(math.floor(joints[:, 3].min() - margin_px)), 0)
    y0 = max(int(math.floor(joints[:, 4].min() - margin_px)), 0)
    x1 = min(int(math.ceil(joints[:, 3].max() + margin_px)) + 1, depth.shape[1])
    y1 = min(int(math.ceil(joints[:, 4].max() + margin_px)) + 1, depth.shape[0])
    if x1 <= x0 or y1 <= y0:
        return out
    near_mm, far_mm = (z_min - margin_m) * 1000.0, (z_max + margin_m) * 1000.0
    window = depth[y0:y1, x0:x1]
    keep = (window >= near_mm) & (window <= far_mm) & (window > 0)
    out[y0:y1, x0:x1] = np.where(keep, window, 0)
    return out
