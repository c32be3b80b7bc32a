"""X-ShiftNet: EPAM-Net's RGB and pose-heatmap backbones (X3D without temporal kernels, plus TSM).

Architecture from ``../shared/specs/multimodal.md`` (EPAM-Net; official
``mmaction/models/backbones/x3dTemporalshift.py`` and ``x3dTShiftPose.py``): a 1x3x3 stem
(X3D's 5x1x1 temporal stem removed), stages of :class:`XShiftBlock` (residual temporal shift,
SE on even-index blocks), and a 1x1 ``conv5``. No layer strides in time.

=============  =====================================  =======================
               RGB (X3D-M expansion)                  pose heatmaps
=============  =====================================  =======================
input          (N, 3, 16, 224, 224)                   (N, 17, 48, 56, 56)
stem stride    2                                      1
blocks         ceil(2.2 * [1, 2, 5, 3]) = [3,5,11,7]  [5, 11, 7]
widths         24 / 48 / 96 / 192                     24 / 48 / 96
bottlenecks    2.25 x width: 54 / 108 / 216 / 432     54 / 108 / 216
conv5          192 -> 432                             96 -> 216
fold_div       8 (1/4 of channels move)               4 (1/2 move)
output         (N, 432, 16, 7, 7)                     (N, 216, 48, 7, 7)
params         1,980,030                              519,580
=============  =====================================  =======================

Smaller clips work unchanged (any T; H, W are divided by 32 for RGB, by 8 for pose).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Tuple

import torch
from torch import nn

from ...registry import register_model
from ..encoder_contract import Encoder
from ..features import EncoderOutput
from ..heads import LinearHead
from .xshiftnet_blocks import XShiftBlock, conv_bn, make_stage, round_repeats, round_width

# X3D-M expansion factors (Feichtenhofer 2020, Table 2), as used by EPAM-Net's RGB stream.
X3D_M_GAMMA_W, X3D_M_GAMMA_B, X3D_M_GAMMA_D = 1.0, 2.25, 2.2
X3D_BASE_WIDTH = 24
X3D_BASE_BLOCKS = (1, 2, 5, 3)
# EPAM-Net heads: global average pool, dropout 0.5, linear (mmaction2 I3DHead init: N(0, 0.01) weights).
EPAM_HEAD_DROPOUT = 0.5
EPAM_HEAD_INIT_STD = 0.01


@dataclass(frozen=True)
class XShiftNetSpec:
    """Everything that shapes an X-ShiftNet.

    Attributes:
        in_channels: input channels (3 RGB, 17 COCO joint heatmaps).
        stem_stride: spatial stride of the 1x3x3 stem.
        widths: output width of each stage.
        blocks: number of blocks per stage.
        bottleneck_factor: depthwise width = round(factor * stage width) (X3D's gamma_b).
        stage_stride: spatial stride of every stage's first block.
        fold_div: temporal-shift fold divisor (``None``: no shift).
        temporal_kernel: temporal size of the depthwise kernels (1 = X-ShiftNet; 3 = X3D-like).
    """

    in_channels: int
    stem_stride: int
    widths: Tuple[int, ...]
    blocks: Tuple[int, ...]
    bottleneck_factor: float = X3D_M_GAMMA_B
    stage_stride: int = 2
    fold_div: Optional[int] = 8
    temporal_kernel: int = 1

    @property
    def bottlenecks(self) -> Tuple[int, ...]:
        return tuple(int(round(w * self.bottleneck_factor)) for w in self.widths)

    @property
    def out_channels(self) -> int:
        """conv5 width: ``gamma_b`` times the last stage width (432 RGB, 216 pose)."""
        return int(round(self.widths[-1] * self.bottleneck_factor))

    @property
    def spatial_reduction(self) -> int:
        return self.stem_stride * self.stage_stride ** len(self.widths)


def rgb_spec(fold_div: Optional[int] = 8, in_channels: int = 3) -> XShiftNetSpec:
    """EPAM-Net's RGB stream: X3D-M widths and depths, stem stride 2, fold_div 8."""
    width = round_width(X3D_BASE_WIDTH, X3D_M_GAMMA_W)
    widths = tuple(round_width(width * 2 ** i) for i in range(len(X3D_BASE_BLOCKS)))
    blocks = tuple(round_repeats(b, X3D_M_GAMMA_D) for b in X3D_BASE_BLOCKS)
    return XShiftNetSpec(in_channels, stem_stride=2, widths=widths, blocks=blocks, fold_div=fold_div)


def pose_spec(fold_div: Optional[int] = 4, in_channels: int = 17) -> XShiftNetSpec:
    """EPAM-Net's pose stream: 3 stages (5, 11, 7) of widths 24/48/96, stem stride 1, fold_div 4."""
    return XShiftNetSpec(in_channels, stem_stride=1, widths=(24, 48, 96), blocks=(5, 11, 7), fold_div=fold_div)


class XShiftNet(nn.Module):
    """X-ShiftNet backbone: [N, C_in, T, H, W] -> feature map [N, D, T, H / r, W / r].

    Modules are named like the official ones (``conv1_s``, ``layer1`` ... ``layerK``, ``conv5``).
    Initialisation as mmaction2's X3D: Kaiming-normal (fan_out) convs, BN weight 1 / bias 0, and with
    ``zero_init_residual`` the last BN of every residual branch starts at 0 (each block starts as
    ReLU(shortcut), so the shift only acts once that BN has learned a non-zero scale).
    """

    def __init__(self, spec: XShiftNetSpec, zero_init_residual: bool = True) -> None:
        super().__init__()
        self.spec = spec
        stem_width = spec.widths[0]
        self.conv1_s = conv_bn(spec.in_channels, stem_width, (1, 3, 3),
                               stride=(1, spec.stem_stride, spec.stem_stride), relu=True)
        in_ch = stem_width
        self.layer_names = []
        for i, (width, bottleneck, n) in enumerate(zip(spec.widths, spec.bottlenecks, spec.blocks)):
            name = f"layer{i + 1}"
            self.add_module(name, make_stage(in_ch, width, bottleneck, n, spec.stage_stride,
                                             spec.fold_div, spec.temporal_kernel))
            self.layer_names.append(name)
            in_ch = width
        self.conv5 = conv_bn(in_ch, spec.out_channels, (1, 1, 1), relu=True)
        self.out_channels = spec.out_channels
        self.init_weights(zero_init_residual)

    def init_weights(self, zero_init_residual: bool = True) -> None:
        """mmaction2 X3D initialisation (see the class docstring)."""
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, XShiftBlock):
                    nn.init.zeros_(m.conv3[1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: float [N, C_in, T, H, W] -> float [N, D, T, H', W'] (D = 432 RGB / 216 pose)."""
        if x.dim() != 5 or x.shape[1] != self.spec.in_channels:
            raise ValueError(f"XShiftNet expects [N, {self.spec.in_channels}, T, H, W], got {tuple(x.shape)}")
        x = self.conv1_s(x)
        for name in self.layer_names:
            x = getattr(self, name)(x)
        return self.conv5(x)


def encoder_output_from_map(fmap: torch.Tensor, aux: Optional[dict] = None) -> EncoderOutput:
    """Pool a map [B, D, T, H, W] into EncoderOutput(sequence [B, T, D], pooled [B, D], spatial = the map)."""
    sequence = fmap.mean(dim=(3, 4)).transpose(1, 2)
    return EncoderOutput(sequence=sequence, pooled=sequence.mean(dim=1), spatial=fmap, aux=aux)


def epam_head(in_features: int, num_classes: int, drop_rate: float = EPAM_HEAD_DROPOUT) -> LinearHead:
    """EPAM-Net's head on the average-pooled feature: dropout, Linear (N(0, 0.01) weights).

    [B, D] -> [B, num_classes].
    """
    return LinearHead(in_features, num_classes, drop_rate, init_std=EPAM_HEAD_INIT_STD)


class XShiftNetClassifier(Encoder):
    """One X-ShiftNet stream with its head (EPAM-Net's stage-1 single-stream model).

    Args:
        spec: the backbone (:func:`rgb_spec` or :func:`pose_spec`).
        num_classes: classes of the linear head (0: no head; ``forward`` gives the pooled feature).
        drop_rate: dropout before the head (EPAM: 0.5).
        zero_init_residual: see :class:`XShiftNet`.
    """

    input_keys: Tuple[str, ...] = ("rgb",)

    def __init__(self, spec: XShiftNetSpec, num_classes: int = 60, drop_rate: float = EPAM_HEAD_DROPOUT,
                 zero_init_residual: bool = True) -> None:
        super().__init__()
        self.backbone = XShiftNet(spec, zero_init_residual)
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.num_features = self.backbone.out_channels  # width of EncoderOutput.pooled
        self.head = self.build_classifier(num_classes) if num_classes > 0 else None

    def build_classifier(self, num_classes: int) -> LinearHead:
        """EPAM-Net's head: dropout, Linear."""
        return epam_head(self.num_features, num_classes, self.drop_rate)

    def forward_features(self, x: torch.Tensor) -> EncoderOutput:
        """x: float [N, C_in, T, H, W] -> EncoderOutput(sequence [N, T, D], pooled [N, D], spatial [N, D, T, h, w])."""
        return encoder_output_from_map(self.backbone(x))


class XShiftNetRGB(XShiftNetClassifier):
    """X-ShiftNet RGB stream + head: reads batch key "rgb" [N, 3, T, H, W]."""

    input_keys = ("rgb",)


class XShiftNetPose(XShiftNetClassifier):
    """X-ShiftNet pose stream + head: reads batch key "pose_heatmap" [N, 17, T, H, W]."""

    input_keys = ("pose_heatmap",)


def _with_options(spec: XShiftNetSpec, temporal_kernel: int) -> XShiftNetSpec:
    return spec if temporal_kernel == 1 else replace(spec, temporal_kernel=temporal_kernel)


@register_model("xshiftnet_rgb", modality="rgb")
def xshiftnet_rgb(num_classes: int = 60, in_channels: int = 3, drop_rate: float = EPAM_HEAD_DROPOUT,
                  fold_div: Optional[int] = 8, temporal_kernel: int = 1) -> XShiftNetRGB:
    """X-ShiftNet RGB classifier (EPAM-Net's RGB stream, stage 1). ``temporal_kernel=3, fold_div=None`` is X3D-like."""
    return XShiftNetRGB(_with_options(rgb_spec(fold_div, in_channels), temporal_kernel), num_classes, drop_rate)


@register_model("xshiftnet_pose", modality="pose")
def xshiftnet_pose(num_classes: int = 60, in_channels: int = 17, drop_rate: float = EPAM_HEAD_DROPOUT,
                   fold_div: Optional[int] = 4, temporal_kernel: int = 1) -> XShiftNetPose:
    """X-ShiftNet pose-heatmap classifier (EPAM-Net's pose stream, stage 1)."""
    return XShiftNetPose(_with_options(pose_spec(fold_div, in_channels), temporal_kernel), num_classes, drop_rate)
