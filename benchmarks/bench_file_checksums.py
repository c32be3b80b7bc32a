"""Cost of the per-file checksums that every sample's ``meta.json`` records, and the hash choice.

Two measurements, one JSON line:

1. Hash speed on a 5 MiB random buffer (best of 20): BLAKE2b-128 (hashlib, the one the store
   uses), SHA-256 (hashlib) and, when the ``xxhash`` package is importable, xxh3-128 and xxh64.
2. Per sample of a prepared store: the time :func:`record_files` takes to size and hash the
   sample's files (warm page cache, as inside ``prepare``, best of 3), against the time
   ``prepare`` spent on the sample (wall time of an inline prepare run / samples), and the
   sample's bytes.

Usage: ``.venv/bin/python benchmarks/bench_file_checksums.py [--store STORE]``; without
``--store`` a tiny synthetic root with every modality is generated and prepared inline in a
temporary folder first (about half a minute), which also gives the prepare time per sample.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run from a checkout without installing the package

from actionfusion.datasets.store.file_checksums import record_files  # noqa: E402
from actionfusion.datasets.store.layout import MODALITY_FILES  # noqa: E402
from actionfusion.datasets.store.sample_store import SampleStore  # noqa: E402


def best_seconds(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def hash_speeds(size: int = 5 << 20) -> dict[str, float]:
    """Milliseconds to hash ``size`` random bytes, per algorithm."""
    data = os.urandom(size)
    hashes: dict[str, Callable[[], object]] = {
        "blake2b_128": lambda: hashlib.blake2b(data, digest_size=16).hexdigest(),
        "sha256": lambda: hashlib.sha256(data).hexdigest(),
    }
    try:
        import xxhash

        hashes["xxh3_128"] = lambda: xxhash.xxh3_128(data).hexdigest()
        hashes["xxh64"] = lambda: xxhash.xxh64(data).hexdigest()
    except ImportError:
        pass
    return {name: round(best_seconds(fn, 20) * 1e3, 3) for name, fn in hashes.items()}


def make_store(root: Path) -> tuple[Path, float]:
    """A tiny synthetic store with every modality; returns (store, prepare seconds per sample)."""
    from actionfusion.datasets.store.prepare import PrepareConfig, prepare_store
    from actionfusion.datasets.synthetic.generate import SynthConfig, generate_synthetic_ntu

    synth = SynthConfig(scale="tiny", actions=(1, 58), performers=(1,), cameras=(1, 2), num_frames=(48, 64))
    generate_synthetic_ntu(root / "raw", synth, workers=1, progress=False)
    start = time.perf_counter()
    report = prepare_store(root / "raw", root / "store", PrepareConfig(), workers=0, progress=False)
    seconds = time.perf_counter() - start
    return root / "store", seconds / max(report.num_done, 1)


def checksum_cost(store_path: Path) -> dict[str, float]:
    """Mean per-sample milliseconds of record_files and mean bytes hashed."""
    store = SampleStore(store_path)
    total_s, total_bytes = 0.0, 0
    for name in store.names:
        folder = store_path / "samples" / name
        files = [MODALITY_FILES[m] for m in store.meta(name)["modalities"]]
        total_s += best_seconds(lambda: record_files({}, folder, files), 3)
        total_bytes += sum((folder / f).stat().st_size for f in files)
    n = max(len(store.names), 1)
    return {"samples": len(store.names), "checksum_ms_per_sample": round(total_s / n * 1e3, 3),
            "bytes_per_sample": total_bytes // n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=None, help="a prepared store (default: synthetic)")
    args = parser.parse_args()
    result: dict[str, object] = {"benchmark": "file_checksums", "hash_ms_per_5MiB": hash_speeds()}
    prepare_s: Optional[float] = None
    with tempfile.TemporaryDirectory() as tmp:
        store = args.store
        if store is None:
            store, prepare_s = make_store(Path(tmp))
        result["store"] = "synthetic tiny, every modality" if args.store is None else str(args.store)
        result.update(checksum_cost(store))
    if prepare_s is not None:
        result["prepare_ms_per_sample"] = round(prepare_s * 1e3, 1)
        result["checksum_share_of_prepare"] = round(float(result["checksum_ms_per_sample"]) / (prepare_s * 1e3), 5)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
