"""A store's split files, ``<store>/splits/<benchmark>.json``: the training list of a benchmark that
sample names alone do not define, kept with the samples it lists (the long-tailed NTU benchmarks of
:mod:`actionfusion.datasets.ntu.longtail_splits`, written by ``actionfusion lt-split``).

The file is one JSON object, written atomically::

    format, version          "actionfusion-split", 1
    benchmark                "ntu60_xsub_lt10": what ``data.benchmark`` names
    base_benchmark, rho      "ntu60_xsub", 10
    n_max, n_max_requested   the n_max used, and what was asked ("auto" or the same integer)
    seed                     seeds each class's draw
    classes                  the labels present, in rank order (rank c of the formula)
    available, counts        {label: training samples} of the base split, and kept
    num_train, train         the kept names, sorted

The test set is the base benchmark's test set, unchanged, so the file does not list it. Reading
checks every name of ``train``: a string naming one plain path component and an NTU sample, listed
once, present in the store, on the base benchmark's training side (never a test sample).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Collection, Union

from ...errors import ActionFusionError, StoreError
from ...io import PathLike, atomic_write_json, load_json, safe_component
from ..ntu.longtail_splits import (
    LONGTAIL_N_MAX, NMax, longtail_benchmark_name, parse_longtail_benchmark, select_longtail_names,
)
from ..ntu.names import parse_sample_name
from ..ntu.splits import is_in_benchmark, split_of, split_samples
from .layout import split_file
from .sample_store import SampleStore

SPLIT_FORMAT = "actionfusion-split"
SPLIT_FORMAT_VERSION = 1

logger = logging.getLogger(__name__)


def lt_split_command(store: PathLike, base: str, rho: int) -> str:
    """The command that writes the split file of ``<base>_lt<rho>``."""
    return f"actionfusion lt-split {store} --benchmark {base} --rho {rho}"


def write_longtail_split(store: SampleStore, base: str, rho: int, n_max: NMax = "auto",
                         seed: int = 0) -> tuple[Path, dict[str, Any]]:
    """Draw the long-tailed training list of ``base`` at ``rho`` from the store's samples and write it
    to ``<store>/splits/<base>_lt<rho>.json`` (replacing an older one).

    The base training split excludes the official missing-skeleton samples, as the trainer's does.
    ``n_max="auto"`` takes the largest n_max every class of the store can supply, at most the
    benchmark's (600, or 400 for ntu120_xset).

    Returns:
        (the file, the record written).
    Raises:
        LongTailSplitError: unknown base, bad rho or n_max, a class short of samples, fewer than 2 classes.
    """
    benchmark = longtail_benchmark_name(base, rho)
    train = split_samples(store.names, base, exclude_missing=True)["train"]
    selection = select_longtail_names(train, [store.label(name) for name in train], rho, n_max, seed,
                                      auto_limit=LONGTAIL_N_MAX[base], where=f"{store.path} ({base} train)")
    record: dict[str, Any] = {
        "format": SPLIT_FORMAT, "version": SPLIT_FORMAT_VERSION,
        "benchmark": benchmark, "base_benchmark": base, "rho": selection.rho,
        "n_max": selection.n_max, "n_max_requested": n_max if n_max == "auto" else int(n_max),
        "seed": selection.seed, "classes": selection.classes,
        "available": {str(label): count for label, count in selection.available.items()},
        "counts": {str(label): count for label, count in selection.counts.items()},
        "num_train": len(selection.names), "train": selection.names,
    }
    path = split_file(store.path, benchmark)
    atomic_write_json(path, record)
    empty = [label for label, count in selection.counts.items() if count == 0]
    if empty:
        logger.warning("%s: %d classes keep no training sample (first: class %d); raise --n-max or lower --rho "
                       "if the model should see every class", path, len(empty), empty[0])
    logger.info("%s: %d of %d training samples of %s kept (n_max %d, rho %d, seed %d)", path, len(selection.names),
                len(train), base, selection.n_max, selection.rho, selection.seed)
    return path, record


def read_split_file(store_path: PathLike, benchmark: str, available: Collection[str]) -> dict[str, Any]:
    """The checked record of ``<store>/splits/<benchmark>.json`` (see the module for the checks).

    Args:
        store_path: the store.
        benchmark: a long-tailed benchmark name, ``<base>_lt<rho>``.
        available: the store's sample names.
    Raises:
        FileNotFoundError: no split file.
        StoreError: the file is not valid JSON, not a split file of ``benchmark``, or lists a name that
            is malformed, repeated, absent from the store or not a training sample of the base benchmark.
    """
    parsed = parse_longtail_benchmark(benchmark)
    if parsed is None:
        raise ValueError(f"{benchmark!r} is not a long-tailed benchmark name <base>_lt<rho>")
    base, rho = parsed
    path = split_file(Path(store_path), benchmark)
    again = f"run `{lt_split_command(store_path, base, rho)}` to write it again"
    try:
        record = load_json(path)
    except ValueError as err:
        raise StoreError(f"{path}: not valid JSON ({err}): {again}") from None
    _check_record(record, path, benchmark, base, rho, again)
    available = available if isinstance(available, (set, frozenset)) else frozenset(available)
    seen: set[str] = set()
    for index, name in enumerate(record["train"]):
        problem = _name_problem(name, base, available, seen)
        if problem is not None:
            raise StoreError(f"{path}, train[{index}]: {problem}: {again}")
        seen.add(name)
    return record


def _check_record(record: Any, path: Path, benchmark: str, base: str, rho: int, again: str) -> None:
    def fail(problem: str) -> None:
        raise StoreError(f"{path}: {problem}: {again}")

    if not isinstance(record, dict) or record.get("format") != SPLIT_FORMAT:
        fail(f"not an {SPLIT_FORMAT} file")
    if record.get("version") != SPLIT_FORMAT_VERSION:
        fail(f"format version {record.get('version')!r}, this actionfusion reads {SPLIT_FORMAT_VERSION}")
    for key, expected in (("benchmark", benchmark), ("base_benchmark", base), ("rho", rho)):
        if record.get(key) != expected:
            fail(f"{key} is {record.get(key)!r}, the file name says {expected!r}")
    train = record.get("train")
    if not isinstance(train, list) or not train:
        fail("'train' is not a non-empty list of sample names")
    counts = record.get("counts")
    if (not isinstance(counts, dict) or not all(isinstance(v, int) and not isinstance(v, bool) for v in counts.values())
            or sum(counts.values()) != len(train) or record.get("num_train") != len(train)):
        fail(f"'counts' and 'num_train' do not add up to the {len(train) if isinstance(train, list) else 0} "
             "names of 'train'")


def _name_problem(name: object, base: str, available: Collection[str], seen: Collection[str]) -> Union[str, None]:
    """Why ``name`` cannot be a training name of the split, or None."""
    try:
        safe_component(name, "sample name")
        sample = parse_sample_name(str(name))
    except ActionFusionError as err:
        return str(err)
    if str(sample) != name:
        return f"{name!r} is not a bare sample name"
    if name in seen:
        return f"{name} is listed twice"
    if name not in available:
        return f"{name} is not in the store"
    if not is_in_benchmark(sample, base) or split_of(sample, base) != "train":
        return f"{name} is not a training sample of {base}"
    return None
