"""CTR-GCN/MAMP body denoising and actor selection."""

from pathlib import Path

import numpy as np
import pytest

from actionfusion.datasets.ntu.denoise import center_on_first_frame, denoise_skeleton
from actionfusion.datasets.ntu.skeleton_file import SkeletonFile

FIXTURES = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures"

_RNG = np.random.default_rng(0)
# A standing person: narrow in x (0.5 m), tall in y (1.6 m), 3 m from the camera.
PERSON = np.stack([_RNG.uniform(-0.25, 0.25, 25), np.linspace(-0.8, 0.8, 25), np.full(25, 3.0)], axis=1)
PERSON[0, 0], PERSON[1, 0] = -0.25, 0.25  # pin the x-range to exactly 0.5 m
# A "body" lying sideways: wide in x, flat in y (the lineage's spread-noise pattern).
SIDEWAYS = PERSON[:, [1, 0, 2]]


def body_track(template, frames, sway=0.0, offset=(0.0, 0.0, 0.0)):
    """float32 [n, 25, 3]: the template moved sideways by ``sway * sin`` over the frames."""
    t = np.asarray(frames, dtype=np.float64)
    shift = np.zeros((t.size, 1, 3))
    shift[:, 0, 0] = sway * np.sin(t / 5.0)
    return (template[None] + shift + np.asarray(offset)).astype(np.float32)


def make_skeleton(num_frames, bodies):
    """SkeletonFile from ``[(body_id, frames, joints [n, 25, 3]), ...]``."""
    count = len(bodies)
    joints = np.full((count, num_frames, 25, 12), np.nan, dtype=np.float32)
    info = np.full((count, num_frames, 9), np.nan, dtype=np.float32)
    order = np.full((count, num_frames), -1, dtype=np.int16)
    for b, (_, frames, xyz) in enumerate(bodies):
        frames = np.asarray(frames)
        joints[b, frames] = 0.0
        joints[b, frames, :, :3] = xyz
        info[b, frames] = 0.0
        order[b, frames] = (order[:, frames] >= 0).sum(axis=0)
    ids = np.array([b[0] for b in bodies], dtype=np.int64)
    return SkeletonFile(num_frames=num_frames, body_ids=ids, joints=joints, body_info=info, body_order=order)


def test_noisy_spread_body_is_dropped_with_reason():
    frames = np.arange(40)
    sk = make_skeleton(40, [(11, frames, body_track(PERSON, frames, 0.1)),
                            (22, frames, body_track(SIDEWAYS, frames, 0.3, (1.0, 0, 0)))])
    x, report = denoise_skeleton(sk)
    assert x.shape == (2, 40, 25, 3) and x.dtype == np.float32
    assert report.reason_for(22) == "spread_noise"
    dropped = next(d for d in report.dropped_bodies if d.body_id == 22)
    assert dropped.noise_ratio == pytest.approx(1.0)
    assert report.actor_bodies == ((11,), ())
    np.testing.assert_array_equal(x[0], body_track(PERSON, frames, 0.1))
    assert not x[1].any()


def test_spread_filter_keeps_mostly_clean_body_and_never_drops_the_last():
    frames = np.arange(30)
    mostly_clean = body_track(PERSON, frames, 0.1)
    mostly_clean[:10] = body_track(SIDEWAYS, frames[:10])  # 1/3 noisy < 0.69754
    sk = make_skeleton(30, [(1, frames, mostly_clean), (2, frames, body_track(PERSON, frames, 0.0, (1, 0, 0)))])
    _, report = denoise_skeleton(sk)
    assert report.dropped_bodies == ()
    # two sideways bodies: the first is dropped, the last one left is kept
    sk = make_skeleton(30, [(1, frames, body_track(SIDEWAYS, frames)), (2, frames, body_track(SIDEWAYS, frames, 0.2))])
    x, report = denoise_skeleton(sk)
    assert [d.body_id for d in report.dropped_bodies] == [1]
    assert report.actor_bodies[0] == (2,)


