"""Untrimmed synthetic skeleton sequences in PKU-MMD's on-disk format, for temporal detection.

One sequence is one performer doing several actions in a row, with idle gaps (standing, or
sitting between "sitting down" and "standing up") between them, seen by one Kinect camera:

    OUT/skeleton/<seq>.txt   one row per frame, 150 numbers: 2 persons x 25 joints x (x, y, z),
                             the second person zeros when absent (camera space, metres)
    OUT/label/<seq>.txt      rows ``action_id,start_frame,end_frame,confidence``

exactly what :func:`~actionfusion.datasets.pku_mmd.read_pku_skeleton` and
:func:`~actionfusion.datasets.pku_mmd.read_pku_labels` (``num_classes=60``: the classes keep their
NTU action numbers) read. Frames are 0-based and ``[start, end)``, as
:func:`~actionfusion.datasets.pku_mmd.cut_clips` cuts by default. A label spans the whole staged
event of the action, rest frames before and after its active phase included: the same span a
trimmed synthetic sample covers, so a classifier trained on those sees its training input.

Motion comes from the trimmed generator's parts: :func:`~.scene.performer_identity` (body),
:func:`~.action_library.perform` and :func:`~.kinect_body.solve_pose` (the action, as
:func:`~.scene.stage_event` stages it: one person turned 15-35 degrees to a side, or two people
facing each other along an axis 5-25 degrees off the camera line), :func:`~.cameras.camera_pose`
(NTU's cameras) and :func:`~.noise.sensor_skeleton` (Kinect joint noise over the whole sequence;
the trimmed generator's lost frames are not simulated, so the performer is present in every frame).

Continuity: each action is translated so that the performer's SpineBase (floor plane) starts where
the previous frame left it, and each gap turns the body from the previous action's last pose and
heading to the next action's first pose and heading (both poses rotated about their SpineBase to
the interpolated heading, then blended with a smoothstep weight), plus a small sway that vanishes
at both ends. The partner of a two-person action exists only during that action (person 2 zeros
elsewhere), as a person walking into a PKU-MMD recording does.

"Sitting down" (A008) is always followed by "standing up" (A009) when both are in the class list
(and A009 never occurs alone then), so the gap between them is spent seated. With only one of
them in the list, the gap after "sitting down" blends a sitting pose into a standing one: an
unlabelled stand-up.

The three held-object classes (A001 drink water, A003 brushing teeth, A028 phone call) share ONE
skeleton motion (:mod:`.action_library`): from skeletons alone they are indistinguishable, so a
skeleton detector cannot tell them apart. ``exclude_held_object=True`` leaves them out.

Deterministic: a sequence is a pure function of the seed and its index.
"""

from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import numpy as np

from ...io import atomic_write_json, atomic_write_text
from ..ntu.splits import XSUB_TRAIN_SUBJECTS_NTU60
from .action_library import SyntheticClass, perform, synthetic_class, synthetic_classes
from .cameras import camera_pose
from .kinect_body import J, solve_pose
from .motion_timing import smoothstep
from .noise import sensor_skeleton
from .scene import base_to_world, performer_identity
from .seeding import keyed_rng

PathLike = Union[str, "os.PathLike[str]"]
log = logging.getLogger(__name__)

SKELETON_SUBDIR, LABEL_SUBDIR = "skeleton", "label"
SUMMARY_FILE = "untrimmed_summary.json"
SITTING_DOWN, STANDING_UP = 8, 9
"""NTU action numbers of the pair kept together (see the module docstring)."""
CAMERA_LETTERS = {1: "L", 2: "M", 3: "R"}
"""NTU camera -> PKU-MMD's view letter in sequence names (left -45, middle 0, right +45 degrees)."""
TEST_PERFORMERS: tuple[int, ...] = tuple(p for p in range(1, 41) if p not in XSUB_TRAIN_SUBJECTS_NTU60)
"""NTU-60 performers outside the cross-subject training list: a model trained on xsub never saw them."""
_SPINE_BASE = J["SpineBase"]


