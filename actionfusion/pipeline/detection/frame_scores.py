"""Per-frame class scores of an untrimmed sequence from sliding windows.

Windows of ``window`` frames start every ``stride`` frames, plus one ending at the last frame so
the tail is covered; each goes through :meth:`WindowClassifier.scores` (the model's test-time clip
pipeline, softmax out). A frame's score is the mean of the scores of the windows that contain it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..live.window_classifier import WindowClassifier
from .segments import Segment


@dataclass
class FrameScores:
    """Sliding-window scores of one sequence.

    Attributes:
        frames: float32 [T, C] per-frame mean of the covering windows' softmax scores.
        windows: float32 [W, C] each window's softmax scores.
        starts: int64 [W] first frame of each window.
        window: the window length, frames (the whole sequence when it is shorter).
    """

    frames: np.ndarray
    windows: np.ndarray
    starts: np.ndarray
    window: int


def window_starts(num_frames: int, window: int, stride: int) -> np.ndarray:
    """int64 [W]: 0, stride, 2 stride, ... and ``num_frames - window`` (the last window ends at the last frame).

    One window at 0 when the sequence is not longer than ``window``.
    """
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be >= 1, got {window}, {stride}")
    if num_frames <= window:
        return np.zeros(1, np.int64)
    starts = list(range(0, num_frames - window + 1, stride))
    if starts[-1] != num_frames - window:
        starts.append(num_frames - window)
    return np.asarray(starts, np.int64)


def score_frames(classifier: WindowClassifier, skeleton: np.ndarray, window: int, stride: int,
                 batch_size: int = 32) -> FrameScores:
    """Score a sequence with sliding windows.

    Args:
        classifier: the window classifier.
        skeleton: float [M, T, V, 3] in the classifier's convention (``classifier.convention``).
        window: window length, frames.
        stride: frames between window starts.
        batch_size: windows per forward pass.
    Returns:
        :class:`FrameScores` (every frame is covered by at least one window).
    """
    skeleton = np.asarray(skeleton, dtype=np.float32)
    if skeleton.ndim != 4 or skeleton.shape[1] == 0:
        raise ValueError(f"skeleton must be [M, T, V, 3] with T > 0, got shape {skeleton.shape}")
    num_frames = skeleton.shape[1]
    length = min(window, num_frames)
    starts = window_starts(num_frames, length, stride)
    windows = [skeleton[:, s:s + length] for s in starts]
    scores = classifier.scores(windows, batch_size=batch_size)
    total = np.zeros((num_frames, scores.shape[1]), np.float64)
    count = np.zeros(num_frames, np.float64)
    for s, row in zip(starts, scores):
        total[s:s + length] += row
        count[s:s + length] += 1
    return FrameScores(frames=(total / count[:, None]).astype(np.float32), windows=scores, starts=starts,
                       window=length)


def window_argmax_segments(scores: FrameScores) -> list[Segment]:
    """Baseline segments, no smoothing or NMS: each window's top class; consecutive windows with the
    same top class merge into one segment over their frames, scored by the mean of their top scores."""
    segments: list[Segment] = []
    top = scores.windows.argmax(axis=1)
    best = scores.windows.max(axis=1)
    run_start = 0
    for i in range(1, len(top) + 1):
        if i == len(top) or top[i] != top[run_start]:
            start = int(scores.starts[run_start])
            end = int(scores.starts[i - 1]) + scores.window
            segments.append(Segment(int(top[run_start]), start, end, float(best[run_start:i].mean())))
            run_start = i
    return segments
