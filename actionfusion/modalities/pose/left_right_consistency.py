"""Temporally consistent left/right labels of a 2D keypoint track (detector swap repair).

2D pose models label a frontal body's left and right limbs from appearance and flip them now and
then (BlazePose does so often on the synthetic renders). Per limb group (arms, legs, face), each
frame keeps the labelling that moves the group's joints least from the previous frame; then the
whole track takes the labelling that most frames had originally, since the model is right more
often than not. Only the detections are used: no 3D, no reference.
"""

from __future__ import annotations

import numpy as np

from ..skeleton.layouts import get_layout

COCO17_GROUPS: tuple[tuple[tuple[int, int], ...], ...] = (
    ((1, 2), (3, 4)),  # eyes, ears
    ((5, 6), (7, 8), (9, 10)),  # shoulders, elbows, wrists
    ((11, 12), (13, 14), (15, 16)),  # hips, knees, ankles
)
"""COCO-17 mirror pairs grouped by body part (joint order of the COCO keypoint format)."""


def _swap(frame: np.ndarray, pairs: tuple[tuple[int, int], ...]) -> np.ndarray:
    out = frame.copy()
    for a, b in pairs:
        out[[a, b]] = frame[[b, a]]
    return out


def _cost(frame: np.ndarray, previous: np.ndarray, pairs: tuple[tuple[int, int], ...]) -> float:
    """Mean pixel distance of the group's joints detected in both frames (NaN when none)."""
    idx = [j for pair in pairs for j in pair]
    ok = (frame[idx, 2] > 0) & (previous[idx, 2] > 0)
    if not ok.any():
        return float("nan")
    return float(np.linalg.norm(frame[idx, :2][ok] - previous[idx, :2][ok], axis=1).mean())


def consistent_left_right(track: np.ndarray, layout: str = "coco17") -> np.ndarray:
    """track float [T, 17, 3] (x, y, score; score 0 = missed) -> float32 [T, 17, 3] with flips repaired."""
    if get_layout(layout).name != "coco17":
        raise ValueError(f"consistent_left_right knows the coco17 groups only, got layout {layout!r}")
    out = np.asarray(track, dtype=np.float32).copy()
    for pairs in COCO17_GROUPS:
        flipped = np.zeros(len(out), bool)  # frame t's output labels differ from the detector's
        for t in range(1, len(out)):
            keep = _cost(out[t], out[t - 1], pairs)
            swap = _cost(_swap(out[t], pairs), out[t - 1], pairs)
            if np.isfinite(keep) and swap < keep:
                out[t] = _swap(out[t], pairs)
                flipped[t] = True
        if flipped.sum() * 2 > len(out):  # most frames now disagree with the detector: flip them all
            for t in range(len(out)):
                out[t] = _swap(out[t], pairs)
    return out
