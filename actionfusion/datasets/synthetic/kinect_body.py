"""An articulated 25-joint Kinect v2 body: per-performer proportions and pose solving.

Coordinates here are the body's *base frame*, metres: axes (left, up, forward) of the
performer, origin on the floor below the rest pelvis. ``left`` is the performer's own
left. The base frame is a right-handed frame (left x up = forward).

Segment lengths are fractions of standing height after the anthropometric table of
Winter, *Biomechanics and Motor Control of Human Movement* (4th ed., Fig. 4.1), adjusted
to where the Kinect v2 places its joints (SpineBase above the hip joints, Hand at the palm).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ntu.constants import JOINT_NAMES, NUM_JOINTS

J = {name: i for i, name in enumerate(JOINT_NAMES)}
"""Joint name -> 0-based Kinect v2 index."""

LEAF_JOINTS: tuple[int, ...] = (
    J["Head"], J["FootLeft"], J["FootRight"],
    J["HandTipLeft"], J["ThumbLeft"], J["HandTipRight"], J["ThumbRight"],
)
"""Joints with no child bone: the real files give them orientation 0 0 0 0."""

ORIENTATION_CHILD: dict[int, int] = {
    J["SpineBase"]: J["SpineMid"], J["SpineMid"]: J["SpineShoulder"], J["Neck"]: J["Head"],
    J["ShoulderLeft"]: J["ElbowLeft"], J["ElbowLeft"]: J["WristLeft"],
    J["WristLeft"]: J["HandLeft"], J["HandLeft"]: J["HandTipLeft"],
    J["ShoulderRight"]: J["ElbowRight"], J["ElbowRight"]: J["WristRight"],
    J["WristRight"]: J["HandRight"], J["HandRight"]: J["HandTipRight"],
    J["HipLeft"]: J["KneeLeft"], J["KneeLeft"]: J["AnkleLeft"], J["AnkleLeft"]: J["FootLeft"],
    J["HipRight"]: J["KneeRight"], J["KneeRight"]: J["AnkleRight"],
    J["AnkleRight"]: J["FootRight"], J["SpineShoulder"]: J["Neck"],
}
"""The child whose bone gives each non-leaf joint's orientation (its local Y axis)."""

# Fractions of standing height (Winter, Fig. 4.1, adapted to Kinect joint placement).
_FRACTIONS = {
    "pelvis": 0.545, "spine_mid": 0.105, "spine_shoulder": 0.165, "neck": 0.045, "head": 0.075,
    "shoulder_half": 0.105, "shoulder_drop": 0.015, "hip_half": 0.052, "hip_drop": 0.045,
    "upper_arm": 0.172, "forearm": 0.146, "hand": 0.045, "hand_tip": 0.040,
    "thigh": 0.240, "shank": 0.236, "ankle": 0.039, "foot": 0.085,
}


@dataclass(frozen=True)
class BodyShape:
    """One performer's skeleton proportions (metres) and body-volume girth factor."""

    height: float
    lengths: dict[str, float]
    girth: float

    @classmethod
    def sample(cls, rng: np.random.Generator) -> "BodyShape":
        """Draw a performer: height ~ N(1.70, 0.08) m, per-segment scale ~ N(1, 0.04)."""
        height = float(np.clip(rng.normal(1.70, 0.08), 1.50, 1.95))
        limb = {"arm": rng.normal(1, 0.04), "leg": rng.normal(1, 0.04),
                "torso": rng.normal(1, 0.04), "width": rng.normal(1, 0.06)}
        group = {"upper_arm": "arm", "forearm": "arm", "hand": "arm", "hand_tip": "arm",
                 "thigh": "leg", "shank": "leg", "spine_mid": "torso", "spine_shoulder": "torso",
                 "neck": "torso", "shoulder_half": "width", "hip_half": "width"}
        lengths = {k: height * f * float(limb[group[k]] if k in group else 1.0)
                   for k, f in _FRACTIONS.items()}
        # Keep the standing pelvis height consistent with the legs.
        lengths["pelvis"] = lengths["thigh"] + lengths["shank"] + lengths["ankle"] + lengths["hip_drop"]
        return cls(height=height, lengths=lengths, girth=float(np.clip(rng.normal(1, 0.08), 0.8, 1.25)))

    @property
    def arm_reach(self) -> float:
        """Shoulder-to-wrist length, metres."""
        return self.lengths["upper_arm"] + self.lengths["forearm"]

    @property
    def hip_height(self) -> float:
        """Standing height of the hip joints above the floor, metres."""
        return self.lengths["pelvis"] - self.lengths["hip_drop"]


