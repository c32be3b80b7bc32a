"""Frames in, per-person action scores out: pose model, tracker, ring buffers and a skeleton model.

:class:`LiveRecognizer` is the one per-frame step shared by ``actionfusion recognize`` (a file,
every frame) and ``actionfusion stream`` (a live source, the newest frame):

1. the pose estimator finds the people of the frame (keypoints in pixels, world keypoints);
2. the tracker gives them identities across frames;
3. each person's world keypoints, in the model's convention, go into that person's ring buffer of
   T frames (:class:`~.person_windows.PersonWindows`). The buffers follow the *source's* timeline:
   when frames were dropped between two processed ones (a live source, recognition behind), each
   person present in both gets the dropped frames by linear interpolation of its two skeletons
   (people seen in only one of them are absent there), so a window spans the same time as the
   model's training clips did at the source's frame rate, not more;
4. every ``step`` frames, each person present now with at least ``min_frames`` frames in the
   window is classified, all people in one batch (:class:`~.window_classifier.WindowClassifier`).
   Each person is classified alone (``[1, T, V, 3]``, the model's other person slots zero).

A :class:`WindowResult` per classified person carries the top-k classes and the latency from the
frame's arrival to its scores.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ...modalities.pose.estimator import PersonPose, PoseEstimator
from ...modalities.pose.tracking import PoseTracker
from .person_windows import PersonWindows
from .window_classifier import WindowClassifier


@dataclass
class WindowResult:
    """The scores of one person's window.

    Attributes:
        frame: the source frame index the window ends on.
        track: the person's track id.
        top: ``[(label, name, probability), ...]``, best first.
        box: (x0, y0, x1, y1) in pixels of the source (before any scaling while decoding).
        latency_ms: from the frame's arrival to these scores.
        scores: float32 [num_classes] softmax probabilities.
    """

    frame: int
    track: int
    top: list[tuple[int, str, float]]
    box: tuple[float, float, float, float]
    latency_ms: float
    scores: np.ndarray = field(repr=False)

    def to_json(self, all_scores: bool = False) -> dict:
        """The JSON-lines record; ``all_scores`` adds ``"scores"``, every class's probability by label."""
        record = {"frame": self.frame, "track": self.track, "latency_ms": round(self.latency_ms, 2),
                  "box": [round(float(v), 1) for v in self.box],
                  "top": [{"label": label, "name": name, "score": round(score, 4)} for label, name, score in self.top]}
        if all_scores:
            record["scores"] = [round(float(v), 6) for v in self.scores]
        return record


@dataclass
class FrameResult:
    """What one processed frame gave.

    Attributes:
        frame: the source frame index.
        people: ``{track id: PersonPose}`` found in it.
        windows: the persons classified on this frame (empty between recognition steps).
        pose_ms: seconds spent in the pose model and the tracker, in ms.
    """

    frame: int
    people: dict[int, PersonPose]
    windows: list[WindowResult]
    pose_ms: float


class LiveRecognizer:
    """Estimate, track, buffer and classify, one frame at a time (module docstring).

    Args:
        estimator: the pose estimator (its world keypoints feed the model).
        classifier: the skeleton model.
        window: T, frames per window (default: the model's ``clip_len``).
        step: classify every ``step`` processed frames.
        min_frames: the fewest frames with the person in the window before it is classified
            (default: half the window).
        top_k: classes reported per window.
        tracker: the tracker (default ``PoseTracker()``).
    """

    def __init__(self, estimator: PoseEstimator, classifier: WindowClassifier, window: Optional[int] = None,
                 step: int = 8, min_frames: Optional[int] = None, top_k: int = 5,
                 tracker: Optional[PoseTracker] = None) -> None:
        if step < 1:
            raise ValueError(f"step must be >= 1, got {step}")
        self.estimator = estimator
        self.classifier = classifier
        self.window = int(window or classifier.clip_len)
        self.step = int(step)
        self.min_frames = int(min_frames if min_frames is not None else max(1, self.window // 2))
        self.top_k = max(1, min(int(top_k), classifier.num_classes))
        self.tracker = tracker or PoseTracker()
        self.buffers = PersonWindows(self.window, classifier.num_joints, max_missing=self.tracker.max_missing)
        self.latest: dict[int, WindowResult] = {}
        self.processed = 0
        self._last: Optional[tuple[int, dict[int, np.ndarray]]] = None  # (frame index, skeletons) last pushed

    def reset(self) -> None:
        """Start a new video."""
        self.estimator.reset()
        self.tracker.reset()
        self.buffers = PersonWindows(self.window, self.classifier.num_joints, max_missing=self.tracker.max_missing)
        self.latest = {}
        self.processed = 0
        self._last = None

    def push(self, frame_index: int, skeletons: dict[int, np.ndarray]) -> None:
        """Add frame ``frame_index``'s skeletons ``{track: [V, 3]}`` to the buffers, the frames dropped
        since the last one filled by interpolation (module docstring, step 3)."""
        if self._last is not None:
            last_index, last = self._last
            gap = min(frame_index - last_index - 1, self.window)
            for k in range(max(gap, 0)):
                w = (k + 1) / (gap + 1)
                self.buffers.push({tid: (1 - w) * last[tid] + w * skeleton
                                   for tid, skeleton in skeletons.items() if tid in last})
        self.buffers.push(skeletons)
        self._last = (frame_index, skeletons)

    def skeleton_of(self, person: PersonPose) -> np.ndarray:
        """float32 [V, 3]: the person's world keypoints in the model's convention."""
        if person.world is None:
            raise ValueError("the pose estimator gives no world keypoints; use the default (BlazePose) backend")
        return self.classifier.from_pose_world(person.world[None], self.estimator.layout)[0]

    def process(self, frame_index: int, image: np.ndarray, arrived: Optional[float] = None,
                scale: float = 1.0) -> FrameResult:
        """Run one frame (uint8 [H, W, 3] RGB; ``scale`` source pixels per pixel of it) through the
        steps of the module docstring."""
        arrived = time.perf_counter() if arrived is None else arrived
        begin = time.perf_counter()
        persons = self.estimator.estimate([image])[0]
        ids = self.tracker.update(persons)
        people = {int(tid): person for tid, person in zip(ids, persons)}
        self.push(frame_index, {tid: self.skeleton_of(p) for tid, p in people.items()})
        pose_ms = (time.perf_counter() - begin) * 1000.0
        self.processed += 1
        windows: list[WindowResult] = []
        if self.processed % self.step == 0:
            windows = self.classify(frame_index, people, arrived, scale)
        for tid in list(self.latest):
            if tid not in self.buffers.tracks:
                del self.latest[tid]
        return FrameResult(frame_index, people, windows, pose_ms)

    def classify(self, frame_index: int, people: dict[int, PersonPose], arrived: float,
                 scale: float = 1.0) -> list[WindowResult]:
        """Classify the windows of the people present now (module docstring, step 4)."""
        tids = [tid for tid in people if self.buffers.frames_present(tid) >= self.min_frames]
        if not tids:
            return []
        scores = self.classifier.scores([self.buffers.window(tid)[None] for tid in tids])
        done = time.perf_counter()
        results = []
        for tid, probs in zip(tids, scores):
            order = np.argsort(-probs, kind="stable")[: self.top_k]
            top = [(int(c), self.classifier.class_name(int(c)), float(probs[c])) for c in order]
            result = WindowResult(frame_index, tid, top, tuple(float(v) * scale for v in people[tid].box),
                                  (done - arrived) * 1000.0, probs)
            self.latest[tid] = result
            results.append(result)
        return results
