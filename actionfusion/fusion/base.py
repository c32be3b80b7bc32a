"""The contract every fusion module keeps, and the helpers they share.

A fusion module is built from the feature widths of the encoders it fuses and called with their
outputs::

    fusion = create_fusion("mmixer", dims={"skeleton": 256, "depth": 512}, **options)
    out = fusion(feats, present)      # feats: {modality: EncoderOutput}, present: {modality: bool [B]}
    out.pooled                        # [B, fusion.out_dim], what the Recognizer's head classifies
    out.branches                      # {modality: [B, D_m]} each modality's fused feature

``feats`` holds only the modalities whose encoders ran for this batch (a modality absent from the
whole batch is simply not a key). ``present[m]`` marks, per sample, whether modality ``m``'s
features are real (False where modality dropout removed it during training); the Recognizer has
already zeroed the features of absent samples. A fusion must give a finite output for any
non-empty subset of its modalities.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Optional, TypeVar

import torch
import torch.nn.functional as F

from ..modalities.features import EncoderOutput
from ..registry import create, register

FusionFeatures = Mapping[str, EncoderOutput]
"""{modality: EncoderOutput} of the encoders that ran."""
PresenceMask = Mapping[str, torch.Tensor]
"""{modality: bool [B]}: True where the sample's modality is present."""

B = TypeVar("B", bound=Callable[..., Any])


@dataclass
class FusionOutput:
    """What a fusion module returns.

    Attributes:
        pooled: [B, D_out] the fused clip feature (the head's input).
        branches: {modality: [B, D_m]} each modality's feature after fusion (e.g. M-Mixer's MCU
            state of that modality); the cross-modal tests read these.
        aux: named extras; entries named ``loss_*`` (scalar tensors, weights applied) are added
            to the training loss by the trainer.
    """

    pooled: torch.Tensor
    branches: Dict[str, torch.Tensor] = field(default_factory=dict)
    aux: Dict[str, torch.Tensor] = field(default_factory=dict)


def register_fusion(name: Optional[str] = None) -> Callable[[B], B]:
    """Register a fusion module class or builder, called as ``builder(dims=..., **options)``."""
    return register("fusion", name)


def create_fusion(name: str, dims: Mapping[str, int], **options: Any):
    """Build the fusion registered as ``name`` for encoders of widths ``dims``.

    The fusions register when the registry first looks a name up (``actionfusion.fusion.register_parts``).
    """
    return create("fusion", name, dims=dict(dims), **options)


def resample_sequence(sequence: torch.Tensor, steps: int) -> torch.Tensor:
    """[B, T, D] -> [B, steps, D], linear interpolation along time (identity when T == steps)."""
    if sequence.shape[1] == steps:
        return sequence
    return F.interpolate(sequence.transpose(1, 2), size=steps, mode="linear", align_corners=False).transpose(1, 2)
