"""M-Mixer: Modality Mixer for multi-modal action recognition, as a fusion module.

Lee, Woo, Park, Nugroho, Kim: "Modality Mixer for Multi-modal Action Recognition" (WACV 2023,
arXiv 2208.11314) and the journal version with CFEM and a multi-modal feature bank (arXiv
2311.12344). Each modality's frame-feature sequence is encoded by its own recurrent MCU
(:mod:`.mmixer_cell`) together with the action content that CFEM (:mod:`.mmixer_cfem`) reads for
it from the *other* modalities; the per-modality states are combined for the classifier.

Only the structure is published in what could be read here; the equations are a reconstruction.
Modalities m ∈ 𝓜 in ``dims`` order; p_m ∈ {0, 1} the per-sample presence; T = ``num_steps``
(default: the smallest T' among the modalities that ran)::

    x̃_{m,t} = LN_m(resample_T(x_m))_t              x̃_m^pool = LN_m(pooled_m)   (LN_m only if input_norm)
    c_m      = CFEM_m({x̃_n, x̃_n^pool, p_n : n ≠ m})  [B, C] or [B, T, C]           (see mmixer_cfem)
    h_{m,t}  = MCU_m(x̃_{m,t}, c_{m,t}, h_{m,t-1})   a GRU over [x̃ ; c]           (see mmixer_cell)
    branch_m = p_m · h_{m,T}        (readout="last")   or   p_m · 1/T Σ_t h_{m,t}   (readout="mean")
    pooled   = [branch_m for m ∈ 𝓜]  (combine="concat": out_dim = |𝓜|·H, zeros for a modality that did not run)
               or Σ_m branch_m / max(1, Σ_m p_m)   (combine="mean": out_dim = H)

Ablations: ``use_cfem=False`` or ``cross_modal=False`` builds no CFEM and plain GRU MCUs (each
branch then depends on its own modality only: the per-modality GRU baseline, combined as above).

Absent modalities: a missing key adds no token and no branch; a sample with p_n = 0 has n's tokens
masked out of every key set and n's branch zeroed; CFEM's learned null token is the only signal
that stands for "nothing else here". ``aux`` is empty (M-Mixer adds no loss term).

Parameter count (H = hidden_dim, d = d_model, C = content width, Q = num_queries, S =
temporal_embedding_steps, M = |𝓜|)::

    Σ_m [2 D_m (input_norm) + 3H (D_m + H + 2) + 3H C (cross-modal)]
    + CFEM: Σ_m (d D_m + d) + M d + M Q d (global/both) + M d (per_step/both)
            + S d (feature_bank or per-step content) + d + 4 d² + 4 d + 2 d
"""

from __future__ import annotations

from typing import Dict, Optional

import torch
from torch import nn

from .base import FusionFeatures, FusionOutput, PresenceMask, register_fusion, resample_sequence
from .mmixer_cell import MCUCell
from .mmixer_cfem import CONTENT_KINDS, ComplementaryFeatureExtraction

READOUTS = ("last", "mean")
COMBINES = ("concat", "mean")


