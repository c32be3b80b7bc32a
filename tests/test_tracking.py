"""PoseTracker and the Hungarian assignment, on synthetic boxes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from actionfusion.modalities.pose.estimator import PersonPose
from actionfusion.modalities.pose.tracking import PoseTracker, box_iou, linear_sum_assignment


def _person(x0: float, y0: float, w: float = 100.0, h: float = 300.0) -> PersonPose:
    """A box-only person with 4 keypoints at the box corners (score 1)."""
    corners = np.array([[x0, y0, 1], [x0 + w, y0, 1], [x0, y0 + h, 1], [x0 + w, y0 + h, 1]], np.float32)
    return PersonPose(corners, (x0, y0, x0 + w, y0 + h), None)


def _brute_force(cost: np.ndarray) -> float:
    n, m = cost.shape
    if n <= m:
        return min(cost[np.arange(n), list(p)].sum() for p in itertools.permutations(range(m), n))
    return min(cost[list(p), np.arange(m)].sum() for p in itertools.permutations(range(n), m))


def test_assignment_is_optimal_on_random_small_matrices() -> None:
    rng = np.random.default_rng(5)
    for _ in range(200):
        n, m = (int(v) for v in rng.integers(1, 6, size=2))
        cost = rng.random((n, m)) * float(rng.choice([1.0, 100.0]))
        if rng.random() < 0.3:
            cost = np.round(cost)  # ties
        rows, cols = linear_sum_assignment(cost)
        assert len(rows) == len(cols) == min(n, m)
        assert len(set(rows.tolist())) == len(rows) and len(set(cols.tolist())) == len(cols)
        assert cost[rows, cols].sum() == pytest.approx(_brute_force(cost), abs=1e-9)


def test_assignment_beats_greedy_where_greedy_fails() -> None:
    # Greedy takes the 0 first and is forced into 10; optimal pays 1 + 1.
    cost = np.array([[0.0, 1.0], [1.0, 10.0]])
    rows, cols = linear_sum_assignment(cost)
    assert cost[rows, cols].sum() == 2.0
    assert linear_sum_assignment(np.zeros((0, 3)))[0].shape == (0,)


def test_box_iou() -> None:
    iou = box_iou(np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]]))
    np.testing.assert_allclose(iou, [[1.0, 1 / 3, 0.0]])


def test_two_people_crossing_keep_their_ids() -> None:
    tracker = PoseTracker()
    ids_a, ids_b = [], []
    # A moves right, B left, same height: their boxes overlap almost fully mid-way (10 px apart at
    # t = 20), where the last box of each track overlaps the *other* person more: only the motion
    # prediction keeps the identities.
    for t in range(41):
        a, b = _person(100 + 20 * t, 200), _person(910 - 20 * t, 200)
        ids = tracker.update([b, a] if t % 2 else [a, b])  # order of detections must not matter
        ida, idb = (ids[1], ids[0]) if t % 2 else (ids[0], ids[1])
        ids_a.append(ida)
        ids_b.append(idb)
    assert set(ids_a) == {ids_a[0]} and set(ids_b) == {ids_b[0]} and ids_a[0] != ids_b[0]


def test_person_leaving_and_new_one_entering_gets_new_id() -> None:
    tracker = PoseTracker(max_missing=3)
    first = [tracker.update([_person(100 + 5 * t, 200)])[0] for t in range(5)]
    assert len(set(first)) == 1
    for _ in range(4):  # gone for longer than max_missing: the track is dropped
        assert tracker.update([]) == []
    assert tracker.tracks == []
    newcomer = tracker.update([_person(125, 200)])[0]  # even where the old one was
    assert newcomer != first[0]


def test_short_gap_keeps_id_and_empty_frames() -> None:
    tracker = PoseTracker(max_missing=5)
    assert tracker.update([]) == []  # nobody at the start
    start = tracker.update([_person(100, 200)])[0]
    tracker.update([_person(110, 200)])
    for _ in range(3):
        tracker.update([])
    # Back after 3 empty frames, moved on at the same velocity: same id.
    assert tracker.update([_person(150, 200)])[0] == start


def test_people_entering_get_distinct_ids_with_no_fixed_count() -> None:
    tracker = PoseTracker()
    seen: set[int] = set()
    for t in range(6):  # one more person each frame, far apart, all staying
        ids = tracker.update([_person(300 * k, 100) for k in range(t + 1)])
        assert len(set(ids)) == t + 1
        assert ids[:t] == sorted(seen)  # the ones already there keep theirs
        seen |= set(ids)
    assert len(seen) == 6
