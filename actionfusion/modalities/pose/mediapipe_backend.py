"""The embedded default pose backend: BlazePose (mediapipe 0.10.14), offline, several people.

Choice: the Tasks API (``mediapipe.tasks.python.vision.PoseLandmarker`` with ``num_poses > 1``)
on a ``.task`` bundle built offline, at first use, from the two TFLite models inside the
mediapipe wheel (:mod:`.mediapipe_bundle`; cached under ``$ACTIONFUSION_CACHE`` or
``~/.cache/actionfusion``). Why: the legacy ``mediapipe.solutions.pose.Pose`` follows one
person only, while NTU's interaction classes have two people and real videos more; the Tasks
API detects and tracks up to ``num_poses`` people with the same models and, measured on the NTU
fixture video, the same landmarks (mean difference about 2 px on 1920x1080). Nothing is
downloaded: the wheel carries only BlazePose "full" (``model_complexity=1``); "lite" and
"heavy" would be downloaded, so they are not offered. The legacy API stays available as
``api="legacy"`` (one person; its built-in tracking), e.g. for a mediapipe build without the
metadata writer.

Output: layout ``"blazepose33"``; keypoints x, y in pixels of the input frame and the landmark
visibility as the score; ``world``: the 33 world landmarks in metres, hip-centred (mediapipe's
axes: x right, y down, z towards the camera negative). The person box is the tight box around
the landmarks with visibility > 0.5.

Device: CPU only. mediapipe's GPU delegate is not built into the Linux Python wheel, so
``device="cuda"`` raises a ValueError (use the mmpose backend on a GPU).

Speed (NTU fixture, 1920x1080, 2 cores shared with other jobs): the Tasks API with
``num_poses=4`` runs 17-26 frames/s on pre-decoded frames (the detector runs on every frame while
fewer than ``num_poses`` people are tracked); the legacy single-person graph about 34.
"""

from __future__ import annotations

import warnings
from typing import Literal, Optional, Sequence

import numpy as np

from actionfusion.errors import MissingDependencyError
from actionfusion.modalities.pose.estimator import PersonPose, box_from_keypoints, register_pose_backend
from actionfusion.modalities.pose.native_log import quiet_native_stderr

INSTALL_HINT = "pip install 'mediapipe==0.10.14' (the version whose wheel ships the BlazePose models)"


def _import_mediapipe():
    # mediapipe 0.10.14 calls protobuf's deprecated SymbolDatabase.GetPrototype on every result
    warnings.filterwarnings("ignore", message=r"SymbolDatabase\.GetPrototype\(\) is deprecated", category=UserWarning)
    try:
        import mediapipe
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(f"the default pose backend needs mediapipe: {INSTALL_HINT}") from exc
    return mediapipe


def check_cpu_device(device: str, backend: str) -> None:
    """Raise ValueError unless ``device`` is "cpu" (for CPU-only backends)."""
    if device == "cpu":
        return
    if str(device).startswith("cuda"):
        raise ValueError(
            f"pose backend {backend!r} runs on the CPU only: mediapipe's GPU delegate is not part of "
            f"the Linux Python wheel. Use device='cpu', or backend='mmpose' on a GPU.")
    raise ValueError(f"unknown device {device!r} for pose backend {backend!r}; use 'cpu'")


