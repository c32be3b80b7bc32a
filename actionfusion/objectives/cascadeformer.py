"""CascadeFormer stage 1: masked reconstruction of (frame, joint) slots (YP4AIresearch/CascadeFormer,
``ntu_60_own/NTU_pretraining.py``: ``mask_random_global_joints``, ``train_T1``).

Per clip, the body that :func:`~actionfusion.modalities.skeleton.cascadeformer.select_person` picks
is taken; exactly ``int(mask_ratio * T * V)`` of its T x V (frame, joint) slots (at least one) are
drawn uniformly without replacement and zeroed (all C coordinates); T1 encodes the masked clip
and :attr:`CascadeFormerPretraining.reconstruction_head` (Linear(d -> V * C)) predicts every
slot's coordinates from its frame token. The loss is the squared error averaged over the
coordinates of the masked slots only::

    objective = create_objective("cascadeformer", embed_dim=512)
    out = objective(create_model("cascadeformer", num_classes=0), batch)   # out.losses["mse"]

The reconstruction head is the objective's (like MAMP's decoder): ``pretrain`` writes it to
``objective.safetensors``; stage 2 never uses it (upstream keeps it inside T1 and ignores it).
The mask is drawn from torch's global random stream, so an engine that reseeds it per epoch resumes
exactly.

Upstream differences kept out on purpose: ``NTU_main.py`` keeps the pretraining epoch of lowest
masked loss measured on the test split (its ``val_dataset`` is ``split='test'``); the configs
select on the validation split or take the last epoch. Upstream's loss divides by
``num_masked + 1e-8``; this one by the masked count alone (at least one slot is always masked),
a relative difference of about 1e-11 (``benchmarks/parity.py``).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from einops import rearrange
from torch import nn

from ..modalities.skeleton.cascadeformer import select_person
from .base import Objective, ObjectiveOutput, register_objective


def masked_slot_count(frames: int, joints: int, mask_ratio: float) -> int:
    """Slots masked per clip: ``max(1, int(mask_ratio * frames * joints))`` (upstream's count)."""
    return max(1, int(mask_ratio * frames * joints))


def random_slot_mask(batch: int, frames: int, joints: int, mask_ratio: float,
                     device: torch.device | None = None) -> torch.Tensor:
    """Bool [B, T, V]: per clip exactly :func:`masked_slot_count` slots True, drawn uniformly
    without replacement (torch's global random stream)."""
    count = masked_slot_count(frames, joints, mask_ratio)
    order = torch.rand(batch, frames * joints, device=device).argsort(dim=1)
    mask = torch.zeros(batch, frames * joints, dtype=torch.bool, device=device)
    mask.scatter_(1, order[:, :count], True)
    return rearrange(mask, "b (t v) -> b t v", v=joints)


def masked_slot_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Squared error averaged over the coordinates of the masked slots only.

    Args:
        pred, target: [B, T, V, C].
        mask: bool [B, T, V], True where a slot was masked (counted).

    Returns:
        scalar ``sum(mask * (pred - target)^2) / (C * sum(mask))``.
    """
    if pred.shape != target.shape or pred.shape[:3] != mask.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must be [B, T, V, C], "
                         f"mask [B, T, V] (got {tuple(mask.shape)})")
    weight = mask.to(pred.dtype).unsqueeze(-1)
    return ((pred - target).pow(2) * weight).sum() / (weight.sum() * pred.shape[-1])


@register_objective("cascadeformer")
class CascadeFormerPretraining(Objective):
    """Masked (frame, joint) slot reconstruction for CascadeFormer's T1.

    The model is ``create_model("cascadeformer", num_classes=0, ...)`` (its ``encoder`` is T1) or a
    bare :class:`~actionfusion.modalities.skeleton.cascadeformer.FrameTransformer`.

    Args:
        embed_dim: T1's width d.
        num_joints, in_channels: V and C of the clips.
        mask_ratio: the share of the T x V slots masked (upstream's NTU run: 0.3).
    """

    needs_labels = False

    def __init__(self, embed_dim: int = 512, num_joints: int = 25, in_channels: int = 3,
                 mask_ratio: float = 0.3) -> None:
        super().__init__()
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
        self.embed_dim = embed_dim
        self.num_joints = num_joints
        self.in_channels = in_channels
        self.mask_ratio = mask_ratio
        self.reconstruction_head = nn.Linear(embed_dim, num_joints * in_channels)

    def encoder_of(self, model: nn.Module) -> nn.Module:
        """T1: ``model.encoder``, or ``model`` itself; ValueError if its sizes differ from the objective's."""
        encoder = getattr(model, "encoder", model)
        for name, ours in (("embed_dim", self.embed_dim), ("num_joints", self.num_joints),
                           ("in_channels", self.in_channels)):
            theirs = getattr(encoder, name, None)
            if theirs != ours:
                raise ValueError(f"cascadeformer objective: {name} is {ours} but the model's T1 has {theirs}")
        return encoder

    def draw_mask(self, bodies: torch.Tensor) -> torch.Tensor:
        """bodies [B, T, V, C] -> bool mask [B, T, V] (see :func:`random_slot_mask`)."""
        batch, frames, joints, _ = bodies.shape
        return random_slot_mask(batch, frames, joints, self.mask_ratio, bodies.device)

    def reconstruct(self, encoder: nn.Module, bodies: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Zero the masked slots, encode, predict every slot: [B, T, V, C] -> [B, T, V, C]."""
        masked = bodies.masked_fill(mask.unsqueeze(-1), 0.0)
        pred = self.reconstruction_head(encoder(masked))
        return rearrange(pred, "b t (v c) -> b t v c", v=self.num_joints)

    def forward(self, model: nn.Module, batch: Mapping[str, Any]) -> ObjectiveOutput:
        """batch["skeleton"] [B, M, T, V, C] -> ObjectiveOutput(loss = losses["mse"],
        metrics["masked_fraction"], batch_size = B)."""
        encoder = self.encoder_of(model)
        skeleton = batch["skeleton"].to(self.device_of(model), non_blocking=True)
        bodies, _ = select_person(skeleton)
        mask = self.draw_mask(bodies)
        pred = self.reconstruct(encoder, bodies, mask)
        dtype = torch.promote_types(pred.dtype, torch.float32)  # the loss in float32 at least (AMP)
        loss = masked_slot_mse(pred.to(dtype), bodies.to(dtype), mask)
        return ObjectiveOutput(loss=loss, losses={"mse": loss.detach()},
                               metrics={"masked_fraction": mask.float().mean()},
                               batch_size=int(skeleton.shape[0]))
