"""ST-GCN: spatial temporal graph convolutional network (Yan et al., AAAI 2018).

Follows yysijie/st-gcn@221c0e1 ``net/st_gcn.py`` with its ``config/st_gcn/ntu-xsub`` settings
(checked against it), written anew: data BN over V * C, 10 blocks of
graph conv (1x1 conv to K * C_out, then ``y_w = sum_k sum_v x_kv (A_k * E_k)[v, w]``) ->
BN -> ReLU -> 9x1 temporal conv -> BN -> dropout, + residual, ReLU; learnable edge-importance
masks E (one [K, V, V] per block); global average pool; FC. Graph: NTU-25 hand variant A,
``stgcn_spatial_partition`` (K = 3, true hop distances to the centre); ``partition="official"``
restores the reference's subsets (:func:`stgcn_official_partition`, distances cut at one hop).
3,098,832 parameters at 60 classes.

The widths are ``hidden_channels`` h and ``hidden_dim`` (:func:`stgcn_stages`): h, h, h, h, 2h (stride 2),
2h, 2h, 4h (stride 2), 4h, ``hidden_dim``; the defaults (64, 256) are the model above. The contrastive
methods (AimCLR, HiCLR, MS-CLR) use h = 16, ``hidden_dim`` = 256: ``stgcn_clr``, after
JHang2020/HiCLR ``net/st_gcn.py`` and its ``config/release/gcn_ntu60`` settings. HiCLR's adjacency
augmentations (graph edge drop / add, present upstream but switched off in its configs) are the
options ``edge_drop`` and ``edge_add`` (:func:`drop_adjacency_entries`, :func:`add_adjacency_entries`).
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch
from torch import nn

from ...registry import register_model
from ..dropout import UniformMaskDropout
from ..encoder_contract import Encoder
from ..features import EncoderOutput
from ..heads import LinearHead
from .gcn_blocks import DataBatchNorm, UnitTCN, add_residual, block_residual, partitioned_graph_conv
from .graphs import SkeletonGraph, stgcn_spatial_partition
from .layouts import layout_graph
from .skeleton_head import pool_joint_features


def stgcn_stages(hidden_channels: int = 64, hidden_dim: int = 256) -> Tuple[Tuple[int, int], ...]:
    """(width, temporal stride) of the 10 st_gcn blocks (yysijie/st-gcn and HiCLR ``net/st_gcn.py``).

    h = ``hidden_channels``: four blocks of h, three of 2h (the first strided), two of 4h (the first
    strided), and a last block of ``hidden_dim`` (256 in both ST-GCN's and HiCLR's configurations).
    """
    h = hidden_channels
    return ((h, 1), (h, 1), (h, 1), (h, 1), (2 * h, 2), (2 * h, 1), (2 * h, 1), (4 * h, 2), (4 * h, 1),
            (hidden_dim, 1))


# Widths and temporal strides of the 10 st_gcn blocks (net/st_gcn.py Model).
STGCN_STAGES = stgcn_stages(64, 256)
# HiCLR / AimCLR / MS-CLR (JHang2020/HiCLR config/release/gcn_ntu60: hidden_channels 16, hidden_dim 256).
STGCN_CLR_HIDDEN_CHANNELS = 16
STGCN_CLR_HIDDEN_DIM = 256
STGCN_TEMPORAL_KERNEL = 9
# ntu-xsub config: dropout 0.5 inside every block but the first.
STGCN_BLOCK_DROPOUT = 0.5
PARTITIONS = ("corrected", "official")
# processor/recognition.py weights_init: conv weights N(0, 0.02); BN gamma N(1, 0.02).
STGCN_INIT_STD = 0.02


def stgcn_official_partition(graph: SkeletonGraph, max_hop: int = 1) -> np.ndarray:
    """float32 [K, V, V]: ST-GCN's spatial partition exactly as the reference computes it.

    The reference (``net/utils/graph.py``) computes hop distances only up to ``max_hop`` and
    leaves the rest infinite, so every joint more than ``max_hop`` hops from the centre has
    "distance" inf: all such joints count as equally far, and most edges land in the root
    subset instead of centripetal/centrifugal. :func:`stgcn_spatial_partition` uses the true
    distances; this function restores the reference's subsets (same normalisation).
    """
    return stgcn_spatial_partition(graph, max_hop, truncate_hops=True)


def _uniform_rate(max_rate: float, device: torch.device) -> torch.Tensor:
    """A rate drawn from U(0, ``max_rate``) with torch's generator (0-d tensor on ``device``)."""
    return torch.rand((), device=device) * max_rate


