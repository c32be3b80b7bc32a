"""PKU-MMD: skeleton sequences, action labels, clip cutting and the official splits.

PKU-MMD (Liu et al., 2017; README of the official release) records long untrimmed
sequences with Kinect v2, 51 actions. Files:

- skeleton: one ``<sequence>.txt`` per sequence, one row per frame, 150 numbers: two persons
  x 25 Kinect v2 joints x (x, y, z), the second person zero-filled when absent;
- label: one ``<sequence>.txt`` per sequence, rows ``action_id,start_frame,end_frame,confidence``
  (``action_id`` 1..51; ``confidence`` is the annotators' quality mark, 1 or 2);
- split: ``cross-view.txt`` and ``cross-subject.txt``.

Conventions taken from the MAMP lineage (maoyunyao/MAMP ``data/pku_v1/pku_gendata.py``), which
is what published skeleton results use:

- a clip is ``sequence[start_frame:end_frame]``: the frame numbers are used as 0-based
  indices, end excluded (``end_inclusive=True`` includes the end frame instead);
- clips whose joints are all zero are skipped;
- the label is ``action_id - 1``;
- split files: the line after a header line holds the training sequence IDs separated by
  ``", "`` (MAMP reads ``lines[1]``). The official files have two sections, a training list
  and a validation list, each a header line (e.g. ``Training videos:``) followed by the IDs.
  This parser takes a header containing "train" as the training section and one containing
  "valid" or "test" as the test section; IDs may also follow the colon on the header line
  and may span several lines. Sequences not in the training list are test sequences (as
  MAMP does). This reading of the format is an assumption from the MAMP code: the official
  files were not available to check.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal, Optional, Union

import numpy as np
from einops import rearrange

from ..errors import AnnotationFormatError, SkeletonFormatError

PathLike = Union[str, "os.PathLike[str]"]

NUM_CLASSES = 51
"""PKU-MMD action classes (official README)."""

# PKU-MMD's 51 action classes, by action ID.
#
# Source: ``Actions.xlsx`` of the PKU-MMD release ("contains the 51 defined actions and corresponding
# IDs", official README); the spec (shared/specs/ntu-data.md) does not list them. The list below is
# that table as reproduced, with its IDs, by public loaders (kschlegel/DatasetLoader
# ``datasetloader/pkummd.py``; a cross-dataset label mapping that numbers them ``1,bow`` ...
# ``51,writing``). IDs are 1-based and follow the alphabetical order of the names; label =
# action ID - 1 (MAMP ``data/pku_v1/pku_gendata.py``).
PKU_MMD_CLASS_NAMES: tuple[str, ...] = (
    "bow", "brushing hair", "brushing teeth", "check time (from watch)", "cheer up", "clapping",
    "cross hands in front (say stop)", "drink water", "drop", "eat meal/snack", "falling",
    "giving something to other person", "hand waving", "handshaking", "hopping (one foot jumping)",
    "hugging other person", "jump up", "kicking other person", "kicking something",
    "make a phone call/answer phone", "pat on back of other person", "pickup", "playing with phone/tablet",
    "point finger at the other person", "pointing to something with finger", "punching/slapping other person",
    "pushing other person", "put on a hat/cap", "put something inside pocket", "reading",
    "rub two hands together", "salute", "sitting down", "standing up", "take off a hat/cap",
    "take off glasses", "take off jacket", "take out something from pocket", "taking a selfie",
    "tear up paper", "throw", "touch back (backache)", "touch chest (stomachache/heart pain)",
    "touch head (headache)", "touch neck (neckache)", "typing on a keyboard",
    "use a fan (with hand or paper)/feeling warm", "wear jacket", "wear on glasses", "wipe face", "writing",
)
"""Class names by 0-based label (action ID - 1)."""
NUM_PERSONS = 2
NUM_JOINTS = 25
"""Kinect v2 joints, in the NTU RGB+D order (see :mod:`actionfusion.datasets.ntu.constants`)."""
VALUES_PER_FRAME = NUM_PERSONS * NUM_JOINTS * 3


@dataclass(frozen=True)
class PkuAction:
    """One label row. ``action_id`` is 1-based; frames are as written in the file."""

    action_id: int
    start_frame: int
    end_frame: int
    confidence: float
    line: int

    @property
    def label(self) -> int:
        """0-based class label (``action_id - 1``)."""
        return self.action_id - 1


@dataclass
class PkuClip:
    """A trimmed action.

    Attributes:
        sequence: the sequence ID (file stem), e.g. ``"0002-L"``.
        index: 0-based row of the action in the label file.
        label: 0-based class.
        start, end: the frame range cut, ``[start, end)`` on the sequence.
        skeleton: float32 [2, T, 25, 3], metres.
    """

    sequence: str
    index: int
    label: int
    start: int
    end: int
    skeleton: np.ndarray


@dataclass(frozen=True)
class PkuSplit:
    """An official split: training and test (the official "validation") sequence IDs."""

    train: tuple[str, ...]
    test: tuple[str, ...]

    def split_of(self, sequence: str) -> Literal["train", "test"]:
        """``"train"`` if ``sequence`` is in the training list, else ``"test"`` (as MAMP)."""
        return "train" if sequence in set(self.train) else "test"


def read_pku_skeleton(path: PathLike) -> np.ndarray:
    """Read one skeleton sequence.

    Returns:
        float32 [2, T, 25, 3]: person, frame, joint, (x, y, z) in metres.

    Raises:
        SkeletonFormatError: unreadable file, a row without 150 numbers, or a value that is
            not a finite number (with the 1-based line number).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="ascii", errors="strict")
    except (OSError, UnicodeDecodeError) as exc:
        raise SkeletonFormatError(path, f"cannot read the file as text: {exc}") from exc
    rows: list[np.ndarray] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        fields = raw.replace(",", " ").split()
        if not fields:
            continue
        if len(fields) != VALUES_PER_FRAME:
            raise SkeletonFormatError(path, f"expected {VALUES_PER_FRAME} numbers, found {len(fields)}", line=number)
        try:
            row = np.asarray(fields, dtype=np.float32)
        except ValueError:
            bad = next(f for f in fields if not _is_float(f))
            raise SkeletonFormatError(path, f"{bad!r} is not a number", line=number) from None
        if not np.isfinite(row).all():
            raise SkeletonFormatError(path, "non-finite value", line=number)
        rows.append(row)
    if not rows:
        raise SkeletonFormatError(path, "no frames")
    values = np.stack(rows)  # [T, 150]
    return np.ascontiguousarray(rearrange(values, "t (m v c) -> m t v c", m=NUM_PERSONS, v=NUM_JOINTS, c=3))


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _parse_int(token: str) -> int:
    """An integer written as ``12`` or ``12.0``; raises ValueError otherwise."""
    value = float(token)
    if not value.is_integer():
        raise ValueError(f"{token!r} is not an integer")
    return int(value)


