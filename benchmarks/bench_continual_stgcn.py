"""Benchmark: continual (frame-by-frame) ST-GCN against recomputing the window every 4 frames.

Model: the full-size ST-GCN of configs/synthetic/stgcn_coco17.yaml (default widths, COCO-17 graph,
60 classes), randomly initialised (its speed does not depend on its weights), eval mode, one clip
of ``--persons`` people, ``torch.inference_mode``, ``--threads`` threads.

For each window length T (``--windows``):
  padded      ``model(x)`` on the T frames (what the live recognizer runs every 4 frames), per window;
  valid       :func:`stgcn_valid_forward` on the T frames, per window (None where T < the receptive
              field, 153 frames: there the padding-free model has no output);
  continual   :class:`ContinualSTGCN` stepped over the stream, in its steady state: seconds per frame
              and per classified window (4 frames, one period of the stride-2 layers; the window it
              classifies is T_c = max(T, 153) frames);
  ratios      padded (and valid) per-window seconds / continual per-window seconds.
Times are the best of ``--repeats`` runs (the least disturbed on a shared machine). GFLOPs (torch's
FlopCounterMode, conv and matmul) of one window and of one continual classification come beside them.

Run: .venv/bin/python benchmarks/bench_continual_stgcn.py [--windows 32 64 160 300] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Optional

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run from a checkout without installing the package

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from actionfusion.modalities.skeleton.stgcn import STGCN  # noqa: E402
from actionfusion.modalities.skeleton.stgcn_continual import (  # noqa: E402
    ContinualSTGCN,
    stgcn_receptive_field,
    stgcn_total_stride,
    stgcn_valid_forward,
)

COCO17_JOINTS = 17
NUM_CLASSES = 60


def best_of(run: Callable[[], None], repeats: int) -> float:
    """Seconds of the fastest of ``repeats`` calls of ``run``, after one warm-up call."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def gflops(run: Callable[[], None]) -> float:
    with FlopCounterMode(display=False) as counter:
        run()
    return round(counter.get_total_flops() / 1e9, 4)


def measure_window(model: STGCN, stream: torch.Tensor, window: int, periods: int,
                   repeats: int) -> Dict[str, object]:
    """One JSON record for window length ``window`` on ``stream`` [1, M, F, V, C]."""
    stride = stgcn_total_stride(model)
    rf = stgcn_receptive_field(model)
    x = stream[:, :, :window]
    padded_s = best_of(lambda: model(x), repeats)
    record: Dict[str, object] = {
        "window": window,
        "padded_s_per_window": round(padded_s, 5),
        "padded_gflops_per_window": gflops(lambda: model(x)),
    }
    valid_s: Optional[float] = None
    if window >= rf:
        valid_s = best_of(lambda: stgcn_valid_forward(model, x), repeats)
        record["valid_gflops_per_window"] = gflops(lambda: stgcn_valid_forward(model, x))
    record["valid_s_per_window"] = None if valid_s is None else round(valid_s, 5)

    continual_window = max(window, rf)
    continual = ContinualSTGCN(model, continual_window)
    for n in range(continual_window):  # fill: the next step starts a steady period
        continual.step(stream[:, :, n])
    start_frame = continual_window
    frames = periods * stride

    def run_periods() -> None:
        nonlocal start_frame
        if start_frame + frames > stream.shape[2]:
            continual.reset()
            for n in range(continual_window):
                continual.step(stream[:, :, n])
            start_frame = continual_window
        returned = 0
        for n in range(start_frame, start_frame + frames):
            returned += continual.step(stream[:, :, n]) is not None
        start_frame += frames
        assert returned == periods, (returned, periods)

    per_frame = best_of(run_periods, repeats) / frames
    one_period = stream[:, :, start_frame:start_frame + stride] if start_frame + stride <= stream.shape[2] else None
    if one_period is not None:
        record["continual_gflops_per_window"] = gflops(
            lambda: [continual.step(one_period[:, :, i]) for i in range(stride)])
    per_window = per_frame * stride
    record.update({
        "continual_window": continual_window,
        "continual_s_per_frame": round(per_frame, 6),
        "continual_s_per_window": round(per_window, 6),
        "padded_over_continual": round(padded_s / per_window, 2),
        "valid_over_continual": None if valid_s is None else round(valid_s / per_window, 2),
    })
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, nargs="+", default=[32, 64, 160, 300])
    parser.add_argument("--persons", type=int, default=2, help="M, the people of one clip")
    parser.add_argument("--periods", type=int, default=10, help="4-frame periods per timed continual run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = STGCN(num_classes=NUM_CLASSES, layout="coco17").eval()
    frames = max(max(args.windows), stgcn_receptive_field(model)) + (args.repeats + 2) * args.periods * 4 + 8
    stream = torch.randn(1, args.persons, frames, COCO17_JOINTS, 3)
    with torch.inference_mode():
        records = [measure_window(model, stream, w, args.periods, args.repeats) for w in args.windows]
    line = {
        "benchmark": "continual_stgcn", "model": "stgcn", "layout": "coco17", "num_classes": NUM_CLASSES,
        "persons": args.persons, "threads": args.threads, "repeats": args.repeats,
        "receptive_field": stgcn_receptive_field(model), "classify_every": stgcn_total_stride(model),
        "torch": torch.__version__, "windows": records,
    }
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
