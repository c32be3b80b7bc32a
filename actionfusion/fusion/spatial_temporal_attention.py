"""EPAM-Net's spatial-temporal attention (STA): pose features guide the RGB feature map.

As trained in the official code (``actionModels/attention_module.py``; formula in
``../shared/specs/multimodal.md``), CBAM-style spatial attention nested with an
efficient (ECA-style) temporal attention, 107 parameters in all:

    f_s = f_pose[:, :, 0:T_p:step]                  step = T_p / T_r (48 / 16 = 3 officially)
    A_S = sigmoid(BN(Conv_{1x7x7, 2 -> 1, no bias}([max_c f_s ; mean_c f_s])))   [N, 1, T_r, h, w]
    A_T = sigmoid(Conv1d_{k 7, pad 3, no bias}(AvgPool_HW(A_S)))                  [N, 1, T_r, 1, 1]
    f_r' = f_r + f_r * (A_S * A_T)

Deviation (only where the two maps differ in size, never at the official 7 x 7): the
2-channel descriptor ``[max_c ; mean_c]`` is resized (trilinear) to the RGB map's ``h x w``
so that small training clips (e.g. RGB 112 px -> 4 x 4 against pose 56 px -> 7 x 7) work.
"""

from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn

# Kernel sizes of the official STA (EPAM-Net attention_module.py, as trained).
STA_SPATIAL_KERNEL = 7
STA_TEMPORAL_KERNEL = 7
# Running-statistics momentum of the spatial gate's BatchNorm (attention_module.py BasicConv: 0.01, not torch's 0.1).
STA_BN_MOMENTUM = 0.01


def temporal_step(rgb_frames: int, pose_frames: int) -> int:
    """Index step taking ``rgb_frames`` of ``pose_frames`` (0, step, 2 step, ...); ValueError unless a multiple."""
    if rgb_frames <= 0 or pose_frames <= 0 or pose_frames % rgb_frames != 0:
        raise ValueError(
            f"pose frames ({pose_frames}) must be a positive multiple of RGB frames ({rgb_frames}) "
            "for EPAM-Net's spatial-temporal attention")
    return pose_frames // rgb_frames


class SpatialTemporalAttention(nn.Module):
    """STA: an attention map from pose features [N, C_p, T_p, h', w'] applied to RGB features [N, C_r, T_r, h, w].

    The map can be inspected with :meth:`attention_maps` and applied (or overridden) with
    :meth:`combine`; ``forward`` is ``combine(f_r, A_S * A_T)``.
    """

    def __init__(self, spatial_kernel: int = STA_SPATIAL_KERNEL, temporal_kernel: int = STA_TEMPORAL_KERNEL) -> None:
        super().__init__()
        self.spatial_conv = nn.Conv3d(2, 1, (1, spatial_kernel, spatial_kernel),
                                      padding=(0, spatial_kernel // 2, spatial_kernel // 2), bias=False)
        self.spatial_bn = nn.BatchNorm3d(1, momentum=STA_BN_MOMENTUM)
        self.temporal_conv = nn.Conv1d(1, 1, temporal_kernel, padding=temporal_kernel // 2, bias=False)
        for conv in (self.spatial_conv, self.temporal_conv):  # as EPAM-Net's init_weights
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")

    def attention_maps(self, pose_feats: torch.Tensor, rgb_shape: Tuple[int, int, int]) -> Tuple[torch.Tensor, torch.Tensor]:
        """The spatial and temporal maps.

        Args:
            pose_feats: float [N, C_p, T_p, h', w'].
            rgb_shape: (T_r, h, w) of the RGB map; T_p must be a multiple of T_r.
        Returns:
            A_S float [N, 1, T_r, h, w] and A_T float [N, 1, T_r, 1, 1], both in [0, 1].
        """
        frames, height, width = rgb_shape
        step = temporal_step(frames, pose_feats.shape[2])
        f_s = pose_feats[:, :, 0::step]
        descriptor = torch.cat([f_s.amax(dim=1, keepdim=True), f_s.mean(dim=1, keepdim=True)], dim=1)
        if descriptor.shape[-2:] != (height, width):
            descriptor = F.interpolate(descriptor, size=(frames, height, width), mode="trilinear", align_corners=False)
        a_s = torch.sigmoid(self.spatial_bn(self.spatial_conv(descriptor)))
        a_t = torch.sigmoid(self.temporal_conv(a_s.mean(dim=(3, 4))))  # [N, 1, T_r]
        return a_s, a_t[..., None, None]

    @staticmethod
    def combine(rgb_feats: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        """f_r + f_r * attention. rgb_feats [N, C_r, T, h, w], attention broadcastable [N, 1, T, h, w] -> [N, C_r, T, h, w]."""
        return rgb_feats + rgb_feats * attention

    def forward(self, rgb_feats: torch.Tensor, pose_feats: torch.Tensor) -> torch.Tensor:
        """rgb_feats [N, C_r, T_r, h, w], pose_feats [N, C_p, T_p, h', w'] -> attended RGB [N, C_r, T_r, h, w]."""
        if rgb_feats.shape[0] != pose_feats.shape[0]:
            raise ValueError(f"batch sizes differ: RGB {rgb_feats.shape[0]} vs pose {pose_feats.shape[0]}")
        a_s, a_t = self.attention_maps(pose_feats, tuple(rgb_feats.shape[2:]))
        return self.combine(rgb_feats, a_s * a_t)
