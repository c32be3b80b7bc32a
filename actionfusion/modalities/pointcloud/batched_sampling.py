"""Farthest-point sampling of many clouds at once, in torch (CPU or CUDA).

Kept apart from :mod:`.sampling` so that numpy-only users (e.g. ``prepare`` workers sampling
frame by frame) do not pay torch's import time and memory.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
from einops import rearrange

from .sampling import RngLike, _as_rng, fps_candidates


def sample_points_batched(
    clouds: Sequence[np.ndarray],
    n: int,
    method: str = "voxel_fps",
    voxel_size: float = 0.02,
    rng: RngLike = None,
    device: "torch.device | str" = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """Sample n points from each of many clouds (e.g. all frames of a video) in one batched FPS.

    Each cloud is reduced as in :func:`sample_points` (``"voxel_fps"``: voxel centroids;
    ``"fps"``: all points), the candidates are padded into one [T, P, 3] tensor with a validity
    mask, and :func:`farthest_point_sample_batched` runs once for all of them, so the per-step
    overhead of the FPS loop is paid once per batch rather than once per frame. Clouds with at
    most n points are repeated, empty ones give zeros, exactly as in :func:`sample_points`.

    Args:
        clouds: T arrays [P_t, 3].
        n: points per cloud.
        method: "fps" or "voxel_fps" ("random" is per-cloud anyway: use :func:`sample_points`).
        voxel_size: voxel edge for "voxel_fps".
        rng: Generator or int seed (None = 0); draws each cloud's FPS start.
        device: where the FPS runs ("cpu" or a CUDA device).
    Returns:
        (float32 [T, n, 3] points, bool [T] is_empty).
    """
    if method not in ("fps", "voxel_fps"):
        raise ValueError(f"batched sampling supports 'fps' and 'voxel_fps', not {method!r}")
    generator = _as_rng(rng)
    out = np.zeros((len(clouds), n, 3), dtype=np.float32)
    is_empty = np.zeros(len(clouds), dtype=bool)
    candidates: list[np.ndarray] = []
    batched_rows: list[int] = []
    for t, cloud in enumerate(clouds):
        pts = np.asarray(cloud, dtype=np.float32).reshape(-1, 3)
        if len(pts) == 0:
            is_empty[t] = True
        elif len(pts) <= n:
            out[t] = pts[np.resize(np.arange(len(pts)), n)]
        else:
            candidates.append(fps_candidates(pts, n, voxel_size) if method == "voxel_fps" else pts)
            batched_rows.append(t)
    if not candidates:
        return out, is_empty
    width = max(len(c) for c in candidates)
    padded = np.zeros((len(candidates), width, 3), dtype=np.float32)
    valid = np.zeros((len(candidates), width), dtype=bool)
    for row, cand in enumerate(candidates):
        padded[row, : len(cand)] = cand
        valid[row, : len(cand)] = True
    starts = torch.as_tensor([int(generator.integers(len(c))) for c in candidates], dtype=torch.long)
    points_t = torch.from_numpy(padded).to(device)
    indices = farthest_point_sample_batched(points_t, n, torch.from_numpy(valid), starts)
    picked = torch.gather(points_t, 1, indices[..., None].expand(-1, -1, 3))
    out[batched_rows] = picked.cpu().numpy()
    return out, is_empty


def farthest_point_sample_batched(
    points: torch.Tensor,
    n: int,
    valid_mask: Optional[torch.Tensor] = None,
    start_indices: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Exact farthest-point sampling of a batch of clouds at once (torch, CPU or CUDA).

    Clouds of different sizes are padded to P and marked in ``valid_mask``; padding is never
    picked. A cloud with fewer than n valid points repeats its lowest-index valid point once all are
    chosen; a cloud with none returns index 0 throughout (check ``valid_mask.any(1)``).
    Ties go to the lowest index, as in :func:`farthest_point_sample`.

    Args:
        points: [B, P, 3] float tensor.
        n: picks per cloud.
        valid_mask: optional bool [B, P], true for real points.
        start_indices: optional int64 [B] first picks (must be valid points); default: a
            uniformly random valid point per cloud drawn with ``generator``.
        generator: torch.Generator (on CPU) for the random starts.
    Returns:
        int64 [B, n] indices into dimension 1 of ``points``.
    """
    if points.ndim != 3 or points.shape[-1] != 3:
        raise ValueError(f"points must be [B, P, 3], got {tuple(points.shape)}")
    batch, num_points, _ = points.shape
    device = points.device
    valid = (
        torch.ones(batch, num_points, dtype=torch.bool, device=device)
        if valid_mask is None
        else valid_mask.to(device=device, dtype=torch.bool)
    )
    if start_indices is None:
        counts = valid.sum(dim=1)
        rank = (torch.rand(batch, generator=generator).to(device) * counts).long()
        rank = torch.minimum(rank, (counts - 1).clamp(min=0))
        # index of the rank-th valid point = number of positions whose running count is <= rank
        start_indices = (valid.long().cumsum(dim=1) <= rank[:, None]).sum(dim=1)
        start_indices = start_indices.clamp(max=num_points - 1)
    current = start_indices.to(device=device, dtype=torch.long)
    # Coordinate-major copy [3, B, P]: each coordinate's differences are contiguous, about 3x
    # faster on CPU than differencing [B, P, 3] rows. Invalid points hold -1 and, since
    # distances are >= 0, the running minimum keeps them at -1: they are never picked.
    coords = rearrange(points, "b p c -> c b p").contiguous()
    nearest_sq = torch.full((batch, num_points), float("inf"), dtype=points.dtype, device=device)
    nearest_sq = nearest_sq.masked_fill(~valid, -1.0)
    dist_sq = torch.empty_like(nearest_sq)
    scratch = torch.empty_like(nearest_sq)
    chosen = torch.empty(batch, n, dtype=torch.long, device=device)
    rows = torch.arange(batch, device=device)
    for i in range(n):
        chosen[:, i] = current
        centre = coords[:, rows, current]  # [3, B]
        torch.sub(coords[0], centre[0, :, None], out=dist_sq).square_()
        for axis in (1, 2):
            torch.sub(coords[axis], centre[axis, :, None], out=scratch).square_()
            dist_sq.add_(scratch)
        torch.minimum(nearest_sq, dist_sq, out=nearest_sq)
        current = nearest_sq.argmax(dim=1)
    return chosen
