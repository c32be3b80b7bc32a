"""Prepare a sample store from a PKU-MMD root: cut the untrimmed sequences into trimmed clips.

Root layouts: MAMP's ``data/pku_raw/v1`` / ``v2`` (maoyunyao/MAMP README), or the release as
unpacked (``Data/PKU_Skeleton_Renew``, ``Label/Train_Label_PKU_final``, ``Split/``, the paths public
PKU-MMD loaders read)::

    ROOT/skeleton/<seq>.txt   (or [Data/]PKU_Skeleton_Renew/)            150 numbers per frame
    ROOT/label/<seq>.txt      (or [Label/]Train_Label_PKU_final/, Label/)  action_id,start,end,confidence
    ROOT/cross-subject.txt, ROOT/cross-view.txt      v1 (also cross_subject.txt, cross_view.txt)
    ROOT/cross_subject_v2.txt, ROOT/cross_view_v2.txt  v2
                                                     (split files in ROOT/ or ROOT/Split/)

Each label row becomes one sample ``pku1_<seq>_<row>`` (``pku2_`` for v2; ``row`` 0-based, two
digits: ``pku1_0291-L_03``): ``skeleton.npy`` float32 [2, T, 25, 3] = the sequence's frames
``[start, end)`` (MAMP's cut; ``end_inclusive=True`` keeps the end frame), label ``action_id - 1``.
Rows whose frames hold no skeleton are left out (MAMP) and counted as ``empty``.

Benchmarks: ``pku_mmd_<v>_xsub`` and ``pku_mmd_<v>_xview`` (``<store>/splits/``, read by
``data.benchmark``) list a clip under ``train`` when its sequence is in the split file's training
list and under ``test`` otherwise (MAMP's rule); class names from :data:`..pku_mmd.PKU_MMD_CLASS_NAMES`.

Each sample is published atomically and a rerun skips the finished ones (also after ``kill -9``);
a sequence that cannot be read is recorded in ``failures.json`` with a one-line reason and the
run goes on.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional, Union

from ...errors import ActionFusionError, AnnotationFormatError, SkeletonFormatError, StoreError
from ..benchmarks.benchmark_file import write_benchmark_file
from ..pku_mmd import PKU_MMD_CLASS_NAMES, PkuSplit, cut_clips, read_pku_labels, read_pku_skeleton, read_pku_split
from .skeleton_import import (ImportReport, finish_import_store, is_done, open_import_store, publish_skeleton_sample,
                              published_names)

PathLike = Union[str, "os.PathLike[str]"]
log = logging.getLogger(__name__)

Version = Literal["v1", "v2"]
SOURCE = "pku-mmd"
SKELETON_DIRS: tuple[str, ...] = ("skeleton", "PKU_Skeleton_Renew", "Data/PKU_Skeleton_Renew")
LABEL_DIRS: tuple[str, ...] = ("label", "Train_Label_PKU_final", "Label/Train_Label_PKU_final", "Label")
"""Sequence folders, first match holding ``.txt`` files wins (MAMP's names, then the release's)."""
SPLIT_DIRS: tuple[str, ...] = (".", "Split", "split")
SPLIT_FILE_NAMES: dict[str, dict[str, tuple[str, ...]]] = {
    "v1": {"xsub": ("cross-subject.txt", "cross_subject.txt"), "xview": ("cross-view.txt", "cross_view.txt")},
    "v2": {"xsub": ("cross_subject_v2.txt", "cross-subject_v2.txt"),
           "xview": ("cross_view_v2.txt", "cross-view_v2.txt")},
}
"""Split file names per version: MAMP's code (hyphen) and README (underscore) for v1, MAMP's v2 names."""
SAMPLE_PREFIX: dict[str, str] = {"v1": "pku1", "v2": "pku2"}


@dataclass(frozen=True)
class PkuRoot:
    """Where a PKU-MMD root keeps its files.

    Attributes:
        path: the root.
        version: ``"v1"`` or ``"v2"`` (from the split file names).
        skeleton_dir, label_dir: the sequence folders.
        split_files: ``{"xsub", "xview"}`` -> the split file (only those found).
    """

    path: Path
    version: Version
    skeleton_dir: Path
    label_dir: Path
    split_files: dict[str, Path] = field(default_factory=dict)


def _first_dir(root: Path, names: tuple[str, ...]) -> Optional[Path]:
    """The first ``root / name`` that is a folder holding a ``.txt`` file."""
    return next((root / n for n in names if (root / n).is_dir() and any((root / n).glob("*.txt"))), None)


def find_pku_mmd_root(path: PathLike, version: Optional[Version] = None) -> Optional[PkuRoot]:
    """The layout of a PKU-MMD root, or None when ``path`` is not one (no skeleton folder, no label
    folder, or no split file of ``version``; without ``version``, v2's split files mean v2, else v1)."""
    root = Path(path)
    skeleton_dir, label_dir = _first_dir(root, SKELETON_DIRS), _first_dir(root, LABEL_DIRS)
    if skeleton_dir is None or label_dir is None:
        return None
    for candidate in ((version,) if version else ("v2", "v1")):
        found = {}
        for key, names in SPLIT_FILE_NAMES[candidate].items():
            for folder in SPLIT_DIRS:
                hit = next((root / folder / n for n in names if (root / folder / n).is_file()), None)
                if hit is not None:
                    found[key] = hit
                    break
        if found:
            return PkuRoot(root, candidate, skeleton_dir, label_dir, found)  # type: ignore[arg-type]
    return None


def is_pku_mmd_root(path: PathLike) -> bool:
    """True when ``path`` holds a PKU-MMD root (skeleton and label folders and a split file)."""
    return find_pku_mmd_root(path) is not None


def clip_name(version: Version, sequence: str, row: int) -> str:
    """``"pku1_0291-L_03"``: the sample name of label row ``row`` (0-based) of ``sequence``."""
    return f"{SAMPLE_PREFIX[version]}_{sequence}_{row:02d}"


def sequence_of(version: Version, name: str) -> Optional[str]:
    """The sequence ID of a sample name of :func:`clip_name` (None for another name)."""
    prefix = SAMPLE_PREFIX[version] + "_"
    if not name.startswith(prefix) or "_" not in name[len(prefix):]:
        return None
    return name[len(prefix):].rsplit("_", 1)[0]


def prepare_pku_mmd(root: PathLike, out: PathLike, *, version: Optional[Version] = None,
                    end_inclusive: bool = False) -> ImportReport:
    """Prepare every labelled action of the PKU-MMD ``root`` into the store ``out``.

    Args:
        root: a PKU-MMD root (module docstring).
        out: the store: new, or one this import started (resumed).
        version: ``"v1"`` or ``"v2"``; None reads it from the split file names.
        end_inclusive: cut ``[start, end]`` instead of MAMP's ``[start, end)``.
    Returns:
        the :class:`~.skeleton_import.ImportReport` (failures also in ``<out>/failures.json``).
    Raises:
        StoreError: ``root`` is not a PKU-MMD root, or ``out`` cannot take this import.
    """
    start = time.perf_counter()
    layout = find_pku_mmd_root(root, version)
    if layout is None:
        wanted = ", ".join(spellings[0] for spellings in SPLIT_FILE_NAMES[version or "v1"].values())
        raise StoreError(f"{root}: not a PKU-MMD{' ' + version if version else ''} root (expected skeleton/ and "
                         f"label/ folders and a split file: {wanted})")
    v = layout.version
    out = Path(out)
    config = {"source": SOURCE, "version": v, "end_inclusive": bool(end_inclusive)}
    created = open_import_store(out, config)
    report = ImportReport(source=f"{SOURCE}-{v}", root=str(root), store=str(out))

    splits: dict[str, PkuSplit] = {}
    for key, path in sorted(layout.split_files.items()):
        try:
            splits[key] = read_pku_split(path)
        except ActionFusionError as err:
            report.fail(path.name, "split", err)

    skeletons = {p.stem: p for p in sorted(layout.skeleton_dir.glob("*.txt")) if p.is_file()}
    labels = {p.stem: p for p in sorted(layout.label_dir.glob("*.txt")) if p.is_file()}
    for sequence in sorted(set(skeletons) | set(labels)):
        _prepare_sequence(out, v, sequence, skeletons.get(sequence), labels.get(sequence), end_inclusive, report)

    _write_benchmarks(out, v, splits, layout, report)
    finish_import_store(out, Path(root), config, created, report, start)
    log.info("%s", report.summary_text())
    return report


def _prepare_sequence(out: Path, version: Version, sequence: str, skeleton_path: Optional[Path],
                      label_path: Optional[Path], end_inclusive: bool, report: ImportReport) -> None:
    """Cut one sequence's clips into the store; a failure is recorded in ``report``."""
    where = f"{SAMPLE_PREFIX[version]}_{sequence}"
    try:
        if label_path is None:
            raise SkeletonFormatError(skeleton_path or sequence, "no label file of this sequence")
        if skeleton_path is None:
            raise AnnotationFormatError(label_path, "no skeleton file of this sequence")
        actions = read_pku_labels(label_path)
        names = [clip_name(version, sequence, row) for row in range(len(actions))]
        if names and all(is_done(out, name) for name in names):
            report.skipped += len(names)
            return
        skeleton = read_pku_skeleton(skeleton_path)
        clips = cut_clips(skeleton, actions, sequence=sequence, end_inclusive=end_inclusive, label_path=label_path)
    except ActionFusionError as err:
        report.fail(where, "read", err)
        return
    report.empty += len(actions) - len(clips)
    for clip in clips:
        name = names[clip.index]
        if is_done(out, name):
            report.skipped += 1
            continue
        action = actions[clip.index]
        publish_skeleton_sample(out, name, clip.skeleton, clip.label, {
            "source": f"{SOURCE}-{version}", "sequence": sequence, "label_row": clip.index,
            "frames": [clip.start, clip.end], "action_id": action.action_id, "confidence": action.confidence})
        report.done += 1


def _write_benchmarks(out: Path, version: Version, splits: dict[str, PkuSplit], layout: PkuRoot,
                      report: ImportReport) -> None:
    """``pku_mmd_<v>_xsub`` / ``_xview`` over every published clip of this version."""
    clips = [(name, sequence_of(version, name)) for name in published_names(out)]
    clips = [(name, sequence) for name, sequence in clips if sequence is not None]
    for key, split in sorted(splits.items()):
        train = frozenset(split.train)
        lists: dict[str, list[str]] = {"train": [], "test": []}
        for name, sequence in clips:
            lists["train" if sequence in train else "test"].append(name)
        benchmark = f"pku_mmd_{version}_{key}"
        write_benchmark_file(out, benchmark, PKU_MMD_CLASS_NAMES, lists,
                             source=f"PKU-MMD {version} {layout.split_files[key].name} (actionfusion prepare)")
        report.benchmarks[benchmark] = {split_name: len(names) for split_name, names in lists.items()}
