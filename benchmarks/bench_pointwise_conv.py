"""Benchmark: 1x1 convolutions as one batched matmul (``pointwise_conv``) vs PyTorch's convolution.

The skeleton GCNs spend most of a CPU training step in 1x1 convolutions on ``[N', C, T, V]``
tensors (the stacked CTRGC and temporal-branch projections, the residual and down paths).
:func:`~actionfusion.modalities.skeleton.gcn_blocks.pointwise_conv` computes them as one
``baddbmm`` over the batch; the baseline is ``F.conv2d`` on the same NCHW tensors (PyTorch's CPU
kernel, oneDNN). One JSON line per shape (those of CTR-GCN's layers at batch 16 x 2 persons,
T = 64 input), forward and backward timed apart (fastest of ``--repeats`` after a warm-up, the two
sides interleaved), with the ratio and the largest relative difference of the output and of
the three gradients.

    .venv/bin/python benchmarks/bench_pointwise_conv.py [--threads 2] [--repeats 6]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actionfusion.modalities.skeleton.gcn_blocks import pointwise_conv  # noqa: E402

# (C_in, C_out, T, stride): CTR-GCN's stacked CTRGC projection (K * C_out outputs) at each stage,
# its fused temporal-branch heads, and a strided residual.
SHAPES = ((64, 192, 64, 1), (128, 384, 32, 1), (256, 768, 16, 1), (64, 48, 64, 1), (256, 192, 32, 1),
          (128, 256, 64, 2))


def timed(fn: Callable[[], torch.Tensor], grad: torch.Tensor, leaves: List[torch.Tensor],
          ) -> Tuple[float, float, List[torch.Tensor]]:
    """One forward and backward: their seconds, then the output and the leaves' gradients."""
    for leaf in leaves:
        leaf.grad = None
    start = time.perf_counter()
    y = fn()
    middle = time.perf_counter()
    y.backward(grad)
    end = time.perf_counter()
    return middle - start, end - middle, [y.detach()] + [leaf.grad.clone() for leaf in leaves]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--repeats", type=int, default=6, help="timed runs per side (default 6)")
    parser.add_argument("--batch", type=int, default=32, help="person-clips N * M (default 32)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for c_in, c_out, frames, stride in SHAPES:
        torch.manual_seed(0)
        x = torch.randn(args.batch, c_in, frames, 25, requires_grad=True)
        weight = torch.randn(c_out, c_in, 1, 1, requires_grad=True)
        bias = torch.randn(c_out, requires_grad=True)
        grad = torch.randn(args.batch, c_out, -(-frames // stride), 25)
        sides: Dict[str, Callable[[], torch.Tensor]] = {
            "ours": lambda: pointwise_conv(x, weight, bias, (stride, 1)),
            "conv2d": lambda: F.conv2d(x, weight, bias, stride=(stride, 1)),
        }
        best = {side: [float("inf"), float("inf")] for side in sides}
        results: Dict[str, List[torch.Tensor]] = {}
        for i in range(args.repeats + 1):  # the sides alternate; the first run of each is a warm-up
            for side, fn in sides.items():
                fwd, bwd, results[side] = timed(fn, grad, [x, weight, bias])
                if i:
                    best[side] = [min(best[side][0], fwd), min(best[side][1], bwd)]
        diffs = [float((a - b).abs().max() / b.abs().max()) for a, b in zip(results["ours"], results["conv2d"])]
        ours, conv = best["ours"], best["conv2d"]
        print(json.dumps({
            "benchmark": "pointwise_conv", "c_in": c_in, "c_out": c_out, "frames": frames, "stride": stride,
            "batch": args.batch, "threads": args.threads,
            "ours_forward_ms": round(ours[0] * 1e3, 1), "ours_backward_ms": round(ours[1] * 1e3, 1),
            "conv2d_forward_ms": round(conv[0] * 1e3, 1), "conv2d_backward_ms": round(conv[1] * 1e3, 1),
            "ratio_ours_over_conv2d": round(sum(ours) / sum(conv), 3),
            "max_rel_diff": {"output": diffs[0], "input_grad": diffs[1], "weight_grad": diffs[2],
                             "bias_grad": diffs[3]},
        }), flush=True)


if __name__ == "__main__":
    main()
