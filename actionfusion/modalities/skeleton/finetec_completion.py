"""FineTec's context-aware completion network, reconstructed (FineTec's code is not released).

FineTec restores a base sequence S_base from a temporally corrupted one with "in-context completion
with a skeleton bank prior", built from "spatial and temporal MLPs" (shared/specs/robust-longtail.md).
This module is one reading of that description; every open choice is a constructor option:

- Input: the corrupted clip on its *original* timeline, ``x`` [N, T, V, C] (observed joints at their
  frames, zeros elsewhere; :meth:`~.corruption.CorruptedClip.in_place` unpacks FineTec's packed
  T_hat-first layout with the clip's ``frame_times``) and ``observed`` bool [N, T, V].
- ``initial_fill`` (``"interpolate"``, default, or ``"zeros"``): the hidden entries start from each
  joint's linear interpolation between its observed frames (:func:`interpolate_observed`), and the
  network predicts a residual on it; with ``"zeros"`` it predicts them from nothing.
- Tokens: one per (frame, joint): Linear(C + 1 -> D) of (fill, observed flag) plus learned joint and
  frame embeddings.
- ``depth`` MLP-Mixer blocks (:class:`SpatioTemporalMixerBlock`): a temporal MLP over the T frames
  (per joint and channel), a spatial MLP over the V joints (per frame and channel), a channel MLP,
  each pre-norm and residual. T is fixed (``num_frames``, the model's clip length), as in MLP-Mixer.
- Skeleton bank prior (:class:`SkeletonBankPrior`, ``num_prototypes`` K, 0 disables it): a learnable
  bank of K pose prototypes [K, V, C]; each frame's context (its tokens averaged over joints)
  attends over the bank's keys, and the attended pose, embedded per joint, is added to the tokens
  after the first half of the blocks.
- Output: Linear(D -> C), zero-initialised, added to the fill (``raw`` [N, T, V, C]). With
  ``keep_observed`` (default) the completed clip holds the input at observed entries and ``raw``
  elsewhere, so observed joints are returned unchanged.

The training pairs (five masking types, :mod:`.finetec_masking`) and the two-term loss live in
:mod:`actionfusion.objectives.finetec`. For ``pretrain``'s kNN monitor the model also keeps the
encoder contract: ``forward_features`` of a clean clip [B, M, T, V, C] pools its tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from einops import rearrange
from torch import nn

from ...registry import register_model
from ..encoder_contract import Encoder
from ..features import EncoderOutput
from ..heads import LinearHead

FILLS = ("interpolate", "zeros")


def running_max(values: torch.Tensor) -> torch.Tensor:
    """``values.cummax(dim=1).values`` of an integer tensor [N, T, ...]. ONNX has no cumulative max: while
    exporting it is the max over a lower-triangular [T, T] mask instead (same integers, T times the memory)."""
    if not torch.onnx.is_in_onnx_export():
        return values.cummax(dim=1).values
    frames = values.shape[1]
    upto = torch.ones(frames, frames, dtype=torch.bool, device=values.device).tril()  # [t, s]: s <= t
    upto = upto.view(1, frames, frames, *([1] * (values.ndim - 2)))
    floor = torch.full_like(values, torch.iinfo(values.dtype).min).unsqueeze(1)
    return torch.where(upto, values.unsqueeze(1), floor).amax(dim=2)


def interpolate_observed(x: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
    """Each joint linearly interpolated in time between its observed frames (held flat before the
    first and after the last; zero for a joint never observed), as the ``interpolate`` completion.

    Args:
        x: [N, T, V, C] (values at unobserved entries are ignored).
        observed: bool [N, T, V].

    Returns:
        [N, T, V, C].
    """
    frames = x.shape[1]
    time = torch.arange(frames, device=x.device).view(1, frames, 1).expand_as(observed)
    before = running_max(torch.where(observed, time, torch.full_like(time, -1)))
    after = -running_max(-torch.where(observed, time, torch.full_like(time, frames)).flip(1)).flip(1)
    previous = torch.where(before >= 0, before, after)
    following = torch.where(after < frames, after, before)
    seen = observed.any(dim=1, keepdim=True)  # [N, 1, V]
    previous = torch.where(seen, previous, torch.zeros_like(previous))
    following = torch.where(seen, following, torch.zeros_like(following))
    span = (following - previous).to(x.dtype)
    weight = torch.where(span > 0, (time - previous).to(x.dtype) / span.clamp(min=1), torch.zeros_like(span))
    channels = x.shape[-1]
    low = x.gather(1, previous.unsqueeze(-1).expand(-1, -1, -1, channels))
    high = x.gather(1, following.unsqueeze(-1).expand(-1, -1, -1, channels))
    out = low + (high - low) * weight.unsqueeze(-1)
    return out * seen.unsqueeze(-1).to(x.dtype)


class FeedForward(nn.Sequential):
    """Linear(dim -> hidden) -> GELU -> Dropout -> Linear(hidden -> dim) over the last axis."""

    def __init__(self, dim: int, hidden: int, drop_rate: float = 0.0) -> None:
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(drop_rate), nn.Linear(hidden, dim))


class SpatioTemporalMixerBlock(nn.Module):
    """Temporal MLP over frames, spatial MLP over joints, channel MLP; pre-norm, residual.

    Args:
        num_frames, num_joints, dim: T, V, D of the tokens [N, T, V, D].
        temporal_hidden, spatial_hidden, channel_hidden: hidden widths of the three MLPs.
    """

    def __init__(self, num_frames: int, num_joints: int, dim: int, temporal_hidden: int, spatial_hidden: int,
                 channel_hidden: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.temporal_norm, self.spatial_norm, self.channel_norm = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.temporal = FeedForward(num_frames, temporal_hidden, drop_rate)
        self.spatial = FeedForward(num_joints, spatial_hidden, drop_rate)
        self.channel = FeedForward(dim, channel_hidden, drop_rate)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [N, T, V, D] -> [N, T, V, D]."""
        t = rearrange(self.temporal_norm(tokens), "n t v d -> n v d t")
        tokens = tokens + rearrange(self.temporal(t), "n v d t -> n t v d")
        s = rearrange(self.spatial_norm(tokens), "n t v d -> n t d v")
        tokens = tokens + rearrange(self.spatial(s), "n t d v -> n t v d")
        return tokens + self.channel(self.channel_norm(tokens))


