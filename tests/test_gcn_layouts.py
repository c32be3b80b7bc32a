"""Every registered skeleton GCN takes ``layout``: its graph (and its body-part partition, for PSUMNet
and FineTec) is the layout's (COCO-17, BlazePose-33 extracted poses, NW-UCLA's Kinect v1), and
``layout="ntu25"`` is exactly the default (NTU) model."""

from __future__ import annotations

from typing import Any, Dict

import numpy as np
import pytest
import torch

from actionfusion.errors import UsageError
from actionfusion.modalities.skeleton.body_parts import body_parts
from actionfusion.modalities.skeleton.finetec_regions import finetec_regions
from actionfusion.modalities.skeleton.graphs import ctrgcn_partition, stgcn_spatial_partition
from actionfusion.modalities.skeleton.layouts import get_layout, layout_graph, list_layouts
from actionfusion.modalities.skeleton.psumnet_parts import layout_streams, part_graph
from actionfusion.registry import create_model, list_models

pytestmark = pytest.mark.usefixtures("one_thread")

PARTITION = {"stgcn": lambda lay: stgcn_spatial_partition(layout_graph(lay)),
             "ctrgcn": lambda lay: ctrgcn_partition(layout_graph(lay, "A")),
             "stgcnpp": lambda lay: ctrgcn_partition(layout_graph(lay, "B"))}
SMALL = {"stgcn": {"hidden_channels": 4, "hidden_dim": 8}, "ctrgcn": {"base_channels": 8}, "stgcnpp": {}}

# Every registered skeleton GCN with small constructor kwargs (where the model has width options).
GCNS: Dict[str, Dict[str, Any]] = {
    **SMALL,
    "stgcn_clr": {"hidden_channels": 4, "hidden_dim": 8},
    "stgcn_unified": {"hidden_channels": 4, "hidden_dim": 8},
    "hypergcn": {}, "hypergcn_large": {},
    "aclnet": {"base_channels": 8},
    "psumnet": {}, "psumnet_body": {}, "psumnet_hand": {}, "psumnet_leg": {},
    "finetec": {"num_frames": 32, "backbone_kwargs": {"base_channels": 8},
                "completion_kwargs": {"dim": 16, "depth": 1, "temporal_hidden": 8, "spatial_hidden": 8,
                                      "channel_hidden": 16, "num_prototypes": 4}},
}
# Registered skeleton models that are not GCNs: they take ``num_joints``, not a layout.
NOT_GCNS = {"bigru", "cascadeformer", "mamp", "finetec_completion", "skeletonmae"}
# Models with no width option, whose backward pass runs on coco17 only to keep this file fast.
BACKWARD_ON_COCO17_ONLY = {"stgcnpp", "hypergcn", "hypergcn_large"}
# Layouts a GCN cannot provide (a one-line error instead): COCO-17 has no hand joints.
UNSUPPORTED = {("psumnet_hand", "coco17")}
# (model, layout) pairs run forward and backward. The fused psumnet runs on coco17 only (its one layout
# with other streams, body + leg): its streams run on every layout as psumnet_body / _hand / _leg.
CASES = [(name, layout) for name in sorted(GCNS) for layout in list_layouts()
         if (name, layout) not in UNSUPPORTED and (name != "psumnet" or layout == "coco17")]
# Parameter counts at 60 classes of the models that took no layout before it (the release's sizes).
DEFAULT_COUNTS = {"aclnet": 3_728_796, "psumnet": 2_926_798, "psumnet_body": 1_448_418, "psumnet_hand": 978_482,
                  "psumnet_leg": 499_898, "stgcn_unified": 851_020, "finetec": 1_561_815}


def _channels(name: str) -> int:
    return 12 if name.startswith("psumnet") else 3  # PSUMNet reads the unified 12-channel input


def _adjacency(model) -> np.ndarray:
    """The model's graph partition as built: ST-GCN's buffer A, or the first block's learnable A."""
    a = model.A if hasattr(model, "A") else model.blocks[0].gcn.A
    return a.detach().numpy()


def test_every_skeleton_model_is_a_gcn_here_or_a_known_non_gcn() -> None:
    assert set(list_models(modality="skeleton")) == set(GCNS) | NOT_GCNS


