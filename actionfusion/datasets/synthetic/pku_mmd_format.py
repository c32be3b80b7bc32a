"""A synthetic PKU-MMD root in the raw layout, from the synthetic skeleton motions.

Layout (MAMP's ``data/pku_raw/v1`` and ``v2``, maoyunyao/MAMP README and ``data/pku_v*/pku_gendata.py``;
what :mod:`~actionfusion.datasets.store.prepare_pku_mmd` reads)::

    OUT/skeleton/<seq>.txt    one row per frame, 150 numbers: 2 persons x 25 Kinect v2 joints x (x, y, z),
                              the second person zeros when absent (camera space, metres)
    OUT/label/<seq>.txt       rows ``action_id,start_frame,end_frame,confidence`` (PKU-MMD action IDs 1..51)
    OUT/cross-subject.txt     v1 split files ("Training videos:" line, the training IDs joined by ", ",
    OUT/cross-view.txt        "Validation videos:" line, the other IDs); v2: cross_subject_v2.txt and
                              cross_view_v2.txt (MAMP's names; the spec describes no v2 layout of its own)

Each *recording* is one performer doing several actions with idle gaps in between
(:func:`~.untrimmed.render_sequence`), seen by the three cameras at once, as PKU-MMD's three
Kinects recorded: sequences ``NNNN-L``, ``NNNN-M``, ``NNNN-R`` share the performance and the labels
and differ by viewpoint and sensor noise. Frames are 0-based, ``[start, end)`` (MAMP's cut).

Splits: cross-view trains on the middle and right views and tests on the left (PKU-MMD paper,
Liu et al. 2017, Sec. 4); cross-subject tests the recordings of ``test_performers``.

Classes: the synthetic motions of :data:`PKU_MMD_ACTION_OF_NTU`, each written with the PKU-MMD
action ID of the same action (names in :data:`~actionfusion.datasets.pku_mmd.PKU_MMD_CLASS_NAMES`). The held-object
classes (drink water, brushing teeth, phone call) share one motion and are left out by default.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Union

from ...io import atomic_write_text
from .action_library import synthetic_class
from .seeding import keyed_rng
from .untrimmed import (LABEL_SUBDIR, SKELETON_SUBDIR, UntrimmedConfig, format_pku_labels, format_pku_skeleton,
                        render_sequence)

PathLike = Union[str, "os.PathLike[str]"]
log = logging.getLogger(__name__)

PKU_MMD_ACTION_OF_NTU: dict[int, int] = {
    1: 8,     # drink water
    3: 3,     # brushing teeth
    8: 33,    # sitting down
    9: 34,    # standing up (from sitting position) -> standing up
    10: 6,    # clapping
    22: 5,    # cheer up
    23: 13,   # hand waving
    24: 19,   # kicking something
    27: 17,   # jump up
    28: 20,   # make a phone call/answer phone
    31: 25,   # pointing to something with finger
    50: 26,   # punching/slapping other person
    52: 27,   # pushing other person
    55: 16,   # hugging other person
    58: 14,   # handshaking
}
"""Synthetic class (NTU action number) -> PKU-MMD action ID of the same action (every synthetic class)."""

VIEW_LETTERS: dict[int, str] = {1: "L", 2: "M", 3: "R"}
"""Synthetic camera (-45, 0, +45 degrees) -> PKU-MMD's view letter in sequence names."""
TRAIN_VIEWS: tuple[str, ...] = ("M", "R")
"""Cross-view training views (PKU-MMD paper, Sec. 4); L tests."""

SPLIT_FILES: dict[str, dict[str, str]] = {
    "v1": {"xsub": "cross-subject.txt", "xview": "cross-view.txt"},
    "v2": {"xsub": "cross_subject_v2.txt", "xview": "cross_view_v2.txt"},
}
"""Split file names per version (MAMP ``data/pku_v1/pku_gendata.py``, ``data/pku_v2/pku_gendata.py``)."""