class SkeletonBankPrior(nn.Module):
    """A learnable bank of K pose prototypes [K, V, C] that each frame's context attends over.

    Args:
        num_prototypes, num_joints, channels, dim: K, V, C and the token width D.
    """

    def __init__(self, num_prototypes: int, num_joints: int, channels: int, dim: int) -> None:
        super().__init__()
        self.prototypes = nn.Parameter(torch.randn(num_prototypes, num_joints, channels) * 0.1)
        self.keys = nn.Parameter(torch.randn(num_prototypes, dim) * dim ** -0.5)
        self.query = nn.Linear(dim, dim)
        self.embed = nn.Linear(channels, dim)
        self.scale = dim ** -0.5

    def forward(self, tokens: torch.Tensor) -> "tuple[torch.Tensor, torch.Tensor]":
        """tokens [N, T, V, D] -> (prior pose [N, T, V, C], its embedding [N, T, V, D])."""
        query = self.query(tokens.mean(dim=2))  # [N, T, D]
        weights = torch.softmax(torch.einsum("ntd,kd->ntk", query, self.keys) * self.scale, dim=-1)
        pose = torch.einsum("ntk,kvc->ntvc", weights, self.prototypes)
        return pose, self.embed(pose)


@dataclass
class CompletionOutput:
    """What the completion network returns.

    Attributes:
        completed: [N, T, V, C] S_base: observed entries kept (with ``keep_observed``), the rest predicted.
        raw: [N, T, V, C] the network's prediction at every entry (observed ones included).
        prior: [N, T, V, C] the skeleton bank's attended pose per frame, or None without a bank.
    """

    completed: torch.Tensor
    raw: torch.Tensor
    prior: Optional[torch.Tensor]