@dataclass(frozen=True)
class UntrimmedConfig:
    """What to generate.

    Attributes:
        seed: the dataset seed (bodies, actions, gaps, cameras and noise derive from it).
        num_sequences: sequences to write.
        actions_per_sequence: (min, max) actions per sequence, inclusive (a sit/stand pair counts 2).
        action_frames: (min, max) frames per action, inclusive.
        gap_frames: (min, max) idle frames between actions, and before the first / after the last.
        classes: NTU action numbers to draw from; None takes every synthetic class.
        exclude_held_object: leave out the held-object classes (indistinguishable from skeletons).
        performers: NTU performer IDs to draw from (default: outside the NTU-60 xsub training list).
        cameras: NTU camera numbers (1-3) to draw from.
        setups: synthetic setup numbers (camera height and distance) to draw from.
    """

    seed: int = 0
    num_sequences: int = 10
    actions_per_sequence: tuple[int, int] = (6, 10)
    action_frames: tuple[int, int] = (36, 48)
    gap_frames: tuple[int, int] = (20, 40)
    classes: Optional[tuple[int, ...]] = None
    exclude_held_object: bool = False
    performers: tuple[int, ...] = TEST_PERFORMERS
    cameras: tuple[int, ...] = (1, 2, 3)
    setups: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8)

    def class_list(self) -> tuple[SyntheticClass, ...]:
        """The classes drawn from; ValueError for an unknown action or an empty list."""
        pool = synthetic_classes() if self.classes is None else tuple(synthetic_class(a) for a in self.classes)
        if self.exclude_held_object:
            pool = tuple(c for c in pool if c.kind != "object")
        if not pool:
            raise ValueError("no classes left to draw from (classes / exclude_held_object)")
        return pool

    def validate(self) -> None:
        """Raise ValueError on an inconsistent configuration."""
        self.class_list()
        for name in ("actions_per_sequence", "action_frames", "gap_frames"):
            lo, hi = getattr(self, name)
            if not 1 <= lo <= hi:
                raise ValueError(f"{name} must satisfy 1 <= min <= max, got {(lo, hi)}")
        if self.num_sequences < 0:
            raise ValueError(f"num_sequences must be >= 0, got {self.num_sequences}")
        if not self.performers or not self.setups or not self.cameras or not set(self.cameras) <= {1, 2, 3}:
            raise ValueError("performers, setups and cameras (a subset of 1-3) must be non-empty")


@dataclass
class UntrimmedSequence:
    """One generated sequence.

    Attributes:
        name: the sequence ID (file stem), e.g. ``"0001-M"``.
        skeleton: float32 [2, T, 25, 3] camera-space joints in metres (person 2 zeros when absent).
        labels: ``(action, start, end)`` per action: NTU action number, 0-based frames ``[start, end)``.
        performer, setup, camera: who performed, and the camera that recorded.
    """

    name: str
    skeleton: np.ndarray
    labels: list[tuple[int, int, int]]
    performer: int
    setup: int
    camera: int


def plan_actions(config: UntrimmedConfig, rng: np.random.Generator) -> list[int]:
    """NTU action numbers of one sequence, "sitting down" followed by "standing up" when both are drawn from."""
    pool = [c.action for c in config.class_list()]
    paired = SITTING_DOWN in pool and STANDING_UP in pool
    units = [a for a in pool if not (paired and a == STANDING_UP)]
    target = int(rng.integers(config.actions_per_sequence[0], config.actions_per_sequence[1] + 1))
    actions: list[int] = []
    while len(actions) < target:
        action = int(rng.choice(units))
        actions += [SITTING_DOWN, STANDING_UP] if paired and action == SITTING_DOWN else [action]
    return actions