Version = Literal["v1", "v2"]


@dataclass(frozen=True)
class PkuSynthConfig:
    """What to write.

    Attributes:
        seed: dataset seed (bodies, actions, gaps, setups and noise derive from it).
        version: ``"v1"`` or ``"v2"`` (split file names).
        recordings: recordings, each written as three sequences (L, M, R).
        performers: NTU performer IDs (bodies); recording i is performed by ``performers[i % len]``.
        test_performers: performers whose recordings the cross-subject split tests.
        classes_per_recording: the classes a recording draws its actions from: a window of this many
            of the class list, moved on by as many per recording (PKU-MMD's sequences, too, each hold
            about 20 actions of a subset of the classes), so that a few recordings cover every class.
        actions_per_sequence, action_frames, gap_frames: (min, max), as :class:`~.untrimmed.UntrimmedConfig`.
        exclude_held_object: leave out the three held-object classes (indistinguishable from skeletons).
        setups: synthetic setups (camera height and distance) drawn per recording.
    """

    seed: int = 0
    version: Version = "v1"
    recordings: int = 10
    performers: tuple[int, ...] = (1, 2, 3, 4, 5)
    test_performers: tuple[int, ...] = (4, 5)
    classes_per_recording: int = 4
    actions_per_sequence: tuple[int, int] = (4, 6)
    action_frames: tuple[int, int] = (36, 48)
    gap_frames: tuple[int, int] = (12, 24)
    exclude_held_object: bool = True
    setups: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8)

    @classmethod
    def at_scale(cls, scale: str = "default", seed: int = 0, version: Version = "v1") -> "PkuSynthConfig":
        """The config of a named size (``actionfusion synth --scale``): ``tiny`` 4 recordings (12 sequences,
        about 60 clips), ``default`` 10 (30 sequences, about 150 clips), ``large`` 120 (360 sequences, about
        1,800 clips); a sixth to two fifths of the performers are cross-subject test performers."""
        sizes = {"tiny": (4, 4, 1), "default": (10, 5, 2), "large": (120, 30, 6)}
        if scale not in sizes:
            raise ValueError(f"scale must be one of {', '.join(sizes)}, not {scale!r}")
        recordings, num_performers, num_test = sizes[scale]
        performers = tuple(range(1, num_performers + 1))
        return cls(seed=seed, version=version, recordings=recordings, performers=performers,
                   test_performers=performers[-num_test:])

    def validate(self) -> None:
        """Raise ValueError on an inconsistent configuration."""
        if self.version not in SPLIT_FILES:
            raise ValueError(f"version must be one of {tuple(SPLIT_FILES)}, not {self.version!r}")
        if self.recordings < 1 or not self.performers or not self.setups:
            raise ValueError("recordings must be >= 1; performers and setups must be non-empty")
        if self.classes_per_recording < 1:
            raise ValueError(f"classes_per_recording must be >= 1, got {self.classes_per_recording}")
        if not set(self.test_performers) <= set(self.performers):
            raise ValueError(f"test_performers {self.test_performers} must be among performers {self.performers}")

    def class_list(self) -> tuple[int, ...]:
        """The synthetic classes (NTU action numbers) written, sorted."""
        return tuple(a for a in sorted(PKU_MMD_ACTION_OF_NTU)
                     if not (self.exclude_held_object and synthetic_class(a).kind == "object"))

    def recording_classes(self, index: int) -> tuple[int, ...]:
        """The classes recording ``index`` draws from: a window of the class list (wrapping round)."""
        pool = self.class_list()
        width = min(self.classes_per_recording, len(pool))
        return tuple(sorted(pool[(index * width + k) % len(pool)] for k in range(width)))

    def untrimmed(self, index: int, performer: int, setup: int, camera: int) -> UntrimmedConfig:
        """The sequence generator's config of one view of recording ``index``."""
        return UntrimmedConfig(seed=self.seed, num_sequences=self.recordings,
                               actions_per_sequence=self.actions_per_sequence, action_frames=self.action_frames,
                               gap_frames=self.gap_frames, classes=self.recording_classes(index),
                               performers=(performer,), cameras=(camera,), setups=(setup,))


