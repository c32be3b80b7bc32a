"""Skeleton graphs and the adjacency partitions of the GCN papers, named apart.

Two partitions are both called "spatial" upstream; here they have distinct names:

- :func:`stgcn_spatial_partition` (ST-GCN, yysijie/st-gcn@221c0e1 ``net/utils/graph.py``):
  hop <= 1 adjacency with self-loops, normalised ``A D^-1``, split into K = 3 subsets
  by distance to the centre joint: root (self), centripetal (the neighbour is at least as
  close to the centre as the root), centrifugal (farther).
- :func:`ctrgcn_partition` (CTR-GCN, Uason-Chen/CTR-GCN@e13d758 ``graph/tools.py``):
  ``stack(I, colnorm(In), colnorm(Out))``, where ``edge2mat`` sets ``A[j, i] = 1`` for an
  edge ``i -> j``; "In" holds the child -> parent edges, "Out" the reverse.

Edges are (child, parent) pairs, 0-based.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

# NTU RGB+D 25-joint Kinect v2 graph, (child, parent) 1-based, common to all variants
# (shared/specs/skeleton-gcn.md; official parents in shahroudy/NTURGB-D@ac2ebc8).
_NTU_EDGES_1BASED_COMMON = (
    (1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9),
    (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18), (20, 19),
)
# Hand tips, variant A: chains (22,23),(23,8),(24,25),(25,12): ST-GCN, CTR-GCN, PSUMNet.
_NTU_HAND_EDGES_A = ((22, 23), (23, 8), (24, 25), (25, 12))
# Hand tips, variant B: both tip and thumb on the hand: pyskl, BRL, ACLNet, Hyper-GCN.
_NTU_HAND_EDGES_B = ((22, 8), (23, 8), (24, 12), (25, 12))

NTU_CENTER = 20
"""0-based index of SpineShoulder (joint 21, 1-based), the graph centre of the GCN papers."""


@dataclass(frozen=True)
class SkeletonGraph:
    """A tree-shaped skeleton graph.

    Attributes:
        name: e.g. ``"ntu25-A"``.
        num_joints: V.
        edges: (child, parent) pairs, 0-based; the centre has no parent edge.
        center: 0-based centre joint (distance origin of the ST-GCN partition).
    """

    name: str
    num_joints: int
    edges: tuple[tuple[int, int], ...]
    center: int

    def adjacency(self) -> np.ndarray:
        """float32 [V, V] symmetric 0/1 adjacency without self-loops."""
        a = np.zeros((self.num_joints, self.num_joints), dtype=np.float32)
        for child, parent in self.edges:
            a[child, parent] = a[parent, child] = 1.0
        return a

    def hop_distance(self) -> np.ndarray:
        """int [V, V] shortest-path hop counts (a large number where unreachable)."""
        v = self.num_joints
        unreachable = 10 * v
        dist = np.full((v, v), unreachable, dtype=np.int64)
        np.fill_diagonal(dist, 0)
        reach = np.eye(v, dtype=bool)
        step = self.adjacency().astype(bool) | np.eye(v, dtype=bool)
        for hop in range(1, v):
            reach = (reach.astype(np.int64) @ step.astype(np.int64)) > 0
            newly = reach & (dist == unreachable)
            dist[newly] = hop
        return dist


def ntu25_graph(hand_variant: str = "A") -> SkeletonGraph:
    """The NTU-25 graph with hand-tip ``hand_variant`` "A" (ST-GCN/CTR-GCN/PSUMNet) or "B" (pyskl)."""
    if hand_variant not in ("A", "B"):
        raise ValueError(f"hand_variant must be 'A' or 'B', not {hand_variant!r}")
    hand = _NTU_HAND_EDGES_A if hand_variant == "A" else _NTU_HAND_EDGES_B
    edges = tuple((c - 1, p - 1) for c, p in _NTU_EDGES_1BASED_COMMON + hand)
    return SkeletonGraph(f"ntu25-{hand_variant}", 25, edges, NTU_CENTER)


def graph_from_edges(name: str, num_joints: int, edges: Sequence[tuple[int, int]], center: int) -> SkeletonGraph:
    """A graph from 0-based (child, parent) edges."""
    for child, parent in edges:
        if not (0 <= child < num_joints and 0 <= parent < num_joints):
            raise ValueError(f"edge ({child}, {parent}) outside 0..{num_joints - 1}")
    return SkeletonGraph(name, num_joints, tuple((int(c), int(p)) for c, p in edges), int(center))


def _edge_matrix(edges: Sequence[tuple[int, int]], num_joints: int) -> np.ndarray:
    """A[j, i] = 1 for every edge i -> j (CTR-GCN's ``edge2mat``)."""
    a = np.zeros((num_joints, num_joints), dtype=np.float32)
    for i, j in edges:
        a[j, i] = 1.0
    return a


def column_normalize(a: np.ndarray) -> np.ndarray:
    """A D^-1 with D the column sums (columns of zeros stay zero)."""
    col = a.sum(axis=0)
    inv = np.where(col > 0, 1.0 / np.where(col > 0, col, 1.0), 0.0)
    return (a * inv[None, :]).astype(np.float32)


def ctrgcn_partition(graph: SkeletonGraph) -> np.ndarray:
    """float32 [3, V, V]: (I, colnorm(In), colnorm(Out)) as CTR-GCN builds it.

    ``In`` has A[parent, child] = 1 for each (child, parent) edge (edge child -> parent),
    ``Out`` the transpose direction.
    """
    v = graph.num_joints
    inward = _edge_matrix(graph.edges, v)
    outward = _edge_matrix([(p, c) for c, p in graph.edges], v)
    return np.stack([np.eye(v, dtype=np.float32), column_normalize(inward), column_normalize(outward)])


def stgcn_spatial_partition(graph: SkeletonGraph, max_hop: int = 1, truncate_hops: bool = False) -> np.ndarray:
    """float32 [K, V, V]: ST-GCN's spatial partition; K = 3 for ``max_hop`` = 1.

    The hop <= ``max_hop`` adjacency with self-loops is normalised ``A D^-1`` (column sums).
    Entry (j, i) at hop h is sorted by the hop distances of j and i to the centre:
    root (equal), centripetal (j farther from the centre than i: the message flows
    towards the centre) or centrifugal. Hop 0 gives the root subset (the self-loops);
    every hop h >= 1 gives (root + centripetal) and centrifugal, as the reference does.

    Deliberate difference: the reference computes hop distances only up to ``max_hop`` and
    treats every joint farther from the centre as equally (infinitely) far, so most edges
    land in the root subset (non-zeros per subset 25 / 40 / 8 on NTU-25). The paper partitions
    by the real distance to the centre, which this function does (25 / 24 / 24).
    ``truncate_hops=True`` reproduces the reference (``STGCN(partition="official")``): distances
    beyond ``max_hop`` become infinite before the centre distances are compared.
    """
    hop = graph.hop_distance().astype(np.float64)
    if truncate_hops:
        hop[hop > max_hop] = np.inf  # inf == inf counts as equal, as upstream
    adjacency = (hop <= max_hop).astype(np.float32)
    normalized = column_normalize(adjacency)
    center_dist = hop[:, graph.center]
    # relation[j, i]: -1 root, 0 centripetal, 1 centrifugal (by the centre distances of j and i)
    closer = center_dist[:, None] > center_dist[None, :]
    equal = center_dist[:, None] == center_dist[None, :]
    subsets = []
    for h in range(max_hop + 1):
        at_hop = hop == h
        root = np.where(at_hop & equal, normalized, 0.0)
        if h == 0:
            subsets.append(root)
        else:
            subsets.append(root + np.where(at_hop & closer, normalized, 0.0))
            subsets.append(np.where(at_hop & ~equal & ~closer, normalized, 0.0))
    return np.stack(subsets).astype(np.float32)