@pytest.mark.parametrize("name, layout", CASES)
def test_every_gcn_runs_and_trains_on_every_layout(name: str, layout: str) -> None:
    joints = get_layout(layout).num_joints
    torch.manual_seed(0)
    model = create_model(name, num_classes=5, layout=layout, **GCNS[name])
    x = torch.randn(2, 2, 32, joints, _channels(name), generator=torch.Generator().manual_seed(1))
    backward = name not in BACKWARD_ON_COCO17_ONLY or layout == "coco17"
    with torch.set_grad_enabled(backward):
        y = model(x)
    assert y.shape == (2, 5) and torch.isfinite(y).all()
    if backward:
        y.square().sum().backward()
        # stgcn_unified's data BN of the other conventions gets no gradient: only present ones are checked
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
        assert sum(bool(g.abs().sum() > 0) for g in grads) > len(grads) // 2


@pytest.mark.parametrize("name", sorted(GCNS))
def test_ntu25_layout_is_the_default_model(name: str) -> None:
    torch.manual_seed(0)
    default = create_model(name, num_classes=4, **GCNS[name]).eval()
    torch.manual_seed(0)
    explicit = create_model(name, num_classes=4, layout="ntu25", **GCNS[name]).eval()
    a, b = default.state_dict(), explicit.state_dict()
    assert list(a) == list(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    frames = GCNS[name].get("num_frames", 8)  # finetec's completion network reads num_frames frames
    x = torch.randn(2, 2, frames, 25, _channels(name), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(default(x), explicit(x))


@pytest.mark.parametrize("name", sorted(DEFAULT_COUNTS))
def test_default_sizes_are_unchanged(name: str) -> None:
    model = create_model(name, num_classes=60)
    assert sum(p.numel() for p in model.parameters()) == DEFAULT_COUNTS[name]


@pytest.mark.parametrize("name", sorted(GCNS))
def test_unknown_layout_is_a_one_line_error(name: str) -> None:
    with pytest.raises(UsageError, match="unknown joint layout 'kinect32'") as error:
        create_model(name, num_classes=4, layout="kinect32", **GCNS[name])
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("name", sorted(PARTITION))
@pytest.mark.parametrize("layout, joints", [("coco17", 17), ("blazepose33", 33)])
def test_graph_follows_the_layout(name, layout, joints) -> None:
    model = create_model(name, num_classes=4, layout=layout, **SMALL[name]).eval()
    assert model.num_joints == joints
    np.testing.assert_allclose(_adjacency(model), PARTITION[name](layout), atol=0)
    edges = layout_graph(layout).edges
    a = _adjacency(model).sum(0)
    assert all(a[i, j] > 0 and a[j, i] > 0 for i, j in edges)  # every bone of the layout connects
    with torch.no_grad():
        assert model(torch.randn(2, 2, 8, joints, 3)).shape == (2, 4)


# ---------------------------------------------------------------- PSUMNet's parts per layout

# The part joints by name (psumnet_parts' module docstring): centre first, left, then right side.
PSUMNET_PARTS = {
    ("hand", "nw_ucla20"): ["ShoulderCenter"] + [f"{j}{s}" for s in ("Left", "Right")
                                                for j in ("Shoulder", "Elbow", "Wrist", "Hand")],
    ("hand", "blazepose33"): [f"{s}_{j}" for s in ("left", "right")
                              for j in ("shoulder", "elbow", "wrist", "pinky", "index", "thumb")],
    ("leg", "nw_ucla20"): ["HipCenter"] + [f"{j}{s}" for s in ("Left", "Right") for j in ("Hip", "Knee", "Ankle", "Foot")],
    ("leg", "blazepose33"): [f"{s}_{j}" for s in ("left", "right") for j in ("hip", "knee", "ankle", "heel", "foot_index")],
    ("leg", "coco17"): [f"{s}_{j}" for s in ("left", "right") for j in ("hip", "knee", "ankle")],
}


@pytest.mark.parametrize("stream, layout", sorted(PSUMNET_PARTS))
def test_psumnet_parts_are_trees_over_the_named_joints(stream: str, layout: str) -> None:
    graph, joints = part_graph(stream, layout=layout)
    lay = get_layout(layout)
    assert [lay.joint_names[j] for j in joints] == PSUMNET_PARTS[stream, layout]
    assert graph.num_joints == len(joints) and len(graph.edges) == len(joints) - 1
    assert (graph.hop_distance()[0] < len(joints)).all()  # connected: a tree rooted at local 0
    for child, parent in graph.edges:  # every edge is a bone of the layout, or joins the two sides' roots
        a, b = joints[child], joints[parent]
        assert lay.parents[a] == b or lay.parents[b] == a or {a, b} <= set(lay.index(n) for n in lay.joint_names
                                                                           if n.endswith(("shoulder", "hip")))


def test_psumnet_on_coco17_has_no_hand_stream() -> None:
    assert layout_streams("coco17") == ("body", "leg")
    assert layout_streams("ntu25") == layout_streams("blazepose33") == ("body", "hand", "leg")
    assert tuple(create_model("psumnet", num_classes=3, layout="coco17").streams) == ("body", "leg")
    for build in (lambda: create_model("psumnet_hand", layout="coco17"),
                  lambda: create_model("psumnet", layout="coco17", streams=("body", "hand"))):
        with pytest.raises(UsageError, match="no hand joint beyond the wrist") as error:
            build()
        assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="NTU-25"):  # the released miswiring exists on NTU-25 only
        create_model("psumnet_leg", layout="coco17", leg_graph="official")


def test_psumnet_part_streams_see_only_their_joints_on_blazepose33() -> None:
    torch.manual_seed(0)
    hand = create_model("psumnet_hand", num_classes=3, layout="blazepose33").eval()
    x = torch.randn(1, 2, 8, 33, 12, generator=torch.Generator().manual_seed(3))
    changed = x.clone()
    changed[..., get_layout("blazepose33").index("left_heel"), :] += 3.0
    pinky = x.clone()
    pinky[..., get_layout("blazepose33").index("left_pinky"), :] += 3.0
    with torch.no_grad():
        torch.testing.assert_close(hand(changed), hand(x))
        assert not torch.allclose(hand(pinky), hand(x))


# ---------------------------------------------------------------- FineTec's regions, MS-CLR, ACLNet

@pytest.mark.parametrize("layout, sizes", [("blazepose33", (15, 5, 5, 4, 4)), ("nw_ucla20", (8, 3, 3, 3, 3))])
def test_finetec_regions_partition_the_new_layouts(layout: str, sizes: tuple) -> None:
    regions = finetec_regions(layout)
    assert tuple(len(ids) for _, ids in regions) == sizes
    assert sorted(j for _, ids in regions for j in ids) == list(range(get_layout(layout).num_joints))
    part_of = {j: name for name, ids in body_parts(layout) for j in ids}
    for left, right in get_layout(layout).mirror_pairs:  # mirror twins sit in mirrored parts
        assert part_of[right] == part_of[left].replace("left", "right")


def test_stgcn_unified_layout_is_convention_and_adds_a_missing_one() -> None:
    small = GCNS["stgcn_unified"]
    torch.manual_seed(0)
    by_convention = create_model("stgcn_unified", num_classes=4, convention="coco17", **small)
    torch.manual_seed(0)
    by_layout = create_model("stgcn_unified", num_classes=4, layout="coco17", **small)
    assert by_layout.convention == "coco17" and by_layout.conventions == by_convention.conventions
    assert all(torch.equal(a, b) for a, b in zip(by_layout.state_dict().values(), by_convention.state_dict().values()))
    ucla = create_model("stgcn_unified", num_classes=4, layout="nw_ucla20", **small)
    assert ucla.conventions == ("ntu25", "coco17", "blazepose33", "nw_ucla20") and ucla.num_joints == 33
    assert "A_nw_ucla20" in ucla.state_dict() and "nw_ucla20" in ucla.data_bn
    with pytest.raises(ValueError, match="disagree"):
        create_model("stgcn_unified", layout="coco17", convention="ntu25", **small)
    with pytest.raises(ValueError, match="not one of the model's conventions"):  # convention stays strict
        create_model("stgcn_unified", convention="nw_ucla20", **small)


def test_aclnet_layout_sets_the_joint_count_of_its_random_graphs() -> None:
    model = create_model("aclnet", num_classes=4, layout="coco17", base_channels=8)
    assert model.num_joints == 17 and model.topology_dim == 17 * 17
    assert all(block.gcn.A.shape == (8, 17, 17) for block in model.blocks)  # 8 learnable graphs per block
    with pytest.raises(ValueError, match="disagrees"):
        create_model("aclnet", layout="coco17", num_joints=25)
