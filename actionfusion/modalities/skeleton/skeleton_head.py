"""Pooling of a GCN's joint features into an :class:`EncoderOutput`, and the GCNs' shared forward.

Every skeleton GCN ends the same way (CTR-GCN, ST-GCN, pyskl's ``GCNHead``): global
average over persons, frames and joints, then the registered ``linear`` head (dropout, one
fully connected layer; :class:`~actionfusion.modalities.heads.LinearHead`).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Optional

import torch
from einops import rearrange
from torch import nn

from ..encoder_contract import Encoder
from ..features import EncoderOutput
from ..heads import LinearHead


def pool_joint_features(x: torch.Tensor, num_persons: int) -> EncoderOutput:
    """Average a GCN's output over persons (and joints, and frames).

    Args:
        x: float [N * M, D, T', V], persons of one clip adjacent (``(n m)``).
        num_persons: M.

    Returns:
        EncoderOutput with ``sequence`` [N, T', D] (mean over V and persons), ``pooled``
        [N, D] (mean over T', V and persons), ``spatial`` [N, D, T', V] (mean over persons).
    """
    # contiguous: the networks that run channels-last hand over [N, D, T', V] in the usual layout
    spatial = rearrange(x, "(n m) d t v -> n m d t v", m=num_persons).mean(dim=1).contiguous()
    sequence = rearrange(spatial.mean(dim=-1), "n d t -> n t d")
    pooled = sequence.mean(dim=1)
    return EncoderOutput(sequence=sequence, pooled=pooled, spatial=spatial)


class StackedGCN(Encoder):
    """The forward shared by GCNs that are: input BatchNorm -> ``blocks`` -> joint pooling -> ``head``.

    Subclasses set ``data_bn`` (input [N, M, T, V, C] -> [N*M, C, T, V]), ``blocks``,
    ``num_features``, ``drop_rate`` and ``head`` (``self.build_classifier(num_classes)``, None
    for ``num_classes=0``), and define :meth:`classifier_init_std`.
    """

    input_keys = ("skeleton",)
    data_bn: nn.Module
    blocks: nn.Module
    head: Optional[LinearHead]
    drop_rate: float

    @abstractmethod
    def classifier_init_std(self, num_classes: int) -> Optional[float]:
        """The std of the classifier's Normal init (None: PyTorch's default)."""

    def build_classifier(self, num_classes: int) -> LinearHead:
        """Dropout + Linear over the pooled feature (the reference's initialisation)."""
        return LinearHead(self.num_features, num_classes, self.drop_rate, self.classifier_init_std(num_classes))

    def forward_features(self, x: torch.Tensor) -> EncoderOutput:
        """x: [N, M, T, V, C] -> EncoderOutput (D = the last block's width, T' = ceil(T / 4))."""
        return pool_joint_features(self.blocks(self.data_bn(x)), x.shape[1])
