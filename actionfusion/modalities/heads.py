"""Classifier heads, registered under the ``head`` kind of :mod:`actionfusion.registry`.

Every head is built as ``create_head(name, in_features=D, num_classes=C, **options)`` and called
as ``head(feats, pre_logits=False)``, ``feats`` an :class:`~.features.EncoderOutput` (the heads
here read only its ``pooled`` [B, D] and also take that tensor itself). It returns logits
[B, C], or with ``pre_logits=True`` its input vector (``pooled``, before the head's dropout).
A probe puts any of them on any encoder that declares ``num_features``::

    model = create_model("ctrgcn", num_classes=0)              # encoder only
    probe = create_head("bn_linear", in_features=model.num_features, num_classes=60)
    logits = probe(model.forward_features(x))

Where heads live: heads any encoder can take are here (``linear``, ``bn_linear``); a head tied to
one model's features lives beside that model and registers the same way (``mamp_finetune`` in
:mod:`.skeleton.mamp`, which reads MAMP's per-joint tokens).
"""

from __future__ import annotations

from typing import Optional, Union

import torch
from torch import nn

from ..registry import register_head
from .features import EncoderOutput

BN_LINEAR_EPS = 1e-6
"""BatchNorm1d eps of the linear probe (MAMP ``main_linprobe.py``, after MoCo v3)."""
BN_LINEAR_FC_STD = 0.01
"""trunc_normal_ std of the linear probe's weights (MAMP ``main_linprobe.py``, after MoCo v3)."""

HeadInput = Union[EncoderOutput, torch.Tensor]


def pooled_features(feats: HeadInput) -> torch.Tensor:
    """``feats.pooled`` [B, D] of an EncoderOutput (or of anything with ``pooled``), or ``feats`` itself if a tensor."""
    if isinstance(feats, torch.Tensor):
        return feats
    return feats.pooled


@register_head("linear")
class LinearHead(nn.Module):
    """Dropout then one Linear over the pooled feature: [B, D] -> [B, num_classes].

    Args:
        in_features: D.
        num_classes: outputs.
        drop_rate: dropout before the Linear (no module when 0).
        init_std: Normal(0, std) weights and zero bias; None keeps PyTorch's default init.
    """

    def __init__(self, in_features: int, num_classes: int, drop_rate: float = 0.0,
                 init_std: Optional[float] = None) -> None:
        super().__init__()
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.fc = nn.Linear(in_features, num_classes)
        if init_std is not None:
            nn.init.normal_(self.fc.weight, 0.0, init_std)
            nn.init.zeros_(self.fc.bias)

    def forward(self, feats: HeadInput, pre_logits: bool = False) -> torch.Tensor:
        """feats (pooled [B, D]) -> logits [B, num_classes]; pooled itself with ``pre_logits``."""
        x = pooled_features(feats)
        return x if pre_logits else self.fc(self.drop(x))


@register_head("bn_linear")
class BNLinearHead(nn.Module):
    """The linear probe of MAMP's ``main_linprobe.py`` (MoCo v3's): BatchNorm1d(D, affine=False,
    eps=1e-6) then Linear, weights trunc_normal_(std=0.01), zero bias. [B, D] -> [B, num_classes].

    The parameter-free norm standardises the frozen features with running statistics learned
    during the probe; it has buffers but no parameters.
    """

    def __init__(self, in_features: int, num_classes: int, eps: float = BN_LINEAR_EPS,
                 init_std: float = BN_LINEAR_FC_STD) -> None:
        super().__init__()
        from timm.layers import trunc_normal_  # timm's inverse-CDF draw, as upstream (torch's now rejection-samples)

        self.norm = nn.BatchNorm1d(in_features, affine=False, eps=eps)
        self.fc = nn.Linear(in_features, num_classes)
        trunc_normal_(self.fc.weight, std=init_std)
        nn.init.zeros_(self.fc.bias)

    def forward(self, feats: HeadInput, pre_logits: bool = False) -> torch.Tensor:
        """feats (pooled [B, D]) -> logits [B, num_classes]; pooled itself with ``pre_logits``."""
        x = pooled_features(feats)
        return x if pre_logits else self.fc(self.norm(x))
