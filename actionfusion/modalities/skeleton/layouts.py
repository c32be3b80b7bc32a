"""Joint layouts (names, a parent tree, left/right pairs, a centre) and conversions between them.

Layouts:

- ``"ntu25"``: Kinect v2, 25 joints (NTU RGB+D, PKU-MMD). Names and parents come from
  :mod:`.joint_constants` (Kinect SDK v2 ``JointType`` order; the official
  ``connecting_joint`` of shahroudy/NTURGB-D). The tree used for bone/skip streams is the
  official one re-rooted at the graph centre SpineShoulder, with the hand tips chained
  HandTip -> Thumb -> Hand: exactly the bone pairs of CTR-GCN (``feeders/bone_pairs.py``)
  and pyskl (``JointToBone``, 'nturgb+d'), i.e. the edges of :func:`graphs.ntu25_graph` "A".
- ``"coco17"``: the 17 COCO person keypoints in the COCO annotation order (cocodataset.org
  keypoint format; mmpose ``coco.py``). Tree: pyskl's 'coco' graph (``utils/graph.py``):
  root nose, eyes from the nose, ears from the eyes, shoulders from the nose, hips from the
  shoulders.
- ``"blazepose33"``: MediaPipe Pose's 33 landmarks in ``mediapipe.solutions.pose.PoseLandmark``
  order. MediaPipe's ``POSE_CONNECTIONS`` has cycles; the tree here keeps its chains (face,
  arms, hand triangle as wrist -> pinky/index/thumb, hip from shoulder, legs, heel and foot
  index from the ankle) and attaches the shoulders and the mouth corners to the nose (as COCO).
- ``"nw_ucla20"``: Kinect v1, 20 joints (NW-UCLA), names and parents from
  :mod:`.joint_constants` (CTR-GCN ``feeders/feeder_ucla.py``), root ShoulderCenter.

Conversion (:func:`convert_layout`) works by joint names: every destination joint has either
an *exact* source (the same anatomical point under another name), an *approx* source (a
weighted mean of source joints, e.g. NTU SpineBase from the BlazePose hips), or none.
:func:`conversion_table` lists which is which. Joints with no source are filled according to
``missing``: ``"zero"`` (the store's "missing" marker; default), ``"nan"``, or ``"nearest"``
(the nearest ancestor in the destination tree that has a source, e.g. NTU HandTipLeft <-
ThumbLeft <- HandLeft <- WristLeft). A destination joint whose source joints are missing
(all-zero) in a frame is zero there.

Per pair (``conversion_table`` holds the same, per joint):

- blazepose33 <-> coco17: every COCO joint is exact (same names); from COCO, BlazePose's inner/
  outer eyes, mouth, hand and foot points are missing.
- blazepose33 -> ntu25: exact: Shoulder/Elbow/Wrist/Hip/Knee/Ankle Left/Right. Approximated:
  SpineBase = mid-hip; SpineShoulder = mid-shoulder; SpineMid = mean(mid-hip, mid-shoulder);
  Neck = mean(mid-shoulder, mid-mouth); Head = mid-ear; Hand = mean(wrist, pinky, index);
  HandTip = index; Thumb = thumb (MediaPipe's hand points are knuckles, not tips);
  Foot = foot_index.
- coco17 -> ntu25: the same exact limb joints and trunk approximations, with Neck =
  mean(mid-shoulder, nose). Missing: Hand, HandTip, Thumb, Foot ("nearest" gives the wrist /
  ankle).
- ntu25 -> coco17: exact limb joints; nose ~ Head (approx; the Kinect head is the head centre).
  Missing: the eyes and ears ("nearest" gives the nose's value, i.e. Head).
- nw_ucla20 <-> ntu25: same joints under Kinect v1 names (HipCenter = SpineBase, Spine =
  SpineMid, ShoulderCenter = SpineShoulder), taken as exact; from v1, Neck = mean(ShoulderCenter,
  Head) (approx), HandTip and Thumb missing.
- other pairs go through ntu25 (so their approximations compose).

The joint names and parent trees are typed once, in :mod:`.joint_constants`; the dataset
modules re-export them, so the skeleton modality imports nothing from ``datasets``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping

import numpy as np

from ...errors import UsageError
from . import joint_constants as joints
from .graphs import SkeletonGraph, graph_from_edges, ntu25_graph


@dataclass(frozen=True)
class JointLayout:
    """A skeleton's joint order.

    Attributes:
        name: registry name, e.g. ``"ntu25"``.
        joint_names: V names, index = joint id.
        parents: V parent ids, 0-based; -1 for the root (a tree rooted at ``center``).
        mirror_pairs: (left, right) joint-id pairs swapped by a horizontal flip.
        center: 0-based centre joint (graph centre and tree root).
        source: where the order and tree come from.
    """

    name: str
    joint_names: tuple[str, ...]
    parents: tuple[int, ...]
    mirror_pairs: tuple[tuple[int, int], ...]
    center: int
    source: str

    def __post_init__(self) -> None:
        v = len(self.joint_names)
        if len(self.parents) != v or not all(-1 <= p < v for p in self.parents):
            raise ValueError(f"layout {self.name!r}: parents must be {v} ids in -1..{v - 1}")
        if not 0 <= self.center < v or self.parents[self.center] != -1:
            raise ValueError(f"layout {self.name!r}: the centre {self.center} must be the root (parent -1)")

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def index(self, joint_name: str) -> int:
        """0-based id of ``joint_name`` (ValueError naming the layout if unknown)."""
        try:
            return self.joint_names.index(joint_name)
        except ValueError:
            raise ValueError(f"layout {self.name!r} has no joint {joint_name!r}") from None

    def edges(self) -> tuple[tuple[int, int], ...]:
        """(child, parent) pairs, 0-based, one per non-root joint."""
        return tuple((v, p) for v, p in enumerate(self.parents) if p >= 0)

    def mirror_permutation(self) -> np.ndarray:
        """int64 [V]: ``x[..., perm, :]`` swaps every left joint with its right twin."""
        perm = np.arange(self.num_joints)
        for left, right in self.mirror_pairs:
            perm[left], perm[right] = right, left
        return perm


def _reroot(parents: tuple[int, ...], root: int) -> tuple[int, ...]:
    """Re-root an undirected tree given as a parent list (a 2-cycle or a self-parent marks
    the old root) at ``root``; returns parents with -1 at the new root."""
    v = len(parents)
    neighbours: list[set[int]] = [set() for _ in range(v)]
    for child, parent in enumerate(parents):
        if 0 <= parent != child:
            neighbours[child].add(parent)
            neighbours[parent].add(child)
    out = [-2] * v
    out[root] = -1
    stack = [root]
    while stack:
        u = stack.pop()
        for w in sorted(neighbours[u]):
            if out[w] == -2:
                out[w] = u
                stack.append(w)
    if -2 in out:
        raise ValueError("the parent list does not describe a connected tree")
    return tuple(out)


def _mirror_pairs(names: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    """(left, right) id pairs found by swapping 'Left'/'Right' (or 'left'/'right') in names."""
    pairs = []
    for i, name in enumerate(names):
        for left, right in (("Left", "Right"), ("left", "right")):
            if left in name:
                pairs.append((i, names.index(name.replace(left, right))))
    return tuple(pairs)


def _ntu25() -> JointLayout:
    parents = list(_reroot(joints.JOINT_PARENTS, joints.CENTER_JOINT))
    names = joints.JOINT_NAMES
    # hand tips chained through the thumb (graph variant "A", the CTR-GCN/pyskl bone pairs)
    for side in ("Left", "Right"):
        parents[names.index(f"HandTip{side}")] = names.index(f"Thumb{side}")
    return JointLayout("ntu25", names, tuple(parents), _mirror_pairs(names), joints.CENTER_JOINT,
                       "Kinect SDK v2 JointType / shahroudy/NTURGB-D connecting_joint, rooted at "
                       "SpineShoulder, hand tips as in CTR-GCN/pyskl bone pairs")


# COCO keypoint order (cocodataset.org keypoint format; mmpose configs/_base_/datasets/coco.py).
_COCO17_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
# pyskl utils/graph.py 'coco' inward edges (child, parent), centre 0.
_COCO17_EDGES: tuple[tuple[int, int], ...] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 5), (12, 6), (9, 7), (7, 5), (10, 8), (8, 6),
    (5, 0), (6, 0), (1, 0), (3, 1), (2, 0), (4, 2),
)

# MediaPipe Pose landmarks (mediapipe/python/solutions/pose.py PoseLandmark enum order).
_BLAZEPOSE33_NAMES: tuple[str, ...] = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel",
    "right_heel", "left_foot_index", "right_foot_index",
)
# Our tree over MediaPipe's POSE_CONNECTIONS chains (see the module docstring), by name.
_BLAZEPOSE33_PARENT_NAMES: Mapping[str, str] = {
    "left_eye_inner": "nose", "left_eye": "left_eye_inner", "left_eye_outer": "left_eye",
    "left_ear": "left_eye_outer", "mouth_left": "nose", "left_shoulder": "nose",
    "left_elbow": "left_shoulder", "left_wrist": "left_elbow", "left_pinky": "left_wrist",
    "left_index": "left_wrist", "left_thumb": "left_wrist", "left_hip": "left_shoulder",
    "left_knee": "left_hip", "left_ankle": "left_knee", "left_heel": "left_ankle",
    "left_foot_index": "left_ankle",
}


def _blazepose33() -> JointLayout:
    names = _BLAZEPOSE33_NAMES
    by_name = dict(_BLAZEPOSE33_PARENT_NAMES)
    for child, parent in _BLAZEPOSE33_PARENT_NAMES.items():
        by_name[child.replace("left", "right")] = parent.replace("left", "right")
    parents = tuple(-1 if n == "nose" else names.index(by_name[n]) for n in names)
    return JointLayout("blazepose33", names, parents, _mirror_pairs(names), 0,
                       "MediaPipe Pose PoseLandmark order; tree from POSE_CONNECTIONS chains")


def _coco17() -> JointLayout:
    parents = [-1] * len(_COCO17_NAMES)
    for child, parent in _COCO17_EDGES:
        parents[child] = parent
    return JointLayout("coco17", _COCO17_NAMES, tuple(parents), _mirror_pairs(_COCO17_NAMES), 0,
                       "COCO keypoint order; tree of pyskl utils/graph.py 'coco'")


def _nw_ucla20() -> JointLayout:
    names = joints.UCLA_JOINT_NAMES
    root = names.index("ShoulderCenter")
    return JointLayout("nw_ucla20", names, _reroot(joints.UCLA_JOINT_PARENTS, root), _mirror_pairs(names), root,
                       "Kinect SDK 1.x NUI_SKELETON_POSITION_INDEX; CTR-GCN feeder_ucla.py bones")


_LAYOUTS: dict[str, JointLayout] = {lay.name: lay for lay in (_ntu25(), _coco17(), _blazepose33(), _nw_ucla20())}


def list_layouts() -> tuple[str, ...]:
    """Names accepted by :func:`get_layout`."""
    return tuple(_LAYOUTS)


def get_layout(name: "str | JointLayout") -> JointLayout:
    """The layout called ``name`` (a :class:`JointLayout` passes through)."""
    if isinstance(name, JointLayout):
        return name
    if name not in _LAYOUTS:
        raise UsageError(f"unknown joint layout {name!r}; known: {', '.join(_LAYOUTS)}")
    return _LAYOUTS[name]


# The body root a clip is centred on (the ``center`` transform's origin), by joint names: Kinect
# SpineMid (the CTR-GCN/MAMP ``seq_transformation`` origin) and its Kinect v1 twin Spine; the hip
# midpoint for COCO-17 and BlazePose-33, which have no spine joint (BlazePose's world keypoints
# are themselves centred there).
_ROOT_JOINT_NAMES: Mapping[str, tuple[str, ...]] = {
    "ntu25": ("SpineMid",),
    "nw_ucla20": ("Spine",),
    "coco17": ("left_hip", "right_hip"),
    "blazepose33": ("left_hip", "right_hip"),
}


def root_joints(name: "str | JointLayout") -> tuple[int, ...]:
    """0-based ids of the joints whose mean is the layout's body root (NTU: (1,), SpineMid;
    COCO-17 / BlazePose-33: the two hips)."""
    layout = get_layout(name)
    if layout.name not in _ROOT_JOINT_NAMES:
        raise ValueError(f"layout {layout.name!r} has no body root; known: {', '.join(_ROOT_JOINT_NAMES)}")
    return tuple(layout.index(joint) for joint in _ROOT_JOINT_NAMES[layout.name])


def layout_graph(name: "str | JointLayout", hand_variant: str = "A") -> SkeletonGraph:
    """The layout's :class:`SkeletonGraph`; for NTU-25 :func:`ntu25_graph` with ``hand_variant``."""
    layout = get_layout(name)
    if layout.name == "ntu25":
        return ntu25_graph(hand_variant)
    return graph_from_edges(layout.name, layout.num_joints, layout.edges(), layout.center)


