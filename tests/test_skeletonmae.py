"""SkeletonMAE: GIN aggregation against an independent dense reference, part-aware joint masking and
edge masking, the scaled cosine error on hidden joints only, exact parameter counts, NTU-25 and
COCO-17, the encoder contract with the STRL head, and a few optimiser steps that learn."""

from __future__ import annotations

import math
from typing import Dict, List

import pytest
import torch

from actionfusion.modalities.encoder_contract import check_encoder
from actionfusion.modalities.skeleton.body_parts import body_parts, part_of_joint
from actionfusion.modalities.skeleton.gin import GINConv, neighbour_sum_dense, neighbour_sum_index_add
from actionfusion.modalities.skeleton.layouts import get_layout
from actionfusion.modalities.skeleton.skeletonmae import SkeletonMAE, SkeletonMAEEncoder, STRLHead
from actionfusion.objectives import create_objective
from actionfusion.objectives.skeletonmae import (
    SkeletonMAEDecoder,
    SkeletonMAEPretraining,
    masked_mean_squared_error,
    scaled_cosine_error,
)
from actionfusion.objectives.skeletonmae_masking import (
    edge_keep_mask,
    joint_mask,
    masked_adjacency,
    masked_joint_count,
    parts_hidden,
)
from actionfusion.registry import create_model, list_models

pytestmark = pytest.mark.usefixtures("one_thread")

LAYOUTS = {"ntu25": 25, "coco17": 17}


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def neighbour_lists(layout: str) -> List[List[int]]:
    """Each joint's neighbours, read from the layout's parent list (not from graphs.py)."""
    lay = get_layout(layout)
    neighbours: List[List[int]] = [[] for _ in range(lay.num_joints)]
    for child, parent in enumerate(lay.parents):
        if parent >= 0:
            neighbours[child].append(parent)
            neighbours[parent].append(child)
    return neighbours


def reference_neighbour_sum(x: torch.Tensor, layout: str, keep: Dict = None) -> torch.Tensor:
    """Loop over graphs and joints: sum of the neighbours' features (``keep[(n, t)]`` a set of kept
    undirected edges, as frozensets, where given)."""
    out = torch.zeros_like(x)
    neighbours = neighbour_lists(layout)
    for n in range(x.shape[0]):
        for t in range(x.shape[1]):
            for v, around in enumerate(neighbours):
                for u in around:
                    if keep is None or frozenset((u, v)) in keep[(n, t)]:
                        out[n, t, v] += x[n, t, u]
    return out


