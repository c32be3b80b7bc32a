"""The K subsets of a channel-wise topology refinement graph convolution (CTRGC), computed together.

CTR-GCN (Uason-Chen/CTR-GCN@e13d758 ``model/ctrgcn.py``) and PSUMNet run one CTRGC per subset k
of the partitioned graph and sum the results:

    A_hat_k = alpha * conv4_k(tanh(mean_T conv1_k(x)[..., :, None] - mean_T conv2_k(x)[..., None, :])) + A_k
    y[n, c, t, u] = sum_k sum_v A_hat_k[n, c, u, v] * conv3_k(x)[n, c, t, v]

:func:`channel_topology_sum` computes the same sum with the subsets' parameters (the modules keep
their own, so checkpoints and the official converters are unchanged) in fewer, larger operations:

- every ``conv3_k`` as one 1x1 convolution of ``K * C_out`` outputs (one GEMM, and one for the
  gradient of ``x``, instead of K of each plus the sum of their input gradients);
- ``conv1_k`` and ``conv2_k`` (both 1x1, so linear) applied to ``mean_T x`` rather than averaging
  their outputs over T: the same value, T times fewer multiply-adds, all 2K in one convolution;
- ``alpha`` folded into conv4's weight and bias (``conv(r, alpha W, alpha b) = alpha conv(r, W, b)``):
  the ``[N', C_out, V, V]`` product with alpha, and in backward its second product and the
  reduction of that whole tensor for alpha's gradient, become products with the ``[C_out, R]``
  weight (alpha's gradient then comes through the weight's); conv4 itself as one ``baddbmm``
  whose added term carries its bias and ``A_k`` (:func:`refined_topology`);
- the aggregation as ``bmm`` over the ``N' * C_out`` (clip, channel) pairs, the subsets' terms
  accumulated by ``baddbmm`` (no einsum, which copied the topology into its own order, and no
  separate sums);
- ``conv4_k`` and the aggregation stay per subset: stacking the K ``[N', C_out, V, V]`` topologies
  (and aggregating them in one batched matmul, conv4 as one grouped convolution) was slower,
  most at the last stage, where T = 16 < V = 25 makes those the largest tensors of the block.

A CTR-GCN spatial unit's forward and backward (2 threads, batch 32 person-clips) took 0.48-0.68x
the per-subset computation at CTR-GCN's five layer shapes (``benchmarks/bench_channel_topology.py``;
0.80-0.92x before alpha was folded and the aggregation became ``baddbmm``). Equal to the per-subset
computation to float rounding (``benchmarks/parity.py`` against the official code in float64,
``tests/test_gcn_models.py`` against the per-subset modules).
"""

from __future__ import annotations

from typing import Protocol, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .gcn_blocks import pointwise_conv


class SubsetConvs(Protocol):
    """One subset's four 1x1 convolutions: conv1, conv2 (C_in -> R), conv3 (C_in -> C_out), conv4 (R -> C_out)."""

    conv1: nn.Conv2d
    conv2: nn.Conv2d
    conv3: nn.Conv2d
    conv4: nn.Conv2d


def _stacked(convs: Sequence[nn.Conv2d]) -> tuple[torch.Tensor, torch.Tensor]:
    """The convolutions' weights [sum C_out_i, C_in, 1, 1] and biases [sum C_out_i], concatenated."""
    return torch.cat([c.weight for c in convs]), torch.cat([c.bias for c in convs])


def refined_topology(relation: torch.Tensor, conv4: nn.Conv2d, adjacency: torch.Tensor,
                     alpha: torch.Tensor) -> torch.Tensor:
    """``alpha * conv4(relation) + A``, as one ``baddbmm`` per clip.

    alpha scales conv4's ``[C_out, R]`` weight and its bias rather than the result, and the bias
    and A enter as the batched product's added term (backward then reduces the result's gradient
    once, for both). Forward and backward took 0.45x of ``conv4(relation) * alpha + A`` at the
    last stage's shape (2 threads, 32 person-clips, R = 32, C_out = 256; one microbenchmark).

    Args:
        relation: [N', R, U, V].
        conv4: ``nn.Conv2d(R, C_out, 1)`` with a bias.
        adjacency: [U, V].
        alpha: [1].

    Returns:
        [N', C_out, U, V].
    """
    n, r, u, v = relation.shape
    c = conv4.out_channels
    weight = (conv4.weight * alpha).view(c, r)
    added = ((conv4.bias * alpha).view(c, 1) + adjacency.reshape(1, u * v)).expand(n, c, u * v)
    return torch.baddbmm(added, weight.expand(n, c, r), relation.reshape(n, r, u * v)).view(n, c, u, v)


def channel_topology_sum(
    x: torch.Tensor, subsets: Sequence[SubsetConvs], adjacency: torch.Tensor, alpha: torch.Tensor,
    transpose: bool = False,
) -> torch.Tensor:
    """``sum_k CTRGC_k(x, A_k, alpha)``.

    Args:
        x: [N', C_in, T, V].
        subsets: K modules with ``conv1`` .. ``conv4`` (bias on every one).
        adjacency: [K, V, V], A_k[u, v] (u = target, v = source).
        alpha: [1], the refinement's scale.
        transpose: aggregate with the transpose (``y_v = sum_u A_hat[u, v] h_u``: pyskl's copy).

    Returns:
        [N', C_out, T, V].
    """
    k = len(subsets)
    w3, b3 = _stacked([s.conv3 for s in subsets])
    h = pointwise_conv(x, w3, b3)  # [N', K * C_out, T, V]
    w12, b12 = _stacked([s.conv1 for s in subsets] + [s.conv2 for s in subsets])
    pooled = x.sum(dim=2, keepdim=True) / x.shape[2]  # mean over T; backward a broadcast view, no quotient tensor
    q, key = F.conv2d(pooled, w12, b12).squeeze(2).chunk(2, dim=1)  # [N', K * R, V] each
    qs, keys, hs = q.chunk(k, dim=1), key.chunk(k, dim=1), h.chunk(k, dim=1)
    n, _, t, v = h.shape
    c = h.shape[1] // k
    y = None  # [N' C_out, T, V]
    for i, subset in enumerate(subsets):
        relation = torch.tanh(qs[i].unsqueeze(-1) - keys[i].unsqueeze(-2))  # [N', R, V, V]
        refined = refined_topology(relation, subset.conv4, adjacency[i], alpha)  # [N', C_out, U, V]
        topology = refined.view(n * c, v, v)
        topology = topology if transpose else topology.transpose(1, 2)  # y_u = sum_v h_v A_hat[u, v]
        features = hs[i].contiguous().view(n * c, t, v)  # the slice, as one [N' C_out, T, V] batch
        y = torch.bmm(features, topology) if y is None else torch.baddbmm(y, features, topology)
    return y.view(n, c, t, v)
