"""Graph Isomorphism Network layers over a fixed skeleton graph (Xu et al., "How Powerful are Graph
Neural Networks?", ICLR 2019), vectorised over batches of per-frame skeleton graphs.

``h'_v = MLP((1 + eps) h_v + sum_{u in N(v)} h_u)`` for every joint ``v`` of every graph; a batch
``[N, T, V, C]`` is N x T graphs of V joints. ``eps`` is a fixed number or learned
(``learn_eps=True``, GIN-eps; GIN-0 at the default 0).

The neighbour sum has two implementations, equal up to rounding (``aggregation``):

- ``"dense"``: ``einsum`` with the [V, V] 0/1 adjacency (or one adjacency per graph);
- ``"index_add"``: gather the source joint of every directed edge and ``index_add_`` into its
  destination (2E messages instead of V^2 products).

``benchmarks/bench_skeletonmae_step.py`` times both; ``dense`` is the default.

An adjacency passed to ``forward`` (``[V, V]``, or ``[N, T, V, V]`` per graph, e.g. with masked
edges) replaces the layer's own. ``index_add`` then reads the weights of the layer's own edges from
it, so it can only drop or re-weight edges of the fixed graph, never add new ones.
"""

from __future__ import annotations

from typing import Optional, Type

import numpy as np
import torch
from torch import nn

GIN_AGGREGATIONS = ("dense", "index_add")


class JointBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d over the last (channel) dimension of ``[..., C]`` joint features."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [..., C] -> [..., C], statistics over every leading position."""
        shape = x.shape
        return super().forward(x.reshape(-1, shape[-1])).reshape(shape)


def neighbour_sum_dense(x: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
    """``out[..., w, :] = sum_v adjacency[w, v] x[..., v, :]``.

    Args:
        x: [N, T, V, C] joint features.
        adjacency: [V, V] shared by every graph, or [N, T, V, V] (broadcastable) per graph.

    Returns:
        [N, T, V, C].
    """
    if adjacency.ndim == 2:
        return torch.einsum("wv,ntvc->ntwc", adjacency, x)
    return torch.einsum("ntwv,ntvc->ntwc", adjacency.expand(*x.shape[:2], -1, -1), x)


def neighbour_sum_index_add(x: torch.Tensor, source: torch.Tensor, target: torch.Tensor,
                            edge_weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Sum of ``x[..., source[e], :]`` (times ``edge_weight[..., e]``) into ``target[e]``.

    Args:
        x: [N, T, V, C] joint features.
        source, target: int64 [E] directed edges source -> target.
        edge_weight: optional [N, T, E] weight of every edge in every graph.

    Returns:
        [N, T, V, C].
    """
    messages = x.index_select(2, source)
    if edge_weight is not None:
        messages = messages * edge_weight.unsqueeze(-1)
    return torch.zeros_like(x).index_add_(2, target, messages)


class GINConv(nn.Module):
    """One GIN layer: neighbour sum over the joint graph, then a 2-layer MLP.

    The MLP is Linear(C_in, H) -> BatchNorm -> ReLU -> Linear(H, C_out) (the GIN paper's MLP with
    batch normalisation, as GraphMAE's); ``(C_in + 1) H + 2H + (H + 1) C_out`` parameters, plus 1
    with ``learn_eps``.

    Args:
        in_features, out_features: C_in, C_out.
        adjacency: [V, V] symmetric 0/1 adjacency without self-loops (numpy or tensor).
        hidden_features: H (default C_out).
        eps: the weight of the joint's own feature is ``1 + eps``.
        learn_eps: learn ``eps`` (starting from ``eps``).
        aggregation: ``"dense"`` or ``"index_add"`` (see the module docstring).
        norm_layer: the MLP's normalisation (``JointBatchNorm``; ``nn.Identity`` for none).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        adjacency: "np.ndarray | torch.Tensor",
        hidden_features: Optional[int] = None,
        eps: float = 0.0,
        learn_eps: bool = False,
        aggregation: str = "dense",
        norm_layer: Type[nn.Module] = JointBatchNorm,
    ) -> None:
        super().__init__()
        if aggregation not in GIN_AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {GIN_AGGREGATIONS}, not {aggregation!r}")
        adjacency = torch.as_tensor(np.asarray(adjacency), dtype=torch.float32)
        if adjacency.ndim != 2 or adjacency.shape[0] != adjacency.shape[1]:
            raise ValueError(f"adjacency must be [V, V], got {tuple(adjacency.shape)}")
        hidden = int(hidden_features or out_features)
        self.in_features, self.out_features, self.hidden_features = in_features, out_features, hidden
        self.aggregation = aggregation
        target, source = adjacency.nonzero(as_tuple=True)  # adjacency[target, source] != 0
        # Non-persistent: the graph is part of the architecture, not of the weights.
        self.register_buffer("adjacency", adjacency, persistent=False)
        self.register_buffer("edge_source", source, persistent=False)
        self.register_buffer("edge_target", target, persistent=False)
        if learn_eps:
            self.eps = nn.Parameter(torch.tensor([float(eps)]))
        else:
            self.register_buffer("eps", torch.tensor([float(eps)]), persistent=False)
        self.fc1 = nn.Linear(in_features, hidden)
        self.norm = norm_layer(hidden)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(hidden, out_features)

    @property
    def num_joints(self) -> int:
        return int(self.adjacency.shape[0])

    def aggregate(self, x: torch.Tensor, adjacency: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``(1 + eps) x + neighbour sum``: x [N, T, V, C] -> [N, T, V, C] (before the MLP).

        ``adjacency``: optional [V, V] or [N, T, V, V] replacing the layer's own graph.
        """
        if x.ndim != 4 or x.shape[2] != self.num_joints:
            raise ValueError(f"GINConv expects [N, T, V={self.num_joints}, C], got {tuple(x.shape)}")
        adj = self.adjacency if adjacency is None else adjacency.to(x.dtype)
        if self.aggregation == "dense":
            neighbours = neighbour_sum_dense(x, adj.to(x.dtype))
        else:
            weight = None
            if adjacency is not None:
                weight = adj[..., self.edge_target, self.edge_source]  # [E] or [N|1, T|1, E]
                weight = weight.expand(*x.shape[:2], weight.shape[-1])
            neighbours = neighbour_sum_index_add(x, self.edge_source, self.edge_target, weight)
        return (1.0 + self.eps.to(x.dtype)) * x + neighbours

    def forward(self, x: torch.Tensor, adjacency: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: [N, T, V, C_in] -> [N, T, V, C_out]."""
        h = self.aggregate(x, adjacency)
        return self.fc2(self.act(self.norm(self.fc1(h))))

    def extra_repr(self) -> str:
        return f"{self.in_features} -> {self.hidden_features} -> {self.out_features}, aggregation={self.aggregation}"

