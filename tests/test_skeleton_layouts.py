"""Joint layouts, their trees and graphs, and conversions by joint name."""

from __future__ import annotations

import numpy as np
import pytest

from actionfusion.datasets import nw_ucla
from actionfusion.datasets.ntu import constants as ntu
from actionfusion.modalities.skeleton.graphs import ntu25_graph
from actionfusion.modalities.skeleton.layouts import (conversion_table, convert_layout, get_layout, layout_graph,
                                                      list_layouts)


def _indexed(num_joints: int, lead: tuple[int, ...] = (2, 3)) -> np.ndarray:
    """[*lead, V, 3] with joint v at (v + 1, 10 (v + 1), 100 (v + 1)) times a per-frame factor."""
    v = np.arange(1, num_joints + 1, dtype=np.float32)
    base = np.stack([v, 10 * v, 100 * v], axis=-1)  # [V, 3]
    factor = np.arange(1, int(np.prod(lead)) + 1, dtype=np.float32).reshape(lead + (1, 1))
    return base * factor


@pytest.mark.parametrize("name", ["ntu25", "coco17", "blazepose33", "nw_ucla20"])
def test_every_layout_is_a_tree_rooted_at_its_center(name: str) -> None:
    lay = get_layout(name)
    assert len(lay.parents) == lay.num_joints == len(set(lay.joint_names))
    assert lay.parents[lay.center] == -1 and list(lay.parents).count(-1) == 1
    for v in range(lay.num_joints):
        seen, u = set(), v
        while u != lay.center:
            assert u not in seen, f"cycle through joint {lay.joint_names[u]}"
            seen.add(u)
            u = lay.parents[u]
    graph = layout_graph(name)
    assert graph.num_joints == lay.num_joints and len(graph.edges) == lay.num_joints - 1
    assert (graph.hop_distance() < lay.num_joints).all()  # connected


@pytest.mark.parametrize("name", ["ntu25", "coco17", "blazepose33", "nw_ucla20"])
def test_mirror_pairs_join_left_and_right_names(name: str) -> None:
    lay = get_layout(name)
    sided = [n for n in lay.joint_names if "left" in n.lower() or "right" in n.lower()]
    assert 2 * len(lay.mirror_pairs) == len(sided)
    for left, right in lay.mirror_pairs:
        a, b = lay.joint_names[left], lay.joint_names[right]
        assert a.replace("left", "right").replace("Left", "Right") == b


def test_ntu25_reuses_the_constants_and_matches_the_gcn_bone_pairs() -> None:
    lay = get_layout("ntu25")
    assert lay.joint_names == ntu.JOINT_NAMES and lay.center == ntu.CENTER_JOINT
    # the tree is the CTR-GCN/pyskl bone tree: the edges of graph variant A
    assert set(lay.edges()) == set(ntu25_graph("A").edges)
    assert layout_graph("ntu25", "B") == ntu25_graph("B")
    # it agrees with the official connecting_joint wherever the official edge points away from the root
    official = {(c, p) for c, p in enumerate(ntu.JOINT_PARENTS)} | {(p, c) for c, p in enumerate(ntu.JOINT_PARENTS)}
    body = [v for v in range(25) if lay.parents[v] >= 0 and not lay.joint_names[v].startswith("HandTip")]
    assert all((v, lay.parents[v]) in official for v in body)


def test_nw_ucla_reuses_the_dataset_constants() -> None:
    lay = get_layout("nw_ucla20")
    assert lay.joint_names == nw_ucla.JOINT_NAMES
    assert lay.joint_names[lay.center] == "ShoulderCenter"


def test_unknown_layout_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="coco17"):
        get_layout("h36m")
    assert set(list_layouts()) == {"ntu25", "coco17", "blazepose33", "nw_ucla20"}


def test_blazepose_to_coco_maps_every_joint_by_name() -> None:
    blaze, coco = get_layout("blazepose33"), get_layout("coco17")
    x = _indexed(33)
    y = convert_layout(x, blaze, coco)
    assert y.shape == (2, 3, 17, 3)
    for v, name in enumerate(coco.joint_names):
        np.testing.assert_array_equal(y[..., v, :], x[..., blaze.index(name), :])
    assert all(q == "exact" for _, q in conversion_table(blaze, coco).values())


