"""SkeletonMAE's GIN encoder and the STRL recognition head (Yan et al., "SkeletonMAE: Graph-based
Masked Autoencoder for Skeleton Sequence Pre-training", ICCV 2023). No code was released
(HongYan1123/SkeletonMAE holds a README and a figure): this is a reconstruction from the paper.

* :class:`SkeletonMAEEncoder`: every skeleton of a clip (each body, each frame, or each segment of
  ``segment_frames`` frames) is a graph over the layout's joints; a joint's input feature is its
  coordinates in the segment ([segment_frames * C]). A stack of ``depth`` GIN layers (each followed
  by BatchNorm + ReLU), then an MLP (Linear -> BatchNorm + ReLU) and a last GIN layer give the
  per-joint representation H [B, T', V, D]. What the paper gives: GIN layers, then MLP, BN + ReLU
  and a GIN convolution. Reconstructed: the widths, the depth, GIN's inner MLP (2 layers with
  BatchNorm, as GraphMAE's), the segment option.
* :class:`STRLHead` (registered head ``skeletonmae_strl``): the paper's Spatial-Temporal
  Representation Learning module on top of the pretrained encoder. Its internals are not published;
  reconstructed here as ``strl_depth`` temporal blocks over each joint's sequence of encoder
  features (``strl_temporal="conv"``: multi-scale dilated temporal convolutions with a residual,
  MS-TCN style; ``"attention"``: pre-LN transformer blocks along time with a learnable temporal
  embedding), then mean pooling over time, joints and persons, dropout and a Linear.
* :class:`SkeletonMAE` (registered model ``skeletonmae``): [N, M, T, V, C] -> logits with the STRL
  head (``head="strl"``) or a linear head on the pooled encoder feature (``head="linear"``).

As with MAMP's fine-tune head, the STRL head counts as the classifier as a whole: it is trained from
scratch on the pretrained encoder, so ``num_classes=0`` builds the encoder alone (what
``actionfusion pretrain`` trains and saves), ``reset_classifier(n)`` builds a fresh STRL head, and
``forward_head(feats, pre_logits=True)`` returns STRL's pooled output [N, D] (the Linear's input).
Layouts: any with a graph (``ntu25``, ``coco17``, ...; :func:`~.layouts.layout_graph`).
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
from einops import rearrange
from torch import nn

from ...registry import register_head, register_model
from ..encoder_contract import Encoder
from ..features import EncoderOutput, per_person_joint_tokens
from ..heads import LinearHead
from .gin import GINConv, JointBatchNorm
from .layouts import get_layout, layout_graph
from .transformer_blocks import TransformerBlock

SKELETONMAE_EMBED_DIM = 128  # reconstructed: the paper gives no widths
SKELETONMAE_DEPTH = 3  # GIN layers before the MLP (reconstructed)
STRL_DEPTH = 2  # temporal blocks (reconstructed)
STRL_KERNEL = 5
STRL_DILATIONS: Tuple[int, ...] = (1, 2)
STRL_HEADS = 4
STRL_MAX_SEGMENTS = 300  # longest sequence the attention variant's temporal embedding covers
HEAD_DROPOUT = 0.5


def segment_nodes(x: torch.Tensor, segment_frames: int) -> torch.Tensor:
    """[B, T, V, C] -> [B, T / u, V, u * C] joint features, each the joint's u frames (frame-major)."""
    if x.ndim != 4 or x.shape[1] % segment_frames != 0:
        raise ValueError(f"expected [B, T, V, C] with T divisible by {segment_frames}, got {tuple(x.shape)}")
    return rearrange(x, "b (t u) v c -> b t v (u c)", u=segment_frames)


