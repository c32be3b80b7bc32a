"""PointNet++ set abstraction (Qi et al., NeurIPS 2017) in torch, batched over many clouds.

A set-abstraction level picks centroids (farthest-point or random sampling), groups each
centroid's k nearest neighbours (kNN grouping, the variant of PointNet++'s ball query used
by e.g. DGCNN / PointNeXt ablations: every group has exactly k real points, no padding),
expresses them relative to the centroid, runs a shared MLP on (relative xyz, feature) and
max-pools over the group. A global level runs the shared MLP on all points (absolute xyz +
feature) and max-pools over the cloud.

Shapes: clouds are batched as [B, P, 3] (B = every frame of every clip), features as
[B, P, C] (channel-last, so the shared MLP is a plain matrix multiply).
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from einops import rearrange
from torch import nn

from .batched_sampling import farthest_point_sample_batched

SAMPLING_METHODS = ("fps", "random")


def knn_indices(query: torch.Tensor, ref: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k nearest reference points of every query point, nearest first.

    Args:
        query: float [B, S, 3].
        ref: float [B, P, 3], P >= k.
        k: neighbours per query.
    Returns:
        int64 [B, S, k] indices into dimension 1 of ``ref``.
    """
    if k > ref.shape[1]:
        raise ValueError(f"k = {k} neighbours asked of clouds with {ref.shape[1]} points")
    # exact differences (the |a|^2 + |b|^2 - 2ab shortcut can reorder near-equal neighbours)
    dist = torch.cdist(query, ref, compute_mode="donot_use_mm_for_euclid_dist")
    return dist.topk(k, dim=-1, largest=False, sorted=True).indices


