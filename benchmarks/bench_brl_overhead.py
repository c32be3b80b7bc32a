"""Benchmark: what BRL's rebalancing costs per training step.

One ST-GCN++ (the BRL backbone) training step (forward, loss, backward, SGD) on a random batch
of the official size (``--batch`` 16, M = 2, T = 64, V = 25, C = 3, 60 classes), timed
interleaved, step after step, under two objectives:

* ``cross_entropy``: the plain baseline;
* ``brl``: rebalanced partial mixup of ``int(B/16)`` clips plus the class-weighted pair loss in
  its second stage (the heavier one: weights on).

It also times the mixup and the pair loss alone (no model), so the line shows both the share of
a step they take and the ratio of whole steps. One JSON line.

    .venv/bin/python benchmarks/bench_brl_overhead.py [--steps 10] [--threads 1] [--batch 16]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actionfusion.objectives import create_objective  # noqa: E402
from actionfusion.objectives.brl import pair_weighted_cross_entropy  # noqa: E402
from actionfusion.objectives.brl_rebalance import NTU_LOWER_BODY, rebalanced_partial_mixup  # noqa: E402
from actionfusion.registry import create_model  # noqa: E402

NUM_CLASSES = 60


def _step(model: torch.nn.Module, objective: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: dict) -> float:
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    objective(model, batch).loss.backward()
    optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    model = create_model("stgcnpp", num_classes=NUM_CLASSES)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    counts = [int(600 * 0.01 ** (c / (NUM_CLASSES - 1))) for c in range(NUM_CLASSES)]  # NTU60-LT rho 100
    train_labels = [c for c, n in enumerate(counts) for _ in range(n)]
    brl = create_objective("brl", step_epoch=1)
    brl.attach(model)
    brl.observe_training_labels(train_labels)
    brl.start_epoch(5)  # second stage: class weights on
    ce = create_objective("cross_entropy")
    batch = {"skeleton": torch.randn(args.batch, 2, 64, 25, 3),
             "label": torch.randint(0, NUM_CLASSES, (args.batch,))}

    for objective in (ce, brl):  # warm-up
        _step(model, objective, optimizer, batch)
    times = {"cross_entropy": [], "brl": []}
    for _ in range(args.steps):
        times["cross_entropy"].append(_step(model, ce, optimizer, batch))
        times["brl"].append(_step(model, brl, optimizer, batch))

    # The two BRL pieces alone, many repetitions.
    count_tensor = torch.tensor(counts)
    logits = torch.randn(args.batch, NUM_CLASSES)
    repeats = 200
    start = time.perf_counter()
    for _ in range(repeats):
        mixed = rebalanced_partial_mixup(batch["skeleton"], batch["label"], count_tensor, args.batch // 16,
                                         NTU_LOWER_BODY)
        pair_weighted_cross_entropy(logits, batch["label"], mixed.label_b, mixed.alpha, brl.class_weights)
    pieces = (time.perf_counter() - start) / repeats

    ce_med, brl_med = statistics.median(times["cross_entropy"]), statistics.median(times["brl"])
    print(json.dumps({
        "benchmark": "brl_overhead", "model": "stgcnpp", "batch": args.batch, "threads": args.threads,
        "steps": args.steps, "step_s_cross_entropy": round(ce_med, 4), "step_s_brl": round(brl_med, 4),
        "ratio_brl_over_ce": round(brl_med / ce_med, 3), "mixup_and_loss_ms": round(1000 * pieces, 3),
        "mixup_and_loss_share_of_step": round(pieces / ce_med, 5),
    }))


if __name__ == "__main__":
    main()
