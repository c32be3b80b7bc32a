"""Benchmark: one SkeletonMAE pretraining step with each GIN neighbour sum, against a baseline that
batches the skeleton graphs as GraphMAE's DGL / PyG code does.

One step = forward (part-aware joint masking, [MASK] token, GIN encoder, re-mask, GIN decoder,
scaled cosine error on the hidden joints) + backward + AdamW, on one random batch
``[B, 2, T, V, 3]`` held in memory (every body present). Three variants of the same model and
objective, with the same weights:

- ``dense``: our default, ``einsum`` with the [V, V] adjacency over [N, T, V, C];
- ``index_add``: our edge-list variant, gather + ``index_add_`` along the joint axis;
- ``baseline``: the reference way of batching graphs: the N x T skeletons are one block-diagonal
  graph of N T V nodes with N T 2E edges, features [N T V, C], gather + ``index_add_`` over nodes
  (GraphMAE's batched-graph message passing).

The steps are interleaved (a rotating order), after one warm-up each. The line gives each variant's
fastest and median step time and clips/s, and ``ratio`` = median dense / median baseline
(``ratio_index_add`` = index_add / baseline), and ``aggregation_only_median_s``: the neighbour sum
alone (forward + backward on [2B, T, V, D], no MLP) per variant. ``--check`` first asserts that the three variants give
the same loss and gradients in float64.

    .venv/bin/python benchmarks/bench_skeletonmae_step.py [--batch 16] [--frames 32] [--layout ntu25]
        [--dim 128] [--depth 3] [--threads 1] [--steps 5] [--check]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import types
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from actionfusion.modalities.skeleton.gin import GINConv  # noqa: E402
from actionfusion.modalities.skeleton.layouts import get_layout  # noqa: E402
from actionfusion.objectives import create_objective  # noqa: E402
from actionfusion.registry import create_model  # noqa: E402

PERSONS, CHANNELS = 2, 3
ADAMW = {"lr": 1e-3, "weight_decay": 1e-4}
VARIANTS = ("dense", "index_add", "baseline")


def block_graph_aggregate(self: GINConv, x: torch.Tensor, adjacency: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The baseline neighbour sum: one block-diagonal graph of N T V nodes (no edge masking)."""
    if adjacency is not None:
        raise ValueError("the baseline aggregation takes no per-graph adjacency")
    n, t, v, c = x.shape
    offsets = torch.arange(n * t, device=x.device).repeat_interleave(self.edge_source.numel()) * v
    source = self.edge_source.repeat(n * t) + offsets
    target = self.edge_target.repeat(n * t) + offsets
    flat = x.reshape(n * t * v, c)
    neighbours = torch.zeros_like(flat).index_add_(0, target, flat.index_select(0, source))
    return (1.0 + self.eps) * x + neighbours.reshape(n, t, v, c)


def build(variant: str, layout: str, dim: int, depth: int) -> Tuple[nn.Module, nn.Module]:
    """Model and objective with the variant's neighbour sum, seeded so every variant has the same weights."""
    aggregation = "dense" if variant == "baseline" else variant
    torch.manual_seed(0)
    model = create_model("skeletonmae", num_classes=0, layout=layout, embed_dim=dim, depth=depth,
                         aggregation=aggregation)
    objective = create_objective("skeletonmae", layout=layout, encoder_dim=dim, aggregation=aggregation)
    if variant == "baseline":
        for module in [*model.modules(), *objective.modules()]:
            if isinstance(module, GINConv):
                module.aggregate = types.MethodType(block_graph_aggregate, module)
    return model, objective


def step_loss(model: nn.Module, objective: nn.Module, x: torch.Tensor, seed: int) -> torch.Tensor:
    torch.manual_seed(seed)  # the same masks for every variant
    return objective(model, {"skeleton": x}).loss


