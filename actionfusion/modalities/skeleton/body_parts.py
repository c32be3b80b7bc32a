"""Body-part partitions of the joint layouts, for part-aware masking (SkeletonMAE).

- ``"coco17"``: SkeletonMAE's partition (Yan et al., ICCV 2023, Fig. 2 (d)): head 5 (nose, eyes,
  ears), torso 4 (shoulders, hips), and 2 joints for each arm (elbow, wrist) and leg (knee, ankle).
- ``"ntu25"``: the same six parts on Kinect v2 joints, with the shoulders and hips in the torso as
  in the COCO partition. Merging head and torso gives the five part groups (torso, two arms, two
  legs) of the NTU RGB+D paper's part-aware LSTM (Shahroudy et al., CVPR 2016). The sizes are
  head 2, torso 7, arms 5 each (elbow, wrist, hand, hand tip, thumb), legs 3 each (knee, ankle, foot).
- ``"blazepose33"`` (reconstructed, by joint names, the COCO rule): head 11 (nose, eyes, ears, mouth
  corners), torso 4 (shoulders, hips), arms 5 each (elbow, wrist, pinky, index, thumb), legs 4 each
  (knee, ankle, heel, foot index).
- ``"nw_ucla20"`` (reconstructed, the NTU rule on Kinect v1 names): head 1 (Head; v1 has no Neck),
  torso 7 (HipCenter, Spine, ShoulderCenter, shoulders, hips), arms 3 each (elbow, wrist, hand), legs
  3 each (knee, ankle, foot).

Every joint of a layout belongs to exactly one part (checked at import).
"""

from __future__ import annotations

from typing import Dict, Tuple

from .layouts import get_layout

BodyParts = Tuple[Tuple[str, Tuple[int, ...]], ...]
"""(part name, 0-based joint ids) pairs, in a fixed order."""

_PART_JOINT_NAMES: Dict[str, Tuple[Tuple[str, Tuple[str, ...]], ...]] = {
    "coco17": (
        ("head", ("nose", "left_eye", "right_eye", "left_ear", "right_ear")),
        ("torso", ("left_shoulder", "right_shoulder", "left_hip", "right_hip")),
        ("left_arm", ("left_elbow", "left_wrist")),
        ("right_arm", ("right_elbow", "right_wrist")),
        ("left_leg", ("left_knee", "left_ankle")),
        ("right_leg", ("right_knee", "right_ankle")),
    ),
    "ntu25": (
        ("head", ("Neck", "Head")),
        ("torso", ("SpineBase", "SpineMid", "SpineShoulder", "ShoulderLeft", "ShoulderRight", "HipLeft",
                   "HipRight")),
        ("left_arm", ("ElbowLeft", "WristLeft", "HandLeft", "HandTipLeft", "ThumbLeft")),
        ("right_arm", ("ElbowRight", "WristRight", "HandRight", "HandTipRight", "ThumbRight")),
        ("left_leg", ("KneeLeft", "AnkleLeft", "FootLeft")),
        ("right_leg", ("KneeRight", "AnkleRight", "FootRight")),
    ),
    "blazepose33": (
        ("head", ("nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
                  "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right")),
        ("torso", ("left_shoulder", "right_shoulder", "left_hip", "right_hip")),
        ("left_arm", ("left_elbow", "left_wrist", "left_pinky", "left_index", "left_thumb")),
        ("right_arm", ("right_elbow", "right_wrist", "right_pinky", "right_index", "right_thumb")),
        ("left_leg", ("left_knee", "left_ankle", "left_heel", "left_foot_index")),
        ("right_leg", ("right_knee", "right_ankle", "right_heel", "right_foot_index")),
    ),
    "nw_ucla20": (
        ("head", ("Head",)),
        ("torso", ("HipCenter", "Spine", "ShoulderCenter", "ShoulderLeft", "ShoulderRight", "HipLeft", "HipRight")),
        ("left_arm", ("ElbowLeft", "WristLeft", "HandLeft")),
        ("right_arm", ("ElbowRight", "WristRight", "HandRight")),
        ("left_leg", ("KneeLeft", "AnkleLeft", "FootLeft")),
        ("right_leg", ("KneeRight", "AnkleRight", "FootRight")),
    ),
}


def body_parts(layout: str) -> BodyParts:
    """The partition of ``layout`` (``"coco17"``, ``"ntu25"``, ``"blazepose33"``, ``"nw_ucla20"``) as joint ids.

    Raises:
        ValueError: a layout without a partition.
    """
    if layout not in _PART_JOINT_NAMES:
        raise ValueError(f"no body-part partition for layout {layout!r}; known: {sorted(_PART_JOINT_NAMES)}")
    lay = get_layout(layout)
    return tuple((name, tuple(lay.index(joint) for joint in joints)) for name, joints in _PART_JOINT_NAMES[layout])


def part_of_joint(layout: str) -> Tuple[int, ...]:
    """Part index (into :func:`body_parts`) of every joint, V entries."""
    parts = body_parts(layout)
    owner = [-1] * get_layout(layout).num_joints
    for index, (_, joints) in enumerate(parts):
        for joint in joints:
            owner[joint] = index
    return tuple(owner)


def _check_partitions() -> None:
    for layout in _PART_JOINT_NAMES:
        ids = [joint for _, joints in body_parts(layout) for joint in joints]
        if sorted(ids) != list(range(get_layout(layout).num_joints)):
            raise AssertionError(f"the {layout} body parts do not partition its joints")


_check_partitions()
