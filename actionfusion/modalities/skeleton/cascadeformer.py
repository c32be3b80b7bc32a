"""CascadeFormer: a frame-token transformer pretrained by masked reconstruction, fine-tuned in cascade.

Peng et al., "CascadeFormer: A Family of Two-stage Cascading Transformers for Skeleton-based Human
Action Recognition" (YP4AIresearch/CascadeFormer, v1.0: ``baseline/action_recognition/
cascadeformer_1_0/joint/ntu_60_own``: ``NTU_pretraining.py`` ``BaseT1``, ``finetuning.py``
``BaseT2`` / ``CrossAttentionWithFFN`` / ``GaitRecognitionHeadMLP``, sizes in ``NTU_main.py``).

* :class:`FrameTransformer` (T1, the stage-1 encoder): each frame's V x C coordinates become one
  token (Linear(V * C -> d)), plus a learnable temporal embedding (``max_frames`` positions, the
  first T used), then ``nn.TransformerEncoder`` (post-LN, ReLU, dropout 0.1).
* :class:`CascadeHead` (the stage-2 classifier, registered head ``cascadeformer_cascade``):
  x2 = T2(x1) (a second transformer of T1's size, dropout 0.2), cross-attention Q = x1,
  K = V = x2 with residual + LayerNorm, a feed-forward block with residual + LayerNorm, mean over
  time, then the MLP head LayerNorm -> Dropout(0.3) -> Linear(d, d) -> ReLU -> Dropout -> Linear.
* :class:`CascadeFormer` (registered as ``"cascadeformer"``): one person per clip
  (:func:`select_person`), T1, and the cascade head as its classifier.

Like MAMP's fine-tune head, the whole stage-2 part (T2, cross-attention, MLP) counts as the
classifier: upstream always builds it fresh on top of the pretrained T1. So ``num_classes=0``
is T1 alone (what the ``cascadeformer`` pretraining objective trains and ``pretrain`` writes to
``encoder.safetensors``), and a model with classes starts from those weights through
``model.pretrained`` (every T1 tensor loaded, the cascade head left at its initialisation).
``forward_head(feats, pre_logits=True)`` returns the MLP head's input, the time-averaged fused
sequence [B, d]; without a classifier, the time-averaged T1 sequence.

Reconstructed or chosen here (options where they could matter):

* Person selection (:func:`select_person`) is decided per clip: the body with the largest summed
  |x| over the clip's frames, joints and channels (upstream's ``motion.argmax``; ties go to the
  first body, so a zero-padded second body is never chosen over a real one).
* ``mlp_dim=2048``: T1 and T2 use ``nn.TransformerEncoderLayer``'s default feed-forward width
  whatever d is (upstream never sets it); the cross-attention block's feed-forward is d wide
  (``cross_ffn_dim=None`` = d), as upstream's ``CrossAttentionWithFFN``.
* The cross-attention block's dropout (``cross_drop_rate``, 0.2 in ``NTU_main.py``) applies inside
  the attention weights, after attention, inside the FFN and after it, as upstream.
* ``nn.TransformerEncoder`` deep-copies one layer, so every layer of T1 (and of T2) starts from
  the same random weights (PyTorch's behaviour, kept for parity).
"""

from __future__ import annotations

from typing import Optional

import torch
from einops import rearrange
from torch import nn

from ...registry import register_head, register_model
from ..encoder_contract import Encoder
from ..features import EncoderOutput

# Sizes of the three published configurations (ntu_60_own/NTU_main.py and its comments; penn_action/main.py).
CASCADEFORMER_MAX_FRAMES = 64  # upstream POSITIONAL_UPPER_BOUND
CASCADEFORMER_SIZES = {
    "ntu60_xview": {"embed_dim": 512, "num_heads": 8, "depth": 12},
    "ntu60_xsub": {"embed_dim": 768, "num_heads": 16, "depth": 16},
    "penn_action": {"embed_dim": 256, "num_heads": 8, "depth": 4},
}
T1_DROPOUT = 0.1  # BaseT1's TransformerEncoderLayer dropout
T2_DROPOUT = 0.2  # NTU_main.py T2_DROPOUT
CROSS_DROPOUT = 0.2  # NTU_main.py CROSS_ATTN_DROPOUT
HEAD_DROPOUT = 0.3  # NTU_main.py HEAD_DROPOUT
TRANSFORMER_MLP_DIM = 2048  # nn.TransformerEncoderLayer's default dim_feedforward
TEMPORAL_EMBED_STD = 0.02


