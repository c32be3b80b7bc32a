"""Find the benchmark ``data.benchmark`` names, in this order:

1. an NTU RGB+D benchmark (``ntu60_xsub``, ``ntu60_xview``, ``ntu120_xsub``, ``ntu120_xset``): splits
   from the sample names; or a long-tailed ``<base>_lt<rho>`` (its training list from the store's
   split file, ``actionfusion lt-split``);
2. a path to a user's list (``.csv`` or ``.json``, see :mod:`.benchmark_file`);
3. the store's benchmark file ``<store>/splits/<name>.json`` (written by ``prepare`` of your own
   videos, PKU-MMD, NW-UCLA), e.g. ``videos``, ``pku_mmd_v1_xsub``, ``nw_ucla_xview``;
4. a pair of named splits in the manifest of a pyskl import: ``pyskl_<core>`` for the pickle's
   ``<core>_train`` / ``<core>train`` with its ``val`` or ``test`` twin (``pyskl_xsub`` for
   ``xsub_train`` + ``xsub_val``, ``pyskl_split1`` for ``train1`` + ``test1``, ``pyskl`` for ``train`` + ``val``).

A benchmark without a validation list gets one carved out of its training list when
``validation_fraction > 0``: whole groups for NTU (performers or setups, see
:func:`~actionfusion.datasets.ntu.splits.split_samples`), else a stratified seeded share of each class.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Callable, Collection, Optional, Sequence

import numpy as np

from ...errors import StoreError, UnknownNameError
from ..ntu.longtail_splits import parse_longtail_benchmark
from ..ntu.splits import BENCHMARKS as NTU_BENCHMARKS
from ..ntu.splits import split_samples
from ..store.layout import SPLITS_DIR, split_file
from .benchmark_file import is_benchmark_file, read_benchmark_csv, read_benchmark_file
from .benchmark_lists import BenchmarkLists, stratified_split

logger = logging.getLogger(__name__)

LIST_SUFFIXES = (".csv", ".json")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def is_benchmark_name(text: str) -> bool:
    """True for a name a benchmark can have (letters, digits, ``_.+-``) or a path to a list file."""
    return bool(_NAME.match(text)) or is_list_path(text)


def is_list_path(text: str) -> bool:
    """True when ``text`` names a user's list file (``.csv`` / ``.json``)."""
    return Path(text).suffix.lower() in LIST_SUFFIXES


def resolve_benchmark(benchmark: str, store: Any, *, validation_fraction: float = 0.0, seed: int = 0,
                      longtail_train: Optional[Callable[[str, int], list[str]]] = None) -> BenchmarkLists:
    """The lists of ``benchmark`` over the samples of ``store`` (a folder or sharded store).

    Args:
        benchmark: what ``data.benchmark`` holds.
        store: has ``names``, ``label(name)``, and ``path`` (folder store) for its split files.
        validation_fraction: share held out for validation when the benchmark lists none.
        seed: seeds that carve-out.
        longtail_train: ``(base, rho) -> training names`` of a long-tailed NTU benchmark.
    Raises:
        UnknownNameError: no benchmark of that name for this store (the message lists those it has).
        BenchmarkFileError, StoreError: a list file that cannot serve (one line, naming the file).
    """
    names = store.names
    longtail = parse_longtail_benchmark(benchmark)
    if benchmark in NTU_BENCHMARKS or longtail is not None:
        return _ntu_lists(benchmark, names, longtail, validation_fraction, seed, longtail_train)
    if is_list_path(benchmark):
        path = Path(benchmark)
        if not path.is_file():
            raise UnknownNameError(f"data.benchmark: no list file at {benchmark!r} (relative to {Path.cwd()})")
        reader = read_benchmark_csv if path.suffix.lower() == ".csv" else read_benchmark_file
        lists = reader(path, path.stem, set(names))
    else:
        lists = _store_lists(benchmark, store, names)
    return _with_validation(lists, store, validation_fraction, seed)


def available_benchmarks(store: Any) -> list[str]:
    """The benchmark names ``store`` serves besides NTU's: its benchmark files and pyskl split pairs."""
    found = []
    folder = _folder(store)
    if folder is not None and (folder / SPLITS_DIR).is_dir():
        found += sorted(p.stem for p in (folder / SPLITS_DIR).glob("*.json") if is_benchmark_file(p))
    found += sorted(_pyskl_pairs(_manifest_splits(store)))
    return found


def _folder(store: Any) -> Optional[Path]:
    path = getattr(store, "path", None)
    return Path(path) if path is not None and Path(path).is_dir() else None


def _manifest_splits(store: Any) -> dict[str, list[str]]:
    manifest = getattr(store, "manifest", None)
    record = manifest() if callable(manifest) else manifest
    splits = record.get("splits") if isinstance(record, dict) else None
    return {str(k): list(v) for k, v in splits.items() if isinstance(v, list)} if isinstance(splits, dict) else {}


