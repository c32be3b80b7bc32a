"""Held-out accuracy of the "train on your own videos" path, against a plain reference on the same split.

Runs the README's commands on synthetic renders laid out as a user's folder (no skeleton file, no NTU
name): the 8 synthetic classes that motion tells apart, 24 videos each (8 performers x 3 cameras):

    actionfusion synth OUT/videos --format videos
    actionfusion run custom/ctrgcn_coco17 --raw-root OUT/videos --set data.store=OUT/store --work-dir OUT/work

The reference is a 1-nearest-neighbour classifier on the same extracted poses (COCO-17 world
keypoints, hip-centred, resampled to 32 frames, flattened) with the same train / test lists: what
the poses give without a learned model. Prints one JSON line. Every stage resumes: a rerun with the
same ``--out`` reuses the videos, the store and a finished training.

    python benchmarks/accuracy_own_videos.py --out /tmp/own_videos [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "actionfusion", *args], cwd=ROOT, check=True,
                   env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})
    return time.perf_counter() - start


def pose_features(store: object, name: str, frames: int = 32) -> np.ndarray:
    """float64 [frames * 17 * 3]: the first person's COCO-17 world keypoints, hip-centred per frame,
    resampled to ``frames`` frames."""
    from actionfusion.datasets.skeleton_conventions import load_conventions

    x = load_conventions(store, name, ["coco17"])["coco17"][0]  # [T, 17, 3]
    hips = x[:, 11:13].mean(axis=1, keepdims=True)
    x = x - hips
    index = np.linspace(0, len(x) - 1, frames).round().astype(int) if len(x) else np.zeros(frames, int)
    return (x[index] if len(x) else np.zeros((frames, 17, 3))).reshape(-1).astype(np.float64)


def nearest_neighbour_top1(store_path: Path, benchmark: str = "videos") -> float:
    """Top-1 of 1-NN (Euclidean) on :func:`pose_features`, train -> test of the store's benchmark file."""
    from actionfusion.datasets.benchmarks import resolve_benchmark
    from actionfusion.datasets.store.sample_store import SampleStore

    store = SampleStore(store_path)
    lists = resolve_benchmark(benchmark, store)
    train = lists.splits["train"] + lists.splits["val"]
    test = lists.splits["test"]
    xa = np.stack([pose_features(store, n) for n in train])
    xb = np.stack([pose_features(store, n) for n in test])
    ya = np.array([store.label(n) for n in train])
    yb = np.array([store.label(n) for n in test])
    distances = ((xb[:, None, :] - xa[None, :, :]) ** 2).sum(-1)
    return float((ya[distances.argmin(1)] == yb).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("/tmp/actionfusion_own_videos"))
    parser.add_argument("--workers", type=int, default=2, help="processes for rendering and pose extraction")
    parser.add_argument("--scale", default="default", choices=("tiny", "default", "large"))
    args = parser.parse_args()
    out = args.out.resolve()
    seconds = {"synth": _run(["synth", str(out / "videos"), "--format", "videos", "--scale", args.scale,
                              "--workers", str(args.workers), "--quiet"])}
    seconds["run"] = _run(["run", "custom/ctrgcn_coco17", "--raw-root", str(out / "videos"), "--workers",
                           str(args.workers), "--set", f"data.store={out / 'store'}", "--work-dir", str(out / "work")])
    metrics = json.loads((out / "work" / "metrics.json").read_text())
    split = json.loads((out / "store" / "splits" / "videos.json").read_text())
    reference = nearest_neighbour_top1(out / "store")
    print(json.dumps({
        "benchmark": "accuracy_own_videos", "classes": len(split["classes"]),
        "videos": {k: len(split[k]) for k in ("train", "val", "test")},
        "test_top1": metrics["top1"], "test_mean_class_accuracy": metrics["mean_class_accuracy"],
        "reference_1nn_top1": reference, "ratio": metrics["top1"] / reference if reference else None,
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
    }))


if __name__ == "__main__":
    main()