@dataclass
class PkuSynthSummary:
    """What a run wrote.

    Attributes:
        out: the root.
        sequences: sequence IDs, sorted.
        actions: {sequence: PKU-MMD action IDs in order}.
        train: {"xsub", "xview"}: the training sequence IDs of each split file.
    """

    out: str
    sequences: list[str] = field(default_factory=list)
    actions: dict[str, list[int]] = field(default_factory=dict)
    train: dict[str, list[str]] = field(default_factory=dict)

    @property
    def num_clips(self) -> int:
        """Label rows over all sequences."""
        return sum(len(a) for a in self.actions.values())

    def to_dict(self) -> dict[str, object]:
        """JSON-ready counts (``actionfusion synth --json``)."""
        return {"out": self.out, "format": "pku-mmd", "sequences": len(self.sequences), "clips": self.num_clips,
                "train_sequences": {key: len(names) for key, names in self.train.items()}}

    def summary_text(self) -> str:
        """One line for the console."""
        return (f"{self.out}: {len(self.sequences)} PKU-MMD sequences, {self.num_clips} labelled actions "
                f"(cross-subject trains on {len(self.train.get('xsub', []))} sequences, "
                f"cross-view on {len(self.train.get('xview', []))})")


def format_pku_split(train: list[str], test: list[str]) -> str:
    """Split file text: ``Training videos:``, the IDs joined by ``", "``, ``Validation videos:``, the rest
    (MAMP reads line 2 split by ``", "``; :func:`~actionfusion.datasets.pku_mmd.read_pku_split` reads both)."""
    return f"Training videos: \n{', '.join(train)}\nValidation videos: \n{', '.join(test)}\n"


def write_synthetic_pku_mmd(out: PathLike, config: PkuSynthConfig = PkuSynthConfig()) -> PkuSynthSummary:
    """Write ``config.recordings`` x 3 sequences and the two split files under ``out`` (each file atomically).

    Deterministic: the same config writes the same bytes.
    """
    config.validate()
    out = Path(out)
    summary = PkuSynthSummary(out=str(out))
    xsub_train: list[str] = []
    for index in range(config.recordings):
        performer = config.performers[index % len(config.performers)]
        setups = config.setups
        setup = setups[int(keyed_rng(config.seed, "pku-mmd-setup", index).integers(len(setups)))]
        for camera, letter in VIEW_LETTERS.items():
            sequence = render_sequence(config.untrimmed(index, performer, setup, camera), index)
            name = f"{index + 1:04d}-{letter}"
            labels = [(PKU_MMD_ACTION_OF_NTU[a], s, e) for a, s, e in sequence.labels]
            atomic_write_text(out / SKELETON_SUBDIR / f"{name}.txt", format_pku_skeleton(sequence.skeleton))
            atomic_write_text(out / LABEL_SUBDIR / f"{name}.txt", format_pku_labels(labels))
            summary.sequences.append(name)
            summary.actions[name] = [a for a, _, _ in labels]
            if performer not in config.test_performers:
                xsub_train.append(name)
    summary.sequences.sort()
    splits = {"xsub": sorted(xsub_train),
              "xview": [s for s in summary.sequences if s.rsplit("-", 1)[1] in TRAIN_VIEWS]}
    for key, train in splits.items():
        test = [s for s in summary.sequences if s not in set(train)]
        atomic_write_text(out / SPLIT_FILES[config.version][key], format_pku_split(train, test))
    summary.train = splits
    log.info("synthetic PKU-MMD %s: %d sequences, %d actions in %s", config.version, len(summary.sequences),
             summary.num_clips, out)
    return summary