# --- GIN ------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("aggregation", ["dense", "index_add"])
def test_gin_aggregation_equals_a_dense_reference(layout: str, aggregation: str) -> None:
    v = LAYOUTS[layout]
    encoder = SkeletonMAEEncoder(layout=layout, aggregation=aggregation)
    layer = encoder.layers[0]
    x = torch.randn(2, 3, v, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = x + reference_neighbour_sum(x, layout)  # eps = 0: GIN-0
    torch.testing.assert_close(layer.double().aggregate(x), expected)


def test_gin_layer_is_the_mlp_of_the_aggregate_with_its_eps() -> None:
    x = torch.randn(2, 4, 17, 5, generator=torch.Generator().manual_seed(1))
    layer = GINConv(5, 6, _dense("coco17").numpy(), hidden_features=7, eps=0.25, learn_eps=True).eval()
    with torch.no_grad():
        layer.norm.running_mean.uniform_(-1, 1)
        layer.norm.running_var.uniform_(0.5, 2)
    aggregate = 1.25 * x + reference_neighbour_sum(x, "coco17")
    hidden = layer.fc1(aggregate)
    hidden = (hidden - layer.norm.running_mean) / torch.sqrt(layer.norm.running_var + layer.norm.eps)
    expected = layer.fc2(torch.relu(hidden * layer.norm.weight + layer.norm.bias))
    torch.testing.assert_close(layer(x), expected)
    assert layer.eps.requires_grad and n_params(layer) == (5 + 1) * 7 + 2 * 7 + (7 + 1) * 6 + 1


@pytest.mark.parametrize("aggregation", ["dense", "index_add"])
def test_per_graph_masked_adjacency_drops_exactly_those_edges(aggregation: str) -> None:
    layout, v = "ntu25", 25
    edges = torch.tensor(get_layout(layout).edges())
    gen = torch.Generator().manual_seed(2)
    keep = edge_keep_mask((2, 3), edges.shape[0], 0.3, torch.device("cpu"), generator=gen)
    assert (keep.sum(dim=-1) == edges.shape[0] - round(0.3 * 24)).all()  # 7 of 24 edges dropped per graph
    adjacency = masked_adjacency(edges, keep, v)
    assert torch.equal(adjacency, adjacency.transpose(-1, -2))
    kept = {(n, t): {frozenset(map(int, edges[e])) for e in range(edges.shape[0]) if keep[n, t, e]}
            for n in range(2) for t in range(3)}
    x = torch.randn(2, 3, v, 4, generator=gen, dtype=torch.float64)
    layer = GINConv(4, 4, _dense(layout).numpy(), aggregation=aggregation).double()
    torch.testing.assert_close(layer.aggregate(x, adjacency.double()), x + reference_neighbour_sum(x, layout, kept))


def _dense(layout: str) -> torch.Tensor:
    lay = get_layout(layout)
    dense = torch.zeros(lay.num_joints, lay.num_joints)
    for child, parent in lay.edges():
        dense[child, parent] = dense[parent, child] = 1.0
    return dense


def test_the_two_neighbour_sums_agree() -> None:
    dense = _dense("ntu25")
    target, source = dense.nonzero(as_tuple=True)
    x = torch.randn(3, 5, 25, 8, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(neighbour_sum_dense(x, dense), neighbour_sum_index_add(x, source, target))


# --- masking --------------------------------------------------------------------------------


def test_body_parts_follow_the_paper_on_coco17_and_cover_ntu25() -> None:
    sizes = {name: len(joints) for name, joints in body_parts("coco17")}
    assert sizes == {"head": 5, "torso": 4, "left_arm": 2, "right_arm": 2, "left_leg": 2, "right_leg": 2}
    assert sorted(j for _, joints in body_parts("ntu25") for j in joints) == list(range(25))
    assert part_of_joint("coco17")[0] == 0 and part_of_joint("coco17")[16] == 5  # nose: head; right ankle: right leg


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("rule", ["parts", "stratified", "uniform"])
@pytest.mark.parametrize("ratio", [0.3, 0.5, 0.75])
def test_exactly_the_configured_share_of_joints_is_hidden(layout: str, rule: str, ratio: float) -> None:
    v = LAYOUTS[layout]
    parts = torch.tensor(part_of_joint(layout))
    mask = joint_mask((64, 8), parts, ratio, rule, generator=torch.Generator().manual_seed(4))
    expected = math.floor(ratio * v + 0.5)
    assert mask.shape == (64, 8, v) and (mask.sum(dim=-1) == expected).all()


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_part_rule_hides_whole_parts_and_at_most_one_partly(layout: str) -> None:
    parts = torch.tensor(part_of_joint(layout))
    sizes = torch.bincount(parts)
    mask = joint_mask((500,), parts, 0.5, "parts", generator=torch.Generator().manual_seed(5))
    whole, partial = parts_hidden(mask, parts)
    assert (partial <= 1).all() and (whole >= 1).all()
    # the hidden joints of the partly hidden part are fewer than the part: whole parts come first
    hidden = torch.nn.functional.one_hot(parts).T.to(torch.int64)  # [P, V]
    per_part = mask.to(torch.int64) @ hidden.T  # [500, P]
    assert ((per_part == 0) | (per_part == sizes)).sum(dim=-1).ge(len(sizes) - 1).all()
    # every part is sometimes hidden whole (random part order)
    assert ((per_part == sizes).any(dim=0)).all()


def test_part_rule_on_coco17_with_a_whole_number_of_parts_hides_whole_parts_only() -> None:
    parts = torch.tensor(part_of_joint("coco17"))
    # ratio 0.25 -> 4 joints: torso, two limbs, or a partial head/torso mixture; never 3 different parts
    mask = joint_mask((400,), parts, 0.25, "parts", generator=torch.Generator().manual_seed(6))
    whole, partial = parts_hidden(mask, parts)
    assert (whole + partial <= 3).all() and (partial <= 1).all()
    uniform = joint_mask((400,), parts, 0.25, "uniform", generator=torch.Generator().manual_seed(6))
    u_whole, u_partial = parts_hidden(uniform, parts)
    assert (u_partial >= 2).float().mean() > 0.5  # scattered joints, unlike the part rule


def test_stratified_rule_spreads_the_hidden_joints_over_every_part() -> None:
    parts = torch.tensor(part_of_joint("ntu25"))
    sizes = torch.bincount(parts).double()
    mask = joint_mask((300,), parts, 0.5, "stratified", generator=torch.Generator().manual_seed(7))
    per_part = (mask.to(torch.int64) @ torch.nn.functional.one_hot(parts).to(torch.int64)).double()
    share = 13 * sizes / 25  # head 1.04, torso 3.64, arms 2.6, legs 1.56
    assert ((per_part - share).abs() < 1).all()
    assert (per_part == torch.tensor([1.0, 4.0, 3.0, 3.0, 1.0, 1.0])).all()  # largest remainders
    assert mask[:, 2].float().mean() == pytest.approx(0.5, abs=0.1)  # which head joint: random


def test_masked_joint_count_rounds_half_up() -> None:
    assert [masked_joint_count(17, r) for r in (0.1, 0.3, 0.5, 0.75)] == [2, 5, 9, 13]
    assert [masked_joint_count(25, r) for r in (0.1, 0.3, 0.5, 0.75)] == [3, 8, 13, 19]
    with pytest.raises(ValueError):
        masked_joint_count(25, 1.0)


# --- loss -----------------------------------------------------------------------------------


def test_scaled_cosine_error_matches_its_formula_and_ignores_visible_joints() -> None:
    gen = torch.Generator().manual_seed(8)
    pred, target = torch.randn(4, 6, 25, 3, generator=gen), torch.randn(4, 6, 25, 3, generator=gen)
    mask = torch.rand(4, 6, 25, generator=gen) < 0.4
    loss = scaled_cosine_error(pred, target, mask, gamma=3.0)
    terms = [(1 - torch.dot(p, t) / (p.norm() * t.norm())) ** 3
             for p, t, m in zip(pred.reshape(-1, 3), target.reshape(-1, 3), mask.reshape(-1)) if m]
    torch.testing.assert_close(loss, torch.stack(terms).mean())
    changed = torch.where(mask.unsqueeze(-1), pred, torch.randn(4, 6, 25, 3, generator=gen) * 10)
    torch.testing.assert_close(scaled_cosine_error(changed, target, mask, 3.0), loss)
    torch.testing.assert_close(masked_mean_squared_error(changed, target, mask), masked_mean_squared_error(pred, target, mask))


def test_objective_loss_has_no_gradient_through_visible_joints() -> None:
    objective = create_objective("skeletonmae", encoder_dim=16)
    pred = torch.randn(2, 4, 25, 3, requires_grad=True)
    target = torch.randn(2, 4, 25, 3)
    target[0, 0, 3] = 0.0  # a missing joint: no target, never counted
    mask = joint_mask((2, 4), objective.part_of_joint, 0.5, "parts", generator=torch.Generator().manual_seed(9))
    mask[0, 0, 3] = True
    objective.reconstruction_loss(pred, target, mask).backward()
    grad_norm = pred.grad.norm(dim=-1)
    assert (grad_norm[~mask] == 0).all() and grad_norm[0, 0, 3] == 0
    assert (grad_norm[mask].sum() > 0)


def test_objective_masks_the_configured_share_and_skips_zero_padded_bodies() -> None:
    model = create_model("skeletonmae", num_classes=0, embed_dim=16, depth=1)
    objective = create_objective("skeletonmae", encoder_dim=16, mask_ratio=0.3, edge_mask_rate=0.2)
    x = torch.randn(3, 2, 8, 25, 3)
    x[:, 1] = 0.0  # every second body is padding
    seen = []
    original = model.encoder.forward_nodes

    def spy(nodes, adjacency=None):
        seen.append((nodes.detach().clone(), adjacency))
        return original(nodes, adjacency)

    model.encoder.forward_nodes = spy
    torch.manual_seed(0)
    out = objective(model, {"skeleton": x})
    nodes, adjacency = seen[0]
    assert nodes.shape == (3, 8, 25, 3)  # only the 3 present bodies
    hidden = (nodes == objective.mask_token.detach()).all(dim=-1)
    assert (hidden.sum(dim=-1) == 8).all()  # floor(0.3 * 25 + 0.5) = 8 of 25 per frame graph
    assert out.metrics["masked_fraction"] == pytest.approx(8 / 25)
    assert adjacency.shape == (3, 8, 25, 25) and (adjacency.sum(dim=(-1, -2)) == 2 * (24 - 5)).all()


# --- sizes ----------------------------------------------------------------------------------


def gin_params(fan_in: int, d: int) -> int:
    return (fan_in + 1) * d + 2 * d + (d + 1) * d


def test_parameter_counts_follow_their_formulas() -> None:
    d = 128
    encoder_formula = gin_params(3, d) + 2 * gin_params(d, d) + 3 * 2 * d + (d + 1) * d + 2 * d + gin_params(d, d)
    assert encoder_formula == 134_656
    assert n_params(create_model("skeletonmae", num_classes=0)) == 134_656
    assert n_params(create_model("skeletonmae", num_classes=0, layout="coco17")) == 134_656  # no per-joint weights
    assert n_params(create_model("skeletonmae", num_classes=0, segment_frames=4)) == 134_656 + 9 * d
    assert n_params(create_model("skeletonmae", num_classes=0, learn_eps=True)) == 134_656 + 4
    strl_block = d * 5 * d + d + 2 * d  # two branches of d/2 channels, kernel 5, BatchNorm
    strl = 2 * strl_block + d * 60 + 60
    assert strl == 172_348
    assert n_params(STRLHead(d, 60)) == 172_348
    assert n_params(create_model("skeletonmae", num_classes=60)) == 134_656 + 172_348 == 307_004
    assert n_params(create_model("skeletonmae", num_classes=60, head="linear")) == 134_656 + 7_740
    decoder = d * d + gin_params(d, d) + (d + 1) * d + (d + 1) * 3
    assert n_params(SkeletonMAEDecoder(d, 3, torch.zeros(25, 25))) == decoder == 66_563
    assert n_params(create_objective("skeletonmae")) == decoder + 3 == 66_566  # + the [MASK] token


# --- layouts, contract, learning ------------------------------------------------------------


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_pretraining_and_recognition_run_on_both_layouts(layout: str) -> None:
    v = LAYOUTS[layout]
    torch.manual_seed(0)
    model = create_model("skeletonmae", num_classes=0, layout=layout, embed_dim=16, depth=2, segment_frames=2)
    objective = create_objective("skeletonmae", layout=layout, encoder_dim=16, segment_frames=2, edge_mask_rate=0.1)
    out = objective(model, {"skeleton": torch.randn(2, 2, 8, v, 3)})
    out.loss.backward()
    assert torch.isfinite(out.loss) and out.batch_size == 2
    assert objective.mask_token.grad is not None and model.encoder.out_gin.fc2.weight.grad is not None
    for temporal in ("conv", "attention"):
        full = create_model("skeletonmae", num_classes=5, layout=layout, embed_dim=16, depth=2, strl_temporal=temporal)
        assert full(torch.randn(2, 2, 8, v, 3)).shape == (2, 5)
    with pytest.raises(ValueError, match="layout is"):
        other = "coco17" if layout == "ntu25" else "ntu25"
        create_objective("skeletonmae", layout=other, encoder_dim=16, segment_frames=2)(model, {
            "skeleton": torch.randn(2, 2, 8, v, 3)})


@torch.no_grad()
def test_encoder_contract_with_the_strl_head() -> None:
    assert "skeletonmae" in list_models()
    x = torch.randn(2, 2, 8, 25, 3)
    bare = create_model("skeletonmae", num_classes=0, embed_dim=16, depth=1).eval()
    full = create_model("skeletonmae", num_classes=7, embed_dim=16, depth=1).eval()
    for model in (bare, full):
        check_encoder(model)
        assert model.input_keys == ("skeleton",) and model.num_features == 16
    assert bare.get_classifier() is None and bare(x).shape == (2, 16)
    assert set(bare.state_dict()) < set(full.state_dict())
    assert all(k.startswith("head.") for k in set(full.state_dict()) - set(bare.state_dict()))
    feats = full.forward_features(x)
    assert feats.sequence.shape == (2, 8, 16) and feats.spatial.shape == (2, 16, 8, 25)
    assert feats.aux["person_tokens"].shape == (2, 2, 8, 25, 16)
    pre = full.forward_head(feats, pre_logits=True)
    assert pre.shape == (2, 16)
    torch.testing.assert_close(full.head.fc(pre), full.forward_head(feats))
    bare.reset_classifier(7)
    assert {k: v.shape for k, v in bare.state_dict().items()} == {k: v.shape for k, v in full.state_dict().items()}
    bare.reset_classifier(0)
    assert bare.get_classifier() is None
    frozen = create_model("skeletonmae", num_classes=3, embed_dim=16, depth=1, freeze_encoder=True).train()
    assert not frozen.encoder.training and not any(p.requires_grad for p in frozen.encoder.parameters())


def test_a_few_steps_lower_the_reconstruction_loss() -> None:
    torch.manual_seed(0)
    model = create_model("skeletonmae", num_classes=0, embed_dim=32, depth=2)
    objective = create_objective("skeletonmae", encoder_dim=32)
    assert isinstance(objective, SkeletonMAEPretraining) and not objective.needs_labels
    t = torch.linspace(0, 3, 16)
    base = torch.randn(25, 3)
    x = (base + 0.3 * torch.sin(t)[:, None, None] * torch.randn(25, 3)).expand(4, 1, 16, 25, 3).contiguous()
    x = x + 0.01 * torch.randn_like(x)
    optimizer = torch.optim.Adam([*model.parameters(), *objective.parameters()], lr=3e-3)
    losses = []
    for _ in range(30):
        out = objective(model, {"skeleton": x})
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(float(out.loss.detach()))
    assert sum(losses[-5:]) / 5 < 0.75 * sum(losses[:5]) / 5  # measured: 0.63 from 0.92


def test_bone_target_is_the_joint_minus_its_parent_and_the_root_has_none() -> None:
    objective = create_objective("skeletonmae", layout="coco17", encoder_dim=16, segment_frames=2, target="bone")
    nodes = torch.randn(2, 3, 17, 6)
    nodes[1, 2, 9] = 0.0  # left wrist missing in one graph: neither its bone nor its child's counts
    target, valid = objective.reconstruction_target(nodes)
    parents = get_layout("coco17").parents
    for v, p in enumerate(parents):
        if p < 0:
            assert not valid[..., v].any() and (target[..., v, :] == 0).all()
        else:
            torch.testing.assert_close(target[..., v, :], nodes[..., v, :] - nodes[..., p, :])
    assert not valid[1, 2, 9] and valid[0, 2, 9]
    assert valid.sum() == 2 * 3 * 16 - 1  # every non-root joint of every graph, but the missing wrist
