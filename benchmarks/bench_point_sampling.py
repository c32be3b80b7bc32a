"""Point sampling speed and coverage against open3d's farthest_point_down_sample.

Two workloads, each at n = 1024 and n = 256 (the prepare default; --sizes picks others):
  fixture    every masked depth frame of the NTU fixture S001C001P001R001A058, back-projected
             (about 10,000 points each: two performers at 3.3-4.2 m)
  synthetic  four full 320x240 depth frames (76,800 points each) of a room with a moving ball:
             back wall, floor and a sphere, no background removal

Methods:
  open3d_fps          open3d PointCloud.farthest_point_down_sample, frame by frame (the baseline)
  open3d_fps_ours     the same through our sample_points(..., "open3d_fps") (random start, float32 out):
                      what prepare runs with point_sampling="open3d_fps"
  voxel_fps           our sample_points(..., "voxel_fps", voxel_size=0.02), frame by frame
  voxel_fps_3cm, _5cm the same with 3 and 5 cm voxels (fewer FPS candidates)
  voxel_fps_batched   our sample_points_batched(..., "voxel_fps"): voxelise each frame, one torch FPS
                      over all frames (2 cm; and _5cm)
  torch_fps_batched   our farthest_point_sample_batched on all raw frames at once (exact FPS)

Coverage: for each frame, the distance from every input point to its nearest sampled point;
reported as the mean over frames of the per-frame mean and of the per-frame max (metres).
Lower is better; exact FPS minimises the max. Speed is frames/s (best of --repeats). The methods
run interleaved, one after the other within each repeat (the order rotating from repeat to
repeat), so every ratio compares runs made under the same machine load.

Prints one JSON line: per workload and n, each method's frames/s, coverage, and its speedup over
open3d: ``speedup_vs_open3d`` (best time over best time) and ``speedup_median`` (the median over
repeats of the same-repeat ratio; the steadier of the two on a loaded machine).

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_point_sampling.py --repeats 5
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run from a checkout without installing the package

from actionfusion.geometry import KINECT_V2_DEPTH_3DV, CameraIntrinsics  # noqa: E402
from actionfusion.modalities.pointcloud.backproject import depth_to_points  # noqa: E402
from actionfusion.modalities.pointcloud.batched_sampling import (  # noqa: E402
    farthest_point_sample_batched,
    sample_points_batched,
)
from actionfusion.modalities.pointcloud.sampling import sample_points  # noqa: E402

DEPTH_DIR = REPO_ROOT / ".." / "shared" / "fixtures" / "ntu" / "nturgb+d_depth_masked" / "S001C001P001R001A058"
SYNTHETIC_HW = (240, 320)
# the Kinect v2 depth camera scaled from 512x424 to 320x240 (same field of view)
SYNTHETIC_INTRINSICS = CameraIntrinsics(
    fx=KINECT_V2_DEPTH_3DV.fx * 320 / 512, fy=KINECT_V2_DEPTH_3DV.fy * 240 / 424,
    cx=KINECT_V2_DEPTH_3DV.cx * 320 / 512, cy=KINECT_V2_DEPTH_3DV.cy * 240 / 424,
)

Sampler = Callable[[list[np.ndarray], int], np.ndarray]


def fixture_clouds() -> list[np.ndarray]:
    paths = sorted(DEPTH_DIR.glob("MDepth-*.png"))
    if not paths:
        raise SystemExit(f"NTU fixtures not found at {DEPTH_DIR}: they live in ../shared beside the repo")
    return [depth_to_points(cv2.imread(str(p), cv2.IMREAD_UNCHANGED)) for p in paths]


def synthetic_clouds(frames: int = 4) -> list[np.ndarray]:
    """Full depth frames of a room: wall at 4.5 m, floor 1 m below the camera, a ball moving across."""
    height, width = SYNTHETIC_HW
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    k = SYNTHETIC_INTRINSICS
    ray_x, ray_y = (cols - k.cx) / k.fx, (k.cy - rows) / k.fy  # direction (ray_x, ray_y, 1)
    clouds = []
    for t in range(frames):
        depth = np.full((height, width), 4.5)
        floor = np.where(ray_y < 0, -1.0 / np.minimum(ray_y, -1e-9), np.inf)
        depth = np.minimum(depth, floor)
        centre, radius = np.array([-0.6 + 0.4 * t, -0.2, 2.5]), 0.4
        # ray-sphere intersection for rays d = (ray_x, ray_y, 1): |s d - c|^2 = r^2
        dd = ray_x**2 + ray_y**2 + 1
        dc = ray_x * centre[0] + ray_y * centre[1] + centre[2]
        disc = dc**2 - dd * (centre @ centre - radius**2)
        hit = disc > 0
        sphere = np.where(hit, (dc - np.sqrt(np.where(hit, disc, 0))) / dd, np.inf)
        depth = np.minimum(depth, sphere)
        depth_mm = np.round(depth * 1000).astype(np.uint16)
        clouds.append(depth_to_points(depth_mm, SYNTHETIC_INTRINSICS))
    return clouds


def open3d_fps(clouds: list[np.ndarray], n: int) -> np.ndarray:
    import open3d as o3d

    out = []
    for cloud in clouds:
        pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(cloud.astype(np.float64)))
        out.append(np.asarray(pcd.farthest_point_down_sample(n).points, dtype=np.float32))
    return np.stack(out)


def open3d_fps_ours(clouds: list[np.ndarray], n: int) -> np.ndarray:
    return np.stack([sample_points(c, n, "open3d_fps", rng=t) for t, c in enumerate(clouds)])


def voxel_fps(voxel_size: float) -> Sampler:
    def run(clouds: list[np.ndarray], n: int) -> np.ndarray:
        return np.stack([sample_points(c, n, "voxel_fps", voxel_size=voxel_size, rng=t) for t, c in enumerate(clouds)])

    return run


def voxel_fps_batched(voxel_size: float) -> Sampler:
    def run(clouds: list[np.ndarray], n: int) -> np.ndarray:
        return sample_points_batched(clouds, n, "voxel_fps", voxel_size=voxel_size, rng=0)[0]

    return run


def torch_fps_batched(clouds: list[np.ndarray], n: int) -> np.ndarray:
    width = max(len(c) for c in clouds)
    padded = torch.zeros(len(clouds), width, 3)
    valid = torch.zeros(len(clouds), width, dtype=torch.bool)
    for b, cloud in enumerate(clouds):
        padded[b, : len(cloud)] = torch.from_numpy(cloud)
        valid[b, : len(cloud)] = True
    indices = farthest_point_sample_batched(padded, n, valid, generator=torch.Generator().manual_seed(0))
    return torch.gather(padded, 1, indices[..., None].expand(-1, -1, 3)).numpy()


def coverage(clouds: list[np.ndarray], samples: np.ndarray) -> dict[str, float]:
    """Mean over frames of the mean and max distance from a point to its nearest sample (metres)."""
    means, maxes = [], []
    for cloud, sample in zip(clouds, samples):
        sample_t = torch.from_numpy(np.ascontiguousarray(sample))
        nearest = torch.cat(
            [torch.cdist(torch.from_numpy(chunk), sample_t).min(dim=1).values for chunk in np.array_split(cloud, max(1, len(cloud) // 8192))]
        )
        means.append(float(nearest.mean()))
        maxes.append(float(nearest.max()))
    return {"mean_m": round(float(np.mean(means)), 5), "max_m": round(float(np.mean(maxes)), 5)}


def measure(clouds: list[np.ndarray], methods: dict[str, Sampler], n: int, repeats: int) -> dict[str, object]:
    names = list(methods)
    times: dict[str, list[float]] = {name: [] for name in names}
    samples: dict[str, np.ndarray] = {}
    for name in names:  # warm-up: imports, allocator, caches
        methods[name](clouds[:2], n)
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:  # rotate: no method always runs first
            start = time.perf_counter()
            samples[name] = methods[name](clouds, n)
            times[name].append(time.perf_counter() - start)
    result: dict[str, object] = {}
    for name in names:
        assert samples[name].shape == (len(clouds), n, 3), (name, samples[name].shape)
        best = min(times[name])
        result[name] = {
            "frames_per_s": round(len(clouds) / best, 1),
            "ms_per_frame": round(1000 * best / len(clouds), 2),
            "speedup_vs_open3d": round(min(times["open3d_fps"]) / best, 2),
            "speedup_median": round(float(np.median(np.array(times["open3d_fps"]) / np.array(times[name]))), 2),
            "coverage": coverage(clouds, samples[name]),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 256], help="sample sizes n")
    parser.add_argument("--workloads", nargs="+", choices=("fixture", "synthetic"), default=["fixture", "synthetic"])
    parser.add_argument("--methods", nargs="+", help="subset of the methods (open3d_fps always runs)")
    parser.add_argument(
        "--torch-threads", type=int, default=1,
        help="torch intra-op threads; 1 by default: on a busy 2-core machine more threads spin and run 10-50x slower",
    )
    args = parser.parse_args()

    fixture = fixture_clouds()
    synthetic = synthetic_clouds()
    torch.set_num_threads(args.torch_threads)
    methods = {
        "open3d_fps": open3d_fps,
        "open3d_fps_ours": open3d_fps_ours,
        "voxel_fps": voxel_fps(0.02),
        "voxel_fps_3cm": voxel_fps(0.03),
        "voxel_fps_5cm": voxel_fps(0.05),
        "voxel_fps_batched": voxel_fps_batched(0.02),
        "voxel_fps_batched_3cm": voxel_fps_batched(0.03),
        "voxel_fps_batched_5cm": voxel_fps_batched(0.05),
        "torch_fps_batched": torch_fps_batched,
    }
    if args.methods:
        unknown = sorted(set(args.methods) - set(methods))
        if unknown:
            raise SystemExit(f"unknown methods {unknown}; known: {sorted(methods)}")
        methods = {name: methods[name] for name in methods if name == "open3d_fps" or name in args.methods}
    results: dict[str, object] = {
        "torch_threads": args.torch_threads,
        "repeats": args.repeats,
        "fixture_frames": len(fixture),
        "fixture_points_per_frame": int(np.mean([len(c) for c in fixture])),
        "synthetic_frames": len(synthetic),
        "synthetic_points_per_frame": int(np.mean([len(c) for c in synthetic])),
    }
    workloads = {"fixture": fixture, "synthetic": synthetic}
    for n in args.sizes:
        for workload in args.workloads:
            results[f"{workload}_n{n}"] = measure(workloads[workload], methods, n, args.repeats)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