# ---- conversions --------------------------------------------------------------------------
Quality = Literal["exact", "approx"]
_Source = tuple[Mapping[str, float], Quality]  # {source joint name: weight}, quality


def _mid(a: str, b: str) -> dict[str, float]:
    return {a: 0.5, b: 0.5}


_KINECT_LIMBS = ("Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle")
_COCO_LIMBS = ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")


def _limbs_to_ntu() -> dict[str, _Source]:
    """NTU limb joints from the COCO/BlazePose names (same anatomical points)."""
    return {f"{k}{side.capitalize()}": ({f"{side}_{c}": 1.0}, "exact")
            for k, c in zip(_KINECT_LIMBS, _COCO_LIMBS) for side in ("left", "right")}


def _trunk_to_ntu(neck_top: Mapping[str, float]) -> dict[str, _Source]:
    """Approximate NTU trunk joints from shoulders, hips and ears; ``neck_top`` is the face
    point averaged with mid-shoulder for the Kinect Neck."""
    mid_hip, mid_sh = _mid("left_hip", "right_hip"), _mid("left_shoulder", "right_shoulder")
    neck = {k: 0.5 * w for k, w in mid_sh.items()}
    for k, w in neck_top.items():
        neck[k] = neck.get(k, 0.0) + 0.5 * w
    return {
        "SpineBase": (mid_hip, "approx"),
        "SpineMid": ({k: 0.5 * w for k, w in {**mid_hip, **mid_sh}.items()}, "approx"),
        "SpineShoulder": (mid_sh, "approx"),
        "Neck": (neck, "approx"),
        "Head": (_mid("left_ear", "right_ear"), "approx"),
    }


