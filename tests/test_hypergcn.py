"""Hyper-GCN: parameter counts, shapes, the hypergraph operator and the divergence loss."""

from __future__ import annotations

import pytest
import torch

from actionfusion.modalities.skeleton import hypergcn as hg
from actionfusion.modalities.skeleton.hypergraph import AdaptiveHypergraph, hypergraph_adjacency, knn_incidence
from actionfusion.registry import create_model, list_models

torch.set_num_threads(1)


def _counts(model: torch.nn.Module) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(b.numel() for name, b in model.named_buffers() if name.endswith("prior_graph"))
    return trainable, frozen


@pytest.fixture(scope="module")
def model() -> hg.HyperGCN:
    torch.manual_seed(0)
    return hg.hypergcn(num_classes=60)


def test_parameter_counts_match_the_official_model(model: hg.HyperGCN) -> None:
    # official class (hyper_joints 3, virtual_ensemble): 1,041,677 trainable + 56,448 frozen
    trainable, frozen = _counts(model)
    assert abs(trainable - 1_041_677) <= 0.01 * 1_041_677
    assert frozen == 9 * 8 * 28 * 28
    large_trainable, _ = _counts(hg.hypergcn_large(num_classes=60))
    assert abs(large_trainable - 2_305_293) <= 0.01 * 2_305_293


def test_output_shapes_and_aux_loss(model: hg.HyperGCN) -> None:
    x = torch.randn(2, 2, 16, 25, 3)
    feats = model.forward_features(x)
    assert feats.sequence.shape == (2, 4, 256)
    assert feats.pooled.shape == (2, 256)
    assert feats.spatial.shape == (2, 256, 4, 25)
    assert feats.aux["loss_divergence"].shape == ()
    logits = model.forward_head(feats)
    assert logits.shape == (2, 60)
    torch.testing.assert_close(feats.pooled, feats.sequence.mean(dim=1))
    # the loss reaches the virtual joints of every layer
    (logits.sum() + feats.aux["loss_divergence"]).backward()
    assert all(block.gcn.virtual_joints.grad is not None for block in model.blocks)
    model.zero_grad()


def test_wrong_person_count_is_rejected(model: hg.HyperGCN) -> None:
    with pytest.raises(ValueError, match="expected"):
        model(torch.randn(1, 1, 8, 25, 3))


def test_incidence_rows_are_softmax_over_the_k_nearest() -> None:
    torch.manual_seed(1)
    embedding = torch.randn(2, 8, 28, 4)
    h = knn_incidence(embedding, 9)
    torch.testing.assert_close(h.sum(dim=-1), torch.ones(2, 8, 28))
    assert ((h > 0).sum(dim=-1) == 9).all()
    # a vertex is its own nearest neighbour, so it carries the largest weight of its row
    diagonal = torch.diagonal(h, dim1=-2, dim2=-1)
    torch.testing.assert_close(diagonal, h.max(dim=-1).values)
    # weights fall with distance
    distance = torch.cdist(embedding, embedding)
    u = 3
    row, dist = h[0, 0, u], distance[0, 0, u]
    chosen = row > 0
    order = torch.argsort(dist[chosen])
    assert (row[chosen][order][1:] <= row[chosen][order][:-1]).all()
    with pytest.raises(ValueError):
        knn_incidence(embedding, 29)


def test_hypergraph_operator_matches_the_matrix_formula() -> None:
    torch.manual_seed(2)
    h = knn_incidence(torch.randn(1, 2, 7, 3), 3)
    w = torch.randn(1, 2, 7)
    g = hypergraph_adjacency(h, w)
    for k in range(2):
        hk, wk = h[0, k].double(), torch.diag(w[0, k].double())
        de_inv = torch.diag(1.0 / hk.sum(dim=0))
        dv_inv = torch.diag(1.0 / (hk @ wk).abs().sum(dim=1))
        expected = dv_inv @ hk @ wk @ wk @ de_inv @ hk.T
        torch.testing.assert_close(g[0, k].double(), expected, rtol=1e-4, atol=1e-6)


def test_hypergraph_is_permutation_equivariant_and_multiscale_averages() -> None:
    torch.manual_seed(3)
    module = AdaptiveHypergraph(64, num_heads=8, hyperedge_k=9)
    pooled = torch.randn(2, 64, 28)
    perm = torch.randperm(28)
    g = module(pooled)
    g_perm = module(pooled[..., perm])
    torch.testing.assert_close(g_perm, g[:, :, perm][:, :, :, perm], rtol=1e-4, atol=1e-5)
    multi = AdaptiveHypergraph(64, num_heads=8, hyperedge_k=[5, 9])
    multi.load_state_dict(module.state_dict())
    single5 = AdaptiveHypergraph(64, num_heads=8, hyperedge_k=5)
    single5.load_state_dict(module.state_dict())
    torch.testing.assert_close(multi(pooled), (g + single5(pooled)) / 2)


