"""The UniPose / C3P point-cloud network: per-point joint heatmaps and offsets, joints by voting.

Input: a frame's cloud, points float [B, N, 3] in metres (Kinect camera space), optionally with
the frame's 2D detections float [B, J, 3] (u, v, score in depth pixels).

Structure (a compact PointNet++ segmentation network; reconstruction sized for CPU):

1. Per-point input features: xyz minus the cloud centroid (C3P normalises in an oriented
   bounding box; centring alone keeps metres as the unit) and, with ``detection_channels``,
   J channels score_j * exp(-|pi(p) - d_j|^2 / 2 sigma^2), where pi projects a point into the
   depth image. This is the reconstructed "cross-modality interaction": every point knows which
   2D detections it projects near.
2. Two set-abstraction levels: M1 then M2 centroids, each grouping its k nearest neighbours
   (relative xyz + features), a shared MLP and a max-pool. C3P picks centroids by farthest-point
   sampling; the input points are already a random sample, so the first M points serve (a
   random subset, no O(N^2) FPS per step).
3. A global max-pooled feature; two feature-propagation levels (3-NN inverse-distance
   interpolation) back to every point.
4. Per point and joint: a heatmap h = sigmoid(.) and a unit vector v. Each point votes
   p + v (1 - h) s for each joint, s = ``offset_scale_m`` (C3P: 0.8 in box-normalised units); the
   joint is the h-weighted mean of the votes of the ``top_k`` points with the largest h.
5. With ``detection_channels``, the heatmap logits also get a learnable per-joint multiple
   (initially ``detection_prior_gain``) of 2 c_j - 1, c_j being the point's detection channel
   (reconstruction: the 2D detections act as a prior on the 3D heatmaps, so training starts
   from points that project near the detections instead of from random ones).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import Tensor, nn

from ....geometry import CameraIntrinsics, KINECT_V2_DEPTH_3DV


def mlp(widths: list[int]) -> nn.Sequential:
    """Shared MLP: Linear + ReLU between consecutive ``widths`` (ReLU after every layer)."""
    layers: list[nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(a, b), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def gather_points(x: Tensor, idx: Tensor) -> Tensor:
    """x float [B, N, C], idx long [B, M, K] -> float [B, M, K, C]."""
    b, m, k = idx.shape
    flat = rearrange(idx, "b m k -> b (m k)")
    out = torch.gather(x, 1, repeat(flat, "b mk -> b mk c", c=x.shape[-1]))
    return rearrange(out, "b (m k) c -> b m k c", m=m, k=k)


def knn(query: Tensor, ref: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The k nearest ``ref`` float [B, N, 3] points of each ``query`` float [B, M, 3] point.

    Returns distances float [B, M, k] and indices long [B, M, k].
    """
    d = torch.cdist(query, ref)
    dist, idx = d.topk(min(k, ref.shape[1]), dim=-1, largest=False)
    return dist, idx


def detection_channels(points: Tensor, det: Tensor, intrinsics: CameraIntrinsics, sigma_px: float) -> Tensor:
    """Per-point 2D-detection heatmap values.

    Args:
        points: float [B, N, 3] metres (z > 0).
        det: float [B, J, 3] (u, v, score), depth pixels.
    Returns:
        float [B, N, J]: score_j * exp(-|pi(p) - (u_j, v_j)|^2 / (2 sigma^2)).
    """
    z = points[..., 2].clamp_min(1e-3)
    u = intrinsics.cx + intrinsics.fx * points[..., 0] / z
    v = intrinsics.cy - intrinsics.fy * points[..., 1] / z
    uv = torch.stack([u, v], dim=-1)  # [B, N, 2]
    d2 = ((uv[:, :, None, :] - det[:, None, :, :2]) ** 2).sum(-1)  # [B, N, J]
    return det[:, None, :, 2] * torch.exp(-d2 / (2.0 * sigma_px**2))


class SetAbstraction(nn.Module):
    """Group the k nearest neighbours of each centroid, shared MLP, max-pool."""

    def __init__(self, in_ch: int, out_ch: int, k: int) -> None:
        super().__init__()
        self.k = k
        self.mlp = mlp([in_ch + 3, out_ch, out_ch])

    def forward(self, xyz: Tensor, feats: Tensor, centroids: Tensor) -> Tensor:
        """xyz [B, N, 3], feats [B, N, C], centroids [B, M, 3] -> float [B, M, out_ch]."""
        _, idx = knn(centroids, xyz, self.k)
        rel = gather_points(xyz, idx) - centroids[:, :, None, :]
        grouped = torch.cat([rel, gather_points(feats, idx)], dim=-1)  # [B, M, K, 3 + C]
        return self.mlp(grouped).amax(dim=2)


class FeaturePropagation(nn.Module):
    """Interpolate coarse features to finer points (3-NN inverse distance), concat skip, MLP."""

    def __init__(self, coarse_ch: int, skip_ch: int, out_ch: int) -> None:
        super().__init__()
        self.mlp = mlp([coarse_ch + skip_ch, out_ch])

    def forward(self, fine_xyz: Tensor, coarse_xyz: Tensor, coarse: Tensor, skip: Tensor) -> Tensor:
        """fine_xyz [B, N, 3], coarse_xyz [B, M, 3], coarse [B, M, C], skip [B, N, S] -> [B, N, out_ch]."""
        dist, idx = knn(fine_xyz, coarse_xyz, 3)
        w = 1.0 / (dist + 1e-6)
        w = w / w.sum(-1, keepdim=True)
        interp = (gather_points(coarse, idx) * w[..., None]).sum(2)
        return self.mlp(torch.cat([interp, skip], dim=-1))


