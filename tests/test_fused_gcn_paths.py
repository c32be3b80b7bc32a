"""The fused computations of the GCNs' hot paths equal the layer-by-layer ones they replace.

``partitioned_graph_conv`` (ST-GCN, ST-GCN++) against the reference's conv-then-einsum, and
``pointwise_conv`` against a strided convolution.

``channel_topology_sum`` (CTR-GCN, PSUMNet) against the per-subset CTRGC modules, and
``run_branches`` (the multi-scale temporal convolutions of CTR-GCN, ST-GCN++, Hyper-GCN, PSUMNet)
against running each branch on its own: outputs, every parameter's gradient and the BatchNorm
running statistics, in float64, for both aggregations, both strides and mixed branch kinds.
"""

from __future__ import annotations

from typing import Callable, Dict, List

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from actionfusion.modalities.skeleton.channel_topology import channel_topology_sum
from actionfusion.modalities.skeleton.ctrgcn import CTRGCNUnit
from actionfusion.modalities.skeleton.gcn_blocks import (
    MixedScaleTCN,
    MultiScaleTCN,
    PointwiseConv2d,
    partitioned_graph_conv,
    pointwise_conv,
    run_branches,
)
from actionfusion.modalities.skeleton.graphs import ctrgcn_partition, ntu25_graph
from actionfusion.modalities.skeleton.hypergcn import HyperGraphConv, MultiScaleTemporalConv, virtual_prior_graph
from actionfusion.modalities.skeleton.layouts import layout_graph

pytestmark = pytest.mark.usefixtures("one_thread")


def perturbed(module: nn.Module, seed: int) -> nn.Module:
    """``module`` in float64 with every parameter moved off its initial value (no zero branch hides a term)."""
    module = module.double()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return module


def outputs_and_grads(module: nn.Module, forward: Callable[[torch.Tensor], torch.Tensor],
                      x: torch.Tensor) -> Dict[str, torch.Tensor]:
    """The output, every parameter's and the input's gradient of sum(output * w), and the buffers after it."""
    module.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    y = forward(x)
    weight = torch.linspace(-1.0, 1.0, y.numel(), dtype=y.dtype).view_as(y)
    (y * weight).sum().backward()
    found = {"output": y.detach(), "input_grad": x.grad}
    found.update({f"grad:{n}": p.grad for n, p in module.named_parameters() if p.grad is not None})
    found.update({f"buffer:{n}": b.clone() for n, b in module.named_buffers()})
    return found


def assert_same(a: Dict[str, torch.Tensor], b: Dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-10, atol=1e-10, msg=key)


def fresh_pair(make: Callable[[], nn.Module], seed: int) -> List[nn.Module]:
    """Two equal copies of one perturbed module (each run updates its own BatchNorm statistics)."""
    torch.manual_seed(seed)
    first = perturbed(make(), seed)
    second = perturbed(make(), seed)
    second.load_state_dict(first.state_dict())
    return [first, second]


@pytest.mark.parametrize("aggregation", ["correct", "pyskl_transpose"])
@pytest.mark.parametrize("c_in, c_out", [(3, 16), (16, 16), (16, 32)])
def test_channel_topology_sum_equals_the_per_subset_convolutions(aggregation: str, c_in: int, c_out: int) -> None:
    adjacency = ctrgcn_partition(ntu25_graph("A"))
    fused, reference = fresh_pair(lambda: CTRGCNUnit(c_in, c_out, adjacency, aggregation), seed=c_in + c_out)

    def per_subset(unit: CTRGCNUnit) -> Callable[[torch.Tensor], torch.Tensor]:
        def run(x: torch.Tensor) -> torch.Tensor:
            y = sum(conv(x, unit.A[k], unit.alpha) for k, conv in enumerate(unit.convs))
            return torch.relu(unit.bn(y) + unit.down(x))
        return run

    x = torch.randn(3, c_in, 7, 25, dtype=torch.float64)
    assert_same(outputs_and_grads(fused, fused, x), outputs_and_grads(reference, per_subset(reference), x))
    # the refinement is really part of the result: alpha's gradient is not zero
    fused.zero_grad()
    fused(x.clone()).sum().backward()
    assert fused.alpha.grad.abs() > 0


