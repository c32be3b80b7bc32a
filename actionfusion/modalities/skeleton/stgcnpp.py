"""ST-GCN++ (Duan et al., "PYSKL", ACM MM 2022 demo): ST-GCN with a learnable graph and MS-TCN.

Follows kennymckormick/pyskl@3f6795f ``pyskl/models/gcns/stgcn.py`` with the ST-GCN++ config
(``gcn_adaptive='init'``, ``gcn_with_res=True``, ``tcn_type='mstcn'``, graph ``nturgb+d`` /
``spatial``) and ``GCNHead`` (FC 256 -> C), checked against ``utils/gcn.py`` and ``utils/tcn.py``,
written anew. Graph: NTU-25 hand variant B, ``ctrgcn_partition`` (I, In, Out), learnable
(initialised to it). Spatial unit: 1x1 conv to K * C_out, ``y_w = sum_k sum_v h_kv A_k[v, w]``,
BN, + down(x), ReLU. Temporal: :class:`MixedScaleTCN` (six branches). Data BN over V * C.
1,403,144 parameters at 60 classes (1,418,564 at 120).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import nn

from ...registry import register_model
from .gcn_blocks import (
    DataBatchNorm,
    MixedScaleTCN,
    PointwiseConv2d,
    add_residual,
    block_residual,
    partitioned_graph_conv,
)
from .graphs import ctrgcn_partition
from .layouts import layout_graph
from .skeleton_head import StackedGCN

# Widths and temporal strides: 10 stages, base 64, doubled and strided at stages 5 and 8 (pyskl STGCN).
STGCNPP_STAGES = ((64, 1), (64, 1), (64, 1), (64, 1), (128, 2), (128, 1), (128, 1), (256, 2), (256, 1), (256, 1))
# pyskl GCNHead init_std.
_GCN_HEAD_INIT_STD = 0.01


class AdaptiveGraphConv(nn.Module):
    """pyskl ``unit_gcn`` with ``adaptive='init'``, ``conv_pos='pre'``, ``with_res=True``."""

    def __init__(self, in_channels: int, out_channels: int, adjacency: np.ndarray) -> None:
        super().__init__()
        self.A = nn.Parameter(torch.from_numpy(np.asarray(adjacency, dtype=np.float32)).clone())  # [K, V, V]
        self.num_subsets = int(self.A.shape[0])
        self.conv = nn.Conv2d(in_channels, out_channels * self.num_subsets, kernel_size=1)
        self.bn = nn.BatchNorm2d(out_channels)
        if in_channels != out_channels:
            self.down: nn.Module = nn.Sequential(PointwiseConv2d(in_channels, out_channels), nn.BatchNorm2d(out_channels))
        else:
            self.down = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N', C_in, T, V] -> [N', C_out, T, V]."""
        y = partitioned_graph_conv(x, self.conv, self.A)
        return torch.relu_(self.bn(y) + self.down(x))  # the sum is a fresh tensor: in place is safe


class STGCNPPBlock(nn.Module):
    """ReLU(MixedScaleTCN(AdaptiveGraphConv(x)) + residual(x))."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        adjacency: np.ndarray,
        stride: int = 1,
        residual: bool = True,
        tcn_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.gcn = AdaptiveGraphConv(in_channels, out_channels, adjacency)
        self.tcn = MixedScaleTCN(out_channels, out_channels, stride=stride, dropout=tcn_dropout)
        self.residual = block_residual(in_channels, out_channels, stride, residual)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N', C_in, T, V] -> [N', C_out, ceil(T / stride), V]."""
        return torch.relu_(add_residual(self.tcn(self.gcn(x)), x, self.residual))


class STGCNPP(StackedGCN):
    """ST-GCN++ encoder and classifier.

    Input [N, M, T, V, C] float32 (batch key "skeleton"); ``forward_features`` gives an
    EncoderOutput of width 256 (sequence [N, ceil(T/4), 256], spatial [N, 256, ceil(T/4), V]);
    ``forward`` gives logits (``num_classes=0``: no head, the pooled feature [N, 256]).
    ``tcn_dropout`` is pyskl's per-block MS-TCN dropout (0 in the ST-GCN++ configs, never
    in block 1); ``drop_rate`` the classifier's dropout (pyskl GCNHead default 0).
    ``layout`` picks the joint graph (``"ntu25"`` with pyskl's hand variant "B", ``"coco17"``,
    ``"blazepose33"``, ...: :func:`~.layouts.layout_graph`); ``adjacency`` [K, V, V] overrides it.
    """

    def __init__(
        self,
        num_classes: int = 60,
        in_channels: int = 3,
        drop_rate: float = 0.0,
        tcn_dropout: float = 0.0,
        adjacency: Optional[np.ndarray] = None,
        layout: str = "ntu25",
    ) -> None:
        super().__init__()
        a = ctrgcn_partition(layout_graph(layout, "B")) if adjacency is None else np.asarray(adjacency, np.float32)
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.num_joints = int(a.shape[-1])
        self.data_bn = DataBatchNorm(in_channels, self.num_joints, per_person=False, channels_last=True)
        blocks = []
        c_in = in_channels
        for i, (c_out, stride) in enumerate(STGCNPP_STAGES):
            first = i == 0
            dropout = 0.0 if first else tcn_dropout
            blocks.append(STGCNPPBlock(c_in, c_out, a, stride, residual=not first, tcn_dropout=dropout))
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.num_features = c_in
        self.head = self.build_classifier(num_classes) if num_classes > 0 else None

    def classifier_init_std(self, num_classes: int) -> float:
        """pyskl GCNHead's 0.01."""
        return _GCN_HEAD_INIT_STD


@register_model("stgcnpp", modality="skeleton")
def stgcnpp(num_classes: int = 60, **kwargs: object) -> STGCNPP:
    """ST-GCN++ (pyskl), NTU-25 graph B, learnable I/In/Out topology, six-branch MS-TCN; 1.40M params at 60."""
    return STGCNPP(num_classes=num_classes, **kwargs)  # type: ignore[arg-type]
