"""CTR-GCN: channel-wise topology refinement graph convolution (Chen et al., ICCV 2021).

Follows Uason-Chen/CTR-GCN@e13d758 ``model/ctrgcn.py`` (checked against it), written anew:
per subset k a :class:`CTRGC` refines the learnable topology ``A_k`` channel by channel,

    A_hat = alpha * conv4(tanh(mean_T conv1(x)[..., :, None] - mean_T conv2(x)[..., None, :])) + A_k
    y[n, c, t, u] = sum_v A_hat[n, c, u, v] * conv3(x)[n, c, t, v]

(pyskl's copy sums over u instead, i.e. aggregates with the transpose; kept as the
``ctrgc_aggregation="pyskl_transpose"`` option). Graph: NTU-25 hand variant A,
``ctrgcn_partition``. 1,446,672 parameters at 60 classes.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import nn

from ...registry import register_model
from .channel_topology import channel_topology_sum
from .gcn_blocks import (
    DataBatchNorm,
    MultiScaleTCN,
    PointwiseConv2d,
    add_residual,
    block_residual,
    bn_init,
    conv_init_fan_out,
    ctrgcn_fc_std,
)
from .graphs import ctrgcn_partition
from .layouts import layout_graph
from .skeleton_head import StackedGCN

AGGREGATIONS = ("correct", "pyskl_transpose")

# Relation width R of CTRGC: 8 for raw 3D / 9-channel inputs, else C_in // 8 (CTR-GCN model/ctrgcn.py).
_SMALL_INPUT_CHANNELS = (3, 9)
_SMALL_INPUT_RELATION_WIDTH = 8
_RELATION_REDUCTION = 8

# Widths and temporal strides of the 10 blocks (CTR-GCN Model, base_channel 64).
CTRGCN_STAGES = ((64, 1), (64, 1), (64, 1), (64, 1), (128, 2), (128, 1), (128, 1), (256, 2), (256, 1), (256, 1))


def relation_width(in_channels: int) -> int:
    """R, the channel width of CTRGC's pairwise joint relations."""
    if in_channels in _SMALL_INPUT_CHANNELS:
        return _SMALL_INPUT_RELATION_WIDTH
    r = in_channels // _RELATION_REDUCTION
    if r < 1:
        raise ValueError(f"CTR-GCN needs C_in in {_SMALL_INPUT_CHANNELS} or C_in >= 8, got {in_channels}")
    return r


