"""The Kinect v2 colour-to-depth map reproduces the real NTU fixtures' depthX/Y from colorX/Y."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from actionfusion.datasets.ntu.skeleton_file import read_skeleton_file
from actionfusion.geometry import KINECT_V2_COLOR_APPROX, KINECT_V2_DEPTH_3DV
from actionfusion.modalities.pose.color_to_depth import (NTU_KINECT_C001, NTU_KINECT_C003, fit_color_to_depth,
                                                         get_color_to_depth, mapping_errors, synthetic_color_to_depth)

FIXTURES = Path("/work/shared/fixtures/ntu")
needs_fixtures = pytest.mark.skipif(not any(FIXTURES.glob("*.skeleton")),
                                    reason=f"no real NTU .skeleton fixtures under {FIXTURES} (/work/shared absent)")


def _pairs(camera: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = []
    for path in sorted(FIXTURES.glob(f"S???{camera}*.skeleton")):
        j = read_skeleton_file(path).joints.reshape(-1, 12)
        rows.append(j[np.isfinite(j[:, :7]).all(axis=1)])
    j = np.concatenate(rows).astype(np.float64)
    return j[:, 5:7], j[:, 3:5], j[:, 2]


@needs_fixtures
@pytest.mark.parametrize("camera, mapping, p95_px", [("C001", NTU_KINECT_C001, 0.11), ("C003", NTU_KINECT_C003, 0.14)])
def test_shipped_constants_reproduce_fixture_depth_pixels(camera: str, mapping, p95_px: float) -> None:
    color, depth, z = _pairs(camera)
    assert len(z) >= 3500  # thousands of real correspondences
    err = mapping_errors(mapping, color, depth, z)
    assert err["mean"] < 0.08 and err["p95"] < p95_px and err["max"] < 0.2, err  # the documented error


@needs_fixtures
def test_depth_term_is_needed_and_cameras_differ() -> None:
    color, depth, z = _pairs("C001")
    affine = fit_color_to_depth(color, depth, z, inverse_depth=False)
    assert mapping_errors(affine, color, depth, z)["mean"] > 0.9  # without 1/z: about 1 px
    other = mapping_errors(NTU_KINECT_C003, color, depth, z)
    assert other["mean"] > 10  # another Kinect unit's constants are ~14 px off
    assert get_color_to_depth("ntu_by_camera", camera=3) is NTU_KINECT_C003


@needs_fixtures
def test_apply_on_depth_recovers_z_from_the_depth_image() -> None:
    """With no z given, reading it off a depth image gives the same pixels as the true z."""
    color, depth, z = _pairs("C003")
    image = np.zeros((424, 512), np.uint16)
    sel = slice(0, 25)  # one frame's joints
    for (u, v), zz in zip(np.round(depth[sel]).astype(int), z[sel]):
        image[max(v - 3, 0):v + 4, max(u - 3, 0):u + 4] = int(zz * 1000)
    mapped = NTU_KINECT_C003.apply_on_depth(color[sel], image, iterations=2)
    assert np.abs(mapped - depth[sel]).max() < 0.6


def test_synthetic_map_is_the_shared_centre_pinhole_map() -> None:
    m = synthetic_color_to_depth()
    xyz = np.array([[0.3, -0.2, 2.5], [-0.5, 0.6, 3.7]])
    c, d = KINECT_V2_COLOR_APPROX, KINECT_V2_DEPTH_3DV
    color = np.stack([c.fx * xyz[:, 0] / xyz[:, 2] + c.cx, c.cy - c.fy * xyz[:, 1] / xyz[:, 2]], 1)
    depth = np.stack([d.fx * xyz[:, 0] / xyz[:, 2] + d.cx, d.cy - d.fy * xyz[:, 1] / xyz[:, 2]], 1)
    np.testing.assert_allclose(m.apply(color, xyz[:, 2]), depth, atol=1e-3)
