"""The 3D deformable cross-modal transformer (Kim, Ahn, Ko, ICCV 2023, arXiv 2212.05638) as a fusion.

Reconstructed from the published structure (``../shared/specs/multimodal.md``); every choice
below is a constructor option of :class:`DeformableCrossModalFusion`.

Inputs (d = ``dim``)::

    X = LN(W_r x_r)          x_r = feats[rgb_key].spatial  [B, C_r, T, H, W]  -> volume [B, d, T, H, W]
    P = LN(W_p align_T(x_p)) x_p = feats[pose_key].spatial [B, C_p, T_p, V]
                             (a 5-D pose map [B, C_p, T_p, h, w] gives V = h w "joints");
                             align_T: linear interpolation ("interpolate") or adaptive average
                             pooling ("pool") of T_p to T (T = T_p when RGB is missing)

Tokens per frame t (T frames), with presence m_r, m_p in {0, 1} per sample and learned vectors
e_r, e_p (token inits) and a_r, a_p (the "absent" signals)::

    P_t,v  = m_p P_t,v + (1 - m_p) a_p                          (pose key missing: V = 1, P_t,1 = a_p)
    z^r_t  = e_r + m_r mean_{y,x} X_t + (1 - m_r) a_r           the RGB cross-modal token
    z^p_t  = e_p + m_p mean_v P_t,v + (1 - m_p) a_p             the pose cross-modal token
    Y_t    = [z^r_t ; z^p_t ; P_t,1 .. P_t,V] + E_time(t) (+ E_joint(v) on the joints)   [2 + V, d]

E are fixed sinusoidal encodings (``positional_encoding``). Each of the L blocks (pre-norm)::

    Y  <- Y + DeformAttn3D(LN_1(Y), X, m_r)      deformable_attention.py: query [z^r ; M],
                                                 keys/values [S ; M], M = [z^p ; P]
    U  =  JointStride(LN_2(P), LN_2(z^r))        stride_attention.py, groups of joint_stride joints
    P  <- P + U,   z^p <- z^p + mean_v U_v       the pose token gathers the joints' local update
    Y  <- TemporalStride(Y)                      T -> ceil(T / temporal_stride)
    Y  <- Y + MLP(LN_3(Y))                       MLP: Linear(d, r d), GELU, Linear(r d, d)

Output: ``z^r = LN_f(mean_t Y_t,0)``, ``z^p = LN_f(mean_t Y_t,1)``; branches {rgb_key: z^r,
pose_key: z^p} [B, d]; pooled = [z^r ; z^p] [B, 2 d] ("concat") or z^r + z^p [B, d] ("sum").

Absent modalities: samples with present False contribute only a_r / a_p (their features are
replaced, not just zeroed, so the projection bias does not leak), and their sampled RGB tokens
are masked out of the attention. A missing RGB key skips the 3D token search (the RGB token
attends to the pose tokens only); a missing pose key leaves one absent token per frame.
``cross_modal=False`` masks every cross-stream key, making z^r independent of the pose input and
z^p independent of the RGB input (a no-fusion ablation).
"""

from __future__ import annotations

import math
from typing import Literal, Mapping, Optional

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .base import FusionFeatures, FusionOutput, PresenceMask, register_fusion
from .deformable_attention import DeformableAttention3D, OffsetSource, ReferenceMode
from .stride_attention import JointStrideAttention, TemporalStrideAttention


