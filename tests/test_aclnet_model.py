"""ACLNet's backbone (the ``aclnet`` model): size, shapes, the topology feature, the units' algebra."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from actionfusion.modalities.encoder_contract import check_encoder
from actionfusion.modalities.skeleton.aclnet import ACLNet
from actionfusion.modalities.skeleton.aclnet_blocks import DynamicGraphConv, GlobalJointMSTCN
from actionfusion.registry import create_model, list_models

pytestmark = pytest.mark.usefixtures("one_thread")

V, K = 25, 8


def analytic_parameters(num_classes: int, base: int = 96, ratio: float = 0.125, in_channels: int = 3) -> int:
    """ACLNet's parameter count from its definition (DG-STGCN blocks, upstream configs)."""
    def graph_conv(c_in: int, c_out: int) -> int:
        width = K * int(ratio * c_out)
        count = K * V * V + 2 * K                      # A, alpha, beta
        count += (c_in + 1) * width + 2 * width        # pre: conv + BN
        count += 2 * (c_in + 1) * width                # conv1, conv2
        count += (width + 1) * c_out + 2 * c_out       # post, bn
        if c_in != c_out:
            count += (c_in + 1) * c_out + 2 * c_out    # down: conv + BN
        return count

    def temporal(c: int) -> int:
        mid = c // 6
        first = c - 5 * mid
        count = V                                      # add_coeff
        count += (c + 1) * first + 2 * first + 3 * first * first + first        # (3, 1) branch
        count += 3 * ((c + 1) * mid + 2 * mid + 3 * mid * mid + mid)            # (3, 2..4) branches
        count += (c + 1) * mid + 2 * mid               # max-pool branch
        count += (c + 1) * mid                         # 1x1 branch
        count += 2 * c + (c + 1) * c + 2 * c           # transform (BN, conv), bn
        return count

    stages = [(base, 1)] * 4 + [(2 * base, 2)] + [(2 * base, 1)] * 2 + [(4 * base, 2)] + [(4 * base, 1)] * 2
    total, c_in = 2 * in_channels * V, in_channels    # data BN over V * C
    for i, (c_out, stride) in enumerate(stages):
        total += graph_conv(c_in, c_out) + temporal(c_out)
        if i > 0 and (c_in != c_out or stride != 1):
            total += (c_in + 1) * c_out + 2 * c_out    # residual: 1x1 conv + BN
        c_in = c_out
    return total + ((c_in + 1) * num_classes if num_classes else 0)


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def clips(n: int = 2, m: int = 2, t: int = 12, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, m, t, V, 3, generator=torch.Generator().manual_seed(seed))


def test_parameter_count_is_the_analytic_one() -> None:
    assert count(create_model("aclnet")) == analytic_parameters(60) == 3_728_796
    assert count(create_model("aclnet", num_classes=120)) == analytic_parameters(120)
    assert count(create_model("aclnet", num_classes=0)) == analytic_parameters(0) == 3_705_696
    assert count(ACLNet(num_classes=5, base_channels=48)) == analytic_parameters(5, base=48)
    # the objective's two projection heads, Linear(625 -> 256) each
    assert 2 * (V * V * 256 + 256) == 320_512


def test_contract_shapes_and_registration() -> None:
    assert "aclnet" in list_models(modality="skeleton")
    model = ACLNet(num_classes=7, base_channels=16).eval()
    check_encoder(model)
    assert model.input_keys == ("skeleton",) and model.num_features == 64
    x = clips(t=13)
    with torch.no_grad():
        feats = model.forward_features(x)
        logits = model(x)
    assert feats.sequence.shape == (2, 4, 64) and feats.pooled.shape == (2, 64)
    assert feats.spatial.shape == (2, 64, 4, V)
    assert feats.aux["topology"].shape == (2, V * V) and logits.shape == (2, 7)
    assert torch.equal(model.forward_head(feats, pre_logits=True), feats.pooled)
    bare = ACLNet(num_classes=0, base_channels=16).eval()
    assert bare.head is None and bare(x).shape == (2, 64)
    bare.reset_classifier(7)
    assert {k: v.shape for k, v in bare.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    assert model.head.fc.weight.std().item() == pytest.approx(0.01, rel=0.2)  # SimpleHead's init
    with pytest.raises(ValueError, match=r"\[N, M, T, 25, 3\]"):
        model(torch.zeros(2, 12, V, 3))


def test_full_size_topology_feature_is_625_values() -> None:
    model = create_model("aclnet", num_classes=60).eval()
    with torch.no_grad():
        feats = model.forward_features(clips(n=1, t=8))
    assert feats.aux["topology"].shape == (1, 625) and feats.pooled.shape == (1, 384)


def test_every_block_starts_from_one_random_graph_bank() -> None:
    torch.manual_seed(0)
    model = ACLNet(num_classes=0, base_channels=16)
    graphs = [block.gcn.A for block in model.blocks]
    assert all(g.shape == (K, V, V) and torch.equal(g, graphs[0]) for g in graphs)
    assert len({g.data_ptr() for g in graphs}) == len(graphs)  # each block learns its own copy
    assert graphs[0].mean().item() == pytest.approx(0.04, abs=2e-3)
    assert graphs[0].std().item() == pytest.approx(0.02, rel=0.05)


def _perturb(model: nn.Module, scale: float = 0.1, seed: int = 1) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen))


