"""Benchmark: the robustness benchmark's per-clip cost (corrupt + complete) against the model's forward.

The test clips of a config's store go through its test transforms (centre, crop to
``data.clip_len``); then, on the same clips:

- every corruption of :mod:`actionfusion.modalities.skeleton.corruption` at ``--level``, followed
  by every baseline completion (``none``, ``interpolate``, ``duplicate``), one clip at a time as
  the data loader runs them: clips/s of corrupt + complete;
- with ``--completion-weights W``, FineTec's completion network as a completion too, one clip at a
  time through the robustness command's own step (``CorruptionStep``);
- the model's forward (eval mode, no grad, ``--batch`` clips per call, the config's stream step
  applied first): clips/s.

``ratio`` = corruption clips/s / forward clips/s: how many times faster than the model the
corruption is (> 1: the benchmark adds less than one forward's time per clip). Each timing is the
fastest of ``--repeats`` passes (the least disturbed on a shared machine). Prints one JSON line.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_corruption.py configs/synthetic/ctrgcn.yaml \\
        [--checkpoint WORK_DIR] [--set data.store=/work/runs/store] [--level severe] [--threads 1] \\
        [--completion-weights work_dirs/synthetic_finetec_completion/encoder.safetensors]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any, Callable, Dict, List, Sequence

import numpy as np
import torch


def _best_time(fn: Callable[[], Any], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def load_clips(cfg: Any, limit: int) -> List[np.ndarray]:
    """Up to ``limit`` test clips float32 [M, T, V, 3] after the test transforms (no stream step)."""
    from actionfusion.modalities.skeleton.transforms import build_skeleton_pipeline
    from actionfusion.pipeline.data_builder import build_datasets

    def before_stream(specs: List[Dict[str, Any]], layout: Any, train: bool) -> Any:
        return build_skeleton_pipeline(specs if train else specs[:-1], layout, train)

    test = build_datasets(cfg, pipeline_builder=before_stream)["test"]
    clips = [test[i]["skeleton"].numpy() for i in range(min(limit, len(test)))]
    return [c[0] if c.ndim == 5 else c for c in clips]  # first clip of a multi-clip item


def main(argv: Sequence[str] = ()) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--checkpoint", default=None, help="weights (speed does not depend on them)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--level", default="severe", choices=("minor", "moderate", "severe"))
    parser.add_argument("--clips", type=int, default=135)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--completion-weights", default=None,
                        help="also time FineTec's completion network (pretrain's encoder.safetensors)")
    args = parser.parse_args(list(argv) or None)
    torch.set_num_threads(args.threads)

    from actionfusion.datasets.skeleton_conventions import CONVENTION_LAYOUTS
    from actionfusion.modalities.skeleton.completion import COMPLETIONS, complete
    from actionfusion.modalities.skeleton.corruption import CORRUPTIONS, corrupt
    from actionfusion.modalities.skeleton.transforms import build_skeleton_pipeline
    from actionfusion.pipeline.checkpoints import load_weights
    from actionfusion.pipeline.config import load_config
    from actionfusion.pipeline.robustness import CorruptionStep, load_completion_network
    from actionfusion.pipeline.trainer import build_model, weights_path

    cfg = load_config(args.config, args.set)
    clips = load_clips(cfg, args.clips)
    layout = CONVENTION_LAYOUTS[cfg.data.skeleton_source] if cfg.data.skeleton_source != "ntu25" else cfg.data.layout
    stream_spec = {"name": "unified_12ch"} if cfg.data.stream == "unified12" else {"name": "stream",
                                                                                   "stream": cfg.data.stream}
    stream = build_skeleton_pipeline([stream_spec], layout, False)
    model = build_model(cfg).eval()
    if args.checkpoint:
        load_weights(weights_path(args.checkpoint), model)
    inputs = torch.from_numpy(np.stack([stream(c, None) for c in clips]))
    network = None
    if args.completion_weights:
        from actionfusion.modalities.skeleton.layouts import get_layout

        network = load_completion_network(args.completion_weights, int(cfg.data.clip_len),
                                          get_layout(layout).num_joints)

    def forward() -> None:
        with torch.no_grad():
            for start in range(0, len(inputs), args.batch):
                model(inputs[start:start + args.batch])

    forward()  # warm-up
    forward_rate = len(clips) / _best_time(forward, args.repeats)
    rates: Dict[str, Dict[str, float]] = {}
    for name in CORRUPTIONS:
        rates[name] = {}
        for method in COMPLETIONS:
            def run(name: str = name, method: str = method) -> None:
                for i, clip in enumerate(clips):
                    complete(corrupt(clip, name, args.level, [0, i], layout=layout), method)

            rates[name][method] = round(len(clips) / _best_time(run, args.repeats), 1)
        if network is not None:
            step = CorruptionStep(name, args.level, "finetec", str(layout), 0, network)

            def run_network(step: CorruptionStep = step) -> None:
                with torch.no_grad():
                    for i, clip in enumerate(clips):
                        step(clip, np.random.default_rng([0, i]))

            rates[name]["finetec"] = round(len(clips) / _best_time(run_network, args.repeats), 1)
    slowest = min(rate for per in rates.values() for rate in per.values())
    result = {"benchmark": "bench_corruption", "config": args.config, "model": cfg.model.name,
              "checkpoint": args.checkpoint, "completion_weights": args.completion_weights, "level": args.level, "clips": len(clips),
              "clip_shape": list(clips[0].shape), "threads": args.threads, "batch": args.batch,
              "forward_clips_per_s": round(forward_rate, 1), "corrupt_complete_clips_per_s": rates,
              "ratio_to_forward": {name: {m: round(r / forward_rate, 1) for m, r in per.items()}
                                   for name, per in rates.items()},
              "slowest_ratio_to_forward": round(slowest / forward_rate, 1)}
    print(json.dumps(result, sort_keys=True))
    return result


if __name__ == "__main__":
    main()
