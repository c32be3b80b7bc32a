"""Build mediapipe's PoseLandmarker ``.task`` bundle offline from the models inside the wheel.

The mediapipe 0.10.14 wheel ships BlazePose's two TFLite models (used by the legacy
``solutions.pose`` graph) but no ``.task`` bundle for the Tasks API, whose
``vision.PoseLandmarker`` is the one that finds several people. A bundle is a zip, stored
uncompressed (4-byte aligned, so it can be memory-mapped), holding
``pose_detector.tflite`` and ``pose_landmarks_detector.tflite``, each with TFLite metadata
that tells the Tasks runtime how to normalise the input image. This module adds that metadata
with mediapipe's own metadata writer and zips the two models; nothing is downloaded.

Normalisation (value = (pixel - mean) / std), as the legacy graphs feed the same models:
the detector takes [-1, 1] (mean 127.5, std 127.5), the landmark model [0, 1] (mean 0,
std 255). Built this way the Tasks API gives the legacy API's landmarks (measured on the NTU
fixture video: mean difference about 2 px on 1920x1080, the legacy graph also smoothing).

The bundle is cached under :func:`pose_cache_dir` (``$ACTIONFUSION_CACHE`` or
``~/.cache/actionfusion``), named by a hash of the two source models, and written atomically
(temporary file then rename), so concurrent workers never see half a file. It takes about a
second to build.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

from actionfusion.io import atomic_write_bytes

# Input normalisation of the BlazePose models (mediapipe modules/pose_detection and
# modules/pose_landmark graphs: ImageToTensorCalculator output ranges [-1, 1] and [0, 1]).
DETECTOR_NORM_MEAN_STD = (127.5, 127.5)
LANDMARKS_NORM_MEAN_STD = (0.0, 255.0)
# The models inside the mediapipe wheel (model_complexity=1, "full": the only one shipped).
WHEEL_DETECTOR = ("modules", "pose_detection", "pose_detection.tflite")
WHEEL_LANDMARKS = ("modules", "pose_landmark", "pose_landmark_full.tflite")
BUNDLE_FORMAT_VERSION = 1


def pose_cache_dir() -> Path:
    """Where built model bundles are cached: ``$ACTIONFUSION_CACHE`` or ``~/.cache/actionfusion``."""
    env = os.environ.get("ACTIONFUSION_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "actionfusion"


def _wheel_models() -> tuple[Path, Path]:
    import mediapipe

    root = Path(mediapipe.__file__).resolve().parent
    detector, landmarks = root.joinpath(*WHEEL_DETECTOR), root.joinpath(*WHEEL_LANDMARKS)
    for path in (detector, landmarks):
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: BlazePose model missing from the mediapipe wheel; the default pose backend "
                f"needs mediapipe 0.10.x (tested: 0.10.14), which ships it")
    return detector, landmarks


def _with_image_metadata(model: bytes, name: str, mean: float, std: float) -> bytes:
    """Return the TFLite model with metadata: one RGB image input normalised by (mean, std)."""
    from mediapipe.tasks.python.metadata.metadata_writers import metadata_writer, writer_utils

    buffer = bytearray(model)
    writer = metadata_writer.MetadataWriter.create(buffer)
    writer.add_general_info(name).add_image_input(norm_mean=[mean], norm_std=[std])
    for i in range(len(writer_utils.get_output_tensor_types(buffer))):
        writer.add_feature_output(name=f"output_{i}")
    content, _ = writer.populate()
    return bytes(content)


def build_pose_bundle_bytes(detector: bytes, landmarks: bytes) -> bytes:
    """The ``.task`` zip (uncompressed, aligned) for a detector and a landmark model."""
    from mediapipe.tasks.python.metadata.metadata_writers.model_asset_bundle_utils import AlignZipFile

    out = io.BytesIO()
    with AlignZipFile(out, mode="w", alignment=4) as archive:
        archive.writestr("pose_detector.tflite",
                         _with_image_metadata(detector, "pose_detector", *DETECTOR_NORM_MEAN_STD))
        archive.writestr("pose_landmarks_detector.tflite",
                         _with_image_metadata(landmarks, "pose_landmarks_detector", *LANDMARKS_NORM_MEAN_STD))
    return out.getvalue()


def blazepose_bundle_path(cache_dir: "os.PathLike[str] | str | None" = None) -> Path:
    """Path of the PoseLandmarker bundle built from the installed wheel, building it if needed.

    Args:
        cache_dir: where to cache it; default :func:`pose_cache_dir`.
    Returns:
        the ``.task`` file (``<cache>/mediapipe/pose_landmarker_full-<hash>.task``).
    """
    detector_path, landmarks_path = _wheel_models()
    detector, landmarks = detector_path.read_bytes(), landmarks_path.read_bytes()
    digest = hashlib.sha256(detector + landmarks + str(BUNDLE_FORMAT_VERSION).encode()).hexdigest()[:16]
    target = Path(cache_dir or pose_cache_dir()) / "mediapipe" / f"pose_landmarker_full-{digest}.task"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, build_pose_bundle_bytes(detector, landmarks))
    return target
