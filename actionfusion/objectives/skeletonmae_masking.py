"""SkeletonMAE's joint and edge masking, drawn independently for every skeleton graph.

Joint masking hides exactly ``masked_joint_count(V, ratio)`` joints of every graph. Which ones
depends on ``rule`` (the paper masks with the body-part partition of
:mod:`actionfusion.modalities.skeleton.body_parts` but gives no sampling rule; all three are
reconstructions):

- ``"parts"``: body parts in a random order, whole parts first: the hidden joints are whole parts
  plus at most one partly hidden part (the next in the order), its joints drawn at random;
- ``"stratified"``: every part gives its share ``K |part| / V`` of joints, rounded by largest
  remainder so the total is K (each part within one joint of its share), drawn at random inside
  the part;
- ``"uniform"``: K joints at random, parts ignored (GraphMAE's).

Edge masking drops exactly ``round(rate * E)`` of the E undirected skeleton edges of every graph
from the encoder's adjacency (the decoder sees the whole graph).

Every draw uses torch's global random stream unless a generator is given, so an engine that reseeds
it per epoch resumes exactly.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import torch

MASK_RULES = ("parts", "stratified", "uniform")


def masked_joint_count(num_joints: int, ratio: float) -> int:
    """K = floor(ratio * V + 1/2), the hidden joints per graph (at least 1 for ratio > 0)."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"mask ratio must be in [0, 1), got {ratio}")
    count = int(math.floor(ratio * num_joints + 0.5))
    return max(count, 1) if ratio > 0 else 0


def _rand(shape: Sequence[int], device: torch.device, generator: Optional[torch.Generator]) -> torch.Tensor:
    return torch.rand(tuple(shape), device=device, generator=generator)


def stratified_quota(shape: Sequence[int], part_of_joint: torch.Tensor, count: int,
                     generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Hidden joints per part, int64 [*shape, P], summing to ``count``: the largest-remainder
    rounding of the shares ``count |part| / V`` (ties between equal remainders drawn at random)."""
    num_joints = part_of_joint.numel()
    sizes = torch.bincount(part_of_joint).to(torch.float64)
    share = count * sizes / num_joints
    base = share.floor()
    remainder = share - base
    extra = int(round(float(count - base.sum())))
    quota = base.to(torch.int64).expand(*shape, -1).clone()
    if extra > 0:
        tie_break = _rand((*shape, sizes.numel()), part_of_joint.device, generator).to(torch.float64)
        priority = remainder + 1e-6 * tie_break  # remainders differ by multiples of 1 / V when unequal
        quota.scatter_add_(-1, priority.argsort(dim=-1, descending=True)[..., :extra],
                           torch.ones((*shape, extra), dtype=torch.int64, device=quota.device))
    return quota


def joint_mask_keys(shape: Sequence[int], part_of_joint: torch.Tensor, rule: str, count: int,
                    generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Random sort keys [*shape, V]: a graph hides its ``count`` joints of smallest key.

    Args:
        shape: the graphs' leading shape (e.g. (B, T')).
        part_of_joint: int64 [V] part index of every joint.
        rule: one of :data:`MASK_RULES`.
        count: K, the joints hidden per graph (the ``stratified`` rule's quotas depend on it).
    """
    device = part_of_joint.device
    num_joints = part_of_joint.numel()
    jitter = _rand((*shape, num_joints), device, generator)
    if rule == "uniform":
        return jitter
    num_parts = int(part_of_joint.max()) + 1
    if rule == "parts":
        part_rank = _rand((*shape, num_parts), device, generator).argsort(dim=-1).argsort(dim=-1)
        return part_rank.index_select(-1, part_of_joint).to(jitter.dtype) + jitter
    if rule == "stratified":
        same_part = part_of_joint[:, None] == part_of_joint[None, :]  # [V, V]
        # rank of each joint's jitter inside its part: 0 .. |part| - 1
        rank = ((jitter.unsqueeze(-2) < jitter.unsqueeze(-1)) & same_part).sum(dim=-1)
        quota = stratified_quota(shape, part_of_joint, count, generator)  # [*shape, P]
        hidden = rank < quota.gather(-1, part_of_joint.expand(*shape, num_joints))
        return (~hidden).to(jitter.dtype) + jitter  # the K hidden joints have the K keys below 1
    raise ValueError(f"mask rule must be one of {MASK_RULES}, not {rule!r}")


def joint_mask(shape: Sequence[int], part_of_joint: torch.Tensor, ratio: float, rule: str = "parts",
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """bool [*shape, V]: True where a joint is hidden; exactly K = :func:`masked_joint_count` per graph."""
    count = masked_joint_count(part_of_joint.numel(), ratio)
    keys = joint_mask_keys(shape, part_of_joint, rule, count, generator)
    mask = torch.zeros(keys.shape, dtype=torch.bool, device=keys.device)
    if count > 0:
        mask.scatter_(-1, keys.argsort(dim=-1)[..., :count], True)
    return mask


def edge_keep_mask(shape: Sequence[int], num_edges: int, rate: float, device: torch.device,
                   generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """bool [*shape, E]: False for the ``round(rate * E)`` edges dropped from each graph."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"edge mask rate must be in [0, 1), got {rate}")
    drop = int(math.floor(rate * num_edges + 0.5))
    keep = torch.ones((*shape, num_edges), dtype=torch.bool, device=device)
    if drop > 0:
        order = _rand((*shape, num_edges), device, generator).argsort(dim=-1)
        keep.scatter_(-1, order[..., :drop], False)
    return keep


def masked_adjacency(edges: torch.Tensor, keep: torch.Tensor, num_joints: int) -> torch.Tensor:
    """Per-graph symmetric 0/1 adjacency [*shape, V, V] with only the kept edges.

    Args:
        edges: int64 [E, 2] undirected edges (child, parent).
        keep: bool [*shape, E].
    """
    adjacency = torch.zeros((*keep.shape[:-1], num_joints, num_joints), device=keep.device)
    values = keep.to(adjacency.dtype)
    adjacency[..., edges[:, 0], edges[:, 1]] = values
    adjacency[..., edges[:, 1], edges[:, 0]] = values
    return adjacency


def parts_hidden(mask: torch.Tensor, part_of_joint: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per graph, how many parts are hidden whole and how many partly: two int64 [*shape] tensors."""
    num_parts = int(part_of_joint.max()) + 1
    one_hot = torch.nn.functional.one_hot(part_of_joint, num_parts).to(torch.int64)  # [V, P]
    hidden = mask.to(torch.int64) @ one_hot  # [*shape, P]
    sizes = one_hot.sum(dim=0)
    return (hidden == sizes).sum(dim=-1), ((hidden > 0) & (hidden < sizes)).sum(dim=-1)
