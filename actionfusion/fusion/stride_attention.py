"""Local joint-stride and temporal-stride attention of the 3D deformable transformer (reconstructed).

Kim, Ahn, Ko (ICCV 2023, arXiv 2212.05638) name these two sublayers: local joint-stride attention
"spatially combines attention and pose tokens"; temporal-stride attention "reduces the number of
tokens by attending within temporal strides". The equations are this module's reconstruction.

Local joint-stride attention, per frame t, joints split into G = ceil(V / s_j) contiguous groups
``g = {g s_j, .., min((g + 1) s_j, V) - 1}``::

    keys_g   = [c_t ; P_t,g]          c_t the cross-modal RGB token after the deformable attention
                                      (the "attention" token; left out when use_cross_token=False)
    out_t,j  = MHA(q = P_t,j, k = v = keys_g(j))       j in group g(j)

so joint j's output depends only on the joints of its own group (and c_t).

Temporal-stride attention, per token slot n, frames split into T' = ceil(T / s_t) windows
``w = {w s_t, .., min((w + 1) s_t, T) - 1}``::

    x_bar_w,n = mean_{t in w} x_t,n
    y_w,n     = x_bar_w,n + MHA(q = LN(x_bar_w,n), k = v = LN(x_t,n), t in w)

reducing T tokens per slot to T'. The pooled mean is the residual path.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .deformable_attention import masked_attention


class _HeadProjections(nn.Module):
    """W_q, W_k, W_v, W_o of a multi-head attention on width d."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.num_heads = num_heads
        self.to_q = nn.Linear(dim, dim)
        self.to_k = nn.Linear(dim, dim)
        self.to_v = nn.Linear(dim, dim)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """query float [G, L_q, d], keys float [G, L_k, d], mask bool [G, L_k] -> float [G, L_q, d]."""
        split = "g n (h e) -> g h n e"
        q = rearrange(self.to_q(query), split, h=self.num_heads)
        k = rearrange(self.to_k(keys), split, h=self.num_heads)
        v = rearrange(self.to_v(keys), split, h=self.num_heads)
        out = masked_attention(q, k, v, None if mask is None else mask[:, None, None, :])
        return self.to_out(rearrange(out, "g h n e -> g n (h e)"))


class JointStrideAttention(nn.Module):
    """Joints attend within local groups of ``joint_stride`` joints (plus the cross-modal token).

    Args:
        dim: token width d.
        num_heads: attention heads.
        joint_stride: s_j, joints per group (the last group may be shorter).
        use_cross_token: add the RGB cross-modal token c_t to every group's keys.
    """

    def __init__(self, dim: int, num_heads: int = 4, joint_stride: int = 5, use_cross_token: bool = True) -> None:
        super().__init__()
        if joint_stride < 1:
            raise ValueError(f"joint_stride must be >= 1, not {joint_stride}")
        self.joint_stride = joint_stride
        self.use_cross_token = use_cross_token
        self.attention = _HeadProjections(dim, num_heads)

    def forward(self, joints: torch.Tensor, cross_token: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Attention output (no residual).

        Args:
            joints: float [B, T, V, d] joint tokens (already normalised).
            cross_token: float [B, T, d] the RGB cross-modal token, used when use_cross_token.

        Returns:
            float [B, T, V, d].
        """
        batch, frames, joints_n, _ = joints.shape
        stride = self.joint_stride
        groups = math.ceil(joints_n / stride)
        pad = groups * stride - joints_n
        padded = F.pad(joints, (0, 0, 0, pad))
        valid = torch.arange(groups * stride, device=joints.device) < joints_n
        grouped = rearrange(padded, "b t (g s) d -> (b t g) s d", s=stride)
        mask = rearrange(valid, "(g s) -> g s", s=stride).repeat(batch * frames, 1)     # [(b t g), s]
        keys = grouped
        if self.use_cross_token:
            if cross_token is None:
                raise ValueError("JointStrideAttention(use_cross_token=True) needs the cross-modal token")
            cross = cross_token[:, :, None].expand(batch, frames, groups, cross_token.shape[-1])
            keys = torch.cat([rearrange(cross, "b t g d -> (b t g) 1 d"), grouped], dim=1)
            mask = torch.cat([mask.new_ones(mask.shape[0], 1), mask], dim=1)
        out = self.attention(grouped, keys, mask)
        out = rearrange(out, "(b t g) s d -> b t (g s) d", b=batch, t=frames)
        return out[:, :, :joints_n]


class TemporalStrideAttention(nn.Module):
    """Each token slot's frames are reduced by ``temporal_stride``: windows pooled, then attended.

    Args:
        dim: token width d.
        num_heads: attention heads.
        temporal_stride: s_t, frames per window (the last window may be shorter).
    """

    def __init__(self, dim: int, num_heads: int = 4, temporal_stride: int = 2) -> None:
        super().__init__()
        if temporal_stride < 1:
            raise ValueError(f"temporal_stride must be >= 1, not {temporal_stride}")
        self.temporal_stride = temporal_stride
        self.norm_query = nn.LayerNorm(dim)
        self.norm_keys = nn.LayerNorm(dim)
        self.attention = _HeadProjections(dim, num_heads)

    def output_frames(self, frames: int) -> int:
        """T' = ceil(T / s_t)."""
        return math.ceil(frames / self.temporal_stride)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens float [B, T, N, d] -> float [B, ceil(T / s_t), N, d] (residual included)."""
        batch, frames, slots, _ = tokens.shape
        stride = self.temporal_stride
        windows = self.output_frames(frames)
        pad = windows * stride - frames
        padded = F.pad(tokens, (0, 0, 0, 0, 0, pad))
        valid = (torch.arange(windows * stride, device=tokens.device) < frames).to(tokens.dtype)
        grouped = rearrange(padded, "b (w s) n d -> (b w n) s d", s=stride)
        weight = rearrange(valid, "(w s) -> w s", s=stride)
        weight = weight[None, :, None].expand(batch, windows, slots, stride).reshape(-1, stride)
        pooled = (grouped * weight[..., None]).sum(dim=1) / weight.sum(dim=1, keepdim=True)   # [(b w n), d]
        out = self.attention(self.norm_query(pooled)[:, None], self.norm_keys(grouped), weight > 0)
        out = pooled + out[:, 0]
        return rearrange(out, "(b w n) d -> b w n d", b=batch, w=windows)
