"""The Multi-modal Contextualization Unit (MCU) of M-Mixer (Lee et al., WACV 2023): a gated
recurrent cell that encodes one modality's frame features together with the cross-modal action
content that CFEM (:mod:`.mmixer_cfem`) read for it from the other modalities.

Reconstructed from the papers' description (the gates and candidate see the frame feature, the
content and the previous state); the gate layout follows PyTorch's ``nn.GRUCell`` so that, with
the content path off or the content zero, the MCU *is* a GRU cell with the same weights.

For modality m with frame features x_t ∈ R^D, content c_t ∈ R^C (constant over t for global
content) and hidden state h_{t-1} ∈ R^H (h_0 = 0)::

    r_t = σ(W_ir x_t + U_r c_t + b_ir + W_hr h_{t-1} + b_hr)             reset gate
    z_t = σ(W_iz x_t + U_z c_t + b_iz + W_hz h_{t-1} + b_hz)             update gate
    n_t = tanh(W_in x_t + U_n c_t + b_in + r_t ⊙ (W_hn h_{t-1} + b_hn))   candidate
    h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}

i.e. a GRU whose input is [x_t ; c_t], with weight_ih = [W_i | U]. ``cross_modal=False`` drops
U (no content): the plain GRU  r, z, n, h  above with every U·c term removed.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


class MCUCell(nn.Module):
    """One modality's MCU: a GRU over [frame feature ; cross-modal content].

    Args:
        input_dim: D, width of the modality's frame features.
        hidden_dim: H, width of the recurrent state (and of the branch feature).
        content_dim: C, width of the cross-modal content (ignored when ``cross_modal`` is False).
        cross_modal: False builds a plain GRU cell on x alone (no U weights).

    Parameters (names as in ``nn.GRUCell``, gates stacked in the order r, z, n):
        weight_ih [3H, D], bias_ih [3H], weight_hh [3H, H], bias_hh [3H], and, when cross_modal,
        weight_ch [3H, C] (U, no bias: b_i* already covers it). 3H(D + H + 2) + 3HC parameters.
    """

    def __init__(self, input_dim: int, hidden_dim: int, content_dim: int = 0, cross_modal: bool = True) -> None:
        super().__init__()
        if input_dim <= 0 or hidden_dim <= 0:
            raise ValueError(f"input_dim and hidden_dim must be positive, got {input_dim}, {hidden_dim}")
        if cross_modal and content_dim <= 0:
            raise ValueError(f"a cross-modal MCU needs content_dim > 0, got {content_dim}")
        self.input_dim = input_dim
        self.hidden_dim = hidden_dim
        self.cross_modal = cross_modal
        self.content_dim = content_dim if cross_modal else 0
        self.weight_ih = nn.Parameter(torch.empty(3 * hidden_dim, input_dim))
        self.bias_ih = nn.Parameter(torch.empty(3 * hidden_dim))
        self.weight_hh = nn.Parameter(torch.empty(3 * hidden_dim, hidden_dim))
        self.bias_hh = nn.Parameter(torch.empty(3 * hidden_dim))
        self.weight_ch = nn.Parameter(torch.empty(3 * hidden_dim, content_dim)) if cross_modal else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """U(-1/√H, 1/√H) for every weight and bias, as ``nn.GRUCell``."""
        bound = 1.0 / math.sqrt(self.hidden_dim)
        for param in self.parameters():
            nn.init.uniform_(param, -bound, bound)

    def input_gates(self, x: torch.Tensor, content: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The input and content terms of all gates for all steps at once.

        Args:
            x: [B, T, D] frame features.
            content: [B, C] (same for every step) or [B, T, C]; required iff ``cross_modal``.
        Returns:
            [B, T, 3H]: W_i x_t + b_i + U c_t, stacked r, z, n.
        """
        gates = F.linear(x, self.weight_ih, self.bias_ih)
        if self.weight_ch is None:
            if content is not None:
                raise ValueError("this MCU was built with cross_modal=False and takes no content")
            return gates
        if content is None:
            raise ValueError("a cross-modal MCU needs the content c_t (pass zeros for none)")
        content_gates = F.linear(content, self.weight_ch)
        if content_gates.dim() == 2:
            content_gates = rearrange(content_gates, "b g -> b 1 g")
        return gates + content_gates

    def step(self, input_gates: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """One recurrence step: [B, 3H] input gates (from :meth:`input_gates`), [B, H] h_{t-1} -> [B, H] h_t."""
        gi_r, gi_z, gi_n = input_gates.chunk(3, dim=-1)
        gh_r, gh_z, gh_n = F.linear(hidden, self.weight_hh, self.bias_hh).chunk(3, dim=-1)
        reset = torch.sigmoid(gi_r + gh_r)
        update = torch.sigmoid(gi_z + gh_z)
        candidate = torch.tanh(gi_n + reset * gh_n)
        return (1.0 - update) * candidate + update * hidden

    def forward(self, x: torch.Tensor, content: Optional[torch.Tensor] = None,
                hidden: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Run the cell over a sequence.

        Args:
            x: [B, T, D] frame features.
            content: [B, C] or [B, T, C] cross-modal content (None when ``cross_modal`` is False).
            hidden: optional [B, H] initial state (zeros by default).
        Returns:
            [B, T, H] the states h_1 .. h_T.
        """
        gates = self.input_gates(x, content)
        if hidden is None:
            hidden = x.new_zeros(x.shape[0], self.hidden_dim)
        states = []
        for t in range(x.shape[1]):
            hidden = self.step(gates[:, t], hidden)
            states.append(hidden)
        return torch.stack(states, dim=1)
