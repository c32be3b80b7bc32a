"""Store integrity: which samples the manifest lists but the disk lacks, and a full check of every
sample's files (``actionfusion store-info --verify``).

The check compares each sample's files with its ``meta.json``: first every file's size and
BLAKE2b-128 checksum against ``meta["files"]`` (:mod:`.file_checksums`); then it opens each stored
modality the way training does: arrays load (no pickles), hold the recorded shape and only
finite values; frame packs open, hold the recorded number of frames, every frame's CRC-32
matches (version-2 packs) and every frame decodes.

Samples written before checksums existed (no ``meta["files"]`` record for a file) are not errors:
the report counts them under ``no_checksum_recorded`` and adds a note.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, List, Tuple

import numpy as np

from ...errors import ActionFusionError, one_line
from .file_checksums import FILES_KEY, check_file_record
from .layout import MODALITY_FILES, sample_dir
from .sample_store import SampleStore

FRAME_PACK_MODALITIES = ("rgb", "depth")
USABLE_STATUSES = ("ok", "partial")
CHECK_ERRORS = (ActionFusionError, ValueError, OSError, EOFError)
"""What a damaged file raises while it is checked (typed errors; a bug still propagates)."""


def missing_samples(store: SampleStore) -> List[str]:
    """Samples the manifest records as ``ok`` or ``partial`` whose folders are gone (sorted)."""
    listed = store.manifest.get("samples") or {}
    if not isinstance(listed, dict):
        return []
    usable = [name for name, entry in listed.items()
              if isinstance(entry, dict) and entry.get("status", "ok") in USABLE_STATUSES]
    return sorted(name for name in usable if name not in store)


@dataclass
class VerifyReport:
    """What :func:`verify_store` found."""

    checked: int = 0
    missing: List[str] = field(default_factory=list)
    bad: List[Tuple[str, str]] = field(default_factory=list)
    unrecorded: List[Tuple[str, List[str]]] = field(default_factory=list)
    """(sample, its files without a size and checksum in meta.json): old stores; not an error."""

    @property
    def ok(self) -> bool:
        return not self.missing and not self.bad

    def to_dict(self) -> dict[str, Any]:
        report: dict[str, Any] = {
            "checked": self.checked, "ok": self.ok, "missing": self.missing,
            "bad": [{"sample": name, "problem": problem} for name, problem in self.bad],
            "no_checksum_recorded": {"count": len(self.unrecorded),
                                     "first": [{"sample": name, "files": files} for name, files in self.unrecorded[:10]]},
            "notes": [],
        }
        if self.unrecorded:
            report["notes"].append(
                f"no checksum recorded for the files of {len(self.unrecorded)} samples (written before stores kept "
                "checksums): their sizes and checksums were not checked, their contents were")
        return report


def _check_array(store: SampleStore, name: str, modality: str, info: Any) -> None:
    array = store._load_array(name, modality)  # typed StoreError when unreadable
    expected = info.get("shape") if isinstance(info, dict) else None
    if expected is not None and list(array.shape) != list(expected):
        raise ValueError(f"{modality}: shape {list(array.shape)}, meta.json records {list(expected)}")
    if array.dtype.kind == "f":
        finite = np.isfinite(np.asarray(array))
        if not finite.all():
            raise ValueError(f"{modality}: {int((~finite).sum())} values are NaN or inf")


def _check_pack(store: SampleStore, name: str, modality: str, info: Any) -> None:
    with store.frame_pack(name, modality) as pack:
        expected = info.get("num_frames") if isinstance(info, dict) else None
        if expected is not None and len(pack) != int(expected):
            raise ValueError(f"{modality}: {len(pack)} frames, meta.json records {expected}")
        for index in range(len(pack)):
            frame = pack[index]
            if frame.shape != pack.shape:
                raise ValueError(f"{modality}: frame {index} decodes to {frame.shape}, not {pack.shape}")


def check_checksums(store: SampleStore, name: str) -> Tuple[List[str], List[str]]:
    """Compare the files of ``name`` with their ``meta.json`` records.

    Returns:
        (problems: one line per file whose size or checksum differs from its record, or that is
        recorded but gone; unrecorded: the sample's modality files that have no record).
    """
    meta = store.meta(name)
    records = meta.get(FILES_KEY)
    if records is not None and not isinstance(records, dict):
        return [f"meta.json: {FILES_KEY!r} is not an object"], []
    records = records or {}
    folder = sample_dir(store.path, name)
    known = set(MODALITY_FILES.values())
    problems = []
    for file_name, record in records.items():
        if file_name not in known:  # a name read from a file: never joined to a path unchecked
            problems.append(f"meta.json: {FILES_KEY!r} records an unknown file {file_name!r:.80}")
            continue
        problem = check_file_record(folder / file_name, record)
        if problem is not None:
            problems.append(problem)
    listed = [MODALITY_FILES[m] for m in meta["modalities"] if m in MODALITY_FILES]
    return problems, [file_name for file_name in listed if file_name not in records]


def verify_sample(store: SampleStore, name: str) -> List[str]:
    """Raise ValueError (or StoreError for an unreadable meta.json) listing every damaged file of ``name``.

    The content checks come first in the message (they say what is wrong: NaN, shape, which frame),
    then the size and checksum mismatches (they catch what the content checks cannot).

    Returns:
        the sample's files that have no size and checksum recorded (an old store), checked otherwise.
    """
    meta = store.meta(name)
    problems = []
    for modality, info in meta["modalities"].items():
        if modality not in MODALITY_FILES:
            problems.append(f"meta.json lists an unknown modality {modality!r:.80}")
            continue
        try:
            if modality in FRAME_PACK_MODALITIES:
                _check_pack(store, name, modality, info)
            else:
                _check_array(store, name, modality, info)
        except CHECK_ERRORS as error:
            problems.append(one_line(error))
    checksum_problems, unrecorded = check_checksums(store, name)
    problems += checksum_problems
    if problems:
        raise ValueError("; ".join(problems))
    return unrecorded


def verify_store(store: SampleStore, names: Iterable[str] | None = None, progress: bool = False) -> VerifyReport:
    """Check every sample of ``store`` (or ``names``); records each bad sample and goes on."""
    report = VerifyReport(missing=missing_samples(store))
    todo = list(store.names if names is None else names)
    if progress:
        from tqdm import tqdm

        todo = tqdm(todo, desc="verify", unit="sample", dynamic_ncols=True)  # type: ignore[assignment]
    for name in todo:
        report.checked += 1
        try:
            unrecorded = verify_sample(store, name)
            if unrecorded:
                report.unrecorded.append((name, unrecorded))
        except CHECK_ERRORS as error:
            report.bad.append((name, one_line(error, 300)))
    return report
