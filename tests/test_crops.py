"""Person boxes, colour-coordinate scaling, RGB and depth crops."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actionfusion.modalities.depth.depth_crop import crop_depth, depth_box_from_skeleton, normalize_depth
from actionfusion.modalities.rgb.person_crop import (
    crop_and_resize,
    crop_box,
    person_box_from_points,
    scale_color_xy_to_video,
)


def _contains(box: tuple[int, int, int, int], xy: np.ndarray) -> bool:
    x0, y0, x1, y1 = box
    pts = xy[np.isfinite(xy).all(axis=1)]
    return bool(((pts[:, 0] >= x0) & (pts[:, 0] <= x1) & (pts[:, 1] >= y0) & (pts[:, 1] <= y1)).all())


@settings(max_examples=200, deadline=None)
@given(
    cx=st.floats(0, 1919), cy=st.floats(0, 1079), spread_x=st.floats(0, 300), spread_y=st.floats(0, 300),
    padding=st.floats(0, 0.5), seed=st.integers(0, 2**16),
)
def test_box_contains_points_square_and_inside_image(cx, cy, spread_x, spread_y, padding, seed) -> None:
    rng = np.random.default_rng(seed)
    xy = np.stack([cx + rng.uniform(-spread_x, spread_x, 40), cy + rng.uniform(-spread_y, spread_y, 40)], axis=1)
    xy = np.clip(xy, 0, [1919, 1079])
    xy[rng.random(40) < 0.2] = np.nan  # absent joints
    xy[0] = [cx, cy]
    box = person_box_from_points(xy.reshape(2, 20, 2), (1080, 1920), padding=padding)
    x0, y0, x1, y1 = box
    assert 0 <= x0 < x1 <= 1920 and 0 <= y0 < y1 <= 1080
    assert x1 - x0 == y1 - y0  # a square fits: padded spans stay under 1080 px here
    assert x1 - x0 >= 32
    assert _contains(box, xy)
    finite = xy[np.isfinite(xy).all(axis=1)]
    tight = max(np.ptp(finite[:, 0]), np.ptp(finite[:, 1]))
    assert x1 - x0 >= min(tight * (1 + padding), 1080) - 1


def test_padding_enlarges_each_side_by_factor() -> None:
    xy = np.array([[900.0, 400.0], [1000.0, 600.0]])  # 100 wide, 200 tall, centre (950, 500)
    box = person_box_from_points(xy, (1080, 1920), padding=0.25, square=False)
    assert box == (887, 375, 1014, 626)  # 125 x 250 around the centre, rounded outward
    square = person_box_from_points(xy, (1080, 1920), padding=0.25, square=True)
    assert square == (825, 375, 1076, 626)


def test_box_is_shifted_inside_not_shrunk() -> None:
    xy = np.array([[5.0, 5.0], [105.0, 105.0]])
    box = person_box_from_points(xy, (1080, 1920), padding=0.5)
    assert box == (0, 0, 151, 151)
    corner = person_box_from_points(np.array([[1915.0, 1075.0], [1919.0, 1079.0]]), (1080, 1920), padding=0.0)
    assert corner == (1920 - 33, 1080 - 33, 1920, 1080)  # min_size (rounded outward), shifted in


def test_box_larger_than_image_is_cut_to_image() -> None:
    xy = np.array([[100.0, 100.0], [1800.0, 900.0]])
    x0, y0, x1, y1 = person_box_from_points(xy, (1080, 1920), padding=0.25)
    assert (y0, y1) == (0, 1080) and x1 - x0 == 1920


def test_no_points_gives_centre_square() -> None:
    assert person_box_from_points(np.full((3, 25, 2), np.nan), (1080, 1920)) == (420, 0, 1500, 1080)


def test_scale_color_xy_to_video() -> None:
    xy = np.array([[0.0, 0.0], [1919.0, 1079.0], [959.5, 539.5], [np.nan, 3.0]])
    out = scale_color_xy_to_video(xy, (540, 960))
    np.testing.assert_allclose(out[:3], [[-0.25, -0.25], [959.25, 539.25], [479.5, 269.5]])
    assert np.isnan(out[3, 0])
    np.testing.assert_allclose(scale_color_xy_to_video(xy[:3], (1080, 1920)), xy[:3])


def test_crop_and_resize_area_and_padding() -> None:
    frame = np.zeros((100, 200, 3), dtype=np.uint8)
    frame[:, 100:] = 200
    out = crop_and_resize(frame, (50, 0, 150, 100), 10)
    assert out.shape == (10, 10, 3) and out.dtype == np.uint8
    assert (out[:, :5] == 0).all() and (out[:, 5:] == 200).all()  # INTER_AREA keeps the edge sharp here
    outside = crop_box(frame, (-10, -10, 10, 10))
    assert outside.shape == (20, 20, 3)
    assert (outside[:10] == 0).all() and (outside[10:, 10:] == frame[:10, :10]).all()


def test_depth_box_and_nearest_crop_never_mixes_values() -> None:
    rng = np.random.default_rng(3)
    depth = np.zeros((424, 512), dtype=np.uint16)
    depth[150:300, 200:280] = rng.integers(3000, 3500, (150, 80))
    joints = np.array([[205.0, 155.0], [275.0, 295.0], [np.nan, np.nan]])
    box = depth_box_from_skeleton(joints)
    x0, y0, x1, y1 = box
    assert x1 - x0 == y1 - y0 and 0 <= x0 and x1 <= 512 and 0 <= y0 and y1 <= 424
    assert _contains(box, joints)
    crop = crop_depth(depth, box, 64)
    assert crop.shape == (64, 64) and crop.dtype == np.uint16
    values = set(np.unique(crop).tolist())
    assert values <= set(np.unique(depth).tolist())  # nearest: every value is a measured one or 0
    assert 0 in values and len(values) > 100


def test_normalize_depth() -> None:
    depth = np.array([0, 500, 2500, 4500, 6000], dtype=np.uint16)
    out = normalize_depth(depth, near_mm=500, far_mm=4500)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [0.0, 1.0, 0.5, 0.0, 0.0])
    with pytest.raises(ValueError):
        normalize_depth(depth, near_mm=10, far_mm=10)
