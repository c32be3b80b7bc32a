"""Pose heatmap volumes: the vectorised ``heatmap_volume`` vs a per-joint, per-frame loop.

Workload: EPAM-Net's pose input, 2 persons x 48 frames x 17 COCO joints -> 17 x 48 x 56 x 56
(sigma 0.6, score-weighted, no limbs); also the same with COCO's 16 limb channels. Baseline
measured in the same run: :func:`loop_heatmap_volume`, the straightforward reference (one
window patch per person, frame and joint, pyskl ``GeneratePoseTarget`` style), which the
tests also check the package against. Each is timed ``--repeats`` times and the best run is kept (the machine is shared).
Prints one JSON line: volumes/s of both and the ratio vectorised / loop (the limb loop is
timed once: it is slow).

Run: .venv/bin/python benchmarks/bench_heatmap_volume.py
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run from a checkout without installing the package

from actionfusion.modalities.pose.heatmap_volume import (WINDOW_SIGMAS, heatmap_volume,  # noqa: E402
                                                         keypoint_box, keypoints_to_heatmap, layout_limbs)


def _window(lo: float, hi: float, size: int) -> tuple[int, int]:
    """Integer range [start, end) of grid points g with lo <= g <= hi, inside [0, size)."""
    return max(math.ceil(lo), 0), min(math.floor(hi) + 1, size)


def _draw_point(arr: np.ndarray, u: float, v: float, value: float, sigma: float) -> None:
    reach = WINDOW_SIGMAS * sigma
    x0, x1 = _window(u - reach, u + reach, arr.shape[1])
    y0, y1 = _window(v - reach, v + reach, arr.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    xs = np.arange(x0, x1, dtype=np.float64)[None, :]
    ys = np.arange(y0, y1, dtype=np.float64)[:, None]
    patch = np.exp(-((xs - u) ** 2 + (ys - v) ** 2) / (2 * sigma**2)) * value
    arr[y0:y1, x0:x1] = np.maximum(arr[y0:y1, x0:x1], patch)


def _draw_limb(arr: np.ndarray, a: np.ndarray, b: np.ndarray, sigma: float) -> None:
    value = min(a[2], b[2])
    if value <= 0:
        return
    d2_ab = (a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2
    if d2_ab < 1:
        _draw_point(arr, a[0], a[1], a[2], sigma)
        return
    reach = WINDOW_SIGMAS * sigma
    x0, x1 = _window(min(a[0], b[0]) - reach, max(a[0], b[0]) + reach, arr.shape[1])
    y0, y1 = _window(min(a[1], b[1]) - reach, max(a[1], b[1]) + reach, arr.shape[0])
    for y in range(y0, y1):
        for x in range(x0, x1):
            t = ((x - a[0]) * (b[0] - a[0]) + (y - a[1]) * (b[1] - a[1])) / d2_ab  # projection on a->b
            t = min(max(t, 0.0), 1.0)
            px, py = a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])
            patch = math.exp(-((x - px) ** 2 + (y - py) ** 2) / (2 * sigma**2)) * value
            arr[y, x] = max(arr[y, x], patch)


def loop_heatmap_volume(
    keypoints: np.ndarray,
    size: int = 56,
    sigma: float = 0.6,
    box: Optional[tuple[float, float, float, float]] = None,
    limbs: Optional[Sequence[tuple[int, int]]] = None,
) -> np.ndarray:
    """Reference: float32 [M, T, K, 3] -> [K + L, T, size, size], one joint/limb of one frame at a time."""
    kp = np.asarray(keypoints, dtype=np.float64)
    num_persons, num_frames, num_joints, _ = kp.shape
    limbs = list(limbs or [])
    out = np.zeros((num_joints + len(limbs), num_frames, size, size), dtype=np.float64)
    if box is None:
        box = keypoint_box(keypoints)
        if box is None:
            return out.astype(np.float32)
    uvw = keypoints_to_heatmap(keypoints, box, (size, size)).astype(np.float64)
    for m in range(num_persons):
        for t in range(num_frames):
            points = []
            for k in range(num_joints):
                u, v, score = uvw[m, t, k]
                ok = np.isfinite([u, v, score]).all() and score > 0
                points.append(np.array([u, v, min(score, 1.0)]) if ok else np.zeros(3))
                if ok:
                    _draw_point(out[k, t], u, v, min(score, 1.0), sigma)
            for i, (a, b) in enumerate(limbs):
                _draw_limb(out[num_joints + i, t], points[a], points[b], sigma)
    return out.astype(np.float32)


def make_keypoints(rng: np.random.Generator, persons: int = 2, frames: int = 48, joints: int = 17,
                   image_hw: tuple[int, int] = (1080, 1920)) -> np.ndarray:
    """float32 [M, T, K, 3]: people of plausible size wandering in a 1080p frame, some joints missing."""
    centre = rng.uniform([400, 300], [1500, 700], size=(persons, 1, 1, 2))
    drift = np.cumsum(rng.normal(0, 3, size=(persons, frames, 1, 2)), axis=1)
    body = rng.normal(0, [80, 180], size=(persons, 1, joints, 2))
    jitter = rng.normal(0, 4, size=(persons, frames, joints, 2))
    xy = np.clip(centre + drift + body + jitter, 0, [image_hw[1] - 1, image_hw[0] - 1])
    score = rng.uniform(0.3, 1.0, size=(persons, frames, joints, 1))
    score[rng.random(score.shape) < 0.05] = 0.0
    return np.concatenate([xy, score], axis=-1).astype(np.float32)


def best_rate(fn: Callable[[], object], repeats: int, inner: int) -> float:
    """Calls/s of ``fn``: the best of ``repeats`` timings of ``inner`` calls each."""
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        best = min(best, (time.perf_counter() - start) / inner)
    return 1.0 / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    keypoints = make_keypoints(rng)
    fast = heatmap_volume(keypoints)
    slow = loop_heatmap_volume(keypoints)
    max_abs_diff = float(np.abs(fast - slow).max())
    assert fast.shape == (17, 48, 56, 56) and max_abs_diff < 1e-5, max_abs_diff
    # every timed call reads its whole result back (as collation into a batch would), so that
    # zero pages the allocator hands out lazily are paid for by both sides
    vec_rate = best_rate(lambda: heatmap_volume(keypoints).max(), args.repeats, inner=5)
    loop_rate = best_rate(lambda: loop_heatmap_volume(keypoints).max(), args.repeats, inner=1)
    limbs = layout_limbs("coco17")  # the optional limb channels (PoseC3D's limb stream), 17 + 16 maps
    limb_vec_rate = best_rate(lambda: heatmap_volume(keypoints, limbs=limbs).max(), args.repeats, inner=2)
    limb_loop_rate = best_rate(lambda: loop_heatmap_volume(keypoints, limbs=limbs).max(), 1, inner=1)
    print(json.dumps({
        "benchmark": "heatmap_volume",
        "workload": "2 persons x 48 frames x 17 joints -> 17x48x56x56, sigma 0.6, no limbs",
        "vectorised_volumes_per_s": round(vec_rate, 2),
        "loop_volumes_per_s": round(loop_rate, 2),
        "ratio_vectorised_over_loop": round(vec_rate / loop_rate, 2),
        "max_abs_diff": max_abs_diff,
        "with_limbs_vectorised_volumes_per_s": round(limb_vec_rate, 2),
        "with_limbs_loop_volumes_per_s": round(limb_loop_rate, 3),
        "with_limbs_ratio": round(limb_vec_rate / limb_loop_rate, 1),
        "repeats": args.repeats,
    }))


if __name__ == "__main__":
    main()
