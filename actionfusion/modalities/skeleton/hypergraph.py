"""Hyper-GCN's adaptive hypergraph: k-nearest-vertex incidence, hyperedge weights, G.

Hyper-GCN (6UOOON9/Hyper-GCN@cefe70b ``model/hypergcn_base.py``, class ``HYPERGC``) builds,
per sample and per head k, a hypergraph over the V' = V + virtual vertices from the
time-averaged features:

- embed each vertex, ``v = groupconv(mean_T(x))`` (one group per head, h channels each);
- incidence ``H[u, e]``: for vertex ``u``, its ``k`` nearest vertices (by Euclidean distance
  in the embedding, ``u`` itself included) get ``softmax(-distance)`` over those ``k``, the
  rest 0: every row of ``H`` sums to 1;
- hyperedge weights ``W = tanh(conv(LeakyReLU(groupconv(mean_T(x)))))``, one per vertex-centred
  hyperedge and head;
- ``G = Dv^-1 (H W) (W De^-1) H^T`` with ``De`` the column L1 norms of ``H`` and ``Dv`` the
  row L1 norms of ``H W`` (``W`` enters twice, as upstream).

The released code uses one neighbourhood size (k = 9). The multi-scale hypergraphs of the
paper's arXiv v1 (several k) are an extension here: a list of k builds one G per k, and
the G are averaged.
"""

from __future__ import annotations

from typing import Sequence

import torch
from einops import rearrange
from torch import nn

# Hyper-GCN's released constants (model/hypergcn_base.py): k = 9 nearest vertices per
# hyperedge, hidden width per head C_in / num_heads / 4, and the 1e-8 of its norms.
HYPEREDGE_K = 9
HYPERGRAPH_REL_REDUCTION = 4
NORM_EPS = 1e-8


def knn_incidence(embedding: torch.Tensor, k: int) -> torch.Tensor:
    """Soft k-nearest-vertex incidence.

    Args:
        embedding: [N, K, V, h] per-head vertex embeddings.
        k: neighbourhood size (the vertex itself is its own nearest neighbour), 1 <= k <= V.

    Returns:
        H: [N, K, V, V]; ``H[n, k, u]`` is ``softmax(-distance)`` over the ``k`` vertices
        nearest to ``u`` and 0 elsewhere, so each row sums to 1.
    """
    num_vertices = embedding.shape[-2]
    if not 1 <= k <= num_vertices:
        raise ValueError(f"hyperedge size k={k} must lie in 1..{num_vertices} (the number of vertices)")
    distance = torch.cdist(embedding, embedding)
    nearest_distance, nearest = torch.topk(distance, k, dim=-1, largest=False)
    weights = torch.softmax(-nearest_distance, dim=-1)
    return torch.zeros_like(distance).scatter(-1, nearest, weights)


def hypergraph_adjacency(incidence: torch.Tensor, edge_weight: torch.Tensor) -> torch.Tensor:
    """G = Dv^-1 (H W)(W De^-1) H^T, Hyper-GCN's normalised hypergraph operator.

    Args:
        incidence: H [N, K, V, E] (vertices x hyperedges; E = V here).
        edge_weight: W [N, K, E] hyperedge weights (may be negative: tanh).

    Returns:
        G: [N, K, V, V].
    """
    edge_degree = incidence.abs().sum(dim=-2) + NORM_EPS  # De: column L1 norms, [N, K, E]
    weighted = incidence * edge_weight.unsqueeze(-2)  # H W
    vertex_degree = weighted.abs().sum(dim=-1, keepdim=True) + NORM_EPS  # Dv: row L1 norms of H W
    left = weighted / vertex_degree  # Dv^-1 H W
    right = incidence * (edge_weight / edge_degree).unsqueeze(-2)  # H W De^-1, transposed below
    return left @ right.transpose(-1, -2)


class AdaptiveHypergraph(nn.Module):
    """Per-sample, per-head hypergraph operators from time-averaged vertex features.

    Args:
        in_channels: C_in of the vertex features (divisible by ``num_heads``).
        num_heads: K, one hypergraph per head.
        hyperedge_k: neighbourhood size, or several (their G are averaged: multi-scale).
        rel_reduction: hidden width per head is C_in / K / rel_reduction (at least 1).
    """

    def __init__(
        self,
        in_channels: int,
        num_heads: int = 8,
        hyperedge_k: int | Sequence[int] = HYPEREDGE_K,
        rel_reduction: int = HYPERGRAPH_REL_REDUCTION,
    ) -> None:
        super().__init__()
        if in_channels % num_heads:
            raise ValueError(f"in_channels={in_channels} must be divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.hyperedge_k = (int(hyperedge_k),) if isinstance(hyperedge_k, int) else tuple(int(k) for k in hyperedge_k)
        if not self.hyperedge_k:
            raise ValueError("hyperedge_k must name at least one neighbourhood size")
        self.hidden_channels = max(1, in_channels // num_heads // rel_reduction)
        hidden = num_heads * self.hidden_channels
        self.to_embedding = nn.Conv1d(in_channels, hidden, kernel_size=1, groups=num_heads)
        self.to_edge_weight = nn.Sequential(
            nn.Conv1d(in_channels, hidden, kernel_size=1, groups=num_heads),
            nn.LeakyReLU(),
            nn.Conv1d(hidden, num_heads, kernel_size=1),
            nn.Tanh(),
        )
        for conv in (self.to_embedding, self.to_edge_weight[0], self.to_edge_weight[2]):
            nn.init.kaiming_normal_(conv.weight, mode="fan_out")
            nn.init.zeros_(conv.bias)

    def incidences(self, pooled: torch.Tensor) -> list[torch.Tensor]:
        """One incidence H [N, K, V, V] per neighbourhood size, from ``pooled`` [N, C_in, V]."""
        embedding = rearrange(self.to_embedding(pooled), "n (k h) v -> n k v h", k=self.num_heads)
        return [knn_incidence(embedding, k) for k in self.hyperedge_k]

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """G [N, K, V, V] from time-averaged vertex features ``pooled`` [N, C_in, V]."""
        edge_weight = self.to_edge_weight(pooled)  # [N, K, V]
        operators = [hypergraph_adjacency(h, edge_weight) for h in self.incidences(pooled)]
        return operators[0] if len(operators) == 1 else torch.stack(operators).mean(dim=0)
