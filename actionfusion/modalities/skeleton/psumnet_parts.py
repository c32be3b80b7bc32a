"""PSUMNet's part streams (body, hand, leg): their joints and graphs, per joint layout.

NTU-25 (``"ntu25"``) is PSUMNet's own definition (shared/specs/skeleton-gcn.md, skelemoa/psumnet@8097774
``feeders/feeder_ntu.py``, ``graph/ntu_rgb_d.py``), kept as the release's tables:

- body: all 25 joints on the NTU graph, hand-tip variant A;
- hand: SpineShoulder and both arms from the shoulder to the hand tip and thumb (13 joints), the tip
  and the thumb both on the hand;
- leg: SpineBase and both legs from the hip to the foot (9 joints); ``leg_graph`` picks the corrected
  tree or the released, miswired edges.

Other layouts (reconstructed; PSUMNet defines its parts on NTU-25 only). The parts are read from the
layout's joint names with PSUMNet's rule: the hand stream is the upper-body centre joint and each arm
from the shoulder outwards, the leg stream the lower-body centre joint and each leg from the hip
outwards. Joint order: the centre (when the layout has one), the left side, the right side, each in
the layout's joint order. Edges: every joint hangs off its nearest ancestor inside the part in the
layout's tree (:mod:`.layouts`); a joint with none (the right shoulder or hip where the layout has no
centre joint) hangs off the part's first joint, the left shoulder or hip, which is the
shoulder-shoulder / hip-hip edge of COCO's ``skeleton`` and MediaPipe's ``POSE_CONNECTIONS``.

- ``"nw_ucla20"`` (Kinect v1): hand = ShoulderCenter + shoulder, elbow, wrist, hand per side
  (9 joints; v1 has no hand tip or thumb); leg = HipCenter + hip, knee, ankle, foot per side (9).
- ``"blazepose33"``: hand = shoulder, elbow, wrist, pinky, index, thumb per side (12; no centre
  joint, so the shoulders are linked); leg = hip, knee, ankle, heel, foot index per side (10, the
  hips linked).
- ``"coco17"``: leg = hip, knee, ankle per side (6, the hips linked). No hand stream: COCO has no
  joint beyond the wrist, and PSUMNet's hand stream exists for the hand joints (a shoulder-elbow-wrist
  stream would repeat the body stream's arms), so asking for it is a one-line :class:`UsageError`;
  :func:`layout_streams` lists the streams a layout provides (PSUMNet's default).
- body: the whole layout on its graph (:func:`~.layouts.layout_graph`).
"""

from __future__ import annotations

from typing import Mapping

from ...errors import UsageError
from .graphs import SkeletonGraph, graph_from_edges, ntu25_graph
from .layouts import JointLayout, get_layout, layout_graph

STREAMS = ("body", "hand", "leg")

# Part joints, 1-based NTU indices, and the part-local (child, parent) edges, 1-based local
# indices (skelemoa/psumnet@8097774 feeders/feeder_ntu.py, graph/ntu_rgb_d.py).
HAND_JOINTS_1BASED = (21, 5, 6, 7, 8, 22, 23, 9, 10, 11, 12, 24, 25)
HAND_EDGES_1BASED = ((2, 1), (3, 2), (4, 3), (5, 4), (6, 5), (7, 5), (8, 1), (9, 8), (10, 9), (11, 10),
                     (12, 11), (13, 11))
LEG_JOINTS_1BASED = (1, 13, 14, 15, 16, 17, 18, 19, 20)
# Released leg edges: (5,1) foot-left -> SpineBase, (6,5) hip-right -> foot-left; joint 9
# (FootRight) has no edge.
LEG_EDGES_OFFICIAL_1BASED = ((2, 1), (3, 2), (4, 3), (5, 4), (5, 1), (6, 5), (7, 6), (8, 7))
# Corrected: each hip on SpineBase, then knee, ankle, foot.
LEG_EDGES_CORRECTED_1BASED = ((2, 1), (3, 2), (4, 3), (5, 4), (6, 1), (7, 6), (8, 7), (9, 8))

LEG_GRAPHS = ("corrected", "official")

