"""Depth-clip encoder: a compact 2D ResNet with temporal shift (TSM), or a timm frame encoder.

Input: the batch key ``"depth"``, float32 [N, 1, T, H, W] (normalised depth, e.g.
:func:`actionfusion.modalities.depth.depth_crop.normalize_depth`). Every frame goes through
the same 2D network (frames folded into the batch); time is modelled by

- ``backbone="tsm_resnet"`` (default): basic residual blocks (conv3x3-BN-ReLU-conv3x3-BN +
  identity) whose residual branch starts with a temporal shift (Lin et al., "TSM", ICCV 2019,
  the "residual shift" placement): ``2 * C // fold_div`` channels see frame t+1 / t-1, so a
  stack of B blocks has a temporal receptive field of 2B+1 frames at no parameter or FLOP cost;
- ``backbone=<timm name>`` (e.g. ``"resnet18"``): a timm 2D model built with ``in_chans=1``
  ("channel adaptation": timm builds a 1-channel stem; with ``pretrained=True`` it sums the RGB
  filters of the ImageNet stem), used per frame without temporal mixing;

then temporal average pooling. Outputs (:class:`EncoderOutput`): ``spatial`` [N, D, T, h, w],
``sequence`` [N, T, D] (spatial mean per frame), ``pooled`` [N, D] (mean over time).

Sizes. The defaults (widths 16-32-64-128, one block per stage, stem stride 2) are sized for the
synthetic 1x16x56x56 clips on a CPU (a batch-8 training step well under a second). At full NTU
scale use ``widths=(64, 128, 256, 512), depths=(2, 2, 2, 2)`` on 112x112 or larger depth crops
(a ResNet-18 with TSM), or ``backbone="resnet18"`` / ``"resnet50"``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from einops import rearrange
from torch import nn

from ...registry import register_model
from ..encoder_contract import Encoder
from ..features import EncoderOutput
from ..temporal_transformer import TemporalTransformer
from ..temporal_shift import temporal_shift

TSM_BACKBONE = "tsm_resnet"

# TSM's default: 1/8 of the channels shift each way (Lin et al. 2019, fold_div 8).
TSM_FOLD_DIV = 8


class ShiftBasicBlock(nn.Module):
    """ReLU(x' + BN(conv3x3(ReLU(BN(conv3x3(shift(x))))))), x' the (strided) identity.

    Works on frames folded into the batch, [(N T), C, H, W]; ``num_frames`` unfolds them for the
    shift. ``fold_div=None`` disables the shift (a plain 2D ResNet block).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, fold_div: int | None = TSM_FOLD_DIV) -> None:
        super().__init__()
        self.fold_div = fold_div
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        if stride != 1 or in_channels != out_channels:
            self.shortcut: nn.Module = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )
        else:
            self.shortcut = nn.Identity()
        nn.init.zeros_(self.bn2.weight)  # each block starts as (close to) the identity

    def shift(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        """x: [(N T), C, H, W] -> the same with ``2 C // fold_div`` channels moved one frame."""
        if self.fold_div is None:
            return x
        clip = rearrange(x, "(n t) c h w -> n c t h w", t=num_frames)
        return rearrange(temporal_shift(clip, self.fold_div), "n c t h w -> (n t) c h w")

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        """x: [(N T), C_in, H, W] -> [(N T), C_out, ceil(H / stride), ceil(W / stride)]."""
        h = torch.relu(self.bn1(self.conv1(self.shift(x, num_frames))))
        h = self.bn2(self.conv2(h))
        return torch.relu(h + self.shortcut(x))


class TSMResNet2D(nn.Module):
    """Stem (conv3x3 stride ``stem_stride``, BN, ReLU) then stages of :class:`ShiftBasicBlock`.

    Stage i has ``depths[i]`` blocks of width ``widths[i]``; every stage after the first halves
    H and W in its first block. Input [(N T), C_in, H, W] -> [(N T), widths[-1], h, w].
    """

    def __init__(
        self,
        in_channels: int = 1,
        widths: Sequence[int] = (16, 32, 64, 128),
        depths: Sequence[int] = (1, 1, 1, 1),
        stem_stride: int = 2,
        fold_div: int | None = TSM_FOLD_DIV,
    ) -> None:
        super().__init__()
        widths, depths = tuple(int(w) for w in widths), tuple(int(d) for d in depths)
        if len(widths) != len(depths) or not widths:
            raise ValueError(f"widths and depths must be non-empty and of equal length, got {widths}, {depths}")
        if min(widths) < 1 or min(depths) < 1:
            raise ValueError(f"widths and depths must be positive, got {widths}, {depths}")
        self.num_features = widths[-1]
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, stride=stem_stride, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        blocks = []
        c_in = widths[0]
        for stage, (width, depth) in enumerate(zip(widths, depths)):
            for i in range(depth):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(ShiftBasicBlock(c_in, width, stride, fold_div))
                c_in = width
        self.blocks = nn.ModuleList(blocks)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, frames: torch.Tensor, num_frames: int) -> torch.Tensor:
        """frames: [(N T), C_in, H, W] -> [(N T), D, h, w]."""
        h = self.stem(frames)
        for block in self.blocks:
            h = block(h, num_frames)
        return h