def transformer_stack(dim: int, num_heads: int, depth: int, mlp_dim: int, drop_rate: float) -> nn.TransformerEncoder:
    """``depth`` post-LN ``nn.TransformerEncoderLayer``s (ReLU, batch first): [B, T, d] -> [B, T, d]."""
    layer = nn.TransformerEncoderLayer(d_model=dim, nhead=num_heads, dim_feedforward=mlp_dim, dropout=drop_rate,
                                       batch_first=True)
    return nn.TransformerEncoder(layer, num_layers=depth, enable_nested_tensor=False)


def select_person(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One body per clip: the one with the largest sum of |x| over frames, joints and channels.

    Args:
        x: [B, M, T, V, C] skeletons.

    Returns:
        ([B, T, V, C] the chosen bodies, int64 [B] their indices; ties pick the lowest index).
    """
    if x.ndim != 5:
        raise ValueError(f"expected skeletons [B, M, T, V, C], got shape {tuple(x.shape)}")
    index = x.abs().sum(dim=(2, 3, 4)).argmax(dim=1)
    return x[torch.arange(x.shape[0], device=x.device), index], index


class FrameTransformer(nn.Module):
    """T1: frame tokens + learnable temporal embedding + a post-LN transformer encoder.

    Parameter count: (V C + 1) d + max_frames d + depth [4 d^2 + 4 d (attention) + 2 d m + m + d
    (feed-forward, width m) + 4 d (two LayerNorms)].
    """

    def __init__(
        self,
        num_joints: int = 25,
        in_channels: int = 3,
        embed_dim: int = 512,
        num_heads: int = 8,
        depth: int = 12,
        mlp_dim: int = TRANSFORMER_MLP_DIM,
        max_frames: int = CASCADEFORMER_MAX_FRAMES,
        drop_rate: float = T1_DROPOUT,
    ) -> None:
        super().__init__()
        self.num_joints = num_joints
        self.in_channels = in_channels
        self.embed_dim = embed_dim
        self.max_frames = max_frames
        self.frame_embed = nn.Linear(num_joints * in_channels, embed_dim)
        self.temporal_embed = nn.Parameter(torch.zeros(1, max_frames, embed_dim))
        nn.init.trunc_normal_(self.temporal_embed, std=TEMPORAL_EMBED_STD)
        self.transformer = transformer_stack(embed_dim, num_heads, depth, mlp_dim, drop_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, T, V, C] one body per row, T <= max_frames -> [B, T, d]."""
        if x.ndim != 4 or tuple(x.shape[2:]) != (self.num_joints, self.in_channels):
            raise ValueError(f"FrameTransformer expects [B, T, {self.num_joints}, {self.in_channels}], "
                             f"got {tuple(x.shape)}")
        frames = x.shape[1]
        if frames > self.max_frames:
            raise ValueError(f"{frames} frames exceed the temporal embedding's {self.max_frames} (max_frames)")
        tokens = self.frame_embed(rearrange(x, "b t v c -> b t (v c)")) + self.temporal_embed[:, :frames]
        return self.transformer(tokens)


class CrossAttentionFFN(nn.Module):
    """Cross-attention (Q = x1, K = V = x2) + residual + LayerNorm, then FFN + residual + LayerNorm."""

    def __init__(self, dim: int, num_heads: int, ffn_dim: Optional[int] = None, drop_rate: float = CROSS_DROPOUT) -> None:
        super().__init__()
        ffn_dim = dim if ffn_dim is None else ffn_dim
        self.attention = nn.MultiheadAttention(dim, num_heads, dropout=drop_rate, batch_first=True)
        self.norm1 = nn.LayerNorm(dim)
        self.drop1 = nn.Dropout(drop_rate)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.ReLU(), nn.Dropout(drop_rate), nn.Linear(ffn_dim, dim))
        self.norm2 = nn.LayerNorm(dim)
        self.drop2 = nn.Dropout(drop_rate)

    def forward(self, query: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """query [B, T, d] (x1), context [B, T', d] (x2) -> [B, T, d]."""
        attended, _ = self.attention(query, context, context, need_weights=False)
        x = self.norm1(query + self.drop1(attended))
        return self.norm2(x + self.drop2(self.ffn(x)))


@register_head("cascadeformer_cascade")
class CascadeHead(nn.Module):
    """Stage 2 on top of T1's sequence: T2, cross-attention with FFN, mean over time, MLP head.

    Args:
        in_features: d, T1's width (T2 has the same).
        num_classes: outputs.
        num_heads, depth, mlp_dim: T2's (and the cross-attention's) heads, T2's layers and feed-forward width.
        t2_drop_rate, cross_drop_rate, drop_rate: T2's dropout, the cross-attention block's, the MLP head's.
        cross_ffn_dim: the cross-attention block's feed-forward width (None: d).
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        num_heads: int = 8,
        depth: int = 12,
        mlp_dim: int = TRANSFORMER_MLP_DIM,
        t2_drop_rate: float = T2_DROPOUT,
        cross_drop_rate: float = CROSS_DROPOUT,
        cross_ffn_dim: Optional[int] = None,
        drop_rate: float = HEAD_DROPOUT,
    ) -> None:
        super().__init__()
        dim = in_features
        self.t2 = transformer_stack(dim, num_heads, depth, mlp_dim, t2_drop_rate)
        self.cross_attention = CrossAttentionFFN(dim, num_heads, cross_ffn_dim, cross_drop_rate)
        self.mlp = nn.Sequential(nn.LayerNorm(dim), nn.Dropout(drop_rate), nn.Linear(dim, dim), nn.ReLU(inplace=True),
                                 nn.Dropout(drop_rate), nn.Linear(dim, num_classes))

    def fused(self, x1: torch.Tensor) -> torch.Tensor:
        """x1 [B, T, d] -> the time-averaged cross-attended sequence [B, d] (the MLP's input)."""
        return self.cross_attention(x1, self.t2(x1)).mean(dim=1)

    def forward(self, feats: EncoderOutput, pre_logits: bool = False) -> torch.Tensor:
        """feats.sequence [B, T, d] (T1's output) -> logits [B, classes], or with ``pre_logits`` [B, d]."""
        pooled = self.fused(feats.sequence)
        return pooled if pre_logits else self.mlp(pooled)


@register_model("cascadeformer", modality="skeleton")
class CascadeFormer(Encoder):
    """CascadeFormer: T1 on the most active body, and the cascade head (T2 + cross-attention + MLP).

    Input [B, M, T, V, C] (batch key "skeleton"), T <= ``max_frames``. Defaults: the NTU60 cross-view
    size (d 512, 8 heads, 12 layers); :data:`CASCADEFORMER_SIZES` lists the three published ones.
    ``num_classes=0``: T1 alone (see the module docstring).
    """

    input_keys = ("skeleton",)

    def __init__(
        self,
        num_classes: int = 60,
        num_joints: int = 25,
        in_channels: int = 3,
        embed_dim: int = 512,
        num_heads: int = 8,
        depth: int = 12,
        mlp_dim: int = TRANSFORMER_MLP_DIM,
        max_frames: int = CASCADEFORMER_MAX_FRAMES,
        t1_drop_rate: float = T1_DROPOUT,
        t2_depth: Optional[int] = None,
        t2_drop_rate: float = T2_DROPOUT,
        cross_drop_rate: float = CROSS_DROPOUT,
        cross_ffn_dim: Optional[int] = None,
        drop_rate: float = HEAD_DROPOUT,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.num_features = embed_dim
        self.encoder = FrameTransformer(num_joints, in_channels, embed_dim, num_heads, depth, mlp_dim, max_frames,
                                        t1_drop_rate)
        self.head_options = {"num_heads": num_heads, "depth": depth if t2_depth is None else t2_depth,
                             "mlp_dim": mlp_dim, "t2_drop_rate": t2_drop_rate, "cross_drop_rate": cross_drop_rate,
                             "cross_ffn_dim": cross_ffn_dim, "drop_rate": drop_rate}
        self.head: Optional[nn.Module] = self.build_classifier(num_classes) if num_classes > 0 else None

    def build_classifier(self, num_classes: int) -> nn.Module:
        """A fresh cascade head (T2, cross-attention, MLP) for ``num_classes`` outputs."""
        return CascadeHead(self.num_features, num_classes, **self.head_options)

    def select_person(self, x: torch.Tensor) -> torch.Tensor:
        """[B, M, T, V, C] -> [B, T, V, C], the body :func:`select_person` picks in each clip."""
        return select_person(x)[0]

    def forward_features(self, x: torch.Tensor) -> EncoderOutput:
        """x: [B, M, T, V, C] -> EncoderOutput.

        sequence [B, T, d] (T1's output x1), pooled [B, d] (its mean over time),
        aux["person_index"] int64 [B] (the body used).
        """
        bodies, index = select_person(x)
        sequence = self.encoder(bodies)
        return EncoderOutput(sequence=sequence, pooled=sequence.mean(dim=1), aux={"person_index": index})