def _table_blazepose_to_ntu() -> dict[str, _Source]:
    table = {**_limbs_to_ntu(), **_trunk_to_ntu(_mid("mouth_left", "mouth_right"))}
    for side in ("left", "right"):
        s = side.capitalize()
        table[f"Hand{s}"] = ({f"{side}_wrist": 1 / 3, f"{side}_pinky": 1 / 3, f"{side}_index": 1 / 3}, "approx")
        table[f"HandTip{s}"] = ({f"{side}_index": 1.0}, "approx")
        table[f"Thumb{s}"] = ({f"{side}_thumb": 1.0}, "approx")
        table[f"Foot{s}"] = ({f"{side}_foot_index": 1.0}, "approx")
    return table


def _table_ntu_to_coco() -> dict[str, _Source]:
    table: dict[str, _Source] = {f"{side}_{c}": ({f"{k}{side.capitalize()}": 1.0}, "exact")
                                 for k, c in zip(_KINECT_LIMBS, _COCO_LIMBS) for side in ("left", "right")}
    table["nose"] = ({"Head": 1.0}, "approx")  # Kinect Head is the head centre; no face points
    return table


# NW-UCLA (Kinect v1) names of the joints that Kinect v2 renamed.
_KINECT_V1_TO_V2 = {"HipCenter": "SpineBase", "Spine": "SpineMid", "ShoulderCenter": "SpineShoulder"}


