"""Benchmark ``prepare --ray``: samples/s with 1, 2 and 4 Ray workers against the local pool.

Usage::

    .venv/bin/python benchmarks/bench_ray_prepare.py [--scale tiny] [--ray-workers 1,2,4] [--local-workers 1,2]

The synthetic NTU-format set (``--scale``, default config of ``prepare``) is generated once into a
temporary folder. Each case prepares it into a fresh store on this machine:

- ``local``: :func:`prepare_store` with the local pool (``workers`` 1 runs inline, in this process;
  2 runs two worker processes);
- ``ray``: a one-machine Ray cluster of ``workers`` CPUs started here (``ray.init(num_cpus=N)``),
  then ``prepare_store(..., ray_address=...)`` on it. Ray's fixed cost is measured apart:
  ``cluster_start_s`` (``ray.init``) and ``first_task_s`` (one empty task's round trip, which
  starts a worker process). ``prepare_s`` is the prepare call alone (its own workers' start-up
  and imports included).

Each line: ``samples_per_s`` (prepare call), ``end_to_end_samples_per_s`` (cluster start and first
task included), the baseline (the local pool with ``min(workers, max local workers)``) and the
ratios against it. With more workers than cores the cases oversubscribe the CPUs (this says so in
``oversubscribed``). Prints one JSON line per case.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from actionfusion.datasets.store.prepare import PrepareConfig, prepare_store  # noqa: E402
from actionfusion.datasets.synthetic.generate import SynthConfig, generate_synthetic_ntu  # noqa: E402


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def run_local(root: Path, out: Path, workers: int) -> dict:
    start = time.perf_counter()
    report = prepare_store(root, out, PrepareConfig(), workers=workers, progress=False)
    elapsed = time.perf_counter() - start
    return {"backend": "local", "workers": workers, "samples": report.num_done, "prepare_s": round(elapsed, 3),
            "samples_per_s": round(report.num_done / elapsed, 3), "sample_cpu_s": round(report.sample_cpu_s, 3)}


def run_ray(root: Path, out: Path, workers: int, temp_dir: str) -> dict:
    import ray

    start = time.perf_counter()
    ray.init(num_cpus=workers, include_dashboard=False, object_store_memory=200 * 1024**2,
             logging_level="WARNING", _temp_dir=temp_dir)
    cluster_start = time.perf_counter() - start
    try:
        noop = ray.remote(num_cpus=1)(lambda: None)
        start = time.perf_counter()
        ray.get(noop.remote())
        first_task = time.perf_counter() - start
        start = time.perf_counter()
        report = prepare_store(root, out, PrepareConfig(), progress=False, ray_address="local")
        elapsed = time.perf_counter() - start
    finally:
        ray.shutdown()
    total = cluster_start + first_task + elapsed
    return {"backend": "ray", "workers": workers, "samples": report.num_done, "prepare_s": round(elapsed, 3),
            "samples_per_s": round(report.num_done / elapsed, 3), "sample_cpu_s": round(report.sample_cpu_s, 3),
            "cluster_start_s": round(cluster_start, 3), "first_task_s": round(first_task, 3),
            "end_to_end_samples_per_s": round(report.num_done / total, 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--scale", default="tiny", help="synthetic scale (tiny: 30 samples)")
    parser.add_argument("--ray-workers", type=_ints, default=[1, 2, 4])
    parser.add_argument("--local-workers", type=_ints, default=[1, 2])
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    work = Path(tempfile.mkdtemp(prefix="bench_ray_prepare_"))
    ray_temp = tempfile.mkdtemp(prefix="afray", dir="/tmp")
    try:
        root = work / "raw"
        generate_synthetic_ntu(root, SynthConfig(seed=0, scale=args.scale), workers=min(2, cores), progress=False)
        local: dict[int, dict] = {}
        ray_rates: dict[int, float] = {}
        for n in args.local_workers:
            result = run_local(root, work / f"local{n}", n)
            local[n] = result
            print(json.dumps({"bench": "ray_prepare", "case": f"local_{n}", **result, "cores": cores,
                              "oversubscribed": n > cores}), flush=True)
        for n in args.ray_workers:
            result = run_ray(root, work / f"ray{n}", n, ray_temp)
            base = local[max(k for k in local if k <= n)] if any(k <= n for k in local) else local[min(local)]
            line = {"bench": "ray_prepare", "case": f"ray_{n}", **result, "cores": cores, "oversubscribed": n > cores,
                    "baseline": f"local_{base['workers']}", "baseline_samples_per_s": base["samples_per_s"],
                    "ratio": round(result["samples_per_s"] / base["samples_per_s"], 3),
                    "end_to_end_ratio": round(result["end_to_end_samples_per_s"] / base["samples_per_s"], 3),
                    "scaling_vs_ray_1": None}
            ray_rates[n] = result["samples_per_s"]
            if 1 in ray_rates:
                line["scaling_vs_ray_1"] = round(result["samples_per_s"] / ray_rates[1], 3)
            print(json.dumps(line), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(ray_temp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
