"""Fixed-size point sampling: random, exact farthest-point sampling (FPS, ours or open3d's), voxel-then-FPS.

Farthest-point sampling picks each next point as the one farthest from those already
picked, which covers the cloud evenly; exact FPS costs O(n P). ``"voxel_fps"`` first
replaces the cloud by its voxel-grid centroids (one per occupied ``voxel_size`` cube,
computed with numpy) and runs FPS on those survivors; its outputs are voxel centroids,
not input points. How much that saves depends on the voxel size against the pixel
spacing (about 1 cm at 3.5 m for Kinect v2 depth). ``"open3d_fps"`` is open3d's exact FPS
(:mod:`.open3d_backend`, open3d imported on first use).

Which to use, measured (``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_point_sampling.py
--repeats 7 --workloads fixture``; every masked depth frame of the NTU fixture, 71 frames of about
10,000 points; busy 2-core CPU, methods interleaved, speed as the ratio to open3d in the same run;
coverage = mean over frames of the mean / max distance from an input point to its nearest sample):

==========  =====================  =============  =================  ==============================
n           method                 vs open3d      mean coverage      max coverage
==========  =====================  =============  =================  ==============================
256         open3d_fps (ours)      1.03-1.05x     42.5 mm            81.9 mm (open3d 4.0 ms/frame)
256         voxel_fps 2 cm         0.77-0.82x     42.6 mm            85.2 mm
256         voxel_fps 5 cm         1.03-1.04x     42.4 mm            91.8 mm
256         batched 5 cm           1.50-1.64x     42.4 mm            92.1 mm
1024        open3d_fps (ours)      0.98-1.04x     20.6 mm            39.9 mm (open3d 17.6 ms/frame)
1024        voxel_fps 2 cm         1.01-1.04x     20.8 mm            45.0 mm
1024        voxel_fps 5 cm         1.43-1.62x     20.3 mm            54.7 mm
1024        batched 5 cm           2.67-2.70x     20.3 mm            54.8 mm
==========  =====================  =============  =================  ==============================

(ranges: best-time ratio and median same-repeat ratio.) At prepare's n = 256, frame by frame as
prepare streams them, open3d's exact FPS is as fast as our fastest per-frame sampler (5 cm
voxels) at the same mean coverage and keeps the better worst case (82 against 92 mm), so it is
the prepare default (``PrepareConfig.point_sampling``). For ``"voxel_fps"``, 5 cm is the
measured voxel edge (``PrepareConfig.point_voxel_size``): 2 cm is slower than open3d at n = 256
with no better mean coverage. The batched path (:mod:`.batched_sampling`, 5 cm) is the one that
beats open3d by 2x at n = 1024 (same mean coverage within 0.3 mm, worse worst case); at n = 256
it would save about 1.5 ms of the roughly 7 ms a frame that prepare spends on depth (reading the
PNG about 2 ms, back-projecting 1 ms, sampling 4 ms), not worth collecting a clip's clouds and
loading torch in every worker.

Determinism: every random choice (the FPS starting point, random subsets) comes
from ``rng`` (a ``numpy.random.Generator`` or an int seed; ``None`` means seed 0, so a
preparation run is reproducible by default).

Degenerate clouds: with ``0 < P < n`` the cloud is padded by repeating its points (all
points appear, then cycle from the first); with ``P == 0`` the result is ``zeros [n, 3]``
and ``sample_points(..., return_is_empty=True)`` also returns ``True`` so callers can
mark the frame as empty.

:func:`actionfusion.modalities.pointcloud.batched_sampling.farthest_point_sample_batched`
(a separate module, so that this one does not import torch) is the same exact FPS in torch, vectorised over a
batch of clouds (e.g. all frames of a video, padded, with a validity mask), on CPU or CUDA.
On CPU it only pays off on small candidate sets (after voxelising) and with
``torch.set_num_threads(1)`` per worker: on a busy 2-core machine two intra-op threads
spin and ran 10-50x slower. Its real use is CUDA, where the loop's per-step cost is a few
kernel launches for the whole batch (not measured here: no GPU was available).
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np
from einops import rearrange

from .open3d_backend import open3d_farthest_point_sample

RngLike = Union[np.random.Generator, int, None]
SAMPLING_METHODS = ("random", "fps", "voxel_fps", "open3d_fps")


def _as_rng(rng: RngLike) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(0 if rng is None else rng)


def farthest_point_sample(points: np.ndarray, n: int, start_index: int = 0) -> np.ndarray:
    """Exact farthest-point sampling (numpy).

    Ties go to the lowest index, as in :func:`farthest_point_sample_batched`. Distances are
    computed in float32 for float32 input (about twice as fast), else in float64.

    Args:
        points: [P, 3] float array, P >= 1.
        n: number of indices to pick; past P the already chosen points repeat.
        start_index: the first pick.
    Returns:
        int64 [n] indices into ``points``.
    """
    pts = np.asarray(points)
    pts = pts.astype(np.float32 if pts.dtype == np.float32 else np.float64, copy=False)
    num_points = len(pts)
    if num_points == 0:
        raise ValueError("cannot sample from an empty cloud")
    if not 0 <= start_index < num_points:
        raise IndexError(f"start_index {start_index} out of range for {num_points} points")
    coords = np.ascontiguousarray(rearrange(pts, "p c -> c p"))  # [3, P]: one vector op per step
    nearest_sq = np.full(num_points, np.inf, dtype=pts.dtype)
    diff = np.empty_like(coords)
    dist_sq = np.empty_like(nearest_sq)
    chosen = np.empty(n, dtype=np.int64)
    current = int(start_index)
    for i in range(n):
        chosen[i] = current
        np.subtract(coords, coords[:, current : current + 1], out=diff)
        np.square(diff, out=diff)
        np.add(diff[0], diff[1], out=dist_sq)
        dist_sq += diff[2]
        np.minimum(nearest_sq, dist_sq, out=nearest_sq)
        current = int(np.argmax(nearest_sq))
    return chosen


def voxel_downsample(points: np.ndarray, voxel_size: float) -> np.ndarray:
    """Replace the points in each occupied voxel by their centroid.

    Args:
        points: [P, 3] float array.
        voxel_size: voxel edge, same unit as ``points`` (> 0).
    Returns:
        float64 [V, 3] centroids, ordered by voxel (x, then y, then z index).
    """
    if voxel_size <= 0:
        raise ValueError(f"voxel_size must be > 0, got {voxel_size}")
    pts = np.asarray(points, dtype=np.float64)
    if len(pts) == 0:
        return np.zeros((0, 3))
    cells = np.floor((pts - pts.min(axis=0)) / voxel_size).astype(np.int64)
    extent = cells.max(axis=0) + 1
    keys = (cells[:, 0] * extent[1] + cells[:, 1]) * extent[2] + cells[:, 2]
    _, voxel_of_point, counts = np.unique(keys, return_inverse=True, return_counts=True)
    sums = np.stack(
        [np.bincount(voxel_of_point, weights=pts[:, k], minlength=len(counts)) for k in range(3)], axis=1
    )
    return sums / counts[:, None]


def sample_points(
    points: np.ndarray,
    n: int,
    method: str = "voxel_fps",
    voxel_size: float = 0.02,
    rng: RngLike = None,
    return_is_empty: bool = False,
) -> Union[np.ndarray, tuple[np.ndarray, bool]]:
    """Sample a fixed number of points from a cloud.

    Methods:
        ``"random"``: n distinct points uniformly at random.
        ``"fps"``: exact farthest-point sampling from a random start.
        ``"voxel_fps"``: voxel-grid centroids (edge ``voxel_size``), then FPS on them. If fewer
        than n voxels are occupied the voxel edge is halved (up to 3 times), and failing that
        exact FPS on all points is used.
        ``"open3d_fps"``: exact FPS by open3d (``farthest_point_down_sample``) from a random
        start; outputs are input points, in input order (not pick order). open3d is imported on
        first use.

    Args:
        points: [P, 3] float array (metres for the default voxel size).
        n: number of points wanted (> 0).
        method: one of :data:`SAMPLING_METHODS`.
        voxel_size: voxel edge for ``"voxel_fps"`` (ignored by the other methods).
        rng: Generator or int seed; None = seed 0.
        return_is_empty: also return whether the cloud was empty (P == 0).
    Returns:
        float32 [n, 3]; zeros when P == 0; the cloud repeated when P < n.
        With ``return_is_empty``: ``(points, is_empty)``.
    """
    if method not in SAMPLING_METHODS:
        raise ValueError(f"unknown sampling method {method!r}; known: {SAMPLING_METHODS}")
    if n <= 0:
        raise ValueError(f"n must be > 0, got {n}")
    pts = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    generator = _as_rng(rng)
    is_empty = len(pts) == 0
    if is_empty:
        sampled = np.zeros((n, 3), dtype=np.float32)
    elif len(pts) <= n:
        sampled = pts[np.resize(np.arange(len(pts)), n)]
    elif method == "random":
        sampled = pts[generator.choice(len(pts), size=n, replace=False)]
    elif method == "fps":
        sampled = pts[farthest_point_sample(pts, n, int(generator.integers(len(pts))))]
    elif method == "open3d_fps":
        sampled = open3d_farthest_point_sample(pts, n, int(generator.integers(len(pts))))
    else:
        sampled = _voxel_fps(pts, n, voxel_size, generator)
    sampled = np.ascontiguousarray(sampled, dtype=np.float32)
    return (sampled, is_empty) if return_is_empty else sampled


def fps_candidates(pts: np.ndarray, n: int, voxel_size: float) -> np.ndarray:
    """FPS candidates [P', 3]: voxel centroids with at least n members, halving the voxel edge up to 3 times; else the points."""
    for _ in range(4):
        centroids = voxel_downsample(pts, voxel_size)
        if len(centroids) >= n:
            return centroids.astype(np.float32)
        voxel_size /= 2
    return pts


def _voxel_fps(pts: np.ndarray, n: int, voxel_size: float, generator: np.random.Generator) -> np.ndarray:
    """FPS over voxel centroids (see :func:`fps_candidates`)."""
    candidates = fps_candidates(pts, n, voxel_size)
    start = int(generator.integers(len(candidates)))
    return candidates[farthest_point_sample(candidates, n, start)]
