"""Late fusion: each encoder's own head scores the clip; the scores are added with weights.

``z = sum_m w_m * present_m * z_m`` over the modalities in the batch (``z_m`` the logits of
encoder ``m``'s head). The fused feature (for feature extraction) is the concatenation of the
encoders' pooled features, absent ones zeroed. No parameters of its own: the Recognizer trains
the encoders' heads with the sum of their cross-entropies, as two-stream recipes do.
"""

from __future__ import annotations

from typing import Mapping, Optional

import torch
from torch import nn

from .base import FusionFeatures, FusionOutput, PresenceMask, register_fusion


@register_fusion("late")
class LateFusion(nn.Module):
    """Weighted sum of the encoders' logits; ``weights`` {modality: w} (default 1 each)."""

    uses_encoder_heads = True

    def __init__(self, dims: Mapping[str, int], weights: Optional[Mapping[str, float]] = None) -> None:
        super().__init__()
        self.dims = {key: int(value) for key, value in dims.items()}
        weights = dict(weights or {})
        unknown = sorted(set(weights) - set(self.dims))
        if unknown:
            raise ValueError(f"late fusion weights name {unknown}, which are not encoders ({sorted(self.dims)})")
        self.weights = {key: float(weights.get(key, 1.0)) for key in self.dims}
        self.out_dim = sum(self.dims.values())

    def forward(self, feats: FusionFeatures, present: PresenceMask) -> FusionOutput:
        """feats {m: EncoderOutput} -> pooled = concat of pooled [B, sum D_m] (absent modalities zero)."""
        like = next(iter(feats.values())).pooled
        branches = {key: feats[key].pooled if key in feats else like.new_zeros(like.shape[0], dim)
                    for key, dim in self.dims.items()}
        return FusionOutput(pooled=torch.cat([branches[key] for key in self.dims], dim=-1), branches=branches)

    def combine_logits(self, logits: Mapping[str, torch.Tensor], present: PresenceMask) -> torch.Tensor:
        """{m: [B, C]} -> sum_m w_m * present_m * z_m [B, C] over the modalities given."""
        terms = [self.weights[key] * value * present[key].to(value.dtype)[:, None] for key, value in logits.items()]
        return torch.stack(terms).sum(dim=0)
