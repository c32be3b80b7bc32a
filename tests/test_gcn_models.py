"""ST-GCN, CTR-GCN and ST-GCN++: sizes, shapes, and properties only a correct implementation has."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pytest
import torch

from actionfusion.modalities.skeleton import ctrgcn as ctrgcn_module
from actionfusion.modalities.skeleton import stgcn as stgcn_module
from actionfusion.modalities.skeleton import stgcnpp as stgcnpp_module
from actionfusion.modalities.skeleton.ctrgcn import CTRGC, CTRGCN, relation_width
from actionfusion.modalities.skeleton.graphs import (
    column_normalize,
    ctrgcn_partition,
    ntu25_graph,
    stgcn_spatial_partition,
)
from actionfusion.modalities.skeleton.stgcn import STGCN, stgcn_official_partition
from actionfusion.modalities.skeleton.stgcnpp import STGCNPP
from actionfusion.registry import create_model, list_models

assert ctrgcn_module and stgcn_module and stgcnpp_module  # imported to register the models

MODEL_NAMES = ("stgcn", "ctrgcn", "stgcnpp")


pytestmark = pytest.mark.usefixtures("one_thread")


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def clip_batch(n: int = 2, t: int = 16, c: int = 3, seed: int = 0) -> torch.Tensor:
    """float32 [N, 2, T, 25, C] with a distinct second person."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, t, 25, c, generator=g)


def build(name: str, **kwargs: object) -> torch.nn.Module:
    torch.manual_seed(0)
    if name == "stgcn":
        kwargs.setdefault("block_dropout", 0.0)
    return create_model(name, **kwargs)


# ---------------------------------------------------------------- sizes and shapes


@pytest.mark.parametrize(
    "name, num_classes, expected",
    [
        ("ctrgcn", 60, 1_446_672),  # official Model, counted in shared/specs/skeleton-gcn.md
        ("ctrgcn", 120, 1_462_092),
        ("stgcn", 60, 3_098_832),  # st-gcn ntu-xsub config, edge importance on
        # pyskl STGCN (gcn_adaptive='init', gcn_with_res, mstcn) 1,387,724 + GCNHead 256 -> C
        ("stgcnpp", 60, 1_403_144),
        ("stgcnpp", 120, 1_418_564),
    ],
)
def test_parameter_counts_match_the_reference_definitions(name: str, num_classes: int, expected: int) -> None:
    assert n_params(build(name, num_classes=num_classes)) == expected


def test_stgcnpp_is_about_1_40m_parameters() -> None:
    assert abs(n_params(build("stgcnpp", num_classes=60)) - 1.40e6) / 1.40e6 < 0.01


def test_registered_as_skeleton_models() -> None:
    assert set(MODEL_NAMES) <= set(list_models(modality="skeleton"))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_encoder_output_shapes_and_pooling(name: str) -> None:
    model = build(name, num_classes=7)
    x = clip_batch()
    feats = model.forward_features(x)
    assert feats.sequence.shape == (2, 4, 256)
    assert feats.pooled.shape == (2, 256)
    assert feats.spatial.shape == (2, 256, 4, 25)
    torch.testing.assert_close(feats.pooled, feats.sequence.mean(dim=1))
    torch.testing.assert_close(feats.sequence, feats.spatial.mean(dim=-1).transpose(1, 2))
    logits = model.forward_head(feats)
    assert logits.shape == (2, 7)
    torch.testing.assert_close(model(x), logits)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_batch_permutation_equivariance(name: str) -> None:
    # Training-mode BatchNorm statistics are permutation-invariant, so logits must permute
    # with the clips: mixing persons of different clips (a wrong "(n m)" fold) breaks this.
    model = build(name, num_classes=5)
    model.train()
    x = clip_batch(n=4, seed=1)
    perm = torch.tensor([2, 0, 3, 1])
    with torch.no_grad():
        torch.testing.assert_close(model(x)[perm], model(x[perm]), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ("stgcn", "stgcnpp"))
def test_person_order_does_not_matter_with_shared_input_norm(name: str) -> None:
    model = build(name, num_classes=5)
    x = clip_batch(seed=2)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x.flip(1)), rtol=1e-4, atol=1e-5)


def test_ctrgcn_per_person_input_norm_requires_its_person_count() -> None:
    with pytest.raises(ValueError, match="M = 2"):
        build("ctrgcn")(torch.zeros(1, 1, 8, 25, 3))


def test_ctrgcn_relation_width_rule() -> None:
    assert relation_width(3) == relation_width(9) == 8
    assert relation_width(12) == 1 and relation_width(64) == 8 and relation_width(256) == 32
    with pytest.raises(ValueError):
        relation_width(6)
    model = build("ctrgcn", in_channels=12, num_classes=4)
    assert model(torch.randn(2, 2, 8, 25, 12)).shape == (2, 4)


# ---------------------------------------------------------------- CTR-GCN topology refinement


