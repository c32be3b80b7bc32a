"""Benchmark: CPU training-step throughput and peak memory of the registered skeleton encoders.

For each model, one fresh worker process builds it, runs a warm-up step and ``--steps`` timed
steps (forward + cross-entropy + backward + SGD) on a random clip batch of the official size
(batch 16, M = 2, T = 64, V = 25, C = 3; models built for other inputs get theirs, see
``INPUT_OVERRIDES``) and reports the fastest and median step time, clips/s (from the fastest
step: the least disturbed by other processes on a shared machine) and the process's peak RSS.
Where a copy of the official implementation lies under ``--official-root`` (``ctrgcn/`` =
Uason-Chen/CTR-GCN, ``stgcn/`` = yysijie/st-gcn, e.g. from ``git archive``; never inside this
repository), the official model runs the same way in its own worker, and the line gives
ours/official ratios; otherwise it says why the official side was skipped. One JSON line per model.

    .venv/bin/python benchmarks/bench_skeleton_train_step.py [--official-root /tmp/official]
        [--models stgcn ctrgcn stgcnpp | all] [--steps 2] [--threads 2]
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
from typing import Callable, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BATCH, PERSONS, FRAMES, JOINTS, CHANNELS, NUM_CLASSES = 16, 2, 64, 25, 3, 60
DEFAULT_MODELS = ("stgcn", "ctrgcn", "stgcnpp")
# Registered models whose official input differs from [16, 2, 64, 25, 3]:
# PSUMNet's unified 12-channel input (joint, bone, and their velocities); MAMP's 120-frame clips.
INPUT_OVERRIDES: Dict[str, Dict[str, int]] = {
    "psumnet": {"channels": 12}, "psumnet_body": {"channels": 12},
    "psumnet_hand": {"channels": 12}, "psumnet_leg": {"channels": 12},
    "mamp": {"frames": 120},
}

# name -> (sub-folder of --official-root, module, class, constructor kwargs, input layout)
# Input layouts: ours take [N, M, T, V, C]; both references take [N, C, T, V, M].
OFFICIAL: Dict[str, Tuple[str, str, str, dict]] = {
    "ctrgcn": (
        "ctrgcn", "model.ctrgcn", "Model",
        {"num_class": NUM_CLASSES, "graph": "graph.ntu_rgb_d.Graph", "graph_args": {"labeling_mode": "spatial"}},
    ),
    "stgcn": (
        "stgcn", "net.st_gcn", "Model",
        {"in_channels": 3, "num_class": NUM_CLASSES, "dropout": 0.5, "edge_importance_weighting": True,
         "graph_args": {"layout": "ntu-rgb+d", "strategy": "spatial"}},
    ),
}


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def time_steps(model, x, steps: int) -> List[float]:  # type: ignore[no-untyped-def]
    """Seconds per training step: one warm-up, then ``steps`` timed."""
    import torch

    y = torch.arange(x.shape[0]) % NUM_CLASSES
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=4e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        optimizer.step()
        if i > 0:
            times.append(time.perf_counter() - start)
    return times


def build_ours(name: str) -> Tuple[object, Callable]:  # type: ignore[type-arg]
    from actionfusion.modalities.skeleton import ctrgcn, stgcn, stgcnpp  # noqa: F401  (registration)
    from actionfusion.registry import create_model

    return create_model(name, num_classes=NUM_CLASSES), lambda x: x


def build_official(name: str, official_root: Path) -> Tuple[object, Callable]:  # type: ignore[type-arg]
    import importlib

    folder, module, cls, kwargs = OFFICIAL[name]
    sys.path.insert(0, str(official_root / folder))
    model = getattr(importlib.import_module(module), cls)(**kwargs)
    return model, lambda x: x.permute(0, 4, 2, 3, 1).contiguous()  # [N, M, T, V, C] -> [N, C, T, V, M]


def worker(name: str, side: str, official_root: Path, steps: int, threads: int) -> Dict[str, object]:
    """Measure one model in this process (a fresh one per model and side)."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model, to_input = build_official(name, official_root) if side == "official" else build_ours(name)
    shape = {"frames": FRAMES, "channels": CHANNELS, **INPUT_OVERRIDES.get(name, {})}
    x = to_input(torch.randn(BATCH, PERSONS, shape["frames"], JOINTS, shape["channels"]))
    rss_before = peak_rss_mb()
    times = time_steps(model, x, steps)
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "input": list(x.shape),
        "step_s": round(min(times), 4),
        "step_s_median": round(statistics.median(times), 4),
        "clips_per_s": round(BATCH / min(times), 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "rss_before_steps_mb": round(rss_before, 1),
        # what the training steps added on top of the interpreter, imports and model
        "step_peak_rss_mb": round(peak_rss_mb() - rss_before, 1),
    }


def run_worker(name: str, side: str, args: argparse.Namespace) -> Dict[str, object]:
    """Run :func:`worker` in a fresh interpreter (so peak RSS is this model's alone)."""
    cmd = [sys.executable, __file__, "--worker", name, side, "--official-root", str(args.official_root),
           "--steps", str(args.steps), "--threads", str(args.threads)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def ratios(ours: Dict[str, object], official: Dict[str, object]) -> Dict[str, float]:
    """ours / official for step time, peak RSS and the steps' own share of it."""
    if "error" in ours or "error" in official:
        return {}
    keys = {"time": "step_s", "peak_rss": "peak_rss_mb", "step_peak_rss": "step_peak_rss_mb"}
    return {
        f"{label}_ratio_ours_over_official": round(float(ours[key]) / float(official[key]), 3)  # type: ignore[arg-type]
        for label, key in keys.items()
    }


def official_skip_reason(name: str, official_root: Path) -> Optional[str]:
    if name not in OFFICIAL:
        return f"no official implementation wired for {name!r}"
    folder = official_root / OFFICIAL[name][0]
    if not folder.is_dir():
        return f"official copy not found at {folder} (git archive the reference repository there)"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official-root", type=Path, default=Path("/tmp/official"))
    parser.add_argument("--models", nargs="*", default=list(DEFAULT_MODELS),
                        help="registry names, or 'all' for every registered skeleton model")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per model (after one warm-up)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the spec's timings used 2)")
    parser.add_argument("--worker", nargs=2, metavar=("NAME", "SIDE"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        name, side = args.worker
        print(json.dumps(worker(name, side, args.official_root, args.steps, args.threads)))
        return

    if args.models == ["all"]:
        from actionfusion.registry import list_models

        args.models = list_models(modality="skeleton")
    for name in args.models:
        line: Dict[str, object] = {
            "benchmark": "skeleton_train_step", "model": name, "batch": BATCH, "persons": PERSONS,
            "frames": FRAMES, "threads": args.threads, "steps": args.steps,
            "ours": run_worker(name, "ours", args),
        }
        reason = official_skip_reason(name, args.official_root)
        if reason is not None:
            line["official"] = {"skipped": reason}
        else:
            line["official"] = run_worker(name, "official", args)
            line.update(ratios(line["ours"], line["official"]))  # type: ignore[arg-type]
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
