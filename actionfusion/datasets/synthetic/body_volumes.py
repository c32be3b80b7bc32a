"""What the cameras see of a body: limb volumes, clothing colours and held objects.

A body is drawn as capsules around its bones (torso, limbs, neck), a head sphere with a
hair cap, and, for the object classes, the object in the right hand: a cup (a flat-capped
cylinder), a phone (a flat box beside the ear) or a toothbrush (a thin stick at the mouth),
each with its own shape and colour. Radii are metres for an average (girth 1) performer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .kinect_body import J
from .rasterize import Box, Capsule

PARTS_PER_BODY = 5
"""Palette slots per body: skin, shirt, trousers, shoes, hair."""
SKIN, SHIRT, TROUSERS, SHOES, HAIR = range(PARTS_PER_BODY)

OBJECT_MATERIAL = {"cup": 11, "phone": 12, "toothbrush": 13}
"""Palette index of each held object (bodies use 1..10)."""
OBJECT_COLOUR = {"cup": (225, 60, 40), "phone": (25, 28, 34), "toothbrush": (40, 200, 215)}
"""RGB colour of each held object: a red cup, a black phone, a cyan toothbrush."""

_SKIN_TONES = np.array([(241, 194, 160), (224, 172, 125), (198, 134, 90), (141, 85, 54), (95, 60, 40)])
_HAIR = np.array([(30, 25, 20), (70, 45, 25), (120, 90, 50), (20, 20, 20), (160, 150, 140)])
_SHOES = np.array([(20, 20, 20), (230, 230, 230), (90, 60, 40), (40, 40, 80)])


@dataclass(frozen=True)
class Appearance:
    """A performer's colours (uint8 RGB each) and sleeve length."""

    skin: tuple[int, int, int]
    shirt: tuple[int, int, int]
    trousers: tuple[int, int, int]
    shoes: tuple[int, int, int]
    hair: tuple[int, int, int]
    long_sleeves: bool

    @classmethod
    def sample(cls, rng: np.random.Generator) -> "Appearance":
        """Random clothing: saturated shirt colours, darker trousers."""
        def colour(lo: float, hi: float, sat: float) -> tuple[int, int, int]:
            base = rng.uniform(lo, hi)
            tint = rng.uniform(-sat, sat, 3)
            return tuple(int(v) for v in np.clip(base + tint, 0, 255))

        pick = lambda table: tuple(int(v) for v in table[rng.integers(len(table))])  # noqa: E731
        return cls(skin=pick(_SKIN_TONES), shirt=colour(60, 200, 90), trousers=colour(25, 110, 35),
                   shoes=pick(_SHOES), hair=pick(_HAIR), long_sleeves=bool(rng.random() < 0.5))

    def colours(self) -> np.ndarray:
        """uint8 [5, 3] in the slot order skin, shirt, trousers, shoes, hair."""
        return np.array([self.skin, self.shirt, self.trousers, self.shoes, self.hair], np.uint8)


def material_of(body: int, part: int) -> int:
    """Palette index of ``part`` of body ``body`` (0 or 1)."""
    return 1 + body * PARTS_PER_BODY + part


_LIMBS = (
    # (joint a, joint b, radius m, part)
    ("SpineBase", "SpineShoulder", 0.115, SHIRT),
    ("ShoulderLeft", "ShoulderRight", 0.060, SHIRT),
    ("ShoulderLeft", "HipLeft", 0.072, SHIRT),
    ("ShoulderRight", "HipRight", 0.072, SHIRT),
    ("HipLeft", "HipRight", 0.085, TROUSERS),
    ("SpineShoulder", "Head", 0.048, SKIN),
    ("ShoulderLeft", "ElbowLeft", 0.046, SHIRT),
    ("ShoulderRight", "ElbowRight", 0.046, SHIRT),
    ("ElbowLeft", "WristLeft", 0.036, None),
    ("ElbowRight", "WristRight", 0.036, None),
    ("WristLeft", "HandTipLeft", 0.030, SKIN),
    ("WristRight", "HandTipRight", 0.030, SKIN),
    ("HipLeft", "KneeLeft", 0.070, TROUSERS),
    ("HipRight", "KneeRight", 0.070, TROUSERS),
    ("KneeLeft", "AnkleLeft", 0.050, TROUSERS),
    ("KneeRight", "AnkleRight", 0.050, TROUSERS),
    ("AnkleLeft", "FootLeft", 0.042, SHOES),
    ("AnkleRight", "FootRight", 0.042, SHOES),
)
_LIMB_INDEX = np.array([(J[a], J[b]) for a, b, _, _ in _LIMBS])


