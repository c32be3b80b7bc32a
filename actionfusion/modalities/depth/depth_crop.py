"""Crop depth maps around the performer and normalise them.

Depth maps are Kinect v2 512x424 uint16 images in millimetres, 0 where there is no
measurement or (masked depth) outside the skeleton-based region. Cropping therefore never
interpolates: resizing is nearest-neighbour, so no pixel mixes the person with the zero
background and every output value is a real measurement or 0.
"""

from __future__ import annotations

import numpy as np

from actionfusion.geometry import DEPTH_SIZE_HW
from actionfusion.modalities.image_boxes import Box, crop_box, person_box_from_points, resize_image


def depth_box_from_skeleton(
    depth_xy: np.ndarray,
    padding: float = 0.25,
    square: bool = True,
    image_size_hw: tuple[int, int] = DEPTH_SIZE_HW,
    min_size: int = 16,
) -> Box:
    """The box around all skeleton joints (every person and frame) in the depth image.

    Args:
        depth_xy: [..., 2] joints' (depthX, depthY) in depth pixels, e.g. [M, T, 25, 2]; NaN = absent.
        padding: relative enlargement of each side (see :func:`person_box_from_points`).
        square: make the box square (then fitted inside the image).
        image_size_hw: depth image (height, width); Kinect v2 is (424, 512).
        min_size: smallest side in pixels.
    Returns:
        (x0, y0, x1, y1) inside the depth image, end exclusive.
    """
    return person_box_from_points(depth_xy, image_size_hw, padding=padding, square=square, min_size=min_size)


def crop_depth(depth: np.ndarray, box: Box, size: int | tuple[int, int]) -> np.ndarray:
    """Crop a depth map to ``box`` and resize it with nearest-neighbour sampling.

    Args:
        depth: uint16 [H, W] millimetres (0 = no measurement / background).
        box: (x0, y0, x1, y1); parts outside the image come out 0 (background).
        size: side of the square output, or (height, width).
    Returns:
        uint16 [size, size] (or [height, width]) with values taken from ``depth`` only.
    """
    if depth.ndim != 2:
        raise ValueError(f"depth must be [H, W], got shape {depth.shape}")
    size_hw = (size, size) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))
    return resize_image(crop_box(depth, box), size_hw, nearest=True)


def normalize_depth(depth_mm: np.ndarray, near_mm: float = 500.0, far_mm: float = 4500.0) -> np.ndarray:
    """Map depth to closeness in [0, 1]: 1 at ``near_mm``, 0 at ``far_mm`` and beyond, 0 for background.

    Nearer means brighter, so the zero background reads as "infinitely far" and agrees with
    the far end of the scale instead of colliding with the nearest valid depth. Values are
    clipped to [near_mm, far_mm] first. The defaults are Kinect v2's working range (0.5-4.5 m).

    Args:
        depth_mm: [...] depth in millimetres (any integer or float dtype), 0 = no measurement.
        near_mm, far_mm: the range mapped onto [1, 0]; ``far_mm > near_mm``.
    Returns:
        float32 [...] in [0, 1].
    """
    if far_mm <= near_mm:
        raise ValueError(f"far_mm ({far_mm}) must exceed near_mm ({near_mm})")
    depth = np.asarray(depth_mm, dtype=np.float32)
    closeness = (np.float32(far_mm) - np.clip(depth, near_mm, far_mm)) / np.float32(far_mm - near_mm)
    return np.where(depth > 0, closeness, np.float32(0)).astype(np.float32)
