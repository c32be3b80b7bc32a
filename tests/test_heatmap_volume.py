"""Pose heatmap volumes: peaks, sigma, missing joints, the loop reference, flips."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from actionfusion.modalities.pose.heatmap_volume import (
    HEATMAP_SIGMA, flip_heatmap_volume, flip_keypoints, heatmap_volume, keypoint_box, keypoints_to_heatmap,
    layout_limbs, limb_mirror_permutation, pixel_box_edges)
from actionfusion.modalities.skeleton.layouts import get_layout

REPO = Path(__file__).resolve().parents[1]


def _bench():
    """The benchmark module, which holds the per-joint loop reference."""
    path = REPO / "benchmarks" / "bench_heatmap_volume.py"
    spec = importlib.util.spec_from_file_location("bench_heatmap_volume", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BOX = (100.0, 50.0, 212.0, 162.0)  # 112 px square: 2 source pixels per heatmap pixel at 56


def _kp_at_heatmap(u: float, v: float, score: float, box=BOX, size=56) -> np.ndarray:
    """Source-pixel keypoint that maps to heatmap (u, v) under ``box``."""
    scale = (box[2] - box[0]) / size
    return np.array([(u + 0.5) * scale + box[0], (v + 0.5) * scale + box[1], score], dtype=np.float32)


def test_peak_at_keypoint_with_score_value():
    kp = np.zeros((1, 3, 17, 3), dtype=np.float32)
    targets = {(0, 5): (20, 31, 0.8), (1, 9): (7, 44, 1.0), (2, 16): (50, 3, 0.35)}
    for (t, k), (u, v, s) in targets.items():
        kp[0, t, k] = _kp_at_heatmap(u, v, s)
    vol = heatmap_volume(kp, box=BOX)
    assert vol.shape == (17, 3, 56, 56) and vol.dtype == np.float32
    for (t, k), (u, v, s) in targets.items():
        iy, ix = np.unravel_index(np.argmax(vol[k, t]), (56, 56))
        assert (ix, iy) == (u, v)
        assert vol[k, t, v, u] == pytest.approx(s, abs=1e-6)
    # everything else is empty
    mask = np.ones(vol.shape[:2], dtype=bool)
    for t, k in targets:
        mask[k, t] = False
    assert vol[mask].max() == 0


def test_auto_box_peak_within_a_pixel():
    rng = np.random.default_rng(3)
    kp = np.concatenate([rng.uniform([300, 200], [900, 800], size=(2, 4, 17, 2)),
                         rng.uniform(0.5, 1, size=(2, 4, 17, 1))], axis=-1).astype(np.float32)
    box = keypoint_box(kp)
    x0, y0, x1, y1 = box
    assert x1 - x0 == pytest.approx(y1 - y0)
    extent = max(np.ptp(kp[..., 0]), np.ptp(kp[..., 1]))
    assert x1 - x0 == pytest.approx(1.25 * extent, rel=1e-5)
    vol = heatmap_volume(kp[:1])  # one person: no overlap from the other
    uv = keypoints_to_heatmap(kp[:1], keypoint_box(kp[:1]), (56, 56))
    for t in range(4):
        for k in range(17):
            iy, ix = np.unravel_index(np.argmax(vol[k, t]), (56, 56))
            assert abs(ix - uv[0, t, k, 0]) <= 1 and abs(iy - uv[0, t, k, 1]) <= 1
            assert vol[k, t].max() <= kp[0, t, k, 2] + 1e-6


def test_sigma_at_known_offsets():
    sigma, score = 1.3, 0.7
    kp = _kp_at_heatmap(28, 20, score)[None, None, None]
    vol = heatmap_volume(kp, sigma=sigma, box=BOX)[0, 0]
    for du, dv in [(1, 0), (0, 2), (-2, 1), (3, -3)]:
        expected = score * np.exp(-(du * du + dv * dv) / (2 * sigma**2))
        assert vol[20 + dv, 28 + du] == pytest.approx(expected, rel=1e-5)
    assert vol[20, 28 + 4] == 0  # beyond 3 sigma (3.9 px): cut
    default = heatmap_volume(kp, box=BOX)[0, 0]
    assert default[20, 29] == pytest.approx(score * np.exp(-1 / (2 * HEATMAP_SIGMA**2)), rel=1e-5)


def test_missing_keypoints_give_zero_maps():
    rng = np.random.default_rng(0)
    kp = np.concatenate([rng.uniform(100, 400, size=(2, 5, 17, 2)), np.ones((2, 5, 17, 1))], axis=-1)
    kp = kp.astype(np.float32)
    kp[:, :, 3, 2] = 0  # joint 3: score 0 everywhere
    kp[:, 2, :, :2] = np.nan  # frame 2: nobody
    kp[0, 4, 7] = np.nan  # joint 7 of person 0 in frame 4 ...
    kp[1, 4, 7, 2] = 0  # ... and of person 1
    vol = heatmap_volume(kp, limbs=layout_limbs("coco17"))
    assert np.isfinite(vol).all()
    assert vol[3].max() == 0 and vol[:, 2].max() == 0 and vol[7, 4].max() == 0
    assert vol[0, 0].max() > 0
    limbs = layout_limbs("coco17")
    for i, (a, b) in enumerate(limbs):  # limbs touching joint 3 are absent too
        if 3 in (a, b):
            assert vol[17 + i].max() == 0
    empty = np.full((1, 4, 17, 3), np.nan, dtype=np.float32)
    assert keypoint_box(empty) is None
    assert heatmap_volume(empty).shape == (17, 4, 56, 56) and heatmap_volume(empty).max() == 0


@pytest.mark.parametrize("with_limbs", [False, True])
def test_vectorised_equals_loop_reference(with_limbs):
    bench = _bench()
    kp = bench.make_keypoints(np.random.default_rng(7), persons=2, frames=6)
    kp[0, 1, 4, 2] = 0
    kp[1, 3, :5] = np.nan
    kp[1, 5, 9:11, :2] = kp[1, 5, 7, :2]  # a limb shorter than a pixel (wrist at the elbow)
    limbs = layout_limbs("coco17") if with_limbs else None
    fast = heatmap_volume(kp, limbs=limbs, frame_chunk=4)  # chunk boundary inside the clip
    slow = bench.loop_heatmap_volume(kp, limbs=limbs)
    assert fast.shape == slow.shape == (17 + (16 if with_limbs else 0), 6, 56, 56)
    np.testing.assert_allclose(fast, slow, atol=1e-5)
    assert fast.max() > 0.9
    if with_limbs:
        np.testing.assert_array_equal(heatmap_volume(kp, with_joints=False, limbs=limbs, frame_chunk=4), fast[17:])


def test_flip_swaps_left_right_and_mirrors_x():
    layout = get_layout("coco17")
    rng = np.random.default_rng(1)
    kp = np.concatenate([rng.uniform([200, 100], [1000, 900], size=(2, 3, 17, 2)),
                         rng.uniform(0.4, 1, size=(2, 3, 17, 1))], axis=-1).astype(np.float32)
    limbs = layout_limbs(layout)
    vol = heatmap_volume(kp, limbs=limbs)
    flipped_kp = flip_keypoints(kp, layout, image_width=1920)
    left_shoulder, right_shoulder = layout.index("left_shoulder"), layout.index("right_shoulder")
    assert flipped_kp[0, 0, left_shoulder, 0] == pytest.approx(1919 - kp[0, 0, right_shoulder, 0])
    assert flipped_kp[0, 0, left_shoulder, 2] == kp[0, 0, right_shoulder, 2]
    # heatmaps of the mirrored keypoints == the mirrored heatmaps, channel for channel
    np.testing.assert_allclose(heatmap_volume(flipped_kp, limbs=limbs),
                               flip_heatmap_volume(vol, layout, limbs=limbs), atol=1e-5)
    flipped = flip_heatmap_volume(vol, layout, limbs=limbs)
    np.testing.assert_array_equal(flipped[left_shoulder], vol[right_shoulder, :, :, ::-1])
    np.testing.assert_array_equal(flipped[0], vol[0, :, :, ::-1])  # the nose stays
    assert not np.array_equal(flipped[left_shoulder], vol[left_shoulder, :, :, ::-1])
    perm = limb_mirror_permutation(limbs, layout)
    assert sorted(perm) == list(range(len(limbs))) and (perm != np.arange(len(limbs))).any()
    np.testing.assert_array_equal(flip_heatmap_volume(flipped, layout, limbs=limbs), vol)  # an involution


def test_explicit_pixel_box_and_bad_input():
    kp = _kp_at_heatmap(10, 10, 1.0, box=pixel_box_edges((0, 0, 112, 112)))[None, None, None]
    assert kp[0, 0, 0, 0] == pytest.approx(20.5)  # heatmap pixel 10 covers source pixels 20 and 21
    vol = heatmap_volume(kp, box=pixel_box_edges((0, 0, 112, 112)))
    assert vol[0, 0, 10, 10] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        heatmap_volume(np.zeros((2, 4, 17), dtype=np.float32))
    with pytest.raises(ValueError):
        heatmap_volume(kp, limbs=[(0, 5)])
    with pytest.raises(ValueError):
        flip_keypoints(np.zeros((1, 2, 25, 3), np.float32), "coco17", 100)


FIXTURES = REPO / ".." / "shared" / "fixtures" / "ntu"


def test_ntu_two_person_colour_keypoints():
    """Real NTU skeleton: colorX/Y of both actors as 2D keypoints (ntu25, with limbs)."""
    path = FIXTURES / "S001C003P008R002A058.skeleton"
    if not path.is_file():
        pytest.skip(f"NTU fixtures not found at {FIXTURES}: they live in ../shared beside the repo")
    from actionfusion.datasets.ntu.skeleton_file import JOINT_FIELDS, read_skeleton_file

    joints = read_skeleton_file(path).joints[:, :24]  # [B, 24 first frames, 25, 12]
    col = [JOINT_FIELDS.index("colorX"), JOINT_FIELDS.index("colorY")]
    xy = joints[..., col]
    score = np.isfinite(xy).all(axis=-1, keepdims=True).astype(np.float32)
    kp = np.concatenate([xy, score], axis=-1)
    assert kp.shape[0] >= 2 and score.sum() > 0
    limbs = layout_limbs("ntu25")
    vol = heatmap_volume(kp, limbs=limbs)
    assert vol.shape == (25 + 24, kp.shape[1], 56, 56) and 0 <= vol.min() and vol.max() <= 1
    uv = keypoints_to_heatmap(kp, keypoint_box(kp), (56, 56))
    assert np.nanmin(uv[..., :2]) > 2 and np.nanmax(uv[..., :2]) < 53  # the padding keeps joints inside
    for t in range(0, kp.shape[1], 6):
        for k in range(25):
            if score[:, t, k, 0].max() == 0:
                assert vol[k, t].max() == 0
                continue
            iy, ix = np.unravel_index(np.argmax(vol[k, t]), (56, 56))
            near = [abs(ix - uv[b, t, k, 0]) <= 1 and abs(iy - uv[b, t, k, 1]) <= 1
                    for b in range(kp.shape[0]) if score[b, t, k, 0] > 0]
            assert any(near)  # the peak is at one of the actors' joint k
    np.testing.assert_allclose(heatmap_volume(flip_keypoints(kp, "ntu25", 1920), limbs=limbs),
                               flip_heatmap_volume(vol, "ntu25", limbs=limbs), atol=2e-4)  # float32 x ~ 1e3 px
