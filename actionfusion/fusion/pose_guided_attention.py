"""EPAM-Net's spatial-temporal attention as a fusion option: any pose stream guides any RGB-like stream.

The pose stream's map ``[B, C_p, T_p, h', w']`` (e.g. an X-ShiftNet on pose heatmaps) becomes
EPAM's attention map (:class:`~.spatial_temporal_attention.SpatialTemporalAttention`, 107
parameters) over the RGB-like map ``[B, C_r, T_r, h, w]`` (RGB, depth). Per sample::

    f_r' = f_r + f_r * (A_S * A_T) * present_pose

so a sample without pose keeps its RGB features unchanged. Outputs: branches
``{rgb_key: GAP(f_r') [B, C_r], pose_key: pooled pose [B, C_p]}``, pooled = their concatenation.

Generalisations of the official module (EPAM-Net needs T_p a multiple of T_r and equal 7 x 7
maps): a pose map whose length is not a multiple of T_r is resampled to T_r frames first
(trilinear), and the STA resizes the spatial descriptor to the RGB map's size. Skeleton joint
tokens ``[B, D, T, V]`` have no image layout and are refused with an explicit error.
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .base import FusionFeatures, FusionOutput, PresenceMask, register_fusion
from .spatial_temporal_attention import SpatialTemporalAttention


@register_fusion("pose_guided_attention")
class PoseGuidedAttention(nn.Module):
    """EPAM's STA between an RGB-like map and a pose map; ``out_dim = D_rgb + D_pose``.

    Args:
        dims: feature widths; must hold ``rgb_key`` and ``pose_key``.
        rgb_key: the attended stream (``"rgb"``, or ``"depth"``).
        pose_key: the guiding stream (a pose-heatmap encoder's entry, e.g. ``"pose"``).
    """

    def __init__(self, dims: Mapping[str, int], rgb_key: str = "rgb", pose_key: str = "pose") -> None:
        super().__init__()
        missing = [key for key in (rgb_key, pose_key) if key not in dims]
        if missing:
            raise ValueError(f"pose_guided_attention fuses {rgb_key!r} and {pose_key!r}; the recognizer has no "
                             f"encoder named {missing} (it has {sorted(dims)})")
        self.rgb_key, self.pose_key = rgb_key, pose_key
        self.dims = {rgb_key: int(dims[rgb_key]), pose_key: int(dims[pose_key])}
        self.sta = SpatialTemporalAttention()
        self.out_dim = sum(self.dims.values())

    def _pose_map(self, pose_map: torch.Tensor, frames: int) -> torch.Tensor:
        if pose_map.ndim != 5:
            raise ValueError(f"pose_guided_attention needs the pose stream's map [B, C, T, h, w]; {self.pose_key!r} "
                             f"gave {tuple(pose_map.shape)} (skeleton joint tokens have no image layout: use "
                             "mmixer or deformable3d for skeletons)")
        if pose_map.shape[2] % frames != 0:
            pose_map = F.interpolate(pose_map, size=(frames, *pose_map.shape[-2:]), mode="trilinear",
                                     align_corners=False)
        return pose_map

    def forward(self, feats: FusionFeatures, present: PresenceMask) -> FusionOutput:
        """feats {rgb_key: spatial [B, C_r, T, h, w], pose_key: spatial [B, C_p, T_p, h', w']} -> FusionOutput."""
        rgb, pose = feats.get(self.rgb_key), feats.get(self.pose_key)
        if rgb is None and pose is None:
            raise ValueError(f"pose_guided_attention needs {self.rgb_key!r} or {self.pose_key!r} in the batch")
        like = (rgb if rgb is not None else pose).pooled
        branches = {}
        if rgb is not None:
            if rgb.spatial is None or rgb.spatial.ndim != 5:
                raise ValueError(f"{self.rgb_key!r} gave no map [B, C, T, h, w] for pose_guided_attention")
            attended = rgb.spatial
            if pose is not None:
                pose_map = self._pose_map(pose.spatial, rgb.spatial.shape[2])
                a_s, a_t = self.sta.attention_maps(pose_map, tuple(rgb.spatial.shape[2:]))
                gate = present[self.pose_key].to(like.dtype).view(-1, 1, 1, 1, 1)
                attended = self.sta.combine(rgb.spatial, a_s * a_t * gate)
            branches[self.rgb_key] = attended.mean(dim=(2, 3, 4))
        else:
            branches[self.rgb_key] = like.new_zeros(like.shape[0], self.dims[self.rgb_key])
        branches[self.pose_key] = (pose.pooled if pose is not None
                                   else like.new_zeros(like.shape[0], self.dims[self.pose_key]))
        pooled = torch.cat([branches[self.rgb_key], branches[self.pose_key]], dim=-1)
        return FusionOutput(pooled=pooled, branches=branches)