def _table_same_names(src: JointLayout, dst: JointLayout, rename: Mapping[str, str]) -> dict[str, _Source]:
    """Exact sources for destination joints whose (renamed) source name matches."""
    src_by_dst_name = {rename.get(n, n): n for n in src.joint_names}
    return {n: ({src_by_dst_name[n]: 1.0}, "exact") for n in dst.joint_names if n in src_by_dst_name}


def conversion_table(src: "str | JointLayout", dst: "str | JointLayout") -> dict[str, _Source]:
    """``{destination joint name: ({source joint name: weight}, "exact" | "approx")}`` for the
    destination joints that have a source; the others are "missing" (see :func:`convert_layout`).
    """
    s, d = get_layout(src), get_layout(dst)
    key = (s.name, d.name)
    if s.name == d.name or key in (("blazepose33", "coco17"), ("coco17", "blazepose33")):
        return _table_same_names(s, d, {})
    if key == ("nw_ucla20", "ntu25"):
        table = _table_same_names(s, d, _KINECT_V1_TO_V2)
        table["Neck"] = ({"ShoulderCenter": 0.5, "Head": 0.5}, "approx")
        return table
    if key == ("ntu25", "nw_ucla20"):
        return _table_same_names(s, d, {v: k for k, v in _KINECT_V1_TO_V2.items()})
    if key == ("blazepose33", "ntu25"):
        return _table_blazepose_to_ntu()
    if key == ("coco17", "ntu25"):
        return {**_limbs_to_ntu(), **_trunk_to_ntu({"nose": 1.0})}
    if key == ("ntu25", "coco17"):
        return _table_ntu_to_coco()
    raise ValueError(f"no joint correspondence from {s.name!r} to {d.name!r}; "
                     "direct pairs: blazepose33<->coco17, {blazepose33, coco17, nw_ucla20}->ntu25, "
                     "ntu25->{coco17, nw_ucla20} (others go through ntu25)")