@register_fusion("mmixer")
class MMixerFusion(nn.Module):
    """M-Mixer fusion: one MCU per modality fed with CFEM's cross-modal action content.

    Args:
        dims: {modality: D_m} encoder widths (their order fixes the order of ``pooled``).
        hidden_dim: H, each MCU's state width (the width of every branch).
        d_model: d, CFEM's token width.
        num_heads: CFEM attention heads.
        num_queries: CFEM global queries per modality.
        content: "global" | "per_step" | "both": CFEM content per clip, per step, or both concatenated.
        feature_bank: CFEM reads the multi-modal feature bank (all steps of all other modalities)
            instead of clip tokens (global) / same-step tokens (per step).
        use_cfem: False builds no CFEM; the MCUs get no content (per-modality GRU baseline).
        cross_modal: False builds plain GRU MCUs on x_m alone (and therefore no CFEM).
        num_steps: T, the common length every sequence is resampled to (None: smallest T' present).
        readout: "last" (h_T) or "mean" (mean over t of h_t) as each branch.
        combine: "concat" (absent branches zeroed, out_dim = M·H) or "mean" (masked mean, out_dim = H).
        input_norm: LayerNorm each modality's features before CFEM and the MCU.
        temporal_embedding_steps: rows of CFEM's learned temporal embedding.
        dropout: CFEM attention dropout.

    Forward: ``feats`` {m: EncoderOutput(sequence [B, T'_m, D_m], pooled [B, D_m])}, ``present``
    {m: bool [B]} -> FusionOutput(pooled [B, out_dim], branches {m: [B, H]} for the modalities that ran).
    """

    def __init__(self, dims: Dict[str, int], hidden_dim: int = 128, d_model: int = 128, num_heads: int = 4,
                 num_queries: int = 4, content: str = "global", feature_bank: bool = True, use_cfem: bool = True,
                 cross_modal: bool = True, num_steps: Optional[int] = None, readout: str = "last",
                 combine: str = "concat", input_norm: bool = True, temporal_embedding_steps: int = 32,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if not dims:
            raise ValueError("M-Mixer needs at least one modality in dims")
        if content not in CONTENT_KINDS:
            raise ValueError(f"content must be one of {CONTENT_KINDS}, not {content!r}")
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, not {readout!r}")
        if combine not in COMBINES:
            raise ValueError(f"combine must be one of {COMBINES}, not {combine!r}")
        if num_steps is not None and num_steps < 1:
            raise ValueError(f"num_steps must be >= 1 or None, got {num_steps}")
        self.modalities: tuple[str, ...] = tuple(dims)
        self.hidden_dim = hidden_dim
        self.num_steps = num_steps
        self.readout = readout
        self.combine = combine
        self.mixes = bool(use_cfem and cross_modal)
        self.norm = nn.ModuleDict({m: nn.LayerNorm(d) if input_norm else nn.Identity() for m, d in dims.items()})
        self.cfem = (ComplementaryFeatureExtraction(dims, d_model, num_heads, num_queries, content, feature_bank,
                                                    temporal_embedding_steps, dropout) if self.mixes else None)
        content_dim = self.cfem.content_dim if self.cfem is not None else 0
        self.mcu = nn.ModuleDict({m: MCUCell(d, hidden_dim, content_dim, cross_modal=self.mixes)
                                  for m, d in dims.items()})
        self.out_dim = hidden_dim * (len(self.modalities) if combine == "concat" else 1)

    def aligned_inputs(self, feats: FusionFeatures, present: PresenceMask):
        """The modalities that ran, their presence, and their normalised time-aligned features.

        Returns:
            (names, present {m: bool [B]}, sequences {m: [B, T, D_m]}, pooled {m: [B, D_m]}).
        """
        unknown = [m for m in feats if m not in self.norm]
        if unknown:
            raise ValueError(f"M-Mixer was built for {list(self.modalities)}, got features of {unknown}")
        names = [m for m in self.modalities if m in feats]
        if not names:
            raise ValueError("M-Mixer got no features: at least one modality must be in feats")
        first = feats[names[0]].sequence
        steps = self.num_steps or min(int(feats[m].sequence.shape[1]) for m in names)
        batch = first.shape[0]
        flags = {m: (present[m].to(device=first.device, dtype=torch.bool) if m in present
                     else torch.ones(batch, dtype=torch.bool, device=first.device)) for m in names}
        sequences = {m: self.norm[m](resample_sequence(feats[m].sequence, steps)) for m in names}
        pooled = {m: self.norm[m](feats[m].pooled) for m in names}
        return names, flags, sequences, pooled

    def cross_modal_content(self, feats: FusionFeatures, present: PresenceMask) -> Dict[str, torch.Tensor]:
        """{m: c_m} CFEM's content for each modality that ran ([B, C] or [B, T, C]); {} without CFEM."""
        names, flags, sequences, pooled = self.aligned_inputs(feats, present)
        return self.cfem(sequences, pooled, flags) if self.cfem is not None else {}

    def forward(self, feats: FusionFeatures, present: PresenceMask) -> FusionOutput:
        names, flags, sequences, pooled = self.aligned_inputs(feats, present)
        contents = self.cfem(sequences, pooled, flags) if self.cfem is not None else {}
        branches: Dict[str, torch.Tensor] = {}
        for m in names:
            states = self.mcu[m](sequences[m], contents.get(m))                              # [B, T, H]
            state = states[:, -1] if self.readout == "last" else states.mean(dim=1)
            branches[m] = state * flags[m].to(state.dtype)[:, None]
        like = branches[names[0]]
        if self.combine == "concat":
            fused = torch.cat([branches[m] if m in branches else like.new_zeros(like.shape)
                               for m in self.modalities], dim=-1)
        else:
            count = torch.stack([flags[m].to(like.dtype) for m in names], dim=1).sum(dim=1).clamp(min=1.0)
            fused = torch.stack([branches[m] for m in names], dim=0).sum(dim=0) / count[:, None]
        return FusionOutput(pooled=fused, branches=branches, aux={})
