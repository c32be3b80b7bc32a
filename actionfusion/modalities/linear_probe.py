"""A frozen encoder with a trainable head: the linear-evaluation protocol for any registered encoder.

``create_model("linear_probe", num_classes=60, encoder={"name": "mamp", "kwargs": {...}}, head="bn_linear")``
builds the encoder without its head (``num_classes=0``), freezes it (no gradients, always in eval
mode, so BatchNorm statistics and dropout never change it) and classifies its pooled feature
[B, num_features] with a registered head (``bn_linear``: MAMP's / MoCo v3's BatchNorm1d(affine=False)
+ Linear; ``linear``). Pretrained weights go into ``encoder`` (``model.init: {encoder: encoder.safetensors}``).
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

import torch
from torch import nn

from ..registry import create_head, create_model, register_model
from .features import EncoderOutput


@register_model("linear_probe", modality="any")
class LinearProbe(nn.Module):
    """Frozen ``encoder`` -> pooled [B, D] -> ``head`` -> logits [B, num_classes].

    Args:
        num_classes: head outputs (0: no head; ``forward`` gives the pooled features).
        encoder: ``{"name": registered model, "kwargs": {...}}`` built with ``num_classes=0``.
        head: a registered head name (``bn_linear`` or ``linear``).
        head_kwargs: extra keyword arguments of the head.
    """

    def __init__(self, num_classes: int, encoder: Mapping[str, Any], head: str = "bn_linear",
                 head_kwargs: Optional[Dict[str, Any]] = None) -> None:
        super().__init__()
        if "name" not in encoder:
            raise ValueError("linear_probe: encoder needs a 'name' (a registered model) and optional 'kwargs'")
        self.encoder = create_model(str(encoder["name"]), num_classes=0, **dict(encoder.get("kwargs") or {}))
        self.encoder.requires_grad_(False)
        self.encoder.eval()
        self.input_keys = tuple(self.encoder.input_keys)
        self.num_features = int(self.encoder.num_features)
        self.num_classes = int(num_classes)
        self.head_name, self.head_kwargs = head, dict(head_kwargs or {})
        self.head: nn.Module = nn.Identity()
        self.reset_classifier(num_classes)

    def reset_classifier(self, num_classes: int) -> None:
        """A fresh head with ``num_classes`` outputs (none for 0)."""
        self.num_classes = int(num_classes)
        self.head = (create_head(self.head_name, in_features=self.num_features, num_classes=self.num_classes,
                                 **self.head_kwargs) if self.num_classes > 0 else nn.Identity())

    def train(self, mode: bool = True) -> "LinearProbe":
        """As nn.Module.train, but the frozen encoder stays in eval mode."""
        super().train(mode)
        self.encoder.eval()
        return self

    def forward_features(self, x: Any) -> EncoderOutput:
        """The frozen encoder's EncoderOutput (computed without gradient)."""
        with torch.no_grad():
            return self.encoder.forward_features(x)

    def forward_head(self, feats: EncoderOutput, pre_logits: bool = False) -> torch.Tensor:
        """pooled [B, D] -> logits [B, num_classes] (``pre_logits``: the pooled feature)."""
        if pre_logits or self.num_classes == 0:
            return feats.pooled
        return self.head(feats.pooled)

    def forward(self, x: Any) -> torch.Tensor:
        """x: what the encoder reads -> logits [B, num_classes] (pooled [B, D] without a head)."""
        return self.forward_head(self.forward_features(x))
