"""Skeleton-only samples from another dataset's files into a sample store: the steps PKU-MMD's and
NW-UCLA's prepare share (:mod:`.prepare_pku_mmd`, :mod:`.prepare_nw_ucla`).

- :func:`open_import_store`: a new store, or one the same import started (its manifest's ``config``
  names the same source); staging leftovers of a killed run are removed, so a rerun resumes.
- :func:`publish_skeleton_sample`: one sample, ``skeleton.npy`` (or ``pose2d.npy``) float32 [M, T, V, 3]
  and ``meta.json`` (label, shape, checksums), written in a hidden staging folder and renamed into
  place (the pyskl import's samples too).
- :class:`ImportReport`: what a run did (done, skipped, failed) and :func:`finish_import_store`,
  which writes ``failures.json`` and the manifest.

Sample names go through :func:`~.layout.sample_dir`, which refuses anything but one plain path
component: a name built from a file cannot point outside the store.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from ...errors import StoreError, one_line
from ...io import atomic_publish_dir, atomic_save_npy, atomic_write_json, make_staging_dir, remove_stale_staging
from .file_checksums import record_files
from .layout import (FAILURES_FILE, MANIFEST_FILE, META_FILE, MODALITY_FILES, is_published_sample, sample_dir,
                     samples_dir)
from .manifest import build_manifest, read_manifest, utc_now_iso, write_manifest

_STORE_ENTRIES = frozenset({MANIFEST_FILE, FAILURES_FILE, "samples", "splits"})


@dataclass
class ImportReport:
    """What one prepare run of a dataset import did.

    Attributes:
        source: the dataset (``"pku-mmd-v1"``, ``"nw-ucla"``).
        root, store: the raw root read and the store written.
        done: samples written by this run.
        skipped: samples already in the store (a rerun, or a resumed killed run).
        empty: label rows with no skeleton in their frames (left out, as MAMP does).
        failures: ``{"sample", "stage", "error"}`` per file that could not be read (also in ``failures.json``).
        benchmarks: ``{benchmark: {"train": n, "test": n}}`` of the benchmark files written.
        elapsed_s: wall time.
    """

    source: str
    root: str
    store: str
    done: int = 0
    skipped: int = 0
    empty: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    benchmarks: dict[str, dict[str, int]] = field(default_factory=dict)
    elapsed_s: float = 0.0

    @property
    def failed(self) -> int:
        """Files (or sequences) that failed."""
        return len(self.failures)

    def fail(self, sample: str, stage: str, error: object) -> None:
        """Record a failure with a one-line reason."""
        self.failures.append({"sample": sample, "stage": stage, "error": one_line(error)})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {"source": self.source, "root": self.root, "store": self.store, "done": self.done,
                "skipped": self.skipped, "failed": self.failed, "empty": self.empty, "failures": list(self.failures),
                "benchmarks": dict(self.benchmarks), "elapsed_s": round(self.elapsed_s, 3)}

    def summary_text(self) -> str:
        """A few lines for the console."""
        lines = [f"{self.source}: {self.done} samples written, {self.skipped} already there, {self.failed} failed"
                 + (f", {self.empty} empty label rows left out" if self.empty else "")
                 + f" ({self.elapsed_s:.1f} s) -> {self.store}"]
        for name, counts in sorted(self.benchmarks.items()):
            lines.append(f"  benchmark {name}: {counts.get('train', 0)} train, {counts.get('test', 0)} test")
        for failure in self.failures[:10]:
            lines.append(f"  failed {failure['sample']} [{failure['stage']}]: {failure['error']}")
        if self.failed > 10:
            lines.append(f"  ... and {self.failed - 10} more in {Path(self.store) / FAILURES_FILE}")
        return "\n".join(lines)


def open_import_store(store: Path, config: Mapping[str, Any]) -> str:
    """Make ``store`` ready for an import with ``config``; returns its creation time.

    Raises:
        StoreError: ``store`` is a file, a folder holding other things than a store, or a store
            written by another import or by ``prepare`` of an NTU root (its manifest's config differs).
    """
    store = Path(store)
    if store.exists() and not store.is_dir():
        raise StoreError(f"{store}: exists and is not a folder; give --out a new or store folder")
    created = utc_now_iso()
    if (store / MANIFEST_FILE).is_file():
        manifest = read_manifest(store)
        old = manifest.get("config", {})
        if {k: old.get(k) for k in config} != dict(config):
            raise StoreError(f"{store}: holds a store written with config {old}, not {dict(config)}; use another --out")
        created = str(manifest.get("created", created))
    elif store.is_dir():
        strangers = sorted(p.name for p in store.iterdir()
                           if p.name not in _STORE_ENTRIES and not p.name.startswith("."))
        if strangers:
            raise StoreError(f"{store}: not empty and not a sample store (holds {', '.join(strangers[:3])}); "
                             "use a new folder for --out")
    samples_dir(store).mkdir(parents=True, exist_ok=True)
    remove_stale_staging(store)
    remove_stale_staging(samples_dir(store))
    return created


def is_done(store: Path, name: str) -> bool:
    """True when sample ``name`` is published in ``store`` (UnsafePathError for a name that is not one component)."""
    return is_published_sample(sample_dir(store, name))


def publish_skeleton_sample(store: Path, name: str, skeleton: np.ndarray, label: int,
                            extra: Optional[Mapping[str, Any]] = None, modality: str = "skeleton") -> None:
    """Write sample ``name``: one keypoint file and ``meta.json``, published atomically.

    Args:
        skeleton: float [M, T, V, 3]: ``skeleton.npy`` (x, y, z in metres) or, with ``modality="pose2d"``,
            ``pose2d.npy`` (x, y in pixels, score).
        label: 0-based class.
        extra: more ``meta.json`` keys (where the sample came from).
        modality: ``"skeleton"`` or ``"pose2d"``.
    """
    if modality not in ("skeleton", "pose2d"):
        raise ValueError(f"modality must be skeleton or pose2d, not {modality!r}")
    final = sample_dir(store, name)
    array = np.ascontiguousarray(skeleton, dtype=np.float32)
    if array.ndim != 4 or array.shape[-1] != 3:
        raise ValueError(f"{name}: expected keypoints [M, T, V, 3], got shape {array.shape}")
    staging = make_staging_dir(final)
    file_name = MODALITY_FILES[modality]
    atomic_save_npy(staging / file_name, array)
    meta: dict[str, Any] = {
        "name": name, "label": int(label), "status": "ok", **dict(extra or {}),
        "modalities": {modality: {"shape": list(array.shape), "dtype": "float32", "num_frames": int(array.shape[1])}},
    }
    record_files(meta, staging, [file_name])
    atomic_write_json(staging / META_FILE, meta)
    atomic_publish_dir(staging, final)


def published_names(store: Path) -> list[str]:
    """The published samples of ``store``, sorted."""
    return sorted(p.name for p in samples_dir(store).iterdir() if is_published_sample(p))


def finish_import_store(store: Path, root: Path, config: Mapping[str, Any], created: str, report: ImportReport,
                        start: float) -> None:
    """Write ``failures.json`` and the manifest (every published sample "ok"); set ``report.elapsed_s``."""
    atomic_write_json(store / FAILURES_FILE, report.failures)
    samples = {name: {"status": "ok"} for name in published_names(store)}
    write_manifest(store, build_manifest(config=config, source_root=str(root), created=created, samples=samples))
    report.elapsed_s = time.perf_counter() - start