def drop_adjacency_entries(a: torch.Tensor, max_rate: float) -> torch.Tensor:
    """HiCLR's graph edge drop: zero the entries of ``a`` at a rate r ~ U(0, ``max_rate``), keep the sum.

    Every entry of ``a`` [K, V, V] (self-loops included) is dropped independently with
    probability r, r drawn afresh per call; the survivors are scaled so that ``out.sum() ==
    a.sum()`` (the sum-preserving variant, HiCLR ``drop_graph2``; its ``drop_graph`` keeps the sum
    only in expectation through dropout's 1 / (1 - r)). Zero entries stay zero. Where every
    entry would go (the upstream function divides by zero there), ``a`` is returned unchanged.
    """
    if max_rate <= 0:
        return a
    keep = torch.rand(a.shape, device=a.device) >= _uniform_rate(max_rate, a.device)
    kept = a * keep
    kept_sum = kept.sum()
    if kept_sum == 0:
        return a
    return kept * (a.sum() / kept_sum)


def add_adjacency_entries(a: torch.Tensor, max_rate: float, allowed: Optional[torch.Tensor] = None) -> torch.Tensor:
    """HiCLR's random edge addition: new unit entries at a rate r ~ U(0, ``max_rate``), the sum kept.

    Each zero entry of ``a`` [K, V, V] (where ``allowed`` [V, V] or [K, V, V] is True, if given)
    becomes 1 with probability r; then everything is scaled by ``a.sum() / (a.sum() + added)``
    so the total weight ("intensity") is unchanged, as HiCLR ``randadd`` does. Existing entries
    never change except by that scale. ``allowed`` keeps the new edges among real joints in
    the padded adjacencies of :mod:`.stgcn_unified`.
    """
    if max_rate <= 0:
        return a
    new = (torch.rand(a.shape, device=a.device) < _uniform_rate(max_rate, a.device)) & (a == 0)
    if allowed is not None:
        new = new & allowed.to(torch.bool)
    added = new.to(a.dtype)
    total = a.sum()
    return (a + added) * (total / (total + added.sum()))


