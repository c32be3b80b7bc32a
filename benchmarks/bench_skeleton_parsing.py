"""Benchmark: the fast ``.skeleton`` reader against a minimal line-by-line reader.

The baseline, :func:`read_minimal`, is what a plain script does: read the file, split
it into lines, ``split`` each line and call ``float`` per value (``int`` for the body
ID, so that IDs stay exact), collect the values in flat lists and build the arrays once.
It does no validation at all, so it is a lower bound for any careful line-by-line reader;
the validating reference reader (:mod:`actionfusion.datasets.ntu.skeleton_reference`) is
timed too, for comparison.

A round reads every fixture file once with one reader. The readers take turns round by
round (so that load from other processes hits all of them alike, and the fast reader
starts each round with the caches the other readers left: ``speedup``), and then the
fast and minimal readers run their rounds back to back (warm caches, as in a loader
reading file after file: ``speedup_warm``). Each round is timed by the wall clock and by
this process's CPU time; the CPU-time ratios (``*_cpu``) do not count time the process
spent waiting for a core that other processes held. Ratios are of median rounds.

Before timing, the fast reader's result is checked to be identical (same arrays, dtypes
and bits, NaN positions included) to the minimal reader's, to the reference reader's,
and to the careful parsing path's, which the fast reader falls back to for files its fast
path does not accept (``fast_path_files`` says on how many files the fast path ran).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_skeleton_parsing.py [--repeat 30] [--fixtures DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from actionfusion.datasets.ntu._skeleton_parse import parse_careful, parse_well_formed  # noqa: E402
from actionfusion.datasets.ntu.skeleton_file import SkeletonFile, read_skeleton_file  # noqa: E402
from actionfusion.datasets.ntu.skeleton_reference import read_skeleton_file_reference  # noqa: E402

DEFAULT_FIXTURES = ROOT / ".." / "shared" / "fixtures" / "ntu"


def read_minimal(path: Path) -> SkeletonFile:
    """Plain line-by-line reading, no checks: ``split`` and ``float`` per value.

    The fastest of the plain variants measured (bytes lines; text lines, ``readline`` and
    per-line list comprehensions were 4 to 8 % slower), so the ratio is not flattered.

    Returns:
        SkeletonFile: body_ids int64 [B] (first appearance order), joints float32
        [B, T, 25, 12] and body_info float32 [B, T, 9] (NaN where absent), body_order
        int16 [B, T] (-1 where absent).
    """
    with open(path, "rb") as handle:
        lines = handle.read().split(b"\n")
    num_frames = int(lines[0])
    ids: List[int] = []
    index_of: Dict[int, int] = {}
    where: List[tuple] = []  # (body, frame, position) per body record
    info: List[float] = []
    joints: List[float] = []
    i = 1
    for frame in range(num_frames):
        body_count = int(lines[i])
        i += 1
        for position in range(body_count):
            fields = lines[i].split()
            body_id = int(fields[0])
            info.extend(map(float, fields[1:]))
            joint_count = int(lines[i + 1])
            for line in lines[i + 2:i + 2 + joint_count]:
                joints.extend(map(float, line.split()))
            i += 2 + joint_count
            if body_id not in index_of:
                index_of[body_id] = len(ids)
                ids.append(body_id)
            where.append((index_of[body_id], frame, position))
    b = len(ids)
    joints_out = np.full((b, num_frames, 25, 12), np.nan, dtype=np.float32)
    info_out = np.full((b, num_frames, 9), np.nan, dtype=np.float32)
    order_out = np.full((b, num_frames), -1, dtype=np.int16)
    if where:
        body, frame_of, position_of = np.array(where, dtype=np.int64).T
        joints_out[body, frame_of] = np.array(joints).reshape(-1, 25, 12)
        info_out[body, frame_of] = np.array(info).reshape(-1, 9)
        order_out[body, frame_of] = position_of
    return SkeletonFile(num_frames, np.array(ids, dtype=np.int64), joints_out, info_out, order_out)


def read_careful(path: Path) -> SkeletonFile:
    """The fast reader's careful path alone (the one that reports errors by line)."""
    raw = np.fromfile(path, np.uint8)
    return SkeletonFile(*parse_careful(str(path), raw))


