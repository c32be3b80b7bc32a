"""Back-projection on the real NTU fixtures, background removal, and point sampling."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from actionfusion.geometry import KINECT_V2_DEPTH_3DV
from actionfusion.modalities.pointcloud.backproject import depth_to_points, remove_background
from actionfusion.modalities.pointcloud.sampling import (
    farthest_point_sample,
    sample_points,
    voxel_downsample,
)
from actionfusion.modalities.pointcloud.batched_sampling import farthest_point_sample_batched, sample_points_batched

FIXTURES = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures"
NTU = FIXTURES / "ntu"
DEPTH_DIR = NTU / "nturgb+d_depth_masked" / "S001C001P001R001A058"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"NTU fixtures not found at {FIXTURES}: they live in ../shared beside the repo")
    return path


def _joint_rows(path: Path) -> np.ndarray:
    """All joint rows of a .skeleton file as float64 [J, 12] (x y z depthX depthY colorX ...)."""
    rows = [line.split() for line in path.read_text().splitlines()]
    return np.array([[float(v) for v in row] for row in rows if len(row) == 12])


def _masked_depth(frame: int) -> np.ndarray:
    depth = cv2.imread(str(_need(DEPTH_DIR) / f"MDepth-{frame:08d}.png"), cv2.IMREAD_UNCHANGED)
    assert depth is not None and depth.dtype == np.uint16 and depth.shape == (424, 512)
    return depth


# ----------------------------------------------------------------------------- back-projection


@pytest.mark.parametrize(
    "name", ["S001C001P001R001A011", "S002C001P003R001A003", "S001C003P008R002A058"]
)
def test_backproject_reproduces_skeleton_camera_coordinates(name: str) -> None:
    joints = _joint_rows(_need(NTU / f"{name}.skeleton"))
    lifted = KINECT_V2_DEPTH_3DV.backproject(joints[:, 3], joints[:, 4], joints[:, 2])
    error_m = np.abs(lifted[:, :2] - joints[:, :2])
    # Measured on these files: at most 2.4 cm for camera 1 and 5.7 cm for camera 3, whose
    # principal point sits about 5 px right of the 3DV cx (per-file fits give cx 256.3-262.5).
    tolerance_m = 0.025 if "C001" in name else 0.06
    assert error_m.max() <= tolerance_m
    # What remains is a constant principal-point offset, not a wrong formula: in pixels the
    # residual varies by well under a pixel once its per-file mean is removed.
    pixel_residual = joints[:, 3:5] - KINECT_V2_DEPTH_3DV.project(joints[:, :3])
    assert np.abs(pixel_residual - pixel_residual.mean(axis=0)).max() < 1.2
    assert pixel_residual.std(axis=0).max() < 0.5


def test_masked_depth_fixture_back_projects_to_plausible_person() -> None:
    depth = _masked_depth(1)
    points = depth_to_points(depth)
    assert points.dtype == np.float32 and points.shape == (int((depth > 0).sum()), 3)
    assert ((points[:, 2] > 1.5) & (points[:, 2] < 5.0)).all()
    # two performers (A058) about 3.3-4.2 m away, roughly in front of the camera
    centroid = points.mean(axis=0)
    assert abs(centroid[0]) < 1.0 and abs(centroid[1]) < 1.0 and 3.0 < centroid[2] < 4.5
    extent = points.max(axis=0) - points.min(axis=0)
    assert 1.2 < extent[1] < 2.2  # about one body height
    # projecting back lands on exactly the pixels that were lifted
    rows, cols = np.nonzero(depth)
    np.testing.assert_allclose(KINECT_V2_DEPTH_3DV.project(points), np.stack([cols, rows], 1), atol=1e-3)


def test_depth_to_points_range_mask_and_roi() -> None:
    depth = _masked_depth(10)
    all_points = depth_to_points(depth)
    near = depth_to_points(depth, max_mm=3600)
    assert 0 < len(near) < len(all_points) and near[:, 2].max() <= 3.6
    mask = np.zeros(depth.shape, bool)
    mask[:, :256] = True
    left = depth_to_points(depth, mask=mask)
    roi = depth_to_points(depth, roi=(0, 0, 256, 424))
    np.testing.assert_array_equal(left, roi)
    assert len(left) == int((depth[:, :256] > 0).sum())


def test_remove_background_recovers_the_person() -> None:
    masked = _masked_depth(20)
    full = masked.copy()
    full[masked == 0] = 5500  # a wall behind the performers
    full[400:, :] = 2000  # and something near the camera at the bottom
    rows, cols = np.nonzero(masked)
    points = depth_to_points(masked)
    # stand-in "joints": extreme pixels plus a few inner ones, as (x, y, z, depthX, depthY)
    picks = [points[:, 0].argmin(), points[:, 0].argmax(), points[:, 1].argmin(), points[:, 1].argmax(),
             points[:, 2].argmin(), points[:, 2].argmax(), *range(0, len(points), 997)]
    joints = np.concatenate([points[picks], np.stack([cols[picks], rows[picks]], 1)], axis=1)
    cleaned = remove_background(full, joints, margin_m=0.1)
    np.testing.assert_array_equal(cleaned, masked)


# ----------------------------------------------------------------------------- sampling


def _reference_fps(points: np.ndarray, n: int, start: int) -> list[int]:
    """A straightforward O(nP) farthest-point sampling with Python loops."""
    chosen = [start]
    nearest = [float("inf")] * len(points)
    for _ in range(n - 1):
        last = points[chosen[-1]]
        best, best_dist = 0, -1.0
        for i, p in enumerate(points):
            d = sum((float(p[k]) - float(last[k])) ** 2 for k in range(3))
            nearest[i] = min(nearest[i], d)
            if nearest[i] > best_dist:
                best, best_dist = i, nearest[i]
        chosen.append(best)
    return chosen


def _coverage(points: np.ndarray, sample: np.ndarray) -> tuple[float, float]:
    """(mean, max) distance from each point to its nearest sampled point."""
    dist = torch.cdist(torch.from_numpy(points).double(), torch.from_numpy(sample).double()).min(dim=1).values
    return float(dist.mean()), float(dist.max())


def _structured_cloud(rng: np.random.Generator) -> np.ndarray:
    """A dense blob plus a sparse sheet: random sampling under-covers the sheet."""
    blob = rng.normal(0, 0.05, (3000, 3))
    sheet = np.stack([rng.uniform(-1, 1, 300), rng.uniform(-1, 1, 300), np.full(300, 0.5)], 1)
    return np.concatenate([blob, sheet]).astype(np.float32)


def test_exact_fps_equals_reference_loop() -> None:
    points = np.random.default_rng(1).normal(size=(150, 3))
    np.testing.assert_array_equal(farthest_point_sample(points, 40, start_index=7), _reference_fps(points, 40, 7))


def test_batched_torch_fps_equals_per_cloud_fps_with_padding() -> None:
    rng = np.random.default_rng(2)
    sizes = [300, 180, 257]
    clouds = [rng.normal(size=(s, 3)) for s in sizes]
    padded = torch.zeros(3, 300, 3, dtype=torch.float64)
    valid = torch.zeros(3, 300, dtype=torch.bool)
    for b, cloud in enumerate(clouds):
        padded[b, : len(cloud)] = torch.from_numpy(cloud)
        valid[b, : len(cloud)] = True
    padded[1, 180:] = 100.0  # far-away padding must never be picked
    starts = torch.tensor([5, 0, 256])
    got = farthest_point_sample_batched(padded, 64, valid, starts)
    assert got.shape == (3, 64) and got.dtype == torch.long
    for b, cloud in enumerate(clouds):
        np.testing.assert_array_equal(got[b].numpy(), farthest_point_sample(cloud, 64, int(starts[b])))


def test_batched_fps_random_starts_are_valid_and_seeded() -> None:
    points = torch.randn(4, 50, 3, generator=torch.Generator().manual_seed(0))
    valid = torch.zeros(4, 50, dtype=torch.bool)
    valid[:, 20:30] = True
    first = farthest_point_sample_batched(points, 12, valid, generator=torch.Generator().manual_seed(3))
    again = farthest_point_sample_batched(points, 12, valid, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(first, again)
    assert ((first >= 20) & (first < 30)).all()  # only valid points, repeated once all 10 are used
    assert all(len(set(row[:10].tolist())) == 10 for row in first)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_batched_fps_on_cuda_matches_cpu() -> None:
    points = torch.randn(3, 500, 3, dtype=torch.float64)
    starts = torch.tensor([0, 10, 20])
    cpu = farthest_point_sample_batched(points, 100, start_indices=starts)
    gpu = farthest_point_sample_batched(points.cuda(), 100, start_indices=starts.cuda())
    torch.testing.assert_close(gpu.cpu(), cpu)


def test_fps_covers_better_than_random() -> None:
    cloud = _structured_cloud(np.random.default_rng(4))
    fps = sample_points(cloud, 64, "fps", rng=0)
    rand = sample_points(cloud, 64, "random", rng=0)
    assert _coverage(cloud, fps)[1] <= _coverage(cloud, rand)[1]
    assert _coverage(cloud, fps)[1] < 0.7 * _coverage(cloud, rand)[1]


def test_voxel_fps_gives_n_points_with_fps_like_coverage() -> None:
    cloud = depth_to_points(_masked_depth(30))
    n = 512
    voxel = sample_points(cloud, n, "voxel_fps", voxel_size=0.02, rng=0)
    exact = sample_points(cloud, n, "fps", rng=0)
    assert voxel.shape == (n, 3) and voxel.dtype == np.float32
    assert len(np.unique(voxel, axis=0)) == n
    voxel_mean, voxel_max = _coverage(cloud, voxel)
    exact_mean, exact_max = _coverage(cloud, exact)
    assert voxel_max <= 1.25 * exact_max + 0.01
    assert voxel_mean <= 1.25 * exact_mean + 0.005


def test_voxel_downsample_centroids() -> None:
    points = np.array([[0.01, 0.01, 0.01], [0.03, 0.01, 0.01], [0.5, 0.5, 0.5]])
    out = voxel_downsample(points, 0.1)
    np.testing.assert_allclose(out, [[0.02, 0.01, 0.01], [0.5, 0.5, 0.5]])


@pytest.mark.parametrize("method", ["random", "fps", "voxel_fps"])
def test_sampling_is_deterministic_given_seed(method: str) -> None:
    cloud = _structured_cloud(np.random.default_rng(5))
    a = sample_points(cloud, 100, method, rng=11)
    b = sample_points(cloud, 100, method, rng=np.random.default_rng(11))
    c = sample_points(cloud, 100, method, rng=12)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_small_and_empty_clouds() -> None:
    cloud = np.arange(15, dtype=np.float32).reshape(5, 3)
    padded = sample_points(cloud, 12, "voxel_fps")
    np.testing.assert_array_equal(padded, cloud[[0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]])
    empty, is_empty = sample_points(np.zeros((0, 3)), 8, "fps", return_is_empty=True)
    assert is_empty and empty.shape == (8, 3) and not empty.any()
    _, full_flag = sample_points(cloud, 3, "fps", return_is_empty=True)
    assert not full_flag
    with pytest.raises(ValueError):
        sample_points(cloud, 3, "nope")


def test_sample_points_batched_over_frames() -> None:
    frames = [depth_to_points(_masked_depth(t)) for t in (1, 2, 3)]
    clouds = [frames[0], np.zeros((0, 3), np.float32), frames[1][:100], frames[2]]
    out, is_empty = sample_points_batched(clouds, 256, "voxel_fps", rng=0)
    assert out.shape == (4, 256, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(is_empty, [False, True, False, False])
    assert not out[1].any()
    np.testing.assert_array_equal(out[2], frames[1][:100][np.resize(np.arange(100), 256)])
    for t in (0, 3):
        single = sample_points(clouds[t], 256, "voxel_fps", rng=0)
        assert len(np.unique(out[t], axis=0)) == 256
        # same coverage quality as the one-cloud path
        assert _coverage(clouds[t], out[t])[1] <= 1.2 * _coverage(clouds[t], single)[1] + 0.01
