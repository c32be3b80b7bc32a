"""PSUMNet: part streams (body, hands, legs) on a unified 12-channel input.

Follows shared/specs/skeleton-gcn.md, checked against skelemoa/psumnet@8097774
(``model/psumnet.py``, ``graph/ntu_rgb_d.py``, ``feeders/feeder_ntu.py``, ``ensemble.py``):

- input [N, M, T, 25, 12]: channels [joint, bone, joint velocity, bone velocity] x (x, y, z),
  in the global frame; each stream selects its joints (not re-centred);
- each stream: BatchNorm1d over M*V*12, then CTR-GCN-like blocks
  ``ReLU(MS-TCN(GCN(x)) + residual(x))`` (the first block without residual), global average
  pool over time, joints and persons, a linear classifier;
- GCN: three channel-wise topology refinement convolutions (CTRGC) on CTR-GCN's
  (I, colnorm(In), colnorm(Out)) partition, a learnable graph and one shared alpha
  initialised 0; relation width R = C_in / 8 (R = 1 for the 12-channel first layer);
- body 10 blocks (64 x4, 128 s2 x3, 256 s2 x3), hand 6 (64, 128 s2, 128, 128, 256 s2, 256),
  leg 4 (64, 128 s2, 128, 256 s2);
- the streams' logits are summed with per-benchmark weights (``ensemble.py``).

The classifier of :class:`PSUMNet` is its streams' classifiers together (each stream's dropout
and Linear, and the weighted sum): ``num_classes=0`` builds none of them, ``reset_classifier``
replaces all of them, and ``pre_logits`` gives the streams' concatenated pooled features.

Deliberate fix: the released leg graph links the right hip to the left foot and the left
foot to SpineBase, and leaves the right foot unconnected. ``leg_graph="corrected"``
(default) uses the true tree (SpineBase - hip - knee - ankle - foot per side);
``leg_graph="official"`` restores the released edges. Both have 8 edges on 9 joints, so the
parameter count is the same.

Bones of the part streams: upstream computes each part stream's bones along the part's own
edges (``kinect_hand_pairs``, ``kinect_leg_pairs``). With ``part_bones="local"`` (default)
the hand and leg streams recompute their bone and bone-velocity channels from the joint
channels along their graph (so the hand tips 22 and 24 hang off the hands, and the official
leg graph also reproduces upstream's bones); ``part_bones="input"`` keeps the 25-joint
bones as given.

Joint layouts (``layout``, :mod:`.psumnet_parts`): ``"ntu25"`` (default) is the release's model;
on ``"nw_ucla20"``, ``"blazepose33"`` and ``"coco17"`` the body stream reads the whole layout on its
graph and the hand and leg streams read parts reconstructed from the layout's joint names (COCO-17
has no hand stream). The unified input is then [N, M, T, V, 12] with the layout's V.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np
import torch
from einops import rearrange
from torch import nn

from ...registry import register_model
from ..encoder_contract import Encoder
from ..features import EncoderOutput
from .channel_topology import channel_topology_sum
from .gcn_blocks import PointwiseConv2d, ctrgcn_classifier
from .graphs import ctrgcn_partition
from .hypergcn import MultiScaleTemporalConv
from .layouts import get_layout
from .psumnet_parts import (  # noqa: F401  (the part tables are part of this module's interface)
    HAND_EDGES_1BASED,
    HAND_JOINTS_1BASED,
    LEG_EDGES_CORRECTED_1BASED,
    LEG_EDGES_OFFICIAL_1BASED,
    LEG_JOINTS_1BASED,
    STREAMS,
    layout_streams,
    part_graph,
)

UNIFIED_CHANNELS = 12

# Block widths and strides per stream (model/psumnet.py: body l1..l10, hand l1,l5..l9,
# leg l1,l5,l6,l8).
STREAM_BLOCKS = {
    "body": ((64, 1), (64, 1), (64, 1), (64, 1), (128, 2), (128, 1), (128, 1), (256, 2), (256, 1), (256, 1)),
    "hand": ((64, 1), (128, 2), (128, 1), (128, 1), (256, 2), (256, 1)),
    "leg": ((64, 1), (128, 2), (128, 1), (256, 2)),
}

# Ensemble weights (body, hand, leg) per benchmark (README / ensemble.py of the release).
ENSEMBLE_WEIGHTS = {
    "ntu60_xsub": (2.0, 1.8, 0.7),
    "ntu60_xview": (2.1, 1.6, 0.7),
    "ntu120_xsub": (2.2, 1.5, 0.7),
    "ntu120_xset": (2.1, 2.0, 0.8),
}


def _init_conv(conv: nn.Conv2d) -> None:
    nn.init.kaiming_normal_(conv.weight, mode="fan_out")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def _conv_bn(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """1x1 conv (temporal stride) + BN, [B, C_in, T, V] -> [B, C_out, T/s, V]."""
    conv = PointwiseConv2d(in_channels, out_channels, stride=(stride, 1))
    _init_conv(conv)
    return nn.Sequential(conv, nn.BatchNorm2d(out_channels))


def local_bone_channels(x: torch.Tensor, edges: Sequence[tuple[int, int]]) -> torch.Tensor:
    """Recompute bone and bone-velocity channels of a unified input along ``edges``.

    Args:
        x: [N, M, T, V, 12] unified channels [joint, bone, joint velocity, bone velocity] x 3.
        edges: 0-based (child, parent); joints without an edge get a zero bone, and a later
            edge of the same child wins (upstream's loop semantics).

    Returns:
        [N, M, T, V, 12] with channels 3:6 = joint[child] - joint[parent] and 9:12 = the
        bone's next-frame difference (last frame 0); joints and joint velocity unchanged.
    """
    joints = x[..., 0:3]
    bones = torch.zeros_like(joints)
    for child, parent in edges:
        bones[..., child, :] = joints[..., child, :] - joints[..., parent, :]
    bone_velocity = torch.zeros_like(bones)
    bone_velocity[:, :, :-1] = bones[:, :, 1:] - bones[:, :, :-1]
    return torch.cat([joints, bones, x[..., 6:9], bone_velocity], dim=-1)


class ChannelTopologyGraphConv(nn.Module):
    """CTRGC for one subset: a per-channel refinement of the shared topology A_k.

    ``A_hat = alpha * conv4(tanh(mean_T conv1(x)[:, :, :, None] - mean_T conv2(x)[:, :, None, :])) + A_k``,
    ``y = einsum('ncuv,nctv->nctu', A_hat, conv3(x))``; R = 8 if C_in in {3, 6} else C_in // 8.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        relation = 8 if in_channels in (3, 6) else max(1, in_channels // 8)
        self.conv1 = nn.Conv2d(in_channels, relation, 1)
        self.conv2 = nn.Conv2d(in_channels, relation, 1)
        self.conv3 = nn.Conv2d(in_channels, out_channels, 1)
        self.conv4 = nn.Conv2d(relation, out_channels, 1)
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            _init_conv(conv)

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """x [B, C_in, T, V], adjacency [V, V], alpha [1] -> [B, C_out, T, V]."""
        q, k = self.conv1(x).mean(dim=2), self.conv2(x).mean(dim=2)  # [B, R, V]
        relation = torch.tanh(q.unsqueeze(-1) - k.unsqueeze(-2))  # [B, R, V, V]
        refined = self.conv4(relation) * alpha + adjacency
        return torch.einsum("ncuv,nctv->nctu", refined, self.conv3(x))


class CTRGraphConv(nn.Module):
    """Sum of CTRGC over the K = 3 subsets -> BN (gamma 1e-6) -> + down(x) -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, partition: np.ndarray) -> None:
        super().__init__()
        self.convs = nn.ModuleList(ChannelTopologyGraphConv(in_channels, out_channels) for _ in range(len(partition)))
        # torch.tensor copies: blocks built from one array must not share (and jointly update) one storage.
        self.adjacency = nn.Parameter(torch.tensor(np.asarray(partition), dtype=torch.float32))
        self.alpha = nn.Parameter(torch.zeros(1))
        self.down = _conv_bn(in_channels, out_channels) if in_channels != out_channels else nn.Identity()
        self.bn = nn.BatchNorm2d(out_channels)
        nn.init.constant_(self.bn.weight, 1e-6)
        nn.init.zeros_(self.bn.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C_in, T, V] -> [B, C_out, T, V]."""
        y = channel_topology_sum(x, self.convs, self.adjacency, self.alpha)
        return torch.relu_(self.bn(y) + self.down(x))  # a fresh sum: in place is safe


class PartBlock(nn.Module):
    """``ReLU(MS-TCN(CTRGraphConv(x)) + residual(x))``; ``residual=False`` drops the residual."""

    def __init__(self, in_channels: int, out_channels: int, partition: np.ndarray, stride: int = 1,
                 residual: bool = True) -> None:
        super().__init__()
        self.gcn = CTRGraphConv(in_channels, out_channels, partition)
        self.tcn = MultiScaleTemporalConv(out_channels, out_channels, stride, padding_mode="zeros")
        self.residual: nn.Module | None = None
        if residual:
            self.residual = (nn.Identity() if in_channels == out_channels and stride == 1
                             else _conv_bn(in_channels, out_channels, stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C_in, T, V] -> [B, C_out, T / stride, V]."""
        y = self.tcn(self.gcn(x))
        return torch.relu_(y if self.residual is None else y + self.residual(x))  # fresh (cat or sum)


class PSUMNetStream(Encoder):
    """One PSUMNet stream ("body", "hand" or "leg") on the unified input (batch key "skeleton").

    Args:
        stream: which part.
        num_classes: output classes (0: no classifier).
        num_persons: M (the input BatchNorm spans M*V*12).
        leg_graph: ``"corrected"`` or ``"official"`` (leg stream only).
        part_bones: ``"local"`` recomputes the part's bone channels along its own graph,
            ``"input"`` keeps them (body stream: always as given).
        drop_rate: dropout before the classifier.
        layout: the joint layout of the input (:func:`~.psumnet_parts.part_graph`: ``"ntu25"``, the
            release's parts; ``"nw_ucla20"``, ``"blazepose33"``, ``"coco17"`` (no hand stream)).
    """

    input_keys = ("skeleton",)
    classifier_name = "fc"

    def __init__(self, stream: str, num_classes: int = 60, num_persons: int = 2, leg_graph: str = "corrected",
                 part_bones: str = "local", drop_rate: float = 0.0, layout: str = "ntu25") -> None:
        super().__init__()
        if part_bones not in ("local", "input"):
            raise ValueError(f"part_bones must be 'local' or 'input', not {part_bones!r}")
        graph, joints = part_graph(stream, leg_graph, layout)
        self.layout = get_layout(layout).name
        self.num_joints = get_layout(layout).num_joints
        self.stream = stream
        self.num_classes = num_classes
        self.graph = graph
        self.num_persons = num_persons
        self.recompute_bones = part_bones == "local" and stream != "body"
        self.register_buffer("joint_index", torch.tensor(joints, dtype=torch.long), persistent=False)
        self.data_bn = nn.BatchNorm1d(num_persons * graph.num_joints * UNIFIED_CHANNELS)
        partition = ctrgcn_partition(graph)
        blocks = []
        in_width = UNIFIED_CHANNELS
        for index, (width, stride) in enumerate(STREAM_BLOCKS[stream]):
            blocks.append(PartBlock(in_width, width, partition, stride, residual=index > 0))
            in_width = width
        self.blocks = nn.ModuleList(blocks)
        self.num_features = in_width
        self.drop = nn.Dropout(drop_rate)
        self.fc = self.build_classifier(num_classes) if num_classes > 0 else None

    def build_classifier(self, num_classes: int) -> nn.Linear:
        """Linear(D, num_classes), weights N(0, sqrt(2 / num_classes)), zero bias (as the release)."""
        return ctrgcn_classifier(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> EncoderOutput:
        """x float32 [N, M, T, V, 12] (V = 25 for ntu25) -> EncoderOutput.

        ``sequence`` [N, T/4, 256], ``pooled`` [N, 256], ``spatial`` [N, 256, T/4, V_part]
        (the stream's joints in its own order, persons averaged).
        """
        n, m, _, v, c = x.shape
        if m != self.num_persons or v != self.num_joints or c != UNIFIED_CHANNELS:
            raise ValueError(f"expected [N, {self.num_persons}, T, {self.num_joints}, {UNIFIED_CHANNELS}] input "
                             f"({self.layout}), got {tuple(x.shape)}")
        x = x.index_select(3, self.joint_index)
        if self.recompute_bones:
            x = local_bone_channels(x, self.graph.edges)
        x = self.data_bn(rearrange(x, "n m t v c -> n (m v c) t"))
        x = rearrange(x, "n (m v c) t -> (n m) c t v", m=m, c=UNIFIED_CHANNELS)
        for block in self.blocks:
            x = block(x)
        joints = rearrange(x, "(n m) d t v -> n m d t v", n=n).mean(dim=1)
        return EncoderOutput(
            sequence=rearrange(joints.mean(dim=-1), "n d t -> n t d"),
            pooled=joints.mean(dim=(-1, -2)),
            spatial=joints,
        )

    def forward_head(self, feats: EncoderOutput, pre_logits: bool = False) -> torch.Tensor:
        """EncoderOutput -> logits [N, num_classes] (dropout, fc); ``pooled`` with ``pre_logits`` or no fc."""
        if pre_logits or self.fc is None:
            return feats.pooled
        return self.fc(self.drop(feats.pooled))


class PSUMNet(Encoder):
    """Several PSUMNet streams whose logits are summed with ensemble weights.

    Features: ``pooled`` and ``sequence`` concatenate the streams' features in ``streams``
    order ([N, 256 * S], [N, T/4, 256 * S]: concatenation, not an average, so that
    ``forward_head`` can apply each stream's own classifier); ``spatial`` is the body
    stream's joint tokens [N, 256, T/4, V] when "body" is among the streams, else the
    first stream's. ``forward_head`` returns ``sum_s weight_s * logits_s``.

    Upstream trains each stream alone and ensembles the saved scores; training this module
    end to end optimises the weighted sum instead.

    Args:
        num_classes: output classes (0: no stream has a classifier; ``forward`` gives the
            concatenated pooled features [N, 256 * S]).
        streams: which of "body", "hand", "leg"; None (default): every stream the layout provides
            (:func:`~.psumnet_parts.layout_streams`: all three, but body and leg on coco17).
        stream_weights: one weight per stream, or a benchmark key of ``ENSEMBLE_WEIGHTS``
            (default "ntu60_xsub": body 2, hand 1.8, leg 0.7).
        num_persons, leg_graph, part_bones, drop_rate, layout: as :class:`PSUMNetStream`.
    """

    input_keys = ("skeleton",)

    def __init__(self, num_classes: int = 60, streams: Optional[Sequence[str]] = None,
                 stream_weights: Sequence[float] | str = "ntu60_xsub", num_persons: int = 2,
                 leg_graph: str = "corrected", part_bones: str = "local", drop_rate: float = 0.0,
                 layout: str = "ntu25") -> None:
        super().__init__()
        streams = layout_streams(layout) if streams is None else tuple(streams)
        if not streams or len(set(streams)) != len(streams) or any(s not in STREAMS for s in streams):
            raise ValueError(f"streams must be distinct names from {STREAMS}, got {streams}")
        if isinstance(stream_weights, str):
            if stream_weights not in ENSEMBLE_WEIGHTS:
                raise ValueError(f"unknown benchmark {stream_weights!r}; known: {sorted(ENSEMBLE_WEIGHTS)}")
            table: Mapping[str, float] = dict(zip(STREAMS, ENSEMBLE_WEIGHTS[stream_weights]))
            weights = [table[s] for s in streams]
        else:
            weights = [float(w) for w in stream_weights]
            if len(weights) != len(streams):
                raise ValueError(f"{len(weights)} stream weights for {len(streams)} streams")
        self.streams = nn.ModuleDict({
            s: PSUMNetStream(s, num_classes, num_persons, leg_graph, part_bones, drop_rate, layout) for s in streams
        })
        self.register_buffer("stream_weights", torch.tensor(weights, dtype=torch.float32))
        self.num_features = sum(stream.num_features for stream in self.streams.values())
        self.num_classes = num_classes

    def get_classifier(self) -> Optional[nn.ModuleDict]:
        """{stream: its Linear}, None without classifiers."""
        if self.num_classes == 0:
            return None
        return nn.ModuleDict({name: stream.fc for name, stream in self.streams.items()})

    def reset_classifier(self, num_classes: int) -> None:
        """A fresh classifier in every stream (0: none)."""
        for stream in self.streams.values():
            stream.reset_classifier(num_classes)
        self.num_classes = int(num_classes)

    def forward_features(self, x: torch.Tensor) -> EncoderOutput:
        """x float32 [N, M, T, V, 12] -> EncoderOutput (streams concatenated, see class doc)."""
        outputs = {name: stream.forward_features(x) for name, stream in self.streams.items()}
        spatial_from = "body" if "body" in outputs else next(iter(outputs))
        return EncoderOutput(
            sequence=torch.cat([o.sequence for o in outputs.values()], dim=-1),
            pooled=torch.cat([o.pooled for o in outputs.values()], dim=-1),
            spatial=outputs[spatial_from].spatial,
        )

    def stream_logits(self, feats: EncoderOutput) -> dict[str, torch.Tensor]:
        """Each stream's unweighted logits [N, num_classes] from concatenated features."""
        if self.num_classes == 0:
            raise RuntimeError("this PSUMNet has no classifiers (num_classes=0): call reset_classifier(n) first")
        widths = [stream.num_features for stream in self.streams.values()]
        parts = torch.split(feats.pooled, widths, dim=-1)
        return {name: stream.fc(stream.drop(part)) for (name, stream), part in zip(self.streams.items(), parts)}

    def forward_head(self, feats: EncoderOutput, pre_logits: bool = False) -> torch.Tensor:
        """EncoderOutput -> weighted sum of stream logits [N, num_classes]; the concatenated
        pooled features [N, 256 * S] with ``pre_logits`` or without classifiers."""
        if pre_logits or self.num_classes == 0:
            return feats.pooled
        logits = self.stream_logits(feats).values()
        return sum(w * l for w, l in zip(self.stream_weights, logits))


@register_model("psumnet", modality="skeleton")
def psumnet(num_classes: int = 60, **kwargs: object) -> PSUMNet:
    """PSUMNet, body + hand + leg streams on the unified 12-channel input (about 2.93M parameters)."""
    return PSUMNet(num_classes=num_classes, **kwargs)


@register_model("psumnet_body", modality="skeleton")
def psumnet_body(num_classes: int = 60, **kwargs: object) -> PSUMNetStream:
    """PSUMNet body stream (the whole layout, 25 joints on ntu25; 10 blocks; about 1.45M parameters)."""
    return PSUMNetStream("body", num_classes=num_classes, **kwargs)


@register_model("psumnet_hand", modality="skeleton")
def psumnet_hand(num_classes: int = 60, **kwargs: object) -> PSUMNetStream:
    """PSUMNet hand stream (13 joints on ntu25, 6 blocks; about 0.98M parameters; none on coco17)."""
    return PSUMNetStream("hand", num_classes=num_classes, **kwargs)


@register_model("psumnet_leg", modality="skeleton")
def psumnet_leg(num_classes: int = 60, **kwargs: object) -> PSUMNetStream:
    """PSUMNet leg stream (9 joints on ntu25, 4 blocks; about 0.50M parameters)."""
    return PSUMNetStream("leg", num_classes=num_classes, **kwargs)