def augment_adjacency(a: torch.Tensor, edge_drop: float, edge_add: float,
                      allowed: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Edge drop, then edge addition (the order of HiCLR's commented-out combination); each a no-op at 0."""
    return add_adjacency_entries(drop_adjacency_entries(a, edge_drop), edge_add, allowed)


class GraphConv(nn.Module):
    """ST-GCN's ``ConvTemporalGraphical`` (temporal kernel 1): K partitioned graph convolutions."""

    def __init__(self, in_channels: int, out_channels: int, num_subsets: int) -> None:
        super().__init__()
        self.num_subsets = num_subsets
        self.conv = nn.Conv2d(in_channels, out_channels * num_subsets, kernel_size=1)

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """x: [N', C_in, T, V], a: [K, V, V] -> [N', C_out, T, V]."""
        return partitioned_graph_conv(x, self.conv, a)


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
            UniformMaskDropout(dropout),  # nn.Dropout, its mask 4x cheaper (see modalities/dropout.py)
        )
        self.residual = block_residual(in_channels, out_channels, stride, residual)

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """x: [N', C_in, T, V], a: [K, V, V] -> [N', C_out, ceil(T / stride), V]."""
        return torch.relu_(add_residual(self.tcn(self.gcn(x, a)), x, self.residual))


def init_stgcn_weights(model: nn.Module) -> None:
    """The reference training script's init: convolutions N(0, 0.02) with zero bias, BN gamma N(1, 0.02)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0.0, STGCN_INIT_STD)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, STGCN_INIT_STD)
            nn.init.zeros_(m.bias)


def build_stgcn_blocks(in_channels: int, num_subsets: int, stages: Tuple[Tuple[int, int], ...],
                       block_dropout: float) -> nn.ModuleList:
    """The st_gcn blocks for ``stages`` ((width, stride), ...): no dropout and no residual in the first."""
    blocks = []
    c_in = in_channels
    for i, (c_out, stride) in enumerate(stages):
        dropout = block_dropout if i > 0 else 0.0
        blocks.append(STGCNBlock(c_in, c_out, num_subsets, stride, dropout, residual=i > 0))
        c_in = c_out
    return nn.ModuleList(blocks)


class STGCN(Encoder):
    """ST-GCN encoder and classifier.

    Input [N, M, T, V, C] float32 (batch key "skeleton"); ``forward_features`` gives an
    EncoderOutput of width ``hidden_dim`` (sequence [N, ceil(T/4), D], spatial [N, D, ceil(T/4), V]);
    ``forward`` gives logits (``num_classes=0``: no head, the pooled feature [N, D]).
    ``drop_rate`` is dropout before the classifier (0 in the reference, whose dropout is
    ``block_dropout`` inside the blocks). ``partition="corrected"`` uses the true hop
    distances to the centre; ``"official"`` the reference's truncated ones
    (:func:`stgcn_official_partition`), both of the graph of the joint ``layout`` (``"ntu25"``,
    ``"coco17"``, ``"blazepose33"``: :func:`~.layouts.layout_graph`; the skeletons a live pose
    model gives). ``adjacency`` [K, V, V] overrides both.
    ``hidden_channels`` and ``hidden_dim`` set the widths (:func:`stgcn_stages`).

    ``edge_drop`` / ``edge_add`` (HiCLR's graph augmentations, 0 = off) act in training mode
    only: every block, in every forward, draws its own rate and entries
    (:func:`drop_adjacency_entries`, then :func:`add_adjacency_entries`) on the partition ``A``
    before the edge-importance mask multiplies it, as HiCLR's ``drop_graph`` sits inside its
    block loop. Unlike HiCLR, whose augmentation is a forward argument that also acts in eval
    mode (it builds a fresh, training-mode ``nn.Dropout``), here eval mode always sees ``A``.
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
        hidden_channels: int = 64,
        hidden_dim: int = 256,
        edge_drop: float = 0.0,
        edge_add: float = 0.0,
        layout: str = "ntu25",
    ) -> None:
        super().__init__()
        if partition not in PARTITIONS:
            raise ValueError(f"partition must be one of {PARTITIONS}, not {partition!r}")
        if not (0.0 <= edge_drop < 1.0 and 0.0 <= edge_add <= 1.0):
            raise ValueError(f"edge_drop must be in [0, 1) and edge_add in [0, 1], got {edge_drop}, {edge_add}")
        if adjacency is not None:
            a = np.asarray(adjacency, np.float32)
        elif partition == "corrected":
            a = stgcn_spatial_partition(layout_graph(layout))
        else:
            a = stgcn_official_partition(layout_graph(layout))
        self.register_buffer("A", torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)))
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.edge_drop = float(edge_drop)
        self.edge_add = float(edge_add)
        self.num_joints = int(a.shape[-1])
        self.data_bn = DataBatchNorm(in_channels, self.num_joints, per_person=False, channels_last=True)
        stages = stgcn_stages(hidden_channels, hidden_dim)
        self.blocks = build_stgcn_blocks(in_channels, a.shape[0], stages, block_dropout)
        if edge_importance:
            self.edge_importance = nn.ParameterList(nn.Parameter(torch.ones(a.shape)) for _ in self.blocks)
        else:
            self.edge_importance = None
        self.num_features = stages[-1][0]
        self.head = self.build_classifier(num_classes) if num_classes > 0 else None
        self.reset_parameters()

    def build_classifier(self, num_classes: int) -> LinearHead:
        """Dropout + Linear, weights N(0, 0.02) as the reference's weights_init."""
        return LinearHead(self.num_features, num_classes, self.drop_rate, init_std=STGCN_INIT_STD)

    def reset_parameters(self) -> None:
        """The reference training script's init: convolutions N(0, 0.02), BN gamma N(1, 0.02)."""
        init_stgcn_weights(self)

    def block_adjacency(self, i: int) -> torch.Tensor:
        """[K, V, V]: the partition (edge-augmented in training) weighted by block ``i``'s edge importance."""
        a = self.A
        if self.training and (self.edge_drop > 0 or self.edge_add > 0):
            a = augment_adjacency(a, self.edge_drop, self.edge_add)
        if self.edge_importance is None:
            return a
        return a * self.edge_importance[i]

    def forward_features(self, x: torch.Tensor) -> EncoderOutput:
        """x: [N, M, T, V, C] -> EncoderOutput (D = ``hidden_dim``, T' = ceil(T / 4))."""
        h = self.data_bn(x)
        for i, block in enumerate(self.blocks):
            h = block(h, self.block_adjacency(i))
        return pool_joint_features(h, x.shape[1])


@register_model("stgcn", modality="skeleton")
def stgcn(num_classes: int = 60, **kwargs: object) -> STGCN:
    """ST-GCN (Yan et al. 2018), NTU-25 graph A, spatial partition, edge importance; 3.10M params at 60."""
    return STGCN(num_classes=num_classes, **kwargs)  # type: ignore[arg-type]


@register_model("stgcn_clr", modality="skeleton")
def stgcn_clr(num_classes: int = 60, **kwargs: object) -> STGCN:
    """ST-GCN as AimCLR / HiCLR / MS-CLR configure it: hidden_channels 16, hidden_dim 256.

    821,380 parameters without a classifier (``num_classes=0``, the contrastive encoder whose
    projection MLP lives in the objective), 836,800 at 60 classes. Data BN shared by the persons
    (``BatchNorm1d(V * C)``, as HiCLR's ``net/st_gcn.py``), block dropout 0.5, edge importance on.
    Graph: our corrected spatial partition, as ``stgcn``; ``partition="official"`` gives HiCLR's
    (the st-gcn ``Graph`` with truncated hop distances). ``edge_drop`` / ``edge_add`` switch on
    HiCLR's graph augmentations (off in its released configs).
    """
    kwargs.setdefault("hidden_channels", STGCN_CLR_HIDDEN_CHANNELS)
    kwargs.setdefault("hidden_dim", STGCN_CLR_HIDDEN_DIM)
    return STGCN(num_classes=num_classes, **kwargs)  # type: ignore[arg-type]