def test_refined_topology_is_the_static_graph_while_alpha_is_zero() -> None:
    model = build("ctrgcn")
    unit = model.blocks[1].gcn
    assert float(unit.alpha.detach()) == 0.0
    assert torch.all(unit.bn.weight.detach() == 1e-6)
    np.testing.assert_allclose(unit.A.detach().numpy(), ctrgcn_partition(ntu25_graph("A")))
    h = torch.randn(2, 64, 8, 25)
    for k, ctrgc in enumerate(unit.convs):
        a_hat = ctrgc.refined_topology(h, unit.A[k], unit.alpha)
        assert a_hat.shape == (2, 64, 25, 25)
        torch.testing.assert_close(a_hat, unit.A[k].expand_as(a_hat))
    with torch.no_grad():
        unit.alpha.fill_(0.5)
    a_hat = unit.convs[0].refined_topology(h, unit.A[0], unit.alpha)
    refinement = a_hat - unit.A[0]
    assert refinement.abs().max() > 1e-3
    # the refinement differs per channel and per sample (channel-wise, input-dependent)
    assert (refinement[:, 0] - refinement[:, 1]).abs().max() > 1e-4
    assert (refinement[0] - refinement[1]).abs().max() > 1e-4


@pytest.mark.parametrize("aggregation, source, target", [("correct", 5, 0), ("pyskl_transpose", 0, 5)])
def test_ctrgc_aggregates_row_u_from_column_v(aggregation: str, source: int, target: int) -> None:
    # A[u=0, v=5] = 1 only: y_u = sum_v A[u, v] h_v moves joint 5's feature to joint 0;
    # the transposed einsum moves joint 0's feature to joint 5 instead.
    torch.manual_seed(0)
    ctrgc = CTRGC(16, 8, aggregation)
    a = torch.zeros(25, 25)
    a[0, 5] = 1.0
    x = torch.randn(2, 16, 6, 25)
    with torch.no_grad():
        y = ctrgc(x, a, torch.zeros(1))
        h = ctrgc.conv3(x)
    torch.testing.assert_close(y[..., target], h[..., source])
    others = [j for j in range(25) if j != target]
    assert y[..., others].abs().max() == 0


def test_correct_and_transpose_aggregations_differ_on_the_directed_graph() -> None:
    a = ctrgcn_partition(ntu25_graph("A"))
    assert not np.allclose(a[1], a[1].T)
    correct = build("ctrgcn", num_classes=5)
    with torch.no_grad():  # the units' BN gamma starts at 1e-6, muting the graph branch at init
        for block in correct.blocks:
            block.gcn.bn.weight.fill_(1.0)
    transpose = build("ctrgcn", num_classes=5, ctrgc_aggregation="pyskl_transpose")
    transpose.load_state_dict(correct.state_dict())
    x = clip_batch(seed=3)
    with torch.no_grad():
        assert (correct(x) - transpose(x)).abs().max() > 1e-3
    with pytest.raises(ValueError):
        build("ctrgcn", ctrgc_aggregation="transpose")


# ---------------------------------------------------------------- ST-GCN partition


@pytest.mark.parametrize("partition", (stgcn_spatial_partition, stgcn_official_partition))
def test_stgcn_partitions_split_the_normalised_adjacency(partition: Callable[..., np.ndarray]) -> None:
    graph = ntu25_graph("A")
    a = partition(graph)
    assert a.shape == (3, 25, 25)
    full = column_normalize(((graph.adjacency() + np.eye(25)) > 0).astype(np.float32))
    np.testing.assert_allclose(a.sum(axis=0), full, atol=1e-6)
    assert np.all((a > 0).sum(axis=0) <= 1)  # each edge in exactly one subset


def test_stgcn_official_partition_keeps_the_reference_truncated_distances() -> None:
    # The reference (hop distances cut at max_hop = 1) puts every edge between joints far
    # from the centre in the root subset: its subsets have 25, 40, 8 entries (counted by
    # running st-gcn@221c0e1 net/utils/graph.py); true distances give 25, 24, 24.
    official = stgcn_official_partition(ntu25_graph("A"))
    corrected = stgcn_spatial_partition(ntu25_graph("A"))
    assert [int(np.count_nonzero(s)) for s in official] == [25, 40, 8]
    assert [int(np.count_nonzero(s)) for s in corrected] == [25, 24, 24]
    model = build("stgcn", partition="official")
    np.testing.assert_allclose(model.A.numpy(), official)


def test_stgcn_edge_importance_weights_the_graph() -> None:
    model = build("stgcn")
    with torch.no_grad():
        model.edge_importance[0].zero_()
    assert torch.count_nonzero(model.block_adjacency(0)) == 0
    torch.testing.assert_close(model.block_adjacency(1), model.A)
    assert build("stgcn", edge_importance=False).edge_importance is None


# ---------------------------------------------------------------- training sanity


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_a_gradient_step_reduces_the_loss_on_a_fixed_batch(name: str) -> None:
    model = build(name, num_classes=3)
    model.train()
    x = clip_batch(n=4, seed=4)
    y = torch.tensor([0, 1, 2, 1])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.0)
    loss_fn = torch.nn.CrossEntropyLoss()
    losses = []
    for _ in range(3):
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    with torch.no_grad():
        final = float(loss_fn(model(x), y))
    assert final < losses[0]
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
