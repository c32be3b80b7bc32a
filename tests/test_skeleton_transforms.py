"""Skeleton transforms and streams: behaviour a correct implementation has."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from actionfusion.modalities.skeleton.layouts import get_layout
from actionfusion.modalities.skeleton.transforms import (STEP_NAMES, build_skeleton_pipeline, center, make_stream,
                                                         mirror_flip, pre_normalize_3d, random_rotation,
                                                         random_scale, resize_time, to_bone, to_motion, to_skip,
                                                         unified_12ch, valid_crop_resize)
from actionfusion.modalities.skeleton.transforms_geometry import rotation_onto, rotation_xyz

FIXTURES = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures"

# pyskl JointToBone 'nturgb+d' pairs (child, parent), 0-based: the literature's NTU bone stream.
PYSKL_NTU_BONE_PAIRS = ((0, 1), (1, 20), (2, 20), (3, 2), (4, 20), (5, 4), (6, 5), (7, 6), (8, 20), (9, 8),
                        (10, 9), (11, 10), (12, 0), (13, 12), (14, 13), (15, 14), (16, 0), (17, 16), (18, 17),
                        (19, 18), (21, 22), (20, 20), (22, 7), (23, 24), (24, 11))


def _random_skeleton(num_joints: int = 25, m: int = 2, t: int = 20, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(m, t, num_joints, 3)).astype(np.float32)


def _fixture_actors(name: str = "S001C003P008R002A058") -> np.ndarray:
    path = FIXTURES / "ntu" / f"{name}.skeleton"
    if not path.exists():
        pytest.skip(f"NTU fixtures not found at {FIXTURES}: they live in ../shared beside the repo")
    from actionfusion.datasets.ntu.denoise import denoise_skeleton
    from actionfusion.datasets.ntu.skeleton_file import read_skeleton_file

    x, _ = denoise_skeleton(read_skeleton_file(path))
    return x


def _bone_lengths(x: np.ndarray) -> np.ndarray:
    return np.linalg.norm(to_bone(x, "ntu25"), axis=-1)


# ---- streams ---------------------------------------------------------------------------------
def test_ntu_bone_stream_is_the_literature_bone_pairs() -> None:
    x = _random_skeleton()
    expected = np.zeros_like(x)
    for child, parent in PYSKL_NTU_BONE_PAIRS:
        expected[..., child, :] = x[..., child, :] - x[..., parent, :]
    np.testing.assert_allclose(to_bone(x, "ntu25"), expected, atol=1e-6)


@pytest.mark.parametrize("name", ["ntu25", "coco17", "blazepose33", "nw_ucla20"])
def test_integrating_bones_along_parents_recovers_the_joints(name: str) -> None:
    lay = get_layout(name)
    x = _random_skeleton(lay.num_joints)
    bone = to_bone(x, lay)
    rebuilt = np.zeros_like(x)
    rebuilt[..., lay.center, :] = x[..., lay.center, :]
    done = {lay.center}
    while len(done) < lay.num_joints:
        for v, p in enumerate(lay.parents):
            if v not in done and p in done:
                rebuilt[..., v, :] = rebuilt[..., p, :] + bone[..., v, :]
                done.add(v)
    np.testing.assert_allclose(rebuilt, x, atol=1e-5)
    assert (bone[..., lay.center, :] == 0).all()


def test_skip_is_the_sum_of_two_consecutive_bones() -> None:
    lay = get_layout("ntu25")
    x = _random_skeleton()
    bone, skip = to_bone(x, lay), to_skip(x, lay)
    for v, p in enumerate(lay.parents):
        if p >= 0:
            np.testing.assert_allclose(skip[..., v, :], bone[..., v, :] + bone[..., p, :], atol=1e-5)
    assert (skip[..., lay.center, :] == 0).all()


def test_motion_of_a_still_pose_is_zero_and_of_a_drift_is_its_velocity() -> None:
    still = np.repeat(_random_skeleton(t=1), 12, axis=1)
    assert not to_motion(still).any()
    velocity = np.array([0.1, -0.2, 0.05], dtype=np.float32)
    drift = still + np.arange(12, dtype=np.float32)[None, :, None, None] * velocity
    motion = to_motion(drift)
    np.testing.assert_allclose(motion[:, :-1], np.broadcast_to(velocity, motion[:, :-1].shape), atol=1e-5)
    assert not motion[:, -1].any()


def test_make_stream_names_and_the_unified_12_channels() -> None:
    x = _random_skeleton()
    np.testing.assert_allclose(make_stream(x, "bone_motion", "ntu25"), to_motion(to_bone(x, "ntu25")))
    np.testing.assert_allclose(make_stream(x, "skip_motion", "ntu25"), to_motion(to_skip(x, "ntu25")))
    u = unified_12ch(x, "ntu25")
    assert u.shape == (2, 20, 25, 12) and u.dtype == np.float32
    np.testing.assert_array_equal(u[..., :3], x)
    np.testing.assert_allclose(u[..., 3:6], to_bone(x, "ntu25"))
    np.testing.assert_allclose(u[..., 6:9], to_motion(x))
    np.testing.assert_allclose(u[..., 9:], make_stream(x, "bone_motion", "ntu25"))
    with pytest.raises(ValueError, match="joint_motion"):
        make_stream(x, "velocity", "ntu25")


# ---- geometry ----------------------------------------------------------------------------------
def test_mirror_twice_is_identity_and_swaps_hands() -> None:
    lay = get_layout("ntu25")
    x = _random_skeleton()
    x[1, 3:] = 0.0  # a second actor that leaves
    once = mirror_flip(x, lay)
    np.testing.assert_array_equal(mirror_flip(once, lay), x)
    left, right = lay.index("HandLeft"), lay.index("HandRight")
    np.testing.assert_array_equal(once[..., left, 0], -x[..., right, 0])
    np.testing.assert_array_equal(once[..., left, 1:], x[..., right, 1:])
    np.testing.assert_array_equal(once[..., lay.index("Head"), 1:], x[..., lay.index("Head"), 1:])
    assert not np.signbit(once[1, 3:]).any() and not once[1, 3:].any()  # missing stays +0


def test_rotation_preserves_bone_lengths_and_missing_joints() -> None:
    x = _random_skeleton()
    x[1, 5:] = 0.0
    y = random_rotation(x, 0.3, np.random.default_rng(1))
    np.testing.assert_allclose(_bone_lengths(y), _bone_lengths(x), rtol=1e-5, atol=1e-6)
    assert not y[1, 5:].any()
    assert not np.allclose(y, x)
    rot = rotation_xyz([0.2, -0.1, 0.3])
    np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-12)
    assert np.isclose(np.linalg.det(rot), 1.0)
    c, s = np.cos(0.2), np.sin(0.2)  # CTR-GCN's rx for a rotation about x only
    np.testing.assert_allclose(rotation_xyz([0.2, 0.0, 0.0]), [[1, 0, 0], [0, c, s], [0, -s, c]], atol=1e-12)


def test_random_scale_scales_each_axis_by_one_factor_within_range() -> None:
    x = _random_skeleton() + 5.0
    y = random_scale(x, 0.1, np.random.default_rng(3))
    ratio = y / x
    factors = ratio[0, 0, 0]
    np.testing.assert_allclose(ratio, np.broadcast_to(factors, ratio.shape), rtol=1e-5)
    assert np.all(np.abs(factors - 1.0) <= 0.1) and not np.allclose(factors, 1.0)


def test_center_puts_actor1_spine_at_origin_and_keeps_zeros() -> None:
    x = _random_skeleton()
    x[0, :2] = 0.0  # actor 1 appears at frame 2
    x[1, 7:] = 0.0
    y = center(x, joint=1)
    np.testing.assert_array_equal(y[0, 2, 1], np.zeros(3))
    np.testing.assert_allclose(y[1, 0] - y[1, 1], x[1, 0] - x[1, 1], atol=1e-5)
    assert not y[0, :2].any() and not y[1, 7:].any()


def test_resize_time_matches_torch_bilinear_interpolation() -> None:
    x = _random_skeleton(t=37)
    for out_len in (16, 64, 100):
        ours = resize_time(x, out_len)
        m, t, v, c = x.shape
        flat = torch.from_numpy(x).permute(3, 2, 0, 1).reshape(1, 1, c * v * m, t)
        ref = F.interpolate(flat, size=(c * v * m, out_len), mode="bilinear", align_corners=False)
        ref = ref.reshape(c, v, m, out_len).permute(2, 3, 1, 0).numpy()
        np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_valid_crop_resize_test_mode_is_a_deterministic_centre_crop() -> None:
    x = np.zeros((2, 130, 25, 3), dtype=np.float32)
    x[:, :100] = np.arange(1, 101, dtype=np.float32)[None, :, None, None]  # value = frame + 1, 30 padded frames
    a = valid_crop_resize(x, 48, (0.95,), np.random.default_rng(0))
    b = valid_crop_resize(x, 48, (0.95,), np.random.default_rng(99))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (2, 48, 25, 3)
    # bias = int(0.05 * 100 / 2) = 2: frames 2..97 (values 3..98), sampled at (i + 0.5) * 2 - 0.5
    src = (np.arange(48) + 0.5) * 96 / 48 - 0.5
    np.testing.assert_allclose(a[0, :, 0, 0], 3.0 + src, atol=1e-4)


def test_valid_crop_resize_train_crops_at_least_64_valid_frames() -> None:
    x = np.zeros((1, 300, 25, 3), dtype=np.float32)
    x[:, :200] = np.arange(1, 201, dtype=np.float32)[None, :, None, None]
    rng = np.random.default_rng(5)
    for _ in range(20):
        y = valid_crop_resize(x, 64, (0.1, 0.2), rng)  # p * 200 <= 40 < 64: the 64-frame floor
        span = y[0, -1, 0, 0] - y[0, 0, 0, 0]
        assert y.shape == (1, 64, 25, 3) and y.min() >= 1 and y.max() <= 200
        assert 60 <= span <= 64  # a 64-frame crop resampled to 64 frames
    short = x[:, :40]  # shorter than 64 valid frames: the whole clip
    np.testing.assert_allclose(valid_crop_resize(short, 40, (0.5, 1.0), rng), short)
    with pytest.raises(ValueError, match="rng"):
        valid_crop_resize(x, 64, (0.5, 1.0), None)


# ---- pyskl PreNormalize3D --------------------------------------------------------------------------
def _angle(u: np.ndarray, v: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip(np.dot(u, v) / np.linalg.norm(u) / np.linalg.norm(v), -1, 1))))


def test_pre_normalize_3d_on_a_real_two_person_skeleton() -> None:
    x = _fixture_actors()
    y = pre_normalize_3d(x)
    assert y.shape[0] == 2 and y.shape[2:] == (25, 3)
    first = y[0, 0]
    np.testing.assert_allclose(first[1], 0.0, atol=1e-6)  # SpineMid of the main actor is the origin
    shoulders = first[8] - first[4]
    assert _angle(shoulders, np.array([1.0, 0.0, 0.0])) < 1e-3  # ShoulderLeft -> ShoulderRight on +x
    assert _angle(first[1] - first[0], np.array([0.0, 0.0, 1.0])) < 15.0  # spine near +z (exact before step 2)
    spine = x[0, 0, 1] - x[0, 0, 0]
    assert _angle(rotation_onto(spine, [0, 0, 1]) @ spine, np.array([0.0, 0.0, 1.0])) < 1e-3
    kept = np.any(y != 0, axis=(2, 3))
    assert kept[0].all()  # only the main actor's frames are kept
    present = np.any(x != 0, axis=(2, 3))
    main = int(np.argmax(present.sum(axis=1)))
    assert y.shape[1] == present[main].sum()
    np.testing.assert_allclose(_bone_lengths(y[:1]), _bone_lengths(x[main:main + 1][:, present[main]]), atol=1e-4)


def test_pre_normalize_3d_makes_the_longer_actor_the_main_one() -> None:
    x = _random_skeleton(t=10)
    x[0, 6:] = 0.0
    y = pre_normalize_3d(x, align_spine=False)
    np.testing.assert_allclose(y[0], x[1] - x[1, 0, 1], atol=1e-5)
    assert not y[1, 6:].any()


# ---- pipelines -----------------------------------------------------------------------------------
SPEC = [{"name": "valid_crop_resize", "out_len": 64, "p_interval": [0.5, 1]},
        {"name": "random_rotation", "max_angle": 0.3}, {"name": "stream", "stream": "bone"}]


def test_pipeline_from_data_trains_randomly_and_evaluates_deterministically() -> None:
    x = _random_skeleton(t=150)
    train = build_skeleton_pipeline(SPEC, layout="ntu25", train=True)
    a = train(x, np.random.default_rng(0))
    assert a.shape == (2, 64, 25, 3)
    np.testing.assert_array_equal(a, train(x, np.random.default_rng(0)))
    assert not np.allclose(a, train(x, np.random.default_rng(1)))
    test = build_skeleton_pipeline(SPEC, layout="ntu25", train=False)
    e = test(x, np.random.default_rng(0))
    np.testing.assert_array_equal(e, test(x, np.random.default_rng(7)))
    np.testing.assert_allclose(e, to_bone(valid_crop_resize(x, 64, (0.95,)), "ntu25"), atol=1e-6)
    again = pickle.loads(pickle.dumps(train))  # steps survive worker processes
    np.testing.assert_array_equal(again(x, np.random.default_rng(0)), a)


def test_pipeline_mirror_and_unified_steps() -> None:
    x = _random_skeleton(t=30)
    pipe = build_skeleton_pipeline([("mirror_flip", {"p": 1.0}), {"name": "unified_12ch"}], layout="ntu25")
    out = pipe(x, np.random.default_rng(0))
    np.testing.assert_allclose(out, unified_12ch(mirror_flip(x, "ntu25"), "ntu25"))


def test_pipeline_rejects_unknown_steps_and_options() -> None:
    with pytest.raises(ValueError) as err:
        build_skeleton_pipeline([{"name": "random_shear"}])
    assert all(name in str(err.value) for name in STEP_NAMES)
    with pytest.raises(ValueError, match="random_rotation"):
        build_skeleton_pipeline([{"name": "random_rotation", "theta": 0.3}])
    with pytest.raises(ValueError, match="stream"):
        build_skeleton_pipeline([{"name": "stream", "stream": "angle"}])
