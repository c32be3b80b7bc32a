"""Joint orders and parent trees of the sensor skeletons: the one place these facts live.

Kept in ``modalities`` so that the skeleton modality needs nothing from ``datasets``;
``actionfusion.datasets.ntu.constants`` and ``actionfusion.datasets.nw_ucla`` re-export them.
"""

from __future__ import annotations

# --- the 25 Kinect v2 joints (Kinect SDK v2 JointType order; NTU README) ----------------
NUM_JOINTS = 25
JOINT_NAMES: tuple[str, ...] = (
    "SpineBase", "SpineMid", "Neck", "Head",
    "ShoulderLeft", "ElbowLeft", "WristLeft", "HandLeft",
    "ShoulderRight", "ElbowRight", "WristRight", "HandRight",
    "HipLeft", "KneeLeft", "AnkleLeft", "FootLeft",
    "HipRight", "KneeRight", "AnkleRight", "FootRight",
    "SpineShoulder", "HandTipLeft", "ThumbLeft", "HandTipRight", "ThumbRight",
)
"""0-based joint index -> Kinect v2 joint name."""

JOINT_PARENTS_1BASED: tuple[int, ...] = (
    2, 1, 21, 3, 21, 5, 6, 7, 21, 9, 10, 11, 1, 13, 14, 15, 1, 17, 18, 19, 2, 8, 8, 12, 12,
)
"""The official parent of each joint, 1-based: ``connecting_joint`` in
shahroudy/NTURGB-D@ac2ebc8 ``Matlab/show_skeleton_on_depthmaps.m``.
Note the official list gives SpineBase (1) the parent SpineMid (2) and SpineMid the parent
SpineBase: the pair forms the root edge, so a tree walk must treat one of them as root."""

JOINT_PARENTS: tuple[int, ...] = tuple(p - 1 for p in JOINT_PARENTS_1BASED)
""":data:`JOINT_PARENTS_1BASED` converted to 0-based indices."""

CENTER_JOINT = 20
"""0-based graph centre, SpineShoulder (joint 21 1-based; the centre used by ST-GCN/CTR-GCN)."""
SPINE_MID = 1
"""0-based SpineMid (joint 2 1-based): the origin of the CTR-GCN/MAMP ``seq_transformation``."""


# The 20 Kinect v1 joints, 0-based, in the Kinect for Windows SDK 1.x
# NUI_SKELETON_POSITION_INDEX order.
UCLA_NUM_JOINTS = 20
UCLA_JOINT_NAMES: tuple[str, ...] = (
    "HipCenter", "Spine", "ShoulderCenter", "Head",
    "ShoulderLeft", "ElbowLeft", "WristLeft", "HandLeft",
    "ShoulderRight", "ElbowRight", "WristRight", "HandRight",
    "HipLeft", "KneeLeft", "AnkleLeft", "FootLeft",
    "HipRight", "KneeRight", "AnkleRight", "FootRight",
)

# Parent of each joint, 0-based, from the bone list of CTR-GCN feeders/feeder_ucla.py
# (1-based pairs (child, parent)); ShoulderCenter is its own parent (the root), and HipCenter
# hangs from Spine as in that list.
UCLA_JOINT_PARENTS: tuple[int, ...] = (1, 2, 2, 2, 2, 4, 5, 6, 2, 8, 9, 10, 0, 12, 13, 14, 0, 16, 17, 18)
