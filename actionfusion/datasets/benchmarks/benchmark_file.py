"""Benchmark lists as files: a store's own benchmark file, and the lists a user writes.

**The store's benchmark file** ``<store>/splits/<benchmark>.json`` (written atomically by
``prepare`` of your own videos, of PKU-MMD and of NW-UCLA)::

    format, version     "actionfusion-benchmark", 1
    benchmark           the name ``data.benchmark`` gives (the file's stem)
    classes             class names by 0-based label
    train, val, test    sample names (val may be empty or absent)
    labels              optional {sample: label} (default: each sample's ``meta.json`` label)
    source              free text: what wrote it, from what

**A user's list**, given to ``data.benchmark`` as a path (``.csv`` or ``.json``):

- CSV with a header row holding ``sample`` (or ``video``), ``split`` (train / val / test) and
  optionally ``label`` (a class name, or a 0-based integer). With names as labels, the classes are
  the names in sorted order.
- JSON: the store file's keys (``format`` and ``version`` optional).

Every name must be one plain path component and listed once. Names the store lacks are left out
and reported (``BenchmarkLists.missing``), so a sample that failed to prepare does not stop
training; a list of which no sample is in the store is an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Collection, Mapping, Optional, Sequence

from ...errors import ActionFusionError, FileFormatError, StoreError
from ...io import PathLike, atomic_write_json, load_json, read_csv_rows, safe_component
from ..store.layout import split_file
from .benchmark_lists import SPLITS, BenchmarkLists

BENCHMARK_FORMAT = "actionfusion-benchmark"
BENCHMARK_FORMAT_VERSION = 1
MAX_LIST_BYTES = 256 * 1024 * 1024
"""A larger list file is refused before it is read (NTU 120 as CSV is about 5 MB)."""


class BenchmarkFileError(FileFormatError):
    """A benchmark file or a user's list does not follow its format."""


def write_benchmark_file(store: PathLike, benchmark: str, classes: Sequence[str], splits: Mapping[str, Sequence[str]],
                         *, labels: Optional[Mapping[str, int]] = None, source: str = "") -> Path:
    """Write ``<store>/splits/<benchmark>.json`` (atomic; replaces an older one). Returns the path."""
    safe_component(benchmark, "benchmark name")
    record: dict[str, Any] = {"format": BENCHMARK_FORMAT, "version": BENCHMARK_FORMAT_VERSION,
                              "benchmark": benchmark, "classes": [str(c) for c in classes]}
    for split in SPLITS:
        record[split] = sorted(str(n) for n in splits.get(split, ()))
    if labels is not None:
        record["labels"] = {str(k): int(v) for k, v in sorted(labels.items())}
    record["source"] = source
    path = split_file(Path(store), benchmark)
    atomic_write_json(path, record)
    return path


def is_benchmark_file(path: Path) -> bool:
    """True when ``path`` is a readable JSON object of :data:`BENCHMARK_FORMAT`."""
    try:
        record = load_json(path)
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and record.get("format") == BENCHMARK_FORMAT


def read_benchmark_file(path: PathLike, name: str, available: Collection[str]) -> BenchmarkLists:
    """The checked lists of a store's benchmark file or a user's JSON list.

    Raises:
        BenchmarkFileError: not valid JSON, a wrong format or version, a bad key or name.
        StoreError: none of the listed samples is in the store.
    """
    path = Path(path)
    _check_size(path)
    try:
        record = load_json(path)
    except ValueError as err:
        raise BenchmarkFileError(path, f"not valid JSON ({err})") from None
    if not isinstance(record, dict):
        raise BenchmarkFileError(path, "expected a JSON object with train, val, test and classes")
    if "format" in record and record["format"] != BENCHMARK_FORMAT:
        raise BenchmarkFileError(path, f"format is {record['format']!r}, not {BENCHMARK_FORMAT!r}")
    if record.get("version", BENCHMARK_FORMAT_VERSION) != BENCHMARK_FORMAT_VERSION:
        raise BenchmarkFileError(path, f"format version {record.get('version')!r}, this actionfusion reads "
                                       f"{BENCHMARK_FORMAT_VERSION}")
    classes = record.get("classes")
    if classes is not None and (not isinstance(classes, list) or not all(isinstance(c, str) for c in classes)):
        raise BenchmarkFileError(path, "'classes' must be a list of class names", where="classes")
    splits: dict[str, list[str]] = {}
    for split in SPLITS:
        names = record.get(split, [])
        if not isinstance(names, list):
            raise BenchmarkFileError(path, f"'{split}' must be a list of sample names", where=split)
        splits[split] = names
    raw_labels = record.get("labels")
    if raw_labels is not None and not isinstance(raw_labels, dict):
        raise BenchmarkFileError(path, "'labels' must map sample names to labels", where="labels")
    labels = None
    if raw_labels is not None:
        labels, classes = _labels_of(raw_labels, classes, lambda key: BenchmarkFileError(path, key[1],
                                                                                         where=f"labels.{key[0]}"))
    return _checked_lists(path, name, splits, labels, tuple(classes) if classes is not None else None, available,
                          lambda split, index, problem: BenchmarkFileError(path, problem, where=f"{split}[{index}]"))


