"""The 2D pose estimator contract, the backend registry, and the per-video result.

A pose estimator takes RGB frames and returns, per frame, the people it found, each as a
:class:`PersonPose` (keypoints in pixels of the input frame in a named joint layout, a box,
optionally 3D world keypoints). Identities across frames are *not* the estimator's job:
:class:`~actionfusion.modalities.pose.tracking.PoseTracker` assigns them, and
:func:`~actionfusion.modalities.pose.extract.extract_poses` assembles the tracks of one video
into a :class:`PoseSequence`.

Backends register under a name with :func:`register_pose_backend`; :func:`create_pose_estimator`
builds one by name. Built in:

* ``"default"`` (alias ``"blazepose"``): BlazePose through mediapipe, offline, several people
  (:mod:`.mediapipe_backend`).
* ``"mmpose"``: a person detector plus a top-down mmpose model (RTMPose, HRNet), the optional
  ``[mmpose]`` extra (:mod:`.mmpose_backend`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Protocol, Sequence, runtime_checkable

import numpy as np

from ...errors import UsageError
from actionfusion.modalities.skeleton.layouts import convert_layout, get_layout

Box = tuple[float, float, float, float]


@dataclass
class PersonPose:
    """One person in one frame.

    Attributes:
        keypoints: float32 [K, 3]: x, y in pixels of the input frame (x right, y down), and a
            score in [0, 1] (BlazePose: landmark visibility; mmpose: keypoint score).
        box: (x0, y0, x1, y1) in pixels.
        world: float32 [K, 3] in metres (BlazePose: hip-centred, y down) or None.
    """

    keypoints: np.ndarray
    box: Box
    world: Optional[np.ndarray] = None


@runtime_checkable
class PoseEstimator(Protocol):
    """Frames in, people out. ``layout`` names the joint order of ``keypoints``."""

    layout: str

    def estimate(self, frames: Sequence[np.ndarray]) -> list[list[PersonPose]]:
        """Estimate poses in consecutive frames (uint8 [H, W, 3] RGB each).

        Returns one list per frame, one :class:`PersonPose` per person found (possibly none).
        Consecutive calls are treated as a continuing video until :meth:`reset`.
        """
        ...

    def reset(self) -> None:
        """Forget any state carried between frames (call between videos)."""
        ...


PoseBackendFactory = Callable[..., PoseEstimator]
POSE_BACKENDS: dict[str, PoseBackendFactory] = {}


def register_pose_backend(*names: str) -> Callable[[PoseBackendFactory], PoseBackendFactory]:
    """Register a factory ``f(device: str, **kwargs) -> PoseEstimator`` under one or more names."""

    def decorate(factory: PoseBackendFactory) -> PoseBackendFactory:
        for name in names:
            if name in POSE_BACKENDS:
                raise ValueError(f"pose backend {name!r} is already registered")
            POSE_BACKENDS[name] = factory
        return factory

    return decorate


def _register_builtin_backends() -> None:
    # Imported here, not at module top, so that the backends can import this module.
    from actionfusion.modalities.pose import mediapipe_backend, mmpose_backend  # noqa: F401


def list_pose_backends() -> tuple[str, ...]:
    """Names accepted by :func:`create_pose_estimator`."""
    _register_builtin_backends()
    return tuple(sorted(POSE_BACKENDS))


def create_pose_estimator(backend: str = "default", device: str = "cpu", **kwargs) -> PoseEstimator:
    """Build a pose estimator by backend name.

    Args:
        backend: a name from :func:`list_pose_backends` ("default", "blazepose", "mmpose").
        device: "cpu", "cuda" or "cuda:N" (what the backend supports; BlazePose is CPU only).
        **kwargs: backend options (see the backend's class).
    Raises:
        ValueError: unknown backend, or a device the backend cannot use.
        ImportError: the backend's optional dependency is not installed (the message says how).
    """
    _register_builtin_backends()
    if backend not in POSE_BACKENDS:
        raise UsageError(f"unknown pose backend {backend!r}; known: {sorted(POSE_BACKENDS)}")
    return POSE_BACKENDS[backend](device=device, **kwargs)


def box_from_keypoints(keypoints: np.ndarray, min_score: float = 0.0) -> Box:
    """The tight box (x0, y0, x1, y1) around keypoints [K, 3] whose score > ``min_score``.

    Falls back to all keypoints when none pass the threshold.
    """
    keep = keypoints[:, 2] > min_score
    xy = keypoints[keep, :2] if keep.any() else keypoints[:, :2]
    x0, y0 = xy.min(axis=0)
    x1, y1 = xy.max(axis=0)
    return float(x0), float(y0), float(x1), float(y1)


@dataclass
class PoseSequence:
    """The tracked poses of one video.

    Attributes:
        keypoints: float32 [M, T, K, 3]: x, y pixels and score per track, frame and joint;
            all zeros where a track is absent in a frame.
        layout: the joint layout name of K (e.g. "blazepose33").
        fps: frames per second of the sequence (the video's fps divided by the stride).
        frame_size: (height, width) in pixels of the frames the keypoints refer to.
        world: float32 [M, T, K, 3] metres where the backend gives 3D, zeros where absent; or None.
        track_ids: M tracker identities, in the order of axis 0.
        frame_indices: int64 [T], the video frame each time step was taken from.
    """

    keypoints: np.ndarray
    layout: str
    fps: float
    frame_size: tuple[int, int]
    world: Optional[np.ndarray] = None
    track_ids: list[int] = field(default_factory=list)
    frame_indices: Optional[np.ndarray] = None

    @property
    def num_persons(self) -> int:
        return int(self.keypoints.shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.keypoints.shape[1])

    def present(self) -> np.ndarray:
        """bool [M, T]: whether each track has a pose in each frame."""
        return np.any(self.keypoints != 0, axis=(2, 3))

    def to_layout(self, layout: str) -> "PoseSequence":
        """The same sequence with joints converted to ``layout`` (by joint name; see
        :func:`~actionfusion.modalities.skeleton.layouts.convert_layout`; joints with no
        source are zero). Scores are converted like coordinates (an approximated joint gets
        the mean score of its sources)."""
        if get_layout(layout).name == get_layout(self.layout).name:
            return self
        k = convert_layout(self.keypoints, self.layout, layout)
        w = None if self.world is None else convert_layout(self.world, self.layout, layout)
        return PoseSequence(k, get_layout(layout).name, self.fps, self.frame_size, w,
                            list(self.track_ids), self.frame_indices)
