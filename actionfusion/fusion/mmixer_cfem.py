"""M-Mixer's Complementary Feature Extraction Module (CFEM) and multi-modal feature bank.

Lee et al., "Modality Mixer for Multi-modal Action Recognition" (WACV 2023, arXiv 2208.11314)
and its journal version (arXiv 2311.12344), which adds CFEM and a multi-modal feature bank.
Only the structure is published in what could be read here: each modality has its own learnable
query embeddings that read complementary information and global action content from the *other*
modalities. Everything below is a reconstruction; every choice is a constructor option.

Tokens (d = ``d_model``; x̃ are the fusion's normalised, time-aligned features)::

    z_{n,t} = W_n x̃_{n,t} + b_n + e^mod_n + e^time_t      step token of modality n at step t
    z̄_n     = W_n x̃_n^pool + b_n + e^mod_n                  clip token (the encoder's pooled feature)

e^time is a learned table of ``temporal_embedding_steps`` rows, linearly resampled to T steps (a
relative-position code, so any T works). A learned null token u ("nothing else is here") is
appended to every key set, so a query always has something to read: with no other modality
present the content is the learned vector LN(W_o W_v u + b), never NaN.

Key sets (what modality m's queries read; tokens of m itself never enter, tokens of absent
samples are masked out with ``key_padding_mask``, modalities that did not run add no token):

- ``feature_bank=True``: the multi-modal feature bank 𝔅 = {z_{n,t} : every modality n that ran,
  t = 1..T}, [B, K·T, d]; m reads 𝔅 minus its own tokens, plus u. Global and per-step queries
  both read the whole clip of every other modality.
- ``feature_bank=False``: global queries read the clip tokens {z̄_n : n ≠ m} ∪ {u} ([B, K, d]);
  the per-step query at t reads only the step-t tokens {z_{n,t} : n ≠ m} ∪ {u} ([B·T, K, d]).

Content (MHA: one ``nn.MultiheadAttention`` shared by all modalities; the queries are per modality)::

    global:    c^g_m     = LN( 1/Q Σ_j MHA(q^g_{m,j}, keys_m) )           [B, d]     (Q = num_queries)
    per_step:  c^s_{m,t} = LN( MHA(q^s_m + e^time_t, keys_m(t)) )          [B, T, d]
    both:      c_{m,t}   = [c^g_m ; c^s_{m,t}]                             [B, T, 2d]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping, Sequence

import torch
from einops import rearrange, repeat
from torch import nn

from .base import resample_sequence

CONTENT_KINDS = ("global", "per_step", "both")


@dataclass
class KeySet:
    """Tokens CFEM's queries may read.

    Attributes:
        tokens: [B', N, d] key/value tokens (B' = B, or B·T for the per-step sets without the bank).
        owner: long [N] index (into the CFEM's modality order) of the modality each token came from.
        absent: bool [B', N] True where the token's modality is absent for that sample.
    """

    tokens: torch.Tensor
    owner: torch.Tensor
    absent: torch.Tensor


class ComplementaryFeatureExtraction(nn.Module):
    """CFEM: per-modality learnable queries reading the other modalities' features.

    Args:
        dims: {modality: D_m} widths of the (normalised) features it reads; the order is kept.
        d_model: d, the common token width.
        num_heads: attention heads (d must divide by it).
        num_queries: Q, global queries per modality (their outputs are averaged).
        content: "global" (one vector per clip), "per_step" (one per time step) or "both" (concatenated).
        feature_bank: read from the multi-modal feature bank (every step of every other modality)
            rather than from clip tokens / same-step tokens (see the module docstring).
        temporal_embedding_steps: rows of the learned temporal embedding (resampled to T).
        dropout: attention dropout.

    Parameters: Σ_m (d·D_m + d) projections, M·d modality embeddings, M·Q·d global queries
    (global/both), M·d step queries (per_step/both), S·d temporal embedding (when the bank or
    per-step content uses it), d null token, 4d² + 4d attention, 2d LayerNorm.
    """

    def __init__(self, dims: Mapping[str, int], d_model: int = 128, num_heads: int = 4, num_queries: int = 4,
                 content: str = "global", feature_bank: bool = True, temporal_embedding_steps: int = 32,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if content not in CONTENT_KINDS:
            raise ValueError(f"content must be one of {CONTENT_KINDS}, not {content!r}")
        if d_model % num_heads != 0:
            raise ValueError(f"d_model ({d_model}) must be divisible by num_heads ({num_heads})")
        if num_queries < 1 or temporal_embedding_steps < 1:
            raise ValueError("num_queries and temporal_embedding_steps must be >= 1")
        self.modalities: tuple[str, ...] = tuple(dims)
        self.index = {m: i for i, m in enumerate(self.modalities)}
        self.d_model = d_model
        self.content = content
        self.feature_bank = feature_bank
        self.uses_global = content in ("global", "both")
        self.uses_step = content in ("per_step", "both")
        self.uses_step_tokens = feature_bank or self.uses_step
        num = len(self.modalities)

        self.project = nn.ModuleDict({m: nn.Linear(d, d_model) for m, d in dims.items()})
        self.modality_embedding = nn.Parameter(torch.randn(num, d_model) * 0.02)
        self.temporal_embedding = (nn.Parameter(torch.randn(temporal_embedding_steps, d_model) * 0.02)
                                   if self.uses_step_tokens else None)
        self.global_queries = nn.Parameter(torch.randn(num, num_queries, d_model) * 0.02) if self.uses_global else None
        self.step_queries = nn.Parameter(torch.randn(num, d_model) * 0.02) if self.uses_step else None
        self.null_token = nn.Parameter(torch.randn(d_model) * 0.02)
        self.attention = nn.MultiheadAttention(d_model, num_heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(d_model)

    @property
    def content_dim(self) -> int:
        """C, the width of the content each modality gets (d, or 2d for "both")."""
        return self.d_model * (2 if self.content == "both" else 1)

    def time_codes(self, steps: int) -> torch.Tensor:
        """[steps, d] the temporal embedding resampled to ``steps`` rows."""
        assert self.temporal_embedding is not None
        return resample_sequence(self.temporal_embedding[None], steps)[0]

    def step_tokens(self, sequences: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """{m: [B, T, D_m]} time-aligned features -> {m: [B, T, d]} step tokens z_{m,t}."""
        out = {}
        for m, seq in sequences.items():
            time = self.time_codes(seq.shape[1])
            out[m] = self.project[m](seq) + self.modality_embedding[self.index[m]] + time
        return out

    def clip_tokens(self, pooled: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """{m: [B, D_m]} clip features -> {m: [B, d]} clip tokens z̄_m."""
        return {m: self.project[m](p) + self.modality_embedding[self.index[m]] for m, p in pooled.items()}

    def _owner(self, names: Sequence[str], per: int, device: torch.device) -> torch.Tensor:
        return torch.tensor([self.index[m] for m in names for _ in range(per)], dtype=torch.long, device=device)

    def key_sets(self, sequences: Mapping[str, torch.Tensor], pooled: Mapping[str, torch.Tensor],
                 present: Mapping[str, torch.Tensor]) -> Dict[str, KeySet]:
        """The key sets of the configuration: {"global": ..., "per_step": ...} (those used).

        Args:
            sequences: {m: [B, T, D_m]} normalised features, all resampled to the same T.
            pooled: {m: [B, D_m]} normalised clip features (read only without the bank).
            present: {m: bool [B]}.
        Returns:
            With the bank, each entry used is the bank: tokens [B, K·T, d]. Without it, "global" holds
            the clip tokens [B, K, d] and "per_step" the step tokens regrouped by step [B·T, K, d].
        """
        names = list(sequences)
        sets: Dict[str, KeySet] = {}
        absent = torch.stack([~present[m].bool() for m in names], dim=1)                      # [B, K]
        steps = next(iter(sequences.values())).shape[1]
        if self.uses_step_tokens:
            grid = torch.stack(list(self.step_tokens(sequences).values()), dim=1)             # [B, K, T, d]
            device = grid.device
        else:
            grid = None
            device = absent.device
        if self.feature_bank:
            bank = KeySet(rearrange(grid, "b k t d -> b (k t) d"), self._owner(names, steps, device),
                          repeat(absent, "b k -> b (k t)", t=steps))
            return {kind: bank for kind, used in (("global", self.uses_global), ("per_step", self.uses_step)) if used}
        if self.uses_global:
            clip = torch.stack(list(self.clip_tokens({m: pooled[m] for m in names}).values()), dim=1)
            sets["global"] = KeySet(clip, self._owner(names, 1, clip.device), absent)
        if self.uses_step:
            sets["per_step"] = KeySet(rearrange(grid, "b k t d -> (b t) k d"), self._owner(names, 1, device),
                                      repeat(absent, "b k -> (b t) k", t=steps))
        return sets

    def attend(self, modality: str, queries: torch.Tensor, keys: KeySet) -> torch.Tensor:
        """Modality ``modality``'s queries [B', L, d] read ``keys`` minus its own tokens, plus u -> [B', L, d]."""
        others = keys.owner != self.index[modality]
        tokens = keys.tokens[:, others]
        mask = keys.absent[:, others]
        null = repeat(self.null_token, "d -> b 1 d", b=tokens.shape[0]).to(tokens.dtype)
        tokens = torch.cat([tokens, null], dim=1)
        mask = torch.cat([mask, mask.new_zeros(mask.shape[0], 1)], dim=1)
        out, _ = self.attention(queries, tokens, tokens, key_padding_mask=mask, need_weights=False)
        return out

    def forward(self, sequences: Mapping[str, torch.Tensor], pooled: Mapping[str, torch.Tensor],
                present: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Cross-modal action content for each modality.

        Args:
            sequences: {m: [B, T, D_m]} normalised, time-aligned features of the modalities that ran.
            pooled: {m: [B, D_m]} their normalised clip features.
            present: {m: bool [B]}.
        Returns:
            {m: [B, d]} for "global", {m: [B, T, C]} for "per_step" / "both" (C = :attr:`content_dim`).
        """
        sets = self.key_sets(sequences, pooled, present)
        batch, steps = next(iter(sequences.values())).shape[:2]
        contents = {}
        for m in sequences:
            i = self.index[m]
            parts = []
            if self.uses_global:
                queries = repeat(self.global_queries[i], "q d -> b q d", b=batch)
                parts.append(self.norm(self.attend(m, queries, sets["global"]).mean(dim=1)))
            if self.uses_step:
                queries = self.step_queries[i] + self.time_codes(steps)                      # [T, d]
                if self.feature_bank:
                    read = self.attend(m, repeat(queries, "t d -> b t d", b=batch), sets["per_step"])
                else:
                    read = self.attend(m, repeat(queries, "t d -> (b t) 1 d", b=batch), sets["per_step"])
                    read = rearrange(read, "(b t) 1 d -> b t d", b=batch)
                parts.append(self.norm(read))
            if len(parts) == 2:
                parts[0] = repeat(parts[0], "b d -> b t d", t=steps)
            contents[m] = torch.cat(parts, dim=-1) if len(parts) == 2 else parts[0]
        return contents