def read_benchmark_csv(path: PathLike, name: str, available: Collection[str]) -> BenchmarkLists:
    """The checked lists of a user's CSV (see the module for its columns).

    Raises:
        BenchmarkFileError: no header with ``sample``/``video`` and ``split``, a bad row (its line is named).
        StoreError: none of the listed samples is in the store.
    """
    path = Path(path)
    _check_size(path)
    try:
        header, rows = read_csv_rows(path)
    except FileFormatError as err:
        raise BenchmarkFileError(path, err.reason) from None
    sample_key = "sample" if "sample" in header else "video" if "video" in header else None
    if sample_key is None or "split" not in header:
        raise BenchmarkFileError(path, f"the header row must name 'sample' (or 'video') and 'split' columns "
                                       f"(and optionally 'label'); it names {', '.join(header) or 'nothing'}", line=1)
    splits: dict[str, list[str]] = {s: [] for s in SPLITS}
    raw_labels: dict[str, str] = {}
    lines: dict[str, int] = {}
    for line, row in rows:
        sample = row.get(sample_key, "")
        split = row.get("split", "").lower()
        sample = Path(sample).stem if sample_key == "video" and "." in sample else sample
        if split not in SPLITS:
            raise BenchmarkFileError(path, f"split {split!r} of sample {sample!r} is not one of train, val, test",
                                     line=line)
        if "label" in header:
            label = row.get("label", "")
            if not label:
                raise BenchmarkFileError(path, f"sample {sample!r} has an empty label", line=line)
            raw_labels[sample] = label
        if sample in lines:
            raise BenchmarkFileError(path, f"sample {sample!r} is listed twice (first on line {lines[sample]})",
                                     line=line)
        try:
            safe_component(sample, "sample name")
        except ActionFusionError as err:
            raise BenchmarkFileError(path, str(err), line=line) from None
        lines[sample] = line
        splits[split].append(sample)
    labels, classes = (None, None)
    if raw_labels:
        labels, classes = _labels_of(raw_labels, None,
                                     lambda key: BenchmarkFileError(path, key[1], line=lines.get(key[0])))
    return _checked_lists(path, name, splits, labels, tuple(classes) if classes is not None else None, available,
                          lambda split, index, problem: BenchmarkFileError(path, problem, where=f"{split}[{index}]"))


def _check_size(path: Path) -> None:
    try:
        size = path.stat().st_size
    except OSError as err:
        raise BenchmarkFileError(path, f"cannot be read ({err.strerror or err})") from None
    if size > MAX_LIST_BYTES:
        raise BenchmarkFileError(path, f"holds {size} bytes, more than a benchmark list may ({MAX_LIST_BYTES})")


def _labels_of(raw: Mapping[str, Any], classes: Optional[list[str]], error: Any
               ) -> tuple[dict[str, int], Optional[list[str]]]:
    """``{sample: label}`` from integers or class names; the class names (sorted names when the labels
    are names and no classes were given). ``error((sample, problem))`` builds the exception."""
    names_given = any(isinstance(v, str) and not v.strip().lstrip("-").isdigit() for v in raw.values())
    if names_given and classes is None:
        classes = sorted({str(v).strip() for v in raw.values()})
    index = {c: i for i, c in enumerate(classes or [])}
    labels: dict[str, int] = {}
    for sample, value in raw.items():
        if isinstance(value, bool):
            raise error((sample, f"label {value!r} of sample {sample!r} is neither a class name nor an integer"))
        if isinstance(value, int) or (isinstance(value, str) and value.strip().lstrip("-").isdigit()):
            label = int(value)
            if label < 0 or (classes is not None and label >= len(classes)):
                limit = f" (the {len(classes)} classes are 0..{len(classes) - 1})" if classes is not None else ""
                raise error((sample, f"label {label} of sample {sample!r} is out of range{limit}"))
        elif isinstance(value, str) and value.strip() in index:
            label = index[value.strip()]
        else:
            raise error((sample, f"label {value!r} of sample {sample!r} is not one of the classes"))
        labels[sample] = label
    return labels, classes


def _checked_lists(path: Path, name: str, splits: dict[str, list[Any]], labels: Optional[dict[str, int]],
                   classes: Optional[tuple[str, ...]], available: Collection[str], error: Any) -> BenchmarkLists:
    available = available if isinstance(available, (set, frozenset)) else frozenset(available)
    seen: dict[str, str] = {}
    kept: dict[str, list[str]] = {}
    missing: dict[str, list[str]] = {}
    for split in SPLITS:
        kept[split], missing[split] = [], []
        for index, sample in enumerate(splits[split]):
            try:
                safe_component(sample, "sample name")
            except ActionFusionError as err:
                raise error(split, index, str(err)) from None
            if sample in seen:
                raise error(split, index, f"sample {sample!r} is listed twice (also in {seen[sample]})")
            seen[sample] = split
            if labels is not None and sample not in labels:
                raise error(split, index, f"sample {sample!r} has no label in 'labels'")
            (kept if sample in available else missing)[split].append(sample)
    if not any(kept.values()):
        raise StoreError(f"{path}: none of its {len(seen)} samples is in the store; is data.store the store "
                         "these lists were written for?")
    if labels is not None and classes is not None:
        bad = [s for s, label in labels.items() if label >= len(classes)]
        if bad:
            raise BenchmarkFileError(path, f"label {labels[bad[0]]} of sample {bad[0]!r} is out of range "
                                           f"(the {len(classes)} classes are 0..{len(classes) - 1})")
    return BenchmarkLists(name=name, splits={s: sorted(v) for s, v in kept.items()}, classes=classes,
                          labels=labels, source=str(path), missing={s: v for s, v in missing.items() if v})