class CTRGC(nn.Module):
    """One subset's channel-wise topology refinement graph convolution."""

    def __init__(self, in_channels: int, out_channels: int, aggregation: str = "correct") -> None:
        super().__init__()
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}, not {aggregation!r}")
        self.aggregation = aggregation
        r = relation_width(in_channels)
        self.conv1 = nn.Conv2d(in_channels, r, kernel_size=1)
        self.conv2 = nn.Conv2d(in_channels, r, kernel_size=1)
        self.conv3 = nn.Conv2d(in_channels, out_channels, kernel_size=1)
        self.conv4 = nn.Conv2d(r, out_channels, kernel_size=1)
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            conv_init_fan_out(conv)

    def refined_topology(self, x: torch.Tensor, a: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """A_hat: x [N', C_in, T, V], a [V, V], alpha [1] -> [N', C_out, V, V] (u = target, v = source)."""
        x1 = self.conv1(x).mean(dim=-2)  # [N', R, V]
        x2 = self.conv2(x).mean(dim=-2)
        relation = torch.tanh(x1[..., :, None] - x2[..., None, :])  # [N', R, V, V]
        return self.conv4(relation) * alpha + a[None, None]

    def aggregate(self, a_hat: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """a_hat [N', C, V, V], h [N', C, T, V] -> [N', C, T, V]: y_u = sum_v A_hat[u, v] h_v."""
        if self.aggregation == "correct":
            return torch.einsum("ncuv,nctv->nctu", a_hat, h)
        return torch.einsum("ncuv,nctu->nctv", a_hat, h)

    def forward(self, x: torch.Tensor, a: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """x: [N', C_in, T, V], a: [V, V] -> [N', C_out, T, V]."""
        return self.aggregate(self.refined_topology(x, a, alpha), self.conv3(x))


class CTRGCNUnit(nn.Module):
    """Spatial unit: sum over subsets of CTRGC -> BN (gamma 1e-6) -> + down(x) -> ReLU."""

    def __init__(
        self, in_channels: int, out_channels: int, adjacency: np.ndarray, aggregation: str = "correct"
    ) -> None:
        super().__init__()
        self.A = nn.Parameter(torch.from_numpy(np.asarray(adjacency, dtype=np.float32)).clone())  # [K, V, V]
        self.alpha = nn.Parameter(torch.zeros(1))
        self.convs = nn.ModuleList(CTRGC(in_channels, out_channels, aggregation) for _ in range(self.A.shape[0]))
        self.bn = nn.BatchNorm2d(out_channels)
        if in_channels != out_channels:
            self.down: nn.Module = nn.Sequential(PointwiseConv2d(in_channels, out_channels), nn.BatchNorm2d(out_channels))
            conv_init_fan_out(self.down[0])
            bn_init(self.down[1], 1.0)
        else:
            self.down = nn.Identity()
        bn_init(self.bn, 1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N', C_in, T, V] -> [N', C_out, T, V]."""
        y = channel_topology_sum(x, self.convs, self.A, self.alpha, transpose=self.convs[0].aggregation != "correct")
        return torch.relu_(self.bn(y) + self.down(x))  # the sum is a fresh tensor: in place is safe


class CTRGCNBlock(nn.Module):
    """ReLU(MS-TCN(unit(x)) + residual(x))."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        adjacency: np.ndarray,
        stride: int = 1,
        residual: bool = True,
        aggregation: str = "correct",
    ) -> None:
        super().__init__()
        self.gcn = CTRGCNUnit(in_channels, out_channels, adjacency, aggregation)
        self.tcn = MultiScaleTCN(out_channels, out_channels, kernel_size=5, stride=stride, dilations=(1, 2))
        self.residual = block_residual(in_channels, out_channels, stride, residual)
        if self.residual is not None and not isinstance(self.residual, nn.Identity):
            conv_init_fan_out(self.residual.conv)
            bn_init(self.residual.bn, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N', C_in, T, V] -> [N', C_out, ceil(T / stride), V]."""
        return torch.relu_(add_residual(self.tcn(self.gcn(x)), x, self.residual))


class CTRGCN(StackedGCN):
    """CTR-GCN encoder and classifier.

    Input [N, M, T, V, C] float32 (batch key "skeleton"); ``forward_features`` gives an
    EncoderOutput of width 256 (sequence [N, ceil(T/4), 256], spatial [N, 256, ceil(T/4), V]);
    ``forward`` gives logits [N, num_classes] (``num_classes=0``: no head, the pooled feature
    [N, 256]). ``base_channels`` (64 in the paper) scales every stage's width
    (64-64-64-64-128-128-128-256-256-256), like pyskl's ``base_channels``; the output width is
    ``4 * base_channels``. ``layout`` picks the joint graph (``"ntu25"``, ``"coco17"``,
    ``"blazepose33"``, ...: :func:`~.layouts.layout_graph`, NTU's hand variant "A"); ``adjacency``
    [K, V, V] overrides it.
    """

    def __init__(
        self,
        num_classes: int = 60,
        in_channels: int = 3,
        num_persons: int = 2,
        drop_rate: float = 0.0,
        adjacency: Optional[np.ndarray] = None,
        ctrgc_aggregation: str = "correct",
        base_channels: int = 64,
        layout: str = "ntu25",
    ) -> None:
        super().__init__()
        if base_channels < 8 or base_channels % 8:
            raise ValueError(f"base_channels must be a positive multiple of 8, not {base_channels}")
        a = ctrgcn_partition(layout_graph(layout, "A")) if adjacency is None else np.asarray(adjacency, np.float32)
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.num_persons = num_persons
        self.num_joints = int(a.shape[-1])
        self.data_bn = DataBatchNorm(in_channels, self.num_joints, num_persons, per_person=True)
        blocks = []
        c_in = in_channels
        for i, (c_out, stride) in enumerate(CTRGCN_STAGES):
            c_out = c_out * base_channels // CTRGCN_STAGES[0][0]
            blocks.append(CTRGCNBlock(c_in, c_out, a, stride, residual=i > 0, aggregation=ctrgc_aggregation))
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.num_features = c_in
        self.head = self.build_classifier(num_classes) if num_classes > 0 else None
        bn_init(self.data_bn.bn, 1.0)

    def classifier_init_std(self, num_classes: int) -> float:
        """CTR-GCN's ``sqrt(2 / num_classes)``."""
        return ctrgcn_fc_std(num_classes)


@register_model("ctrgcn", modality="skeleton")
def ctrgcn(num_classes: int = 60, **kwargs: object) -> CTRGCN:
    """CTR-GCN (Chen et al. 2021), NTU-25 graph A, 1.45M parameters at 60 classes."""
    return CTRGCN(num_classes=num_classes, **kwargs)  # type: ignore[arg-type]
