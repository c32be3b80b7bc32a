"""ST-GCN: spatial temporal graph convolutional network (Yan et al., AAAI 2018).

Follows yysijie/st-gcn@221c0e1 ``net/st_gcn.py`` with its ``config/st_gcn/ntu-xsub`` settings
(checked against it), written anew: data BN over V * C, 10 blocks of
graph conv (1x1 conv to K * C_out, then ``y_w = sum_k sum_v x_kv (A_k * E_k)[v, w]``) ->
BN -> ReLU -> 9x1 temporal conv -> BN -> dropout, + residual, ReLU; learnable edge-importance
masks E (one [K, V, V] per block); global average pool; FC. Graph: NTU-25 hand variant A,
``stgcn_spatial_partition`` (K = 3, true hop distances to the centre); ``partition="official"``
restores the reference's subsets (:func:`stgcn_official_partition`, distances cut at one hop).
3,098,832 parameters at 60 classes.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import nn

from ...registry import register_model
from ..encoder_contract import Encoder
from ..features import EncoderOutput
from ..heads import LinearHead
from .gcn_blocks import DataBatchNorm, UnitTCN, add_residual, block_residual
from .graphs import SkeletonGraph, ntu25_graph, stgcn_spatial_partition
from .skeleton_head import pool_joint_features

# Widths and temporal strides of the 10 st_gcn blocks (net/st_gcn.py Model).
STGCN_STAGES = ((64, 1), (64, 1), (64, 1), (64, 1), (128, 2), (128, 1), (128, 1), (256, 2), (256, 1), (256, 1))
STGCN_TEMPORAL_KERNEL = 9
# ntu-xsub config: dropout 0.5 inside every block but the first.
STGCN_BLOCK_DROPOUT = 0.5
PARTITIONS = ("corrected", "official")
# processor/recognition.py weights_init: conv weights N(0, 0.02); BN gamma N(1, 0.02).
_STGCN_INIT_STD = 0.02


def stgcn_official_partition(graph: SkeletonGraph, max_hop: int = 1) -> np.ndarray:
    """float32 [K, V, V]: ST-GCN's spatial partition exactly as the reference computes it.

    The reference (``net/utils/graph.py``) computes hop distances only up to ``max_hop`` and
    leaves the rest infinite, so every joint more than ``max_hop`` hops from the centre has
    "distance" inf: all such joints count as equally far, and most edges land in the root
    subset instead of centripetal/centrifugal. :func:`stgcn_spatial_partition` uses the true
    distances; this function restores the reference's subsets (same normalisation).
    """
    return stgcn_spatial_partition(graph, max_hop, truncate_hops=True)


class GraphConv(nn.Module):
    """ST-GCN's ``ConvTemporalGraphical`` (temporal kernel 1): K partitioned graph convolutions."""

    def __init__(self, in_channels: int, out_channels: int, num_subsets: int) -> None:
        super().__init__()
        self.num_subsets = num_subsets
        self.conv = nn.Conv2d(in_channels, out_channels * num_subsets, kernel_size=1)

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """x: [N', C_in, T, V], a: [K, V, V] -> [N', C_out, T, V]."""
        h = self.conv(x)
        h = h.reshape(h.shape[0], self.num_subsets, -1, h.shape[2], h.shape[3])  # [N', K, C_out, T, V]
        return torch.einsum("nkctv,kvw->nctw", h, a)


