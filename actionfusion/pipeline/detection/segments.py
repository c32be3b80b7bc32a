"""Segments from per-frame class scores: smoothing, grouping, per-class temporal NMS.

The grouping rule (:func:`extract_segments`), for every class ``c`` and every threshold ``theta``:

1. a frame is *on* when its (smoothed) score of ``c`` is ``>= theta`` and, with
   ``require_top=True`` (default), ``c`` is the frame's highest-scoring class;
2. every maximal run of on-frames at least ``min_length`` long is a candidate segment
   ``(c, start, end)``, frames ``[start, end)``;
3. its score is the mean score of ``c`` over the run.

Several thresholds flood each class curve at several levels, like the watershed grouping of
Zhao et al. (TAG, ICCV 2017): a low level joins an action whose score dips in the middle, a high
level separates two actions of the same class with a shallow valley between them. The nested
candidates overlap, and :func:`temporal_nms` keeps the best-scoring of each overlapping group.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal, Optional, Sequence

import numpy as np

SmoothingMethod = Literal["none", "mean", "gaussian"]


@dataclass(frozen=True)
class Segment:
    """A detected action: 0-based ``label``, frames ``[start, end)``, confidence ``score``."""

    label: int
    start: int
    end: int
    score: float

    @property
    def length(self) -> int:
        """end - start."""
        return self.end - self.start

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return asdict(self)


def temporal_iou(a_start: float, a_end: float, b_start: float, b_end: float) -> float:
    """Intersection over union of the intervals ``[a_start, a_end)`` and ``[b_start, b_end)``; 0 if disjoint."""
    inter = max(0.0, min(a_end, b_end) - max(a_start, b_start))
    union = (a_end - a_start) + (b_end - b_start) - inter
    return float(inter / union) if union > 0 else 0.0


def smooth_scores(scores: np.ndarray, method: SmoothingMethod = "gaussian", width: float = 4.0) -> np.ndarray:
    """Smooth per-frame scores along time.

    Args:
        scores: float [T, C].
        method: ``"none"``; ``"mean"``: a moving average over ``round(width)`` frames (centred);
            ``"gaussian"``: a Gaussian of standard deviation ``width`` frames, cut at 3 sigma.
        width: see ``method``.
    Returns:
        float32 [T, C]. Near the ends the kernel is renormalised over the frames that exist, so a
        constant curve stays constant.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"scores must be [T, C], got shape {scores.shape}")
    if method == "none" or scores.shape[0] < 2:
        return scores.astype(np.float32)
    if method == "mean":
        size = max(int(round(width)), 1)
        kernel = np.ones(size)
    elif method == "gaussian":
        if width <= 0:
            return scores.astype(np.float32)
        radius = max(int(np.ceil(3 * width)), 1)
        x = np.arange(-radius, radius + 1)
        kernel = np.exp(-0.5 * (x / width) ** 2)
    else:
        raise ValueError(f"unknown smoothing {method!r}; choose none, mean or gaussian")
    frames, offset = scores.shape[0], (kernel.size - 1) // 2

    def centred(x: np.ndarray) -> np.ndarray:  # np.convolve's "same" is longer than x for a longer kernel
        return np.convolve(x, kernel, mode="full")[offset:offset + frames]

    norm = centred(np.ones(frames))
    out = np.stack([centred(scores[:, c]) for c in range(scores.shape[1])], axis=1)
    return (out / norm[:, None]).astype(np.float32)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs ``[start, end)`` of True in a bool [T] mask."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(s), int(e)) for s, e in zip(edges[0::2], edges[1::2])]


def extract_segments(scores: np.ndarray, thresholds: Sequence[float] = (0.5,), min_length: int = 1,
                     require_top: bool = True, classes: Optional[Sequence[int]] = None) -> list[Segment]:
    """Candidate segments from per-frame class scores (rule: see the module docstring).

    Args:
        scores: float [T, C] per-frame class scores (e.g. smoothed softmax averages).
        thresholds: the flooding levels.
        min_length: shortest run kept, frames.
        require_top: a frame counts for a class only where that class has the frame's top score.
        classes: the labels considered (default: all C).
    Returns:
        Candidates, not yet suppressed, sorted by (label, start, end, -score).
    """
    scores = np.asarray(scores, dtype=np.float32)
    if scores.ndim != 2:
        raise ValueError(f"scores must be [T, C], got shape {scores.shape}")
    if not thresholds:
        raise ValueError("thresholds must not be empty")
    top = scores.argmax(axis=1) if scores.shape[0] else np.zeros(0, np.int64)
    labels = range(scores.shape[1]) if classes is None else classes
    found: set[Segment] = set()
    for label in labels:
        curve = scores[:, label]
        allowed = top == label if require_top else np.ones(curve.shape, bool)
        for theta in thresholds:
            for start, end in _runs((curve >= theta) & allowed):
                if end - start >= min_length:
                    found.add(Segment(int(label), start, end, float(curve[start:end].mean())))
    return sorted(found, key=lambda s: (s.label, s.start, s.end, -s.score))


def temporal_nms(segments: Sequence[Segment], iou_threshold: float = 0.4) -> list[Segment]:
    """Per-class greedy non-maximum suppression.

    Within each class, segments are taken by decreasing score (ties: earlier start, then shorter);
    one is dropped when its temporal IoU with an already kept segment of the same class is
    ``> iou_threshold``. Returns the kept segments by decreasing score.
    """
    order = sorted(segments, key=lambda s: (-s.score, s.start, s.length))
    kept: list[Segment] = []
    for seg in order:
        if all(k.label != seg.label or temporal_iou(k.start, k.end, seg.start, seg.end) <= iou_threshold
               for k in kept):
            kept.append(seg)
    return kept
