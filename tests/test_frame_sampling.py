"""Frame index sampling: uniform segments, dense clips, EPAM's RGB/pose alignment."""

from __future__ import annotations

import numpy as np
import pytest

from actionfusion.modalities.rgb.frame_sampling import (dense_clip_indices, epam_aligned_indices, segment_bounds,
                                                        uniform_segment_indices)


@pytest.mark.parametrize("num_frames", [16, 17, 47, 48, 61, 103, 300])
@pytest.mark.parametrize("train", [True, False])
def test_uniform_segments_cover_every_segment_once(num_frames, train):
    rng = np.random.default_rng(num_frames)
    segments = 16
    bounds = segment_bounds(num_frames, segments)
    for _ in range(5 if train else 1):
        idx = uniform_segment_indices(num_frames, segments, train=train, rng=rng)
        assert idx.dtype == np.int64 and idx.shape == (segments,)
        owner = np.searchsorted(bounds, idx, side="right") - 1  # the segment each index falls in
        np.testing.assert_array_equal(owner, np.arange(segments))
        assert (np.diff(idx) > 0).all() and idx.min() >= 0 and idx.max() < num_frames


def test_uniform_train_reaches_every_frame_and_test_takes_centres():
    rng = np.random.default_rng(0)
    seen = np.concatenate([uniform_segment_indices(40, 8, train=True, rng=rng) for _ in range(300)])
    assert set(seen.tolist()) == set(range(40))  # every frame of every segment can be drawn
    np.testing.assert_array_equal(uniform_segment_indices(40, 8, train=False), np.arange(8) * 5 + 2)
    views = [uniform_segment_indices(40, 8, train=False, clip_index=c, num_clips=5) for c in range(5)]
    np.testing.assert_array_equal(np.stack(views)[:, 0], np.arange(5))  # views spread over the segment


def test_uniform_short_video_and_determinism():
    idx = uniform_segment_indices(5, 16, train=True, rng=np.random.default_rng(1))
    assert idx.min() >= 0 and idx.max() < 5 and (np.diff(idx) >= 0).all() and set(idx.tolist()) == set(range(5))
    a = uniform_segment_indices(100, 16, train=True, rng=np.random.default_rng(42))
    b = uniform_segment_indices(100, 16, train=True, rng=np.random.default_rng(42))
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError):
        uniform_segment_indices(100, 16, train=True)  # no rng
    with pytest.raises(ValueError):
        uniform_segment_indices(0, 16, train=False)


@pytest.mark.parametrize("num_frames", [20, 48, 100, 137])
@pytest.mark.parametrize("train", [True, False])
def test_epam_alignment(num_frames, train):
    pose, rgb = epam_aligned_indices(num_frames, train=train, rng=np.random.default_rng(num_frames))
    assert pose.shape == (48,) and rgb.shape == (16,)
    assert pose.dtype == rgb.dtype == np.int64
    np.testing.assert_array_equal(rgb, pose[::3])
    assert pose.max() < num_frames and (np.diff(pose) >= 0).all()


def test_dense_clip_long_video():
    rng = np.random.default_rng(0)
    for _ in range(20):
        idx = dense_clip_indices(100, 8, 4, train=True, rng=rng)
        assert (np.diff(idx) == 4).all() and idx[0] >= 0 and idx[-1] < 100
    centre = dense_clip_indices(100, 8, 4, train=False)
    assert centre[0] == (100 - 29 + 1) // 2 and (np.diff(centre) == 4).all()
    starts = [dense_clip_indices(100, 8, 4, train=False, clip_index=c, num_clips=3)[0] for c in range(3)]
    assert starts[0] < starts[1] < starts[2] and starts[2] + 28 < 100
    starts_seen = {int(dense_clip_indices(30, 8, 4, train=True, rng=rng)[0]) for _ in range(50)}
    assert starts_seen == {0, 1}  # span 29 in 30 frames: two possible starts


@pytest.mark.parametrize("mode", ["loop", "clamp"])
@pytest.mark.parametrize("train", [True, False])
def test_dense_clip_short_video_stays_in_range(mode, train):
    rng = np.random.default_rng(5)
    for num_frames in (1, 3, 10, 28):
        idx = dense_clip_indices(num_frames, 8, 4, train=train, rng=rng, short_video=mode)
        assert idx.shape == (8,) and idx.dtype == np.int64
        assert idx.min() >= 0 and idx.max() < num_frames
    if mode == "clamp":
        np.testing.assert_array_equal(dense_clip_indices(10, 8, 4, train=train, rng=rng, short_video=mode),
                                      [0, 4, 8, 9, 9, 9, 9, 9])
    elif not train:
        np.testing.assert_array_equal(dense_clip_indices(10, 8, 4, train=False, short_video=mode),
                                      [0, 4, 8, 2, 6, 0, 4, 8])