def body_primitives(joints: np.ndarray, up: np.ndarray, forward: np.ndarray, body: int,
                    girth: float, appearance: Appearance) -> list:
    """The volumes of one body in one frame.

    Args:
        joints: float [25, 3] true joint positions, camera space.
        up: float [3] world up in camera space.
        forward: float [3] the body's torso forward axis in camera space.
        body: 0 or 1 (selects the palette slots).
        girth: the performer's girth factor.
        appearance: clothing (decides forearm material).
    Returns:
        A list of :class:`Capsule` (head sphere and hair cap included).
    """
    prims = []
    ends = joints[_LIMB_INDEX]  # [L, 2, 3]
    forearm_part = SHIRT if appearance.long_sleeves else SKIN
    for (a, b, radius, part), (p0, p1) in zip(_LIMBS, ends):
        part = forearm_part if part is None else part
        prims.append(Capsule(p0, p1, radius * girth, material_of(body, part)))
    head = joints[J["Head"]]
    prims.append(Capsule(head, head, 0.098, material_of(body, SKIN)))
    hair = head + 0.025 * up - 0.03 * forward
    prims.append(Capsule(hair, hair, 0.097, material_of(body, HAIR)))
    return prims


def held_object_primitive(kind: Optional[str], joints: np.ndarray, up: np.ndarray,
                          forward: np.ndarray):
    """The object in the right hand, or None.

    Args:
        kind: ``"cup"``, ``"phone"``, ``"toothbrush"`` or None.
        joints: float [25, 3] true joints, camera space.
        up, forward: float [3] world up and the body's forward axis, camera space.
    """
    if kind is None:
        return None
    hand = joints[J["HandRight"]]
    side = np.cross(up, forward)  # the body's left
    side /= max(np.linalg.norm(side), 1e-6)
    front = np.cross(side, up)
    if kind == "cup":
        # Held in front of the palm, upright: in front of the mouth when drinking.
        centre = hand + 0.07 * front + 0.01 * up
        return Capsule(centre - 0.065 * up, centre + 0.065 * up, 0.045, OBJECT_MATERIAL[kind], flat_caps=True)
    if kind == "toothbrush":
        # From the mouth through the fist, the handle sticking out beyond it.
        mouth = joints[J["Head"]] - 0.06 * up + 0.10 * front
        aim = (hand - mouth) / max(np.linalg.norm(hand - mouth), 1e-6)
        return Capsule(mouth, hand + 0.16 * aim, 0.015, OBJECT_MATERIAL[kind])
    if kind == "phone":
        # Upright against the right side of the head, its face turned half to the front.
        centre = hand + 0.08 * up - 0.05 * side + 0.02 * front
        width_axis = (front - side) / np.sqrt(2.0)
        thin_axis = np.cross(up, width_axis)
        return Box(centre, np.stack([up, width_axis, thin_axis]), np.array([0.078, 0.038, 0.009]),
                   OBJECT_MATERIAL[kind])
    raise ValueError(f"unknown held object {kind!r}")


def palette(appearances: list[Appearance]) -> np.ndarray:
    """uint8 [16, 3]: material index -> RGB (0 background, 1-10 bodies, 11-13 objects)."""
    table = np.zeros((16, 3), np.uint8)
    for body, app in enumerate(appearances):
        table[1 + body * PARTS_PER_BODY: 1 + (body + 1) * PARTS_PER_BODY] = app.colours()
    for kind, index in OBJECT_MATERIAL.items():
        table[index] = OBJECT_COLOUR[kind]
    return table
