"""One ST-GCN for several skeleton conventions (MS-CLR's unified representation).

MS-CLR (3Dwe-ai/ms-clr; shared/specs/self-supervised.md) trains one ST-GCN on skeletons of several
conventions (here Kinect ``ntu25``, ``coco17`` and ``blazepose33``): every skeleton is zero-padded
to the largest joint count (33), each convention has its own adjacency, all other weights are
shared. The blocks are those of ``stgcn_clr`` (hidden 16, 256-d output, :mod:`.stgcn`).

How padded joints are kept out (the property the tests check: values in padded slots change
nothing, and no real joint ever receives information from a padded one):

- adjacency: each convention's ST-GCN spatial partition of its layout graph
  (:func:`~.layouts.layout_graph`), [K, V_c, V_c], placed top-left in [K, 33, 33] with zero
  rows and columns for the absent joints; one buffer per convention (``A_<name>``). The graph
  convolution is the only place where joints exchange information, so a padded joint sends
  nothing to a real one (zero rows) and receives nothing (zero columns);
- data BN: one ``BatchNorm1d(V_c * C)`` per convention (shared by the persons, as ST-GCN's), over
  the real joints only; a BN over all 33 slots would mix the padding into the statistics, and a
  per-channel-only BN would throw away ST-GCN's per-joint normalisation. Padded slots enter the
  first block untouched; its graph convolution drops them (and it has no residual);
- after every block the padded slots are set to zero, so the residual paths carry zeros there;
- pooling and the spatial map use the real joints only.

What remains shared: the in-block BatchNorm2d statistics are taken over all 33 slots, the padded
ones being exact zeros, so a convention with fewer joints sees proportionally diluted batch
statistics (the same zeros whatever the input: no padded value reaches them). The learnable
edge-importance masks are [K, 33, 33] and shared by the conventions (joint index i is a different
joint in each), as a single zero-padded network has them. HiCLR's ``edge_drop`` / ``edge_add``
work as in :class:`~.stgcn.STGCN`; added edges are drawn among the convention's real joints only.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
import torch
from einops import rearrange
from torch import nn

from ...registry import register_model
from ..encoder_contract import Encoder
from ..features import EncoderOutput
from ..heads import LinearHead
from .gcn_blocks import DataBatchNorm
from .graphs import stgcn_spatial_partition
from .layouts import get_layout, layout_graph
from .skeleton_head import pool_joint_features
from .stgcn import (
    PARTITIONS,
    STGCN_BLOCK_DROPOUT,
    STGCN_CLR_HIDDEN_CHANNELS,
    STGCN_CLR_HIDDEN_DIM,
    STGCN_INIT_STD,
    augment_adjacency,
    build_stgcn_blocks,
    init_stgcn_weights,
    stgcn_stages,
)

# The conventions of this project's MS-CLR set-up (shared/specs/self-supervised.md): Kinect 25,
# COCO-17 and BlazePose-33 from the pose extraction.
DEFAULT_CONVENTIONS: Tuple[str, ...] = ("ntu25", "coco17", "blazepose33")


def padded_partition(convention: str, num_joints: int, partition: str = "corrected") -> np.ndarray:
    """float32 [K, num_joints, num_joints]: the convention's ST-GCN spatial partition, zero-padded.

    The layout's own [K, V_c, V_c] partition sits top-left; rows and columns V_c.. are zero.
    """
    if partition not in PARTITIONS:
        raise ValueError(f"partition must be one of {PARTITIONS}, not {partition!r}")
    a = stgcn_spatial_partition(layout_graph(convention), truncate_hops=partition == "official")
    v = a.shape[-1]
    if v > num_joints:
        raise ValueError(f"convention {convention!r} has {v} joints, more than the {num_joints} padded slots")
    out = np.zeros((a.shape[0], num_joints, num_joints), dtype=np.float32)
    out[:, :v, :v] = a
    return out


class UnifiedSTGCN(Encoder):
    """ST-GCN over zero-padded skeletons of several conventions (MS-CLR), see the module docstring.

    Input [N, M, T, V_c, C] of one convention (batch key "skeleton"; ``convention`` names it,
    default the model's ``convention`` option, else the first of ``conventions``: a linear probe
    on COCO-17 input builds the model with ``convention="coco17"``). ``forward_features`` gives
    ``sequence`` [N, T', D], ``pooled`` [N, D] and ``spatial`` [N, D, T', V_c] over the real
    joints, D = ``hidden_dim``, T' = ceil(T / 4). ``forward`` gives logits (``num_classes=0``: the pooled feature).

    ``layout`` is the keyword every registered skeleton GCN takes: here an alias of ``convention``
    (the layout ``forward`` reads by default) that also adds a layout missing from ``conventions``
    to them (``layout="nw_ucla20"`` builds ntu25 / coco17 / blazepose33 / nw_ucla20, still padded to
    33 joints). ``convention`` keeps refusing a layout outside ``conventions``: it names one of the
    conventions a (pre)trained model was built with. None of the two: the first of ``conventions``,
    exactly the model built without them.
    """

    input_keys = ("skeleton",)

    def __init__(
        self,
        num_classes: int = 60,
        conventions: Sequence[str] = DEFAULT_CONVENTIONS,
        in_channels: int = 3,
        hidden_channels: int = STGCN_CLR_HIDDEN_CHANNELS,
        hidden_dim: int = STGCN_CLR_HIDDEN_DIM,
        drop_rate: float = 0.0,
        block_dropout: float = STGCN_BLOCK_DROPOUT,
        edge_importance: bool = True,
        partition: str = "corrected",
        edge_drop: float = 0.0,
        edge_add: float = 0.0,
        convention: Optional[str] = None,
        layout: Optional[str] = None,
    ) -> None:
        super().__init__()
        names = tuple(get_layout(c).name for c in conventions)
        if not names or len(set(names)) != len(names):
            raise ValueError(f"conventions must be distinct layout names, got {tuple(conventions)}")
        if layout is not None:
            layout = get_layout(layout).name
            if convention is not None and get_layout(convention).name != layout:
                raise ValueError(f"layout {layout!r} and convention {convention!r} disagree; pass one of them")
            names, convention = (names if layout in names else names + (layout,)), layout
        if not (0.0 <= edge_drop < 1.0 and 0.0 <= edge_add <= 1.0):
            raise ValueError(f"edge_drop must be in [0, 1) and edge_add in [0, 1], got {edge_drop}, {edge_add}")
        self.conventions = names
        self.convention = names[0] if convention is None else get_layout(convention).name
        if self.convention not in names:
            raise ValueError(f"convention {convention!r} is not one of the model's conventions {names}")
        self.joint_counts = {c: get_layout(c).num_joints for c in names}
        self.num_joints = max(self.joint_counts.values())
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.edge_drop = float(edge_drop)
        self.edge_add = float(edge_add)
        num_subsets = 0
        for c in names:
            a = padded_partition(c, self.num_joints, partition)
            num_subsets = a.shape[0]
            self.register_buffer(f"A_{c}", torch.from_numpy(a))
            mask = torch.zeros(self.num_joints)
            mask[: self.joint_counts[c]] = 1.0
            self.register_buffer(f"joint_mask_{c}", mask)
        self.data_bn = nn.ModuleDict(
            {c: DataBatchNorm(in_channels, self.joint_counts[c], per_person=False) for c in names}
        )
        stages = stgcn_stages(hidden_channels, hidden_dim)
        self.blocks = build_stgcn_blocks(in_channels, num_subsets, stages, block_dropout)
        shape = (num_subsets, self.num_joints, self.num_joints)
        if edge_importance:
            self.edge_importance = nn.ParameterList(nn.Parameter(torch.ones(shape)) for _ in self.blocks)
        else:
            self.edge_importance = None
        self.num_features = stages[-1][0]
        self.head = self.build_classifier(num_classes) if num_classes > 0 else None
        init_stgcn_weights(self)

    def build_classifier(self, num_classes: int) -> LinearHead:
        """Dropout + Linear, weights N(0, 0.02) as ST-GCN's."""
        return LinearHead(self.num_features, num_classes, self.drop_rate, init_std=STGCN_INIT_STD)

    def _convention(self, convention: Optional[str]) -> str:
        if convention is None:
            return self.convention
        if convention not in self.conventions:
            raise ValueError(f"unknown convention {convention!r}; this model has {self.conventions}")
        return convention

    def adjacency(self, convention: str) -> torch.Tensor:
        """[K, 33, 33] the convention's zero-padded partition."""
        return getattr(self, f"A_{convention}")

    def joint_mask(self, convention: str) -> torch.Tensor:
        """float [33]: 1 at the convention's real joints, 0 at the padded slots."""
        return getattr(self, f"joint_mask_{convention}")

    def block_adjacency(self, i: int, convention: str) -> torch.Tensor:
        """[K, 33, 33]: the convention's partition (edge-augmented in training) times block ``i``'s importance."""
        a = self.adjacency(convention)
        if self.training and (self.edge_drop > 0 or self.edge_add > 0):
            mask = self.joint_mask(convention).to(torch.bool)
            a = augment_adjacency(a, self.edge_drop, self.edge_add, allowed=mask[:, None] & mask[None, :])
        if self.edge_importance is None:
            return a
        return a * self.edge_importance[i]

    def pad_joints(self, x: torch.Tensor, convention: Optional[str] = None) -> torch.Tensor:
        """x: [N, M, T, V_c, C] -> [N, M, T, 33, C], zeros in the padded slots."""
        convention = self._convention(convention)
        v = self.joint_counts[convention]
        if x.shape[3] != v:
            raise ValueError(f"convention {convention!r} has {v} joints, got input [N, M, T, V, C] "
                             f"with V = {x.shape[3]}; model.kwargs.convention must name the layout of "
                             f"the batch's skeletons (data.skeleton_source)")
        return nn.functional.pad(x, (0, 0, 0, self.num_joints - v))

    def forward_padded(self, x: torch.Tensor, convention: Optional[str] = None) -> EncoderOutput:
        """x: padded [N, M, T, 33, C] (whatever the padded slots hold) -> EncoderOutput over the real joints."""
        convention = self._convention(convention)
        v = self.joint_counts[convention]
        if x.shape[3] != self.num_joints:
            raise ValueError(f"forward_padded takes [N, M, T, {self.num_joints}, C], got V = {x.shape[3]}")
        real = self.data_bn[convention](x[:, :, :, :v])  # [N*M, C, T, V_c]
        padded = rearrange(x[:, :, :, v:], "n m t v c -> (n m) c t v")
        h = torch.cat([real, padded], dim=-1)
        mask = self.joint_mask(convention)
        for i, block in enumerate(self.blocks):
            h = block(h, self.block_adjacency(i, convention)) * mask
        return pool_joint_features(h[..., :v], x.shape[1])

    def forward_features(self, x: torch.Tensor, convention: Optional[str] = None) -> EncoderOutput:
        """x: [N, M, T, V_c, C] of ``convention`` (default the model's) -> EncoderOutput (D = hidden_dim)."""
        convention = self._convention(convention)
        return self.forward_padded(self.pad_joints(x, convention), convention)

    def forward(self, x: torch.Tensor, convention: Optional[str] = None) -> torch.Tensor:
        """x: [N, M, T, V_c, C] -> logits [N, num_classes], or the pooled feature without a classifier."""
        return self.forward_head(self.forward_features(x, convention))


@register_model("stgcn_unified", modality="skeleton")
def stgcn_unified(num_classes: int = 60, **kwargs: object) -> UnifiedSTGCN:
    """MS-CLR's unified ST-GCN: ntu25 / coco17 / blazepose33 zero-padded to 33 joints, hidden 16,
    256-d; 835,600 parameters without a classifier, 851,020 at 60 classes. ``convention`` (default
    the first of ``conventions``, ntu25) is the layout ``forward`` reads when it is given none; ``layout``
    is its alias that also adds a layout missing from ``conventions`` (e.g. nw_ucla20)."""
    return UnifiedSTGCN(num_classes=num_classes, **kwargs)  # type: ignore[arg-type]
