"""Export stored point clouds as ``.ply`` or ``.pcd`` files, one per frame, through open3d.

For viewing a prepared sample's points in MeshLab, CloudCompare or open3d's viewer, or for tools
that read those formats. Files are named ``<sample>_<frame:05d>.<fmt>`` (the frame's index in the
stored sample, negative indices counted from the end) and written atomically: open3d writes into a
private staging folder inside ``out_dir`` (a ``.tmp-`` folder, as every staging folder of the
library), and each file is then published with :func:`~actionfusion.io.atomic_write_bytes`. The
sample name must be one plain file name (:func:`~actionfusion.io.safe_component`), so no file lands
outside ``out_dir``. Points are stored by open3d as float64, binary.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Optional, Protocol, Sequence, Union

import numpy as np

from ...errors import UsageError
from ...io import TMP_PREFIX, atomic_write_bytes, safe_component
from .open3d_backend import import_open3d, to_open3d_cloud

EXPORT_FORMATS = ("ply", "pcd")


class PointSource(Protocol):
    """What :func:`export_points` reads: any store reader (``SampleStore``, ``ShardedStore``)."""

    def load_points(self, name: str, frames: Optional[Sequence[int]] = None) -> np.ndarray:
        """float32 [t, N, 3] point clouds of sample ``name`` (metres)."""
        ...


def export_points(
    store: PointSource,
    name: str,
    out_dir: Union[str, "Path"],
    fmt: str = "ply",
    frames: Optional[Sequence[int]] = None,
) -> list[Path]:
    """Write the stored points of sample ``name``, one ``.ply``/``.pcd`` file per frame.

    Args:
        store: a store reader holding the sample's ``points`` ([T, N, 3]).
        name: the sample name; used in the file names, so it must be one plain file name.
        out_dir: folder for the files (created if missing).
        fmt: "ply" or "pcd".
        frames: frame indices to export (negative ones count from the end); None = all T.
            An empty frame (no depth pixel) holds N zero points in the store and is exported as such.
    Returns:
        The written paths, in the order of ``frames``.
    Raises:
        UsageError: unknown format or a frame index out of range.
        UnsafePathError: ``name`` is not one plain file name.
        MissingDependencyError: open3d is not installed.
        OSError: open3d failed to write a file.
    """
    if fmt not in EXPORT_FORMATS:
        raise UsageError(f"unknown point-cloud export format {fmt!r}; known: {EXPORT_FORMATS}")
    safe_component(name, "sample name")
    o3d = import_open3d()
    points = store.load_points(name)  # [T, N, 3]
    total = len(points)
    wanted = list(range(total)) if frames is None else [int(t) for t in frames]
    bad = [t for t in wanted if not -total <= t < total]
    if bad:
        raise UsageError(f"{name}: frame indices {bad} out of range for {total} stored frames")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=TMP_PREFIX + "export-points.", dir=out))
    written: list[Path] = []
    try:
        for t in wanted:
            file_name = f"{name}_{t % total:05d}.{fmt}"
            scratch = staging / file_name
            if not o3d.io.write_point_cloud(str(scratch), to_open3d_cloud(points[t])):
                raise OSError(f"{out / file_name}: open3d could not write the {fmt} file")
            atomic_write_bytes(out / file_name, scratch.read_bytes())
            written.append(out / file_name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return written
