"""A small pre-LayerNorm ViT block: multi-head self-attention and an MLP, each residual.

Parameter names follow the ViT/MAE convention (``norm1``, ``attn.qkv``, ``attn.proj``, ``norm2``,
``mlp.fc1``, ``mlp.fc2``) so checkpoints of ViT-style skeleton transformers (MAMP, STARS) load by
name. The MLP, DropPath and trunc-normal init come from ``timm.layers``.
"""

from __future__ import annotations

from typing import List, Type

import torch
import torch.nn.functional as F
from einops import rearrange
from timm.layers import DropPath, Mlp
from torch import nn


class MultiHeadSelfAttention(nn.Module):
    """Scaled dot-product self-attention over a token sequence.

    The fused ``qkv`` projection's output is laid out ``(3, heads, head_dim)`` like timm's and
    MAE's ``Attention``, so their weights load unchanged.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, L, D] -> [B, L, D]."""
        q, k, v = rearrange(self.qkv(x), "b l (three h d) -> three b h l d", three=3, h=self.num_heads)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.0)
        out = rearrange(out, "b h l d -> b l (h d)")
        return self.proj_drop(self.proj(out))


class TransformerBlock(nn.Module):
    """Pre-LN transformer block: ``x + DropPath(Attn(LN(x)))`` then ``x + DropPath(MLP(LN(x)))``."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        proj_drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        act_layer: Type[nn.Module] = nn.GELU,
        norm_layer: Type[nn.Module] = nn.LayerNorm,
    ) -> None:
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = MultiHeadSelfAttention(
            dim, num_heads=num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=proj_drop
        )
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(in_features=dim, hidden_features=int(dim * mlp_ratio), act_layer=act_layer, drop=proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, L, D] -> [B, L, D]."""
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def stochastic_depth_rates(drop_path_rate: float, depth: int) -> List[float]:
    """Per-block DropPath rates rising linearly from 0 to ``drop_path_rate`` (the ViT/DeiT rule)."""
    return [float(r) for r in torch.linspace(0.0, drop_path_rate, depth)]
