"""open3d, imported lazily: the point clouds it takes and gives, and its farthest-point sampler.

open3d is a dependency of the package (``setup.cfg``), but a large one with platform-specific
wheels (``open3d-cpu`` on x86-64 Linux), so nothing imports it until a feature that needs it runs;
a missing install then raises :class:`~actionfusion.errors.MissingDependencyError` with the command.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from ...errors import MissingDependencyError

INSTALL_HINT = "pip install open3d-cpu (x86-64 Linux) or pip install open3d (elsewhere)"


def import_open3d() -> ModuleType:
    """The ``open3d`` module, or :class:`MissingDependencyError` naming the install command."""
    try:
        import open3d
    except ImportError as err:
        raise MissingDependencyError(f"this feature needs open3d, which is not installed ({err}); {INSTALL_HINT}") from err
    return open3d


def to_open3d_cloud(points: np.ndarray) -> "object":
    """An ``open3d.geometry.PointCloud`` holding ``points`` ([P, 3], any float dtype; stored as float64)."""
    o3d = import_open3d()
    coords = np.ascontiguousarray(np.asarray(points, dtype=np.float64).reshape(-1, 3))
    return o3d.geometry.PointCloud(o3d.utility.Vector3dVector(coords))


def open3d_farthest_point_sample(points: np.ndarray, n: int, start_index: int = 0) -> np.ndarray:
    """Exact farthest-point sampling by open3d's ``PointCloud.farthest_point_down_sample``.

    Args:
        points: [P, 3] float array, P >= n >= 1.
        n: points to pick.
        start_index: the first pick.
    Returns:
        float32 [n, 3]: the picked input points in input order (open3d selects them by sorted
        index), not in pick order as :func:`~.sampling.farthest_point_sample`.
    """
    cloud = to_open3d_cloud(points)
    sampled = cloud.farthest_point_down_sample(int(n), int(start_index))
    return np.asarray(sampled.points, dtype=np.float32)
