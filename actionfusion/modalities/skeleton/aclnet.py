"""ACLNet's backbone (Affinity Contrastive Learning, firework8/ACLNet@0fab868): a DG-STGCN.

Follows ``aclnet/models/gcns/gcn_module.py`` (``GCN_Module``) with the published configs
(``configs/ntu60_xsub/j.py``: ``gcn_ratio=0.125``, ``gcn_ctr='T'``, ``gcn_ada='T'``, the six-branch
``tcn_ms_cfg``, graph ``mode='random'``, ``num_filter=8``, ``init_off=0.04``, ``init_std=0.02``)
and ``SimpleHead`` (FC 384 -> C, N(0, 0.01) weights), which are pyskl's DG-STGCN
(``pyskl/models/gcns/dgstgcn.py``) plus the returned topology; checked against both, written anew.

- Input BatchNorm over V * C shared by the persons (``data_bn_type='VC'``).
- 10 blocks, widths 96 x4, 192 (stride 2) x3, 384 (stride 2) x3; each
  ``ReLU(GlobalJointMSTCN(DynamicGraphConv(x)) + residual(x))``, no residual in block 1
  (:mod:`.aclnet_blocks`).
- 8 learnable graphs drawn once from N(0.04, 0.02^2) and copied into every block (upstream draws
  one ``Graph(mode='random')`` and clones it per block).
- ``forward_features`` also returns the *topology feature* ``aux["topology"]`` [N, V * V]: the last
  block's sample-specific graphs ``alpha * ctr + beta * ada`` averaged over persons, subsets and
  channels, flattened source-major (``[v, w] -> v * V + w``), the input of the ``aclnet``
  objective's projection heads (:mod:`actionfusion.objectives.aclnet`).

3,728,796 parameters at 60 classes (3,705,696 without the classifier); the objective's two
training-only projection heads add 2 x (625 * 256 + 256) = 320,512.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from einops import rearrange
from torch import nn

from ...registry import register_model
from ..features import EncoderOutput
from .aclnet_blocks import DynamicGraphConv, GlobalJointMSTCN
from .gcn_blocks import DataBatchNorm, add_residual, block_residual
from .layouts import get_layout
from .skeleton_head import StackedGCN, pool_joint_features

# Widths (in units of the base width) and temporal strides of the 10 blocks
# (GCN_Module: num_stages 10, inflate_stages = down_stages = [5, 8], ch_ratio 2).
ACLNET_STAGES: Tuple[Tuple[int, int], ...] = ((1, 1),) * 4 + ((2, 2),) + ((2, 1),) * 2 + ((4, 2),) + ((4, 1),) * 2
# ACLNet configs: graph_cfg num_filter 8, init_off 0.04, init_std 0.02; gcn_ratio 0.125.
ACLNET_NUM_SUBSETS = 8
ACLNET_GRAPH_MEAN = 0.04
ACLNET_GRAPH_STD = 0.02
ACLNET_GCN_RATIO = 0.125
# SimpleHead init_std.
_SIMPLE_HEAD_INIT_STD = 0.01
TOPOLOGY_KEY = "topology"
"""The ``EncoderOutput.aux`` key of the topology feature [N, V * V]."""


class ACLNetBlock(nn.Module):
    """``ReLU(GlobalJointMSTCN(DynamicGraphConv(x)) + residual(x))``."""

    def __init__(self, in_channels: int, out_channels: int, adjacency: torch.Tensor, stride: int = 1,
                 residual: bool = True, gcn_ratio: float = ACLNET_GCN_RATIO, subset_wise: bool = False,
                 tcn_dropout: float = 0.0) -> None:
        super().__init__()
        self.gcn = DynamicGraphConv(in_channels, out_channels, adjacency, ratio=gcn_ratio, subset_wise=subset_wise)
        self.tcn = GlobalJointMSTCN(out_channels, out_channels, stride=stride, num_joints=int(adjacency.shape[-1]),
                                    dropout=tcn_dropout)
        self.residual = block_residual(in_channels, out_channels, stride, residual)

    def forward_with_topology(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """x [N', C_in, T, V] -> (out [N', C_out, ceil(T / stride), V], topology [N', V, V])."""
        y, topology = self.gcn.forward_with_topology(x)
        assert topology is not None
        return torch.relu_(add_residual(self.tcn(y), x, self.residual)), topology

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N', C_in, T, V] -> [N', C_out, ceil(T / stride), V]."""
        return torch.relu_(add_residual(self.tcn(self.gcn(x)), x, self.residual))


class ACLNet(StackedGCN):
    """ACLNet's DG-STGCN encoder and classifier.

    Input [N, M, T, V, C] float32 (batch key "skeleton"). ``forward_features`` gives an
    EncoderOutput of width ``4 * base_channels`` (384): sequence [N, ceil(T/4), 384], pooled
    [N, 384], spatial [N, 384, ceil(T/4), V], and ``aux["topology"]`` [N, V * V]; ``forward``
    gives logits [N, num_classes] (``num_classes=0``: no head, the pooled feature).

    Args:
        num_classes: classifier outputs (0: none).
        in_channels: C (3 for every stream).
        num_joints: V; None takes the layout's (a number must agree with it).
        base_channels: width of the first stage (96).
        num_subsets: K, the learnable graphs per block (8).
        gcn_ratio: channels per subset / C_out (0.125).
        graph_init_mean, graph_init_std: the Normal the graphs start from (0.04, 0.02).
        subset_wise: per-subset alpha_k / beta_k (False in every ACLNet config).
        tcn_dropout: dropout after each temporal unit but the first block's (0).
        drop_rate: dropout before the classifier (0).
        layout: the joint layout (``"ntu25"``, ``"coco17"``, ``"blazepose33"``, ``"nw_ucla20"``,
            :func:`~.layouts.get_layout`). It sets V only: ACLNet's graphs (upstream ``Graph(mode='random')``)
            are learnable and drawn from N(graph_init_mean, graph_init_std^2), so no bone of any layout
            enters them; ``"ntu25"`` is exactly the published 25-joint model.
    """

    def __init__(
        self,
        num_classes: int = 60,
        in_channels: int = 3,
        num_joints: Optional[int] = None,
        base_channels: int = 96,
        num_subsets: int = ACLNET_NUM_SUBSETS,
        gcn_ratio: float = ACLNET_GCN_RATIO,
        graph_init_mean: float = ACLNET_GRAPH_MEAN,
        graph_init_std: float = ACLNET_GRAPH_STD,
        subset_wise: bool = False,
        tcn_dropout: float = 0.0,
        drop_rate: float = 0.0,
        layout: str = "ntu25",
    ) -> None:
        super().__init__()
        layout_joints = get_layout(layout).num_joints
        if num_joints is not None and num_joints != layout_joints:
            raise ValueError(f"layout {layout!r} has {layout_joints} joints; num_joints={num_joints} disagrees")
        num_joints = layout_joints
        if base_channels < 1 or num_subsets < 1 or num_joints < 1:
            raise ValueError(f"base_channels, num_subsets and num_joints must be >= 1, got "
                             f"{base_channels}, {num_subsets}, {num_joints}")
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.layout = get_layout(layout).name
        self.num_joints = num_joints
        self.in_channels = in_channels
        self.data_bn = DataBatchNorm(in_channels, num_joints, per_person=False)
        adjacency = torch.empty(num_subsets, num_joints, num_joints).normal_(graph_init_mean, graph_init_std)
        blocks = []
        c_in = in_channels
        for i, (scale, stride) in enumerate(ACLNET_STAGES):
            c_out = base_channels * scale
            blocks.append(ACLNetBlock(c_in, c_out, adjacency, stride, residual=i > 0, gcn_ratio=gcn_ratio,
                                      subset_wise=subset_wise, tcn_dropout=tcn_dropout if i > 0 else 0.0))
            c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        self.num_features = c_in
        self.topology_dim = num_joints * num_joints
        self.head = self.build_classifier(num_classes) if num_classes > 0 else None

    def classifier_init_std(self, num_classes: int) -> float:
        """ACLNet SimpleHead's 0.01."""
        return _SIMPLE_HEAD_INIT_STD

    def forward_features(self, x: torch.Tensor) -> EncoderOutput:
        """x: [N, M, T, V, C] -> EncoderOutput (D = 384, T' = ceil(T / 4)), ``aux["topology"]`` [N, V * V]."""
        if x.ndim != 5 or x.shape[3] != self.num_joints or x.shape[4] != self.in_channels:
            raise ValueError(f"ACLNet expects [N, M, T, {self.num_joints}, {self.in_channels}], "
                             f"got shape {tuple(x.shape)}")
        h = self.data_bn(x)
        for block in self.blocks[:-1]:
            h = block(h)
        h, topology = self.blocks[-1].forward_with_topology(h)
        out = pool_joint_features(h, x.shape[1])
        out.aux = {TOPOLOGY_KEY: rearrange(topology, "(n m) v w -> n m (v w)", m=x.shape[1]).mean(dim=1)}
        return out


@register_model("aclnet", modality="skeleton")
def aclnet(num_classes: int = 60, **kwargs: object) -> ACLNet:
    """ACLNet's DG-STGCN (firework8/ACLNet), 8 learnable random graphs, 3.73M params at 60; objective aclnet."""
    return ACLNet(num_classes=num_classes, **kwargs)  # type: ignore[arg-type]
