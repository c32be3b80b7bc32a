"""Benchmark: temporal action detection on untrimmed synthetic skeleton sequences (PKU-MMD protocol).

Generates ``--sequences`` untrimmed sequences of seed ``--seed`` in PKU-MMD's format
(:mod:`actionfusion.datasets.synthetic.untrimmed`: performers outside the NTU-60 xsub training
list, idle gaps between actions), runs :func:`actionfusion.pipeline.detection.runner.evaluate_folder`
with the given checkpoint and the default :class:`DetectionOptions` (tuned on seed 100: report
another seed), and prints ONE JSON line:

* ``map``: mAP at temporal IoU 0.1..0.7 (greedy matching, all-point interpolated AP, mean over the
  classes with ground truth; :mod:`actionfusion.pipeline.detection.detection_map`);
* ``baseline_map``: the same sequences and scores, each window's argmax, consecutive equal windows
  merged, no smoothing, thresholds or NMS; ``ratio_at_0.5``: ours / baseline at IoU 0.5;
* ``frames_per_second``: frames scored and grouped per second (model loading, generation and file
  reading excluded), with ``--threads`` torch threads on the CPU;
* counts: sequences, frames, ground-truth actions, detections.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_detection.py --checkpoint /work/runs/robust/ctrgcn_e12 \\
        [--out /work/runs/detect/bench] [--sequences 10] [--seed 0] [--exclude-held-object] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actionfusion.datasets.synthetic.untrimmed import UntrimmedConfig, generate_untrimmed  # noqa: E402
from actionfusion.pipeline.detection.runner import DetectionOptions, evaluate_folder  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="training work dir (config.yaml + best.safetensors)")
    parser.add_argument("--out", default="/tmp/bench_detection", help="sequences and results (default %(default)s)")
    parser.add_argument("--sequences", type=int, default=10, help="untrimmed sequences (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed; the options were tuned on 100 "
                        "(default %(default)s)")
    parser.add_argument("--exclude-held-object", action="store_true",
                        help="leave out drink water / brushing teeth / phone call (one skeleton motion)")
    parser.add_argument("--window", type=int, default=DetectionOptions.window,
                        help="window frames (default %(default)s)")
    parser.add_argument("--stride", type=int, default=DetectionOptions.stride, help="default %(default)s")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default %(default)s)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    root = Path(args.out) / f"seed{args.seed}_n{args.sequences}{'_noobj' if args.exclude_held_object else ''}"
    began = time.perf_counter()
    generate_untrimmed(root, UntrimmedConfig(seed=args.seed, num_sequences=args.sequences,
                                             exclude_held_object=args.exclude_held_object))
    generate_s = time.perf_counter() - began
    options = DetectionOptions(window=args.window, stride=args.stride)
    metrics = evaluate_folder(root, args.checkpoint, root / "eval", options)
    ours, base = metrics["map"]["0.5"], metrics["baseline_map"]["0.5"]
    print(json.dumps({
        "benchmark": "detection_untrimmed_synthetic", "checkpoint": str(args.checkpoint), "seed": args.seed,
        "exclude_held_object": args.exclude_held_object,
        "map": {k: round(v, 4) for k, v in metrics["map"].items()},
        "baseline_map": {k: round(v, 4) for k, v in metrics["baseline_map"].items()},
        "ratio_at_0.5": round(ours / base, 3) if base > 0 else None,
        "num_sequences": metrics["num_sequences"], "num_frames": metrics["num_frames"],
        "num_truths": metrics["num_truths"], "num_detections": metrics["num_detections"],
        "frames_per_second": round(metrics["frames_per_second"], 1), "threads": args.threads,
        "window": metrics["window"], "stride": args.stride, "generate_s": round(generate_s, 2),
        "metrics": str(root / "eval" / "metrics.json"),
    }))


if __name__ == "__main__":
    main()