def _pyskl_pairs(splits: dict[str, list[str]]) -> dict[str, tuple[str, str]]:
    """``{benchmark name: (train split, test split)}`` of a pyskl pickle's named splits."""
    pairs = {}
    for train in splits:
        if "train" not in train:
            continue
        for other in ("val", "test"):
            twin = train.replace("train", other)
            if twin in splits:
                core = train.replace("train", "").strip("_")
                core = f"split{core}" if core.isdigit() else core
                pairs["pyskl" + (f"_{core}" if core else "")] = (train, twin)
                break
    return pairs


def _store_lists(benchmark: str, store: Any, names: Sequence[str]) -> BenchmarkLists:
    folder = _folder(store)
    if folder is not None and split_file(folder, benchmark).is_file():
        return read_benchmark_file(split_file(folder, benchmark), benchmark, set(names))
    pairs = _pyskl_pairs(_manifest_splits(store))
    if benchmark in pairs:
        train, test = pairs[benchmark]
        splits = _manifest_splits(store)
        available = set(names)
        kept = {"train": [n for n in splits[train] if n in available], "val": [],
                "test": [n for n in splits[test] if n in available]}
        missing = {"train": [n for n in splits[train] if n not in available],
                   "test": [n for n in splits[test] if n not in available]}
        return BenchmarkLists(name=benchmark, splits={k: sorted(v) for k, v in kept.items()},
                              source=f"{getattr(store, 'location', folder)} manifest splits {train} / {test}",
                              missing={k: v for k, v in missing.items() if v})
    known = list(NTU_BENCHMARKS) + available_benchmarks(store)
    raise UnknownNameError(f"data.benchmark: the store {getattr(store, 'location', folder)} has no benchmark "
                           f"{benchmark!r}; it serves {', '.join(known)}, a long-tailed <ntu>_lt<rho>, or a "
                           "list file (.csv with sample,split[,label] or .json)")


def _ntu_lists(benchmark: str, names: Sequence[str], longtail: Optional[tuple[str, int]], validation_fraction: float,
               seed: int, longtail_train: Optional[Callable[[str, int], list[str]]]) -> BenchmarkLists:
    from ...errors import SampleNameError
    from ..ntu.names import parse_sample_name

    foreign = []
    for name in names:
        try:
            parse_sample_name(name)
        except SampleNameError:
            foreign.append(name)
    if foreign:
        raise StoreError(f"{benchmark} splits NTU RGB+D samples by their names, but {len(foreign)} of the store's "
                         f"samples are not NTU sample names (first {foreign[0]!r}): set data.benchmark to the store's "
                         "own benchmark (`actionfusion store-info STORE` lists them) or to a list file")
    if longtail is None:
        splits = split_samples(names, benchmark, exclude_missing=True, validation_fraction=validation_fraction,
                               seed=seed)
    else:
        base, rho = longtail
        if longtail_train is None:
            raise ValueError(f"{benchmark}: a long-tailed benchmark needs its training list (longtail_train)")
        splits = split_samples(longtail_train(base, rho), base, exclude_missing=True,
                               validation_fraction=validation_fraction, seed=seed)
        splits["test"] = split_samples(names, base, exclude_missing=True)["test"]
    return BenchmarkLists(name=benchmark, splits=splits, source="NTU RGB+D sample names", by_ntu_names=True)


def _with_validation(lists: BenchmarkLists, store: Any, fraction: float, seed: int) -> BenchmarkLists:
    """``lists`` with a stratified seeded validation share of train, when it lists no validation samples."""
    if fraction <= 0 or lists.splits.get("val") or len(lists.splits["train"]) < 2:
        return lists
    train = lists.splits["train"]
    labels = lists.labels_of(train) if lists.labels is not None else _store_labels(store, train)
    parts = stratified_split(train, labels, {"val": fraction}, seed)
    if not parts["val"]:
        pick = int(np.random.default_rng(seed).integers(len(train)))
        parts = {"train": [n for i, n in enumerate(train) if i != pick], "val": [train[pick]]}
    logger.info("%s: no validation list; holding out %d of %d training samples (stratified, seed %d)", lists.name,
                len(parts["val"]), len(train), seed)
    return BenchmarkLists(name=lists.name, splits={**lists.splits, "train": parts["train"], "val": parts["val"]},
                          classes=lists.classes, labels=lists.labels, source=lists.source, missing=lists.missing)


def _store_labels(store: Any, names: Collection[str]) -> list[Optional[int]]:
    labels: list[Optional[int]] = []
    for name in names:
        try:
            labels.append(store.label(name))
        except StoreError:
            labels.append(None)
    return labels