def test_blazepose_to_ntu_exact_and_approximated_joints() -> None:
    blaze, lay = get_layout("blazepose33"), get_layout("ntu25")
    x = _indexed(33)
    y = convert_layout(x, blaze, lay)
    b = lambda n: x[..., blaze.index(n), :]  # noqa: E731
    t = lambda n: y[..., lay.index(n), :]  # noqa: E731
    for side, kin in (("left", "Left"), ("right", "Right")):
        for k, c in (("Shoulder", "shoulder"), ("Elbow", "elbow"), ("Wrist", "wrist"), ("Hip", "hip"),
                     ("Knee", "knee"), ("Ankle", "ankle")):
            np.testing.assert_allclose(t(f"{k}{kin}"), b(f"{side}_{c}"))
        np.testing.assert_allclose(t(f"Thumb{kin}"), b(f"{side}_thumb"))
    np.testing.assert_allclose(t("SpineBase"), (b("left_hip") + b("right_hip")) / 2, rtol=1e-6)
    np.testing.assert_allclose(t("SpineShoulder"), (b("left_shoulder") + b("right_shoulder")) / 2, rtol=1e-6)
    np.testing.assert_allclose(t("SpineMid"), (t("SpineBase") + t("SpineShoulder")) / 2, rtol=1e-6)
    table = conversion_table(blaze, lay)
    approx = {n for n, (_, q) in table.items() if q == "approx"}
    assert approx == {"SpineBase", "SpineMid", "SpineShoulder", "Neck", "Head", "HandLeft", "HandRight",
                      "HandTipLeft", "HandTipRight", "ThumbLeft", "ThumbRight", "FootLeft", "FootRight"}
    assert len(table) == 25  # every NTU joint has a source


def test_coco_to_ntu_missing_hands_follow_the_missing_policy() -> None:
    coco, lay = get_layout("coco17"), get_layout("ntu25")
    x = _indexed(17)
    hand = lay.index("HandTipLeft")
    assert (convert_layout(x, coco, lay)[..., hand, :] == 0).all()
    assert np.isnan(convert_layout(x, coco, lay, missing="nan")[..., hand, :]).all()
    nearest = convert_layout(x, coco, lay, missing="nearest")
    np.testing.assert_array_equal(nearest[..., hand, :], x[..., coco.index("left_wrist"), :])
    np.testing.assert_array_equal(nearest[..., lay.index("FootRight"), :], x[..., coco.index("right_ankle"), :])


def test_ntu_to_coco_has_no_eyes_or_ears_unless_nearest() -> None:
    coco, lay = get_layout("coco17"), get_layout("ntu25")
    x = _indexed(25)
    y = convert_layout(x, lay, coco)
    for name in ("left_eye", "right_eye", "left_ear", "right_ear"):
        assert (y[..., coco.index(name), :] == 0).all()
    np.testing.assert_array_equal(y[..., coco.index("left_knee"), :], x[..., lay.index("KneeLeft"), :])
    z = convert_layout(x, lay, coco, missing="nearest")
    np.testing.assert_array_equal(z[..., coco.index("right_ear"), :], x[..., lay.index("Head"), :])


def test_a_missing_source_joint_zeroes_the_joints_made_from_it() -> None:
    blaze, lay = get_layout("blazepose33"), get_layout("ntu25")
    x = _indexed(33)
    x[0, 1, blaze.index("left_hip")] = 0.0
    y = convert_layout(x, blaze, lay)
    for name in ("SpineBase", "SpineMid", "HipLeft"):
        assert (y[0, 1, lay.index(name)] == 0).all()
        assert (y[0, 0, lay.index(name)] != 0).all()
    assert (y[0, 1, lay.index("HipRight")] != 0).all()


def test_kinect_v1_and_v2_round_trip_through_names() -> None:
    ucla, lay = get_layout("nw_ucla20"), get_layout("ntu25")
    x = _indexed(25)
    back = convert_layout(convert_layout(x, lay, ucla), ucla, lay)
    shared = [lay.index(n) for n in ntu.JOINT_NAMES if n not in ("Neck", "HandTipLeft", "ThumbLeft",
                                                                  "HandTipRight", "ThumbRight")]
    np.testing.assert_array_equal(back[..., shared, :], x[..., shared, :])
    assert convert_layout(x, lay, ucla)[..., ucla.index("HipCenter"), :].tolist() == x[..., 0, :].tolist()


def test_pairs_without_a_table_go_through_ntu25() -> None:
    blaze, ucla = get_layout("blazepose33"), get_layout("nw_ucla20")
    x = _indexed(33)
    y = convert_layout(x, blaze, ucla)
    mid_hip = (x[..., blaze.index("left_hip"), :] + x[..., blaze.index("right_hip"), :]) / 2
    np.testing.assert_allclose(y[..., ucla.index("HipCenter"), :], mid_hip, rtol=1e-6)
    with pytest.raises(ValueError, match="expected"):
        convert_layout(x[..., :20, :], blaze, ucla)
