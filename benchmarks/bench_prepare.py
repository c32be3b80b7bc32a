"""Benchmark ``prepare_store``: throughput, peak memory, stored sizes, and the full-NTU60 size estimate.

Usage::

    .venv/bin/python benchmarks/bench_prepare.py [--source synthetic|fixtures] [--samples N] [--workers 2]

Sources:
  - ``synthetic``: the synthetic NTU-format generator (``--scale tiny`` by default), generated
    once into a temporary directory.
  - ``fixtures``: the real NTU fixtures (1920x1080 video, masked depth, skeleton of the same
    setup/camera/performer) linked ``--samples`` times under different names: real-data cost.

The prepare run happens in a child process so that its peak RSS (``RUSAGE_SELF``) is not
mixed with the generator's; the workers' peak RSS is what each worker measured of itself
(``PrepareReport.peak_rss_worker_mb``: with ``forkserver`` the workers are not children of the
main process, so ``RUSAGE_CHILDREN`` would not see them). The baseline, measured in
the same run: reading every source with no processing (decode every video frame to RGB with
the same backend and one decoder thread, read every depth PNG and skeleton file) in one
process, sequentially. Two ratios: wall time (prepare with ``--workers`` over the one-process
baseline, start-up included) and CPU time (the CPU spent inside the samples, summed over the
workers, over the baseline's CPU), which other load on the shared machine disturbs less.

Prints ONE JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
FIXTURES = REPO / ".." / "shared" / "fixtures" / "ntu"

_CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from actionfusion.datasets.store.prepare import prepare_store
root, out, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
start = time.perf_counter()
report = prepare_store(root, out, workers=workers, progress=False)
elapsed = time.perf_counter() - start
frames = 0
for meta_path in Path(out, "samples").glob("*/meta.json"):
    meta = json.loads(meta_path.read_text())
    frames += max((m["num_frames"] for m in meta["modalities"].values()), default=0)
print(json.dumps({
    "report": report.to_dict(), "elapsed_s": elapsed, "frames": frames,
    "peak_rss_main_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "peak_rss_worker_mb": report.peak_rss_worker_mb,
}))
"""


def fixture_root(root: Path, samples: int) -> Path:
    """Link the real fixtures ``samples`` times: skeleton + 1080p video + masked depth per sample."""
    skeleton = FIXTURES / "S001C001P001R001A011.skeleton"
    video = FIXTURES / "S001C001P001R001A001_rgb.avi"
    depth = FIXTURES / "nturgb+d_depth_masked" / "S001C001P001R001A058"
    if not (skeleton.is_file() and video.is_file() and depth.is_dir()):
        raise SystemExit(f"NTU fixtures not found at {FIXTURES}")
    for action in range(1, samples + 1):
        name = f"S001C001P001R001A{action:03d}"
        for sub, link, target in (("nturgb+d_skeletons", f"{name}.skeleton", skeleton),
                                  ("nturgb+d_rgb", f"{name}_rgb.avi", video),
                                  ("nturgb+d_depth_masked", name, depth.resolve())):
            (root / sub).mkdir(parents=True, exist_ok=True)
            (root / sub / link).symlink_to(target.resolve())
    return root


def synthetic_root(root: Path, scale: str, workers: int) -> Path:
    from actionfusion.datasets.synthetic.generate import SynthConfig, generate_synthetic_ntu

    generate_synthetic_ntu(root, SynthConfig(seed=0, scale=scale), workers=workers, progress=False)
    return root


