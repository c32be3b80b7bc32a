"""The one interface between encoders and everything after them (heads, fusion).

Every encoder's ``forward_features`` returns an :class:`EncoderOutput`; its
``forward_head`` takes one and returns logits (the whole contract:
:mod:`.encoder_contract`). A fusion module takes a dict of these, keyed by modality, so a
new encoder or fusion plugs in with no other change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch


@dataclass
class EncoderOutput:
    """What an encoder gives to a head or a fusion module.

    Attributes:
        sequence: [B, T', D] a feature per time step (pooled over space / joints / persons).
        pooled: [B, D] the clip feature (pooled over time too).
        spatial: optional spatio-temporal map, [B, D, T', H', W'] for image-like inputs or
            joint tokens [B, D, T', V] for skeletons (persons already pooled), used by
            attention-guided fusion.
        aux: optional named extra tensors (e.g. a regulariser's input), never required by heads.
    """

    sequence: torch.Tensor
    pooled: torch.Tensor
    spatial: Optional[torch.Tensor] = None
    aux: Optional[dict] = None

    @property
    def dim(self) -> int:
        """D, the feature width."""
        return int(self.pooled.shape[-1])
