"""Identities across frames: optimal assignment of detected people to tracks.

:class:`PoseTracker` keeps a set of tracks (an id, the last box and keypoints, a box velocity)
and, frame by frame, matches the people an estimator found to them:

* cost of pairing track t with person p = ``box_weight * (1 - IoU(predicted box of t, box of p))
  + (1 - box_weight) * min(1, mean keypoint distance / scale of t)``, where the predicted box is
  the last box moved by the track's velocity (constant velocity, so people crossing paths keep
  their identities) and the keypoint distance uses the joints confident in both poses, divided
  by the diagonal of the track's box;
* a pair is allowed when IoU >= ``iou_threshold`` or the normalised keypoint distance <=
  ``keypoint_threshold``; among allowed pairs, the assignment minimising the total cost is
  taken (:func:`linear_sum_assignment`, the Hungarian method, O(n^3));
* unmatched people open new tracks with new ids (ids are never reused); a track unmatched for
  more than ``max_missing`` consecutive frames is dropped. Frames with nobody only age tracks.

Nothing assumes a number of people, and nothing is read from file names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from actionfusion.modalities.pose.estimator import PersonPose


def linear_sum_assignment(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost assignment of rows to columns (Hungarian method with potentials).

    Args:
        cost: finite float [N, M].
    Returns:
        (rows, cols): int64 [min(N, M)] each, rows ascending; every row (if N <= M) or every
        column (if N > M) is assigned exactly once and ``cost[rows, cols].sum()`` is minimal.
    """
    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim != 2:
        raise ValueError(f"cost must be 2-D, got shape {cost.shape}")
    if not np.all(np.isfinite(cost)):
        raise ValueError("cost must be finite")
    n, m = cost.shape
    if n == 0 or m == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if n > m:
        cols, rows = linear_sum_assignment(cost.T)
        order = np.argsort(rows)
        return rows[order], cols[order]
    # Shortest augmenting paths with row/column potentials u, v (1-based, column 0 is a sentinel).
    u, v = np.zeros(n + 1), np.zeros(m + 1)
    match = np.zeros(m + 1, np.int64)  # match[j] = row assigned to column j (0 = none)
    way = np.zeros(m + 1, np.int64)
    for i in range(1, n + 1):
        match[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, bool)
        while True:
            used[j0] = True
            i0 = match[j0]
            free = ~used[1:]
            reduced = cost[i0 - 1] - u[i0] - v[1:]
            better = free & (reduced < minv[1:])
            minv[1:][better] = reduced[better]
            way[1:][better] = j0
            candidates = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(candidates)) + 1
            delta = candidates[j1 - 1]
            u[match[used]] += delta
            v[used] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if match[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            match[j0] = match[j1]
            j0 = j1
    cols = np.nonzero(match[1:])[0]
    rows = match[1:][cols] - 1
    order = np.argsort(rows)
    return rows[order].astype(np.int64), cols[order].astype(np.int64)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes a [N, 4] and b [M, 4] (x0, y0, x1, y1) -> float64 [N, M]."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


@dataclass
class Track:
    """One identity: ``box`` [4] and ``keypoints`` [K, 3] as last seen, ``velocity`` [4] px/frame."""

    track_id: int
    box: np.ndarray
    keypoints: Optional[np.ndarray]
    velocity: np.ndarray
    missing: int = 0
    hits: int = 1

    def predicted_box(self) -> np.ndarray:
        return self.box + self.velocity * (self.missing + 1)


class PoseTracker:
    """Assign persistent ids to the people found frame by frame (see the module docstring).

    Args:
        iou_threshold: least IoU (predicted track box vs person box) for a match by boxes.
        max_missing: frames a track may go unmatched before it is dropped.
        keypoint_threshold: largest normalised keypoint distance for a match by keypoints.
        box_weight: weight of the box term in the cost (the rest is the keypoint term).
        min_keypoint_score: joints above this score in both poses enter the keypoint distance.
        velocity_momentum: smoothing of the box velocity (0 = last displacement only).
    """

    def __init__(self, iou_threshold: float = 0.3, max_missing: int = 15, keypoint_threshold: float = 0.5,
                 box_weight: float = 0.5, min_keypoint_score: float = 0.3,
                 velocity_momentum: float = 0.5) -> None:
        if not 0.0 <= box_weight <= 1.0:
            raise ValueError(f"box_weight must be in [0, 1], got {box_weight}")
        if max_missing < 0:
            raise ValueError(f"max_missing must be >= 0, got {max_missing}")
        self.iou_threshold, self.max_missing = float(iou_threshold), int(max_missing)
        self.keypoint_threshold, self.box_weight = float(keypoint_threshold), float(box_weight)
        self.min_keypoint_score, self.velocity_momentum = float(min_keypoint_score), float(velocity_momentum)
        self.reset()

    def reset(self) -> None:
        """Forget all tracks; ids start again at 0."""
        self.tracks: list[Track] = []
        self._next_id = 0

    def _keypoint_distance(self, track: Track, person: PersonPose) -> float:
        """Mean distance of joints confident in both, over the track box diagonal (1.0 if none)."""
        if track.keypoints is None or person.keypoints is None or track.keypoints.shape != person.keypoints.shape:
            return 1.0
        both = (track.keypoints[:, 2] > self.min_keypoint_score) & (person.keypoints[:, 2] > self.min_keypoint_score)
        if not both.any():
            return 1.0
        shift = track.velocity[:2] * (track.missing + 1)
        dist = np.linalg.norm(person.keypoints[both, :2] - (track.keypoints[both, :2] + shift), axis=1).mean()
        diagonal = max(float(np.hypot(track.box[2] - track.box[0], track.box[3] - track.box[1])), 1.0)
        return float(min(dist / diagonal, 1.0))

    def update(self, persons: Sequence[PersonPose]) -> list[int]:
        """Match one frame's people to the tracks; returns their ids, in the order given."""
        boxes = np.array([p.box for p in persons], np.float64).reshape(-1, 4)
        ids = [-1] * len(persons)
        matched_tracks: set[int] = set()
        if self.tracks and len(persons):
            iou = box_iou(np.stack([t.predicted_box() for t in self.tracks]), boxes)
            kdist = np.array([[self._keypoint_distance(t, p) for p in persons] for t in self.tracks])
            cost = self.box_weight * (1.0 - iou) + (1.0 - self.box_weight) * kdist
            allowed = (iou >= self.iou_threshold) | (kdist <= self.keypoint_threshold)
            # Forbidden pairs get a cost above any sum of allowed ones, then are discarded.
            rows, cols = linear_sum_assignment(np.where(allowed, cost, 1.0 + cost.size))
            for r, c in zip(rows, cols):
                if allowed[r, c]:
                    self._refresh(self.tracks[r], persons[c], boxes[c])
                    ids[c] = self.tracks[r].track_id
                    matched_tracks.add(r)
        for index, track in enumerate(self.tracks):
            if index not in matched_tracks:
                track.missing += 1
        self.tracks = [t for t in self.tracks if t.missing <= self.max_missing]
        for c, person in enumerate(persons):
            if ids[c] == -1:
                track = Track(self._next_id, boxes[c].copy(), _copy(person.keypoints), np.zeros(4))
                self.tracks.append(track)
                ids[c] = track.track_id
                self._next_id += 1
        return ids

    def _refresh(self, track: Track, person: PersonPose, box: np.ndarray) -> None:
        step = (box - track.box) / (track.missing + 1)
        track.velocity = self.velocity_momentum * track.velocity + (1.0 - self.velocity_momentum) * step
        if track.hits == 1:
            track.velocity = step
        track.box, track.keypoints = box.copy(), _copy(person.keypoints)
        track.missing, track.hits = 0, track.hits + 1


def _copy(keypoints: Optional[np.ndarray]) -> Optional[np.ndarray]:
    return None if keypoints is None else np.array(keypoints, np.float32, copy=True)