class TimmFrameEncoder(nn.Module):
    """A timm 2D model as a per-frame encoder: [(N T), C_in, H, W] -> [(N T), D, h, w] or [(N T), D]."""

    def __init__(self, name: str, in_channels: int = 1, pretrained: bool = False) -> None:
        super().__init__()
        import timm  # only this option needs it

        self.model = timm.create_model(name, pretrained=pretrained, num_classes=0, in_chans=in_channels)
        self.num_features = int(self.model.num_features)

    def forward(self, frames: torch.Tensor, num_frames: int) -> torch.Tensor:
        """frames: [(N T), C_in, H, W] -> a map [(N T), D, h, w] (CNNs) or a vector [(N T), D] (token models)."""
        feats = self.model.forward_features(frames)
        if feats.dim() == 4 and feats.shape[1] == self.num_features:
            return feats
        return self.model.forward_head(feats, pre_logits=True)


TEMPORAL_HEADS: tuple[str, ...] = ("transformer", "mean")
SPATIAL_POOLS: tuple[str, ...] = ("mean", "max")


class DepthTSM(Encoder):
    """Depth-clip classifier: per-frame 2D CNN with temporal shift, a temporal head, linear head.

    Args:
        num_classes: classifier outputs (0: no classifier; ``forward`` gives the pooled feature).
        in_channels: depth channels C (1).
        backbone: ``"tsm_resnet"`` (this module's CNN) or the name of a timm 2D model.
        widths, depths: stage widths and blocks per stage of the ``tsm_resnet`` backbone.
        stem_stride: stride of its stem convolution (2 for 56x56 crops; 1 keeps more detail).
        fold_div: ``2 C // fold_div`` channels shift in every block; ``None`` turns the shift off
            (the same CNN without temporal mixing: an ablation / benchmark baseline).
        drop_rate: dropout before the classifier.
        pretrained: timm backbones only (no effect offline unless weights are cached).
        temporal_head: ``"transformer"`` (default): one pre-norm transformer layer with a learned
            temporal position embedding over the frame features, pooled by a CLS token;
            ``"mean"``: TSM's plain temporal average. The shift only mixes neighbouring frames, so
            an average cannot tell an action from its reverse (sitting down from standing up): on
            the synthetic set the mean head stalled near 40% held-out top-1 after 28 epochs.
        temporal_depth, temporal_heads: layers and heads of the transformer head.
        spatial_pool: how each frame's feature map becomes a vector: ``"mean"`` (default) or
            ``"max"`` (the strongest response anywhere in the frame: a small object's evidence is
            not averaged away by the rest of the frame).
    """

    input_keys: tuple[str, ...] = ("depth",)
    classifier_name = "fc"

    def __init__(
        self,
        num_classes: int = 60,
        in_channels: int = 1,
        backbone: str = TSM_BACKBONE,
        widths: Sequence[int] = (16, 32, 64, 128),
        depths: Sequence[int] = (1, 1, 1, 1),
        stem_stride: int = 2,
        fold_div: int | None = TSM_FOLD_DIV,
        drop_rate: float = 0.0,
        pretrained: bool = False,
        temporal_head: str = "transformer",
        temporal_depth: int = 1,
        temporal_heads: int = 4,
        spatial_pool: str = "mean",
    ) -> None:
        super().__init__()
        if spatial_pool not in SPATIAL_POOLS:
            raise ValueError(f"spatial_pool must be one of {SPATIAL_POOLS}, not {spatial_pool!r}")
        self.spatial_pool = spatial_pool
        if temporal_head not in TEMPORAL_HEADS:
            raise ValueError(f"temporal_head must be one of {TEMPORAL_HEADS}, not {temporal_head!r}")
        self.in_channels = in_channels
        self.num_classes = num_classes
        if backbone == TSM_BACKBONE:
            self.backbone: nn.Module = TSMResNet2D(in_channels, widths, depths, stem_stride, fold_div)
        else:
            self.backbone = TimmFrameEncoder(backbone, in_channels, pretrained)
        self.num_features = int(self.backbone.num_features)
        self.temporal: nn.Module | None = (
            TemporalTransformer(self.num_features, depth=temporal_depth, heads=temporal_heads, mlp_ratio=2.0, dropout=0.1)
            if temporal_head == "transformer" else None
        )
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.fc = self.build_classifier(num_classes) if num_classes > 0 else None

    def build_classifier(self, num_classes: int) -> nn.Linear:
        """Linear(D, num_classes), PyTorch's default init."""
        return nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> EncoderOutput:
        """x: float32 [N, C, T, H, W] -> EncoderOutput(sequence [N, T, D], pooled [N, D], spatial [N, D, T, h, w]).

        ``spatial`` is None for timm token models (ViT-like), whose per-frame output is a vector.
        """
        if x.dim() != 5 or x.shape[1] != self.in_channels:
            raise ValueError(f"depth clips must be [N, {self.in_channels}, T, H, W], got {tuple(x.shape)}")
        num_frames = x.shape[2]
        frames = rearrange(x, "n c t h w -> (n t) c h w")
        feats = self.backbone(frames, num_frames)
        if feats.dim() == 4:
            spatial = rearrange(feats, "(n t) d h w -> n d t h w", t=num_frames)
            per_frame = spatial.amax(dim=(-2, -1)) if self.spatial_pool == "max" else spatial.mean(dim=(-2, -1))
            sequence = rearrange(per_frame, "n d t -> n t d")
        else:
            spatial = None
            sequence = rearrange(feats, "(n t) d -> n t d", t=num_frames)
        if self.temporal is None:
            return EncoderOutput(sequence=sequence, pooled=sequence.mean(dim=1), spatial=spatial)
        sequence, pooled = self.temporal(sequence)
        return EncoderOutput(sequence=sequence, pooled=pooled, spatial=spatial)

    def forward_head(self, feats: EncoderOutput, pre_logits: bool = False) -> torch.Tensor:
        """feats.pooled [N, D] -> logits [N, num_classes]; pooled itself with ``pre_logits`` or no fc."""
        if pre_logits or self.fc is None:
            return feats.pooled
        return self.fc(self.drop(feats.pooled))


@register_model("depth_tsm", modality="depth")
def depth_tsm(num_classes: int = 60, **kwargs: object) -> DepthTSM:
    """Depth clips [N, 1, T, H, W]: 2D ResNet with temporal shift (or a timm backbone), temporal head."""
    return DepthTSM(num_classes=num_classes, **kwargs)  # type: ignore[arg-type]


@register_model("tsm_frames", modality="rgb")
def tsm_frames(num_classes: int = 60, in_channels: int = 3, input_key: str = "rgb", **kwargs: object) -> DepthTSM:
    """Any frame clip [N, C, T, H, W] (RGB by default): the depth encoder's TSM CNN + temporal head, reading ``input_key``."""
    model = DepthTSM(num_classes=num_classes, in_channels=in_channels, **kwargs)  # type: ignore[arg-type]
    model.input_keys = (str(input_key),)
    return model
