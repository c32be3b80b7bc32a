"""RGB and depth clip transforms: normalisation, crops, flips, the one-call pipelines."""

from __future__ import annotations

import numpy as np
import pytest

from actionfusion.modalities.depth.depth_clip import depth_clip_pipeline
from actionfusion.modalities.rgb.clip_transforms import (IMAGENET_MEAN_255, IMAGENET_STD_255, ClipAugment,
                                                         apply_clip_augment, center_crop_box, normalize_clip,
                                                         random_hflip_clip, random_resized_crop_box, resize_clip,
                                                         rgb_clip_pipeline, sample_clip_augment)


def _ramp_clip(t: int = 4, s: int = 64) -> np.ndarray:
    """uint8 [T, S, S, 3]: red grows with x, green with y, blue with t."""
    x = np.linspace(0, 255, s)
    clip = np.zeros((t, s, s, 3), dtype=np.uint8)
    clip[..., 0] = x[None, None, :]
    clip[..., 1] = x[None, :, None]
    clip[..., 2] = (np.arange(t) * 40)[:, None, None]
    return clip


def test_normalise_imagenet_mean_gives_zero():
    mean_image = np.broadcast_to(np.asarray(IMAGENET_MEAN_255, dtype=np.float32), (3, 5, 7, 3))
    out = normalize_clip(mean_image)
    assert out.shape == (3, 3, 5, 7) and out.dtype == np.float32
    np.testing.assert_allclose(out, 0, atol=1e-6)
    one_std = mean_image + np.asarray(IMAGENET_STD_255, dtype=np.float32)
    np.testing.assert_allclose(normalize_clip(one_std), 1, atol=1e-5)
    clip = _ramp_clip()
    out = normalize_clip(clip)  # channel-first [3, T, H, W]
    assert out[2, 3, 0, 0] == pytest.approx((120 - IMAGENET_MEAN_255[2]) / IMAGENET_STD_255[2], rel=1e-5)


def test_random_resized_crop_box_ranges():
    rng = np.random.default_rng(0)
    for _ in range(200):
        x0, y0, x1, y1 = random_resized_crop_box(192, 192, rng, area_range=(0.3, 0.9), aspect_ratio_range=(0.75, 4 / 3))
        assert 0 <= x0 < x1 <= 192 and 0 <= y0 < y1 <= 192
        area = (x1 - x0) * (y1 - y0) / 192**2
        assert 0.3 - 0.02 <= area <= 0.9 + 0.02
        assert 0.75 - 0.03 <= (x1 - x0) / (y1 - y0) <= 4 / 3 + 0.03
    assert center_crop_box(100, 160) == (30, 0, 130, 100)
    assert center_crop_box(192, 192, 0.875) == (12, 12, 180, 180)


def test_test_pipeline_is_deterministic_resize_and_normalise():
    clip = _ramp_clip(s=64)
    out = rgb_clip_pipeline(clip, 32, train=False)
    assert out.shape == (3, 4, 32, 32) and out.dtype == np.float32
    np.testing.assert_array_equal(out, rgb_clip_pipeline(clip, 32, train=False))
    expected = normalize_clip(resize_clip(clip, 32))
    np.testing.assert_allclose(out, expected)
    red = out[0, 0, 0] * IMAGENET_STD_255[0] + IMAGENET_MEAN_255[0]
    assert (np.diff(red) > 0).all()  # not flipped in test


def test_flip_mirrors_and_reports():
    clip = _ramp_clip()
    flipped, did = random_hflip_clip(clip, np.random.default_rng(0), p=1.0)
    assert did and np.array_equal(flipped[:, :, 0], clip[:, :, -1])
    same, did = random_hflip_clip(clip, np.random.default_rng(0), p=0.0)
    assert not did and same is clip
    forced = rgb_clip_pipeline(clip, 64, train=False, flip=True)
    np.testing.assert_allclose(forced, rgb_clip_pipeline(clip, 64, train=False)[..., ::-1])
    rng = np.random.default_rng(3)
    flips = [sample_clip_augment(64, 64, True, rng, flip_prob=0.5).flipped for _ in range(200)]
    assert 60 < sum(flips) < 140


def test_train_pipeline_crops_inside_and_follows_rng():
    clip = _ramp_clip(t=3, s=96)
    a = rgb_clip_pipeline(clip, 48, train=True, rng=np.random.default_rng(11))
    b = rgb_clip_pipeline(clip, 48, train=True, rng=np.random.default_rng(11))
    c = rgb_clip_pipeline(clip, 48, train=True, rng=np.random.default_rng(12))
    assert a.shape == (3, 3, 48, 48)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    aug = ClipAugment(box=(10, 20, 58, 68), flipped=False)
    crop = apply_clip_augment(clip, aug, 48)  # 48x48 box to 48x48: an exact cut
    np.testing.assert_array_equal(crop, clip[:, 20:68, 10:58])
    with pytest.raises(ValueError):
        rgb_clip_pipeline(clip, 48, train=True)  # training needs an rng
    with pytest.raises(ValueError):
        rgb_clip_pipeline(clip[..., 0], 48, train=False)


def test_depth_pipeline():
    depth = np.zeros((5, 56, 56), dtype=np.uint16)
    depth[:, 10:40, 20:30] = 1500  # a person at 1.5 m; zero background
    out = depth_clip_pipeline(depth, 28, train=False)
    assert out.shape == (1, 5, 28, 28) and out.dtype == np.float32
    assert set(np.unique(out).round(4)) == {0.0, 0.75}  # nearest resize: no new depth values
    np.testing.assert_array_equal(out[0, :, 5:20, 10:15], 0.75)
    flipped = depth_clip_pipeline(depth, 28, train=False, flip=True)
    np.testing.assert_array_equal(flipped, out[..., ::-1])
    train = depth_clip_pipeline(depth, 28, train=True, rng=np.random.default_rng(0))
    assert train.shape == (1, 5, 28, 28) and 0 <= train.min() and train.max() <= 1