class PointPoseNet(nn.Module):
    """Point cloud (+ 2D detections) -> 17 joints by heatmap-weighted voting (module docstring).

    Args:
        num_joints: J.
        sa_centroids: (M1, M2).
        sa_neighbors: k of both set-abstraction levels.
        widths: (level 1, level 2, global) feature widths.
        top_k: voting points per joint.
        offset_scale_m: s, metres.
        detection_channels: use the J per-point detection channels.
        detection_sigma_px: their sigma.
        detection_prior_gain: initial gain of the detection prior on the heatmap logits.
        intrinsics: depth camera that projects points for those channels.
    """

    def __init__(
        self,
        num_joints: int = 17,
        sa_centroids: tuple[int, int] = (128, 32),
        sa_neighbors: int = 16,
        widths: tuple[int, int, int] = (64, 128, 128),
        top_k: int = 16,
        offset_scale_m: float = 0.2,
        detection_channels: bool = True,
        detection_sigma_px: float = 6.0,
        intrinsics: CameraIntrinsics = KINECT_V2_DEPTH_3DV,
        detection_prior_gain: float = 4.0,
    ) -> None:
        super().__init__()
        self.num_joints = num_joints
        self.sa_centroids = sa_centroids
        self.top_k = top_k
        self.offset_scale_m = offset_scale_m
        self.use_detections = detection_channels
        self.detection_sigma_px = detection_sigma_px
        self.intrinsics = intrinsics
        w1, w2, w3 = widths
        in_ch = 3 + (num_joints if detection_channels else 0)
        self.embed = mlp([in_ch, w1 // 2])
        self.sa1 = SetAbstraction(w1 // 2, w1, sa_neighbors)
        self.sa2 = SetAbstraction(w1, w2, sa_neighbors)
        self.global_mlp = mlp([w2, w3])
        self.fp2 = FeaturePropagation(w2, w1, w1)
        self.fp1 = FeaturePropagation(w1, w1 // 2, w1)
        self.prior_gain = nn.Parameter(torch.full((num_joints,), float(detection_prior_gain)))
        self.head = nn.Sequential(nn.Linear(w1 + w3, w1), nn.ReLU(inplace=True), nn.Linear(w1, num_joints * 4))

    def forward_features(self, points: Tensor, det: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        """Heatmaps and unit offsets.

        Args:
            points: float [B, N, 3] metres.
            det: float [B, J, 3] detections (required with ``detection_channels``).
        Returns:
            h float [B, N, J] in (0, 1); v float [B, N, J, 3] unit vectors.
        """
        centred = points - points.mean(dim=1, keepdim=True)
        feats = [centred]
        prior = None
        if self.use_detections:
            if det is None:
                raise ValueError("this PointPoseNet uses detection channels: pass det [B, J, 3]")
            prior = detection_channels(points, det, self.intrinsics, self.detection_sigma_px)  # [B, N, J]
            feats.append(prior)
        f0 = self.embed(torch.cat(feats, dim=-1))
        m1, m2 = self.sa_centroids
        c1, c2 = centred[:, :m1], centred[:, :m2]
        f1 = self.sa1(centred, f0, c1)
        f2 = self.sa2(c1, f1, c2)
        g = self.global_mlp(f2).amax(dim=1)  # [B, w3]
        f1u = self.fp2(c1, c2, f2, f1)
        fp = self.fp1(centred, c1, f1u, f0)  # [B, N, w1]
        out = self.head(torch.cat([fp, repeat(g, "b c -> b n c", n=fp.shape[1])], dim=-1))
        out = rearrange(out, "b n (j c) -> b n j c", c=4)
        logits = out[..., 0]
        if prior is not None:
            logits = logits + self.prior_gain * (2.0 * prior - 1.0)
        h = torch.sigmoid(logits)
        v = F.normalize(out[..., 1:], dim=-1)
        return h, v

    def vote(self, points: Tensor, h: Tensor, v: Tensor) -> Tensor:
        """Joints float [B, J, 3] from points [B, N, 3], h [B, N, J], v [B, N, J, 3] (module docstring)."""
        votes = points[:, :, None, :] + v * ((1.0 - h) * self.offset_scale_m)[..., None]  # [B, N, J, 3]
        k = min(self.top_k, points.shape[1])
        top_h, idx = h.topk(k, dim=1)  # [B, k, J]
        top_votes = torch.gather(votes, 1, repeat(idx, "b k j -> b k j c", c=3))
        w = top_h / top_h.sum(dim=1, keepdim=True).clamp_min(1e-8)
        return (top_votes * w[..., None]).sum(dim=1)

    def forward(self, points: Tensor, det: Optional[Tensor] = None) -> Tensor:
        """points float [B, N, 3], det float [B, J, 3] -> joints float [B, J, 3] metres."""
        h, v = self.forward_features(points, det)
        return self.vote(points, h, v)
