"""The bidirectional GRU encoder of HaLP (Shah et al., CVPR 2023), after anshulbshah/HaLP ``moco/GRU.py``.

Each frame's joints of both bodies are one vector (V * C * M = 25 * 3 * 2 = 150 on NTU), normalised by
an input BatchNorm1d over those 150 features (statistics over the batch and the frames), then a
3-layer bidirectional GRU of hidden size 1024 reads the frames. The clip feature is 2048-d; HaLP's
projection MLP (2048 -> 2048 -> 128) belongs to the objective, not to this encoder.

Feature order: upstream builds the frame vector from ``[N, C, T, V, M]`` by moving T first and
flattening (V, C, M), so the body index varies fastest: ``(v c m)``. The same order is used here, so
the input BatchNorm's 150 channels (and the GRU's first input weights) line up with a HaLP checkpoint.

Readouts (``readout``):

- ``"final_states"`` (default): the last layer's forward state after the last frame and its backward
  state after the first frame (both directions have then read the whole clip), concatenated; this
  is the "last hidden" of a bidirectional GRU (PyTorch's ``h_n`` of the last layer).
- ``"upstream_stepwise"``: what HaLP's code computes. It feeds the GRU one frame at a time, passing
  the hidden state on, and takes the output at the last frame. With one-frame inputs the "reverse"
  direction also runs forwards in time, so the upstream model is in effect two causal GRUs per
  layer, not a bidirectional one (every feature depends on past frames only). Kept for loading HaLP
  checkpoints and reproducing their features; it costs T sequential GRU calls.

Initialisation as HaLP's ``weights_init_gru``: every 2-D weight of the GRU and of the classifier
Xavier-uniform (the three gates of a ``weight_ih`` / ``weight_hh`` together), biases and the input
BatchNorm at PyTorch's defaults.

Parameters (H hidden, L layers, F = V * C * M inputs): input BN 2F; GRU, per direction,
``3H (F + H + 2)`` in the first layer and ``3H (2H + H + 2)`` in each later one. Defaults (F = 150,
H = 1024, L = 3): 300 + 7,225,344 + 2 * 9,443,328 * 2 = 44,998,956 without a classifier.
"""

from __future__ import annotations

from typing import Tuple

import torch
from einops import rearrange
from torch import nn

from ...registry import register_model
from ..encoder_contract import Encoder
from ..features import EncoderOutput
from ..heads import LinearHead

# HaLP options/options_pretraining.py bi_gru_model_arguments: 3 layers, hidden 1024, 150 inputs
# (2 bodies x 25 joints x 3 coordinates).
BIGRU_HIDDEN_SIZE = 1024
BIGRU_NUM_LAYERS = 3
READOUTS: Tuple[str, ...] = ("final_states", "upstream_stepwise")


class BiGRU(Encoder):
    """HaLP's bidirectional GRU skeleton encoder.

    Input [N, M, T, V, C] float32 (batch key "skeleton", M = ``max_bodies``, V = ``num_joints``,
    C = ``in_channels``). ``forward_features`` gives ``sequence`` [N, T, 2H] (the last layer's
    outputs, both directions), ``pooled`` [N, 2H] (see ``readout`` in the module docstring),
    no spatial map. ``forward`` gives logits (``num_classes=0``: the pooled feature).

    Args:
        num_classes: classifier outputs (0: no classifier).
        num_joints, in_channels, max_bodies: V, C and M; the GRU reads V * C * M features per frame.
        hidden_size: H, per direction.
        num_layers: stacked bidirectional layers.
        drop_rate: dropout before the classifier (none upstream).
        readout: ``"final_states"`` or ``"upstream_stepwise"``.
    """

    input_keys = ("skeleton",)

    def __init__(
        self,
        num_classes: int = 60,
        num_joints: int = 25,
        in_channels: int = 3,
        max_bodies: int = 2,
        hidden_size: int = BIGRU_HIDDEN_SIZE,
        num_layers: int = BIGRU_NUM_LAYERS,
        drop_rate: float = 0.0,
        readout: str = "final_states",
    ) -> None:
        super().__init__()
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, not {readout!r}")
        self.num_joints = num_joints
        self.in_channels = in_channels
        self.max_bodies = max_bodies
        self.in_features = num_joints * in_channels * max_bodies
        self.hidden_size = hidden_size
        self.readout = readout
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.num_features = 2 * hidden_size
        self.input_norm = nn.BatchNorm1d(self.in_features)
        self.gru = nn.GRU(self.in_features, hidden_size, num_layers=num_layers, bidirectional=True,
                          batch_first=True)
        self.head = self.build_classifier(num_classes) if num_classes > 0 else None
        self.reset_parameters()

    def build_classifier(self, num_classes: int) -> LinearHead:
        """Dropout + Linear(2H, num_classes), Xavier-uniform weights (HaLP's ``weights_init_gru``)."""
        head = LinearHead(self.num_features, num_classes, self.drop_rate)
        nn.init.xavier_uniform_(head.fc.weight)
        return head

    def reset_parameters(self) -> None:
        """Xavier-uniform GRU weight matrices; biases keep PyTorch's uniform init."""
        for name, param in self.gru.named_parameters():
            if param.dim() == 2:
                nn.init.xavier_uniform_(param)

    def frame_vectors(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, M, T, V, C] -> normalised frame vectors [N, T, V * C * M] (body index fastest)."""
        n, m, t, v, c = x.shape
        if (m, v, c) != (self.max_bodies, self.num_joints, self.in_channels):
            raise ValueError(f"BiGRU was built for M, V, C = {self.max_bodies}, {self.num_joints}, "
                             f"{self.in_channels}; got {m}, {v}, {c} (input [N, M, T, V, C])")
        frames = self.input_norm(rearrange(x, "n m t v c -> n (v c m) t"))
        return rearrange(frames, "n f t -> n t f")

    def _stepwise(self, frames: torch.Tensor) -> torch.Tensor:
        """HaLP's frame-by-frame loop: [N, T, F] -> [N, T, 2H], every direction causal."""
        outputs = []
        state = None
        for t in range(frames.shape[1]):
            out, state = self.gru(frames[:, t:t + 1], state)
            outputs.append(out)
        return torch.cat(outputs, dim=1)

    def forward_features(self, x: torch.Tensor) -> EncoderOutput:
        """x: [N, M, T, V, C] -> EncoderOutput (sequence [N, T, 2H], pooled [N, 2H])."""
        frames = self.frame_vectors(x)
        h = self.hidden_size
        if self.readout == "final_states":
            sequence, _ = self.gru(frames)
            pooled = torch.cat([sequence[:, -1, :h], sequence[:, 0, h:]], dim=-1)
        else:
            sequence = self._stepwise(frames)
            pooled = sequence[:, -1]
        return EncoderOutput(sequence=sequence, pooled=pooled)


@register_model("bigru", modality="skeleton")
def bigru(num_classes: int = 60, **kwargs: object) -> BiGRU:
    """HaLP's encoder: input BN over 150, 3-layer bidirectional GRU (1024), 2048-d feature;
    44,998,956 parameters without a classifier, 45,121,896 at 60 classes."""
    return BiGRU(num_classes=num_classes, **kwargs)  # type: ignore[arg-type]
