"""A synthetic NW-UCLA root, from the synthetic skeleton motions.

Layout (CTR-GCN / Hyper-GCN ``data/NW-UCLA/all_sqe``; what
:func:`~actionfusion.datasets.nw_ucla.read_ucla_json` and
:mod:`~actionfusion.datasets.store.prepare_nw_ucla` read)::

    OUT/all_sqe/aAA_sSS_eEE_vVV.json    {"file_name": "aAA_sSS_eEE_vVV", "skeletons": T x 20 x 3}

One *event* (action AA, subject SS, episode EE) is staged once (:func:`~.scene.stage_event`) and
seen by the three cameras at once (views 1-3 = the synthetic cameras at -45, 0, +45 degrees), as
NW-UCLA's three Kinect v1 recorded. Per view: Kinect-like noise (:func:`~.noise.sensor_skeleton`),
frames the sensor lost are dropped, and the 25 Kinect v2 joints become the 20 Kinect v1 joints with
:func:`~actionfusion.modalities.skeleton.layouts.convert_layout` (``ntu25`` -> ``nw_ucla20``: the
same joints under v1 names; the hand tips and thumbs, which v1 lacks, are dropped). One person:
for the two stand-ins taken from two-person motions only the first person is written.

Classes: NW-UCLA's actions are not among the synthetic motions (only sit down and stand up are), so
each NW-UCLA action number gets a distinct synthetic motion as a stand-in (:data:`NTU_MOTION_OF_UCLA_ACTION`):
the labels are learnable and the class names NW-UCLA's, but the motions are not those actions.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np

from ...io import atomic_write_text
from ...modalities.skeleton.layouts import convert_layout
from ..ntu.names import SampleName
from ..nw_ucla import ACTIONS, UclaName
from .cameras import camera_pose
from .noise import sensor_skeleton
from .scene import stage_event
from .seeding import keyed_rng

PathLike = Union[str, "os.PathLike[str]"]
log = logging.getLogger(__name__)

SAMPLES_SUBDIR = "all_sqe"

NTU_MOTION_OF_UCLA_ACTION: dict[int, int] = {
    1: 31,    # pick up with one hand   <- pointing to something (one arm reaches out)
    2: 52,    # pick up with two hands  <- pushing other person, the pusher (both arms forward)
    3: 23,    # drop trash              <- hand waving
    4: 24,    # walk around             <- kicking something
    5: 8,     # sit down                <- sitting down (the same action)
    6: 9,     # stand up                <- standing up (the same action)
    8: 22,    # donning                 <- cheer up (both arms up)
    9: 10,    # doffing                 <- clapping
    11: 50,   # throw                   <- punching/slapping other person, the attacker (one arm thrusts)
    12: 27,   # carry                   <- jump up
}
"""NW-UCLA action number -> the synthetic class (NTU action number) whose motion stands in for it."""


@dataclass(frozen=True)
class UclaSynthConfig:
    """What to write.

    Attributes:
        seed: dataset seed.
        subjects: subject numbers (NTU performer IDs give their bodies).
        episodes: episodes per (action, subject), numbered from 0 (``e00``).
        views: views to write (1-3; cross-view trains on 1 and 2, tests on 3).
        frames: (min, max) frames of an event, inclusive, before lost frames are dropped.
        setups: synthetic setups (camera height and distance), drawn per event.
    """

    seed: int = 0
    subjects: tuple[int, ...] = (1, 2, 3, 4)
    episodes: int = 1
    views: tuple[int, ...] = (1, 2, 3)
    frames: tuple[int, int] = (24, 40)
    setups: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8)

    @classmethod
    def at_scale(cls, scale: str = "default", seed: int = 0) -> "UclaSynthConfig":
        """The config of a named size (``actionfusion synth --scale``): ``tiny`` 2 subjects (60 files),
        ``default`` 4 (120 files), ``large`` 10 subjects x 3 episodes (900 files; NW-UCLA has about 1,500)."""
        sizes = {"tiny": (2, 1), "default": (4, 1), "large": (10, 3)}
        if scale not in sizes:
            raise ValueError(f"scale must be one of {', '.join(sizes)}, not {scale!r}")
        subjects, episodes = sizes[scale]
        return cls(seed=seed, subjects=tuple(range(1, subjects + 1)), episodes=episodes)

    def validate(self) -> None:
        """Raise ValueError on an inconsistent configuration."""
        if not self.subjects or not all(1 <= s <= 99 for s in self.subjects):
            raise ValueError(f"subjects must be non-empty numbers 1..99, got {self.subjects}")
        if not 1 <= self.episodes <= 100:
            raise ValueError(f"episodes must lie in 1..100, got {self.episodes}")
        if not self.views or not set(self.views) <= {1, 2, 3}:
            raise ValueError(f"views must be a non-empty subset of 1-3, got {self.views}")
        if not 1 <= self.frames[0] <= self.frames[1]:
            raise ValueError(f"frames must satisfy 1 <= min <= max, got {self.frames}")
        if not self.setups:
            raise ValueError("setups must be non-empty")


@dataclass
class UclaSynthSummary:
    """What a run wrote: ``names`` (file stems, sorted) and their frame counts."""

    out: str
    names: list[str] = field(default_factory=list)
    frames: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready counts (``actionfusion synth --json``)."""
        return {"out": self.out, "format": "nw-ucla", "samples": len(self.names),
                "frames": sum(self.frames.values())}

    def summary_text(self) -> str:
        """One line for the console."""
        return f"{self.out}: {len(self.names)} NW-UCLA skeleton files in {SAMPLES_SUBDIR}/"


