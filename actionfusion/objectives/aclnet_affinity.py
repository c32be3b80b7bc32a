"""The parts of ACLNet's loss that are plain functions of tensors: the confusion bank's counting
rules, superclasses with their affinities and temperatures, and the two contrastive losses.

Spec: shared/specs/robust-longtail.md (ACLNet); upstream firework8/ACLNet@0fab868
``aclnet/models/losses/Inter_Affinitive_Contrastive_Loss.py`` and
``Intra_Affinitive_Contrastive_Loss.py``, read to check the details, vectorised here (upstream
loops over the batch and over class pairs in Python).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def confusion_increment(labels: torch.Tensor, predictions: torch.Tensor, num_classes: int) -> torch.Tensor:
    """What one batch adds to the confusion bank B, int64 [C, C].

    Two rules, for samples i, j of the batch:

    1. ``B[y_i, y_hat_i] += 1`` for every misclassified i;
    2. ``B[y_i, y_j] += 1`` for every pair (i, j) with ``y_hat_j = y_i`` and ``y_j != y_i`` (the
       pairs are ordered and counted once per i: two samples of class a make a sample of class b
       predicted as a count twice, as upstream's double loop does).

    With W[a, b] = misclassified samples of class a predicted as b and n_a = samples of class a,
    rule 2 is ``n_a * W[b, a]``, so the increment is ``W + n[:, None] * W^T``.

    Args:
        labels: int64 [B].
        predictions: int64 [B], the argmax of the logits.
    """
    wrong = predictions != labels
    pair = labels[wrong] * num_classes + predictions[wrong]
    confusions = torch.bincount(pair, minlength=num_classes * num_classes).view(num_classes, num_classes)
    per_class = torch.bincount(labels, minlength=num_classes)
    return confusions + per_class[:, None] * confusions.T


def nearest_classes(bank: torch.Tensor, neighbours: int = 10, confused_only: bool = False) -> torch.Tensor:
    """N_i: the ``neighbours`` largest entries of each row of the bank, bool [C, C].

    Ties go to the lower class index (a stable sort, as upstream's ``sorted`` of the row's dict),
    so a row with fewer non-zero counts than ``neighbours`` is filled with the first zero-count
    classes, possibly the class itself (upstream keeps them, the default here).

    ``confused_only=True`` keeps only entries with a positive count: N_i is then "the classes i was
    confused with", at most ``neighbours`` of them. Our option, for label spaces with empty classes:
    with upstream's fill every zero row gets the same N_i = {0, ..., 9}, so any two such classes
    overlap fully and the superclasses swell to nearly every class (seen on the synthetic set,
    which uses 15 of NTU60's 60 labels).
    """
    k = min(int(neighbours), bank.shape[1])
    order = torch.sort(bank, dim=1, descending=True, stable=True).indices[:, :k]
    mask = torch.zeros(bank.shape, dtype=torch.bool, device=bank.device).scatter_(1, order, True)
    return mask & (bank > 0) if confused_only else mask


def class_affinity(bank: torch.Tensor, neighbours: int = 10, overlap_threshold: int = 4,
                   neighbour_affinity: float = 0.5, confused_only: bool = False) -> torch.Tensor:
    """s_ij, float32 [C, C], from the confusion bank [C, C].

    ``s_ij = neighbour_affinity * [j in N_i] + |N_i & N_j| / |N_i|`` where the overlap exceeds
    ``overlap_threshold`` and ``j != i`` (the second term is 0 otherwise). Superclass
    ``S_i = {j : s_ij > 0}``.
    """
    near = nearest_classes(bank, neighbours, confused_only).float()
    overlap = near @ near.T  # |N_i & N_j|
    overlap.fill_diagonal_(0.0)
    shared = torch.where(overlap > overlap_threshold, overlap / near.sum(dim=1, keepdim=True).clamp_min(1.0),
                         torch.zeros_like(overlap))
    return neighbour_affinity * near + shared


def dynamic_temperature(sizes: torch.Tensor, temperatures: Sequence[float] = (0.1, 0.5, 1.0),
                        size_bounds: Sequence[int] = (10, 20), dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """tau_i per superclass size |S_i|: ``temperatures[0]`` if |S_i| <= bounds[0], ``[1]`` if <= bounds[1],
    else ``[2]`` (0.1 / 0.5 / 1.0 at 10 / 20). sizes: int [C] -> [C] of ``dtype``."""
    if len(temperatures) != len(size_bounds) + 1:
        raise ValueError(f"{len(temperatures)} temperatures for {len(size_bounds)} size bounds: give one more "
                         "temperature than bounds")
    bounds = torch.as_tensor(list(size_bounds), device=sizes.device)
    values = torch.as_tensor(list(temperatures), dtype=dtype, device=sizes.device)
    return values[torch.bucketize(sizes, bounds, right=False)]


def inter_class_affinity_loss(features: torch.Tensor, prototypes: torch.Tensor, labels: torch.Tensor,
                              superclass: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
    """L_inter: mean over the batch of the cross-entropy, target y_i, of the cosine similarities of
    sample i to the prototypes of ``{y_i} | S_{y_i}``, each divided by tau_{y_i}.

    Args:
        features: [B, D] projected topology features (normalised here).
        prototypes: [C, D] class prototypes (normalised here).
        labels: int64 [B].
        superclass: bool [C, C], row i = S_i.
        temperature: [C], tau_i.
    """
    cosine = F.normalize(features, dim=1) @ F.normalize(prototypes, dim=1).T  # [B, C]
    candidates = superclass[labels]
    candidates[torch.arange(labels.shape[0], device=labels.device), labels] = True
    logits = (cosine / temperature[labels][:, None]).masked_fill(~candidates, float("-inf"))
    return F.cross_entropy(logits, labels)


def intra_class_margin_loss(anchors: torch.Tensor, anchor_labels: torch.Tensor, contrast: torch.Tensor,
                            contrast_labels: torch.Tensor, self_index: torch.Tensor, temperature: float = 0.1,
                            margin: float = 0.1) -> torch.Tensor:
    """L_intra: mean over anchors a of ``-mean_p [s_ap - log(e^{-margin} e^{s_ap} + sum_n e^{s_an})]``.

    ``s = <a, k> / temperature`` over the contrast set, p the same-label entries other than a
    itself, n the other-label entries. An anchor without a positive contributes 0 (and still counts
    in the mean), as upstream. Upstream adds 1e-6 inside the log after subtracting the row maximum
    (1 / temperature); not here, which is the formula exactly.

    Args:
        anchors: [B, D] L2-normalised.
        anchor_labels: int64 [B].
        contrast: [K, D] L2-normalised (the queue with the anchors themselves among it).
        contrast_labels: int64 [K].
        self_index: int64 [B], the column of each anchor in ``contrast``.
    """
    s = anchors @ contrast.T / temperature  # [B, K]
    rows = torch.arange(anchors.shape[0], device=anchors.device)
    same = anchor_labels[:, None] == contrast_labels[None, :]
    positive = same.clone()
    positive[rows, self_index] = False
    negatives = torch.logsumexp(s.masked_fill(same, float("-inf")), dim=1, keepdim=True)  # -inf without negatives
    log_prob = s - torch.logaddexp(s - margin, negatives)
    per_anchor = (log_prob * positive).sum(dim=1) / positive.sum(dim=1).clamp_min(1)
    return -per_anchor.mean()
