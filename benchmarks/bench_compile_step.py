"""Benchmark: a skeleton model's CPU training step eager against ``torch.compile`` (what
``train.compile: true`` does), with the one-off compilation time reported apart.

One process per run: build the model, time ``--steps`` eager steps (forward, cross-entropy,
backward, SGD) after a warm-up, then compile, time the first compiled step (the compilation) and
``--steps`` more. Batch 16, M = 2, T = ``--frames``, V = 25, C = 3, 60 classes. One JSON line per
model with both medians and the ratio compiled / eager.

    .venv/bin/python benchmarks/bench_compile_step.py [--models stgcnpp ctrgcn] [--threads 2] [--steps 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actionfusion.registry import create_model  # noqa: E402


def _step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> float:
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["stgcnpp"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--frames", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.models:
        torch.manual_seed(0)
        model = create_model(name, num_classes=60)
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x, y = torch.randn(16, 2, args.frames, 25, 3), torch.randint(0, 60, (16,))
        _step(model, optimizer, x, y)
        eager = [_step(model, optimizer, x, y) for _ in range(args.steps)]
        compiled_model = torch.compile(model)
        compile_s = _step(compiled_model, optimizer, x, y)
        compiled = [_step(compiled_model, optimizer, x, y) for _ in range(args.steps)]
        e, c = statistics.median(eager), statistics.median(compiled)
        print(json.dumps({"benchmark": "compile_step", "model": name, "batch": 16, "frames": args.frames,
                          "threads": args.threads, "steps": args.steps, "eager_step_s": round(e, 4),
                          "compiled_step_s": round(c, 4), "ratio_compiled_over_eager": round(c / e, 3),
                          "first_compiled_step_s": round(compile_s, 1), "torch": torch.__version__}), flush=True)


if __name__ == "__main__":
    main()
