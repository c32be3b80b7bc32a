"""MAMP: the masked-motion-prediction skeleton transformer and its recognition heads.

Mao et al., "Masked Motion Predictors are Strong 3D Action Representation Learners", ICCV 2023
(maoyunyao/MAMP: model/transformer.py for the fine-tune / linear-probe model, model_mamp/transformer.py
for the pretraining encoder). Each body of a clip is encoded on its own (zero-padded bodies too):
segments of 4 frames of one joint become tokens (30 x 25 = 750 for 120 frames), summed with
separate learnable temporal and spatial embeddings, then 8 pre-LN ViT blocks and a final LayerNorm.

* :class:`MAMPEncoder` -- one body ``[B, T, V, C]`` to tokens; ``forward_tokens`` runs on a subset
  of the tokens (the visible ones when pretraining with masking).
* :class:`MAMP` -- registered as ``"mamp"``: ``[N, M, T, V, C]`` to logits with the fine-tune head
  (``head="finetune"``, registered as the ``mamp_finetune`` head) or the frozen-encoder linear
  probe (``head="linear"``, the registered ``bn_linear`` head).

The fine-tune head (fc1 - BatchNorm - ReLU - fc2 on the per-joint tokens) counts as the
classifier as a whole: upstream always trains it from scratch on top of the pretrained encoder.
So ``num_classes=0`` builds the encoder alone (``forward`` gives the pooled [N, D], and
``model.encoder`` is there for the pretraining objective), ``reset_classifier(n)`` builds a fresh
head of the model's ``head`` kind, and ``forward_head(feats, pre_logits=True)`` returns the
fine-tune head's input, the person-averaged per-joint vector [N, V * D] (the linear probe's:
the pooled [N, D]).
"""

from __future__ import annotations

from typing import Optional, Set

import torch
from einops import rearrange
from timm.layers import trunc_normal_
from torch import nn

from ...registry import register_head, register_model
from ..encoder_contract import Encoder
from ..features import EncoderOutput, per_person_joint_tokens
from ..heads import BNLinearHead  # main_linprobe.py's probe (MoCo v3's)
from .layer_decay import mamp_layer_id
from .transformer_blocks import TransformerBlock, stochastic_depth_rates

# Architecture constants of maoyunyao/MAMP (config/*/finetune_t120_layer8_decay.yaml, model/transformer.py).
MAMP_NUM_FRAMES = 120
MAMP_SEGMENT_FRAMES = 4  # "t_patch_size": frames per token
MAMP_EMBED_DIM = 256
MAMP_DEPTH = 8
MAMP_NUM_HEADS = 8
MAMP_MLP_RATIO = 4.0
MAMP_HEAD_HIDDEN = 2048  # ActionHeadFinetune hidden width
MAMP_HEAD_DROPOUT = 0.3  # ActionHeadFinetune dropout
MAMP_EMBED_STD = 0.02  # trunc_normal_ std of the temporal / spatial embeddings


def patchify_skeleton(x: torch.Tensor, segment_frames: int = MAMP_SEGMENT_FRAMES) -> torch.Tensor:
    """Cut skeletons into (segment, joint) patch vectors.

    Args:
        x: [B, T, V, C] with T divisible by ``segment_frames``.

    Returns:
        [B, T / segment_frames, V, segment_frames * C], each vector ordered (frame, channel) as in
        upstream's ``patchify`` (12 values for 4 frames of xyz).
    """
    if x.ndim != 4 or x.shape[1] % segment_frames != 0:
        raise ValueError(f"expected [B, T, V, C] with T divisible by {segment_frames}, got {tuple(x.shape)}")
    return rearrange(x, "b (t u) v c -> b t v (u c)", u=segment_frames)