# Part joints of the other layouts by name (module docstring): centre first, then the left side,
# then the right side ("{s}" is the side as the layout spells it).
_KINECT_V1_ARM = ("Shoulder{s}", "Elbow{s}", "Wrist{s}", "Hand{s}")
_KINECT_V1_LEG = ("Hip{s}", "Knee{s}", "Ankle{s}", "Foot{s}")
_PART_NAMES: Mapping[str, Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    # stream -> layout -> (centre joints, one side's joints)
    "hand": {
        "nw_ucla20": (("ShoulderCenter",), _KINECT_V1_ARM),
        "blazepose33": ((), ("{s}_shoulder", "{s}_elbow", "{s}_wrist", "{s}_pinky", "{s}_index", "{s}_thumb")),
    },
    "leg": {
        "nw_ucla20": (("HipCenter",), _KINECT_V1_LEG),
        "blazepose33": ((), ("{s}_hip", "{s}_knee", "{s}_ankle", "{s}_heel", "{s}_foot_index")),
        "coco17": ((), ("{s}_hip", "{s}_knee", "{s}_ankle")),
    },
}
_SIDES = {"nw_ucla20": ("Left", "Right"), "blazepose33": ("left", "right"), "coco17": ("left", "right")}
_MISSING_PART = {("hand", "coco17"): "COCO-17 has no hand joint beyond the wrist"}


def layout_streams(layout: "str | JointLayout") -> tuple[str, ...]:
    """The streams of :data:`STREAMS` that ``layout`` provides (all three but coco17's hand)."""
    name = get_layout(layout).name
    return tuple(s for s in STREAMS if s == "body" or name == "ntu25" or name in _PART_NAMES[s])


def _ntu25_part(stream: str, leg_graph: str) -> tuple[SkeletonGraph, tuple[int, ...]]:
    if stream == "hand":
        edges, joints = HAND_EDGES_1BASED, HAND_JOINTS_1BASED
    else:
        edges = LEG_EDGES_CORRECTED_1BASED if leg_graph == "corrected" else LEG_EDGES_OFFICIAL_1BASED
        joints = LEG_JOINTS_1BASED
    graph = graph_from_edges(f"psumnet-{stream}", len(joints), [(c - 1, p - 1) for c, p in edges], 0)
    return graph, tuple(j - 1 for j in joints)


def _named_part(stream: str, layout: JointLayout) -> tuple[SkeletonGraph, tuple[int, ...]]:
    """The part of a non-NTU layout by joint names; edges from the layout's tree (module docstring)."""
    centre, side = _PART_NAMES[stream][layout.name]
    names = centre + tuple(n.format(s=s) for s in _SIDES[layout.name] for n in side)
    joints = tuple(layout.index(n) for n in names)
    local = {joint: i for i, joint in enumerate(joints)}
    edges = []
    for i, joint in enumerate(joints[1:], start=1):
        parent = layout.parents[joint]
        while parent >= 0 and parent not in local:
            parent = layout.parents[parent]
        edges.append((i, local[parent] if parent >= 0 else 0))
    return graph_from_edges(f"psumnet-{stream}-{layout.name}", len(joints), edges, 0), joints


def part_graph(stream: str, leg_graph: str = "corrected",
               layout: "str | JointLayout" = "ntu25") -> tuple[SkeletonGraph, tuple[int, ...]]:
    """The stream's graph (local joints, centre 0) and its 0-based joint ids in ``layout``.

    ``leg_graph``: ``"corrected"`` (a tree linking each foot to its own hip) or ``"official"`` (the
    released, miswired NTU-25 edges; NTU-25 only).

    Raises:
        UsageError: a part the layout cannot provide (coco17's hand), an unknown layout.
        ValueError: an unknown stream or ``leg_graph``.
    """
    lay = get_layout(layout)
    if stream not in STREAMS:
        raise ValueError(f"stream must be one of {STREAMS}, not {stream!r}")
    if leg_graph not in LEG_GRAPHS:
        raise ValueError(f"leg_graph must be 'corrected' or 'official', not {leg_graph!r}")
    if stream == "body":
        graph = ntu25_graph("A") if lay.name == "ntu25" else layout_graph(lay)
        return graph, tuple(range(lay.num_joints))
    if lay.name == "ntu25":
        return _ntu25_part(stream, leg_graph)
    if stream == "leg" and leg_graph == "official":
        raise ValueError(f"leg_graph='official' is the released NTU-25 wiring; layout {lay.name!r} has the "
                         "corrected leg tree only")
    if lay.name not in _PART_NAMES[stream]:
        reason = _MISSING_PART.get((stream, lay.name), f"no {stream} part is defined for it")
        raise UsageError(f"PSUMNet's {stream} stream is not available on layout {lay.name!r} ({reason}); "
                         f"its streams: {', '.join(layout_streams(lay))}")
    return _named_part(stream, lay)
