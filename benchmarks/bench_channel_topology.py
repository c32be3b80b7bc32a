"""Benchmark: CTR-GCN's spatial unit, forward + backward, fused (``channel_topology_sum``) vs per subset.

The baseline computes what the official ``unit_gcn`` does (Uason-Chen/CTR-GCN@e13d758): one CTRGC
module per subset (:class:`~actionfusion.modalities.skeleton.ctrgcn.CTRGC`: four 1x1
convolutions, the topology times alpha plus A_k, an einsum) and the sum of the K results. Ours
is :func:`~actionfusion.modalities.skeleton.channel_topology.channel_topology_sum` on the same
modules. Both then run the unit's BN, residual and ReLU. One JSON line per stage shape (batch 32
person-clips, NTU-25, K = 3), with the fastest of ``--repeats`` timed runs after a warm-up, the
ratio ours/per-subset, and the largest relative difference of output and input gradient.

    .venv/bin/python benchmarks/bench_channel_topology.py [--threads 2] [--repeats 8]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable, Tuple

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actionfusion.modalities.skeleton.ctrgcn import CTRGCNUnit  # noqa: E402
from actionfusion.modalities.skeleton.graphs import ctrgcn_partition  # noqa: E402
from actionfusion.modalities.skeleton.layouts import layout_graph  # noqa: E402

# (C_in, C_out, T) of CTR-GCN's stages at T = 64 input (the first block's 3 -> 64 aside).
SHAPES = ((64, 64, 64), (64, 128, 64), (128, 128, 32), (128, 256, 32), (256, 256, 16))


def per_subset(unit: CTRGCNUnit) -> Callable[[torch.Tensor], torch.Tensor]:
    """The official unit's computation: each subset's CTRGC on its own, summed."""
    def run(x: torch.Tensor) -> torch.Tensor:
        y = sum(conv(x, unit.A[k], unit.alpha) for k, conv in enumerate(unit.convs))
        return torch.relu(unit.bn(y) + unit.down(x))
    return run


def time_step(fn: Callable[[torch.Tensor], torch.Tensor], unit: CTRGCNUnit, x: torch.Tensor,
              grad: torch.Tensor, repeats: int) -> Tuple[float, torch.Tensor, torch.Tensor]:
    """Fastest forward + backward in seconds, and the output and input gradient of the last run."""
    best = float("inf")
    for i in range(repeats + 1):
        unit.zero_grad(set_to_none=True)
        x.grad = None
        start = time.perf_counter()
        y = fn(x)
        y.backward(grad)
        if i:
            best = min(best, time.perf_counter() - start)
    return best, y.detach(), x.grad.clone()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--repeats", type=int, default=8, help="timed runs per side (default 8)")
    parser.add_argument("--batch", type=int, default=32, help="person-clips N * M (default 32)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    adjacency = ctrgcn_partition(layout_graph("ntu25", "A"))
    for c_in, c_out, frames in SHAPES:
        torch.manual_seed(0)
        unit = CTRGCNUnit(c_in, c_out, adjacency)
        with torch.no_grad():
            unit.alpha.fill_(0.5)  # zero at init: make the refinement count
        x = torch.randn(args.batch, c_in, frames, 25, requires_grad=True)
        grad = torch.randn(args.batch, c_out, frames, 25)
        # interleave the sides so that both see the same machine load
        ours_s, theirs_s = float("inf"), float("inf")
        for _ in range(2):
            t_ours, y_ours, g_ours = time_step(unit, unit, x, grad, args.repeats // 2)
            t_ref, y_ref, g_ref = time_step(per_subset(unit), unit, x, grad, args.repeats // 2)
            ours_s, theirs_s = min(ours_s, t_ours), min(theirs_s, t_ref)
        print(json.dumps({
            "benchmark": "channel_topology", "c_in": c_in, "c_out": c_out, "frames": frames,
            "batch": args.batch, "threads": args.threads,
            "ours_ms": round(ours_s * 1e3, 1), "per_subset_ms": round(theirs_s * 1e3, 1),
            "ratio_ours_over_per_subset": round(ours_s / theirs_s, 3),
            "max_rel_diff_output": float((y_ours - y_ref).abs().max() / y_ref.abs().max()),
            "max_rel_diff_input_grad": float((g_ours - g_ref).abs().max() / g_ref.abs().max()),
        }), flush=True)


if __name__ == "__main__":
    main()