def test_topology_feature_is_the_last_blocks_dynamic_graphs_averaged() -> None:
    """Recomputed upstream's way: conv1 / conv2 on every frame, then the temporal mean (ours
    averages first), ctr and ada graphs per subset, mean over persons, subsets and channels."""
    model = ACLNet(num_classes=3, base_channels=16).double().eval()
    _perturb(model)  # alpha, beta start at 0: make both graphs count
    gcn = model.blocks[-1].gcn
    x = clips(t=9).double()
    with torch.no_grad():
        topology = model.forward_features(x).aux["topology"]
        h = model.data_bn(x)
        for block in model.blocks[:-1]:
            h = block(h)
        n, mid = h.shape[0], gcn.mid_channels
        q = gcn.conv1(h).reshape(n, K, mid, -1, V).mean(dim=3)
        r = gcn.conv2(h).reshape(n, K, mid, -1, V).mean(dim=3)
        ctr = gcn.alpha[0] * torch.tanh(q.unsqueeze(-1) - r.unsqueeze(-2))
        ada = gcn.beta[0] * torch.softmax(torch.einsum("nkcv,nkcw->nkvw", q, r), dim=-2)
        expected = (ctr + ada[:, :, None]).reshape(2, 2, K * mid, V, V).mean(dim=(1, 2)).reshape(2, V * V)
    torch.testing.assert_close(topology, expected, rtol=1e-10, atol=1e-12)
    assert expected.abs().max() > 1e-3  # not the trivial all-zero feature


def test_dynamic_graph_conv_aggregates_over_the_source_joint() -> None:
    """y[c, t, w] = sum_v h[c, t, v] (alpha ctr + beta ada + A)[c][v, w], written as a plain loop over (k, c)."""
    torch.manual_seed(0)
    unit = DynamicGraphConv(6, 8, torch.randn(2, 5, 5), ratio=0.25).double().eval()
    _perturb(unit)
    x = torch.randn(3, 6, 4, 5, dtype=torch.float64)
    with torch.no_grad():
        out, topo = unit.forward_with_topology(x)
        h = unit.pre(x).reshape(3, 2, 2, 4, 5)
        pooled = x.mean(dim=2, keepdim=True)
        q, r = unit.conv1(pooled).reshape(3, 2, 2, 5), unit.conv2(pooled).reshape(3, 2, 2, 5)
        y = torch.zeros(3, 2, 2, 4, 5, dtype=torch.float64)
        for k in range(2):
            ada = torch.softmax(q[:, k].transpose(1, 2) @ r[:, k], dim=1)  # [N, V, V], columns sum to 1
            for c in range(2):
                ctr = torch.tanh(q[:, k, c, :, None] - r[:, k, c, None, :])
                graph = unit.alpha[0] * ctr + unit.beta[0] * ada + unit.A[k]
                y[:, k, c] = torch.einsum("ntv,nvw->ntw", h[:, k, c], graph)
        expected = torch.relu(unit.bn(unit.post(y.reshape(3, 4, 4, 5))) + unit.down(x))
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-12)
    assert topo.shape == (3, 5, 5)


@pytest.mark.parametrize("stride", [1, 2])
def test_fused_temporal_stems_equal_the_branches_run_one_by_one(stride: int) -> None:
    torch.manual_seed(0)
    unit = GlobalJointMSTCN(24, 24, stride=stride, num_joints=V).double()
    _perturb(unit)  # add_coeff starts at 0
    x = torch.randn(2, 24, 9, V, dtype=torch.float64, requires_grad=True)
    out = unit(x)
    xg = torch.cat([x, x.mean(dim=-1, keepdim=True)], dim=-1)
    branches = torch.cat([branch(xg) for branch in unit.branches], dim=1)  # the unfused definition
    z = branches[..., :V] + branches[..., V:] * unit.add_coeff
    expected = unit.bn(unit.transform(z))
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-12)
    assert out.shape == (2, 24, (9 + stride - 1) // stride, V)
    grad_fused, = torch.autograd.grad(out.square().sum(), x)
    grad_plain, = torch.autograd.grad(expected.square().sum(), x)
    torch.testing.assert_close(grad_fused, grad_plain, rtol=1e-10, atol=1e-12)


def _biases_before_batchnorm(model: nn.Module) -> set:
    """Names of convolution biases that feed a BatchNorm directly: in training mode the norm removes
    each channel's batch mean, so their gradient is zero in exact arithmetic (float rounding may or
    may not leave a trace, depending on the summation order)."""
    names = set()
    for prefix, module in model.named_modules():
        if isinstance(module, nn.Sequential):
            layers = list(module)
            for i, (layer, following) in enumerate(zip(layers, layers[1:])):
                if isinstance(layer, nn.Conv2d) and isinstance(following, nn.BatchNorm2d) and layer.bias is not None:
                    names.add(f"{prefix}.{i}.bias")
    return names


def test_one_training_step_reaches_every_parameter() -> None:
    torch.manual_seed(0)
    model = ACLNet(num_classes=4, base_channels=16)
    _perturb(model, scale=0.05)
    feats = model.forward_features(clips(t=8))
    loss = F.cross_entropy(model.forward_head(feats), torch.tensor([1, 3])) + feats.aux["topology"].square().sum()
    loss.backward()
    exact_zero = _biases_before_batchnorm(model)
    assert "blocks.0.tcn.branches.4.0.bias" in exact_zero
    missing = [name for name, p in model.named_parameters()
               if p.grad is None or (name not in exact_zero and not p.grad.abs().sum() > 0)]
    assert not missing