class BlazePoseEstimator:
    """BlazePose "full" through mediapipe (see the module docstring).

    Args:
        num_poses: the most people per frame (Tasks API).
        min_detection_confidence: person detector threshold.
        min_presence_confidence: landmark model's "a person is here" threshold (Tasks API).
        min_tracking_confidence: below it, the next frame re-runs the detector.
        fps: the frame rate used to time-stamp frames (the landmark smoothing uses time).
        api: "tasks" (several people) or "legacy" (``solutions.pose``, one person).
        cache_dir: where the Tasks bundle is cached (default ``$ACTIONFUSION_CACHE`` or
            ``~/.cache/actionfusion``).
        box_min_visibility: landmarks above this visibility define the person box.
    """

    layout = "blazepose33"

    def __init__(self, num_poses: int = 4, min_detection_confidence: float = 0.5,
                 min_presence_confidence: float = 0.5, min_tracking_confidence: float = 0.5,
                 fps: float = 30.0, api: Literal["tasks", "legacy"] = "tasks",
                 cache_dir: Optional[str] = None, box_min_visibility: float = 0.5) -> None:
        if api not in ("tasks", "legacy"):
            raise ValueError(f"api must be 'tasks' or 'legacy', got {api!r}")
        if num_poses < 1:
            raise ValueError(f"num_poses must be >= 1, got {num_poses}")
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.num_poses, self.api, self.fps = int(num_poses), api, float(fps)
        self.min_detection_confidence = float(min_detection_confidence)
        self.min_presence_confidence = float(min_presence_confidence)
        self.min_tracking_confidence = float(min_tracking_confidence)
        self.cache_dir, self.box_min_visibility = cache_dir, float(box_min_visibility)
        self._mp = _import_mediapipe()
        self._model = None
        self._frame_count = 0
        self.reset()

    def _create_model(self):
        mp = self._mp
        if self.api == "legacy":
            return mp.solutions.pose.Pose(
                static_image_mode=False, model_complexity=1, smooth_landmarks=True,
                min_detection_confidence=self.min_detection_confidence,
                min_tracking_confidence=self.min_tracking_confidence)
        from mediapipe.tasks.python import BaseOptions, vision

        from actionfusion.modalities.pose.mediapipe_bundle import blazepose_bundle_path

        options = vision.PoseLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(blazepose_bundle_path(self.cache_dir))),
            running_mode=vision.RunningMode.VIDEO, num_poses=self.num_poses,
            min_pose_detection_confidence=self.min_detection_confidence,
            min_pose_presence_confidence=self.min_presence_confidence,
            min_tracking_confidence=self.min_tracking_confidence,
            output_segmentation_masks=False)
        return vision.PoseLandmarker.create_from_options(options)

    def reset(self) -> None:
        """Start a new video: drop the tracking state (a fresh mediapipe graph, built with the native
        start-up log lines kept off the console: :mod:`.native_log`)."""
        self.close()
        with quiet_native_stderr():
            self._model = self._create_model()
        self._frame_count = 0

    def close(self) -> None:
        """Release the mediapipe graph."""
        if self._model is not None:
            with quiet_native_stderr():
                self._model.close()
            self._model = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown; nothing left to release into
            self._model = None

    def estimate(self, frames: Sequence[np.ndarray]) -> list[list[PersonPose]]:
        """Estimate the people in consecutive uint8 [H, W, 3] RGB frames (one list per frame)."""
        if self._model is None:
            raise RuntimeError("estimator is closed")
        out = []
        for frame in frames:
            frame = np.ascontiguousarray(frame)
            if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                raise ValueError(f"expected a uint8 [H, W, 3] RGB frame, got {frame.dtype} {frame.shape}")
            height, width = frame.shape[:2]
            if self.api == "legacy":
                result = self._model.process(frame)
                lists = [] if result.pose_landmarks is None else [
                    (result.pose_landmarks.landmark, result.pose_world_landmarks.landmark)]
            else:
                image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=frame)
                timestamp_ms = int(round(self._frame_count * 1000.0 / self.fps))
                result = self._model.detect_for_video(image, timestamp_ms)
                lists = list(zip(result.pose_landmarks, result.pose_world_landmarks))
            self._frame_count += 1
            out.append([self._person(lm, wl, width, height) for lm, wl in lists])
        return out

    def _person(self, landmarks, world_landmarks, width: int, height: int) -> PersonPose:
        keypoints = np.array([(p.x * width, p.y * height, p.visibility) for p in landmarks], np.float32)
        keypoints[:, 2] = np.clip(np.nan_to_num(keypoints[:, 2]), 0.0, 1.0)
        world = np.array([(p.x, p.y, p.z) for p in world_landmarks], np.float32)
        return PersonPose(keypoints, box_from_keypoints(keypoints, self.box_min_visibility), world)


@register_pose_backend("default", "blazepose")
def _create_blazepose(device: str = "cpu", **kwargs) -> BlazePoseEstimator:
    check_cpu_device(device, "default (BlazePose)")
    return BlazePoseEstimator(**kwargs)