def conversion_matrix(src: "str | JointLayout", dst: "str | JointLayout",
                      missing: Literal["zero", "nan", "nearest"] = "zero") -> np.ndarray:
    """float64 [V_dst, V_src]: row v holds the weights of the source joints of destination v.
    A missing joint's row is all zero (``"zero"``), NaN (``"nan"``) or its nearest sourced
    ancestor's row (``"nearest"``; zero if no ancestor has a source)."""
    s, d = get_layout(src), get_layout(dst)
    table = conversion_table(s, d)
    w = np.zeros((d.num_joints, s.num_joints))
    has = np.zeros(d.num_joints, dtype=bool)
    for name, (weights, _) in table.items():
        for src_name, weight in weights.items():
            w[d.index(name), s.index(src_name)] += weight
        has[d.index(name)] = True
    for v in np.flatnonzero(~has):
        if missing == "nan":
            w[v] = np.nan
        elif missing == "nearest":
            u = d.parents[v]
            while u >= 0 and not has[u]:
                u = d.parents[u]
            if u >= 0:
                w[v] = w[u]
        elif missing != "zero":
            raise ValueError(f"missing must be 'zero', 'nan' or 'nearest', not {missing!r}")
    return w


def convert_layout(x: np.ndarray, src: "str | JointLayout", dst: "str | JointLayout",
                   missing: Literal["zero", "nan", "nearest"] = "zero") -> np.ndarray:
    """Re-express joints of layout ``src`` in layout ``dst`` by joint-name correspondence.

    Args:
        x: float [..., V_src, C] (zero = missing joint).
        missing: how to fill destination joints with no source (module docstring).

    Returns:
        float32 [..., V_dst, C]. A destination joint is zero where any of its source joints
        is missing (all C channels zero). Pairs without a direct table go through ``"ntu25"``.
    """
    s, d = get_layout(src), get_layout(dst)
    x = np.asarray(x, dtype=np.float32)
    if x.ndim < 2 or x.shape[-2] != s.num_joints:
        raise ValueError(f"expected [..., {s.num_joints}, C] for layout {s.name!r}, got shape {x.shape}")
    try:
        w = conversion_matrix(s, d, missing)
    except ValueError:
        if "ntu25" in (s.name, d.name):
            raise
        return convert_layout(convert_layout(x, s, "ntu25", missing), "ntu25", d, missing)
    out = np.einsum("vu,...uc->...vc", np.nan_to_num(w), x.astype(np.float64))
    absent = ~np.any(x != 0, axis=-1)  # [..., V_src]
    uses = np.nan_to_num(w) != 0  # [V_dst, V_src]
    any_absent = np.einsum("vu,...u->...v", uses.astype(np.float64), absent.astype(np.float64)) > 0
    out[any_absent] = 0.0
    out[..., np.isnan(w).any(axis=1), :] = np.nan
    return out.astype(np.float32)