def read_pku_labels(path: PathLike, num_classes: int = NUM_CLASSES) -> list[PkuAction]:
    """Read a label file: rows ``action_id,start_frame,end_frame,confidence``.

    Raises:
        AnnotationFormatError: unreadable file, a row without 4 fields, a non-integer frame
            or action, an action outside 1..``num_classes``, or ``start_frame > end_frame``.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AnnotationFormatError(path, f"cannot read the file as text: {exc}") from exc
    actions = []
    for number, raw in enumerate(text.splitlines(), start=1):
        fields = [f for f in re.split(r"[,\s]+", raw.strip()) if f]
        if not fields:
            continue
        if len(fields) != 4:
            raise AnnotationFormatError(
                path, f"expected action_id,start_frame,end_frame,confidence; found {len(fields)} fields", line=number
            )
        try:
            action_id, start, end = (_parse_int(f) for f in fields[:3])
            confidence = float(fields[3])
        except ValueError:
            raise AnnotationFormatError(path, f"non-numeric or non-integer field in {raw.strip()!r}", line=number) from None
        if not 1 <= action_id <= num_classes:
            raise AnnotationFormatError(path, f"action_id {action_id} outside 1..{num_classes}", line=number)
        if start < 0 or start > end:
            raise AnnotationFormatError(path, f"bad frame range {start}..{end}", line=number)
        actions.append(PkuAction(action_id, start, end, confidence, number))
    return actions


def cut_clips(
    skeleton: np.ndarray,
    actions: Iterable[PkuAction],
    *,
    sequence: str = "",
    end_inclusive: bool = False,
    skip_empty: bool = True,
    label_path: Optional[PathLike] = None,
) -> list[PkuClip]:
    """Cut the labelled actions out of a sequence.

    Args:
        skeleton: float [2, T, 25, 3] from :func:`read_pku_skeleton`.
        actions: label rows from :func:`read_pku_labels`.
        sequence: the sequence ID, stored in each clip.
        end_inclusive: cut ``[start, end]`` instead of MAMP's ``[start, end)``.
        skip_empty: drop clips with no frame or all-zero joints (MAMP does); if False such
            a clip raises :class:`AnnotationFormatError`.
        label_path: named in errors.

    Returns:
        One :class:`PkuClip` per kept action, skeleton float32 [2, T_clip, 25, 3]. A range
        running past the sequence is cut at its end.
    """
    skeleton = np.asarray(skeleton, dtype=np.float32)
    if skeleton.ndim != 4 or skeleton.shape[0] != NUM_PERSONS or skeleton.shape[2:] != (NUM_JOINTS, 3):
        raise ValueError(f"expected a skeleton [2, T, 25, 3], got shape {skeleton.shape}")
    num_frames = skeleton.shape[1]
    clips = []
    for index, action in enumerate(actions):
        start = action.start_frame
        end = min(action.end_frame + (1 if end_inclusive else 0), num_frames)
        data = skeleton[:, start:end] if start < end else skeleton[:, 0:0]
        if data.shape[1] == 0 or not np.any(data):
            if skip_empty:
                continue
            raise AnnotationFormatError(
                label_path or sequence or "<labels>",
                f"action {action.action_id} frames {action.start_frame}..{action.end_frame} hold no skeleton "
                f"(sequence has {num_frames} frames)",
                line=action.line,
            )
        clips.append(PkuClip(sequence, index, action.label, start, end, np.ascontiguousarray(data)))
    return clips


def read_sequence_clips(skeleton_path: PathLike, label_path: PathLike, **kwargs: object) -> list[PkuClip]:
    """:func:`cut_clips` on one sequence's skeleton and label files (sequence ID = file stem)."""
    skeleton = read_pku_skeleton(skeleton_path)
    actions = read_pku_labels(label_path)
    return cut_clips(skeleton, actions, sequence=Path(skeleton_path).stem, label_path=label_path, **kwargs)  # type: ignore[arg-type]


