"""BRL, Balanced Representation Learning for long-tailed skeleton action recognition
(shared/specs/robust-longtail.md; firework8/BRL@8ec5c59): the ``brl`` objective.

Per training batch:

1. **Spatial-temporal action exploration** (rebalanced partial mixup): ``int(B * mix_fraction)``
   samples (``1/16``: one per batch of 16) each keep their upper body and take the lower body of
   a random partner, joints at their own indices (:func:`.brl_rebalance.rebalanced_partial_mixup`).
   The loss of a mixed sample is ``alpha CE(y_i) + (1 - alpha) CE(y_j)`` with alpha per pair
   (0 when i's class has over ``imbalance`` = 3 times j's training count, 1 in the reverse
   case, else 0.64).
2. **Detached action-aware learning**: the cross-entropy is class-weighted, uniformly before
   0-based epoch ``step_epoch - 1`` (the official ``(epoch + 1) // step_epoch``), then with
   :func:`.brl_rebalance.action_aware_weights` of the training split's counts.

The weighted loss of a batch is ``sum_i [a_i w(y_i) CE_i(y_i) + (1 - a_i) w(y'_i) CE_i(y'_i)] /
sum_i [a_i w(y_i) + (1 - a_i) w(y'_i)]`` (y' the partner's label, a = 1 for unmixed samples):
with one alpha for the whole batch it is exactly the official ``alpha CE_w(y) + (1 - alpha)
CE_w(y')`` (each term a weighted mean, as ``F.cross_entropy(weight=...)``) under uniform weights;
under class weights it keeps one normaliser instead of two, our choice, so a pair's two
labels are weighed against each other in one mean.

The engine hands the training split's labels to :meth:`BalancedRepresentation.observe_training_labels`
(counts are recomputed from the split, not checkpointed, so a resumed run gets the same ones).
BRL's skip streams (``data.stream: skip`` / ``skip_motion``), its augmentations
(``random_scale``, ``random_rotation``, ``mirror_flip``, the optional ``temporal_flip``) and the
6-stream fusion (``actionfusion fuse ... --weights 2,2,2,1,1,1``) live in the data pipeline and
the CLI; the recipes are ``configs/*/brl.yaml``.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import Objective, ObjectiveOutput, register_objective
from .brl_rebalance import BODY_SPLITS, action_aware_weights, rebalanced_partial_mixup
from .supervised import features_and_logits


def pair_weighted_cross_entropy(logits: torch.Tensor, label_a: torch.Tensor, label_b: torch.Tensor,
                                alpha: torch.Tensor, class_weights: torch.Tensor) -> torch.Tensor:
    """The mixed, class-weighted cross-entropy of the module docstring.

    Args:
        logits: float [B, K].
        label_a, label_b: int64 [B], each sample's own and its partner's label.
        alpha: float [B], the weight of ``label_a``.
        class_weights: float [K].

    Returns:
        The scalar loss.
    """
    logits = logits.float()
    ce_a = F.cross_entropy(logits, label_a, reduction="none")
    ce_b = F.cross_entropy(logits, label_b, reduction="none")
    wa = alpha * class_weights[label_a]
    wb = (1.0 - alpha) * class_weights[label_b]
    return (wa * ce_a + wb * ce_b).sum() / (wa + wb).sum().clamp_min(1e-12)


@register_objective("brl")
class BalancedRepresentation(Objective):
    """BRL's training loss (module docstring).

    Args:
        step_epoch: the second stage (class-balanced weights) starts at 0-based epoch
            ``step_epoch - 1`` (official: 20 of 24 epochs).
        reweight: use the action-aware weights from then on (False: uniform throughout).
        mixup: apply the rebalanced partial mixup.
        mix_fraction: the share of each batch that is mixed (``int(B * mix_fraction)`` samples).
        alpha: the label weight of a balanced pair.
        imbalance: the count ratio past which a pair's label goes wholly to the rarer class.
        layout: which body split the mixup uses (:data:`.brl_rebalance.BODY_SPLITS`).
        stream_key: the batch key the mixup edits (other input keys pass through).
    """

    def __init__(self, step_epoch: int = 20, reweight: bool = True, mixup: bool = True, mix_fraction: float = 1 / 16,
                 alpha: float = 0.64, imbalance: float = 3.0, layout: str = "ntu25",
                 stream_key: str = "skeleton") -> None:
        super().__init__()
        if layout not in BODY_SPLITS:
            raise ValueError(f"brl: no upper/lower body split for layout {layout!r}; choose one of "
                             f"{', '.join(BODY_SPLITS)}")
        if not 0.0 <= float(mix_fraction) <= 1.0:
            raise ValueError(f"brl: mix_fraction must lie in [0, 1], got {mix_fraction}")
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"brl: alpha must lie in [0, 1], got {alpha}")
        if int(step_epoch) < 1:
            raise ValueError(f"brl: step_epoch must be at least 1, got {step_epoch}")
        self.step_epoch = int(step_epoch)
        self.reweight = bool(reweight)
        self.mixup = bool(mixup)
        self.mix_fraction = float(mix_fraction)
        self.alpha = float(alpha)
        self.imbalance = float(imbalance)
        self.lower_body = BODY_SPLITS[layout][1]
        self.stream_key = stream_key
        self.num_classes: Optional[int] = None
        self.counts: Optional[torch.Tensor] = None
        self.class_weights: Optional[torch.Tensor] = None

    def attach(self, model: nn.Module) -> None:
        classes = getattr(model, "num_classes", None)
        if isinstance(classes, int) and classes > 0:
            self.num_classes = classes

    def observe_training_labels(self, labels: Sequence[int]) -> None:
        """Count the training split's samples per class (called by the engine before training)."""
        y = torch.as_tensor([int(v) for v in labels], dtype=torch.long)
        if y.numel() == 0:
            raise ValueError("brl: the training split is empty")
        size = max(int(y.max()) + 1, self.num_classes or 0)
        self.counts = torch.bincount(y, minlength=size)
        self.start_epoch(self.epoch)

    def start_epoch(self, epoch: int) -> None:
        super().start_epoch(epoch)
        if self.counts is None:
            return
        second_stage = self.reweight and self.epoch >= self.step_epoch - 1
        self.class_weights = (action_aware_weights(self.counts) if second_stage
                              else torch.ones(len(self.counts), dtype=torch.float32))

    def _require_counts(self) -> torch.Tensor:
        if self.counts is None or self.class_weights is None:
            raise RuntimeError("brl needs the training split's class counts: the engine passes them through "
                               "observe_training_labels(labels) (a dataset with a `labels` attribute)")
        return self.counts

    def forward(self, model: nn.Module, batch: Mapping[str, Any]) -> ObjectiveOutput:
        """batch: model inputs [B, M, T, V, C] + ``label`` int64 [B] -> mixed, weighted CE, top1."""
        counts = self._require_counts()
        x = self.inputs(model, batch)
        device = self.device_of(model)
        y = batch["label"].to(device, non_blocking=True)
        skeleton = x[self.stream_key] if isinstance(x, dict) else x
        if self.training and self.mixup:
            mixed = rebalanced_partial_mixup(skeleton, y, counts, int(len(y) * self.mix_fraction), self.lower_body,
                                             self.alpha, self.imbalance)
            label_b, alpha, num_mixed = mixed.label_b, mixed.alpha, mixed.mixed.sum()
            x = {**x, self.stream_key: mixed.x} if isinstance(x, dict) else mixed.x
        else:
            label_b, alpha, num_mixed = y, torch.ones(len(y), device=device), torch.zeros((), device=device)
        weights = self.class_weights.to(device)
        logits, aux, streams = features_and_logits(model, x)
        if streams:
            stream_weights = getattr(model, "stream_loss_weights", None) or {}
            classification = sum(stream_weights.get(name, 1.0) * pair_weighted_cross_entropy(value, y, label_b, alpha,
                                                                                             weights)
                                 for name, value in streams.items())
        else:
            classification = pair_weighted_cross_entropy(logits, y, label_b, alpha, weights)
        loss = classification + sum((value.float() for value in aux.values()), torch.zeros((), device=device))
        top1 = (logits.detach().argmax(dim=1) == y).float().mean()
        metrics: Dict[str, torch.Tensor] = {"top1": top1, "mixed": num_mixed.float() / len(y)}
        return ObjectiveOutput(loss=loss, losses={"cls": classification.detach(), **aux}, metrics=metrics,
                               batch_size=int(y.shape[0]))
