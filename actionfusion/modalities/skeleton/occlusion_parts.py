"""The body parts that occlusion hides, as RA-GCN defines them, for NTU-25 and COCO-17.

- ``"ntu25"``: RA-GCN's ``Occlusion_part`` (Song et al., "Richly Activated Graph Convolutional
  Network for Robust Skeleton-based Action Recognition", TCSVT 2020; yfsong0709/RA-GCNv2,
  ``src/dataset/transform``), 1-based Kinect v2 joints: left arm 5-8, 22, 23; right arm 9-12, 24,
  25; two hands 22-25; two legs 13-20; trunk 1-4, 21. Left and right are the Kinect's (the
  performer's) sides.
- ``"coco17"``: not in RA-GCN (reconstructed here): each arm is its shoulder, elbow and wrist (as
  RA-GCN's arms hold the shoulder); the hands are the two wrists (COCO has no hand joints); the
  legs are both hips, knees and ankles (RA-GCN's legs hold the hips); the trunk is the head's five
  keypoints (COCO has no spine joints; RA-GCN's trunk holds the neck and head).

In both layouts the arms, legs and trunk partition the joints (checked at import); the hands lie
inside the arms, as in RA-GCN.
"""

from __future__ import annotations

from typing import Dict, Mapping, Tuple

from .layouts import get_layout

PARTITION: Tuple[str, ...] = ("left_arm", "right_arm", "legs", "trunk")
"""The parts that partition every layout's joints; ``"hands"`` lies inside the arms."""

_PART_JOINT_NAMES: Dict[str, Dict[str, Tuple[str, ...]]] = {
    "ntu25": {
        "left_arm": ("ShoulderLeft", "ElbowLeft", "WristLeft", "HandLeft", "HandTipLeft", "ThumbLeft"),
        "right_arm": ("ShoulderRight", "ElbowRight", "WristRight", "HandRight", "HandTipRight", "ThumbRight"),
        "hands": ("HandTipLeft", "ThumbLeft", "HandTipRight", "ThumbRight"),
        "legs": ("HipLeft", "KneeLeft", "AnkleLeft", "FootLeft", "HipRight", "KneeRight", "AnkleRight",
                 "FootRight"),
        "trunk": ("SpineBase", "SpineMid", "Neck", "Head", "SpineShoulder"),
    },
    "coco17": {
        "left_arm": ("left_shoulder", "left_elbow", "left_wrist"),
        "right_arm": ("right_shoulder", "right_elbow", "right_wrist"),
        "hands": ("left_wrist", "right_wrist"),
        "legs": ("left_hip", "left_knee", "left_ankle", "right_hip", "right_knee", "right_ankle"),
        "trunk": ("nose", "left_eye", "right_eye", "left_ear", "right_ear"),
    },
}


def occlusion_parts(layout: str) -> Mapping[str, Tuple[int, ...]]:
    """``{part: 0-based joint ids}`` of ``layout`` (``"ntu25"`` or ``"coco17"``).

    Raises:
        ValueError: a layout without occlusion parts.
    """
    if layout not in _PART_JOINT_NAMES:
        raise ValueError(f"no occlusion parts for layout {layout!r}; known: {sorted(_PART_JOINT_NAMES)}")
    lay = get_layout(layout)
    return {part: tuple(lay.index(name) for name in names) for part, names in _PART_JOINT_NAMES[layout].items()}


def _check_partitions() -> None:
    for layout in _PART_JOINT_NAMES:
        parts = occlusion_parts(layout)
        ids = sorted(j for part in PARTITION for j in parts[part])
        if ids != list(range(get_layout(layout).num_joints)):
            raise AssertionError(f"the {layout} occlusion parts {PARTITION} do not partition its joints")
        if not set(parts["hands"]) <= set(parts["left_arm"]) | set(parts["right_arm"]):
            raise AssertionError(f"the {layout} hands are not inside the arms")


_check_partitions()
