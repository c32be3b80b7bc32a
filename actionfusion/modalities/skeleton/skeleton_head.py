"""Pooling of a GCN's joint features into an :class:`EncoderOutput`, and the linear classifier.

Every skeleton GCN ends the same way (CTR-GCN, ST-GCN, pyskl's ``GCNHead``): global
average over persons, frames and joints, dropout, one fully connected layer.
"""

from __future__ import annotations

from typing import Optional

import torch
from einops import rearrange
from torch import nn

from ..features import EncoderOutput
from .gcn_blocks import init_head_linear


def pool_joint_features(x: torch.Tensor, num_persons: int) -> EncoderOutput:
    """Average a GCN's output over persons (and joints, and frames).

    Args:
        x: float [N * M, D, T', V], persons of one clip adjacent (``(n m)``).
        num_persons: M.

    Returns:
        EncoderOutput with ``sequence`` [N, T', D] (mean over V and persons), ``pooled``
        [N, D] (mean over T', V and persons), ``spatial`` [N, D, T', V] (mean over persons).
    """
    spatial = rearrange(x, "(n m) d t v -> n m d t v", m=num_persons).mean(dim=1)
    sequence = rearrange(spatial.mean(dim=-1), "n d t -> n t d")
    pooled = sequence.mean(dim=1)
    return EncoderOutput(sequence=sequence, pooled=pooled, spatial=spatial)


class SkeletonClassifierHead(nn.Module):
    """Dropout then a linear layer on the pooled feature: [N, D] -> logits [N, num_classes]."""

    def __init__(
        self, in_features: int, num_classes: int, drop_rate: float = 0.0, init_std: Optional[float] = None
    ) -> None:
        super().__init__()
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.fc = nn.Linear(in_features, num_classes)
        init_head_linear(self.fc, init_std)

    def forward(self, feats: EncoderOutput) -> torch.Tensor:
        """feats.pooled: [N, D] -> logits [N, num_classes]."""
        return self.fc(self.drop(feats.pooled))


class StackedGCN(nn.Module):
    """The forward shared by GCNs that are: input BatchNorm -> ``blocks`` -> joint pooling -> ``head``.

    Subclasses set ``data_bn`` (input [N, M, T, V, C] -> [N*M, C, T, V]), ``blocks`` and ``head``.
    """

    data_bn: nn.Module
    blocks: nn.Module
    head: SkeletonClassifierHead

    def forward_features(self, x: torch.Tensor) -> EncoderOutput:
        """x: [N, M, T, V, C] -> EncoderOutput (D = the last block's width, T' = ceil(T / 4))."""
        return pool_joint_features(self.blocks(self.data_bn(x)), x.shape[1])

    def forward_head(self, feats: EncoderOutput) -> torch.Tensor:
        """feats -> logits [N, num_classes]."""
        return self.head(feats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, M, T, V, C] -> logits [N, num_classes]."""
        return self.forward_head(self.forward_features(x))
