"""Benchmark: one CascadeFormer stage-1 pretraining step, ours (model + ``cascadeformer`` objective)
against the official code, on the same batch, size and weights.

One step = person selection, 30% of the (frame, joint) slots masked, T1, the reconstruction head,
the masked MSE, backward and Adam (lr 1e-4, as ``NTU_main.py``). Ours:
``create_model("cascadeformer", num_classes=0)`` and ``create_objective("cascadeformer")``.
Official: ``NTU_pretraining.BaseT1`` with ``mask_random_global_joints`` and ``train_T1``'s loss
(``official_cascadeformer.py``), loaded with our initial weights through the converter, so both
sides start from the same parameters. Steps interleave (ours first on even steps, the official
first on odd ones) on one random batch ``[B, 2, T, 25, 3]``; the line gives each side's fastest
and median step time and clips/s (of the medians), and ``ratio`` = ours / official of the median
step times. Size: ``--size`` one of the published ones (``ntu60_xview`` d 512 / 8 heads / 12
layers, ``ntu60_xsub`` 768 / 16 / 16, ``penn_action`` 256 / 8 / 4).

The official copy lies under ``--official-root`` (``official_cascadeformer.OFFICIAL_FOLDER``,
never inside this repository).

    .venv/bin/python benchmarks/bench_cascadeformer_step.py --official-root /tmp/official
        [--size penn_action] [--batch 16] [--frames 64] [--threads 1] [--steps 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import official_cascadeformer as official_cf  # noqa: E402

from actionfusion.modalities.skeleton.cascadeformer import CASCADEFORMER_SIZES  # noqa: E402
from actionfusion.objectives import create_objective  # noqa: E402
from actionfusion.pipeline.official_checkpoints.cascadeformer_converters import (  # noqa: E402
    CASCADEFORMER_PRETRAIN,
    CASCADEFORMER_PRETRAIN_OBJECTIVE,
)
from actionfusion.registry import create_model  # noqa: E402

PERSONS, JOINTS, CHANNELS = 2, 25, 3
MASK_RATIO, LR = 0.3, 1e-4


def timed(step: Callable[[], None], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def benchmark(root: Path, size: Dict[str, int], batch: int, frames: int, steps: int,
              device: torch.device) -> Dict[str, object]:
    torch.manual_seed(0)
    model = create_model("cascadeformer", num_classes=0, **size).to(device)
    objective = create_objective("cascadeformer", embed_dim=size["embed_dim"], mask_ratio=MASK_RATIO).to(device)
    official = official_cf.official_stage1(root, **size).to(device)
    state = {**CASCADEFORMER_PRETRAIN.to_official(model.encoder.state_dict()),
             **CASCADEFORMER_PRETRAIN_OBJECTIVE.to_official(objective.state_dict())}
    official.load_state_dict(state, strict=True)
    ours_params = [*model.parameters(), *objective.parameters()]
    opt_ours = torch.optim.Adam(ours_params, lr=LR)
    opt_official = torch.optim.Adam(official.parameters(), lr=LR)
    x = torch.randn(batch, PERSONS, frames, JOINTS, CHANNELS, device=device)
    x_official = x.permute(0, 4, 2, 3, 1).contiguous()  # [B, C, T, V, M], the official loop's layout
    model.train(), official.train()

    def step_ours() -> None:
        loss = objective(model, {"skeleton": x}).loss
        opt_ours.zero_grad(set_to_none=True)
        loss.backward()
        opt_ours.step()

    def step_official() -> None:
        loss, _, _ = official_cf.official_stage1_loss(root, official, x_official, MASK_RATIO)
        opt_official.zero_grad(set_to_none=True)
        loss.backward()
        opt_official.step()

    step_ours(), step_official()  # warm-up
    times: Dict[str, List[float]] = {"ours": [], "official": []}
    for i in range(steps):
        order = (("ours", step_ours), ("official", step_official))
        for side, step in (order if i % 2 == 0 else order[::-1]):
            times[side].append(timed(step, device))
    summary = {side: {"fastest_s": round(min(t), 4), "median_s": round(statistics.median(t), 4),
                      "clips_per_s": round(batch / statistics.median(t), 1)} for side, t in times.items()}
    return {
        **summary,
        "params_ours": sum(p.numel() for p in ours_params),
        "params_official": sum(p.numel() for p in official.parameters()),
        "ratio": round(summary["ours"]["median_s"] / summary["official"]["median_s"], 3),
        "ratio_fastest": round(summary["ours"]["fastest_s"] / summary["official"]["fastest_s"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official-root", type=Path, default=Path("/tmp/official"))
    parser.add_argument("--size", choices=sorted(CASCADEFORMER_SIZES), default="penn_action")
    parser.add_argument("--batch", type=int, default=16, help="clips per step (2 bodies each)")
    parser.add_argument("--frames", type=int, default=64, help="frames per clip (at most 64)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per side (after one warm-up)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    size = dict(CASCADEFORMER_SIZES[args.size])
    line: Dict[str, object] = {
        "benchmark": "cascadeformer_pretrain_step", "size": args.size, **size, "batch": args.batch,
        "persons": PERSONS, "frames": args.frames, "mask_ratio": MASK_RATIO, "threads": args.threads,
        "steps": args.steps, "device": str(device), "torch": torch.__version__,
    }
    try:
        official_cf.official_modules(args.official_root)
    except FileNotFoundError as err:
        line["official"] = {"skipped": str(err)}
        print(json.dumps(line), flush=True)
        return
    line.update(benchmark(args.official_root, size, args.batch, args.frames, args.steps, device))
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