def read_everything(root: Path, backend: str) -> dict[str, float]:
    """The baseline: decode/read every source once, no cropping, encoding or sampling."""
    from actionfusion.datasets.ntu.depth import list_depth_frames, read_depth_png
    from actionfusion.datasets.ntu.index import scan_ntu_root
    from actionfusion.datasets.ntu.skeleton_file import read_skeleton_file
    from actionfusion.modalities.rgb.video import open_video

    index = scan_ntu_root(root)
    timings = {"video_decode_s": 0.0, "depth_read_s": 0.0, "skeleton_read_s": 0.0}
    video_frames = 0
    for paths in index.samples.values():
        start = time.perf_counter()
        if paths.rgb is not None:
            try:
                with open_video(paths.rgb, backend=backend, threads=1) as video:
                    video_frames += sum(1 for _ in video.iter_frames())
            except Exception:  # a deliberately broken synthetic sample
                pass
        timings["video_decode_s"] += time.perf_counter() - start
        start = time.perf_counter()
        if paths.depth_masked is not None:
            for frame in list_depth_frames(paths.depth_masked):
                read_depth_png(frame)
        timings["depth_read_s"] += time.perf_counter() - start
        start = time.perf_counter()
        if paths.skeleton is not None:
            try:
                read_skeleton_file(paths.skeleton)
            except Exception:
                pass
        timings["skeleton_read_s"] += time.perf_counter() - start
    timings["total_s"] = sum(timings.values())
    timings["video_frames"] = video_frames
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", choices=("auto", "synthetic", "fixtures"), default="auto")
    parser.add_argument("--scale", default="tiny", help="synthetic scale")
    parser.add_argument("--samples", type=int, default=6, help="fixture copies")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    source = args.source
    if source == "auto":
        try:
            import actionfusion.datasets.synthetic.generate  # noqa: F401
            source = "synthetic"
        except ImportError:
            source = "fixtures"

    with tempfile.TemporaryDirectory(prefix="bench_prepare_") as tmp:
        tmp_path = Path(tmp)
        gen_start = time.perf_counter()
        if source == "synthetic":
            root = synthetic_root(tmp_path / "root", args.scale, args.workers)
        else:
            root = fixture_root(tmp_path / "root", args.samples)
        generate_s = time.perf_counter() - gen_start

        from actionfusion.datasets.store.prepare_config import PrepareConfig

        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        baseline = read_everything(root, PrepareConfig().video_backend)
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
        baseline_cpu_s = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)

        env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        child = subprocess.run([sys.executable, "-c", _CHILD, str(root), str(tmp_path / "store"), str(args.workers)],
                               env=env, capture_output=True, text=True, check=True)
        run = json.loads(child.stdout.strip().splitlines()[-1])

    report = run["report"]
    samples = report["num_done"]
    elapsed = run["elapsed_s"]
    print(json.dumps({
        "bench": "prepare",
        "source": source if source == "fixtures" else f"synthetic-{args.scale}",
        "workers": args.workers,
        "samples": samples,
        "failed": report["num_failed"],
        "partial": report["num_partial"],
        "prepare_s": round(elapsed, 3),
        "samples_per_s": round(samples / elapsed, 3),
        "frames_per_s": round(run["frames"] / elapsed, 1),
        "peak_rss_main_mb": round(run["peak_rss_main_mb"], 1),
        "peak_rss_worker_mb": round(run["peak_rss_worker_mb"], 1),
        "bytes_per_sample": {k: round(v) for k, v in report["bytes_per_sample"].items()},
        "bytes_per_frame": {k: round(v) for k, v in report["bytes_per_frame"].items()},
        "estimate_full_ntu60_gb": round(report["estimate_full_ntu60_bytes"] / 1e9, 2),
        "estimate_per_modality_gb": {k: round(v / 1e9, 2) for k, v in report["estimate_per_modality_bytes"].items()},
        "fits_50gb": report["fits_budget"],
        "estimate_assumptions": report["estimate_assumptions"],
        "baseline": "read every source, no processing, 1 process: " + json.dumps(
            {k: round(v, 3) for k, v in baseline.items()}),
        "baseline_s": round(baseline["total_s"], 3),
        "ratio_prepare_over_baseline": round(elapsed / baseline["total_s"], 3),
        "prepare_sample_cpu_s": round(report["sample_cpu_s"], 3),
        "baseline_cpu_s": round(baseline_cpu_s, 3),
        "cpu_ratio_prepare_over_baseline": round(report["sample_cpu_s"] / baseline_cpu_s, 3),
        "generate_s": round(generate_s, 2),
    }))


if __name__ == "__main__":
    main()