def identical(a: SkeletonFile, b: SkeletonFile) -> bool:
    """Same frame count and the same arrays, dtypes, shapes and bits (NaN included)."""
    if a.num_frames != b.num_frames:
        return False
    for name in ("body_ids", "joints", "body_info", "body_order"):
        x, y = getattr(a, name), getattr(b, name)
        if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
            return False
    return True


def time_round(reader: Callable[[Path], SkeletonFile], files: List[Path]) -> Tuple[float, float]:
    """(wall seconds, CPU seconds of this process) to read every file once."""
    wall, cpu = time.perf_counter(), time.process_time()
    for path in files:
        reader(path)
    return time.perf_counter() - wall, time.process_time() - cpu


def median_rounds(rounds: List[Tuple[float, float]]) -> Tuple[float, float]:
    """(median wall, median CPU) seconds of the rounds."""
    return statistics.median(r[0] for r in rounds), statistics.median(r[1] for r in rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30, help="rounds over all files per reader")
    parser.add_argument("--fixtures", type=Path, default=DEFAULT_FIXTURES)
    args = parser.parse_args()

    files = sorted(Path(args.fixtures).glob("*.skeleton"))
    if not files:
        print(json.dumps({
            "benchmark": "skeleton_parsing",
            "skipped": f"no .skeleton fixtures found at {args.fixtures}: they live in ../shared beside the repo",
        }))
        return
    fast_results = [read_skeleton_file(p) for p in files]
    same = {
        name: all(identical(r, reader(p)) for r, p in zip(fast_results, files))
        for name, reader in (("minimal", read_minimal), ("reference", read_skeleton_file_reference),
                             ("careful_path", read_careful))
    }
    fast_path_files = sum(parse_well_formed(np.fromfile(p, np.uint8)) is not None for p in files)
    repeat = max(1, args.repeat)
    readers = {"fast": read_skeleton_file, "minimal": read_minimal, "reference": read_skeleton_file_reference}
    rounds: Dict[str, List[Tuple[float, float]]] = {name: [] for name in readers}
    for _ in range(repeat):
        for name, reader in readers.items():
            rounds[name].append(time_round(reader, files))
    warm = {name: [time_round(readers[name], files) for _ in range(repeat)] for name in ("fast", "minimal")}
    wall, cpu = zip(*(median_rounds(rounds[name]) for name in readers))
    wall_of, cpu_of = dict(zip(readers, wall)), dict(zip(readers, cpu))
    warm_wall, warm_cpu = zip(*(median_rounds(warm[name]) for name in ("fast", "minimal")))
    per_file = {name: round(1e3 * wall_of[name] / len(files), 3) for name in readers}
    print(json.dumps({
        "benchmark": "skeleton_parsing",
        "files": len(files),
        "repeat": repeat,
        "fast_ms_per_file": per_file["fast"],
        "minimal_ms_per_file": per_file["minimal"],
        "reference_ms_per_file": per_file["reference"],
        "speedup": round(wall_of["minimal"] / wall_of["fast"], 2),
        "speedup_cpu": round(cpu_of["minimal"] / cpu_of["fast"], 2),
        "speedup_warm": round(warm_wall[1] / warm_wall[0], 2),
        "speedup_warm_cpu": round(warm_cpu[1] / warm_cpu[0], 2),
        "speedup_vs_reference": round(wall_of["reference"] / wall_of["fast"], 2),
        "fast_path_files": fast_path_files,
        "identical": all(same.values()),
        "identical_to": same,
    }))


if __name__ == "__main__":
    main()
