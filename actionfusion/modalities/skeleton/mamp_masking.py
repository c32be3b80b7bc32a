"""MAMP's motion-aware token masking (Mao et al., ICCV 2023; maoyunyao/MAMP, model_mamp/transformer.py).

Tokens are (segment, joint) patches of a skeleton sequence. A token's motion is the mean absolute
change of its patch vector from the previous segment; the masking draws, without replacement,
which tokens to hide with probabilities ``softmax(motion / (max motion * tau))`` via the Gumbel-top-k
trick, so tokens that move are hidden more often than static ones. ``tau = 0`` is plain uniform
random masking (MAE).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from einops import rearrange

# Guards against log(0) in the Gumbel noise and division by zero for a motionless sample
# (the values used by maoyunyao/MAMP).
_EPS = 1e-10


@dataclass
class TokenMask:
    """Which tokens one masking draw keeps.

    Attributes:
        keep_index: int64 [B, K] indices (``t' * V + v``) of the visible tokens, most-likely-kept
            first (the order the encoder sees them in).
        mask: float32 [B, L], 1 where a token is hidden, 0 where it is visible.
        restore_index: int64 [B, L]; ``gather(cat([visible, hidden]), 1, restore_index)`` puts a
            sequence ordered as ``keep_index`` followed by the hidden tokens back in token order.
    """

    keep_index: torch.Tensor
    mask: torch.Tensor
    restore_index: torch.Tensor

    @property
    def num_keep(self) -> int:
        """K, the number of visible tokens per sample."""
        return int(self.keep_index.shape[1])


def num_tokens_kept(num_tokens: int, mask_ratio: float, official_floor: bool = False) -> int:
    """How many of ``num_tokens`` stay visible at ``mask_ratio``.

    ``floor(L * (1 - ratio))`` with a tolerance, so 750 tokens at 0.9 keep 75 as the paper says.
    ``official_floor=True`` restores the upstream ``int(L * (1 - ratio))``, which float rounding
    makes 74 for (750, 0.9).
    """
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
    exact = num_tokens * (1.0 - mask_ratio)
    keep = int(exact) if official_floor else math.floor(exact + 1e-6)
    return max(keep, 1)


def token_motion(x_patches: torch.Tensor) -> torch.Tensor:
    """Per-token motion of a patchified skeleton sequence.

    Args:
        x_patches: [B, T', V, P] patch vectors (P = frames per segment x joints per patch x C,
            12 for MAMP), T' >= 2.

    Returns:
        float [B, T' * V]: mean over P of |x[t'] - x[t'-1]|, with the first segment given the
        second one's value.
    """
    if x_patches.ndim != 4:
        raise ValueError(f"x_patches must be [B, T', V, P], got shape {tuple(x_patches.shape)}")
    if x_patches.shape[1] < 2:
        raise ValueError(f"motion needs at least 2 segments, got T'={x_patches.shape[1]}")
    diff = (x_patches[:, 1:] - x_patches[:, :-1]).abs()
    diff = torch.cat([diff[:, :1], diff], dim=1)
    return rearrange(diff.mean(dim=-1), "b t v -> b (t v)")


def motion_aware_masking(
    x_patches: torch.Tensor,
    mask_ratio: float = 0.9,
    tau: float = 0.8,
    generator: Optional[torch.Generator] = None,
    official_floor: bool = False,
) -> TokenMask:
    """Draw MAMP's motion-aware mask for each sample.

    Args:
        x_patches: [B, T', V, P] patch vectors of the input skeletons (see ``patchify_skeleton``).
        mask_ratio: fraction of the T' * V tokens hidden (0.9 in MAMP).
        tau: temperature; scores are ``m / (max(m) * tau + 1e-10)`` before the softmax, so a
            smaller tau sharpens the preference for masking moving tokens. 0.8 for NTU60/PKU,
            0.75 for NTU120. ``tau <= 0`` means uniform random masking.
        generator: optional torch.Generator for reproducible draws (on x_patches' device).
        official_floor: keep ``int(L * (1 - ratio))`` tokens as upstream does (74 of 750 at 0.9).

    Returns:
        TokenMask with K = ``num_tokens_kept(T' * V, mask_ratio)`` visible tokens per sample.
    """
    if x_patches.ndim != 4:
        raise ValueError(f"x_patches must be [B, T', V, P], got shape {tuple(x_patches.shape)}")
    batch, segments, joints, _ = x_patches.shape
    num_tokens = segments * joints
    keep = num_tokens_kept(num_tokens, mask_ratio, official_floor=official_floor)
    uniform = torch.rand(batch, num_tokens, generator=generator, device=x_patches.device)

    if tau > 0:
        motion = token_motion(x_patches.detach().float())
        motion = motion / (motion.amax(dim=-1, keepdim=True) * tau + _EPS)
        log_prob = F.log_softmax(motion, dim=-1)
        # Gumbel-top-k: the largest log p - log(-log U) are a draw without replacement from p;
        # those are hidden and the K smallest kept, so moving tokens are hidden more often.
        scores = log_prob - torch.log(-torch.log(uniform + _EPS) + _EPS)
    else:
        scores = uniform

    shuffle = torch.argsort(scores, dim=1)
    restore_index = torch.argsort(shuffle, dim=1)
    keep_index = shuffle[:, :keep]
    mask = torch.ones(batch, num_tokens, device=x_patches.device)
    mask[:, :keep] = 0.0
    mask = torch.gather(mask, 1, restore_index)
    return TokenMask(keep_index=keep_index, mask=mask, restore_index=restore_index)
