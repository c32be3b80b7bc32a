"""Skeleton corruptions and baseline completions (modalities/skeleton/corruption.py, completion.py)."""

from __future__ import annotations

import numpy as np
import pytest

from actionfusion.errors import UnknownNameError, UsageError
from actionfusion.modalities.skeleton.completion import COMPLETIONS, complete, complete_duplicate, complete_interpolate
from actionfusion.modalities.skeleton.corruption import (CORRUPTIONS, LEVELS, SEVERITIES, add_jitter, body_scale,
                                                         corrupt, drop_frame_block, lost_frames, occlude_parts,
                                                         subsample_random, subsample_uniform)
from actionfusion.modalities.skeleton.occlusion_parts import PARTITION, occlusion_parts

FRAME_CORRUPTIONS = ("frame_drop", "block_drop", "uniform_subsample", "random_subsample")


def sequence(frames: int = 40, joints: int = 25, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(2, frames, joints, 3)).astype(np.float32) + 5.0


def linear_motion(frames: int = 40, joints: int = 25) -> np.ndarray:
    """[1, T, V, 3] whose every coordinate is a + b t (a, b differ per joint and channel)."""
    rng = np.random.default_rng(1)
    start, velocity = rng.normal(size=(joints, 3)), rng.normal(size=(joints, 3))
    t = np.arange(frames, dtype=np.float64)[:, None, None]
    return (start[None] + velocity[None] * t)[None]


@pytest.mark.parametrize("name", FRAME_CORRUPTIONS)
@pytest.mark.parametrize("frames", [32, 37, 64])
def test_frame_corruptions_keep_exactly_the_configured_share(name: str, frames: int) -> None:
    x = sequence(frames)
    for level in SEVERITIES:
        rate = LEVELS[name][level]["rate"]
        kept = frames - int(np.floor(rate * frames + 0.5))
        for seed in range(5):
            clip = corrupt(x, name, level, [seed, 7])
            assert clip.num_kept == kept
            assert clip.observed.sum(axis=0).tolist() == [kept] * 25
            assert np.all(np.diff(clip.frame_times) > 0)
            # FineTec's layout: kept frames first, in order, then zero frames.
            np.testing.assert_array_equal(clip.sequence[:, :kept], x[:, clip.frame_times])
            assert not clip.sequence[:, kept:].any()


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corruptions_are_deterministic_in_their_seed(name: str) -> None:
    x = sequence()
    for level in SEVERITIES:
        a, b = corrupt(x, name, level, [3, 4]), corrupt(x, name, level, [3, 4])
        np.testing.assert_array_equal(a.sequence, b.sequence)
        np.testing.assert_array_equal(a.observed, b.observed)
    if name in ("frame_drop", "block_drop", "random_subsample", "jitter"):
        draws = {corrupt(x, name, "moderate", seed).sequence.tobytes() for seed in range(6)}
        assert len(draws) > 1  # the seed matters


def test_lost_frames_rounds_half_up_and_keeps_one_frame() -> None:
    assert lost_frames(10, 0.25) == 3  # 2.5 rounds up
    assert lost_frames(10, 1.0) == 9
    assert lost_frames(32, 0.0) == 0
    with pytest.raises(UsageError):
        lost_frames(10, 1.5)


def test_block_drop_loses_one_contiguous_block() -> None:
    for seed in range(10):
        lost = np.setdiff1d(np.arange(32), drop_frame_block(sequence(32), 0.5, seed).frame_times)
        assert len(lost) == 16 and np.all(np.diff(lost) == 1)