def _yaw_rotation(angle: float) -> np.ndarray:
    """float [3, 3]: rotation about world up that turns a heading ``yaw`` into ``yaw + angle``."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


@dataclass
class _StagedAction:
    """An action in world space. joints float [2, T, 25, 3] (person 2 zeros if alone); yaw of the performer."""

    joints: np.ndarray
    yaw: float
    two_people: bool


def stage_action(seed: int, key: tuple, cls: SyntheticClass, performer: int, num_frames: int) -> _StagedAction:
    """The action performed at the world origin (performer's base), placed as :func:`~.scene.stage_event` does."""
    rng = keyed_rng(seed, "untrimmed-action", *key)
    shapes = [performer_identity(seed, performer)[0]]
    if cls.num_bodies == 2:
        shapes.append(performer_identity(seed, performer, "partner")[0])
    performance = perform(cls, rng, shapes, num_frames)
    side = -1.0 if rng.random() < 0.5 else 1.0
    if cls.num_bodies == 1:
        placements = [(np.zeros(3), float(np.deg2rad(side * rng.uniform(15, 35))))]
    else:
        axis_yaw = np.deg2rad(side * rng.uniform(5, 25))
        axis = np.array([np.cos(axis_yaw), 0.0, -np.sin(axis_yaw)])
        face = float(np.arctan2(-axis[0], -axis[2]))
        placements = [(np.zeros(3), face), (performance.separation * axis, face + np.pi)]
    joints = np.zeros((2, num_frames, 25, 3))
    for body, (shape, ctl, (position, yaw)) in enumerate(zip(shapes, performance.controls, placements)):
        joints[body] = solve_pose(shape, ctl).joints @ base_to_world(yaw).T + position
    return _StagedAction(joints=joints, yaw=placements[0][1], two_people=cls.num_bodies == 2)


def idle_gap(rng: np.random.Generator, before: np.ndarray, yaw_before: float, after: np.ndarray,
             yaw_after: float, num_frames: int) -> np.ndarray:
    """float [num_frames, 25, 3]: the performer turning and moving from pose ``before`` [25, 3] to
    ``after`` [25, 3] (both excluded), with a sway that is zero at both ends."""
    turn = float(np.angle(np.exp(1j * (yaw_after - yaw_before))))  # wrapped to (-pi, pi]
    root_b, root_a = before[_SPINE_BASE], after[_SPINE_BASE]
    k = np.arange(1, num_frames + 1) / (num_frames + 1)
    weight = smoothstep(k)
    sway_env = np.sin(np.pi * k)
    sway = np.stack([0.012 * np.sin(2 * np.pi * rng.uniform(0.5, 1.5) * k + rng.uniform(0, 6.3)),
                     np.zeros_like(k),
                     0.008 * np.sin(2 * np.pi * rng.uniform(0.5, 1.5) * k + rng.uniform(0, 6.3))], axis=1)
    out = np.empty((num_frames, 25, 3))
    for i, w in enumerate(weight):
        a = (before - root_b) @ _yaw_rotation(w * turn).T + root_b
        b = (after - root_a) @ _yaw_rotation(-(1 - w) * turn).T + root_a
        out[i] = (1 - w) * a + w * b + sway_env[i] * sway[i]
    return out


def _hold(pose: np.ndarray, rng: np.random.Generator, num_frames: int) -> np.ndarray:
    """float [num_frames, 25, 3]: standing at ``pose`` with a sway that is zero at both ends."""
    return idle_gap(rng, pose, 0.0, pose, 0.0, num_frames)


def sequence_name(index: int, camera: int) -> str:
    """``"0001-M"``: 1-based index and PKU-MMD's view letter."""
    return f"{index + 1:04d}-{CAMERA_LETTERS[camera]}"


def render_sequence(config: UntrimmedConfig, index: int) -> UntrimmedSequence:
    """Generate sequence ``index`` (deterministic from ``config.seed`` and ``index``)."""
    rng = keyed_rng(config.seed, "untrimmed-sequence", index)
    performer = int(rng.choice(config.performers))
    setup, camera = int(rng.choice(config.setups)), int(rng.choice(config.cameras))
    name = sequence_name(index, camera)
    actions = plan_actions(config, rng)
    gaps = rng.integers(config.gap_frames[0], config.gap_frames[1] + 1, size=len(actions) + 1)
    lengths = rng.integers(config.action_frames[0], config.action_frames[1] + 1, size=len(actions))

    parts: list[np.ndarray] = []  # [2, t, 25, 3] world pieces
    labels: list[tuple[int, int, int]] = []
    frame = 0
    anchor = np.array([rng.normal(0, 0.1), 0.0, rng.normal(0, 0.1)])
    last_pose, last_yaw = None, 0.0
    for i, (action, length) in enumerate(zip(actions, lengths)):
        staged = stage_action(config.seed, (index, i), synthetic_class(action), performer, int(length))
        shift = anchor - staged.joints[0, 0, _SPINE_BASE] * np.array([1.0, 0.0, 1.0])
        joints = staged.joints + shift
        if not staged.two_people:
            joints[1] = 0.0
        first = joints[0, 0]
        gap = int(gaps[i])
        idle = np.zeros((2, gap, 25, 3))
        idle[0] = (_hold(first, rng, gap) if last_pose is None
                   else idle_gap(rng, last_pose, last_yaw, first, staged.yaw, gap))
        parts += [idle, joints]
        frame += gap
        labels.append((action, frame, frame + int(length)))
        frame += int(length)
        last_pose, last_yaw = joints[0, -1], staged.yaw
        anchor = last_pose[_SPINE_BASE] * np.array([1.0, 0.0, 1.0])
    tail = np.zeros((2, int(gaps[-1]), 25, 3))
    tail[0] = _hold(last_pose, rng, int(gaps[-1]))
    parts.append(tail)
    world = np.concatenate(parts, axis=1)

    present = np.any(world != 0, axis=(2, 3))  # [2, T]
    cam = camera_pose(setup, camera).world_to_camera(world)
    sensor = sensor_skeleton(keyed_rng(config.seed, "untrimmed-noise", index), cam)
    skeleton = np.where(present[:, :, None, None], sensor.joints, 0.0).astype(np.float32)
    return UntrimmedSequence(name=name, skeleton=skeleton, labels=labels, performer=performer,
                             setup=setup, camera=camera)


def format_pku_skeleton(skeleton: np.ndarray) -> str:
    """PKU-MMD skeleton text of float [2, T, 25, 3]: one row of 150 numbers per frame."""
    skeleton = np.asarray(skeleton)
    if skeleton.ndim != 4 or skeleton.shape[0] != 2 or skeleton.shape[2:] != (25, 3):
        raise ValueError(f"expected a skeleton [2, T, 25, 3], got shape {skeleton.shape}")
    rows = np.transpose(skeleton, (1, 0, 2, 3)).reshape(skeleton.shape[1], 150)
    buffer = io.StringIO()
    np.savetxt(buffer, rows, fmt="%.5f", delimiter=" ")
    return buffer.getvalue()


def format_pku_labels(labels: list[tuple[int, int, int]], confidence: int = 1) -> str:
    """PKU-MMD label text: ``action_id,start_frame,end_frame,confidence`` per action."""
    return "".join(f"{action},{start},{end},{confidence}\n" for action, start, end in labels)


@dataclass
class UntrimmedSummary:
    """What a run wrote: sequence names, frames and actions per sequence."""

    out: str
    sequences: list[str] = field(default_factory=list)
    frames: list[int] = field(default_factory=list)
    actions: list[int] = field(default_factory=list)


def write_sequence(out: PathLike, sequence: UntrimmedSequence) -> None:
    """Write ``skeleton/<name>.txt`` and ``label/<name>.txt`` under ``out``, each atomically."""
    out = Path(out)
    atomic_write_text(out / SKELETON_SUBDIR / f"{sequence.name}.txt", format_pku_skeleton(sequence.skeleton))
    atomic_write_text(out / LABEL_SUBDIR / f"{sequence.name}.txt", format_pku_labels(sequence.labels))


def generate_untrimmed(out: PathLike, config: UntrimmedConfig = UntrimmedConfig()) -> UntrimmedSummary:
    """Generate ``config.num_sequences`` sequences under ``out`` and a summary JSON beside them."""
    config.validate()
    summary = UntrimmedSummary(out=str(out))
    for index in range(config.num_sequences):
        sequence = render_sequence(config, index)
        write_sequence(out, sequence)
        summary.sequences.append(sequence.name)
        summary.frames.append(int(sequence.skeleton.shape[1]))
        summary.actions.append(len(sequence.labels))
        log.info("untrimmed %s: %d frames, %d actions (performer %d, setup %d, camera %d)", sequence.name,
                 sequence.skeleton.shape[1], len(sequence.labels), sequence.performer, sequence.setup,
                 sequence.camera)
    atomic_write_json(Path(out) / SUMMARY_FILE, {
        "seed": config.seed, "classes": [c.action for c in config.class_list()],
        "sequences": summary.sequences, "frames": summary.frames, "actions": summary.actions})
    return summary