def test_spread_filter_visits_bodies_in_order_of_first_appearance():
    late, early = np.arange(5, 30), np.arange(0, 30)
    # body 1 is listed first but appears at frame 5; body 2 appears at frame 0, so it is
    # tested (and dropped) first, and body 1, the last one left, is kept
    sk = make_skeleton(30, [(1, late, body_track(SIDEWAYS, late)), (2, early, body_track(SIDEWAYS, early, 0.2))])
    _, report = denoise_skeleton(sk)
    assert [d.body_id for d in report.dropped_bodies] == [2]
    assert report.actor_bodies[0] == (1,)


@pytest.mark.parametrize("length, dropped", [(11, True), (12, False)])
def test_body_with_at_most_11_frames_is_dropped(length, dropped):
    long_frames, short_frames = np.arange(50), np.arange(20, 20 + length)
    sk = make_skeleton(50, [(1, long_frames, body_track(PERSON, long_frames, 0.1)),
                            (2, short_frames, body_track(PERSON, short_frames, 0.5, (1, 0, 0)))])
    _, report = denoise_skeleton(sk)
    assert (report.reason_for(2) == "too_few_frames") is dropped
    if not dropped:  # 12 frames with more motion: it is kept (in a slot)
        assert 2 in report.actor_bodies[0] + report.actor_bodies[1]


def test_lone_short_body_is_kept():
    frames = np.arange(5)
    x, report = denoise_skeleton(make_skeleton(5, [(7, frames, body_track(PERSON, frames))]))
    assert report.dropped_bodies == () and report.actor_bodies == ((7,), ())
    assert x.shape == (2, 5, 25, 3) and x[0].any() and not x[1].any()


def test_all_bodies_short_keeps_the_longest():
    a, b = np.arange(0, 6), np.arange(6, 15)
    sk = make_skeleton(15, [(1, a, body_track(PERSON, a, 0.4)), (2, b, body_track(PERSON, b, 0.1))])
    x, report = denoise_skeleton(sk)
    assert report.fallback is not None and report.actor_bodies == ((2,), ())
    assert report.reason_for(1) == "too_few_frames"
    np.testing.assert_array_equal(report.kept_frames, b)  # frames of the dropped body are all zero
    assert x.shape == (2, 9, 25, 3)


def test_non_overlapping_body_fills_actor_one_slot():
    first, second = np.arange(0, 40), np.arange(40, 80)
    sk = make_skeleton(80, [(1, first, body_track(PERSON, first, 0.3)),
                            (2, second, body_track(PERSON, second, 0.1, (0.5, 0, 0)))])
    x, report = denoise_skeleton(sk)
    assert report.actor_bodies == ((1, 2), ())
    assert x.shape == (2, 80, 25, 3)
    np.testing.assert_array_equal(x[0, 40:], body_track(PERSON, second, 0.1, (0.5, 0, 0)))
    assert not x[1].any()


def test_overlapping_bodies_rank_by_motion():
    frames = np.arange(60)
    calm = body_track(PERSON, frames, 0.01)
    lively = body_track(PERSON, frames, 0.4, (1.0, 0, 0))
    x, report = denoise_skeleton(make_skeleton(60, [(5, frames, calm), (9, frames, lively)]))
    assert report.actor_bodies == ((9,), (5,))
    assert report.motion[9] > report.motion[5]
    np.testing.assert_array_equal(x[0], lively)
    np.testing.assert_array_equal(x[1], calm)
    # with one actor slot the overlapping body has nowhere to go
    x1, report1 = denoise_skeleton(make_skeleton(60, [(5, frames, calm), (9, frames, lively)]), max_actors=1)
    assert x1.shape == (1, 60, 25, 3) and report1.reason_for(5) == "overlaps_all_actors"