def gather_points(values: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """Rows of each cloud: values [B, P, C], indices int64 [B, *I] -> [B, *I, C]."""
    batch, channels = values.shape[0], values.shape[-1]
    flat = indices.reshape(batch, -1)
    picked = torch.gather(values, 1, flat[..., None].expand(-1, -1, channels))
    return picked.reshape(*indices.shape, channels)


def sample_centroids(xyz: torch.Tensor, n: int, method: str = "fps", random_start: bool = True) -> torch.Tensor:
    """Pick n centroid indices per cloud.

    Args:
        xyz: float [B, P, 3].
        n: centroids per cloud (n <= P).
        method: ``"fps"`` (exact farthest-point sampling) or ``"random"`` (a random subset).
        random_start: FPS starts at a random point (training-time variety); otherwise at the
            point farthest from the cloud's mean, so the picks depend on the point set only, not
            on the order of its points.
    Returns:
        int64 [B, n].
    """
    if method not in SAMPLING_METHODS:
        raise ValueError(f"sampling must be one of {SAMPLING_METHODS}, not {method!r}")
    with torch.no_grad():
        xyz = xyz.detach()
        if method == "random":
            return torch.rand(xyz.shape[:2], device=xyz.device).argsort(dim=1)[:, :n]
        start = None
        if not random_start:
            start = (xyz - xyz.mean(dim=1, keepdim=True)).square().sum(-1).argmax(dim=1)
        return farthest_point_sample_batched(xyz, n, start_indices=start)


class SharedMLP(nn.Module):
    """(Linear without bias, BatchNorm, ReLU) per width, applied to the last axis of [..., C_in]."""

    def __init__(self, in_features: int, widths: Sequence[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for width in widths:
            layers += [nn.Linear(in_features, width, bias=False), nn.BatchNorm1d(width), nn.ReLU(inplace=True)]
            in_features = width
        self.layers = nn.Sequential(*layers)
        self.out_features = in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [..., C_in] -> [..., widths[-1]] (BatchNorm statistics over every leading position)."""
        lead = x.shape[:-1]
        return self.layers(x.reshape(-1, x.shape[-1])).reshape(*lead, self.out_features)


class SetAbstraction(nn.Module):
    """One PointNet++ level: sample centroids, kNN-group, shared MLP on (xyz - centroid, feature), max.

    Args:
        in_features: C of the incoming point features (0: xyz only).
        widths: the shared MLP's widths; the output has ``widths[-1]`` channels.
        num_centroids: S, centroids per cloud (clamped to the cloud size).
        k: neighbours per centroid (clamped to the cloud size).
        sampling: ``"fps"`` or ``"random"``.
    """

    def __init__(self, in_features: int, widths: Sequence[int], num_centroids: int, k: int, sampling: str = "fps") -> None:
        super().__init__()
        if sampling not in SAMPLING_METHODS:
            raise ValueError(f"sampling must be one of {SAMPLING_METHODS}, not {sampling!r}")
        self.num_centroids, self.k, self.sampling = num_centroids, k, sampling
        self.mlp = SharedMLP(3 + in_features, widths)
        self.out_features = self.mlp.out_features

    def forward(self, xyz: torch.Tensor, feats: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """xyz [B, P, 3], feats [B, P, C] or None -> (centroids [B, S, 3], features [B, S, widths[-1]])."""
        num_points = xyz.shape[1]
        centre_idx = sample_centroids(xyz, min(self.num_centroids, num_points), self.sampling, self.training)
        centroids = gather_points(xyz, centre_idx)  # [B, S, 3]
        group_idx = knn_indices(centroids.detach(), xyz.detach(), min(self.k, num_points))  # [B, S, k]
        grouped = gather_points(xyz, group_idx) - centroids[:, :, None]  # [B, S, k, 3]
        if feats is not None:
            grouped = torch.cat([grouped, gather_points(feats, group_idx)], dim=-1)
        return centroids, self.mlp(grouped).max(dim=2).values  # max (indices) backprops cheaper than amax


class GlobalAbstraction(nn.Module):
    """The last PointNet++ level: shared MLP on (xyz, feature) of every point, max over the cloud."""

    def __init__(self, in_features: int, widths: Sequence[int]) -> None:
        super().__init__()
        self.mlp = SharedMLP(3 + in_features, widths)
        self.out_features = self.mlp.out_features

    def forward(self, xyz: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        """xyz [B, S, 3], feats [B, S, C] -> [B, widths[-1]]."""
        return self.mlp(torch.cat([xyz, feats], dim=-1)).max(dim=1).values


class PointNetPPFrameEncoder(nn.Module):
    """Two set-abstraction levels and a global level: one cloud [B, P, 3] -> one feature [B, D].

    Args:
        num_centroids: (S1, S2) centroids of the two levels.
        neighbours: (k1, k2) group sizes.
        sa_widths: the two levels' shared-MLP widths.
        global_widths: the global level's widths; D = ``global_widths[-1]``.
        sampling: ``"fps"`` or ``"random"`` centroids.
    """

    def __init__(
        self,
        num_centroids: Sequence[int] = (64, 16),
        neighbours: Sequence[int] = (16, 8),
        sa_widths: Sequence[Sequence[int]] = ((32, 32, 64), (64, 64, 128)),
        global_widths: Sequence[int] = (128, 256),
        sampling: str = "fps",
    ) -> None:
        super().__init__()
        if not (len(num_centroids) == len(neighbours) == len(sa_widths) == 2):
            raise ValueError("num_centroids, neighbours and sa_widths each describe the two SA levels")
        self.sa1 = SetAbstraction(0, sa_widths[0], num_centroids[0], neighbours[0], sampling)
        self.sa2 = SetAbstraction(self.sa1.out_features, sa_widths[1], num_centroids[1], neighbours[1], sampling)
        self.global_sa = GlobalAbstraction(self.sa2.out_features, global_widths)
        self.out_features = self.global_sa.out_features

    def forward(self, xyz: torch.Tensor) -> torch.Tensor:
        """xyz: float [B, P, 3] -> float [B, D]."""
        xyz1, f1 = self.sa1(xyz)
        xyz2, f2 = self.sa2(xyz1, f1)
        return self.global_sa(xyz2, f2)


def frames_to_clouds(points: torch.Tensor) -> torch.Tensor:
    """[N, T, P, 3] clips -> [(N T), P, 3] clouds (the batch the frame encoder sees)."""
    return rearrange(points, "n t p c -> (n t) p c")
