"""The one interface between encoders and everything after them (heads, fusion).

Every encoder's ``forward_features`` returns an :class:`EncoderOutput`; its
``forward_head`` takes one and returns logits (the whole contract:
:mod:`.encoder_contract`). A fusion module takes a dict of these, keyed by modality, so a
new encoder or fusion plugs in with no other change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
from einops import rearrange


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


def per_person_joint_tokens(encoder: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                            model_name: str = "the model") -> EncoderOutput:
    """Encode every person of a skeleton clip separately into joint tokens, then pool.

    Args:
        encoder: [B, T, V, C] -> [B, T', V, D] (one sequence per person).
        x: [N, M, T, V, C] skeletons.
        model_name: for the error message.

    Returns:
        sequence [N, T', D] (mean over persons and joints), pooled [N, D] (mean over persons,
        segments and joints), spatial [N, D, T', V] (persons averaged), aux["person_tokens"]
        [N, M, T', V, D].
    """
    if x.ndim != 5:
        raise ValueError(f"{model_name} expects [N, M, T, V, C], got shape {tuple(x.shape)}")
    tokens = encoder(rearrange(x, "n m t v c -> (n m) t v c"))
    tokens = rearrange(tokens, "(n m) t v d -> n m t v d", m=x.shape[1])
    return EncoderOutput(
        sequence=tokens.mean(dim=(1, 3)),
        pooled=tokens.mean(dim=(1, 2, 3)),
        spatial=rearrange(tokens.mean(dim=1), "n t v d -> n d t v"),
        aux={"person_tokens": tokens},
    )