def test_empty_and_all_zero_frames_are_dropped():
    main = np.arange(2, 50)  # frames 0, 1 have no body at all
    noisy = np.arange(2, 60)  # frames 50-59: only the noisy body, which is dropped
    sk = make_skeleton(62, [(1, main, body_track(PERSON, main, 0.1)), (2, noisy, body_track(SIDEWAYS, noisy))])
    x, report = denoise_skeleton(sk)
    assert report.empty_frames == (0, 1, 60, 61)
    assert report.zero_frames == tuple(range(50, 60))
    np.testing.assert_array_equal(report.kept_frames, np.arange(2, 50))
    assert x.shape == (2, 48, 25, 3)
    np.testing.assert_array_equal(x[0], body_track(PERSON, main, 0.1))


def test_file_without_bodies():
    empty = SkeletonFile(3, np.zeros(0, np.int64), np.zeros((0, 3, 25, 12), np.float32),
                         np.zeros((0, 3, 9), np.float32), np.zeros((0, 3), np.int16))
    x, report = denoise_skeleton(empty)
    assert x.shape == (2, 0, 25, 3) and report.no_bodies and report.empty_frames == (0, 1, 2)


def test_center_on_first_frame():
    x = np.zeros((2, 4, 25, 3), dtype=np.float32)
    x[0, 1:] = body_track(PERSON, np.arange(3), 0.2)  # actor 1 missing in frame 0
    x[1, :3] = body_track(PERSON, np.arange(3), 0.0, (1, 0, 0))  # actor 2 missing in frame 3
    out = center_on_first_frame(x)
    origin = x[0, 1, 1]
    np.testing.assert_allclose(out[0, 1, 1], 0.0)
    np.testing.assert_allclose(out[0, 2:], x[0, 2:] - origin)
    np.testing.assert_allclose(out[1, :3], x[1, :3] - origin)
    assert not out[0, 0].any() and not out[1, 3].any()
    assert not np.shares_memory(out, x)


# ----------------------------------------------------------------- real fixtures

def _read_fixture(name):
    path = FIXTURES / "ntu" / f"{name}.skeleton"
    if not path.is_file():
        pytest.skip(f"NTU fixtures not found at {path.parent}: they live in ../shared beside the repo")
    module = pytest.importorskip("actionfusion.datasets.ntu.skeleton_file")
    if not hasattr(module, "read_skeleton_file"):
        pytest.skip("read_skeleton_file is not in skeleton_file.py yet")
    return module.read_skeleton_file(path)


def test_two_person_fixture_gives_two_actors():
    sk = _read_fixture("S001C003P008R002A058")
    x, report = denoise_skeleton(sk)
    assert x.shape[0] == 2 and x.shape[1] > 11
    assert x[0].any(axis=(1, 2)).mean() > 0.9 and x[1].any(axis=(1, 2)).mean() > 0.9
    slot_ids = [ids for ids in report.actor_bodies]
    assert all(len(ids) >= 1 for ids in slot_ids) and not set(slot_ids[0]) & set(slot_ids[1])
    # the two performers stand apart: their SpineMid joints differ by tens of centimetres
    both = x[0].any(axis=(1, 2)) & x[1].any(axis=(1, 2))
    gap = np.linalg.norm(x[0, both, 1] - x[1, both, 1], axis=-1)
    assert np.median(gap) > 0.3


@pytest.mark.parametrize("name", ["S001C001P001R001A011", "S002C001P003R001A003"])
def test_single_person_fixtures_give_one_actor(name):
    sk = _read_fixture(name)
    x, report = denoise_skeleton(sk)
    assert x[0].any() and not x[1].any()
    assert x.shape[1] == len(report.kept_frames) == sk.num_frames - len(report.empty_frames) - len(report.zero_frames)
    centred = center_on_first_frame(x)
    first = np.flatnonzero(x[0].any(axis=(1, 2)))[0]
    np.testing.assert_allclose(centred[0, first, 1], 0.0, atol=1e-6)
