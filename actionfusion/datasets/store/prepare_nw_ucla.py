"""Prepare a sample store from an NW-UCLA root: one sample per skeleton file.

Root layout (CTR-GCN / Hyper-GCN ``data/NW-UCLA``): ``ROOT/all_sqe/aAA_sSS_eEE_vVV.json`` (or the
JSON files directly in ROOT), read by :func:`~actionfusion.datasets.nw_ucla.read_ucla_json`.

Each file becomes the sample named by its stem (``a01_s01_e00_v01``): ``skeleton.npy`` float32
[1, T, 20, 3] in the Kinect v1 order of layout ``nw_ucla20`` (train with ``data.layout: nw_ucla20``),
label from the action number (:data:`~actionfusion.datasets.nw_ucla.ACTIONS` order). Files with
other names, or actions NW-UCLA does not use, are not samples and are passed over.

Benchmark ``nw_ucla_xview`` (``<store>/splits/``): views 1 and 2 train, view 3 tests (CTR-GCN
``feeders/feeder_ucla.py``); class names :data:`~actionfusion.datasets.nw_ucla.CLASS_NAMES`.

Each sample is published atomically and a rerun skips the finished ones (also after ``kill -9``);
a file that cannot be read (or a view outside 1-3) is recorded in ``failures.json`` with a
one-line reason and the run goes on.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Optional, Union

from ...errors import ActionFusionError, SampleNameError, StoreError
from ..benchmarks.benchmark_file import write_benchmark_file
from ..nw_ucla import CLASS_NAMES, list_ucla_samples, parse_ucla_name, read_ucla_json, split_of
from .skeleton_import import (ImportReport, finish_import_store, is_done, open_import_store, publish_skeleton_sample,
                              published_names)

PathLike = Union[str, "os.PathLike[str]"]
log = logging.getLogger(__name__)

SOURCE = "nw-ucla"
SAMPLES_SUBDIR = "all_sqe"
BENCHMARK = "nw_ucla_xview"


def find_nw_ucla_dir(path: PathLike) -> Optional[Path]:
    """The folder holding the ``aAA_sSS_eEE_vVV.json`` files: ``path/all_sqe`` or ``path`` itself; None if neither."""
    root = Path(path)
    for candidate in (root / SAMPLES_SUBDIR, root):
        if candidate.is_dir() and list_ucla_samples(candidate):
            return candidate
    return None


def is_nw_ucla_root(path: PathLike) -> bool:
    """True when ``path`` (or its ``all_sqe`` folder) holds NW-UCLA skeleton files."""
    return find_nw_ucla_dir(path) is not None


def prepare_nw_ucla(root: PathLike, out: PathLike) -> ImportReport:
    """Prepare every NW-UCLA skeleton file of ``root`` into the store ``out``.

    Returns:
        the :class:`~.skeleton_import.ImportReport` (failures also in ``<out>/failures.json``).
    Raises:
        StoreError: ``root`` holds no NW-UCLA file, or ``out`` cannot take this import.
    """
    start = time.perf_counter()
    directory = find_nw_ucla_dir(root)
    if directory is None:
        raise StoreError(f"{root}: not an NW-UCLA root (expected {SAMPLES_SUBDIR}/aAA_sSS_eEE_vVV.json files)")
    out = Path(out)
    config = {"source": SOURCE}
    created = open_import_store(out, config)
    report = ImportReport(source=SOURCE, root=str(root), store=str(out))
    for path in list_ucla_samples(directory):
        _prepare_file(out, path, report)
    _write_benchmark(out, report)
    finish_import_store(out, Path(root), config, created, report, start)
    log.info("%s", report.summary_text())
    return report


def _prepare_file(out: Path, path: Path, report: ImportReport) -> None:
    """One file -> one sample; a failure is recorded in ``report``."""
    name = path.stem
    try:
        parsed = parse_ucla_name(name)
        split_of(parsed)
        if is_done(out, name):
            report.skipped += 1
            return
        skeleton = read_ucla_json(path)  # [T, 20, 3]
    except SampleNameError as err:
        report.fail(name, "split", err)
        return
    except ActionFusionError as err:
        report.fail(name, "read", err)
        return
    publish_skeleton_sample(out, name, skeleton[None], parsed.label, {
        "source": SOURCE, "action": parsed.action, "subject": parsed.subject, "episode": parsed.episode,
        "view": parsed.view})
    report.done += 1


def _write_benchmark(out: Path, report: ImportReport) -> None:
    """``nw_ucla_xview`` over every published NW-UCLA sample."""
    lists: dict[str, list[str]] = {"train": [], "test": []}
    for name in published_names(out):
        try:
            lists[split_of(name)].append(name)
        except SampleNameError:
            continue
    write_benchmark_file(out, BENCHMARK, CLASS_NAMES, lists,
                         source="NW-UCLA cross-view: views 1, 2 train; view 3 tests (actionfusion prepare)")
    report.benchmarks[BENCHMARK] = {split: len(names) for split, names in lists.items()}
