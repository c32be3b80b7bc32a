"""Benchmark: one ACLNet training step, ours (``aclnet`` model + ``aclnet`` objective) against the
official code (firework8/ACLNet@0fab868, ``official_aclnet.py``), same weights, same loss state.

One step = the backbone, the classifier, the whole loss (CE + 0.1 inter-class affinity loss + 0.1
intra-class margin loss, with the confusion bank counting, the prototype EMA and the queue update),
backward, and SGD (Nesterov, momentum 0.9, lr 0.025, wd 5e-4: the recipe) over the model and both
projection heads. Both sides start as ``parity_aclnet.matched_pair`` builds them: the official
model's (perturbed) weights copied into ours, our projection heads into the official head, the same
prototypes, a structured confusion bank (superclasses of all three temperatures) and a full
queue, in the regime of epochs > 30 (bank counting, superclasses and both contrastive losses on).
The official step is ``RecognizerGCN.forward_train``'s: backbone, ``SimpleHead``, ``BaseHead.loss``
(which also computes top-1/top-5 accuracy with numpy every step, as upstream trains). Steps
interleave (ours first on even steps); the line gives each side's fastest and median seconds and
clips/s, ``ratio`` = ours / official of the medians, and the first step's loss on each side (same
weights and state: equal up to float32 rounding).

The official copy lies under ``--official-root`` (``git -C <mirror> archive HEAD aclnet | tar -x -C
/tmp/official/aclnet``); the mmcv glue it imports is a stand-in (``official_aclnet.py``).

    .venv/bin/python benchmarks/bench_aclnet_step.py --official-root /tmp/official
        [--batch 16] [--frames 100] [--threads 1] [--steps 5] [--device cpu]
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import official_aclnet as official_acl  # noqa: E402
import parity_aclnet  # noqa: E402

PERSONS, JOINTS, CHANNELS = 2, 25, 3
LR, MOMENTUM, WEIGHT_DECAY = 0.025, 0.9, 5e-4


def timed(step: Callable[[], float], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def sgd(params: List[torch.nn.Parameter]) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=LR, momentum=MOMENTUM, nesterov=True, weight_decay=WEIGHT_DECAY)


def benchmark(root: Path, batch: int, frames: int, steps: int, device: torch.device) -> Dict[str, object]:
    ours, objective, official, bank, queue, queue_labels = parity_aclnet.matched_pair(root, perturb=0.05)
    official_acl.match_official_state(official, objective.prototypes, bank, queue, queue_labels, count=True)
    ours, objective, official = ours.to(device), objective.to(device), official.to(device)
    official.cls_head.inter_loss.avg_f = official.cls_head.inter_loss.avg_f.to(device)
    official.cls_head.intra_loss.Feature_Bank = [f.to(device) for f in official.cls_head.intra_loss.Feature_Bank]
    official.cls_head.intra_loss.Label_Bank = [y.to(device) for y in official.cls_head.intra_loss.Label_Bank]
    ours_params = [*ours.parameters(), *objective.parameters()]
    opt_ours, opt_official = sgd(ours_params), sgd(list(official.parameters()))
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(batch, PERSONS, frames, JOINTS, CHANNELS, generator=gen).to(device)
    y = torch.randint(0, parity_aclnet.NUM_CLASSES, (batch,), generator=gen).to(device)
    ours.train(), official.train()

    def step_ours() -> float:
        loss = objective(ours, {"skeleton": x, "label": y}).loss
        opt_ours.zero_grad(set_to_none=True)
        loss.backward()
        opt_ours.step()
        return float(loss.detach())

    def step_official() -> float:
        loss = official.loss(x, y)
        opt_official.zero_grad(set_to_none=True)
        loss.backward()
        opt_official.step()
        return float(loss.detach())

    first = {"ours": step_ours(), "official": step_official()}  # warm-up (upstream computes its superclasses here)
    times: Dict[str, List[float]] = {"ours": [], "official": []}
    for i in range(steps):
        order = (("ours", step_ours), ("official", step_official))
        for side, step in (order if i % 2 == 0 else order[::-1]):
            times[side].append(timed(step, device))
    summary = {side: {"fastest_s": round(min(t), 4), "median_s": round(statistics.median(t), 4),
                      "clips_per_s": round(batch / statistics.median(t), 2)} for side, t in times.items()}
    return {
        **summary,
        "first_step_loss": {k: round(v, 6) for k, v in first.items()},
        "params_ours": sum(p.numel() for p in ours_params),
        "params_official": sum(p.numel() for p in official.parameters()),
        "ratio": round(summary["ours"]["median_s"] / summary["official"]["median_s"], 3),
        "ratio_fastest": round(summary["ours"]["fastest_s"] / summary["official"]["fastest_s"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official-root", type=Path, default=Path("/tmp/official"))
    parser.add_argument("--batch", type=int, default=16, help="clips per step (2 bodies each; the recipe's 16)")
    parser.add_argument("--frames", type=int, default=100, help="frames per clip (the recipe's 100)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per side (after one warm-up)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    line: Dict[str, object] = {
        "benchmark": "aclnet_train_step", "batch": args.batch, "persons": PERSONS, "frames": args.frames,
        "queue": parity_aclnet.QUEUE, "classes": parity_aclnet.NUM_CLASSES, "threads": args.threads,
        "steps": args.steps, "device": str(device), "torch": torch.__version__,
    }
    try:
        official_acl.official_modules(args.official_root)
    except FileNotFoundError as err:
        line["official"] = {"skipped": str(err)}
        print(json.dumps(line), flush=True)
        return
    line.update(benchmark(args.official_root, args.batch, args.frames, args.steps, device))
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