def check(layout: str, dim: int, depth: int) -> Dict[str, float]:
    """Largest loss and gradient differences of index_add and baseline against dense, float64."""
    x = torch.randn(2, PERSONS, 4, get_layout(layout).num_joints, CHANNELS, dtype=torch.float64)
    grads: Dict[str, Dict[str, torch.Tensor]] = {}
    losses: Dict[str, float] = {}
    for variant in VARIANTS:
        model, objective = build(variant, layout, dim, depth)
        model.double(), objective.double()
        loss = step_loss(model, objective, x, seed=3)
        loss.backward()
        losses[variant] = float(loss.detach())
        grads[variant] = {k: p.grad for k, p in [*model.named_parameters(), *objective.named_parameters()]
                          if p.grad is not None}
    out = {}
    for variant in ("index_add", "baseline"):
        out[f"{variant}_loss_abs_diff"] = abs(losses[variant] - losses["dense"])
        out[f"{variant}_grad_max_abs_diff"] = max((grads[variant][k] - grads["dense"][k]).abs().max().item()
                                                  for k in grads["dense"])
        if out[f"{variant}_grad_max_abs_diff"] > 1e-9 or out[f"{variant}_loss_abs_diff"] > 1e-12:
            raise AssertionError(f"{variant} differs from dense: {out}")
    return out


def timed(step: Callable[[], None]) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def benchmark(batch: int, frames: int, layout: str, dim: int, depth: int, steps: int) -> Dict[str, object]:
    x = torch.randn(batch, PERSONS, frames, get_layout(layout).num_joints, CHANNELS)
    runners = {}
    for variant in VARIANTS:
        model, objective = build(variant, layout, dim, depth)
        optimizer = torch.optim.AdamW([*model.parameters(), *objective.parameters()], **ADAMW)

        def run(model: nn.Module = model, objective: nn.Module = objective,
                optimizer: torch.optim.Optimizer = optimizer) -> None:
            loss = step_loss(model, objective, x, seed=0)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        runners[variant] = run
        run()  # warm-up
    times: Dict[str, List[float]] = {variant: [] for variant in VARIANTS}
    for i in range(steps):
        order = VARIANTS[i % 3:] + VARIANTS[:i % 3]
        for variant in order:
            times[variant].append(timed(runners[variant]))
    summary = {variant: {"fastest_s": round(min(t), 4), "median_s": round(statistics.median(t), 4),
                         "clips_per_s": round(batch / statistics.median(t), 2)} for variant, t in times.items()}
    return {
        **summary,
        "ratio": round(summary["dense"]["median_s"] / summary["baseline"]["median_s"], 3),
        "ratio_index_add": round(summary["index_add"]["median_s"] / summary["baseline"]["median_s"], 3),
    }


def aggregation_only(batch: int, frames: int, layout: str, dim: int, steps: int) -> Dict[str, float]:
    """Median seconds of one neighbour sum, forward + backward, on [2B, T, V, D] (no MLP), per variant."""
    v = get_layout(layout).num_joints
    layers = {}
    for variant in VARIANTS:
        _, objective = build(variant, layout, dim, 1)
        layers[variant] = objective.decoder.gin
    x = torch.randn(batch * PERSONS, frames, v, dim, requires_grad=True)
    times: Dict[str, List[float]] = {variant: [] for variant in VARIANTS}

    def run(layer: GINConv) -> None:
        layer.aggregate(x).sum().backward()

    for i in range(steps + 1):
        for variant in VARIANTS:
            elapsed = timed(lambda: run(layers[variant]))
            if i > 0:
                times[variant].append(elapsed)
    return {variant: round(statistics.median(t), 5) for variant, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16, help="clips per step (2 bodies each)")
    parser.add_argument("--frames", type=int, default=32, help="frames per clip (one graph each)")
    parser.add_argument("--layout", default="ntu25", choices=("ntu25", "coco17"))
    parser.add_argument("--dim", type=int, default=128, help="encoder width")
    parser.add_argument("--depth", type=int, default=3, help="GIN layers before the MLP")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per variant (after one warm-up)")
    parser.add_argument("--check", action="store_true", help="first compare the variants' losses and gradients")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    line: Dict[str, object] = {
        "benchmark": "skeletonmae_pretrain_step", "batch": args.batch, "persons": PERSONS, "frames": args.frames,
        "layout": args.layout, "dim": args.dim, "depth": args.depth, "threads": args.threads, "steps": args.steps,
        "device": "cpu", "torch": torch.__version__,
    }
    if args.check:
        line["check"] = check(args.layout, args.dim, args.depth)
    line.update(benchmark(args.batch, args.frames, args.layout, args.dim, args.depth, args.steps))
    line["aggregation_only_median_s"] = aggregation_only(args.batch, args.frames, args.layout, args.dim, 4 * args.steps)
    print(json.dumps(line))


if __name__ == "__main__":
    main()
