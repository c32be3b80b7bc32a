"""A small transformer over per-frame features: the order-aware temporal model shared by the
point-cloud and depth encoders.

Averaging frame features over time cannot tell an action from its reverse (sitting down from
standing up); a transformer with a learned temporal position embedding can.
"""

from __future__ import annotations

import torch
from einops import repeat
from torch import nn

POOLINGS: tuple[str, ...] = ("cls", "mean")


class TemporalTransformer(nn.Module):
    """Pre-norm transformer encoder over a sequence of frame features.

    Args:
        dim: D, the token width.
        depth: encoder layers.
        heads: attention heads (must divide D).
        mlp_ratio: feed-forward width / D.
        dropout: dropout inside the layers.
        max_frames: length of the learned position table; longer clips raise.
        pool: ``"cls"`` (a learned summary token) or ``"mean"`` (average of the frame tokens).
        position_embedding: add the learned temporal position embedding. Without it (and with
            ``pool="mean"``) the pooled output ignores frame order: an ablation switch.
    """

    def __init__(
        self,
        dim: int,
        depth: int = 2,
        heads: int = 4,
        mlp_ratio: float = 2.0,
        dropout: float = 0.1,
        max_frames: int = 64,
        pool: str = "cls",
        position_embedding: bool = True,
    ) -> None:
        super().__init__()
        if pool not in POOLINGS:
            raise ValueError(f"pool must be one of {POOLINGS}, not {pool!r}")
        self.pool, self.max_frames = pool, max_frames
        self.position = nn.Parameter(torch.zeros(1, max_frames, dim)) if position_embedding else None
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if pool == "cls" else None
        layer = nn.TransformerEncoderLayer(
            dim, heads, int(dim * mlp_ratio), dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        if self.position is not None:
            nn.init.trunc_normal_(self.position, std=0.02)
        if self.cls_token is not None:
            nn.init.trunc_normal_(self.cls_token, std=0.02)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens: [N, T, D] -> (sequence [N, T, D], pooled [N, D])."""
        frames = tokens.shape[1]
        if frames > self.max_frames:
            raise ValueError(f"clip has {frames} frames, the position table only {self.max_frames} (raise max_frames)")
        if self.position is not None:
            tokens = tokens + self.position[:, :frames]
        if self.cls_token is not None:
            tokens = torch.cat([repeat(self.cls_token, "1 1 d -> n 1 d", n=tokens.shape[0]), tokens], dim=1)
        out = self.norm(self.encoder(tokens))
        if self.cls_token is not None:
            return out[:, 1:], out[:, 0]
        return out, out.mean(dim=1)
