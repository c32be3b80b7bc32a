"""Building blocks of X-ShiftNet (EPAM-Net's backbone): X3D bottlenecks with a residual temporal shift.

An X-ShiftNet block is an X3D block whose temporal kernel is removed and replaced by a
temporal shift (TSM) of the residual branch's input (``../shared/specs/multimodal.md``, EPAM-Net):

    x' = TSM(x)
    y  = ReLU(BN(Conv1x1(x')))
    y  = BN(DWConv_{1x3x3, stride s}(y))
    y  = SE(y)                  (even-index blocks of a stage only, ratio 1/16)
    y  = BN(Conv1x1(Swish(y)))
    out = ReLU(y + shortcut(x))  (the shortcut takes the *unshifted* x)

All tensors are ``[N, C, T, H, W]``; no layer strides in time, so ``T`` is kept end to end.
"""

from __future__ import annotations

import math
from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..temporal_shift import temporal_shift

# X3D (Feichtenhofer 2020; mmaction2 ``x3d.py``): widths rounded to multiples of 8,
# SE bottleneck = round_width(C, 1/16).
WIDTH_DIVISOR = 8
SE_RATIO = 1.0 / 16.0


def round_width(width: float, multiplier: float = 1.0, divisor: int = WIDTH_DIVISOR,
                min_width: Optional[int] = None) -> int:
    """X3D's channel rounding: ``width * multiplier`` to the nearest multiple of ``divisor``.

    Never below ``min_width`` (default ``divisor``) and never more than 10 % under the
    unrounded value (then one more ``divisor`` is added).
    """
    scaled = width * multiplier
    min_width = min_width or divisor
    rounded = max(min_width, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


def round_repeats(repeats: int, gamma_d: float) -> int:
    """X3D depth expansion: ``ceil(gamma_d * repeats)`` blocks in a stage."""
    return int(math.ceil(gamma_d * repeats))


class SqueezeExcite3d(nn.Module):
    """Squeeze-and-excitation over ``[N, C, T, H, W]``: global average, 1x1 conv, ReLU, 1x1 conv, sigmoid.

    Args:
        channels: C.
        ratio: the hidden width is ``round_width(C, ratio)`` (X3D: 1/16).
    """

    def __init__(self, channels: int, ratio: float = SE_RATIO) -> None:
        super().__init__()
        hidden = round_width(channels, ratio)
        self.fc1 = nn.Conv3d(channels, hidden, kernel_size=1, bias=True)
        self.fc2 = nn.Conv3d(hidden, channels, kernel_size=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: float [N, C, T, H, W] -> x scaled per (sample, channel), same shape."""
        w = x.mean(dim=(2, 3, 4), keepdim=True)
        w = self.fc2(torch.relu(self.fc1(w)))
        return x * torch.sigmoid(w)


class FrameConv3d(nn.Conv3d):
    """A Conv3d whose kernel spans one frame (``1 x kh x kw``, no temporal stride), run as a Conv2d
    over the ``N * T`` frames.

    Same parameters and state-dict layout as ``nn.Conv3d`` (weight ``[O, I / groups, 1, kh, kw]``),
    the same result to float rounding, but CPU training is faster: PyTorch runs depthwise 3D
    convolutions on a slow generic path (measured: the 1x3x3 depthwise conv forward + backward is
    2x faster as a 2D conv on one core). Kernels with a temporal extent use Conv3d as usual.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, C, T, H, W] -> [N, C_out, T, H', W']."""
        if self.kernel_size[0] != 1 or self.stride[0] != 1 or self.padding[0] != 0 or self.padding_mode != "zeros":
            return super().forward(x)
        n, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(n * t, c, h, w)
        y = F.conv2d(frames, self.weight.squeeze(2), self.bias, self.stride[1:], self.padding[1:],
                     self.dilation[1:], self.groups)
        return y.reshape(n, t, *y.shape[1:]).transpose(1, 2)


def conv_bn(in_ch: int, out_ch: int, kernel: tuple, stride: tuple = (1, 1, 1), groups: int = 1,
            relu: bool = False) -> nn.Sequential:
    """Conv3d (no bias, 'same' padding) + BatchNorm3d (+ ReLU)."""
    padding = tuple(k // 2 for k in kernel)
    layers: List[nn.Module] = [
        FrameConv3d(in_ch, out_ch, kernel, stride=stride, padding=padding, groups=groups, bias=False),
        nn.BatchNorm3d(out_ch),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class XShiftBlock(nn.Module):
    """One X-ShiftNet bottleneck block (see the module docstring).

    Args:
        in_channels: C_in of x.
        bottleneck: width of the depthwise layer (X3D: ``round(2.25 * out_channels)``).
        out_channels: C_out.
        spatial_stride: stride of the depthwise conv in H and W (1 or 2).
        fold_div: temporal shift fold divisor (``None``: no shift).
        use_se: squeeze-excitation after the depthwise conv.
        temporal_kernel: temporal size of the depthwise kernel; 1 (default) is X-ShiftNet, 3 gives
            stock X3D's 3x3x3 depthwise kernel (an option for comparisons, not EPAM-Net).
    """

    def __init__(self, in_channels: int, bottleneck: int, out_channels: int, spatial_stride: int = 1,
                 fold_div: Optional[int] = 8, use_se: bool = False, temporal_kernel: int = 1) -> None:
        super().__init__()
        self.fold_div = fold_div
        self.conv1 = conv_bn(in_channels, bottleneck, (1, 1, 1), relu=True)
        self.conv2 = conv_bn(bottleneck, bottleneck, (temporal_kernel, 3, 3),
                             stride=(1, spatial_stride, spatial_stride), groups=bottleneck)
        self.se = SqueezeExcite3d(bottleneck) if use_se else None
        self.swish = nn.SiLU()
        self.conv3 = conv_bn(bottleneck, out_channels, (1, 1, 1))
        self.downsample = None
        if spatial_stride != 1 or in_channels != out_channels:
            self.downsample = conv_bn(in_channels, out_channels, (1, 1, 1),
                                      stride=(1, spatial_stride, spatial_stride))
        self.relu = nn.ReLU(inplace=True)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """The residual branch on the (already shifted) input: [N, C_in, T, H, W] -> [N, C_out, T, H', W']."""
        y = self.conv2(self.conv1(x))
        if self.se is not None:
            y = self.se(y)
        return self.conv3(self.swish(y))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: float [N, C_in, T, H, W] -> [N, C_out, T, H / s, W / s]; the shortcut uses the unshifted x."""
        shifted = temporal_shift(x, self.fold_div) if self.fold_div else x
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.residual(shifted) + identity)


def make_stage(in_channels: int, out_channels: int, bottleneck: int, num_blocks: int, spatial_stride: int,
               fold_div: Optional[int], temporal_kernel: int = 1) -> nn.Sequential:
    """A stage of ``num_blocks`` blocks; the first strides and changes width; SE on blocks 0, 2, 4, ..."""
    blocks = [
        XShiftBlock(in_channels if i == 0 else out_channels, bottleneck, out_channels,
                    spatial_stride=spatial_stride if i == 0 else 1, fold_div=fold_div,
                    use_se=(i % 2 == 0), temporal_kernel=temporal_kernel)
        for i in range(num_blocks)
    ]
    return nn.Sequential(*blocks)
