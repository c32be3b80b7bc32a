"""Depth clip transform: the store's cropped depth frames -> the model's normalised depth clip.

The spatial augmentation is the RGB one (:mod:`actionfusion.modalities.rgb.clip_transforms`):
random-resized crop and random flip in training, the centre crop in test. Resizing is
nearest-neighbour, as for the stored crops (:mod:`.depth_crop`): no depth value is invented at
a person's edge. The result is :func:`.depth_crop.normalize_depth` closeness in [0, 1].
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from einops import rearrange

from actionfusion.modalities.depth.depth_crop import normalize_depth
from actionfusion.modalities.rgb.clip_transforms import (RRC_AREA_RANGE, RRC_ASPECT_RANGE, apply_clip_augment,
                                                         sample_clip_augment)


def depth_clip_pipeline(
    depth: np.ndarray,
    size: int,
    train: bool,
    rng: Optional[np.random.Generator] = None,
    *,
    flip: Optional[bool] = None,
    flip_prob: float = 0.5,
    area_range: tuple[float, float] = RRC_AREA_RANGE,
    aspect_ratio_range: tuple[float, float] = RRC_ASPECT_RANGE,
    crop_fraction: float = 1.0,
    near_mm: float = 500.0,
    far_mm: float = 4500.0,
) -> np.ndarray:
    """uint16 depth [T, D, D] millimetres (0 = no data) -> float32 [1, T, size, size] in [0, 1].

    Args:
        depth: the clip's depth frames (e.g. ``SampleStore.load_depth(name, frames)``).
        size: output side.
        train: random-resized crop + random flip (needs ``rng``); otherwise centre crop.
        rng: the random generator.
        flip: force the flip (one decision shared with the sample's other modalities); None
            draws it with ``flip_prob`` in training.
        area_range, aspect_ratio_range, crop_fraction: as in
            :func:`actionfusion.modalities.rgb.clip_transforms.sample_clip_augment`.
        near_mm, far_mm: the :func:`normalize_depth` range (1 at ``near_mm``, 0 at ``far_mm``
            and for missing depth).
    Returns:
        float32 [1, T, size, size].
    """
    if depth.ndim != 3 or depth.shape[0] < 1:
        raise ValueError(f"expected depth frames [T, H, W], got shape {depth.shape}")
    augment = sample_clip_augment(depth.shape[1], depth.shape[2], train, rng, flip=flip, flip_prob=flip_prob,
                                  area_range=area_range, aspect_ratio_range=aspect_ratio_range,
                                  crop_fraction=crop_fraction)
    clip = apply_clip_augment(depth, augment, size, nearest=True)
    return rearrange(normalize_depth(clip, near_mm=near_mm, far_mm=far_mm), "t h w -> 1 t h w")
