"""Hand glimpses: small RGB windows centred on the hands, cut from the stored person crop.

Why. An object held in the hand (a cup, a toothbrush, a phone) covers a few pixels of a whole-body
crop, and resizing that crop to the small clips a CPU can train on blurs it away. Measured on the
synthetic set's three held-object classes (drink / brush teeth / phone call: the same arm motion,
only the object differs; ntu60_xsub, 45 training and 27 test clips, so one clip is 3.7 points) by
``benchmarks/bench_held_object_probe.py``: a logistic regression on the colour histograms of 8
frames per clip scores on the test clips

==========================================  ========  ================
input (8 frames per clip)                   accuracy  pixels per frame
==========================================  ========  ================
whole person crop, 48 px                    74.1 %    2,304
whole person crop, 64 px (the demo's size)  85.2 %    4,096
whole person crop, 96 / 128 px              88.9 / 92.6 %  9,216 / 16,384
whole person crop, 192 px (as stored)       100 %     36,864
two hand glimpses, 32 px each               85.2 %    2,048
two hand glimpses, 48 px each               96.3 %    4,608
==========================================  ========  ================

The 2 px wide toothbrush of a 192 px crop is under a pixel at 64 px. Glimpses keep the object at
the stored resolution: at the pixels of one 64 px frame they hold what a 128-192 px crop holds, and
at half of them what the 64 px crop holds.

This is the pose-guided glimpse of Baradel, Wolf and Mille, "Human Action Recognition: Pose-based
Attention draws focus to Hands" (ICCV Workshops 2017), who cut RGB glimpses around the hands from
the NTU skeleton, and of the hand patches of Cheron, Laptev and Schmid, "P-CNN" (ICCV 2015). Their
glimpses feed an attention model; here they are a plain clip ``[3, T, size, 2 * size]`` (the right
hand's window, then the left hand's, side by side) that any frame encoder reads, e.g. the registered
``tsm_frames`` with ``input_key: rgb_hands``. The window side is a fraction of the person crop
(``window``), so it scales with the person; the fraction and the size are options, not fixed by
either paper (neither states a value we could reuse at these crop sizes).

Where a hand keypoint is missing in a frame (score 0 or NaN), the glimpse takes the nearest frame
that has it; a clip without it at all looks at the crop's centre.
"""

from __future__ import annotations

from typing import Optional, Sequence

import cv2
import numpy as np

HAND_JOINTS: dict[str, tuple[int, int]] = {
    "ntu25": (11, 7),    # HandRight, HandLeft (Kinect v2)
    "coco17": (10, 9),   # right wrist, left wrist
    "blazepose33": (16, 15),  # right wrist, left wrist
}
"""Keypoint index of the (right, left) hand in each 2D layout a store may hold."""


def hand_centres_in_crop(keypoints_xy: np.ndarray, scores: np.ndarray, box: Sequence[float],
                         crop_hw: tuple[int, int]) -> np.ndarray:
    """float64 [T, H, 2]: hand positions in the pixels of a stored person crop; NaN where missing.

    Args:
        keypoints_xy: float [T, H, 2] (x, y) of the H hands in video pixels.
        scores: float [T, H], a keypoint counts as present when its score is above 0.
        box: (x0, y0, x1, y1) of the crop in video pixels, as ``prepare`` records it.
        crop_hw: (height, width) of the stored crop, which shows ``box`` resized.
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    scale = np.array([crop_hw[1] / max(x1 - x0, 1e-6), crop_hw[0] / max(y1 - y0, 1e-6)])
    centres = (np.asarray(keypoints_xy, dtype=np.float64) - np.array([x0, y0])) * scale
    missing = ~(np.asarray(scores) > 0) | ~np.isfinite(centres).all(axis=-1)
    centres[missing] = np.nan
    return centres


def fill_missing_centres(centres: np.ndarray, crop_hw: tuple[int, int]) -> np.ndarray:
    """float64 [T, H, 2]: each missing (NaN) centre replaced by the same hand's nearest present
    frame (the earlier one on a tie); a hand absent from every frame takes the crop's centre."""
    filled = np.array(centres, dtype=np.float64, copy=True)
    frames = np.arange(filled.shape[0])
    for hand in range(filled.shape[1]):
        present = np.isfinite(filled[:, hand]).all(axis=-1)
        if not present.any():
            filled[:, hand] = ((crop_hw[1] - 1) / 2.0, (crop_hw[0] - 1) / 2.0)
            continue
        known = frames[present]
        nearest = known[np.abs(frames[:, None] - known[None, :]).argmin(axis=1)]
        filled[:, hand] = filled[nearest, hand]
    return filled


def cut_glimpses(frames: np.ndarray, centres: np.ndarray, window: float, size: int, flip: bool = False) -> np.ndarray:
    """uint8 [T, size, H * size, 3]: one ``size`` x ``size`` window per hand and frame, side by side.

    Args:
        frames: uint8 [T, S, S, 3] person-crop frames (or [T, H, W, 3] uncropped video frames).
        centres: float [T, H, 2] window centres in crop pixels (no NaN: see :func:`fill_missing_centres`).
        window: window side as a fraction of the crop's height (pixels beyond the crop repeat its border).
        size: output side of each window (area-averaged when the window is larger).
        flip: mirror the clip: each window is mirrored and the hands swap places, which is what
            cutting the windows from the mirrored frames around the mirrored (and relabelled) hands gives.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [T, H, W, 3], got {frames.shape}")
    if centres.shape[0] != frames.shape[0] or centres.shape[-1] != 2:
        raise ValueError(f"centres must be [T={frames.shape[0]}, H, 2], got {centres.shape}")
    side = max(int(round(window * frames.shape[1])), 1)
    hands = centres.shape[1]
    out = np.empty((frames.shape[0], size, hands * size, 3), dtype=np.uint8)
    order = list(range(hands))[::-1] if flip else list(range(hands))
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    for t, frame in enumerate(frames):
        frame = np.ascontiguousarray(frame)
        for slot, hand in enumerate(order):
            cx, cy = (float(v) for v in centres[t, hand])
            patch = cv2.getRectSubPix(frame, (side, side), (cx, cy))
            patch = cv2.resize(patch, (size, size), interpolation=interpolation)
            out[t, :, slot * size:(slot + 1) * size] = patch[:, ::-1] if flip else patch
    return out


def jitter_centres(centres: np.ndarray, crop_height: int, window: float, jitter: float,
                   rng: Optional[np.random.Generator]) -> np.ndarray:
    """float64 [T, H, 2]: ``centres`` moved by one random offset per hand for the whole clip, each
    coordinate uniform in +-``jitter`` x the window side (no change for ``jitter`` 0 or no ``rng``)."""
    if not jitter or rng is None:
        return centres
    shift = rng.uniform(-jitter, jitter, size=(1, centres.shape[1], 2)) * window * crop_height
    return centres + shift
