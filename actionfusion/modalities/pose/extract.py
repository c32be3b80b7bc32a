"""``extract_poses``: one video in, tracked poses out, decoding overlapped with inference.

A background thread decodes the video frame by frame (never the whole video in memory) into
a bounded queue; the calling thread runs the estimator on batches taken from it and feeds the
:class:`~actionfusion.modalities.pose.tracking.PoseTracker`. PyAV/FFmpeg and mediapipe both
release the GIL while they work, so decoding hides behind inference. The tracks are then
assembled into a :class:`~actionfusion.modalities.pose.estimator.PoseSequence` [M, T, K, 3].
"""

from __future__ import annotations

import os
import queue
import threading
from typing import Iterator, Optional, Union

import numpy as np

from actionfusion.errors import VideoDecodeError
from actionfusion.modalities.pose.estimator import PoseEstimator, PoseSequence, create_pose_estimator
from actionfusion.modalities.pose.tracking import PoseTracker
from actionfusion.modalities.rgb.video import open_video
from actionfusion.modalities.skeleton.layouts import get_layout

_END = object()


class _ErrorBox:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def iter_frames_in_background(video, stride: int = 1, queue_size: int = 8) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (frame index, uint8 [H, W, 3]) for every ``stride``-th frame, decoded by a thread.

    At most ``queue_size`` decoded frames wait at any time. An error in the decoder thread is
    re-raised here; stopping the iteration early stops the thread.
    """
    frames: "queue.Queue[object]" = queue.Queue(maxsize=queue_size)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                frames.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def decode() -> None:
        try:
            for index, frame in enumerate(video.iter_frames()):
                if index % stride == 0 and not put((index, frame)):
                    return
                if stop.is_set():
                    return
            put(_END)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, which re-raises it
            put(_ErrorBox(error))

    thread = threading.Thread(target=decode, name="pose-decode", daemon=True)
    thread.start()
    try:
        while True:
            item = frames.get()
            if item is _END:
                return
            if isinstance(item, _ErrorBox):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()


def extract_poses(
    video_path: Union[str, "os.PathLike[str]"],
    backend: Union[str, PoseEstimator] = "default",
    device: str = "cpu",
    max_persons: Optional[int] = None,
    stride: int = 1,
    progress: bool = False,
    batch_size: int = 8,
    tracker: Optional[PoseTracker] = None,
    video_backend: str = "pyav",
    **backend_kwargs,
) -> PoseSequence:
    """Estimate and track the poses of every person in a video.

    Args:
        video_path: the video file.
        backend: a pose backend name (:func:`create_pose_estimator`) or an estimator instance
            (then ``device`` and ``backend_kwargs`` are unused; it is ``reset()`` first, its
            ``fps`` attribute, if any, set to the video's, and it is left open for reuse).
        device: "cpu" or "cuda[:N]" where the backend supports it.
        max_persons: keep at most this many tracks, those with the largest summed keypoint
            score (i.e. the longest and most confident); None keeps all.
        stride: use every ``stride``-th frame (fps is divided by it).
        progress: show a tqdm progress bar.
        batch_size: frames handed to the estimator per call.
        tracker: the tracker (default ``PoseTracker()``); it is reset first.
        video_backend: decoder (see :func:`~actionfusion.modalities.rgb.video.open_video`).
        **backend_kwargs: options for the backend (e.g. ``num_poses``).
    Returns:
        a :class:`PoseSequence`: keypoints float32 [M, T, K, 3] (x, y pixels, score; zeros where a
        track is absent), ``world`` [M, T, K, 3] or None, ``frame_size`` (height, width), ``fps``,
        ``track_ids`` [M], ``frame_indices`` [T]. M is 0 when nobody was found.
    Raises:
        VideoDecodeError: the file is missing, empty, corrupt or has no decodable frame.
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if max_persons is not None and max_persons < 0:
        raise ValueError(f"max_persons must be >= 0, got {max_persons}")
    tracker = tracker or PoseTracker()
    tracker.reset()
    per_frame: list[dict[int, tuple[np.ndarray, Optional[np.ndarray]]]] = []
    frame_indices: list[int] = []
    with open_video(video_path, backend=video_backend) as video:  # a missing/empty file fails here, first
        if isinstance(backend, str):
            estimator = create_pose_estimator(backend, device=device, **backend_kwargs)
        else:
            estimator = backend
            estimator.reset()
        fps, frame_size = float(video.fps), tuple(int(v) for v in video.frame_size)
        if hasattr(estimator, "fps") and fps > 0:
            estimator.fps = fps / stride
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=max(video.num_frames // stride, 0) or None, desc=os.path.basename(str(video_path)),
                       unit="frame", disable=None)
        try:
            batch: list[tuple[int, np.ndarray]] = []
            for item in iter_frames_in_background(video, stride):
                batch.append(item)
                if len(batch) == batch_size:
                    _run_batch(estimator, tracker, batch, per_frame, frame_indices, bar)
                    batch = []
            if batch:
                _run_batch(estimator, tracker, batch, per_frame, frame_indices, bar)
        finally:
            if bar is not None:
                bar.close()
            if isinstance(backend, str) and hasattr(estimator, "close"):
                estimator.close()  # ours to release; an estimator passed in stays open for reuse
    if not per_frame:
        raise VideoDecodeError(video_path, "no frame could be decoded", where="frame 0")
    return _assemble(per_frame, np.asarray(frame_indices, np.int64), estimator.layout,
                     fps / stride if fps > 0 else 0.0, frame_size, max_persons)  # type: ignore[arg-type]


def _run_batch(estimator, tracker, batch, per_frame, frame_indices, bar) -> None:
    results = estimator.estimate([frame for _, frame in batch])
    for (index, _), persons in zip(batch, results):
        ids = tracker.update(persons)
        per_frame.append({tid: (p.keypoints, p.world) for tid, p in zip(ids, persons)})
        frame_indices.append(index)
    if bar is not None:
        bar.update(len(batch))


def _assemble(per_frame, frame_indices: np.ndarray, layout: str, fps: float, frame_size: tuple[int, int],
              max_persons: Optional[int]) -> PoseSequence:
    """Tracks into arrays: [M, T, K, 3], tracks ordered by first appearance then id."""
    first_seen: dict[int, int] = {}
    total_score: dict[int, float] = {}
    num_joints, has_world = None, False
    for t, people in enumerate(per_frame):
        for tid, (keypoints, world) in people.items():
            first_seen.setdefault(tid, t)
            total_score[tid] = total_score.get(tid, 0.0) + float(keypoints[:, 2].sum())
            num_joints = keypoints.shape[0]
            has_world |= world is not None
    ids = sorted(first_seen, key=lambda tid: (first_seen[tid], tid))
    if max_persons is not None and len(ids) > max_persons:
        keep = set(sorted(ids, key=lambda tid: -total_score[tid])[:max_persons])
        ids = [tid for tid in ids if tid in keep]
    k = num_joints if num_joints is not None else get_layout(layout).num_joints
    keypoints = np.zeros((len(ids), len(per_frame), k, 3), np.float32)
    world = np.zeros_like(keypoints) if has_world else None
    row = {tid: m for m, tid in enumerate(ids)}
    for t, people in enumerate(per_frame):
        for tid, (kp, wl) in people.items():
            if tid in row:
                keypoints[row[tid], t] = kp
                if world is not None and wl is not None:
                    world[row[tid], t] = wl
    return PoseSequence(keypoints, layout, fps, frame_size, world, ids, frame_indices)
