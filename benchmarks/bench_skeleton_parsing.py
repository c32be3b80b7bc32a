"""Benchmark: the fast ``.skeleton`` reader against the plain line-by-line reference.

Parses every fixture ``.skeleton`` file with both readers in alternating rounds (so that
load from other processes hits both alike), checks that the results are identical, and
prints one JSON line. Throughput and ``speedup`` come from the median round;
``speedup_warm`` from rounds of one reader at a time (warm caches, as in a loader).

    .venv/bin/python benchmarks/bench_skeleton_parsing.py [--repeat 20] [--fixtures DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, List

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from actionfusion.datasets.ntu.skeleton_file import SkeletonFile, read_skeleton_file  # noqa: E402
from actionfusion.datasets.ntu.skeleton_reference import read_skeleton_file_reference  # noqa: E402

DEFAULT_FIXTURES = ROOT / ".." / "shared" / "fixtures" / "ntu"


def identical(a: SkeletonFile, b: SkeletonFile) -> bool:
    """Same frame count and the same arrays, dtypes and NaN positions included."""
    if a.num_frames != b.num_frames:
        return False
    for name in ("body_ids", "joints", "body_info", "body_order"):
        x, y = getattr(a, name), getattr(b, name)
        if x.dtype != y.dtype or not np.array_equal(x, y, equal_nan=x.dtype.kind == "f"):
            return False
    return True


def time_round(reader: Callable[[Path], SkeletonFile], files: List[Path]) -> float:
    start = time.perf_counter()
    for path in files:
        reader(path)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="rounds over all files per reader")
    parser.add_argument("--fixtures", type=Path, default=DEFAULT_FIXTURES)
    args = parser.parse_args()

    files = sorted(Path(args.fixtures).glob("*.skeleton"))
    if not files:
        print(json.dumps({
            "benchmark": "skeleton_parsing",
            "skipped": f"no .skeleton fixtures found at {args.fixtures}: they live in ../shared beside the repo",
        }))
        return
    same = all(identical(read_skeleton_file(p), read_skeleton_file_reference(p)) for p in files)
    fast: List[float] = []
    reference: List[float] = []
    for _ in range(max(1, args.repeat)):
        fast.append(time_round(read_skeleton_file, files))
        reference.append(time_round(read_skeleton_file_reference, files))
    fast_s, reference_s = statistics.median(fast), statistics.median(reference)
    # Warm: each reader alone, back to back (as when a loader reads file after file);
    # the alternating rounds above start the fast reader with cold caches.
    warm_fast = statistics.median(time_round(read_skeleton_file, files) for _ in range(max(1, args.repeat)))
    warm_reference = statistics.median(
        time_round(read_skeleton_file_reference, files) for _ in range(max(1, args.repeat // 3))
    )
    print(json.dumps({
        "benchmark": "skeleton_parsing",
        "files": len(files),
        "repeat": len(fast),
        "fast_files_per_s": round(len(files) / fast_s, 1),
        "reference_files_per_s": round(len(files) / reference_s, 1),
        "fast_ms_per_file": round(1e3 * fast_s / len(files), 3),
        "reference_ms_per_file": round(1e3 * reference_s / len(files), 3),
        "speedup": round(reference_s / fast_s, 2),
        "speedup_best_round": round(min(reference) / min(fast), 2),
        "speedup_warm": round(warm_reference / warm_fast, 2),
        "identical": same,
    }))


if __name__ == "__main__":
    main()
