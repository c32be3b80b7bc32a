"""Any timm 2D backbone as a per-frame clip encoder, optionally with a temporal shift (TSM) in its blocks.

A clip [N, C, T, H, W] is folded into N * T images, encoded by ``timm.create_model(name,
pretrained=False, num_classes=0)``, and unfolded again. With ``shift_fold_div`` set, a temporal
shift (:func:`actionfusion.modalities.temporal_shift.temporal_shift`) mixes neighbouring frames
inside the network, as in TSM (Lin et al. 2019):

* ResNet-style blocks (timm ``BasicBlock`` / ``Bottleneck``, or any block class of those names with
  a ``conv1``): the shift goes in front of ``conv1``, i.e. on the residual branch only (the
  identity path keeps the unshifted input; TSM's "residual shift").
* Any other block (outermost modules whose class name ends in ``Block``, ``Bottleneck``,
  ``InvertedResidual``, ``DepthwiseSeparableConv`` or ``EdgeResidual``): the block's input is
  shifted ("in-place shift"). Inputs are NCHW maps, ViT-style tokens [N * T, L, C], or NHWC maps
  for timm models that declare ``output_fmt == "NHWC"`` (e.g. Swin).

The shift modules learn the clip length from the encoder at every forward (``num_frames``).
"""

from __future__ import annotations

import re
from typing import List, Optional, Tuple

import torch
from einops import rearrange
from torch import nn

from ...registry import register_model
from ..encoder_contract import Encoder
from ..features import EncoderOutput
from ..temporal_shift import temporal_shift
from .xshiftnet import epam_head

RESIDUAL_BLOCK_NAMES = ("BasicBlock", "Bottleneck")
GENERIC_BLOCK_PATTERN = re.compile(r"(Block|Bottleneck|InvertedResidual|DepthwiseSeparableConv|EdgeResidual)$")


class FrameShift(nn.Module):
    """Temporal shift for per-frame tensors, then ``inner``.

    Input [N * T, C, H, W] ([N * T, H, W, C] with ``channels_last``, or tokens [N * T, L, C]) with
    ``num_frames = T`` set by the owner; channels are shifted along T as :func:`temporal_shift`
    does; output shape = ``inner``'s.
    """

    def __init__(self, fold_div: int, inner: nn.Module, channels_last: bool = False) -> None:
        super().__init__()
        if fold_div < 2:
            raise ValueError(f"fold_div must be >= 2, got {fold_div}")
        self.fold_div = fold_div
        self.inner = inner
        self.channels_last = channels_last
        self.num_frames = 1

    def shift(self, x: torch.Tensor) -> torch.Tensor:
        """x [N * T, C, H, W] (NHWC if ``channels_last``) or [N * T, L, C] -> same shape, shifted along T."""
        t = self.num_frames
        if x.shape[0] % t != 0:
            raise ValueError(f"batch {x.shape[0]} is not a multiple of num_frames {t}")
        if x.dim() == 4 and self.channels_last:
            clip = rearrange(x, "(n t) h w c -> n c t h w", t=t)
            return rearrange(temporal_shift(clip, self.fold_div), "n c t h w -> (n t) h w c")
        if x.dim() == 4:
            clip = rearrange(x, "(n t) c h w -> n c t h w", t=t)
            return rearrange(temporal_shift(clip, self.fold_div), "n c t h w -> (n t) c h w")
        if x.dim() == 3:
            clip = rearrange(x, "(n t) l c -> n c t l", t=t)
            return rearrange(temporal_shift(clip, self.fold_div), "n c t l -> (n t) l c")
        raise ValueError(f"FrameShift expects [N*T, C, H, W] or [N*T, L, C], got {tuple(x.shape)}")

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return self.inner(self.shift(x), *args, **kwargs)

    def extra_repr(self) -> str:
        return f"fold_div={self.fold_div}"