@register_model("finetec_completion", modality="skeleton")
class FineTecCompletion(Encoder):
    """FineTec's context-aware completion network (module docstring: all reconstructed).

    Args:
        num_classes: a linear head over the pooled tokens (0: none; completion never uses it).
        num_frames, num_joints, in_channels: T, V, C of the clips it completes.
        dim, depth: token width and number of mixer blocks.
        temporal_hidden, spatial_hidden, channel_hidden: the mixer MLPs' hidden widths.
        num_prototypes: K, the skeleton bank's size (0: no bank prior).
        initial_fill: ``interpolate`` or ``zeros`` (what the residual is added to).
        keep_observed: return observed entries unchanged.
        drop_rate: dropout in the MLPs.
    """

    input_keys = ("skeleton",)

    def __init__(self, num_classes: int = 0, num_frames: int = 32, num_joints: int = 25, in_channels: int = 3,
                 dim: int = 64, depth: int = 4, temporal_hidden: int = 64, spatial_hidden: int = 64,
                 channel_hidden: int = 128, num_prototypes: int = 32, initial_fill: str = "interpolate",
                 keep_observed: bool = True, drop_rate: float = 0.0) -> None:
        super().__init__()
        if initial_fill not in FILLS:
            raise ValueError(f"initial_fill must be one of {FILLS}, not {initial_fill!r}")
        if min(num_frames, num_joints, in_channels, dim, depth) < 1 or num_prototypes < 0:
            raise ValueError("num_frames, num_joints, in_channels, dim and depth must be >= 1, num_prototypes >= 0")
        self.num_frames, self.num_joints, self.in_channels = int(num_frames), int(num_joints), int(in_channels)
        self.initial_fill, self.keep_observed = initial_fill, bool(keep_observed)
        self.num_features, self.num_classes = int(dim), int(num_classes)
        self.embed = nn.Linear(in_channels + 1, dim)
        self.joint_embedding = nn.Parameter(torch.zeros(num_joints, dim))
        self.frame_embedding = nn.Parameter(torch.zeros(num_frames, dim))
        nn.init.normal_(self.joint_embedding, std=0.02)
        nn.init.normal_(self.frame_embedding, std=0.02)
        self.blocks = nn.ModuleList(SpatioTemporalMixerBlock(num_frames, num_joints, dim, temporal_hidden,
                                                             spatial_hidden, channel_hidden, drop_rate)
                                    for _ in range(depth))
        self.bank = SkeletonBankPrior(num_prototypes, num_joints, in_channels, dim) if num_prototypes else None
        self.bank_after = depth // 2
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, in_channels)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.head: Optional[nn.Module] = self.build_classifier(num_classes) if num_classes > 0 else None

    def build_classifier(self, num_classes: int) -> nn.Module:
        """A linear head over the pooled tokens."""
        return LinearHead(self.num_features, num_classes)

    def _check(self, x: torch.Tensor, observed: torch.Tensor) -> None:
        expected = (self.num_frames, self.num_joints, self.in_channels)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected or tuple(observed.shape) != tuple(x.shape[:3]):
            raise ValueError(f"the completion network takes x [N, {expected[0]}, {expected[1]}, {expected[2]}] and "
                             f"observed [N, T, V]; got {tuple(x.shape)} and {tuple(observed.shape)}")

    def encode(self, x: torch.Tensor, observed: torch.Tensor) -> "tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]":
        """(fill [N, T, V, C], tokens [N, T, V, D], prior [N, T, V, C] or None) of a corrupted clip."""
        self._check(x, observed)
        mask = observed.to(x.dtype).unsqueeze(-1)
        x = x * mask
        fill = interpolate_observed(x, observed) if self.initial_fill == "interpolate" else x
        tokens = self.embed(torch.cat([fill, mask], dim=-1)) + self.joint_embedding + self.frame_embedding[:, None]
        prior = None
        for i, block in enumerate(self.blocks):
            if i == self.bank_after and self.bank is not None:
                prior, prior_tokens = self.bank(tokens)
                tokens = tokens + prior_tokens
            tokens = block(tokens)
        return fill, self.norm(tokens), prior

    def complete(self, x: torch.Tensor, observed: torch.Tensor) -> CompletionOutput:
        """x [N, T, V, C] (corrupted, on the original timeline), observed bool [N, T, V] -> CompletionOutput."""
        fill, tokens, prior = self.encode(x, observed)
        raw = fill + self.out(tokens)
        completed = torch.where(observed.unsqueeze(-1), x, raw) if self.keep_observed else raw
        return CompletionOutput(completed, raw, prior)

    def forward_features(self, x: torch.Tensor) -> EncoderOutput:
        """x: clean clips [B, M, T, V, C] (every non-zero joint observed) -> EncoderOutput: sequence
        [B, T, D] (tokens averaged over persons and joints), pooled [B, D]."""
        persons = x.shape[1]
        flat = rearrange(x, "b m t v c -> (b m) t v c")
        _, tokens, _ = self.encode(flat, flat.abs().sum(dim=-1) > 0)
        sequence = rearrange(tokens.mean(dim=2), "(b m) t d -> b m t d", m=persons).mean(dim=1)
        return EncoderOutput(sequence=sequence, pooled=sequence.mean(dim=1))

    @torch.no_grad()
    def complete_clip(self, sequence: np.ndarray, observed: np.ndarray) -> np.ndarray:
        """One corrupted clip in numpy: ``sequence`` [M, T, V, C] on the original timeline (zeros where
        unobserved), ``observed`` bool [T, V] (the corruption's mask, the same for every person) ->
        completed float32 [M, T, V, C]. A person with no non-zero joint stays all zero."""
        device = next(self.parameters()).device
        x = torch.as_tensor(np.asarray(sequence, dtype=np.float32), device=device)
        present = (x.abs().sum(dim=-1) > 0).any(dim=(1, 2))  # [M]
        mask = torch.as_tensor(np.asarray(observed, dtype=bool), device=device).expand(x.shape[0], -1, -1)
        out = self.complete(x, mask).completed * present[:, None, None, None].to(x.dtype)
        return out.cpu().numpy().astype(np.float32)