def test_prior_graph_alpha_and_initial_state(model: hg.HyperGCN) -> None:
    gcn = model.blocks[0].gcn
    prior = gcn.prior_graph
    assert prior.shape == (8, 28, 28)
    assert torch.equal(prior, prior.transpose(-1, -2))
    # each virtual vertex: self-loop, linked to all 25 joints, not to the other virtual ones
    assert torch.equal(prior[0, 25:, :25], torch.ones(3, 25))
    assert torch.equal(prior[0, 25:, 25:], torch.eye(3))
    # variant-B hand tips: HandTipLeft (22) and ThumbLeft (23) both on HandLeft (8)
    assert prior[0, 21, 7] == 1 and prior[0, 22, 7] == 1 and prior[0, 21, 22] == 0
    torch.testing.assert_close(gcn.prior_operator().sum(dim=-1), torch.ones(8, 28))
    for block in model.blocks:
        assert block.gcn.alpha.item() == 1.0
        assert not any(p is block.gcn.prior_graph for p in model.parameters())


def test_divergence_loss_zero_for_orthogonal_and_one_for_identical() -> None:
    orthogonal = torch.eye(3, 16)
    identical = torch.randn(1, 16).repeat(3, 1)
    assert hg.virtual_joint_divergence([orthogonal, orthogonal * 5.0]).item() == pytest.approx(0.0, abs=1e-6)
    assert hg.virtual_joint_divergence([identical]).item() == pytest.approx(1.0, abs=1e-5)
    assert hg.virtual_joint_divergence([orthogonal, identical]).item() == pytest.approx(0.5, abs=1e-5)
    # opposed directions are not penalised (ReLU of the cosine)
    assert hg.virtual_joint_divergence([torch.stack([identical[0], -identical[0]])]).item() == pytest.approx(0.0)


def test_model_divergence_follows_its_virtual_joints() -> None:
    torch.manual_seed(4)
    model = hg.HyperGCN(num_classes=10, divergence_weight=2.0, virtual_init="upstream")
    x = torch.randn(1, 2, 8, 25, 3)
    # the release initialises the three virtual joints identical: cosine 1, loss = weight
    assert model.forward_features(x).aux["loss_divergence"].item() == pytest.approx(2.0, abs=1e-4)
    with torch.no_grad():
        for block in model.blocks:
            width = block.gcn.virtual_joints.shape[1]
            block.gcn.virtual_joints.copy_(torch.eye(3, width))
    assert model.forward_features(x).aux["loss_divergence"].item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="hyperedge_k"):
        hg.HyperGCN(num_classes=10, hyperedge_k=[9, 30])
    assert "loss_divergence" not in hg.HyperGCN(num_classes=10, divergence_weight=0.0).forward_features(x).aux


def test_a_few_sgd_steps_fit_a_fixed_batch() -> None:
    torch.manual_seed(5)
    model = hg.HyperGCN(num_classes=4)
    x, y = torch.randn(4, 2, 8, 25, 3), torch.tensor([0, 1, 2, 3])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(6):
        feats = model.forward_features(x)
        loss = torch.nn.functional.cross_entropy(model.forward_head(feats), y) + feats.aux["loss_divergence"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_registered_names() -> None:
    assert {"hypergcn", "hypergcn_large"} <= set(list_models(modality="skeleton"))
    assert isinstance(create_model("hypergcn_large", num_classes=7, hyperedge_k=[5, 9]), hg.HyperGCN)


def test_independent_virtual_joints_let_the_divergence_loss_act() -> None:
    """The release repeats one vector: identical virtual joints get identical gradients, so the
    divergence loss stays at 1 with no gradient. Independent draws give it a gradient that lowers it."""
    torch.manual_seed(0)
    upstream = hg.HyperGCN(num_classes=5, virtual_init="upstream")
    joints = [block.gcn.virtual_joints for block in upstream.blocks]
    loss = hg.virtual_joint_divergence(joints)
    loss.backward()
    assert loss.item() == pytest.approx(1.0, abs=1e-5)
    assert all(float(j.grad.abs().max()) < 1e-6 for j in joints)

    ours = hg.HyperGCN(num_classes=5)
    joints = [block.gcn.virtual_joints for block in ours.blocks]
    before = hg.virtual_joint_divergence(joints)
    assert before.item() < 0.9
    before.backward()
    with torch.no_grad():
        for j in joints:
            j -= 0.5 * j.grad
    assert hg.virtual_joint_divergence(joints).item() < before.item()