@dataclass
class PoseControls:
    """Per-frame drivers of one body, in the base frame (arrays over T frames).

    Attributes:
        root: float [T, 3] SpineBase offset from its rest position (left, up, forward).
        lean: float [T, 3] torso angles, radians: forward lean, side lean (to the left), twist (to the left).
        head_pitch: float [T] radians, positive nods forward.
        wrist: float [2, T, 3] wrist targets (left, right) in the torso frame (origin SpineShoulder).
        elbow_pole: float [2, T, 3] directions the elbows bend towards, torso frame.
        ankle: float [2, T, 3] ankle targets (left, right), base frame.
        knee_pole: float [2, T, 3] directions the knees bend towards, base frame.
    """

    root: np.ndarray
    lean: np.ndarray
    head_pitch: np.ndarray
    wrist: np.ndarray
    elbow_pole: np.ndarray
    ankle: np.ndarray
    knee_pole: np.ndarray

    @classmethod
    def rest(cls, shape: BodyShape, num_frames: int) -> "PoseControls":
        """Standing, arms hanging, feet under the hips."""
        t = num_frames
        ln = shape.lengths
        wrist = np.zeros((2, t, 3))
        for side, sign in ((0, 1.0), (1, -1.0)):
            wrist[side] = shoulder_offset(shape, sign) + np.array(
                [0.04 * sign, -0.96 * shape.arm_reach, 0.03])
        ankle = np.zeros((2, t, 3))
        ankle[0, :, 0], ankle[1, :, 0] = ln["hip_half"] * 1.1, -ln["hip_half"] * 1.1
        ankle[:, :, 1] = ln["ankle"]
        elbow_pole = np.broadcast_to(np.array([0.0, -0.3, -1.0]), (2, t, 3)).copy()
        elbow_pole[0, :, 0], elbow_pole[1, :, 0] = 0.3, -0.3
        knee_pole = np.broadcast_to(np.array([0.0, 0.0, 1.0]), (2, t, 3)).copy()
        knee_pole[0, :, 0], knee_pole[1, :, 0] = 0.15, -0.15
        return cls(root=np.zeros((t, 3)), lean=np.zeros((t, 3)), head_pitch=np.zeros(t),
                   wrist=wrist, elbow_pole=elbow_pole, ankle=ankle, knee_pole=knee_pole)


def shoulder_offset(shape: BodyShape, sign: float) -> np.ndarray:
    """float [3]: a shoulder in the torso frame; ``sign`` +1 left, -1 right."""
    ln = shape.lengths
    return np.array([sign * ln["shoulder_half"], -ln["shoulder_drop"], 0.0])


def torso_rotation(lean: np.ndarray) -> np.ndarray:
    """float [T, 3, 3]: torso frame -> base frame, from [T, 3] (forward, side, twist) angles."""
    fwd, side, twist = lean[:, 0], lean[:, 1], lean[:, 2]
    t = lean.shape[0]
    # Base axes: x = left, y = up, z = forward. Forward lean rotates up towards forward
    # (about +x), side lean rotates up towards left (about -z), twist about +y.
    rx = _rot(0, fwd, t)
    rz = _rot(2, -side, t)
    ry = _rot(1, twist, t)
    return ry @ rz @ rx


def _rot(axis: int, angle: np.ndarray, t: int) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    r = np.zeros((t, 3, 3))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    r[:, axis, axis] = 1
    r[:, i, i], r[:, j, j] = c, c
    r[:, i, j], r[:, j, i] = -s, s
    return r


