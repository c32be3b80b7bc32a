"""A PNG of predicted against reference 3D skeletons on a few test frames (``pose3d train|evaluate``).

One row per frame (evenly spread over the test records), two columns: the front view (x, y) and
the side view (z, y). The Kinect reference is black; each method has its own colour. Joints the
reference lacks (the COCO face joints) are drawn for the predictions only.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np

from ..io import atomic_write_bytes
from ..modalities.pose.unipose.dataset import LAYOUT, SequenceRecord
from ..modalities.skeleton.layouts import get_layout

COLOURS = ("tab:orange", "tab:blue", "tab:green", "tab:red", "tab:purple")


def pick_frames(records: Sequence[SequenceRecord], count: int) -> list[tuple[int, int]]:
    """(record index, frame index) of ``count`` frames spread evenly over all records' frames."""
    flat = [(r, t) for r, rec in enumerate(records) for t in range(rec.num_frames)]
    if not flat:
        return []
    idx = np.linspace(0, len(flat) - 1, min(count, len(flat))).round().astype(int)
    return [flat[i] for i in idx]


def save_pose3d_figure(path: "str | Path", records: Sequence[SequenceRecord], poses: dict[str, list[np.ndarray]],
                       num_frames: int = 4) -> None:
    """Write the PNG. ``poses[method][r]`` is float [T_r, 17, 3] for record ``r`` (metres, camera space)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges = get_layout(LAYOUT).edges()
    frames = pick_frames(records, num_frames)
    fig, axes = plt.subplots(len(frames), 2, figsize=(7, 3.2 * max(len(frames), 1)), squeeze=False)
    for row, (r, t) in enumerate(frames):
        ref = records[r].reference[t]
        for col, (a, b, label) in enumerate(((0, 1, "x (m)"), (2, 1, "z (m)"))):
            ax = axes[row, col]
            _draw(ax, ref, edges, a, b, "black", "Kinect reference", 2.0)
            for k, (method, per_record) in enumerate(poses.items()):
                _draw(ax, per_record[r][t], edges, a, b, COLOURS[k % len(COLOURS)], method, 1.0)
            ax.set_xlabel(label)
            ax.set_ylabel("y (m)")
            ax.set_aspect("equal", adjustable="datalim")
            ax.set_title(f"{records[r].name} frame {int(records[r].frame_indices[t])}", fontsize=8)
    if frames:
        axes[0, 0].legend(fontsize=6, loc="best")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def _draw(ax: "object", pose: np.ndarray, edges: Sequence[tuple[int, int]], a: int, b: int, colour: str, label: str,
          width: float) -> None:
    """Bones of pose float [17, 3] projected on axes (a, b); bones with a NaN end are skipped."""
    first = True
    for i, j in edges:
        seg = pose[[i, j]]
        if not np.isfinite(seg).all():
            continue
        ax.plot(seg[:, a], seg[:, b], color=colour, linewidth=width, label=label if first else None)
        first = False
