"""BRL's two rebalancing tools, as plain functions (shared/specs/robust-longtail.md, BRL):

- :func:`action_aware_weights`: the class weights of the detached action-aware schedule,
  ``w_c = (1 - beta_c) / (1 - beta_c ** n_c)`` normalised to sum to C, with
  ``beta_c = 0.99 + 0.0099 (n_c - n_min) / (n_max - n_min)``;
- :func:`rebalanced_partial_mixup`: per chosen sample i, the upper body of i and the lower body
  of a random partner j, every joint at its own index, and the per-pair label weight alpha.

The official code (firework8/BRL@8ec5c59) has three bugs this module does not copy: the mixed
joints are concatenated upper-then-lower, which moves every joint to another index; one alpha
(the last pair's) is used for the whole batch; and the weight list is flipped in place at every
epoch change while rho is hard-coded to 100 (the counts here are the training split's own).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

NTU_UPPER_BODY: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 20, 21, 22, 23, 24)
"""0-based NTU-25 joints taken from sample i: spine-mid upwards, the arms and hands."""
NTU_LOWER_BODY: tuple[int, ...] = (0, 12, 13, 14, 15, 16, 17, 18, 19)
"""0-based NTU-25 joints taken from the partner j: the spine base, hips, legs and feet."""
NW_UCLA_UPPER_BODY: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
NW_UCLA_LOWER_BODY: tuple[int, ...] = (0, 12, 13, 14, 15, 16, 17, 18, 19)
BODY_SPLITS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "ntu25": (NTU_UPPER_BODY, NTU_LOWER_BODY),
    "nw_ucla20": (NW_UCLA_UPPER_BODY, NW_UCLA_LOWER_BODY),
}
"""``{layout: (upper-body joints, lower-body joints)}`` that the mixup knows."""


def action_aware_weights(counts: torch.Tensor) -> torch.Tensor:
    """Class-balanced weights of BRL's second stage.

    Classes with no training sample (a store that covers part of the label space, like the
    synthetic set's 15 of 60) get weight 0 and are left out of n_min, n_max and the
    normalisation: they never occur as a target. With n_max == n_min every beta is 0.99 and the
    weights are uniform.

    Args:
        counts: int/float [C], training samples per class.

    Returns:
        float32 [C]: weights that sum to the number of classes with samples.
    """
    n = counts.to(torch.float64)
    present = n > 0
    if not bool(present.any()):
        raise ValueError("action_aware_weights: no class has a training sample")
    n_min, n_max = n[present].min(), n[present].max()
    spread = (n - n_min) / (n_max - n_min) if bool(n_max > n_min) else torch.zeros_like(n)
    beta = 0.99 + 0.0099 * spread
    weights = torch.where(present, (1.0 - beta) / (1.0 - beta.pow(n)).clamp_min(1e-300), torch.zeros_like(n))
    weights = weights / weights.sum() * present.sum()
    return weights.to(torch.float32)


@dataclass
class MixedBatch:
    """The output of :func:`rebalanced_partial_mixup`.

    Attributes:
        x: float [B, M, T, V, C], the batch with the chosen samples' lower bodies replaced.
        label_b: int64 [B], the partner's label (the sample's own where it was not mixed).
        alpha: float [B], the weight of the sample's own label (1 where it was not mixed).
        mixed: bool [B], which samples were mixed.
    """

    x: torch.Tensor
    label_b: torch.Tensor
    alpha: torch.Tensor
    mixed: torch.Tensor


def pair_alpha(n_i: torch.Tensor, n_j: torch.Tensor, alpha: float, imbalance: float) -> torch.Tensor:
    """BRL's label weight of sample i's own class, per pair: 0 if ``n_i > k n_j`` (i's class is
    the far more frequent one: learn the partner's), 1 if ``n_j > k n_i``, else ``alpha``.

    Args:
        n_i, n_j: float [P], training counts of the two classes of each pair.

    Returns:
        float32 [P].
    """
    out = torch.full(n_i.shape, float(alpha), dtype=torch.float32, device=n_i.device)
    out = torch.where(n_i > imbalance * n_j, torch.zeros_like(out), out)
    return torch.where(n_j > imbalance * n_i, torch.ones_like(out), out)


def rebalanced_partial_mixup(x: torch.Tensor, label: torch.Tensor, counts: torch.Tensor, num_mixed: int,
                             lower: Sequence[int], alpha: float = 0.64,
                             imbalance: float = 3.0, generator: "torch.Generator | None" = None) -> MixedBatch:
    """Mix ``num_mixed`` random samples of the batch with a random partner each.

    Each chosen sample i keeps its other (upper-body) joints and takes the ``lower`` joints of a partner
    j != i drawn uniformly from the batch (every person, every frame, joints at their own
    indices). Partners are read from the unmixed batch, so a sample mixed earlier never serves
    as a partner in its mixed form (the official code edits in place).

    Args:
        x: float [B, M, T, V, C] (not modified).
        label: int64 [B].
        counts: [num_classes] training samples per class.
        num_mixed: how many samples to mix (clipped to B; 0 or B < 2 mixes none).
        lower: the joint ids taken from the partner (:data:`BODY_SPLITS`).
        alpha, imbalance: see :func:`pair_alpha`.
        generator: the random source (the global one by default).

    Returns:
        A :class:`MixedBatch`.
    """
    b = int(x.shape[0])
    label_b = label.clone()
    weights = torch.ones(b, dtype=torch.float32, device=x.device)
    mixed = torch.zeros(b, dtype=torch.bool, device=x.device)
    count = min(int(num_mixed), b) if b >= 2 else 0
    if count == 0:
        return MixedBatch(x, label_b, weights, mixed)
    chosen = torch.randperm(b, generator=generator)[:count]
    # A partner uniform over the other B - 1 samples: draw from B - 1 and skip i itself.
    partner = torch.randint(0, b - 1, (count,), generator=generator)
    partner = partner + (partner >= chosen).long()
    chosen, partner = chosen.to(x.device), partner.to(x.device)
    out = x.clone()
    lower_idx = torch.as_tensor(list(lower), dtype=torch.long, device=x.device)
    # Two index tensors around slices: both sides are [count, L, M, T, C].
    out[chosen[:, None], :, :, lower_idx[None, :]] = x[partner[:, None], :, :, lower_idx[None, :]]
    label_b[chosen] = label[partner]
    n = counts.to(device=x.device, dtype=torch.float32)
    weights[chosen] = pair_alpha(n[label[chosen]], n[label[partner]], alpha, imbalance)
    mixed[chosen] = True
    return MixedBatch(out, label_b, weights, mixed)
