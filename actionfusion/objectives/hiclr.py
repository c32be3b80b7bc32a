"""HiCLR: hierarchical consistent contrastive learning (Zhang et al., AAAI 2023; JHang2020/HiCLR).

Four views of each clip (``data.views: 4``, their pipelines in ``data.view_transforms``):

0. basic (temporal crop-pad + shear): the query ``q``;
1. basic again, through the momentum encoder: the key ``k``;
2. strong (basic + spatial flip, rotation, Gaussian noise and blur, axis mask): ``q1``;
3. strongest (strong + joint mask): ``q2``. Masked joints arrive as NaN (the ``joint_mask``
   transform with ``fill: nan``) and are replaced here by a learnable mask value, as upstream.
   The stream step runs after the augmentations, so with the motion or bone stream the values
   computed from a masked joint (its next frame's motion, its child's bone) are NaN and take the
   mask value too; upstream masks the stream's values directly.

Each view's distribution over [key, queue] is ``p_i = softmax([q_i . k, q_i . queue] / tau)``.
The loss is ``InfoNCE(q, k) + 1/2 [H(sg(p0), p1) + H(sg(p1), p2)]``: the weaker view's
distribution, detached, supervises the next stronger one (no gradient reaches the weaker view
through this term). From ``mining_start_epoch`` (150 upstream) the InfoNCE term takes the top-1
queue neighbours of all three query views as extra positives (AimCLR mining).

Optional, off by default as upstream leaves them unused: SkeleAdaIN restyling of the strong
view (``adain_p``) and the adjacency augmentations of ``stgcn_clr`` (``edge_drop`` /
``edge_add``, model options).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import torch
from torch import nn

from .base import ObjectiveOutput, register_objective
from .contrastive import distribution_distillation, info_nce_logits
from .moco import MoCoPretraining


@register_objective("hiclr")
class HiCLRPretraining(MoCoPretraining):
    """HiCLR on the MoCo base (see the module docstring).

    Args (beyond :class:`MoCoPretraining`'s):
        mining_start_epoch: defaults to None here; upstream's recipe sets 150 (of 300).
        adain_p: probability that a sample's strong view takes the style (per-channel mean and std)
            of another sample in the batch (SkeleAdaIN; 0 = off, upstream's choice).
    """

    num_views = 4

    def __init__(self, encoder_dim: int = 256, feature_dim: int = 128, queue_size: int = 32768,
                 momentum: float = 0.999, tau: float = 0.07, mlp: bool = True,
                 mining_start_epoch: Optional[int] = None, mining_topk: int = 1, adain_p: float = 0.0) -> None:
        super().__init__(encoder_dim, feature_dim, queue_size, momentum, tau, mlp, mining_start_epoch, mining_topk)
        self.mask_value = nn.Parameter(torch.zeros(1))
        self.adain_p = float(adain_p)

    def fill_masked(self, x: torch.Tensor) -> torch.Tensor:
        """NaN entries (masked joints) of x [B, M, T, V, C] -> the learnable mask value."""
        return torch.where(torch.isnan(x), self.mask_value.to(x.dtype), x)

    def strong_view(self, x: torch.Tensor) -> torch.Tensor:
        """View 2 with the optional SkeleAdaIN restyling (training only)."""
        if self.adain_p > 0 and self.training:
            from ..modalities.skeleton.skele_adain import skele_adain_batch

            x = skele_adain_batch(x, self.adain_p)
        return x

    def forward(self, model: nn.Module, batch: Mapping[str, Any]) -> ObjectiveOutput:
        """batch["views"] = [basic, basic (key), strong, strongest] -> loss
        ``info_nce + (ddm_strong + ddm_strongest) / 2``."""
        q = self.embed(model, self.inputs(model, batch, 0))
        q1 = self.embed(model, self.strong_view(self.inputs(model, batch, 2)))
        q2 = self.embed(model, self.fill_masked(self.inputs(model, batch, 3)))
        k = self.embed_key(model, self.inputs(model, batch, 1))
        queue = self.queue.snapshot()
        logits1 = info_nce_logits(q1, k, queue, self.tau)
        logits2 = info_nce_logits(q2, k, queue, self.tau)
        nce, logits = self.contrast(q, k, extra_negatives=(logits1[:, 1:], logits2[:, 1:]), queue=queue)
        ddm1 = distribution_distillation(logits1, logits)
        ddm2 = distribution_distillation(logits2, logits1)
        loss = nce + 0.5 * (ddm1 + ddm2)
        if self.training:
            self.queue.enqueue(k, batch.get("index"))
        return ObjectiveOutput(
            loss=loss,
            losses={"info_nce": nce.detach(), "ddm_strong": ddm1.detach(), "ddm_strongest": ddm2.detach()},
            metrics={"contrast_top1": (logits.argmax(dim=1) == 0).float().mean()},
            batch_size=int(q.shape[0]),
        )