def init_vit_weights(module: nn.Module) -> None:
    """Upstream's ``_init_weights`` (``module.apply(init_vit_weights)``): xavier-uniform Linear weights,
    zero biases, unit LayerNorms; the patch-embedding Conv2d keeps PyTorch's default init, as upstream.
    The pretraining decoder (:mod:`actionfusion.objectives.mamp_decoder`) uses it too."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class MAMPEncoder(nn.Module):
    """Token embedding, transformer blocks and final norm for one body at a time.

    Token ``i`` is (segment ``i // V``, joint ``i % V``). 6.34M parameters at the defaults.
    """

    def __init__(
        self,
        in_channels: int = 3,
        embed_dim: int = MAMP_EMBED_DIM,
        depth: int = MAMP_DEPTH,
        num_heads: int = MAMP_NUM_HEADS,
        mlp_ratio: float = MAMP_MLP_RATIO,
        num_frames: int = MAMP_NUM_FRAMES,
        num_joints: int = 25,
        segment_frames: int = MAMP_SEGMENT_FRAMES,
        qkv_bias: bool = True,
        proj_drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if num_frames % segment_frames != 0:
            raise ValueError(f"num_frames {num_frames} is not divisible by segment_frames {segment_frames}")
        self.in_channels = in_channels
        self.embed_dim = embed_dim
        self.num_frames = num_frames
        self.num_joints = num_joints
        self.segment_frames = segment_frames
        self.num_segments = num_frames // segment_frames
        self.patch_embed = nn.Conv2d(
            in_channels, embed_dim, kernel_size=(segment_frames, 1), stride=(segment_frames, 1)
        )
        self.temporal_embed = nn.Parameter(torch.zeros(1, self.num_segments, 1, embed_dim))
        self.spatial_embed = nn.Parameter(torch.zeros(1, 1, num_joints, embed_dim))
        rates = stochastic_depth_rates(drop_path_rate, depth)
        self.blocks = nn.ModuleList(
            TransformerBlock(
                embed_dim,
                num_heads,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                proj_drop=proj_drop_rate,
                attn_drop=attn_drop_rate,
                drop_path=rate,
            )
            for rate in rates
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.apply(init_vit_weights)
        trunc_normal_(self.temporal_embed, std=MAMP_EMBED_STD)
        trunc_normal_(self.spatial_embed, std=MAMP_EMBED_STD)

    @property
    def num_tokens(self) -> int:
        """L = T' * V tokens per body (750 at the defaults)."""
        return self.num_segments * self.num_joints

    def _check_input(self, x: torch.Tensor) -> None:
        expected = (self.num_frames, self.num_joints, self.in_channels)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            dims = ", ".join(map(str, expected))
            raise ValueError(f"MAMPEncoder expects [B, T, V, C] = [B, {dims}], got {tuple(x.shape)}")

    def embed_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Patch-embed and add the temporal and spatial embeddings.

        x: [B, T, V, C] -> [B, L, D], L = T' * V in (segment, joint) order.
        """
        self._check_input(x)
        tokens = self.patch_embed(rearrange(x, "b t v c -> b c t v"))
        tokens = rearrange(tokens, "b d t v -> b t v d") + self.temporal_embed + self.spatial_embed
        return rearrange(tokens, "b t v d -> b (t v) d")

    def forward_tokens(self, x: torch.Tensor, keep_index: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Encode all tokens, or only those in ``keep_index`` (they attend only to each other).

        Args:
            x: [B, T, V, C] one body per row.
            keep_index: optional int64 [B, K] token indices (e.g. ``TokenMask.keep_index``).

        Returns:
            [B, L, D] (token order) or [B, K, D] (``keep_index`` order), after the final LayerNorm.
        """
        tokens = self.embed_tokens(x)
        if keep_index is not None:
            if keep_index.ndim != 2 or keep_index.shape[0] != tokens.shape[0]:
                raise ValueError(f"keep_index must be [B={tokens.shape[0]}, K], got {tuple(keep_index.shape)}")
            index = keep_index.to(tokens.device).long().unsqueeze(-1).expand(-1, -1, tokens.shape[-1])
            tokens = torch.gather(tokens, 1, index)
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, T, V, C] -> token map [B, T', V, D]."""
        tokens = self.forward_tokens(x)
        return rearrange(tokens, "b (t v) d -> b t v d", v=self.num_joints)


@register_head("mamp_finetune")
class MAMPFinetuneHead(nn.Module):
    """Upstream ``ActionHeadFinetune``: dropout -> mean over T' -> flatten V*D -> mean over M ->
    Linear(V*D, 2048) -> BatchNorm1d -> ReLU -> Linear(2048, classes).

    Args:
        in_features: D, the token width (MAMP's ``num_features``).
        num_classes: outputs.
        num_joints: V.
        hidden_dim, drop_rate: the hidden width and the dropout on the tokens.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        num_joints: int = 25,
        hidden_dim: int = MAMP_HEAD_HIDDEN,
        drop_rate: float = MAMP_HEAD_DROPOUT,
    ) -> None:
        super().__init__()
        self.dropout = nn.Dropout(drop_rate)
        self.fc1 = nn.Linear(in_features * num_joints, hidden_dim)
        self.bn = nn.BatchNorm1d(hidden_dim)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(hidden_dim, num_classes)

    def forward(self, feats: EncoderOutput, pre_logits: bool = False) -> torch.Tensor:
        """feats -> logits [N, classes]; with ``pre_logits`` fc1's input [N, V * D] (no dropout).

        Uses the per-person token map ``aux["person_tokens"]`` [N, M, T', V, D] when present
        (dropout then per-person pooling, exactly upstream's order); otherwise the persons-averaged
        ``spatial`` [N, D, T', V]. Both give the same logits in eval mode, since every step before
        fc1 is linear; in training the dropout masks differ in how they are drawn.
        """
        aux = feats.aux or {}
        person_tokens = aux.get("person_tokens")
        if person_tokens is not None:
            tokens = person_tokens if pre_logits else self.dropout(person_tokens)
            flat = rearrange(tokens.mean(dim=2), "n m v d -> n m (v d)").mean(dim=1)  # mean over T', then M
        elif feats.spatial is not None:
            spatial = feats.spatial if pre_logits else self.dropout(feats.spatial)
            flat = rearrange(spatial.mean(dim=2), "n d v -> n (v d)")
        else:
            raise ValueError("MAMPFinetuneHead needs EncoderOutput.spatial [N, D, T', V] or aux['person_tokens']")
        if pre_logits:
            return flat
        return self.fc2(self.relu(self.bn(self.fc1(flat))))


@register_model("mamp", modality="skeleton")
class MAMP(Encoder):
    """MAMP transformer with the fine-tune head (19,572,284 parameters at 60 classes) or a linear probe.

    Input [N, M, T=120, V=25, C=3] (batch key "skeleton"); every body, zero padding included, goes
    through the encoder. With ``head="linear"`` the encoder is frozen by default (no gradients, kept
    in eval mode). ``num_classes=0``: the encoder alone (see the module docstring).
    """

    input_keys = ("skeleton",)

    def __init__(
        self,
        num_classes: int = 60,
        head: str = "finetune",
        in_channels: int = 3,
        num_frames: int = MAMP_NUM_FRAMES,
        num_joints: int = 25,
        embed_dim: int = MAMP_EMBED_DIM,
        depth: int = MAMP_DEPTH,
        num_heads: int = MAMP_NUM_HEADS,
        mlp_ratio: float = MAMP_MLP_RATIO,
        segment_frames: int = MAMP_SEGMENT_FRAMES,
        drop_rate: float = MAMP_HEAD_DROPOUT,
        proj_drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        head_hidden_dim: int = MAMP_HEAD_HIDDEN,
        freeze_encoder: Optional[bool] = None,
    ) -> None:
        super().__init__()
        if head not in ("finetune", "linear"):
            raise ValueError(f"head must be 'finetune' or 'linear', not {head!r}")
        self.num_classes = num_classes
        self.num_features = embed_dim  # width of EncoderOutput.pooled
        self.num_joints = num_joints
        self.head_kind = head
        self.head_hidden_dim = head_hidden_dim
        self.drop_rate = drop_rate
        self.encoder = MAMPEncoder(
            in_channels=in_channels,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            num_frames=num_frames,
            num_joints=num_joints,
            segment_frames=segment_frames,
            proj_drop_rate=proj_drop_rate,
            attn_drop_rate=attn_drop_rate,
            drop_path_rate=drop_path_rate,
        )
        self.head: Optional[nn.Module] = self.build_classifier(num_classes) if num_classes > 0 else None
        self.encoder_frozen = (head == "linear") if freeze_encoder is None else bool(freeze_encoder)
        if self.encoder_frozen:
            self.encoder.requires_grad_(False)
            self.encoder.eval()

    def build_classifier(self, num_classes: int) -> nn.Module:
        """A fresh head of this model's kind: ``mamp_finetune`` or the ``bn_linear`` probe."""
        if self.head_kind == "finetune":
            head = MAMPFinetuneHead(self.num_features, num_classes, self.num_joints, self.head_hidden_dim,
                                    self.drop_rate)
            head.apply(init_vit_weights)  # upstream's model-wide apply(_init_weights) reaches the head
            return head
        return BNLinearHead(self.num_features, num_classes)

    def train(self, mode: bool = True) -> "MAMP":
        """As nn.Module.train, but a frozen encoder stays in eval mode (no drop-path/dropout)."""
        super().train(mode)
        if self.encoder_frozen:
            self.encoder.eval()
        return self

    def forward_features(self, x: torch.Tensor) -> EncoderOutput:
        """x: [N, M, T, V, C] -> EncoderOutput.

        sequence [N, T', D] (mean over persons and joints), pooled [N, D] (mean over persons,
        segments, joints), spatial [N, D, T', V] (persons averaged), aux["person_tokens"]
        [N, M, T', V, D].
        """
        return per_person_joint_tokens(self.encoder, x, "MAMP")

    def layer_id(self, name: str) -> int:
        """Layer id for layer-wise lr decay: embeddings 0, block i -> i + 1, the rest depth + 1."""
        return mamp_layer_id(name, len(self.encoder.blocks))

    def no_weight_decay(self) -> Set[str]:
        """Parameters beyond biases and norms that get no weight decay: the position embeddings."""
        return {"encoder.temporal_embed", "encoder.spatial_embed"}

