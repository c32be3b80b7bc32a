"""PSUMNet: stream parameter counts, shapes, part graphs, part isolation, ensemble."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from actionfusion.modalities.skeleton import psumnet as ps
from actionfusion.modalities.skeleton.graphs import ctrgcn_partition
from actionfusion.registry import create_model, list_models

torch.set_num_threads(1)

# Analytic counts of the official streams at 60 classes (shared/specs/skeleton-gcn.md).
OFFICIAL_COUNTS = {"body": 1_448_418, "hand": 978_482, "leg": 499_898}


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.fixture(scope="module")
def model() -> ps.PSUMNet:
    torch.manual_seed(0)
    return ps.psumnet(num_classes=60).eval()


def _unified(seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(2, 2, 16, 25, 12, generator=generator)


def test_stream_parameter_counts(model: ps.PSUMNet) -> None:
    for name, expected in OFFICIAL_COUNTS.items():
        assert abs(_count(model.streams[name]) - expected) <= 0.01 * expected
        assert _count(getattr(ps, f"psumnet_{name}")(num_classes=60)) == _count(model.streams[name])
    assert abs(_count(model) - sum(OFFICIAL_COUNTS.values())) <= 0.01 * sum(OFFICIAL_COUNTS.values())
    # the corrected and official leg graphs have the same size
    assert _count(ps.PSUMNetStream("leg", leg_graph="official")) == _count(ps.PSUMNetStream("leg"))


def test_output_shapes(model: ps.PSUMNet) -> None:
    feats = model.forward_features(_unified())
    assert feats.pooled.shape == (2, 768)
    assert feats.sequence.shape == (2, 4, 768)
    assert feats.spatial.shape == (2, 256, 4, 25)
    assert model.forward_head(feats).shape == (2, 60)
    hand = model.streams["hand"].forward_features(_unified())
    assert hand.spatial.shape == (2, 256, 4, 13)
    with pytest.raises(ValueError, match="expected"):
        model(torch.randn(1, 2, 8, 25, 3))


def test_logits_are_the_weighted_sum_of_the_streams(model: ps.PSUMNet) -> None:
    x = _unified(1)
    with torch.no_grad():
        expected = sum(w * model.streams[s](x) for s, w in zip(ps.STREAMS, (2.0, 1.8, 0.7)))
        torch.testing.assert_close(model(x), expected)
    xview = ps.PSUMNet(num_classes=5, streams=("hand", "leg"), stream_weights="ntu60_xview")
    assert xview.stream_weights.tolist() == pytest.approx([1.6, 0.7])
    with pytest.raises(ValueError):
        ps.PSUMNet(streams=("body", "arm"))


def _ancestors(edges: tuple[tuple[int, int], ...], joint: int) -> list[int]:
    parent = dict(edges)
    chain = []
    while joint in parent:
        joint = parent[joint]
        chain.append(joint)
    return chain


def test_corrected_leg_graph_is_a_tree_with_each_foot_on_its_own_hip() -> None:
    graph, joints = ps.part_graph("leg", "corrected")
    ntu = [j + 1 for j in joints]  # 1-based NTU numbers of the local joints
    assert len(graph.edges) == graph.num_joints - 1
    children = [c for c, _ in graph.edges]
    assert len(set(children)) == len(children)  # one parent each: a tree rooted at SpineBase
    assert all(_ancestors(graph.edges, j)[-1] == 0 for j in range(1, graph.num_joints))
    foot_left, foot_right = ntu.index(16), ntu.index(20)
    assert [ntu[a] for a in _ancestors(graph.edges, foot_left)] == [15, 14, 13, 1]
    assert [ntu[a] for a in _ancestors(graph.edges, foot_right)] == [19, 18, 17, 1]


def test_official_leg_graph_reproduces_the_released_edges() -> None:
    graph, _ = ps.part_graph("leg", "official")
    # skelemoa/psumnet@8097774 graph/ntu_rgb_d.py leg_inward_ori_index, made 0-based
    released = ((1, 0), (2, 1), (3, 2), (4, 3), (4, 0), (5, 4), (6, 5), (7, 6))
    assert graph.edges == released
    assert graph.adjacency()[8].sum() == 0  # FootRight has no edge upstream
    stream = ps.PSUMNetStream("leg", leg_graph="official")
    np.testing.assert_array_equal(stream.blocks[0].gcn.adjacency.detach().numpy(), ctrgcn_partition(graph))
    with pytest.raises(ValueError):
        ps.part_graph("leg", "mirrored")


def test_part_streams_see_only_their_joints(model: ps.PSUMNet) -> None:
    x = _unified(2)
    leg_changed = x.clone()
    leg_changed[..., 14, :] += 3.0  # AnkleLeft (15)
    hand_changed = x.clone()
    hand_changed[..., 21, :] += 3.0  # HandTipLeft (22)
    hand, leg, body = (model.streams[s] for s in ("hand", "leg", "body"))
    with torch.no_grad():
        torch.testing.assert_close(hand(leg_changed), hand(x))
        torch.testing.assert_close(leg(hand_changed), leg(x))
        assert not torch.allclose(hand(hand_changed), hand(x))
        assert not torch.allclose(leg(leg_changed), leg(x))
        assert not torch.allclose(body(leg_changed), body(x))


def test_local_bones_follow_the_part_graph() -> None:
    joints = torch.randn(1, 1, 4, 25, 3)
    unified = torch.cat([joints, torch.zeros(1, 1, 4, 25, 9)], dim=-1)
    graph, index = ps.part_graph("hand")
    part = ps.local_bone_channels(unified[..., list(index), :], graph.edges)
    local = list(index)
    tip = local.index(21)  # HandTipLeft hangs off HandLeft here (off the thumb in the 25-joint variant A)
    torch.testing.assert_close(part[..., tip, 3:6], joints[..., 21, :] - joints[..., 7, :])
    assert torch.equal(part[..., local.index(20), 3:6], torch.zeros(1, 1, 4, 3))  # SpineShoulder: the root
    torch.testing.assert_close(part[:, :, 0, :, 9:12], part[:, :, 1, :, 3:6] - part[:, :, 0, :, 3:6])
    assert torch.equal(part[:, :, -1, :, 9:12], torch.zeros(1, 1, 13, 3))
    # the official leg edges give upstream's bones: FootLeft - SpineBase (the later edge wins)
    leg, leg_index = ps.part_graph("leg", "official")
    legs = ps.local_bone_channels(unified[..., list(leg_index), :], leg.edges)
    torch.testing.assert_close(legs[..., 4, 3:6], joints[..., 15, :] - joints[..., 0, :])
    assert torch.equal(legs[..., 8, 3:6], torch.zeros(1, 1, 4, 3))


def test_a_few_sgd_steps_fit_a_fixed_batch() -> None:
    torch.manual_seed(5)
    model = ps.PSUMNet(num_classes=4)
    x, y = _unified(3)[:, :, :8], torch.tensor([0, 1])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    losses = []
    for _ in range(6):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_registered_names() -> None:
    assert {"psumnet", "psumnet_body", "psumnet_hand", "psumnet_leg"} <= set(list_models(modality="skeleton"))
    leg = create_model("psumnet_leg", num_classes=7, leg_graph="official")
    assert leg.graph.edges == ps.part_graph("leg", "official")[0].edges
