"""3D deformable cross-modal attention (Kim, Ahn, Ko, ICCV 2023, arXiv 2212.05638), reconstructed.

Only the structure is published at the level read here (``../shared/specs/multimodal.md``): the
RGB token Z concatenated with the modal (pose) tokens is the query; a "3D token search" samples
deformable tokens from the spatio-temporal RGB feature volume at learned offsets (trilinear);
these are concatenated with the modal tokens, projected by W_k, W_v and attended to by the query
with multi-head attention. The equations below are this module's reconstruction.

Per frame t (of the token sequence, T_q frames) the query holds N = 1 + N_m tokens,
``Q_t = [z^r_t ; M_t]`` with the RGB token ``z^r_t`` first and the modal tokens
``M_t = [z^p_t ; P_t,1 .. P_t,V]`` (pose token, then joint tokens). With heads h = 1..H,
points k = 1..K and the RGB volume X [d, T_v, H_v, W_v] (already projected to width d)::

    u_t          = z^r_t                       (offset_source="rgb_token")
                 | mean_n Q_t,n                (offset_source="query_mean")
    Delta_t,h,k  = (W_off u_t + b_off)_{h,k}   in voxels (t, y, x); W_off, b_off zero at init
                                               when zero_init_offsets (then p = r exactly)
    p_t,h,k      = r_t,h,k + Delta_t,h,k       r: reference points, see :func:`reference_points`
    S_t,h,k      = Trilinear(X, p_t,h,k)       grid_sample on the 5-D volume, align_corners=True,
                                               outside the volume -> padding_mode
    K^h_t = [S_t,h,: ; M_t] W_k^h,  V^h_t = [S_t,h,: ; M_t] W_v^h,  Q^h_t = Q_t W_q^h
    A^h_t = softmax(Q^h_t K^h_t^T / sqrt(d / H) + log mask) V^h_t
    out_t = [A^1_t .. A^H_t] W_o                         [N, d]

Each head h has its own K sampled tokens (as deformable DETR / DAT give each head its points).
The mask removes the sampled tokens of samples whose RGB is absent (``present`` False), and,
when ``cross_modal`` is False, every key of the other modality (the RGB token then sees only
S, the modal tokens only M), so the two streams are computed independently. A query row with
no valid key gets a zero output (never NaN).
"""

from __future__ import annotations

import math
from typing import Literal, Optional, Tuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

ReferenceMode = Literal["grid", "center"]
OffsetSource = Literal["rgb_token", "query_mean"]


def masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                     mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Scaled dot-product attention with a boolean key mask; rows without a valid key give 0.

    Args:
        q: float [..., L_q, e]; k, v: float [..., L_k, e] (same leading dims).
        mask: bool broadcastable to [..., L_q, L_k], True where the key may be attended; None: all.

    Returns:
        float [..., L_q, e].
    """
    logits = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    if mask is None:
        return torch.matmul(logits.softmax(dim=-1), v)
    mask = mask.expand(logits.shape)
    has_key = mask.any(dim=-1, keepdim=True)
    weights = logits.masked_fill(~mask, float("-inf")).masked_fill(~has_key, 0.0).softmax(dim=-1)
    weights = weights * has_key.to(weights.dtype)
    return torch.matmul(weights, v)


def voxel_to_grid(points: torch.Tensor, size_thw: Tuple[int, int, int]) -> torch.Tensor:
    """Voxel coordinates (t, y, x) -> grid_sample's normalised (x, y, t), align_corners=True.

    ``g = 2 p / (n - 1) - 1`` per axis (voxel i's centre at index i; an axis of size 1 maps to 0).

    Args:
        points: float [..., 3] (t, y, x) in voxels.
        size_thw: (T, H, W) of the volume.

    Returns:
        float [..., 3] (x, y, t) in [-1, 1] inside the volume.
    """
    scale = points.new_tensor([2.0 / max(n - 1, 1) for n in size_thw])
    shift = points.new_tensor([1.0 if n > 1 else 0.0 for n in size_thw])
    return (points * scale - shift).flip(-1)


def sample_volume(volume: torch.Tensor, points: torch.Tensor, padding_mode: str = "zeros") -> torch.Tensor:
    """Trilinear samples of a feature volume at voxel coordinates.

    Args:
        volume: float [B, C, T, H, W].
        points: float [B, N, 3] (t, y, x) in voxels (fractional allowed).
        padding_mode: grid_sample's padding ("zeros", "border", "reflection") outside the volume.

    Returns:
        float [B, N, C]: ``sum_{corners} w * volume[:, :, t_i, y_i, x_i]`` with trilinear weights w.
    """
    grid = voxel_to_grid(points, tuple(volume.shape[-3:]))[:, None, None]          # [B, 1, 1, N, 3]
    sampled = F.grid_sample(volume, grid.to(volume.dtype), mode="bilinear",        # 5-D: trilinear
                            padding_mode=padding_mode, align_corners=True)
    return rearrange(sampled, "b c 1 1 n -> b n c")


def reference_points(frames: int, size_thw: Tuple[int, int, int], num_heads: int, num_points: int,
                     mode: ReferenceMode = "grid", device=None, dtype=torch.float32) -> torch.Tensor:
    """Reference points r of the 3D token search, in voxels of the volume.

    Time: token frame t of ``frames`` covers volume frames [t T_v / frames, (t + 1) T_v / frames),
    so ``r_t = (t + 1/2) T_v / frames - 1/2`` (= t when frames == T_v). Space:
    "center": every point at the map centre ((H - 1) / 2, (W - 1) / 2);
    "grid": the J = heads x points references laid row-major on an R x (J / R) grid of cell
    centres (R the largest divisor of J not above sqrt(J)), ``y_i = (i + 1/2) H / R - 1/2``,
    ``x_j = (j + 1/2) W / (J / R) - 1/2``; head h takes references h K .. h K + K - 1.

    Returns:
        float [frames, heads, points, 3] (t, y, x).
    """
    t_v, h_v, w_v = size_thw
    total = num_heads * num_points
    times = (torch.arange(frames, device=device, dtype=dtype) + 0.5) * (t_v / frames) - 0.5
    if mode == "center":
        ys = torch.full((total,), (h_v - 1) / 2, device=device, dtype=dtype)
        xs = torch.full((total,), (w_v - 1) / 2, device=device, dtype=dtype)
    elif mode == "grid":
        rows = max(r for r in range(1, int(math.isqrt(total)) + 1) if total % r == 0)
        cols = total // rows
        row_pos = (torch.arange(rows, device=device, dtype=dtype) + 0.5) * (h_v / rows) - 0.5
        col_pos = (torch.arange(cols, device=device, dtype=dtype) + 0.5) * (w_v / cols) - 0.5
        ys = row_pos.repeat_interleave(cols)
        xs = col_pos.repeat(rows)
    else:
        raise ValueError(f"reference must be 'grid' or 'center', not {mode!r}")
    space = torch.stack([ys, xs], dim=-1).reshape(num_heads, num_points, 2)
    return torch.cat([times[:, None, None, None].expand(frames, num_heads, num_points, 1),
                      space[None].expand(frames, num_heads, num_points, 2)], dim=-1)


class DeformableAttention3D(nn.Module):
    """The 3D deformable attention sublayer (equations in the module docstring).

    Args:
        dim: token and volume width d (divisible by num_heads).
        num_heads: H.
        num_points: K sampled tokens per head and frame.
        reference: reference-point layout, "grid" or "center" (:func:`reference_points`).
        offset_source: which query predicts the offsets, "rgb_token" or "query_mean".
        zero_init_offsets: start W_off, b_off at zero (sampling exactly at the references).
        padding_mode: grid_sample padding outside the volume.
        cross_modal: False masks every cross-stream key (RGB token <-> modal tokens).
    """

    def __init__(self, dim: int, num_heads: int = 4, num_points: int = 4, reference: ReferenceMode = "grid",
                 offset_source: OffsetSource = "rgb_token", zero_init_offsets: bool = True,
                 padding_mode: str = "zeros", cross_modal: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        if offset_source not in ("rgb_token", "query_mean"):
            raise ValueError(f"offset_source must be 'rgb_token' or 'query_mean', not {offset_source!r}")
        if offset_source == "query_mean" and not cross_modal:
            raise ValueError("offset_source='query_mean' reads the pose tokens, so it needs cross_modal=True")
        if reference not in ("grid", "center"):
            raise ValueError(f"reference must be 'grid' or 'center', not {reference!r}")
        self.dim, self.num_heads, self.num_points = dim, num_heads, num_points
        self.reference, self.offset_source = reference, offset_source
        self.padding_mode, self.cross_modal = padding_mode, cross_modal
        self.offsets = nn.Linear(dim, num_heads * num_points * 3)
        if zero_init_offsets:
            nn.init.zeros_(self.offsets.weight)
            nn.init.zeros_(self.offsets.bias)
        self.to_q = nn.Linear(dim, dim)
        self.to_k = nn.Linear(dim, dim)
        self.to_v = nn.Linear(dim, dim)
        self.to_out = nn.Linear(dim, dim)

    def sample_tokens(self, query: torch.Tensor, volume: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """The 3D token search.

        Args:
            query: float [B, T, N, d], token 0 the RGB token.
            volume: float [B, d, T_v, H_v, W_v].

        Returns:
            (tokens float [B, T, heads, points, d], points float [B, T, heads, points, 3] (t, y, x) voxels).
        """
        frames = query.shape[1]
        source = query[:, :, 0] if self.offset_source == "rgb_token" else query.mean(dim=2)
        delta = rearrange(self.offsets(source), "b t (h k c) -> b t h k c", h=self.num_heads, c=3)
        refs = reference_points(frames, tuple(volume.shape[-3:]), self.num_heads, self.num_points,
                                self.reference, device=query.device, dtype=query.dtype)
        points = refs + delta
        flat = rearrange(points, "b t h k c -> b (t h k) c")
        tokens = sample_volume(volume, flat, self.padding_mode)
        tokens = rearrange(tokens, "b (t h k) d -> b t h k d", t=frames, h=self.num_heads)
        return tokens, points

    def forward(self, query: torch.Tensor, volume: Optional[torch.Tensor] = None,
                volume_present: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Attention output (no residual) for every query token.

        Args:
            query: float [B, T, N, d]; token 0 the RGB token, tokens 1.. the modal tokens M.
            volume: float [B, d, T_v, H_v, W_v] the RGB map, or None (no RGB: keys are M only).
            volume_present: bool [B], False where the sample's RGB is absent (its S is masked).

        Returns:
            float [B, T, N, d].
        """
        batch, frames, n_query, _ = query.shape
        heads = self.num_heads
        modal = query[:, :, 1:]
        q = rearrange(self.to_q(query), "b t n (h e) -> b t h n e", h=heads)
        k_modal = rearrange(self.to_k(modal), "b t n (h e) -> b t h n e", h=heads)
        v_modal = rearrange(self.to_v(modal), "b t n (h e) -> b t h n e", h=heads)
        is_rgb_query = torch.zeros(n_query, dtype=torch.bool, device=query.device)
        is_rgb_query[0] = True
        modal_mask = torch.ones(n_query, modal.shape[2], dtype=torch.bool, device=query.device)
        if not self.cross_modal:
            modal_mask = modal_mask & ~is_rgb_query[:, None]
        modal_mask = modal_mask.expand(batch, n_query, modal.shape[2])
        if volume is None:
            keys, values, mask = k_modal, v_modal, modal_mask
        else:
            sampled, _ = self.sample_tokens(query, volume)                       # [B, T, H, K, d]
            # Head h projects only its own sampled tokens with its slice W_k^h, W_v^h.
            w_k = rearrange(self.to_k.weight, "(h e) d -> h e d", h=heads)
            w_v = rearrange(self.to_v.weight, "(h e) d -> h e d", h=heads)
            k_s = torch.einsum("bthkd,hed->bthke", sampled, w_k) + rearrange(self.to_k.bias, "(h e) -> h 1 e", h=heads)
            v_s = torch.einsum("bthkd,hed->bthke", sampled, w_v) + rearrange(self.to_v.bias, "(h e) -> h 1 e", h=heads)
            keys = torch.cat([k_s, k_modal], dim=3)
            values = torch.cat([v_s, v_modal], dim=3)
            present = (torch.ones(batch, dtype=torch.bool, device=query.device) if volume_present is None
                       else volume_present.to(device=query.device, dtype=torch.bool))
            sample_mask = present[:, None, None].expand(batch, n_query, self.num_points)
            if not self.cross_modal:
                sample_mask = sample_mask & is_rgb_query[None, :, None]
            mask = torch.cat([sample_mask, modal_mask], dim=-1)
        out = masked_attention(q, keys, values, mask[:, None, None])            # [B, T, H, N, e]
        return self.to_out(rearrange(out, "b t h n e -> b t n (h e)"))
