"""Benchmark: CPU training-step throughput and peak memory of the depth and point-cloud encoders.

Each case runs in a fresh worker process (so its peak RSS is its own): build the model, one
warm-up step, then ``--steps`` timed steps (forward + cross-entropy + backward + SGD) on a random
batch; clips/s comes from the fastest step (the least disturbed on a shared machine). Every
encoder is measured against a baseline in the same run:

- ``depth_tsm`` vs the same CNN with the temporal shift off (``fold_div=None``): the shift
  should cost ~nothing (it moves memory, no FLOPs);
- ``point_transformer`` with its default ``frame_chunk=32`` (the N*T clouds through set
  abstraction 32 at a time) and with ``frame_chunk=None`` (all N*T in one batch) vs the same
  model whose frame encoder is called in a Python loop over the T frames (N clouds at a time).

Sizes: the synthetic config's (batch 8; depth 1x16x56x56; points 16x256x3) and a larger one
(depth 1x16x112x112; points 16x512x3). Prints ONE JSON line.

    .venv/bin/python benchmarks/bench_depth_point_encoders.py [--steps 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BATCH, NUM_CLASSES = 8, 60
# case -> (input shape without batch, model kwargs, per-frame loop baseline?)
CASES: Dict[str, tuple] = {
    "depth_tsm_synthetic": ("depth", (1, 16, 56, 56), {}, False),
    "depth_noshift_synthetic": ("depth", (1, 16, 56, 56), {"fold_div": None}, False),
    "depth_tsm_large": ("depth", (1, 16, 112, 112), {}, False),
    "depth_noshift_large": ("depth", (1, 16, 112, 112), {"fold_div": None}, False),
    "points_chunked_synthetic": ("points", (16, 256, 3), {}, False),
    "points_onebatch_synthetic": ("points", (16, 256, 3), {"frame_chunk": None}, False),
    "points_loop_synthetic": ("points", (16, 256, 3), {}, True),
    "points_chunked_large": ("points", (16, 512, 3), {"num_centroids": (128, 32)}, False),
    "points_onebatch_large": ("points", (16, 512, 3), {"num_centroids": (128, 32), "frame_chunk": None}, False),
    "points_loop_large": ("points", (16, 512, 3), {"num_centroids": (128, 32)}, True),
}
PAIRS = {  # ratio name (clips/s of measured / clips/s of baseline) -> (measured, baseline)
    "depth_synthetic_shift_over_noshift": ("depth_tsm_synthetic", "depth_noshift_synthetic"),
    "depth_large_shift_over_noshift": ("depth_tsm_large", "depth_noshift_large"),
    "points_synthetic_chunked_over_loop": ("points_chunked_synthetic", "points_loop_synthetic"),
    "points_synthetic_onebatch_over_loop": ("points_onebatch_synthetic", "points_loop_synthetic"),
    "points_large_chunked_over_loop": ("points_chunked_large", "points_loop_large"),
    "points_large_onebatch_over_loop": ("points_onebatch_large", "points_loop_large"),
}


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def build(case: str):  # type: ignore[no-untyped-def]
    """The model of one case (the per-frame-loop baseline patches ``frame_features``)."""
    import torch
    from einops import rearrange

    from actionfusion.modalities.depth.depth_encoder import DepthTSM
    from actionfusion.modalities.pointcloud.point_encoder import PointTransformer

    kind, _, kwargs, loop = CASES[case]
    if kind == "depth":
        return DepthTSM(num_classes=NUM_CLASSES, **kwargs)
    model = PointTransformer(num_classes=NUM_CLASSES, **kwargs)
    if loop:
        def frame_features_loop(points: torch.Tensor) -> torch.Tensor:
            per_frame = [model.frame_encoder(points[:, t]) for t in range(points.shape[1])]  # T x [N, D]
            return rearrange(torch.stack(per_frame), "t n d -> n t d")

        model.frame_features = frame_features_loop  # type: ignore[method-assign]
    return model


def worker(case: str, steps: int, threads: int) -> Dict[str, object]:
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build(case)
    x = torch.randn(BATCH, *CASES[case][1])
    y = torch.arange(BATCH) % NUM_CLASSES
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rss_before = peak_rss_mb()
    times: List[float] = []
    model.train()
    for i in range(steps + 1):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        if i > 0:
            times.append(time.perf_counter() - start)
    return {
        "input": [BATCH, *CASES[case][1]],
        "params": sum(p.numel() for p in model.parameters()),
        "step_s": round(min(times), 4),
        "step_s_median": round(statistics.median(times), 4),
        "clips_per_s": round(BATCH / min(times), 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "step_peak_rss_mb": round(peak_rss_mb() - rss_before, 1),
    }


def run_worker(case: str, args: argparse.Namespace) -> Dict[str, object]:
    cmd = [sys.executable, __file__, "--worker", case, "--steps", str(args.steps), "--threads", str(args.threads)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per case (after one warm-up)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.steps, args.threads)))
        return
    start = time.perf_counter()
    results = {case: run_worker(case, args) for case in CASES}
    line: Dict[str, object] = {"benchmark": "depth_point_encoders_train_step", "batch": BATCH,
                               "threads": args.threads, "steps": args.steps, "cases": results}
    for pair, (measured, baseline) in PAIRS.items():
        a, b = results[measured], results[baseline]
        if "error" not in a and "error" not in b:
            line[f"speed_ratio_{pair}"] = round(
                float(a["clips_per_s"]) / float(b["clips_per_s"]), 3  # type: ignore[arg-type]
            )
    line["wall_s"] = round(time.perf_counter() - start, 1)
    print(json.dumps(line))


if __name__ == "__main__":
    main()