def sinusoidal_encoding(length: int, dim: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Fixed encoding [length, dim]: ``sin(i w_k)``, ``cos(i w_k)``, ``w_k = 10000^(-2k / dim)`` (Vaswani 2017)."""
    positions = torch.arange(length, device=device, dtype=dtype)[:, None]
    freqs = torch.exp(torch.arange(0, dim, 2, device=device, dtype=dtype) * (-math.log(10000.0) / dim))
    enc = torch.zeros(length, dim, device=device, dtype=dtype)
    enc[:, 0::2] = torch.sin(positions * freqs)
    enc[:, 1::2] = torch.cos(positions * freqs)[:, : dim // 2]
    return enc


class DeformableCrossModalBlock(nn.Module):
    """One block: 3D deformable attention, local joint-stride attention, temporal-stride attention, MLP.

    Token layout: [B, T, 2 + V, d] with slot 0 the RGB token, slot 1 the pose token, 2.. the joints.
    """

    def __init__(self, dim: int, num_heads: int = 4, num_points: int = 4, joint_stride: int = 5,
                 temporal_stride: int = 2, mlp_ratio: float = 2.0, reference: ReferenceMode = "grid",
                 offset_source: OffsetSource = "rgb_token", zero_init_offsets: bool = True,
                 padding_mode: str = "zeros", cross_modal: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm_deform = nn.LayerNorm(dim)
        self.deform = DeformableAttention3D(dim, num_heads, num_points, reference, offset_source,
                                            zero_init_offsets, padding_mode, cross_modal)
        self.norm_joint = nn.LayerNorm(dim)
        self.joint = JointStrideAttention(dim, num_heads, joint_stride, use_cross_token=cross_modal)
        self.temporal = TemporalStrideAttention(dim, num_heads, temporal_stride)
        self.norm_mlp = nn.LayerNorm(dim)
        hidden = max(1, int(round(dim * mlp_ratio)))
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, tokens: torch.Tensor, volume: Optional[torch.Tensor],
                volume_present: Optional[torch.Tensor]) -> torch.Tensor:
        """tokens float [B, T, 2 + V, d], volume float [B, d, T_v, H, W] or None, volume_present bool [B]
        -> float [B, ceil(T / temporal_stride), 2 + V, d]."""
        tokens = tokens + self.drop(self.deform(self.norm_deform(tokens), volume, volume_present))
        rgb, pose, joints = tokens[:, :, :1], tokens[:, :, 1:2], tokens[:, :, 2:]
        update = self.drop(self.joint(self.norm_joint(joints), self.norm_joint(rgb[:, :, 0])))   # [B, T, V, d]
        joints = joints + update
        pose = pose + update.mean(dim=2, keepdim=True)
        tokens = self.temporal(torch.cat([rgb, pose, joints], dim=2))
        return tokens + self.drop(self.mlp(self.norm_mlp(tokens)))


@register_fusion("deformable3d")
class DeformableCrossModalFusion(nn.Module):
    """3D deformable cross-modal transformer over an RGB-like map and pose tokens (module docstring).

    Args:
        dims: {modality: D_m}; must hold exactly ``rgb_key`` and ``pose_key``.
        rgb_key: the RGB-like stream with a 5-D ``spatial`` map (e.g. "rgb", "depth").
        pose_key: the pose stream: joint tokens [B, C, T, V] or a 5-D map (flattened to V = h w).
        dim: model width d.
        num_blocks: L.
        num_heads: attention heads in every sublayer.
        num_points: K sampled tokens per head and frame.
        joint_stride: joints per local group.
        temporal_stride: frame reduction per block.
        mlp_ratio: MLP hidden width / d.
        reference: reference points of the token search, "grid" or "center".
        offset_source: the query that predicts offsets, "rgb_token" or "query_mean".
        zero_init_offsets: offsets start at zero (sampling at the references).
        padding_mode: grid_sample padding outside the RGB volume.
        time_align: "interpolate" or "pool" the pose frames to the RGB frames.
        pooling: "concat" (out_dim 2 d) or "sum" (out_dim d) of the final two tokens.
        cross_modal: False masks all cross-stream attention (ablation).
        positional_encoding: add fixed sinusoidal time and joint encodings.
        dropout: dropout on sublayer outputs and in the MLP.
    """

    def __init__(self, dims: Mapping[str, int], rgb_key: str = "rgb", pose_key: str = "skeleton",
                 dim: int = 128, num_blocks: int = 2, num_heads: int = 4, num_points: int = 4,
                 joint_stride: int = 5, temporal_stride: int = 2, mlp_ratio: float = 2.0,
                 reference: ReferenceMode = "grid", offset_source: OffsetSource = "rgb_token",
                 zero_init_offsets: bool = True, padding_mode: str = "zeros",
                 time_align: Literal["interpolate", "pool"] = "interpolate",
                 pooling: Literal["concat", "sum"] = "concat", cross_modal: bool = True,
                 positional_encoding: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        if rgb_key == pose_key:
            raise ValueError(f"rgb_key and pose_key must differ, both are {rgb_key!r}")
        missing = [key for key in (rgb_key, pose_key) if key not in dims]
        extra = sorted(set(dims) - {rgb_key, pose_key})
        if missing or extra:
            raise ValueError(f"deformable3d fuses exactly {rgb_key!r} and {pose_key!r} (set rgb_key / pose_key); "
                             f"dims {sorted(dims)} lack {missing} and have unused {extra}")
        if time_align not in ("interpolate", "pool"):
            raise ValueError(f"time_align must be 'interpolate' or 'pool', not {time_align!r}")
        if pooling not in ("concat", "sum"):
            raise ValueError(f"pooling must be 'concat' or 'sum', not {pooling!r}")
        if num_blocks < 1:
            raise ValueError(f"num_blocks must be >= 1, not {num_blocks}")
        self.rgb_key, self.pose_key = rgb_key, pose_key
        self.dim, self.time_align, self.pooling = dim, time_align, pooling
        self.positional_encoding = positional_encoding
        self.rgb_proj = nn.Linear(int(dims[rgb_key]), dim)
        self.rgb_norm = nn.LayerNorm(dim)
        self.pose_proj = nn.Linear(int(dims[pose_key]), dim)
        self.pose_norm = nn.LayerNorm(dim)
        self.rgb_token = nn.Parameter(torch.randn(dim) * 0.02)       # e_r
        self.pose_token = nn.Parameter(torch.randn(dim) * 0.02)      # e_p
        self.rgb_absent = nn.Parameter(torch.randn(dim) * 0.02)      # a_r
        self.pose_absent = nn.Parameter(torch.randn(dim) * 0.02)     # a_p
        self.blocks = nn.ModuleList(
            DeformableCrossModalBlock(dim, num_heads, num_points, joint_stride, temporal_stride, mlp_ratio,
                                      reference, offset_source, zero_init_offsets, padding_mode, cross_modal,
                                      dropout)
            for _ in range(num_blocks))
        self.final_norm = nn.LayerNorm(dim)
        self.out_dim = 2 * dim if pooling == "concat" else dim

    def _spatial(self, feats: FusionFeatures, key: str, ndims: tuple) -> torch.Tensor:
        spatial = feats[key].spatial
        if spatial is None or spatial.dim() not in ndims:
            shape = None if spatial is None else tuple(spatial.shape)
            raise ValueError(f"deformable3d needs feats[{key!r}].spatial with {' or '.join(map(str, ndims))} dims "
                             f"([B, C, T, H, W] / [B, C, T, V]), got {shape}")
        return spatial

    def _align_time(self, pose: torch.Tensor, frames: int) -> torch.Tensor:
        """pose float [B, C, T_p, V] -> [B, C, frames, V]."""
        if pose.shape[2] == frames:
            return pose
        size = (frames, pose.shape[3])
        if self.time_align == "interpolate":
            return F.interpolate(pose, size=size, mode="bilinear", align_corners=False)
        return F.adaptive_avg_pool2d(pose, size)

    def forward(self, feats: FusionFeatures, present: PresenceMask) -> FusionOutput:
        """feats {rgb_key: spatial [B, C_r, T, H, W], pose_key: spatial [B, C_p, T_p, V]}, present {m: bool [B]}
        -> FusionOutput(pooled [B, out_dim], branches {rgb_key: [B, d], pose_key: [B, d]})."""
        has_rgb, has_pose = self.rgb_key in feats, self.pose_key in feats
        if not (has_rgb or has_pose):
            raise ValueError(f"deformable3d needs {self.rgb_key!r} or {self.pose_key!r} in feats, got {sorted(feats)}")
        like = feats[self.rgb_key if has_rgb else self.pose_key].pooled
        batch, device, dtype = like.shape[0], like.device, like.dtype

        def presence(key: str) -> torch.Tensor:
            if key in present:
                return present[key].to(device=device, dtype=torch.bool)
            return torch.ones(batch, dtype=torch.bool, device=device)

        volume, rgb_present = None, None
        if has_rgb:
            rgb_present = presence(self.rgb_key)
            x = self.rgb_norm(self.rgb_proj(rearrange(self._spatial(feats, self.rgb_key, (5,)),
                                                      "b c t h w -> b t h w c")))
            m_r = rgb_present.to(dtype)[:, None, None]
            z_r = self.rgb_token + m_r * x.mean(dim=(2, 3)) + (1 - m_r) * self.rgb_absent       # [B, T, d]
            volume = rearrange(x, "b t h w c -> b c t h w")
            frames = x.shape[1]
        if has_pose:
            pose = self._spatial(feats, self.pose_key, (4, 5))
            if pose.dim() == 5:
                pose = rearrange(pose, "b c t h w -> b c t (h w)")
            if not has_rgb:
                frames = pose.shape[2]
            p = self.pose_norm(self.pose_proj(rearrange(self._align_time(pose, frames), "b c t v -> b t v c")))
            m_p = presence(self.pose_key).to(dtype)[:, None, None, None]
            joints = m_p * p + (1 - m_p) * self.pose_absent                                 # [B, T, V, d]
            z_p = self.pose_token + m_p[..., 0] * p.mean(dim=2) + (1 - m_p[..., 0]) * self.pose_absent
        else:
            joints = self.pose_absent.expand(batch, frames, 1, self.dim)
            z_p = (self.pose_token + self.pose_absent).expand(batch, frames, self.dim)
        if not has_rgb:
            z_r = (self.rgb_token + self.rgb_absent).expand(batch, frames, self.dim)
        if self.positional_encoding:
            time_enc = sinusoidal_encoding(frames, self.dim, device, dtype)
            joints = joints + sinusoidal_encoding(joints.shape[2], self.dim, device, dtype) + time_enc[:, None]
            z_r, z_p = z_r + time_enc, z_p + time_enc
        tokens = torch.cat([z_r[:, :, None], z_p[:, :, None], joints], dim=2)               # [B, T, 2 + V, d]
        for block in self.blocks:
            tokens = block(tokens, volume, rgb_present)
        final = self.final_norm(tokens[:, :, :2].mean(dim=1))                              # [B, 2, d]
        rgb_final, pose_final = final[:, 0], final[:, 1]
        pooled = torch.cat([rgb_final, pose_final], dim=-1) if self.pooling == "concat" else rgb_final + pose_final
        return FusionOutput(pooled=pooled, branches={self.rgb_key: rgb_final, self.pose_key: pose_final})
