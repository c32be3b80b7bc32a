"""Northwestern-UCLA Multiview Action 3D (NW-UCLA): skeleton JSON files, labels, cross-view split.

Dataset: Wang et al., "Cross-view Action Modeling, Learning and Recognition", CVPR 2014.
Three Kinect v1 cameras, 10 actions, one person, 20 joints.

File layout used by the skeleton literature (Uason-Chen/CTR-GCN ``feeders/feeder_ucla.py``):
``all_sqe/aAA_sSS_eEE_vVV.json``, a JSON object whose ``skeletons`` entry is a list of T
frames of 20 joints of (x, y, z). ``AA`` action, ``SS`` subject, ``EE`` episode, ``VV`` view.

Labels: the 10 action numbers 1-6, 8, 9, 11, 12 map to labels 0..9 in that order (CTR-GCN
stores them 1..10 and subtracts 1). Cross-view protocol: views 1 and 2 train, view 3 tests.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Union

import numpy as np

from ..errors import SampleNameError, SkeletonFormatError

PathLike = Union[str, "os.PathLike[str]"]

# Action numbers of NW-UCLA in label order (Wang et al. CVPR 2014; CTR-GCN feeders/feeder_ucla.py).
ACTIONS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 8, 9, 11, 12)
ACTION_TO_LABEL: dict[int, int] = {action: label for label, action in enumerate(ACTIONS)}

# Class names in label order (Wang et al. CVPR 2014, the dataset paper's action list).
CLASS_NAMES: tuple[str, ...] = (
    "pick up with one hand", "pick up with two hands", "drop trash", "walk around", "sit down",
    "stand up", "donning", "doffing", "throw", "carry",
)
NUM_CLASSES = len(ACTIONS)

# Cross-view protocol (CTR-GCN feeders/feeder_ucla.py): views 1, 2 train; view 3 tests.
TRAIN_VIEWS: frozenset[int] = frozenset((1, 2))
TEST_VIEWS: frozenset[int] = frozenset((3,))

# The 20 Kinect v1 joints and their parents: defined with the skeleton modality.
from ..modalities.skeleton.joint_constants import UCLA_JOINT_NAMES as JOINT_NAMES  # noqa: E402
from ..modalities.skeleton.joint_constants import UCLA_JOINT_PARENTS as JOINT_PARENTS  # noqa: E402
from ..modalities.skeleton.joint_constants import UCLA_NUM_JOINTS as NUM_JOINTS  # noqa: E402

_NAME_RE = re.compile(r"^a(\d{2})_s(\d{2})_e(\d{2})_v(\d{2})$")


@dataclass(frozen=True)
class UclaName:
    """The fields of ``aAA_sSS_eEE_vVV``."""

    action: int
    subject: int
    episode: int
    view: int

    @property
    def label(self) -> int:
        """0-based class label."""
        return ACTION_TO_LABEL[self.action]

    def __str__(self) -> str:
        return f"a{self.action:02d}_s{self.subject:02d}_e{self.episode:02d}_v{self.view:02d}"


def parse_ucla_name(name: str) -> UclaName:
    """Parse ``"a01_s01_e00_v01"`` (a bare name, a file name or a path).

    Raises:
        SampleNameError: not of that form, or an action NW-UCLA does not use.
    """
    stem = Path(str(name)).name.split(".", 1)[0]
    match = _NAME_RE.match(stem)
    if match is None:
        raise SampleNameError(f"{name!r} is not an NW-UCLA sample name aAA_sSS_eEE_vVV (e.g. a01_s01_e00_v01)")
    parsed = UclaName(*(int(g) for g in match.groups()))
    if parsed.action not in ACTION_TO_LABEL:
        raise SampleNameError(f"{name!r}: action {parsed.action} is not one of NW-UCLA's {ACTIONS}")
    return parsed


def split_of(name: Union[str, UclaName]) -> Literal["train", "test"]:
    """Cross-view side of a sample: views 1 and 2 ``"train"``, view 3 ``"test"``.

    Raises:
        SampleNameError: bad name, or a view other than 1-3.
    """
    parsed = name if isinstance(name, UclaName) else parse_ucla_name(name)
    if parsed.view in TRAIN_VIEWS:
        return "train"
    if parsed.view in TEST_VIEWS:
        return "test"
    raise SampleNameError(f"{parsed}: view {parsed.view} is not 1, 2 or 3")


def read_ucla_json(path: PathLike) -> np.ndarray:
    """Read one sample's skeleton.

    Returns:
        float32 [T, 20, 3].

    Raises:
        SkeletonFormatError: unreadable or invalid JSON, no ``skeletons`` list, a frame that is
            not 20 x 3 numbers (named by frame index), no frames, or a non-finite value.
    """
    path = Path(path)
    try:
        with open(path, "r", encoding="utf-8") as handle:
            document = json.load(handle)
    except OSError as exc:
        raise SkeletonFormatError(path, f"cannot read the file: {exc.strerror or exc}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        raise SkeletonFormatError(path, f"not valid JSON: {exc}", line=line) from exc
    if not isinstance(document, dict) or not isinstance(document.get("skeletons"), list):
        raise SkeletonFormatError(path, "expected a JSON object with a 'skeletons' list")
    frames = document["skeletons"]
    if not frames:
        raise SkeletonFormatError(path, "'skeletons' holds no frame")
    for index, frame in enumerate(frames):
        try:
            shape = np.asarray(frame, dtype=np.float64).shape
        except (TypeError, ValueError):
            raise SkeletonFormatError(path, "not a 20 x 3 array of numbers", where=f"skeletons[{index}]") from None
        if shape != (NUM_JOINTS, 3):
            raise SkeletonFormatError(path, f"expected 20 x 3 numbers, found shape {shape}", where=f"skeletons[{index}]")
    values = np.asarray(frames, dtype=np.float32)
    if not np.isfinite(values).all():
        bad = int(np.flatnonzero(~np.isfinite(values).all(axis=(1, 2)))[0])
        raise SkeletonFormatError(path, "non-finite value", where=f"skeletons[{bad}]")
    return values


def list_ucla_samples(directory: PathLike) -> list[Path]:
    """The ``aAA_sSS_eEE_vVV.json`` files of ``directory`` (e.g. ``all_sqe``), sorted by name.

    Files with other names, or with actions NW-UCLA does not use, are skipped.
    """
    found = []
    for path in sorted(Path(directory).glob("*.json")):
        try:
            parse_ucla_name(path.stem)
        except SampleNameError:
            continue
        found.append(path)
    return found
