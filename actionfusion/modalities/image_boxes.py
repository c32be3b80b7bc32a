"""Image boxes shared by every image-like modality (RGB, depth, pose heatmaps).

A box is ``(x0, y0, x1, y1)`` in integer pixels of the image it refers to, with
``x1``/``y1`` exclusive, so its width is ``x1 - x0``.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

Box = tuple[int, int, int, int]
"""(x0, y0, x1, y1) in pixels, end exclusive."""


def person_box_from_points(
    xy: np.ndarray,
    image_size_hw: tuple[int, int],
    padding: float = 0.25,
    square: bool = True,
    min_size: int = 32,
) -> Box:
    """One box around all given points (every person, every frame), padded and fitted to the image.

    The tight box around the finite points is enlarged about its centre so that each side
    grows by the factor ``1 + padding`` (pyskl's ``PoseCompact`` convention: ``padding=0.25``
    makes the box 25 % wider and taller) and is at least ``min_size``; it is rounded outward
    to whole pixels (so it may be a pixel or two larger), then made square by growing the
    shorter side. Finally it is shifted (not shrunk) to lie inside
    the image. Only when the side exceeds an image dimension is it cut to that dimension,
    so the returned box is square unless a square of that size cannot fit in the image.

    Args:
        xy: [..., 2] points (x, y) in pixels, e.g. colorX/Y of shape [M, T, V, 2]; NaN marks absent points.
        image_size_hw: (height, width) of the image the points refer to.
        padding: relative enlargement of each side (0 for the tight box).
        square: make the box square before fitting it to the image.
        min_size: smallest side in pixels.
    Returns:
        (x0, y0, x1, y1) integer box inside the image. With no finite point at all, the
        centred square of side ``min(height, width)`` (a plain centre crop).
    """
    height, width = int(image_size_hw[0]), int(image_size_hw[1])
    if height <= 0 or width <= 0:
        raise ValueError(f"image_size_hw must be positive, got {image_size_hw}")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    pts = pts[np.isfinite(pts).all(axis=1)]
    if len(pts) == 0:
        side = min(height, width)
        x0, y0 = (width - side) // 2, (height - side) // 2
        return (x0, y0, x0 + side, y0 + side)

    (min_x, min_y), (max_x, max_y) = pts.min(axis=0), pts.max(axis=0)
    half_w = max((max_x - min_x) * (1 + padding), float(min_size)) / 2
    half_h = max((max_y - min_y) * (1 + padding), float(min_size)) / 2
    centre_x, centre_y = (min_x + max_x) / 2, (min_y + max_y) / 2
    # integer extents that cover the padded box, including the pixel the largest point falls in
    x0, x1 = int(math.floor(centre_x - half_w)), int(math.ceil(centre_x + half_w)) + 1
    y0, y1 = int(math.floor(centre_y - half_h)), int(math.ceil(centre_y + half_h)) + 1
    if square:
        side = max(x1 - x0, y1 - y0)
        x0 -= (side - (x1 - x0)) // 2
        y0 -= (side - (y1 - y0)) // 2
        x1, y1 = x0 + side, y0 + side
    x0, x1 = _fit_segment(x0, x1, width)
    y0, y1 = _fit_segment(y0, y1, height)
    return (x0, y0, x1, y1)


def _fit_segment(start: int, end: int, limit: int) -> tuple[int, int]:
    """Shift ``[start, end)`` into ``[0, limit)``, cutting it to ``limit`` only if it is longer."""
    length = min(end - start, limit)
    start = min(max(start, 0), limit - length)
    return start, start + length


def resize_image(image: np.ndarray, size_hw: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """Resize with cv2: INTER_AREA when shrinking, INTER_LINEAR when enlarging, INTER_NEAREST if asked.

    Args:
        image: [H, W] or [H, W, C] array (uint8, uint16 or float32).
        size_hw: (height, width) wanted.
        nearest: use nearest-neighbour (for depth or label maps: no new values are invented).
    Returns:
        [height, width(, C)] array of the same dtype.
    """
    out_h, out_w = int(size_hw[0]), int(size_hw[1])
    if image.shape[:2] == (out_h, out_w):
        return np.ascontiguousarray(image)
    if nearest:
        interpolation = cv2.INTER_NEAREST
    elif out_h <= image.shape[0] and out_w <= image.shape[1]:
        interpolation = cv2.INTER_AREA
    else:
        interpolation = cv2.INTER_LINEAR
    return cv2.resize(image, (out_w, out_h), interpolation=interpolation)


def crop_box(image: np.ndarray, box: Box) -> np.ndarray:
    """Cut ``box`` out of ``image``; the part of the box outside the image is filled with zeros.

    Args:
        image: [H, W] or [H, W, C] array.
        box: (x0, y0, x1, y1), may extend past the image borders.
    Returns:
        [y1 - y0, x1 - x0(, C)] array of the image's dtype (a view when the box is inside the image).
    """
    x0, y0, x1, y1 = (int(v) for v in box)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"empty box {box}")
    height, width = image.shape[:2]
    if x0 >= 0 and y0 >= 0 and x1 <= width and y1 <= height:
        return image[y0:y1, x0:x1]
    out = np.zeros((y1 - y0, x1 - x0) + image.shape[2:], dtype=image.dtype)
    src_x0, src_y0 = max(x0, 0), max(y0, 0)
    src_x1, src_y1 = min(x1, width), min(y1, height)
    if src_x1 > src_x0 and src_y1 > src_y0:
        out[src_y0 - y0 : src_y1 - y0, src_x0 - x0 : src_x1 - x0] = image[src_y0:src_y1, src_x0:src_x1]
    return out
