"""A2J anchor-to-joint regression (Xiong et al., ICCV 2019; zhangboshen/A2J) for the lifting networks.

Anchors sit on a grid of stride s over an S x S crop, ``len(anchor_offsets)^2`` per cell (A2J:
stride 8, offsets {2, 6}^2). For anchor a and joint j the network gives a response c_{a,j}, an
in-plane offset O_{a,j} (crop pixels) and a depth D_{a,j}; with w_{a,j} = softmax_a(c_{a,j}):

    j_xy = sum_a w (A_a + O_{a,j}),   j_z = sum_a w D_{a,j}

Loss (A2J): w_anchor SmoothL1(sum_a w A_a, gt_xy) + w_offset SmoothL1(j_xy, gt_xy) + w_depth
SmoothL1(j_z, gt_z), SmoothL1 with beta 3.

Reconstruction for UniPose's lifting: depth is relative to the crop's reference depth and
expressed in ``depth_scale`` units per metre (centimetres by default, so beta 3 means 3 cm, as
A2J's millimetre-scale depth maps give beta a comparable physical meaning); the backbone is a
small strided CNN (A2J uses ResNet-50), one for depth crops (1 channel) and one for RGB crops
(3 channels) — the "depth network" and the "RGB network".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn


def make_anchors(crop_size: int, stride: int = 8, offsets: tuple[float, ...] = (2.0, 6.0)) -> Tensor:
    """Anchor positions float [A, 2] (x, y) in crop pixels, A = (S/s)^2 len(offsets)^2.

    Order: cell row, cell column, offset row, offset column (the order of :class:`A2JHead`).
    """
    if crop_size % stride:
        raise ValueError(f"crop_size {crop_size} is not a multiple of stride {stride}")
    cells = torch.arange(crop_size // stride, dtype=torch.float32) * stride
    off = torch.tensor(offsets, dtype=torch.float32)
    cy, cx, oy, ox = torch.meshgrid(cells, cells, off, off, indexing="ij")
    return torch.stack([(cx + ox).reshape(-1), (cy + oy).reshape(-1)], dim=-1)


def anchor_to_joint(c: Tensor, offsets: Tensor, depth: Tensor, anchors: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Aggregate anchor predictions into joints.

    Args:
        c: float [B, A, J] anchor responses.
        offsets: float [B, A, J, 2] in-plane offsets (crop pixels).
        depth: float [B, A, J] depths.
        anchors: float [A, 2] anchor positions.
    Returns:
        xy float [B, J, 2], z float [B, J], anchor_xy float [B, J, 2] (= sum_a w A_a).
    """
    w = torch.softmax(c, dim=1)  # over anchors
    a = anchors.to(c)[None, :, None, :]  # [1, A, 1, 2]
    xy = (w[..., None] * (a + offsets)).sum(dim=1)
    z = (w * depth).sum(dim=1)
    anchor_xy = (w[..., None] * a).sum(dim=1)
    return xy, z, anchor_xy


@dataclass
class A2JOutput:
    """Joints of a lifting network: xy float [B, J, 2] crop pixels, z float [B, J] depth units,
    anchor_xy float [B, J, 2] (the informative-anchor centre)."""

    xy: Tensor
    z: Tensor
    anchor_xy: Tensor


def a2j_loss(
    out: A2JOutput, gt_xy: Tensor, gt_z: Tensor,
    w_anchor: float = 1.0, w_offset: float = 0.1, w_depth: float = 1.0, beta: float = 3.0,
) -> Tensor:
    """The A2J loss (module docstring); gt_xy float [B, J, 2], gt_z float [B, J] -> scalar."""
    l_anchor = F.smooth_l1_loss(out.anchor_xy, gt_xy, beta=beta)
    l_xy = F.smooth_l1_loss(out.xy, gt_xy, beta=beta)
    l_z = F.smooth_l1_loss(out.z, gt_z, beta=beta)
    return w_anchor * l_anchor + w_offset * l_xy + w_depth * l_z


def _conv(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class A2JNet(nn.Module):
    """Small CNN backbone + A2J heads over a square crop.

    Args:
        in_channels: 1 for depth crops, 3 for RGB crops.
        num_joints: J.
        crop_size: S.
        stride: anchor stride s (a power of two; the backbone downsamples by s).
        anchor_offsets: anchor positions inside a cell.
        width: backbone channels.
    Input float [B, C, S, S] -> :class:`A2JOutput`.
    """

    def __init__(
        self, in_channels: int = 1, num_joints: int = 17, crop_size: int = 64, stride: int = 8,
        anchor_offsets: tuple[float, ...] = (2.0, 6.0), width: int = 32,
    ) -> None:
        super().__init__()
        n_down = stride.bit_length() - 1
        if 2**n_down != stride:
            raise ValueError(f"stride must be a power of two, got {stride}")
        self.num_joints = num_joints
        self.per_cell = len(anchor_offsets) ** 2
        layers = [_conv(in_channels, width, 1)]
        ch = width
        for _ in range(n_down):
            layers += [_conv(ch, ch * 2, 2), _conv(ch * 2, ch * 2, 1)]
            ch *= 2
        self.backbone = nn.Sequential(*layers)
        self.register_buffer("anchors", make_anchors(crop_size, stride, anchor_offsets), persistent=False)
        self.cls = nn.Conv2d(ch, self.per_cell * num_joints, 3, padding=1)
        self.reg = nn.Conv2d(ch, self.per_cell * num_joints * 3, 3, padding=1)

    def forward_features(self, x: Tensor) -> Tensor:
        """float [B, C, S, S] -> backbone map float [B, D, S/s, S/s]."""
        return self.backbone(x)

    def forward(self, x: Tensor) -> A2JOutput:
        """float [B, C, S, S] crop -> joints (:class:`A2JOutput`)."""
        f = self.forward_features(x)
        c = rearrange(self.cls(f), "b (o j) h w -> b (h w o) j", j=self.num_joints)
        r = rearrange(self.reg(f), "b (o j k) h w -> b (h w o) j k", j=self.num_joints, k=3)
        xy, z, anchor_xy = anchor_to_joint(c, r[..., :2], r[..., 2], self.anchors)
        return A2JOutput(xy=xy, z=z, anchor_xy=anchor_xy)
