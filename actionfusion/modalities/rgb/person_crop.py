"""Person crops of RGB frames, from skeleton colour coordinates or 2D poses.

NTU's ``.skeleton`` files give every joint's ``colorX``/``colorY`` in the pixels of the
1920x1080 RGB stream; a video re-encoded at a smaller size needs them scaled first
(:func:`scale_color_xy_to_video`). Box geometry lives in :mod:`actionfusion.modalities.image_boxes`.
"""

from __future__ import annotations

import numpy as np

from actionfusion.geometry import COLOR_SIZE_HW
from actionfusion.modalities.image_boxes import Box, crop_box, person_box_from_points, resize_image

__all__ = ["Box", "crop_and_resize", "crop_box", "person_box_from_points", "resize_image", "scale_color_xy_to_video"]


def scale_color_xy_to_video(
    color_xy: np.ndarray,
    video_size_hw: tuple[int, int],
    source_size_hw: tuple[int, int] = COLOR_SIZE_HW,
) -> np.ndarray:
    """Rescale skeleton colorX/Y (given for a ``source_size_hw`` frame) to a video of another size.

    Pixel centres are mapped exactly: ``x' = (x + 0.5) * W' / W - 0.5``.

    Args:
        color_xy: [..., 2] (colorX, colorY) in source pixels; NaN stays NaN.
        video_size_hw: (height, width) of the decoded video.
        source_size_hw: (height, width) the coordinates refer to; Kinect v2 colour is (1080, 1920).
    Returns:
        [..., 2] float64 coordinates in video pixels.
    """
    xy = np.asarray(color_xy, dtype=np.float64)
    scale = np.array(
        [video_size_hw[1] / source_size_hw[1], video_size_hw[0] / source_size_hw[0]], dtype=np.float64
    )
    return (xy + 0.5) * scale - 0.5


def crop_and_resize(frame: np.ndarray, box: Box, size: int | tuple[int, int]) -> np.ndarray:
    """Crop an RGB frame to ``box`` and resize it (cv2, INTER_AREA when shrinking).

    Args:
        frame: uint8 [H, W, 3].
        box: (x0, y0, x1, y1); parts outside the frame come out black.
        size: side of the square output, or (height, width).
    Returns:
        uint8 [size, size, 3] (or [height, width, 3]).
    """
    size_hw = (size, size) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))
    return resize_image(crop_box(frame, box), size_hw)