def test_subsampling_takes_one_frame_per_segment() -> None:
    np.testing.assert_array_equal(subsample_uniform(sequence(32), 0.75).frame_times, [1, 5, 9, 13, 17, 21, 25, 29])
    for seed in range(10):
        times = subsample_random(sequence(32), 0.75, seed).frame_times
        np.testing.assert_array_equal(times // 4, np.arange(8))


def test_occlusion_parts_partition_the_joints() -> None:
    for layout, joints in (("ntu25", 25), ("coco17", 17)):
        parts = occlusion_parts(layout)
        ids = sorted(j for part in PARTITION for j in parts[part])
        assert ids == list(range(joints))
        assert set(parts["hands"]) <= set(parts["left_arm"]) | set(parts["right_arm"])
    # RA-GCN's lists, 1-based: left arm 5-8, 22, 23; two legs 13-20; trunk 1-4, 21.
    ntu = occlusion_parts("ntu25")
    assert [j + 1 for j in ntu["left_arm"]] == [5, 6, 7, 8, 22, 23]
    assert [j + 1 for j in ntu["legs"]] == list(range(13, 21))
    assert sorted(j + 1 for j in ntu["trunk"]) == [1, 2, 3, 4, 21]


def test_occlusion_hides_the_parts_in_every_frame() -> None:
    x = sequence()
    clip = corrupt(x, "joint_occlusion", "severe", 0)
    hidden = sorted(set(range(25)) - set(occlusion_parts("ntu25")["trunk"]))
    assert clip.num_kept == 40
    assert not clip.observed[:, hidden].any() and clip.observed[:, list(occlusion_parts("ntu25")["trunk"])].all()
    assert not clip.sequence[:, :, hidden].any()
    minor = {tuple(np.flatnonzero(~corrupt(x, "joint_occlusion", "minor", s).observed[0])) for s in range(20)}
    assert minor == {occlusion_parts("ntu25")["left_arm"], occlusion_parts("ntu25")["right_arm"]}
    coco = occlude_parts(sequence(joints=17), [["legs"]], 0, layout="coco17")
    assert (~coco.observed[0]).sum() == 6
    with pytest.raises(UsageError):
        occlude_parts(sequence(joints=17), [["legs"]], 0, layout="ntu25")
    with pytest.raises(UnknownNameError):
        occlude_parts(x, [["tail"]], 0)


def test_jitter_scales_with_the_body_and_spares_absent_joints() -> None:
    x = sequence().astype(np.float64)
    x[1] = 0.0  # the second person is absent
    noise = add_jitter(x, 0.1, 0).sequence - x
    assert not noise[1].any()
    assert np.std(noise[0]) == pytest.approx(0.1 * body_scale(x), rel=0.05)
    scaled = add_jitter(x * 100.0, 0.1, 0).sequence - x * 100.0
    np.testing.assert_allclose(scaled, noise * 100.0, rtol=1e-9, atol=1e-9)


def test_interpolation_is_exact_on_linear_motion() -> None:
    x = linear_motion()
    for name in FRAME_CORRUPTIONS:
        for seed in range(5):
            clip = corrupt(x, name, "severe", seed)
            first, last = clip.frame_times[0], clip.frame_times[-1]
            out = complete_interpolate(clip)
            np.testing.assert_allclose(out[:, first:last + 1], x[:, first:last + 1], atol=1e-12)
            # outside the observed span the nearest observed frame is held
            np.testing.assert_allclose(out[:, :first], np.repeat(x[:, first:first + 1], first, axis=1), atol=1e-12)
            np.testing.assert_allclose(out[:, last + 1:], np.repeat(x[:, last:last + 1], 39 - last, axis=1), atol=1e-12)


def test_duplication_holds_the_last_observed_frame() -> None:
    x = linear_motion(10)
    clip = corrupt(x, "frame_drop", "moderate", 2)
    out = complete_duplicate(clip)
    for t in range(10):
        earlier = clip.frame_times[clip.frame_times <= t]
        source = earlier[-1] if len(earlier) else clip.frame_times[0]
        np.testing.assert_array_equal(out[:, t], x[:, source])


def test_completions_leave_unobserved_joints_zero_and_keep_full_clips() -> None:
    x = sequence()
    occluded = corrupt(x, "joint_occlusion", "moderate", 0)
    arms = list(occlusion_parts("ntu25")["left_arm"] + occlusion_parts("ntu25")["right_arm"])
    for method in COMPLETIONS:
        out = complete(occluded, method)
        assert not out[:, :, arms].any()
        np.testing.assert_array_equal(np.delete(out, arms, axis=2), np.delete(x, arms, axis=2))
    jittered = corrupt(x, "jitter", "minor", 0)
    for method in COMPLETIONS:
        np.testing.assert_array_equal(complete(jittered, method), jittered.sequence)
    dropped = corrupt(x, "frame_drop", "minor", 0)
    lost = np.setdiff1d(np.arange(40), dropped.frame_times)
    assert not complete(dropped, "none")[:, lost].any()
    with pytest.raises(UnknownNameError):
        complete(dropped, "cubic")
    with pytest.raises(UnknownNameError):
        corrupt(x, "frame_drop", "extreme", 0)