def _normalize(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def two_bone_ik(root: np.ndarray, target: np.ndarray, len_a: float, len_b: float,
                pole: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Solve a two-segment limb analytically.

    Args:
        root: float [T, 3] shoulder or hip.
        target: float [T, 3] wanted wrist or ankle (clamped to the reachable shell).
        len_a, len_b: upper and lower segment lengths.
        pole: float [T, 3] direction the middle joint bends towards.
    Returns:
        (middle [T, 3], end [T, 3]): elbow/knee and the reached wrist/ankle.
    """
    offset = target - root
    dist = np.linalg.norm(offset, axis=-1, keepdims=True)
    direction = _normalize(offset)
    reach = np.clip(dist, abs(len_a - len_b) + 1e-3, (len_a + len_b) * 0.999)
    cos_a = (len_a**2 + reach**2 - len_b**2) / (2 * len_a * reach)
    sin_a = np.sqrt(np.clip(1 - cos_a**2, 0, None))
    bend = pole - np.sum(pole * direction, axis=-1, keepdims=True) * direction
    # A pole parallel to the limb gives no plane: fall back to any perpendicular.
    fallback = np.cross(direction, np.array([1.0, 0.0, 0.0]))
    degenerate = np.linalg.norm(bend, axis=-1, keepdims=True) < 1e-6
    bend = _normalize(np.where(degenerate, fallback, bend))
    middle = root + len_a * (cos_a * direction + sin_a * bend)
    end = root + reach * direction
    return middle, end


@dataclass
class PosedBody:
    """A solved pose.

    Attributes:
        joints: float [T, 25, 3] base-frame joint positions, Kinect v2 order.
        forward: float [T, 3] torso forward axis, base frame (for joint orientations).
        lean: float [T, 3] the torso angles that produced it.
    """

    joints: np.ndarray
    forward: np.ndarray
    lean: np.ndarray


def solve_pose(shape: BodyShape, ctl: PoseControls) -> PosedBody:
    """Forward/inverse kinematics: controls -> 25 joints.

    Args:
        shape: the performer.
        ctl: per-frame drivers (T frames).
    Returns:
        The posed body with joints [T, 25, 3] in the base frame.
    """
    ln = shape.lengths
    t = ctl.root.shape[0]
    out = np.zeros((t, NUM_JOINTS, 3))
    rot = torso_rotation(ctl.lean)
    half = torso_rotation(ctl.lean * 0.5)
    pelvis_rot = torso_rotation(ctl.lean * np.array([0.0, 0.3, 0.4]))
    base = np.array([0.0, ln["pelvis"], 0.0]) + ctl.root
    out[:, J["SpineBase"]] = base
    out[:, J["SpineMid"]] = base + half @ np.array([0.0, ln["spine_mid"], 0.01])
    shoulder_centre = out[:, J["SpineMid"]] + rot @ np.array([0.0, ln["spine_shoulder"], -0.01])
    out[:, J["SpineShoulder"]] = shoulder_centre
    out[:, J["Neck"]] = shoulder_centre + rot @ np.array([0.0, ln["neck"], 0.01])
    head_rot = rot @ _rot(0, ctl.head_pitch, t)
    out[:, J["Head"]] = out[:, J["Neck"]] + head_rot @ np.array([0.0, ln["head"], 0.015])

    for side, sign, names in ((0, 1.0, ("ShoulderLeft", "ElbowLeft", "WristLeft", "HandLeft",
                                         "HandTipLeft", "ThumbLeft")),
                              (1, -1.0, ("ShoulderRight", "ElbowRight", "WristRight", "HandRight",
                                         "HandTipRight", "ThumbRight"))):
        shoulder = shoulder_centre + rot @ shoulder_offset(shape, sign)
        target = shoulder_centre + np.einsum("tij,tj->ti", rot, ctl.wrist[side])
        pole = np.einsum("tij,tj->ti", rot, ctl.elbow_pole[side])
        elbow, wrist = two_bone_ik(shoulder, target, ln["upper_arm"], ln["forearm"], pole)
        fore = _normalize(wrist - elbow)
        palm_normal = _normalize(np.cross(fore, _normalize(pole)))
        hand = wrist + fore * ln["hand"]
        s, e, w, h, tip, thumb = (J[n] for n in names)
        out[:, s], out[:, e], out[:, w], out[:, h] = shoulder, elbow, wrist, hand
        out[:, tip] = hand + _normalize(fore - 0.25 * palm_normal * sign) * ln["hand_tip"]
        out[:, thumb] = wrist + fore * ln["hand"] * 0.6 + palm_normal * sign * 0.035 * shape.height / 1.7

    for side, sign, names in ((0, 1.0, ("HipLeft", "KneeLeft", "AnkleLeft", "FootLeft")),
                              (1, -1.0, ("HipRight", "KneeRight", "AnkleRight", "FootRight"))):
        hip = base + pelvis_rot @ np.array([sign * ln["hip_half"], -ln["hip_drop"], 0.0])
        knee, ankle = two_bone_ik(hip, ctl.ankle[side], ln["thigh"], ln["shank"], ctl.knee_pole[side])
        shank = _normalize(ankle - knee)
        toe_dir = _normalize(np.array([0.0, 0.0, 1.0]) - 0.3 * shank)
        h, k, a, f = (J[n] for n in names)
        out[:, h], out[:, k], out[:, a] = hip, knee, ankle
        out[:, f] = ankle + toe_dir * ln["foot"] - np.array([0.0, ln["ankle"] * 0.6, 0.0])
    forward = rot @ np.array([0.0, 0.0, 1.0])
    return PosedBody(joints=out, forward=forward, lean=ctl.lean)


def joint_frames(joints: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Bone frames for the joint orientations.

    Args:
        joints: float [T, 25, 3] joint positions (any frame).
        forward: float [T, 3] the torso forward axis in the same frame.
    Returns:
        float [T, 25, 3, 3] rotation matrices whose columns are the joint's X, Y, Z axes
        (Y along the bone to the child, Z near the body's forward axis);
        all-zero matrices at the leaf joints, which carry no orientation.
    """
    t = joints.shape[0]
    frames = np.zeros((t, NUM_JOINTS, 3, 3))
    for joint, child in ORIENTATION_CHILD.items():
        y = _normalize(joints[:, child] - joints[:, joint])
        z = forward - np.sum(forward * y, axis=-1, keepdims=True) * y
        z = _normalize(np.where(np.linalg.norm(z, axis=-1, keepdims=True) < 1e-6,
                                np.cross(y, np.array([1.0, 0.0, 0.0])), z))
        x = np.cross(y, z)
        frames[:, joint] = np.stack([x, y, z], axis=-1)
    return frames
