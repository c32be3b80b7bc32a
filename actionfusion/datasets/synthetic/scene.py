"""One recorded event: who performs, where they stand, and their joints in the world.

An *event* is one performance (setup, performer, replication, action); NTU's three
cameras record it at the same time, so the three samples ``C001``-``C003`` of an event share
it and differ only by viewpoint and sensor noise. Replication 1 faces to one side of the
front camera and replication 2 to the other, as NTU's performers turned towards the left
and right cameras in their two replications (official README).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ntu.names import SampleName
from .action_library import SyntheticClass, perform, synthetic_class
from .body_volumes import Appearance
from .kinect_body import BodyShape, solve_pose
from .seeding import keyed_rng

WORLD_UP = np.array([0.0, 1.0, 0.0])


def performer_identity(seed: int, performer: int, role: str = "performer") -> tuple[BodyShape, Appearance]:
    """The same body and clothes for a performer in every sample (``role`` "partner" for the second person)."""
    rng = keyed_rng(seed, role, performer)
    return BodyShape.sample(rng), Appearance.sample(rng)


def base_to_world(facing_yaw: float) -> np.ndarray:
    """float [3, 3]: columns are the base frame's (left, up, forward) in world coordinates.

    ``facing_yaw`` (radians) 0 faces camera 2 (forward = -z); in general forward is
    ``(-sin yaw, 0, -cos yaw)``. A base-frame point p lands at ``position + R @ p``.
    """
    fwd = np.array([-np.sin(facing_yaw), 0.0, -np.cos(facing_yaw)])
    left = np.cross(WORLD_UP, fwd)
    return np.stack([left, WORLD_UP, fwd], axis=1)


@dataclass
class Event:
    """A staged performance in world coordinates.

    Attributes:
        cls: the class performed.
        shapes, appearances: one per body.
        joints: float [B, T, 25, 3] true (noise-free) world joints, metres.
        forward: float [B, T, 3] each torso's forward axis, world.
        lean: float [B, T, 3] torso angles (forward, side, twist), radians.
    """

    cls: SyntheticClass
    shapes: list[BodyShape]
    appearances: list[Appearance]
    joints: np.ndarray
    forward: np.ndarray
    lean: np.ndarray

    @property
    def num_frames(self) -> int:
        """T."""
        return int(self.joints.shape[1])


def stage_event(seed: int, sample: SampleName, frame_range: tuple[int, int]) -> Event:
    """Build the event a sample belongs to (independent of its camera).

    Args:
        seed: the dataset seed.
        sample: any of the event's samples (its camera is ignored).
        frame_range: (min, max) frame count, inclusive.
    """
    cls = synthetic_class(sample.action)
    rng = keyed_rng(seed, "event", sample.setup, sample.performer, sample.replication, sample.action)
    num_frames = int(rng.integers(frame_range[0], frame_range[1] + 1))
    identities = [performer_identity(seed, sample.performer)]
    if cls.num_bodies == 2:
        identities.append(performer_identity(seed, sample.performer, "partner"))
    shapes = [s for s, _ in identities]
    performance = perform(cls, rng, shapes, num_frames)

    side = -1.0 if sample.replication % 2 == 1 else 1.0
    centre = np.array([rng.normal(0, 0.12), 0.0, rng.normal(0, 0.12)])
    if cls.num_bodies == 1:
        placements = [(centre, np.deg2rad(side * rng.uniform(15, 35)))]
    else:
        axis_yaw = np.deg2rad(side * rng.uniform(5, 25))
        axis = np.array([np.cos(axis_yaw), 0.0, -np.sin(axis_yaw)])
        half = performance.separation / 2
        face_a = np.arctan2(-axis[0], -axis[2])  # forward(yaw) = (-sin, 0, -cos) = +axis
        placements = [(centre - half * axis, face_a), (centre + half * axis, face_a + np.pi)]

    joints, forward, lean = [], [], []
    for shape, ctl, (position, yaw) in zip(shapes, performance.controls, placements):
        posed = solve_pose(shape, ctl)
        rot = base_to_world(yaw)
        joints.append(posed.joints @ rot.T + position)
        forward.append(posed.forward @ rot.T)
        lean.append(posed.lean)
    return Event(cls=cls, shapes=shapes, appearances=[a for _, a in identities],
                 joints=np.stack(joints), forward=np.stack(forward), lean=np.stack(lean))