class SkeletonMAEEncoder(nn.Module):
    """GIN stack -> MLP -> BN + ReLU -> GIN over every skeleton graph of a batch.

    Parameters (P = segment_frames * C, D = embed_dim, GIN hidden width D):
    ``GIN(P, D) + (depth - 1) GIN(D, D) + depth BN(D) + Linear(D, D) + BN(D) + GIN(D, D)`` with
    ``GIN(a, D) = (a + 1) D + 2D + (D + 1) D`` (+1 each with ``learn_eps``) and ``BN(D) = 2D``.

    Args:
        layout: joint layout whose graph the GIN layers use (``ntu25``, ``coco17``, ...).
        in_channels: C per frame.
        segment_frames: frames per graph (1: one graph per frame).
        embed_dim: D.
        depth: GIN layers before the MLP (>= 1).
        eps, learn_eps: GIN's self weight ``1 + eps``, fixed or learned.
        aggregation: GIN neighbour sum, ``dense`` or ``index_add``.
    """

    def __init__(
        self,
        layout: str = "ntu25",
        in_channels: int = 3,
        segment_frames: int = 1,
        embed_dim: int = SKELETONMAE_EMBED_DIM,
        depth: int = SKELETONMAE_DEPTH,
        eps: float = 0.0,
        learn_eps: bool = False,
        aggregation: str = "dense",
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self.layout = get_layout(layout).name
        self.num_joints = get_layout(layout).num_joints
        self.in_channels = in_channels
        self.segment_frames = segment_frames
        self.embed_dim = embed_dim
        self.node_features = segment_frames * in_channels
        adjacency = layout_graph(self.layout).adjacency()
        self.register_buffer("adjacency", torch.from_numpy(adjacency), persistent=False)

        def gin(features_in: int) -> GINConv:
            return GINConv(features_in, embed_dim, adjacency, eps=eps, learn_eps=learn_eps, aggregation=aggregation)

        self.layers = nn.ModuleList(gin(self.node_features if i == 0 else embed_dim) for i in range(depth))
        self.norms = nn.ModuleList(JointBatchNorm(embed_dim) for _ in range(depth))
        self.act = nn.ReLU(inplace=True)
        self.mlp = nn.Linear(embed_dim, embed_dim)
        self.mlp_norm = JointBatchNorm(embed_dim)
        self.out_gin = gin(embed_dim)

    def nodes(self, x: torch.Tensor) -> torch.Tensor:
        """Skeletons [B, T, V, C] -> joint features [B, T', V, P] (P = segment_frames * C)."""
        if x.ndim != 4 or x.shape[2:] != (self.num_joints, self.in_channels):
            raise ValueError(f"SkeletonMAEEncoder ({self.layout}) expects [B, T, V={self.num_joints}, "
                             f"C={self.in_channels}], got {tuple(x.shape)}")
        return segment_nodes(x, self.segment_frames)

    def forward_nodes(self, nodes: torch.Tensor, adjacency: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Joint features [B, T', V, P] (masked ones replaced by the objective) -> H [B, T', V, D].

        ``adjacency``: optional [V, V] or [B, T', V, V] graph (edge masking) for every GIN layer.
        """
        h = nodes
        for layer, norm in zip(self.layers, self.norms):
            h = self.act(norm(layer(h, adjacency)))
        h = self.act(self.mlp_norm(self.mlp(h)))
        return self.out_gin(h, adjacency)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Skeletons [B, T, V, C] -> per-joint H [B, T', V, D]."""
        return self.forward_nodes(self.nodes(x))


class MultiScaleTemporalConv(nn.Module):
    """Parallel dilated temporal convolutions over [B, D, T, V], concatenated, plus a residual.

    One branch per dilation: Conv2d(D, D / b, (k, 1), dilation d, 'same' padding) -> BatchNorm2d;
    the output is ReLU(concat + x). ``D k D + D + 2D`` parameters (b divides D).
    """

    def __init__(self, dim: int, kernel_size: int = STRL_KERNEL, dilations: Sequence[int] = STRL_DILATIONS) -> None:
        super().__init__()
        if kernel_size % 2 == 0 or dim % len(dilations) != 0:
            raise ValueError(f"need an odd kernel_size and dim divisible by {len(dilations)} branches")
        width = dim // len(dilations)
        self.branches = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(dim, width, (kernel_size, 1), padding=(d * (kernel_size - 1) // 2, 0), dilation=(d, 1)),
                nn.BatchNorm2d(width),
            )
            for d in dilations
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, D, T, V] -> [B, D, T, V]."""
        return self.act(torch.cat([branch(x) for branch in self.branches], dim=1) + x)


class TemporalAttention(nn.Module):
    """Pre-LN transformer blocks along time for every joint, with a learnable temporal embedding."""

    def __init__(self, dim: int, depth: int, num_heads: int = STRL_HEADS,
                 max_segments: int = STRL_MAX_SEGMENTS) -> None:
        super().__init__()
        self.temporal_embed = nn.Parameter(torch.zeros(1, max_segments, dim))
        nn.init.trunc_normal_(self.temporal_embed, std=0.02)
        self.blocks = nn.ModuleList(TransformerBlock(dim, num_heads) for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, D, T, V] -> [B, D, T, V]."""
        b, _, t, v = x.shape
        if t > self.temporal_embed.shape[1]:
            raise ValueError(f"TemporalAttention covers {self.temporal_embed.shape[1]} segments, got {t}")
        tokens = rearrange(x, "b d t v -> (b v) t d") + self.temporal_embed[:, :t]
        for block in self.blocks:
            tokens = block(tokens)
        return rearrange(tokens, "(b v) t d -> b d t v", v=v)


@register_head("skeletonmae_strl")
class STRLHead(nn.Module):
    """Reconstructed STRL: temporal blocks over each person's per-joint encoder features, mean over
    time, joints and persons, dropout, Linear.

    Args:
        in_features: D, the encoder's width.
        num_classes: outputs.
        temporal: ``"conv"`` (multi-scale dilated temporal convolutions) or ``"attention"``.
        depth: temporal blocks.
        kernel_size, dilations: the convolution variant's kernel and one branch per dilation.
        num_heads, max_segments: the attention variant's heads and longest sequence.
        drop_rate: dropout before the Linear.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        temporal: str = "conv",
        depth: int = STRL_DEPTH,
        kernel_size: int = STRL_KERNEL,
        dilations: Sequence[int] = STRL_DILATIONS,
        num_heads: int = STRL_HEADS,
        max_segments: int = STRL_MAX_SEGMENTS,
        drop_rate: float = HEAD_DROPOUT,
    ) -> None:
        super().__init__()
        if temporal == "conv":
            self.temporal: nn.Module = nn.Sequential(
                *(MultiScaleTemporalConv(in_features, kernel_size, tuple(dilations)) for _ in range(depth)))
        elif temporal == "attention":
            self.temporal = TemporalAttention(in_features, depth, num_heads, max_segments)
        else:
            raise ValueError(f"temporal must be 'conv' or 'attention', not {temporal!r}")
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, feats: EncoderOutput, pre_logits: bool = False) -> torch.Tensor:
        """feats (``aux["person_tokens"]`` [N, M, T', V, D]) -> logits [N, classes]; with ``pre_logits``
        the pooled STRL feature [N, D]."""
        tokens = (feats.aux or {}).get("person_tokens")
        if tokens is None:
            raise ValueError("STRLHead needs EncoderOutput.aux['person_tokens'] [N, M, T', V, D]")
        persons = tokens.shape[1]
        x = self.temporal(rearrange(tokens, "n m t v d -> (n m) d t v"))
        pooled = rearrange(x.mean(dim=(2, 3)), "(n m) d -> n m d", m=persons).mean(dim=1)
        return pooled if pre_logits else self.fc(self.drop(pooled))


@register_model("skeletonmae", modality="skeleton")
class SkeletonMAE(Encoder):
    """SkeletonMAE's GIN encoder with the STRL head (``head="strl"``) or a linear head (``"linear"``).

    Input [N, M, T, V, C] (batch key ``"skeleton"``); every body, zero padding included, goes through
    the encoder. ``num_classes=0``: the encoder alone (see the module docstring). ``freeze_encoder``
    (default False) trains only the head, keeping the encoder in eval mode.

    Args:
        num_classes, head: classifier outputs and kind.
        layout, in_channels, segment_frames, embed_dim, depth, eps, learn_eps, aggregation: the
            encoder (:class:`SkeletonMAEEncoder`).
        strl_temporal, strl_depth, strl_kernel, strl_dilations, strl_heads: the STRL head.
        drop_rate: dropout before the final Linear.
    """

    input_keys = ("skeleton",)

    def __init__(
        self,
        num_classes: int = 60,
        head: str = "strl",
        layout: str = "ntu25",
        in_channels: int = 3,
        segment_frames: int = 1,
        embed_dim: int = SKELETONMAE_EMBED_DIM,
        depth: int = SKELETONMAE_DEPTH,
        eps: float = 0.0,
        learn_eps: bool = False,
        aggregation: str = "dense",
        strl_temporal: str = "conv",
        strl_depth: int = STRL_DEPTH,
        strl_kernel: int = STRL_KERNEL,
        strl_dilations: Sequence[int] = STRL_DILATIONS,
        strl_heads: int = STRL_HEADS,
        drop_rate: float = HEAD_DROPOUT,
        freeze_encoder: bool = False,
    ) -> None:
        super().__init__()
        if head not in ("strl", "linear"):
            raise ValueError(f"head must be 'strl' or 'linear', not {head!r}")
        self.num_classes = num_classes
        self.num_features = embed_dim
        self.head_kind = head
        self.drop_rate = drop_rate
        self.strl_kwargs = {"temporal": strl_temporal, "depth": strl_depth, "kernel_size": strl_kernel,
                            "dilations": tuple(strl_dilations), "num_heads": strl_heads}
        self.encoder = SkeletonMAEEncoder(layout, in_channels, segment_frames, embed_dim, depth, eps, learn_eps,
                                          aggregation)
        self.head: Optional[nn.Module] = self.build_classifier(num_classes) if num_classes > 0 else None
        self.encoder_frozen = bool(freeze_encoder)
        if self.encoder_frozen:
            self.encoder.requires_grad_(False)
            self.encoder.eval()

    def build_classifier(self, num_classes: int) -> nn.Module:
        """A fresh head of this model's kind: ``skeletonmae_strl`` or ``linear``."""
        if self.head_kind == "strl":
            return STRLHead(self.num_features, num_classes, drop_rate=self.drop_rate, **self.strl_kwargs)
        return LinearHead(self.num_features, num_classes, drop_rate=self.drop_rate)

    def train(self, mode: bool = True) -> "SkeletonMAE":
        """As nn.Module.train, but a frozen encoder stays in eval mode."""
        super().train(mode)
        if self.encoder_frozen:
            self.encoder.eval()
        return self

    def forward_features(self, x: torch.Tensor) -> EncoderOutput:
        """x: [N, M, T, V, C] -> EncoderOutput.

        sequence [N, T', D] (mean over persons and joints), pooled [N, D] (mean over persons,
        segments and joints), spatial [N, D, T', V] (persons averaged), aux["person_tokens"]
        [N, M, T', V, D].
        """
        return per_person_joint_tokens(self.encoder, x, "SkeletonMAE")