def insert_temporal_shift(model: nn.Module, fold_div: int, channels_last: bool = False) -> List[FrameShift]:
    """Put a :class:`FrameShift` into every block of ``model`` (see the module docstring); returns them.

    ``channels_last``: the generic blocks take NHWC maps (timm ``output_fmt == "NHWC"``).

    Raises ValueError when no block is recognised.
    """
    inserted: List[FrameShift] = []

    def visit(parent: nn.Module) -> None:
        for name, child in list(parent.named_children()):
            cls = type(child).__name__
            if cls in RESIDUAL_BLOCK_NAMES and isinstance(getattr(child, "conv1", None), nn.Module):
                shift = FrameShift(fold_div, child.conv1)
                child.conv1 = shift
                inserted.append(shift)
            elif GENERIC_BLOCK_PATTERN.search(cls):
                shift = FrameShift(fold_div, child, channels_last=channels_last)
                setattr(parent, name, shift)
                inserted.append(shift)
            else:
                visit(child)

    visit(model)
    if not inserted:
        raise ValueError(f"no residual or generic block found in {type(model).__name__} to insert a temporal shift")
    return inserted


class TimmFrameEncoder(Encoder):
    """Per-frame timm encoder (+ optional TSM) with a dropout + linear head.

    Args:
        backbone: a timm model name (``timm.list_models()``), built with ``pretrained=False``.
        num_classes: classes of the head (0: no head; ``forward`` gives the pooled feature).
        in_channels: image channels (``in_chans`` in timm).
        shift_fold_div: temporal shift fold divisor (``None``: frames are encoded independently).
        drop_rate: dropout before the head.
        **timm_kwargs: passed to ``timm.create_model``.
    """

    input_keys: Tuple[str, ...] = ("rgb",)

    def __init__(self, backbone: str = "resnet18", num_classes: int = 60, in_channels: int = 3,
                 shift_fold_div: Optional[int] = None, drop_rate: float = 0.5, **timm_kwargs) -> None:
        super().__init__()
        import timm  # heavy import, only when a timm encoder is built

        self.encoder = timm.create_model(backbone, pretrained=False, num_classes=0, in_chans=in_channels,
                                         **timm_kwargs)
        self.channels_last = str(getattr(self.encoder, "output_fmt", "NCHW")) == "NHWC"
        self.shifts = (insert_temporal_shift(self.encoder, shift_fold_div, self.channels_last)
                       if shift_fold_div else [])
        self.out_channels = int(getattr(self.encoder, "head_hidden_size", None) or self.encoder.num_features)
        self.num_features = self.out_channels  # width of EncoderOutput.pooled
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.in_channels = in_channels
        self.head = self.build_classifier(num_classes) if num_classes > 0 else None

    def build_classifier(self, num_classes: int) -> nn.Module:
        """Dropout, Linear (N(0, 0.01) weights, as EPAM-Net's heads)."""
        return epam_head(self.num_features, num_classes, self.drop_rate)

    def forward_features(self, x: torch.Tensor) -> EncoderOutput:
        """x: float [N, C, T, H, W] -> EncoderOutput(sequence [N, T, D], pooled [N, D],
        spatial [N, D', T, h, w] for CNNs (D' = the last map's width; None for token models))."""
        if x.dim() != 5 or x.shape[1] != self.in_channels:
            raise ValueError(f"TimmFrameEncoder expects [N, {self.in_channels}, T, H, W], got {tuple(x.shape)}")
        n, _, t = x.shape[:3]
        for shift in self.shifts:
            shift.num_frames = t
        fmap = self.encoder.forward_features(rearrange(x, "n c t h w -> (n t) c h w"))
        per_frame = self.encoder.forward_head(fmap, pre_logits=True)  # [N * T, D]
        sequence = rearrange(per_frame, "(n t) d -> n t d", n=n)
        spatial = None
        if fmap.dim() == 4:
            layout = "(n t) h w d" if self.channels_last else "(n t) d h w"
            spatial = rearrange(fmap, f"{layout} -> n d t h w", n=n)
        return EncoderOutput(sequence=sequence, pooled=sequence.mean(dim=1), spatial=spatial)


@register_model("timm_frames", modality="rgb")
def timm_frames(num_classes: int = 60, backbone: str = "resnet18", shift_fold_div: Optional[int] = None,
                in_channels: int = 3, drop_rate: float = 0.5, **timm_kwargs) -> TimmFrameEncoder:
    """A timm 2D backbone applied per frame (optionally TSM), average over time, linear head."""
    return TimmFrameEncoder(backbone, num_classes, in_channels, shift_fold_div, drop_rate, **timm_kwargs)
