"""MAMP's pretraining decoder: visible-token latents and mask tokens to predicted motion patches.

Mao et al., ICCV 2023 (maoyunyao/MAMP, ``model_mamp/transformer.py``, the "MAE decoder specifics").
The encoder's latents of the visible tokens are projected to the decoder width, a learnable mask
token fills every hidden position, the sequence is put back in (segment, joint) token order, the
decoder's own temporal and spatial embeddings are added, and pre-LN ViT blocks, a LayerNorm and a
linear layer predict each token's patch vector (4 frames x 3 coordinates = 12 values).

Parameter names are upstream's (``decoder_embed``, ``mask_token``, ``decoder_blocks``,
``decoder_norm``, ``decoder_temp_embed``, ``decoder_pos_embed``, ``decoder_pred``), so the decoder
keys of an official pretraining checkpoint load into :class:`MAMPDecoder` unchanged.
"""

from __future__ import annotations

import torch
from einops import rearrange
from timm.layers import trunc_normal_
from torch import nn

from ..modalities.skeleton.mamp import init_vit_weights
from ..modalities.skeleton.transformer_blocks import TransformerBlock

# maoyunyao/MAMP pretrain_mamp_t120 configs: 3 decoder blocks for NTU60 (layer8+3), 5 for NTU120/PKU.
MAMP_DECODER_DEPTH_NTU60 = 3
MAMP_DECODER_DEPTH_NTU120 = 5
MAMP_DECODER_EMBED_STD = 0.02  # trunc_normal_ std of the mask token and the decoder's embeddings


class MAMPDecoder(nn.Module):
    """Predicts every token's patch vector from the visible tokens' latents.

    2,453,004 parameters with 3 blocks and 4,032,524 with 5 (dim 256, 120 frames, 25 joints).

    Args:
        encoder_dim: width of the encoder's latents.
        decoder_dim: width of the decoder.
        depth: number of decoder blocks.
        num_heads: attention heads per block.
        mlp_ratio: MLP hidden width / ``decoder_dim``.
        num_segments: T' (frames / segment_frames), the temporal embedding's length.
        num_joints: V, the spatial embedding's length.
        patch_dim: values predicted per token (segment_frames x C).
        qkv_bias: bias of the attention's qkv projection (upstream: True).
    """

    def __init__(
        self,
        encoder_dim: int = 256,
        decoder_dim: int = 256,
        depth: int = MAMP_DECODER_DEPTH_NTU60,
        num_heads: int = 8,
        mlp_ratio: float = 4.0,
        num_segments: int = 30,
        num_joints: int = 25,
        patch_dim: int = 12,
        qkv_bias: bool = True,
    ) -> None:
        super().__init__()
        self.num_segments = num_segments
        self.num_joints = num_joints
        self.patch_dim = patch_dim
        self.decoder_embed = nn.Linear(encoder_dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.decoder_blocks = nn.ModuleList(
            TransformerBlock(decoder_dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias) for _ in range(depth)
        )
        self.decoder_norm = nn.LayerNorm(decoder_dim)
        self.decoder_temp_embed = nn.Parameter(torch.zeros(1, num_segments, 1, decoder_dim))
        self.decoder_pos_embed = nn.Parameter(torch.zeros(1, 1, num_joints, decoder_dim))
        self.decoder_pred = nn.Linear(decoder_dim, patch_dim)
        trunc_normal_(self.mask_token, std=MAMP_DECODER_EMBED_STD)
        trunc_normal_(self.decoder_temp_embed, std=MAMP_DECODER_EMBED_STD)
        trunc_normal_(self.decoder_pos_embed, std=MAMP_DECODER_EMBED_STD)
        self.apply(init_vit_weights)  # upstream applies _init_weights model-wide

    @property
    def num_tokens(self) -> int:
        """L = T' * V token positions the decoder predicts."""
        return self.num_segments * self.num_joints

    def forward(self, visible: torch.Tensor, restore_index: torch.Tensor) -> torch.Tensor:
        """Predict the patch vectors of all tokens.

        Args:
            visible: [B, K, encoder_dim] latents of the visible tokens, in ``keep_index`` order.
            restore_index: int64 [B, L] (``TokenMask.restore_index``): puts ``cat([visible, hidden])``
                back in token order.

        Returns:
            [B, L, patch_dim], token ``i`` = (segment ``i // V``, joint ``i % V``).
        """
        batch, keep, _ = visible.shape
        if restore_index.shape != (batch, self.num_tokens):
            raise ValueError(
                f"restore_index must be [B={batch}, L={self.num_tokens}], got {tuple(restore_index.shape)}"
            )
        tokens = self.decoder_embed(visible)
        hidden = self.mask_token.to(tokens.dtype).expand(batch, self.num_tokens - keep, -1)
        tokens = torch.cat([tokens, hidden], dim=1)
        index = restore_index.to(tokens.device).unsqueeze(-1).expand(-1, -1, tokens.shape[-1])
        tokens = torch.gather(tokens, 1, index)
        tokens = rearrange(tokens, "b (t v) d -> b t v d", v=self.num_joints)
        tokens = tokens + self.decoder_pos_embed + self.decoder_temp_embed
        tokens = rearrange(tokens, "b t v d -> b (t v) d")
        for block in self.decoder_blocks:
            tokens = block(tokens)
        return self.decoder_pred(self.decoder_norm(tokens))