def test_channel_topology_sum_is_the_sum_of_each_subsets_own_forward() -> None:
    unit = perturbed(CTRGCNUnit(8, 8, ctrgcn_partition(ntu25_graph("A"))), seed=1)
    x = torch.randn(2, 8, 5, 25, dtype=torch.float64)
    with torch.no_grad():
        expected = sum(conv(x, unit.A[k], unit.alpha) for k, conv in enumerate(unit.convs))
        torch.testing.assert_close(channel_topology_sum(x, unit.convs, unit.A, unit.alpha), expected,
                                   rtol=1e-12, atol=1e-12)
        # and changing one subset's conv1 changes the result (every subset's relation is used)
        unit.convs[2].conv1.weight.add_(1.0)
        assert not torch.allclose(channel_topology_sum(x, unit.convs, unit.A, unit.alpha), expected)


BRANCHED = {
    "ctrgcn_mstcn": lambda stride: MultiScaleTCN(16, 16, stride=stride),
    "stgcnpp_mixed": lambda stride: MixedScaleTCN(16, 18, stride=stride),
    "hypergcn_mstcn": lambda stride: MultiScaleTemporalConv(16, 16, stride=stride, padding_mode="replicate"),
}


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("name", sorted(BRANCHED))
def test_fused_branches_equal_each_branch_on_its_own(name: str, stride: int) -> None:
    fused, reference = fresh_pair(lambda: BRANCHED[name](stride), seed=stride)
    fused.train()
    reference.train()

    def one_by_one(module: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
        def run(x: torch.Tensor) -> torch.Tensor:
            y = torch.cat([branch(x) for branch in module.branches], dim=1)
            return module.drop(module.bn(module.transform(y))) if hasattr(module, "transform") else y
        return run

    x = torch.randn(4, 16, 9, 25, dtype=torch.float64)
    assert_same(outputs_and_grads(fused, fused, x), outputs_and_grads(reference, one_by_one(reference), x))


def test_run_branches_fuses_only_plain_pointwise_heads_of_one_stride() -> None:
    torch.manual_seed(0)
    branches = nn.ModuleList([
        nn.Sequential(nn.Conv2d(4, 3, 1), nn.ReLU()),
        nn.Conv2d(4, 2, 1, stride=(2, 1)),  # another stride: its own convolution
        nn.Sequential(nn.Conv2d(4, 5, (3, 1), padding=(1, 0))),  # not 1x1: runs as it is
        nn.Conv2d(4, 6, 1),
        nn.Conv2d(4, 2, 1, bias=False),  # no bias: runs as it is
    ]).double()
    x = torch.randn(2, 4, 6, 5, dtype=torch.float64)
    got = run_branches(x, branches)
    expected = [branch(x) for branch in branches]
    assert [g.shape for g in got] == [e.shape for e in expected]
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g.detach().numpy(), e.detach().numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("channels_last", [False, True])
def test_partitioned_graph_conv_equals_conv_then_einsum(channels_last: bool) -> None:
    torch.manual_seed(2)
    conv = perturbed(nn.Conv2d(5, 3 * 7, 1), seed=2)
    a = torch.rand(3, 17, 17, dtype=torch.float64, requires_grad=True)
    x = torch.randn(4, 5, 9, 17, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    got = partitioned_graph_conv(x, conv, a)
    assert got.shape == (4, 7, 9, 17) and got.is_contiguous(memory_format=torch.channels_last)
    grads = torch.autograd.grad((got * got.detach().sin()).sum(), [x, a, conv.weight, conv.bias])
    x_ref = x.detach().contiguous().requires_grad_(True)
    h = conv(x_ref).view(4, 3, 7, 9, 17)
    expected = torch.einsum("nkctv,kvw->nctw", h, a)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    expected_grads = torch.autograd.grad((expected * expected.detach().sin()).sum(), [x_ref, a, conv.weight, conv.bias])
    for g, e in zip(grads, expected_grads):
        torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-12)


def test_strided_pointwise_conv_is_the_strided_convolution_and_survives_channels_last() -> None:
    torch.manual_seed(3)
    weight = torch.randn(16, 8, 1, 1, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(16, dtype=torch.float64, requires_grad=True)
    for _ in range(20):  # PyTorch's own strided kernel crashed within a few of these at width 8
        x = torch.randn(4, 8, 31, 25, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
        x.requires_grad_(True)
        got = pointwise_conv(x, weight, bias, (2, 1))
        got.square().sum().backward()
    expected = F.conv2d(x.detach().contiguous(), weight, bias, stride=(2, 1))
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    assert got.shape == (4, 16, 16, 25)


@pytest.mark.parametrize("stride, with_bias", [((1, 1), True), ((2, 1), True), ((1, 1), False), ((3, 2), True)])
def test_pointwise_conv_as_batched_matmul_equals_the_convolution_and_its_gradients(stride, with_bias) -> None:
    torch.manual_seed(4)
    x = torch.randn(3, 12, 11, 9, dtype=torch.float64, requires_grad=True)  # NCHW: the baddbmm path
    weight = torch.randn(20, 12, 1, 1, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(20, dtype=torch.float64, requires_grad=True) if with_bias else None
    leaves = [x, weight] + ([bias] if with_bias else [])
    got = pointwise_conv(x, weight, bias, stride)
    expected = F.conv2d(x, weight, bias, stride=stride)
    assert got.shape == expected.shape and got.is_contiguous()
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    upstream = torch.randn_like(expected)
    for g, e in zip(torch.autograd.grad(got, leaves, upstream), torch.autograd.grad(expected, leaves, upstream)):
        torch.testing.assert_close(g, e, rtol=1e-12, atol=1e-12)
    # each clip is mixed with the same weight but only its own frames: no cross-clip leakage
    moved = x.detach().clone()
    moved[1] += 1.0
    changed = pointwise_conv(moved, weight, bias, stride) - got.detach()
    assert changed[0].abs().max() == 0 and changed[2].abs().max() == 0 and changed[1].abs().max() > 0


def test_pointwise_conv2d_keeps_the_conv2d_state_dict() -> None:
    module = PointwiseConv2d(6, 10, stride=(2, 1))
    reference = nn.Conv2d(6, 10, kernel_size=1, stride=(2, 1))
    assert module.state_dict().keys() == reference.state_dict().keys()
    reference.load_state_dict(module.state_dict())
    x = torch.randn(2, 6, 9, 25)
    torch.testing.assert_close(module(x), reference(x), rtol=1e-5, atol=1e-6)


def _hypergraph_conv_release_order(conv: HyperGraphConv, x: torch.Tensor) -> torch.Tensor:
    """Hyper-GCN's release order: virtual joints appended, the grouped head convolution on all
    V' vertices, einsum over each head's operator, then the V real joints cropped."""
    b, _, t, v = x.shape
    virtual = conv.virtual_joints.t()[None, :, None, :].expand(b, -1, t, -1)
    x_all = torch.cat([x, virtual], dim=-1)
    operator = conv.prior_operator().unsqueeze(0) + torch.relu(conv.alpha) * conv.hypergraph(x_all.mean(dim=2))
    heads = F.conv2d(x_all, conv.head_conv.weight, conv.head_conv.bias, groups=conv.num_heads)
    heads = heads.view(b, conv.num_heads, -1, t, x_all.shape[-1])
    y = torch.einsum("bkuv,bkctv->bkctu", operator, heads).reshape(b, -1, t, x_all.shape[-1])[..., :v]
    return torch.relu(conv.bn(y) + conv.down(x))


@pytest.mark.parametrize("c_in, c_out", [(16, 16), (16, 32)])
def test_hypergraph_conv_equals_the_release_order(c_in: int, c_out: int) -> None:
    prior = virtual_prior_graph(layout_graph("ntu25", "A"), 3, 8)
    fused, reference = fresh_pair(lambda: HyperGraphConv(c_in, c_out, prior), seed=c_in + c_out)
    with torch.no_grad():  # alpha at 1 and biases off zero: the hypergraph and bias terms count
        for module in (fused, reference):
            module.head_conv.bias.normal_()
    reference.load_state_dict(fused.state_dict())
    x = torch.randn(3, c_in, 6, 25, dtype=torch.float64)
    assert_same(outputs_and_grads(fused, fused, x),
                outputs_and_grads(reference, lambda inp: _hypergraph_conv_release_order(reference, inp), x))