_HEADER_RE = re.compile(r"^\s*([A-Za-z][A-Za-z ]*?)\s*(?:\(\s*\d+\s*\))?\s*:(.*)$")


def read_pku_split(path: PathLike) -> PkuSplit:
    """Read ``cross-view.txt`` or ``cross-subject.txt`` (format: see the module docstring).

    Raises:
        AnnotationFormatError: no training section, an ID before any header, or an empty
            training list.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise AnnotationFormatError(path, f"cannot read the file as text: {exc}") from exc
    sections: dict[str, list[str]] = {"train": [], "test": []}
    current: Optional[str] = None
    seen_train = False
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        header = _HEADER_RE.match(raw)
        rest = raw
        if header is not None:
            title = header.group(1).lower()
            if "train" in title:
                current, seen_train = "train", True
            elif "valid" in title or "test" in title:
                current = "test"
            else:
                raise AnnotationFormatError(path, f"unknown section {header.group(1)!r}", line=number)
            rest = header.group(2)
        elif current is None:
            raise AnnotationFormatError(path, "sequence IDs before a 'Training ...:' header", line=number)
        ids = [token.strip() for token in rest.split(",") if token.strip()]
        for token in ids:
            if re.search(r"\s", token):
                raise AnnotationFormatError(path, f"{token!r} is not a sequence ID", line=number)
        sections[current or "train"].extend(ids)
    if not seen_train or not sections["train"]:
        raise AnnotationFormatError(path, "no training sequences (expected a 'Training videos:' section)")
    return PkuSplit(tuple(sections["train"]), tuple(sections["test"]))
