"""The synthetic action classes and the motion that performs each.

Every class keeps its real NTU RGB+D action number (official README,
shahroudy/NTURGB-D@ac2ebc8), so ``label = action - 1`` and the real class names apply.
Three kinds:

- ``motion``: one performer; classes differ by how the body moves.
- ``object``: one performer; drink water, make a phone call and brushing teeth share ONE
  motion generator (hand to the face) and differ only by the held object, which the
  renderer draws in RGB and depth but the skeleton never sees.
- ``interaction``: two performers facing each other.

A motion function takes (rng, body shapes, frame count) and returns a :class:`Performance`.
Wrist targets live in the torso frame (origin SpineShoulder, axes left/up/forward);
the right side has lateral sign -1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, Optional, Sequence

import numpy as np

from ..ntu.constants import NTU120_CLASS_NAMES
from .kinect_body import BodyShape, PoseControls, shoulder_offset
from .motion_timing import active_phase, bump, lerp, oscillation, smoothstep

ClassKind = Literal["motion", "object", "interaction"]
HeldObject = Literal["cup", "phone", "toothbrush"]

LEFT, RIGHT = 0, 1


@dataclass
class Performance:
    """What the performers do: one :class:`PoseControls` per body, and their spacing.

    Attributes:
        controls: one entry per body (1 or 2), each over T frames.
        separation: metres between the two bodies' base origins (0 for one body).
    """

    controls: list[PoseControls]
    separation: float = 0.0


MotionFn = Callable[[np.random.Generator, Sequence[BodyShape], int], Performance]


@dataclass(frozen=True)
class SyntheticClass:
    """One class of the synthetic set.

    Attributes:
        action: the real NTU action number (1-based); label = action - 1.
        kind: ``"motion"``, ``"object"`` or ``"interaction"``.
        motion: key of the motion generator in :data:`MOTIONS`.
        held_object: the object in the right hand (object classes only).
    """

    action: int
    kind: ClassKind
    motion: str
    held_object: Optional[HeldObject] = None

    @property
    def name(self) -> str:
        """The official NTU class name."""
        return NTU120_CLASS_NAMES[self.action - 1]

    @property
    def label(self) -> int:
        """0-based label, action - 1."""
        return self.action - 1

    @property
    def num_bodies(self) -> int:
        """2 for interactions, else 1."""
        return 2 if self.kind == "interaction" else 1


# --------------------------------------------------------------------------- helpers


def _rest_wrist(shape: BodyShape, side: int) -> np.ndarray:
    sign = 1.0 if side == LEFT else -1.0
    return shoulder_offset(shape, sign) + np.array([0.04 * sign, -0.96 * shape.arm_reach, 0.03])


def _set_arm(ctl: PoseControls, shape: BodyShape, side: int, target: np.ndarray,
             weight: np.ndarray, pole: Optional[np.ndarray] = None) -> None:
    """Blend one wrist from rest towards ``target`` [T, 3] (torso frame) by ``weight`` [T]."""
    ctl.wrist[side] = lerp(np.broadcast_to(_rest_wrist(shape, side), target.shape), target, weight)
    if pole is not None:
        ctl.elbow_pole[side] = lerp(ctl.elbow_pole[side], np.broadcast_to(pole, target.shape), weight)


def _amp(rng: np.random.Generator) -> float:
    return float(rng.uniform(0.8, 1.2))


def _idle_sway(rng: np.random.Generator, ctl: PoseControls) -> None:
    """Small natural sway of the whole body (shared by every class)."""
    t = ctl.root.shape[0]
    s = np.linspace(0, 1, t)
    ctl.root[:, 0] += 0.01 * np.sin(2 * np.pi * rng.uniform(0.3, 1.0) * s + rng.uniform(0, 6.3))
    ctl.lean[:, 1] += 0.015 * np.sin(2 * np.pi * rng.uniform(0.3, 1.0) * s + rng.uniform(0, 6.3))


def _face_offset(shape: BodyShape) -> np.ndarray:
    """float [3]: the mouth in the torso frame."""
    ln = shape.lengths
    return np.array([0.0, ln["neck"] + 0.55 * ln["head"], 0.09])


# --------------------------------------------------------------------------- single person


def _hand_waving(rng, shapes, t):
    shape, ctl = shapes[0], PoseControls.rest(shapes[0], t)
    s = active_phase(rng, t)
    env, a = bump(s, 0.2, 0.2), _amp(rng)
    raised = shoulder_offset(shape, -1) + np.array([-0.16, 0.30, 0.10]) * shape.height / 1.7
    target = np.tile(raised, (t, 1))
    target[:, 0] += 0.13 * a * oscillation(s, rng.uniform(2.5, 4.0))
    _set_arm(ctl, shape, RIGHT, target, env, np.array([-1.0, -0.6, 0.0]))
    return Performance([ctl])


def _kicking(rng, shapes, t):
    shape, ctl = shapes[0], PoseControls.rest(shapes[0], t)
    s = active_phase(rng, t, length=(0.45, 0.65))
    k, a = bump(s, 0.35, 0.45, 0.15, 0.85), _amp(rng)
    ctl.ankle[RIGHT, :, 2] += 0.50 * a * k
    ctl.ankle[RIGHT, :, 1] += 0.28 * a * k
    ctl.lean[:, 0] -= 0.18 * k
    ctl.root[:, 1] -= 0.03 * k
    for side, sign in ((LEFT, 1.0), (RIGHT, -1.0)):
        out = _rest_wrist(shape, side) + np.array([0.18 * sign, 0.12, 0.05])
        _set_arm(ctl, shape, side, np.tile(out, (t, 1)), 0.7 * k)
    return Performance([ctl])


def _sit_ramp(rng, shapes, t, reverse: bool):
    shape, ctl = shapes[0], PoseControls.rest(shapes[0], t)
    s = active_phase(rng, t, length=(0.5, 0.75))
    ramp = smoothstep(s)
    if reverse:
        ramp = 1 - ramp
    seat = rng.uniform(0.44, 0.50)
    drop = shape.hip_height - seat
    ctl.root[:, 1] -= drop * ramp
    ctl.root[:, 2] -= 0.22 * ramp
    ctl.lean[:, 0] += 0.55 * np.sin(np.pi * ramp) + 0.12 * ramp
    on_thigh = np.array([0.10, -0.42, 0.33]) * shape.height / 1.7
    for side, sign in ((LEFT, 1.0), (RIGHT, -1.0)):
        target = np.tile(on_thigh * np.array([sign, 1, 1]) + shoulder_offset(shape, sign) * [1, 0, 0], (t, 1))
        _set_arm(ctl, shape, side, target, ramp)
    return Performance([ctl])


def _sitting_down(rng, shapes, t):
    return _sit_ramp(rng, shapes, t, reverse=False)


def _standing_up(rng, shapes, t):
    return _sit_ramp(rng, shapes, t, reverse=True)


def _clapping(rng, shapes, t):
    shape, ctl = shapes[0], PoseControls.rest(shapes[0], t)
    s = active_phase(rng, t)
    env, a = bump(s, 0.15, 0.15), _amp(rng)
    gap = 0.035 + 0.11 * a * (0.5 + 0.5 * oscillation(s, rng.uniform(3.0, 5.0)))
    centre = np.array([0.0, -0.22, 0.33]) * shape.height / 1.7
    for side, sign in ((LEFT, 1.0), (RIGHT, -1.0)):
        target = np.tile(centre, (t, 1))
        target[:, 0] = sign * gap
        _set_arm(ctl, shape, side, target, env, np.array([sign * 1.0, -0.7, -0.2]))
    return Performance([ctl])


def _cheer_up(rng, shapes, t):
    shape, ctl = shapes[0], PoseControls.rest(shapes[0], t)
    s = active_phase(rng, t)
    env, a = bump(s, 0.2, 0.2), _amp(rng)
    pump = 0.07 * a * oscillation(s, rng.uniform(1.5, 3.0))
    for side, sign in ((LEFT, 1.0), (RIGHT, -1.0)):
        up = shoulder_offset(shape, sign) + np.array([0.13 * sign, 0.47, 0.06]) * shape.height / 1.7
        target = np.tile(up, (t, 1))
        target[:, 1] += pump
        _set_arm(ctl, shape, side, target, env, np.array([sign * 1.0, 0.0, 0.0]))
    ctl.head_pitch -= 0.15 * env
    return Performance([ctl])


def _jump_up(rng, shapes, t):
    shape, ctl = shapes[0], PoseControls.rest(shapes[0], t)
    s = active_phase(rng, t, length=(0.55, 0.75))
    a = _amp(rng)
    crouch = 0.13 * (bump(s, 0.4, 0.4, 0.0, 0.38) + bump(s, 0.4, 0.4, 0.62, 1.0))
    x = np.clip((s - 0.35) / 0.3, 0, 1)
    flight = 4 * x * (1 - x) * 0.26 * a
    ctl.root[:, 1] += flight - crouch
    ctl.ankle[:, :, 1] += flight
    ctl.lean[:, 0] += 2.2 * crouch
    for side, sign in ((LEFT, 1.0), (RIGHT, -1.0)):
        up = shoulder_offset(shape, sign) + np.array([0.10 * sign, 0.35, 0.20])
        _set_arm(ctl, shape, side, np.tile(up, (t, 1)), smoothstep(flight / max(flight.max(), 1e-6)))
    return Performance([ctl])


def _pointing(rng, shapes, t):
    shape, ctl = shapes[0], PoseControls.rest(shapes[0], t)
    s = active_phase(rng, t)
    env = bump(s, 0.25, 0.25)
    direction = np.array([rng.uniform(-0.05, 0.25), rng.uniform(0.0, 0.3), 1.0])
    direction /= np.linalg.norm(direction)
    target = shoulder_offset(shape, -1) + direction * 0.97 * shape.arm_reach
    _set_arm(ctl, shape, RIGHT, np.tile(target, (t, 1)), env, np.array([-0.5, -1.0, 0.0]))
    return Performance([ctl])


def _hand_to_face(rng, shapes, t):
    """Shared by drink water, phone call and brushing teeth: the object is the only cue."""
    shape, ctl = shapes[0], PoseControls.rest(shapes[0], t)
    s = active_phase(rng, t)
    env = bump(s, 0.25, 0.25)
    target = np.tile(_face_offset(shape) + np.array([-0.06, -0.09, 0.06]), (t, 1))
    jiggle = 0.015 * oscillation(s, rng.uniform(2.0, 4.0))
    target[:, 0] += jiggle
    target[:, 1] += 0.5 * jiggle
    _set_arm(ctl, shape, RIGHT, target, env, np.array([-0.7, -1.0, 0.0]))
    ctl.head_pitch -= 0.12 * env
    return Performance([ctl])


# --------------------------------------------------------------------------- two people


def _pair(shapes, t):
    return [PoseControls.rest(shapes[0], t), PoseControls.rest(shapes[1], t)]


def _handshaking(rng, shapes, t):
    ctls, sep = _pair(shapes, t), rng.uniform(0.66, 0.78)
    s = active_phase(rng, t)
    env = bump(s, 0.3, 0.3)
    shake = 0.035 * oscillation(s, rng.uniform(2.0, 4.0))
    for shape, ctl in zip(shapes, ctls):
        meet = np.tile([-0.05, -0.30, sep / 2], (t, 1))
        meet[:, 1] += shake
        _set_arm(ctl, shape, RIGHT, meet, env, np.array([-0.8, -1.0, 0.0]))
    return Performance(ctls, sep)


def _punching(rng, shapes, t):
    ctls, sep = _pair(shapes, t), rng.uniform(0.8, 0.95)
    s = active_phase(rng, t, length=(0.4, 0.6))
    hit = bump(s, 0.3, 0.5, 0.1, 0.9)
    attacker, victim = ctls
    target = np.tile([0.05, rng.uniform(-0.05, 0.12), sep - 0.12], (t, 1))
    _set_arm(attacker, shapes[0], RIGHT, target, hit, np.array([-1.0, -0.3, 0.0]))
    guard = np.tile(_rest_wrist(shapes[0], LEFT) + np.array([-0.05, 0.35, 0.2]), (t, 1))
    _set_arm(attacker, shapes[0], LEFT, guard, bump(s, 0.2, 0.2))
    attacker.lean[:, 0] += 0.15 * hit
    attacker.lean[:, 2] += 0.35 * hit
    flinch = np.interp(np.arange(t), np.arange(t) + 2, hit)
    victim.lean[:, 0] -= 0.25 * flinch
    victim.root[:, 2] -= 0.06 * flinch
    return Performance(ctls, sep)


def _pushing(rng, shapes, t):
    ctls, sep = _pair(shapes, t), rng.uniform(0.75, 0.9)
    s = active_phase(rng, t, length=(0.5, 0.7))
    push = bump(s, 0.3, 0.3, 0.0, 0.7)
    pusher, pushed = ctls
    for side, sign in ((LEFT, 1.0), (RIGHT, -1.0)):
        chest = np.tile([0.14 * sign, -0.24, sep - 0.14], (t, 1))
        _set_arm(pusher, shapes[0], side, chest, push, np.array([sign * 0.8, -1.0, 0.0]))
    pusher.lean[:, 0] += 0.2 * push
    back = 0.3 * smoothstep(np.clip((s - 0.25) / 0.5, 0, 1))
    pushed.root[:, 2] -= back
    pushed.ankle[:, :, 2] -= back[None, :]
    pushed.lean[:, 0] -= 0.2 * bump(s, 0.3, 0.3, 0.2, 0.9)
    return Performance(ctls, sep)


def _hugging(rng, shapes, t):
    ctls, sep = _pair(shapes, t), rng.uniform(1.0, 1.2)
    s = active_phase(rng, t, length=(0.6, 0.8))
    close = smoothstep(s / 0.4) * (1 - smoothstep((s - 0.8) / 0.2))
    step = (sep - 0.36) / 2 * close
    arms = bump(s, 0.35, 0.25, 0.1, 1.0)
    for i, (shape, ctl) in enumerate(zip(shapes, ctls)):
        ctl.root[:, 2] += step
        ctl.ankle[:, :, 2] += step[None, :]
        height = -0.08 if i == 0 else -0.34
        for side, sign in ((LEFT, 1.0), (RIGHT, -1.0)):
            wrap = np.tile([0.06 * sign, height, 0.0], (t, 1))
            wrap[:, 2] = sep - 2 * step + 0.08
            _set_arm(ctl, shape, side, wrap, arms, np.array([sign * 1.0, -0.2, -0.3]))
        ctl.lean[:, 0] += 0.12 * arms
    return Performance(ctls, sep)


MOTIONS: dict[str, MotionFn] = {
    "hand_waving": _hand_waving, "kicking": _kicking, "sitting_down": _sitting_down,
    "standing_up": _standing_up, "clapping": _clapping, "cheer_up": _cheer_up,
    "jump_up": _jump_up, "pointing": _pointing, "hand_to_face": _hand_to_face,
    "handshaking": _handshaking, "punching": _punching, "pushing": _pushing, "hugging": _hugging,
}
"""Motion key -> generator."""

SYNTHETIC_CLASSES: tuple[SyntheticClass, ...] = (
    SyntheticClass(1, "object", "hand_to_face", "cup"),
    SyntheticClass(3, "object", "hand_to_face", "toothbrush"),
    SyntheticClass(8, "motion", "sitting_down"),
    SyntheticClass(9, "motion", "standing_up"),
    SyntheticClass(10, "motion", "clapping"),
    SyntheticClass(22, "motion", "cheer_up"),
    SyntheticClass(23, "motion", "hand_waving"),
    SyntheticClass(24, "motion", "kicking"),
    SyntheticClass(27, "motion", "jump_up"),
    SyntheticClass(28, "object", "hand_to_face", "phone"),
    SyntheticClass(31, "motion", "pointing"),
    SyntheticClass(50, "interaction", "punching"),
    SyntheticClass(52, "interaction", "pushing"),
    SyntheticClass(55, "interaction", "hugging"),
    SyntheticClass(58, "interaction", "handshaking"),
)
"""The 15 classes, by NTU action number."""


def synthetic_classes() -> tuple[SyntheticClass, ...]:
    """The classes the synthetic generator can produce, sorted by action number."""
    return SYNTHETIC_CLASSES


def synthetic_class(action: int) -> SyntheticClass:
    """The class record for an NTU action number; ValueError if it is not synthesised."""
    for cls in SYNTHETIC_CLASSES:
        if cls.action == action:
            return cls
    raise ValueError(f"action A{action:03d} is not one of the synthetic classes "
                     f"{[c.action for c in SYNTHETIC_CLASSES]}")


def perform(cls: SyntheticClass, rng: np.random.Generator, shapes: Sequence[BodyShape],
            num_frames: int) -> Performance:
    """Run the class's motion, then add the idle sway every body has.

    Args:
        cls: the class.
        rng: the performance's generator (the object classes consume it identically).
        shapes: one shape per body (``cls.num_bodies`` of them).
        num_frames: T.
    """
    if len(shapes) != cls.num_bodies:
        raise ValueError(f"{cls.name!r} needs {cls.num_bodies} bodies, got {len(shapes)}")
    performance = MOTIONS[cls.motion](rng, shapes, num_frames)
    for ctl in performance.controls:
        _idle_sway(rng, ctl)
    return performance