def render_views(config: UclaSynthConfig, action: int, subject: int, episode: int) -> dict[int, np.ndarray]:
    """The event's skeleton in each view: ``{view: float32 [T_view, 20, 3]}`` (camera space, metres)."""
    setup = config.setups[int(keyed_rng(config.seed, "nw-ucla-setup", action, subject, episode)
                               .integers(len(config.setups)))]
    sample = SampleName(setup=setup, camera=1, performer=subject, replication=episode + 1,
                        action=NTU_MOTION_OF_UCLA_ACTION[action])
    event = stage_event(config.seed, sample, config.frames)
    views = {}
    for view in config.views:
        name = str(UclaName(action, subject, episode, view))
        camera = camera_pose(setup, view).world_to_camera(event.joints[:1])  # [1, T, 25, 3], the first person
        sensor = sensor_skeleton(keyed_rng(config.seed, "nw-ucla-noise", name), camera)
        kept = sensor.joints[0][sensor.present[0]]  # [T_view, 25, 3]
        views[view] = convert_layout(kept, "ntu25", "nw_ucla20")
    return views


def format_ucla_json(name: str, skeleton: np.ndarray) -> str:
    """NW-UCLA JSON text of float [T, 20, 3] (values rounded to 0.01 mm)."""
    return json.dumps({"file_name": name, "skeletons": np.round(np.asarray(skeleton, np.float64), 5).tolist()},
                      separators=(",", ":")) + "\n"


def write_synthetic_nw_ucla(out: PathLike, config: UclaSynthConfig = UclaSynthConfig()) -> UclaSynthSummary:
    """Write every (action, subject, episode, view) of ``config`` to ``out/all_sqe`` (each file atomically).

    Deterministic: the same config writes the same bytes.
    """
    config.validate()
    directory = Path(out) / SAMPLES_SUBDIR
    summary = UclaSynthSummary(out=str(out))
    for action in ACTIONS:
        for subject in config.subjects:
            for episode in range(config.episodes):
                for view, skeleton in render_views(config, action, subject, episode).items():
                    name = str(UclaName(action, subject, episode, view))
                    atomic_write_text(directory / f"{name}.json", format_ucla_json(name, skeleton))
                    summary.names.append(name)
                    summary.frames[name] = int(skeleton.shape[0])
    summary.names.sort()
    log.info("synthetic NW-UCLA: %d samples in %s", len(summary.names), directory)
    return summary
