"""FineTec's completion objective: masked training pairs from clean clips and the two-term loss.

FineTec trains its context-aware completion (:class:`~actionfusion.modalities.skeleton.finetec_completion.FineTecCompletion`)
with ``L = MSE(S_gt, S_base) + MSE(S_context, S_mask)`` on prompt pairs built with five masking
types (shared/specs/robust-longtail.md; code not released). Reconstructed here, every choice an option:

- Pairs: each clean clip [B, M, T, V, C] is split into bodies; all-zero bodies (padding persons)
  are left out. Each body gets one frame mask (:func:`~actionfusion.modalities.skeleton.finetec_masking.sample_frame_masks`,
  type from ``mask_types``, share from ``ratios``); joints that are zero in the clean clip (absent)
  count as neither observed nor hidden.
- ``occlusion_prob`` (default 0, an extension beyond FineTec's five types): the share of bodies that
  also lose a random subset of arms / legs in every frame (:func:`~actionfusion.modalities.skeleton.finetec_masking.sample_part_masks`,
  layout ``occlusion_layout``), so that the spatial MLP learns to restore joints never observed.
- ``reconstruction`` (the first term, MSE(S_gt, S_base)): mean squared error of the completed clip
  against the clean one over the hidden, present entries (``reconstruction_on="hidden"``) or over
  every present entry (``"all"``).
- ``context`` (the second term, MSE(S_context, S_mask)): read here as context consistency: the
  network's raw prediction at the observed (context) entries must reproduce them
  (``context_target="observed"``); or the skeleton bank's attended prior pose must match the observed
  joints (``"prior"``, needs a bank). Weights ``reconstruction_weight`` and ``context_weight``.

Metrics: ``hidden_mpjpe`` (mean joint position error of the completion over hidden joints, in the
clip's units) and ``interpolation_mpjpe`` (the same for linear interpolation, the baseline to beat).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from einops import rearrange
from torch import nn

from ..modalities.skeleton.finetec_completion import interpolate_observed
from ..modalities.skeleton.finetec_masking import MASK_TYPES, check_mask_types, sample_frame_masks, sample_part_masks
from .base import Objective, ObjectiveOutput, register_objective

RECONSTRUCTION_ON = ("hidden", "all")
CONTEXT_TARGETS = ("observed", "prior")


def masked_squared_error(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean over the weighted entries of the squared error averaged over channels.

    Args:
        pred, target: [N, T, V, C].
        weight: bool or float [N, T, V], which entries count.

    Returns:
        scalar (zero when no entry counts).
    """
    error = (pred - target).pow(2).mean(dim=-1)
    weight = weight.to(error.dtype)
    return (error * weight).sum() / weight.sum().clamp(min=1.0)


def masked_joint_error(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean Euclidean joint error over the weighted entries of [N, T, V, C] (weight [N, T, V])."""
    weight = weight.to(pred.dtype)
    return ((pred - target).norm(dim=-1) * weight).sum() / weight.sum().clamp(min=1.0)


@register_objective("finetec_completion")
class FineTecCompletionObjective(Objective):
    """FineTec's completion loss (module docstring: reconstructed choices).

    Args:
        mask_types: masking types drawn per body (default FineTec's five).
        ratios: shares of frames hidden, one drawn per body.
        reconstruction_weight, context_weight: the two terms' weights.
        reconstruction_on: ``hidden`` or ``all``.
        context_target: ``observed`` or ``prior``.
        occlusion_prob, occlusion_layout: part occlusion of whole clips (extension; 0 = off).
    """

    needs_labels = False

    def __init__(self, mask_types: Sequence[str] = tuple(MASK_TYPES), ratios: Sequence[float] = (0.25, 0.5, 0.75),
                 reconstruction_weight: float = 1.0, context_weight: float = 1.0, reconstruction_on: str = "hidden",
                 context_target: str = "observed", occlusion_prob: float = 0.0,
                 occlusion_layout: str = "ntu25") -> None:
        super().__init__()
        if not 0.0 <= float(occlusion_prob) <= 1.0:
            raise ValueError(f"occlusion_prob must lie in [0, 1], got {occlusion_prob}")
        self.occlusion_prob, self.occlusion_layout = float(occlusion_prob), occlusion_layout
        check_mask_types(tuple(mask_types), tuple(ratios))
        if reconstruction_on not in RECONSTRUCTION_ON:
            raise ValueError(f"reconstruction_on must be one of {RECONSTRUCTION_ON}, not {reconstruction_on!r}")
        if context_target not in CONTEXT_TARGETS:
            raise ValueError(f"context_target must be one of {CONTEXT_TARGETS}, not {context_target!r}")
        self.mask_types, self.ratios = tuple(mask_types), tuple(float(r) for r in ratios)
        self.reconstruction_weight, self.context_weight = float(reconstruction_weight), float(context_weight)
        self.reconstruction_on, self.context_target = reconstruction_on, context_target

    def pairs(self, clean: torch.Tensor) -> "tuple[torch.Tensor, torch.Tensor, torch.Tensor]":
        """clean [B, M, T, V, C] -> (bodies [N, T, V, C], present bool [N, T, V], observed bool [N, T, V])."""
        bodies = rearrange(clean, "b m t v c -> (b m) t v c")
        present = bodies.abs().sum(dim=-1) > 0
        keep = present.flatten(1).any(dim=1)
        bodies, present = bodies[keep], present[keep]
        frames = sample_frame_masks(bodies.shape[0], bodies.shape[1], self.mask_types, self.ratios).to(bodies.device)
        observed = present & frames[:, :, None]
        if self.occlusion_prob > 0:
            joints = sample_part_masks(bodies.shape[0], bodies.shape[2], self.occlusion_prob, self.occlusion_layout)
            observed = observed & joints[:, None, :].to(bodies.device)
        return bodies, present, observed

    def losses(self, out: Any, bodies: torch.Tensor, present: torch.Tensor,
               observed: torch.Tensor) -> "dict[str, torch.Tensor]":
        """The two terms for a completion ``out`` (CompletionOutput) of ``bodies`` [N, T, V, C]."""
        hidden = present & ~observed
        target_entries = hidden if self.reconstruction_on == "hidden" else present
        reconstruction = masked_squared_error(out.completed, bodies, target_entries)
        if self.context_target == "prior":
            if out.prior is None:
                raise ValueError("context_target 'prior' needs a skeleton bank (model num_prototypes > 0)")
            context = masked_squared_error(out.prior, bodies, observed)
        else:
            context = masked_squared_error(out.raw, bodies, observed)
        return {"reconstruction": reconstruction, "context": context}

    def forward(self, model: nn.Module, batch: Mapping[str, Any]) -> ObjectiveOutput:
        clean = self.inputs(model, batch)
        bodies, present, observed = self.pairs(clean)
        out = model.complete(bodies * observed.unsqueeze(-1).to(bodies.dtype), observed)
        terms = self.losses(out, bodies, present, observed)
        loss = self.reconstruction_weight * terms["reconstruction"] + self.context_weight * terms["context"]
        hidden = present & ~observed
        with torch.no_grad():
            metrics = {"hidden_mpjpe": masked_joint_error(out.completed, bodies, hidden),
                       "interpolation_mpjpe": masked_joint_error(interpolate_observed(bodies, observed), bodies, hidden)}
        return ObjectiveOutput(loss=loss, losses=terms, metrics=metrics, batch_size=int(clean.shape[0]))
