"""Benchmark: CPU inference samples/s of the skeleton models, ours (eager torch and ONNX Runtime) against the official code.

The workload is pyskl's published inference tables': batch 16 x 100 frames x 2 persons x 25 joints
(models built for other inputs keep theirs: PSUMNet's 12 channels; MAMP's 120 frames, fixed by its
official config, as in ``bench_skeleton_train_step.py``; CascadeFormer and FineTec's completion
network are built for 100 frames). Each side of each model runs in a fresh worker process:
``torch.inference_mode``, eval mode, one warm-up and ``--steps`` timed forward passes; samples/s comes
from the fastest pass (the least disturbed on a shared machine).

* ``ours_eager``: our registered model in torch.
* ``ours_onnxruntime``: the same weights through :func:`actionfusion.pipeline.onnx_export.export_onnx`
  (the file ``actionfusion export-onnx`` writes, checked against torch at export) in ONNX Runtime's CPU
  provider with ``--threads`` intra-op threads; ``export_s`` (export plus its checks) is reported apart,
  and ``max_rel_diff`` is ONNX Runtime against torch on the benchmark batch.
* ``ours_compiled`` (with ``--compile``): the same model through ``torch.compile`` with
  ``train.compile``'s inductor options (:mod:`actionfusion.pipeline.compiled_step`), under
  ``torch.no_grad``; the first call (the compilation) is reported apart as ``compile_s``.
* ``official_eager``: the official model where a copy lies under ``--official-root``, built and fed
  exactly as ``bench_skeleton_train_step.py`` does (its ``OFFICIAL`` table, stand-ins and patches are
  imported from there, not repeated); otherwise the reason it was skipped.

One JSON line per model, with ours/official ratios of samples/s (above 1: ours is faster).

    .venv/bin/python benchmarks/bench_inference.py [--official-root /tmp/official]
        [--models stgcn ctrgcn stgcnpp ... | all] [--steps 3] [--threads 1] [--batch 16] [--frames 100]
        [--compile]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import torch

BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS))
sys.path.insert(0, str(BENCHMARKS.parent))

import bench_skeleton_train_step as train_bench  # noqa: E402  (the official models' machinery)

BATCH, PERSONS, FRAMES = 16, 2, 100
DEFAULT_MODELS = ("stgcn", "ctrgcn", "stgcnpp", "hypergcn", "psumnet_body", "mamp")
FIXED_FRAMES: Dict[str, int] = {"mamp": 120}
"""Models whose official config fixes the clip length (MAMP's finetune_t120)."""
OURS_KWARGS: Dict[str, dict] = {"cascadeformer": {"max_frames": FRAMES}, "finetec_completion": {"num_frames": FRAMES},
                               "finetec": {"num_frames": FRAMES}}
"""Constructor kwargs so that a model with a learned per-frame table takes the benchmark's clip length."""


def clip_shape(name: str, batch: int, frames: int) -> Dict[str, int]:
    shape = train_bench.input_shape(name, batch)
    shape["frames"] = FIXED_FRAMES.get(name, frames)
    return shape


def _timed(run, steps: int) -> List[float]:  # type: ignore[no-untyped-def]
    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        run()
        if i > 0:
            times.append(time.perf_counter() - start)
    return times


def _summary(times: List[float], batch: int) -> Dict[str, float]:
    return {"forward_s": round(min(times), 4), "samples_per_s": round(batch / min(times), 3)}


def worker(name: str, side: str, args: argparse.Namespace) -> Dict[str, object]:
    """Measure one side of one model in this process."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    s = clip_shape(name, args.batch, args.frames)
    x = torch.randn(s["batch"], s["persons"], s["frames"], s["joints"], s["channels"])
    if side == "official":
        model, to_input, logits_of = train_bench.build_official(name, args.official_root)
        model.eval()
        official_x = to_input(x)
        with torch.inference_mode():
            times = _timed(lambda: logits_of(model(official_x)), args.steps)
        return {**_summary(times, args.batch), "input": list(official_x.shape)}

    from actionfusion.registry import create_model

    model = create_model(name, num_classes=train_bench.NUM_CLASSES,
                         **{**train_bench.OURS_KWARGS.get(name, {}), **OURS_KWARGS.get(name, {})}).eval()
    with torch.inference_mode():
        times = _timed(lambda: model(x), args.steps)
        reference = model(x).numpy()
    eager = {**_summary(times, args.batch), "input": list(x.shape)}
    if side == "ours_eager":
        return eager
    if side == "ours_compiled":
        from actionfusion.pipeline.compiled_step import compile_training_module

        compiled = compile_training_module(model)
        with torch.no_grad():
            started = time.perf_counter()
            compiled(x)
            compile_s = time.perf_counter() - started
            times = _timed(lambda: compiled(x), args.steps)
            got = compiled(x).numpy()
        return {**_summary(times, args.batch), "compile_s": round(compile_s, 1),
                "max_rel_diff": float(abs(got - reference).max() / abs(reference).max())}

    import numpy as np
    import onnxruntime as ort

    from actionfusion.pipeline.onnx_export import export_onnx

    started = time.perf_counter()
    blob, report = export_onnx(model, {"skeleton": x[:2]}, name=name)
    export_s = time.perf_counter() - started
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = args.threads, 1
    session = ort.InferenceSession(blob, options, providers=["CPUExecutionProvider"])
    feed = {"skeleton": x.numpy()}
    times = _timed(lambda: session.run(None, feed), args.steps)
    got = session.run(None, feed)[0]
    return {**_summary(times, args.batch), "export_s": round(export_s, 2),
            "dynamic_axes": report.dynamic_axes["skeleton"], "fixed_time": report.fixed_time,
            "max_rel_diff": float(np.abs(got - reference).max() / np.abs(reference).max())}


def run_worker(name: str, side: str, args: argparse.Namespace) -> Dict[str, object]:
    """:func:`worker` in a fresh interpreter."""
    cmd = [sys.executable, __file__, "--worker", name, side, "--official-root", str(args.official_root),
           "--steps", str(args.steps), "--threads", str(args.threads), "--batch", str(args.batch),
           "--frames", str(args.frames)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official-root", type=Path, default=Path("/tmp/official"))
    parser.add_argument("--models", nargs="*", default=list(DEFAULT_MODELS),
                        help="registry names, or 'all' for every registered skeleton model")
    parser.add_argument("--steps", type=int, default=3, help="timed forward passes per side (after one warm-up)")
    parser.add_argument("--threads", type=int, default=1, help="torch and ONNX Runtime intra-op threads")
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--frames", type=int, default=FRAMES)
    parser.add_argument("--compile", action="store_true", help="also time our model through torch.compile")
    parser.add_argument("--worker", nargs=2, metavar=("NAME", "SIDE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, args)))
        return
    if args.models == ["all"]:
        from actionfusion.registry import list_models

        args.models = list_models(modality="skeleton")
    for name in args.models:
        s = clip_shape(name, args.batch, args.frames)
        line: Dict[str, object] = {
            "benchmark": "inference", "model": name, "batch": args.batch, "persons": s["persons"],
            "frames": s["frames"], "channels": s["channels"], "threads": args.threads, "steps": args.steps,
            "torch": torch.__version__,
        }
        line["ours_eager"] = run_worker(name, "ours_eager", args)
        line["ours_onnxruntime"] = run_worker(name, "ours_onnxruntime", args)
        sides = ["ours_eager", "ours_onnxruntime"]
        if args.compile:
            line["ours_compiled"] = run_worker(name, "ours_compiled", args)
            sides.append("ours_compiled")
        reason = train_bench.official_skip_reason(name, args.official_root)
        line["official_eager"] = {"skipped": reason} if reason else run_worker(name, "official", args)
        official = line["official_eager"]
        if isinstance(official, dict) and "samples_per_s" in official:
            for side in sides:
                ours = line[side]
                if isinstance(ours, dict) and "samples_per_s" in ours:
                    line[f"{side}_over_official"] = round(float(ours["samples_per_s"]) / float(official["samples_per_s"]), 3)
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
