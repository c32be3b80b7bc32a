"""RGB clip transforms: crop, resize, flip, ImageNet normalisation (numpy, for DataLoader workers).

Input clips are the store's person crops, uint8 [T, S, S, 3] (RGB order); outputs are the
model layout float32 [3, T, H, W]. Every function is pure; the random ones take a
``numpy.random.Generator``. The same crop box and flip are applied to every frame of a clip.

Training (:func:`rgb_clip_pipeline` with ``train=True``): a random-resized crop in mmaction's
``RandomResizedCrop`` convention (area fraction in ``area_range``, aspect ratio log-uniform
in ``aspect_ratio_range``, 10 attempts then the centre square), resized to ``size`` (cv2
INTER_AREA when shrinking, INTER_LINEAR when enlarging), a horizontal flip with probability
``flip_prob`` and ImageNet normalisation. Test: the centre crop of ``crop_fraction`` of the
shorter side (1.0: the whole square person crop), resized, normalised.

The crop and flip are drawn by :func:`sample_clip_augment` and applied by
:func:`apply_clip_augment`; a dataset that must keep another modality consistent (e.g. flip
the pose heatmaps with the RGB) draws the flip once and passes ``flip=`` to each pipeline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import cv2
import numpy as np
from einops import rearrange

from actionfusion.modalities.image_boxes import Box, resize_image

IMAGENET_MEAN_255: tuple[float, float, float] = (123.675, 116.28, 103.53)
"""ImageNet RGB mean on the 0-255 scale (torchvision/mmaction ``img_norm_cfg``)."""
IMAGENET_STD_255: tuple[float, float, float] = (58.395, 57.12, 57.375)
"""ImageNet RGB standard deviation on the 0-255 scale (torchvision/mmaction ``img_norm_cfg``)."""
RRC_AREA_RANGE: tuple[float, float] = (0.08, 1.0)
"""mmaction ``RandomResizedCrop`` default area range (Inception-style crop, Szegedy et al. 2015)."""
RRC_ASPECT_RANGE: tuple[float, float] = (3 / 4, 4 / 3)
"""mmaction ``RandomResizedCrop`` default aspect-ratio range."""
RRC_ATTEMPTS = 10
"""Tries before falling back to the centre crop (mmaction/torchvision)."""


@dataclass(frozen=True)
class ClipAugment:
    """The spatial augmentation of one clip.

    Attributes:
        box: (x0, y0, x1, y1) crop in input pixels, end exclusive, inside the frame.
        flipped: whether the clip is mirrored left-right (after the crop).
    """

    box: Box
    flipped: bool


def _size_hw(size: "int | Sequence[int]") -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    return int(size[0]), int(size[1])


def _check_clip(frames: np.ndarray, channels: Optional[int] = 3) -> None:
    if channels is not None and (frames.ndim != 4 or frames.shape[-1] != channels):
        raise ValueError(f"expected frames [T, H, W, {channels}], got shape {frames.shape}")
    if channels is None and frames.ndim != 3:
        raise ValueError(f"expected frames [T, H, W], got shape {frames.shape}")
    if frames.shape[0] < 1:
        raise ValueError("the clip has no frames")


def center_crop_box(height: int, width: int, crop_fraction: float = 1.0) -> Box:
    """The centred square of side ``crop_fraction * min(height, width)`` (at least 1 pixel).

    Returns:
        (x0, y0, x1, y1), end exclusive.
    """
    if not 0 < crop_fraction <= 1:
        raise ValueError(f"crop_fraction must be in (0, 1], got {crop_fraction}")
    side = max(1, int(round(min(height, width) * crop_fraction)))
    x0, y0 = (width - side) // 2, (height - side) // 2
    return (x0, y0, x0 + side, y0 + side)


def random_resized_crop_box(
    height: int,
    width: int,
    rng: np.random.Generator,
    area_range: tuple[float, float] = RRC_AREA_RANGE,
    aspect_ratio_range: tuple[float, float] = RRC_ASPECT_RANGE,
) -> Box:
    """A random crop covering a fraction of the frame area in ``area_range`` with aspect (w/h) in
    ``aspect_ratio_range`` (log-uniform); after :data:`RRC_ATTEMPTS` misses, the centre square.

    Returns:
        (x0, y0, x1, y1) inside the ``height`` x ``width`` frame, end exclusive.
    """
    if not 0 < area_range[0] <= area_range[1] <= 1:
        raise ValueError(f"area_range must satisfy 0 < lo <= hi <= 1, got {area_range}")
    if not 0 < aspect_ratio_range[0] <= aspect_ratio_range[1]:
        raise ValueError(f"aspect_ratio_range must satisfy 0 < lo <= hi, got {aspect_ratio_range}")
    area = height * width
    log_lo, log_hi = math.log(aspect_ratio_range[0]), math.log(aspect_ratio_range[1])
    for _ in range(RRC_ATTEMPTS):
        target = area * rng.uniform(area_range[0], area_range[1])
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        crop_w = int(round(math.sqrt(target * aspect)))
        crop_h = int(round(math.sqrt(target / aspect)))
        if 0 < crop_w <= width and 0 < crop_h <= height:
            x0 = int(rng.integers(0, width - crop_w + 1))
            y0 = int(rng.integers(0, height - crop_h + 1))
            return (x0, y0, x0 + crop_w, y0 + crop_h)
    return center_crop_box(height, width)


def crop_clip(frames: np.ndarray, box: Box) -> np.ndarray:
    """[T, H, W, ...] -> [T, y1 - y0, x1 - x0, ...] (a view); the box must lie inside the frames."""
    x0, y0, x1, y1 = (int(v) for v in box)
    if not (0 <= x0 < x1 <= frames.shape[2] and 0 <= y0 < y1 <= frames.shape[1]):
        raise ValueError(f"crop box {box} is not inside frames of size {frames.shape[1:3]} (H, W)")
    return frames[:, y0:y1, x0:x1]


def resize_clip(frames: np.ndarray, size: "int | Sequence[int]", nearest: bool = False) -> np.ndarray:
    """Resize every frame (cv2: INTER_AREA when shrinking, INTER_LINEAR when enlarging, or nearest).

    Args:
        frames: [T, H, W] or [T, H, W, C] (uint8, uint16 or float32).
        size: side of the square output, or (height, width).
        nearest: nearest-neighbour (depth: no value is invented).
    Returns:
        [T, height, width(, C)] of the input dtype.
    """
    size_hw = _size_hw(size)
    if frames.shape[1:3] == size_hw:
        return np.ascontiguousarray(frames)
    return np.stack([resize_image(np.ascontiguousarray(frame), size_hw, nearest=nearest) for frame in frames])


def hflip_clip(frames: np.ndarray) -> np.ndarray:
    """Mirror left-right: [T, H, W, ...] -> same shape, column w becomes W - 1 - w (a view)."""
    return frames[:, :, ::-1]


def random_hflip_clip(frames: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> tuple[np.ndarray, bool]:
    """Mirror the clip with probability ``p``; returns (frames, flipped) so other modalities can follow."""
    flipped = bool(rng.random() < p)
    return (hflip_clip(frames) if flipped else frames), flipped


def normalize_clip(
    frames: np.ndarray,
    mean: Sequence[float] = IMAGENET_MEAN_255,
    std: Sequence[float] = IMAGENET_STD_255,
) -> np.ndarray:
    """ImageNet normalisation and channel-first layout.

    uint8 input goes through a 256-entry lookup table per channel (cv2.LUT on the planar
    clip: several times faster than float arithmetic, same values to float32 rounding).

    Args:
        frames: [T, H, W, 3] RGB on the 0-255 scale (uint8 or float).
        mean, std: per-channel statistics on the 0-255 scale.
    Returns:
        float32 [3, T, H, W] ``(frames - mean) / std``.
    """
    _check_clip(frames)
    mean_arr = np.asarray(mean, dtype=np.float32)
    inv_std = np.float32(1.0) / np.asarray(std, dtype=np.float32)
    if frames.dtype == np.uint8:
        planar = np.ascontiguousarray(rearrange(frames, "t h w c -> c (t h) w"))
        levels = np.arange(256, dtype=np.float32)
        out = np.empty((3,) + frames.shape[:3], dtype=np.float32)
        for c in range(3):
            lut = (levels - mean_arr[c]) * inv_std[c]
            out[c] = cv2.LUT(planar[c], lut).reshape(frames.shape[:3])
        return out
    normed = (frames.astype(np.float32) - mean_arr) * inv_std
    return np.ascontiguousarray(rearrange(normed, "t h w c -> c t h w"))


def sample_clip_augment(
    height: int,
    width: int,
    train: bool,
    rng: Optional[np.random.Generator] = None,
    *,
    flip: Optional[bool] = None,
    flip_prob: float = 0.5,
    area_range: tuple[float, float] = RRC_AREA_RANGE,
    aspect_ratio_range: tuple[float, float] = RRC_ASPECT_RANGE,
    crop_fraction: float = 1.0,
) -> ClipAugment:
    """Draw a clip's crop and flip.

    Args:
        height, width: input frame size.
        train: random-resized crop and random flip (needs ``rng``); otherwise the centre crop, no flip.
        rng: the random generator.
        flip: force the flip decision (e.g. one drawn for all modalities of the sample); None
            draws it with probability ``flip_prob`` in training and takes False in test.
        area_range, aspect_ratio_range: the random-resized crop's ranges (training).
        crop_fraction: the test centre crop's side as a fraction of the shorter side.
    Returns:
        the :class:`ClipAugment`.
    """
    if train and rng is None:
        raise ValueError("training augmentation is random: pass rng (a numpy.random.Generator)")
    if train:
        box = random_resized_crop_box(height, width, rng, area_range, aspect_ratio_range)
    else:
        box = center_crop_box(height, width, crop_fraction)
    if flip is None:
        flip = bool(rng.random() < flip_prob) if train else False
    return ClipAugment(box=box, flipped=bool(flip))


def apply_clip_augment(frames: np.ndarray, augment: ClipAugment, size: "int | Sequence[int]",
                       nearest: bool = False) -> np.ndarray:
    """Crop, resize and (if ``augment.flipped``) mirror: [T, H, W(, C)] -> [T, height, width(, C)] same dtype.

    Frame by frame with cv2 (resize as :func:`resize_clip`; the mirror is ``cv2.flip``, much
    faster than a copy of a reversed numpy view).
    """
    size_hw = _size_hw(size)
    crop = crop_clip(frames, augment.box)
    out = np.empty((crop.shape[0],) + size_hw + crop.shape[3:], dtype=crop.dtype)
    for t, frame in enumerate(crop):
        resized = resize_image(np.ascontiguousarray(frame), size_hw, nearest=nearest)
        out[t] = cv2.flip(resized, 1) if augment.flipped else resized
    return out


def rgb_clip_pipeline(
    frames: np.ndarray,
    size: "int | Sequence[int]",
    train: bool,
    rng: Optional[np.random.Generator] = None,
    *,
    flip: Optional[bool] = None,
    flip_prob: float = 0.5,
    area_range: tuple[float, float] = RRC_AREA_RANGE,
    aspect_ratio_range: tuple[float, float] = RRC_ASPECT_RANGE,
    crop_fraction: float = 1.0,
    mean: Sequence[float] = IMAGENET_MEAN_255,
    std: Sequence[float] = IMAGENET_STD_255,
) -> np.ndarray:
    """uint8 RGB frames [T, H, W, 3] -> float32 [3, T, height, width], ImageNet-normalised.

    Training: random-resized crop, resize, random flip; test: centre crop, resize (module
    docstring). ``flip`` forces the flip (see :func:`sample_clip_augment`), so a caller that
    flips the pose of the same sample draws the decision once and passes it here.
    """
    _check_clip(frames)
    augment = sample_clip_augment(frames.shape[1], frames.shape[2], train, rng, flip=flip, flip_prob=flip_prob,
                                  area_range=area_range, aspect_ratio_range=aspect_ratio_range,
                                  crop_fraction=crop_fraction)
    return normalize_clip(apply_clip_augment(frames, augment, size), mean, std)
