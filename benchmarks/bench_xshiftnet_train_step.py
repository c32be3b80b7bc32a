"""Benchmark: CPU training-step throughput and peak RSS of X-ShiftNet and EPAM-Net, against baselines.

Each model runs in a fresh worker process together with its baseline: one warm-up step each,
then ``--steps`` timed steps each, alternating ours / baseline so that load from other processes
on a shared machine hits both alike. A step is forward + cross-entropy (summed over the two
streams for EPAM-Net) + backward + SGD (momentum 0.9) at the official clip sizes (RGB
3 x 16 x 224 x 224, pose heatmaps 17 x 48 x 56 x 56), batch ``--batch``. Reported per variant:
the fastest step (wall), clips/s from it, the fastest step's process CPU time, and the peak RSS
during its steps (Linux VmHWM reset before every step; both models stay resident, a few MiB).

Baselines, measured in the same run:
* ``xshiftnet_rgb`` / ``xshiftnet_pose`` vs the same network with stock X3D's 3x3x3 depthwise
  kernels and no shift (``temporal_kernel=3, fold_div=None``): what the temporal shift replaces.
* ``epam_net`` vs late fusion of the two stream classifiers (same backbones and heads, summed
  CE, no STA guidance): the cost of the pose-guided attention.

    .venv/bin/python benchmarks/bench_xshiftnet_train_step.py [--batch 1] [--steps 2] [--threads 1]
        [--models xshiftnet_rgb xshiftnet_pose epam_net]
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NUM_CLASSES = 60
RGB_CLIP = (3, 16, 224, 224)
POSE_CLIP = (17, 48, 56, 56)
MODELS = ("xshiftnet_rgb", "xshiftnet_pose", "epam_net")
BASELINES = {
    "xshiftnet_rgb": "x3d_like_rgb (3x3x3 depthwise, no shift)",
    "xshiftnet_pose": "x3d_like_pose (3x3x3 depthwise, no shift)",
    "epam_net": "late_fusion_streams (no STA)",
}


def read_peak_rss_mb() -> float:
    """This process's peak RSS since the last :func:`reset_peak_rss` (VmHWM), in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def build(name: str, baseline: bool):
    """(model, batch -> dict of stream logits) for one measurement."""
    import torch
    from torch import nn

    from actionfusion.fusion.epam_net import EPAMNet
    from actionfusion.modalities.rgb.xshiftnet import xshiftnet_pose, xshiftnet_rgb

    x3d_like = {"temporal_kernel": 3, "fold_div": None} if baseline else {}
    if name == "xshiftnet_rgb":
        model = xshiftnet_rgb(NUM_CLASSES, **x3d_like)
        return model, lambda b: {"rgb": model(b["rgb"])}
    if name == "xshiftnet_pose":
        model = xshiftnet_pose(NUM_CLASSES, **x3d_like)
        return model, lambda b: {"pose": model(b["pose_heatmap"])}
    if name == "epam_net" and not baseline:
        model = EPAMNet(NUM_CLASSES)
        return model, lambda b: model.forward_stream_logits(model.forward_features(b))
    if name == "epam_net":
        model = nn.ModuleDict({"rgb": xshiftnet_rgb(NUM_CLASSES), "pose": xshiftnet_pose(NUM_CLASSES)})
        return model, lambda b: {"rgb": model["rgb"](b["rgb"]), "pose": model["pose"](b["pose_heatmap"])}
    raise ValueError(f"unknown model {name!r}")


def worker(name: str, batch: int, steps: int, threads: int) -> Dict[str, Dict[str, float]]:
    """Both variants of ``name`` in this process, one warm-up each, then ``steps`` steps each, alternating
    (so that other processes' load hits both alike). Per variant: fastest step (wall and CPU seconds) and
    the peak RSS reached during its steps (VmHWM reset before each step; both models stay resident)."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    data = {"rgb": torch.randn(batch, *RGB_CLIP), "pose_heatmap": torch.rand(batch, *POSE_CLIP)}
    target = torch.randint(0, NUM_CLASSES, (batch,))
    variants = {}
    for label, baseline in (("ours", False), ("baseline", True)):
        model, stream_logits = build(name, baseline)
        opt = torch.optim.SGD(model.train().parameters(), lr=0.0015, momentum=0.9, weight_decay=3e-4)
        variants[label] = (model, stream_logits, opt, [], [], [])
    can_reset = reset_peak_rss()
    for step in range(steps + 1):
        for label, (model, stream_logits, opt, times, cpu_times, rss) in variants.items():
            can_reset = reset_peak_rss() and can_reset
            start, cpu_start = time.perf_counter(), time.process_time()
            opt.zero_grad(set_to_none=True)
            loss = sum(torch.nn.functional.cross_entropy(z, target) for z in stream_logits(data).values())
            loss.backward()
            opt.step()
            if step > 0:
                times.append(time.perf_counter() - start)
                cpu_times.append(time.process_time() - cpu_start)
            rss.append(read_peak_rss_mb())
    out = {}
    for label, (model, _, _, times, cpu_times, rss) in variants.items():
        best = min(times)
        out[label] = {"step_s": round(best, 3), "clips_per_s": round(batch / best, 4),
                      "step_cpu_s": round(min(cpu_times), 3), "peak_rss_mb": round(max(rss), 1),
                      "params": sum(p.numel() for p in model.parameters())}
    out["rss_per_step"] = can_reset
    return out


def run_worker(name: str, args: argparse.Namespace) -> Dict[str, Dict[str, float]]:
    cmd = [sys.executable, __file__, "--worker", name, "--batch", str(args.batch), "--steps", str(args.steps),
           "--threads", str(args.threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=2)
    # 1 intra-op thread by default: on a shared, oversubscribed machine OpenMP workers spin-wait
    # and the timings of 2+ threads swing several-fold from run to run.
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--worker", choices=MODELS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.batch, args.steps, args.threads)))
        return
    started = time.perf_counter()
    results = {"benchmark": "xshiftnet_train_step", "device": "cpu", "batch": args.batch, "steps": args.steps,
               "threads": args.threads, "rgb_clip": list(RGB_CLIP), "pose_clip": list(POSE_CLIP),
               "load_avg_1min_start": round(os.getloadavg()[0], 2)}
    for name in args.models:
        measured = run_worker(name, args)
        ours, base = measured["ours"], measured["baseline"]
        results[name] = {**ours, "peak_rss_is_per_step": measured["rss_per_step"], "baseline": BASELINES[name], "baseline_step_s": base["step_s"],
                         "baseline_clips_per_s": base["clips_per_s"], "baseline_peak_rss_mb": base["peak_rss_mb"],
                         "baseline_params": base["params"],
                         "baseline_step_cpu_s": base["step_cpu_s"],
                         "speedup_vs_baseline": round(base["step_s"] / ours["step_s"], 3),
                         "cpu_time_ratio_baseline_over_ours": round(base["step_cpu_s"] / ours["step_cpu_s"], 3),
                         "rss_ratio_vs_baseline": round(ours["peak_rss_mb"] / base["peak_rss_mb"], 3)}
    results["load_avg_1min_end"] = round(os.getloadavg()[0], 2)
    results["wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
