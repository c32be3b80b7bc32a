"""The two units of ACLNet's DG-STGCN-style blocks: a dynamic-topology graph convolution and a
multi-scale temporal convolution with a whole-body branch.

Both follow pyskl's DG-STGCN units (kennymckormick/pyskl@3f6795f ``pyskl/models/gcns/utils``:
``dggcn``, ``dgmstcn``), which ACLNet (firework8/ACLNet@0fab868 ``aclnet/models/gcns/utils``:
``unit_gcn``, ``mstcn``) copies and extends by returning the sample-specific graphs; checked
against both, written anew. Tensors are ``[N', C, T, V]`` with ``N' = N * M``.

:class:`DynamicGraphConv`, per subset k of K (C' = ``int(ratio * C_out)`` channels each)::

    h        = ReLU(BN(conv_pre(x)))                                [N', K, C', T, V]
    q, r     = conv1(mean_T x), conv2(mean_T x)                     [N', K, C', V]
    ctr[c]   = tanh(q[c, v] - r[c, w])        (one V x V graph per channel)
    ada      = softmax_v(sum_c q[c, v] r[c, w])                     (one per subset)
    G[c]     = alpha * ctr[c] + beta * ada + A_k                    [V, V], v = source, w = target
    y[c, t, w] = sum_v h[c, t, v] G[c][v, w]
    out      = ReLU(BN(conv_post(y)) + down(x))

The temporal mean is taken before the 1x1 convolutions ``conv1`` / ``conv2`` (pyskl's order; ACLNet
convolves every frame and averages after, the same function at T times the cost). ``alpha`` and
``beta`` hold one value per subset but, with ``subset_wise=False`` (every published config), only
the first of each is used. The *topology* of a sample is ``alpha * ctr + beta * ada`` (the learned
``A`` left out) averaged over subsets and channels: ``[N', V, V]``.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .gcn_blocks import PYSKL_MSTCN_BRANCHES, MixedScaleTCN


class DynamicGraphConv(nn.Module):
    """Graph convolution over ``A + alpha * ctr + beta * ada`` (see the module docstring).

    Args:
        in_channels: C_in.
        out_channels: C_out.
        adjacency: the initial learnable graphs A, float [K, V, V] (copied).
        ratio: C' / C_out, the width of each subset's branch (DG-STGCN / ACLNet: 0.125 with K = 8).
        subset_wise: scale each subset's graphs by its own alpha_k, beta_k (False: alpha_0, beta_0).
    """

    def __init__(self, in_channels: int, out_channels: int, adjacency: torch.Tensor, ratio: float = 0.125,
                 subset_wise: bool = False) -> None:
        super().__init__()
        if adjacency.ndim != 3 or adjacency.shape[1] != adjacency.shape[2]:
            raise ValueError(f"adjacency must be [K, V, V], got shape {tuple(adjacency.shape)}")
        self.num_subsets = int(adjacency.shape[0])
        self.mid_channels = int(ratio * out_channels)
        if self.mid_channels < 1:
            raise ValueError(f"ratio {ratio} leaves no channel per subset at C_out = {out_channels}")
        self.subset_wise = subset_wise
        width = self.num_subsets * self.mid_channels
        self.A = nn.Parameter(adjacency.detach().clone().float())
        self.pre = nn.Sequential(nn.Conv2d(in_channels, width, 1), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.post = nn.Conv2d(width, out_channels, 1)
        self.alpha = nn.Parameter(torch.zeros(self.num_subsets))
        self.beta = nn.Parameter(torch.zeros(self.num_subsets))
        self.conv1 = nn.Conv2d(in_channels, width, 1)
        self.conv2 = nn.Conv2d(in_channels, width, 1)
        if in_channels != out_channels:
            self.down: nn.Module = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels))
        else:
            self.down = nn.Identity()
        self.bn = nn.BatchNorm2d(out_channels)

    def graph_scales(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """(alpha, beta) as [K, 1, 1] per-subset factors (all equal to the first unless ``subset_wise``)."""
        alpha, beta = (self.alpha, self.beta) if self.subset_wise else (self.alpha[:1], self.beta[:1])
        k = self.num_subsets
        return alpha.expand(k)[:, None, None], beta.expand(k)[:, None, None]

    def forward_with_topology(self, x: torch.Tensor, topology: bool = True
                              ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """x [N', C_in, T, V] -> (out [N', C_out, T, V], topology [N', V, V] or None).

        The topology is ``alpha * ctr + beta * ada`` averaged over subsets and channels.
        """
        k = self.num_subsets
        h = rearrange(self.pre(x), "n (k c) t v -> n k c t v", k=k)
        pooled = x.mean(dim=2, keepdim=True)  # [N', C_in, 1, V]
        q = rearrange(self.conv1(pooled), "n (k c) 1 v -> n k c v", k=k)
        r = rearrange(self.conv2(pooled), "n (k c) 1 v -> n k c v", k=k)
        ctr = torch.tanh(q[..., :, None] - r[..., None, :])  # [N', K, C', V, V]
        ada = torch.softmax(q.transpose(-1, -2) @ r, dim=-2)  # [N', K, V, V], columns sum to 1
        alpha, beta = self.graph_scales()
        sample_graph = ada * beta + self.A  # [N', K, V, V]
        graph = ctr * alpha[:, None] + sample_graph[:, :, None]  # [N', K, C', V, V]
        y = rearrange(h @ graph, "n k c t v -> n (k c) t v")
        out = torch.relu_(self.bn(self.post(y)) + self.down(x))  # the sum is a fresh tensor: in place is safe
        if not topology:
            return out, None
        topo = (ctr.mean(dim=2) * alpha + ada * beta).mean(dim=1)  # [N', V, V]
        return out, topo

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N', C_in, T, V] -> [N', C_out, T, V]."""
        return self.forward_with_topology(x, topology=False)[0]


class GlobalJointMSTCN(MixedScaleTCN):
    """pyskl's ``dgmstcn``: :class:`MixedScaleTCN` run over the V joints plus their mean.

    The branches see ``[x, mean_V x]`` (V + 1 columns); the mean column's output, scaled per joint
    by the learnable ``add_coeff`` (zeros at start), is added to every joint before the 1x1
    transform: ``z_v = b_v + add_coeff[v] * b_mean``.

    The six branches all open with a 1x1 convolution of the same input (the last one strided);
    :meth:`forward` runs them as one convolution over their stacked weights (a strided 1x1
    convolution is the stride-1 one subsampled in time), then each branch's own layers on its
    channels: the same function and parameters, one GEMM instead of six.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, num_joints: int = 25,
                 dropout: float = 0.0) -> None:
        super().__init__(in_channels, out_channels, stride=stride, branches=PYSKL_MSTCN_BRANCHES, dropout=dropout)
        self.add_coeff = nn.Parameter(torch.zeros(num_joints))
        self.stride = stride

    def stems(self) -> List[nn.Conv2d]:
        """The 1x1 convolution each branch opens with (the last branch is nothing else)."""
        return [branch if isinstance(branch, nn.Conv2d) else branch[0] for branch in self.branches]

    def run_branches(self, x: torch.Tensor) -> torch.Tensor:
        """x [N', C_in, T, V'] -> the branches' outputs concatenated, [N', C_out, ceil(T / stride), V']."""
        convs = self.stems()
        weight = torch.cat([conv.weight for conv in convs])
        bias = torch.cat([conv.bias for conv in convs])  # type: ignore[misc]
        stems = F.conv2d(x, weight, bias).split([conv.out_channels for conv in convs], dim=1)
        outs = []
        for branch, h in zip(self.branches, stems):
            if isinstance(branch, nn.Conv2d):  # the strided 1x1 branch
                outs.append(h[:, :, ::self.stride] if self.stride > 1 else h)
                continue
            for layer in list(branch)[1:]:
                h = layer(h)
            outs.append(h)
        return torch.cat(outs, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N', C_in, T, V] -> [N', C_out, ceil(T / stride), V]."""
        v = x.shape[-1]
        if v > self.add_coeff.numel():
            raise ValueError(f"this temporal unit was built for {self.add_coeff.numel()} joints, got V = {v}")
        out = self.run_branches(torch.cat([x, x.mean(dim=-1, keepdim=True)], dim=-1))
        z = out[..., :v] + out[..., v:] * self.add_coeff[:v]
        return self.drop(self.bn(self.transform(z)))