class STGCNBlock(nn.Module):
    """One st_gcn block: graph conv -> BN -> ReLU -> temporal conv -> BN -> dropout, + residual, ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_subsets: int,
        stride: int = 1,
        dropout: float = 0.0,
        residual: bool = True,
        temporal_kernel: int = STGCN_TEMPORAL_KERNEL,
    ) -> None:
        super().__init__()
        self.gcn = GraphConv(in_channels, out_channels, num_subsets)
        self.tcn = nn.Sequential(
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            UnitTCN(out_channels, out_channels, kernel_size=temporal_kernel, stride=stride),
            nn.Dropout(dropout, inplace=True),  # on a BN output, which backward does not use
        )
        self.residual = block_residual(in_channels, out_channels, stride, residual)

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """x: [N', C_in, T, V], a: [K, V, V] -> [N', C_out, ceil(T / stride), V]."""
        return torch.relu_(add_residual(self.tcn(self.gcn(x, a)), x, self.residual))


class STGCN(Encoder):
    """ST-GCN encoder and classifier.

    Input [N, M, T, V, C] float32 (batch key "skeleton"); ``forward_features`` gives an
    EncoderOutput of width 256 (sequence [N, ceil(T/4), 256], spatial [N, 256, ceil(T/4), V]);
    ``forward`` gives logits (``num_classes=0``: no head, the pooled feature [N, 256]).
    ``drop_rate`` is dropout before the classifier (0 in the reference, whose dropout is
    ``block_dropout`` inside the blocks). ``partition="corrected"`` uses the true hop
    distances to the centre; ``"official"`` the reference's truncated ones
    (:func:`stgcn_official_partition`). ``adjacency`` [K, V, V] overrides both.
    """

    input_keys = ("skeleton",)

    def __init__(
        self,
        num_classes: int = 60,
        in_channels: int = 3,
        drop_rate: float = 0.0,
        block_dropout: float = STGCN_BLOCK_DROPOUT,
        edge_importance: bool = True,
        partition: str = "corrected",
        adjacency: Optional[np.ndarray] = None,
    ) -> None:
        super().__init__()
        if partition not in PARTITIONS:
            raise ValueError(f"partition must be one of {PARTITIONS}, not {partition!r}")
        if adjacency is not None:
            a = np.asarray(adjacency, np.float32)
        elif partition == "corrected":
            a = stgcn_spatial_partition(ntu25_graph("A"))
        else:
            a = stgcn_official_partition(ntu25_graph("A"))
        self.register_buffer("A", torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)))
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.num_joints = int(a.shape[-1])
        self.data_bn = DataBatchNorm(in_channels, self.num_joints, per_person=False)
        blocks = []
        c_in = in_channels
        for i, (c_out, stride) in enumerate(STGCN_STAGES):
            dropout = block_dropout if i > 0 else 0.0
            blocks.append(STGCNBlock(c_in, c_out, a.shape[0], stride, dropout, residual=i > 0))
            c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        if edge_importance:
            self.edge_importance = nn.ParameterList(nn.Parameter(torch.ones(a.shape)) for _ in blocks)
        else:
            self.edge_importance = None
        self.num_features = c_in
        self.head = self.build_classifier(num_classes) if num_classes > 0 else None
        self.reset_parameters()

    def build_classifier(self, num_classes: int) -> LinearHead:
        """Dropout + Linear, weights N(0, 0.02) as the reference's weights_init."""
        return LinearHead(self.num_features, num_classes, self.drop_rate, init_std=_STGCN_INIT_STD)

    def reset_parameters(self) -> None:
        """The reference training script's init: convolutions N(0, 0.02), BN gamma N(1, 0.02)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, _STGCN_INIT_STD)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                nn.init.normal_(m.weight, 1.0, _STGCN_INIT_STD)
                nn.init.zeros_(m.bias)

    def block_adjacency(self, i: int) -> torch.Tensor:
        """[K, V, V]: the partition weighted by block ``i``'s edge importance."""
        if self.edge_importance is None:
            return self.A
        return self.A * self.edge_importance[i]

    def forward_features(self, x: torch.Tensor) -> EncoderOutput:
        """x: [N, M, T, V, C] -> EncoderOutput (D = 256, T' = ceil(T / 4))."""
        h = self.data_bn(x)
        for i, block in enumerate(self.blocks):
            h = block(h, self.block_adjacency(i))
        return pool_joint_features(h, x.shape[1])


@register_model("stgcn", modality="skeleton")
def stgcn(num_classes: int = 60, **kwargs: object) -> STGCN:
    """ST-GCN (Yan et al. 2018), NTU-25 graph A, spatial partition, edge importance; 3.10M params at 60."""
    return STGCN(num_classes=num_classes, **kwargs)  # type: ignore[arg-type]
