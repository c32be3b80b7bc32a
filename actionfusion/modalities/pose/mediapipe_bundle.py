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

Newer mediapipe (0.10.15 and later, 1.x; the releases with Python 3.13 wheels) ships no model in
its wheel. Then the released bundle :data:`RELEASED_BUNDLE_URL` is used instead: fetched once at
first use into ``<cache>/mediapipe/pose_landmarker_full.task`` (atomically), or placed there by
hand on a machine without network (the one-line error says where). Google publishes no checksum
for it, so the file is checked by its content (a zip holding the detector and the landmark
model) and a damaged file is removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import urllib.error
import zipfile
from pathlib import Path

from actionfusion.errors import MissingDependencyError
from actionfusion.io import atomic_write_bytes, cache_dir, download_url

# Input normalisation of the BlazePose models (mediapipe modules/pose_detection and
# modules/pose_landmark graphs: ImageToTensorCalculator output ranges [-1, 1] and [0, 1]).
DETECTOR_NORM_MEAN_STD = (127.5, 127.5)
LANDMARKS_NORM_MEAN_STD = (0.0, 255.0)
# The models inside the mediapipe wheel (model_complexity=1, "full": the only one shipped).
WHEEL_DETECTOR = ("modules", "pose_detection", "pose_detection.tflite")
WHEEL_LANDMARKS = ("modules", "pose_landmark", "pose_landmark_full.tflite")
BUNDLE_FORMAT_VERSION = 1
RELEASED_BUNDLE_URL = ("https://storage.googleapis.com/mediapipe-models/pose_landmarker/pose_landmarker_full/"
                       "float16/1/pose_landmarker_full.task")
"""Google's PoseLandmarker "full" bundle, version 1 (the URL mediapipe's own samples download)."""
RELEASED_BUNDLE_NAME = "pose_landmarker_full.task"
BUNDLE_MEMBERS = ("pose_detector.tflite", "pose_landmarks_detector.tflite")


def pose_cache_dir() -> Path:
    """Where built model bundles are cached: the library's cache (:func:`actionfusion.io.cache_dir`)."""
    return cache_dir()


def _wheel_models() -> "tuple[Path, Path] | None":
    """The two BlazePose models inside the installed mediapipe wheel, or None (a release without them)."""
    import mediapipe

    root = Path(mediapipe.__file__).resolve().parent
    detector, landmarks = root.joinpath(*WHEEL_DETECTOR), root.joinpath(*WHEEL_LANDMARKS)
    return (detector, landmarks) if detector.is_file() and landmarks.is_file() else None


def bundle_problem(path: Path) -> "str | None":
    """Why ``path`` is not a PoseLandmarker bundle (None when it is one)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (OSError, zipfile.BadZipFile) as error:
        return f"not a .task bundle ({error})"
    missing = [m for m in BUNDLE_MEMBERS if m not in names]
    return f"a .task bundle without {', '.join(missing)}" if missing else None


def released_bundle_path(cache_dir: "os.PathLike[str] | str | None" = None) -> Path:
    """The released PoseLandmarker bundle in the cache, downloaded first when missing (module docstring).

    Raises:
        MissingDependencyError: it cannot be downloaded (one line: the URL and where to put the file),
            or the file there is not a bundle (it is removed).
    """
    target = Path(cache_dir or pose_cache_dir()) / "mediapipe" / RELEASED_BUNDLE_NAME
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            download_url(RELEASED_BUNDLE_URL, target)
        except (urllib.error.URLError, OSError) as error:
            raise MissingDependencyError(
                f"this mediapipe ships no BlazePose model and {RELEASED_BUNDLE_URL} could not be downloaded "
                f"({error}): download it elsewhere and put it at {target}, or install mediapipe==0.10.14 "
                "(Python <= 3.12), whose wheel carries the model") from None
    problem = bundle_problem(target)
    if problem is not None:
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
        raise MissingDependencyError(f"{target}: {problem}; it was removed: download {RELEASED_BUNDLE_URL} again")
    return target


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
    """Path of the PoseLandmarker bundle built from the installed wheel, building it if needed; with
    a mediapipe that ships no model, the released bundle (:func:`released_bundle_path`).

    Args:
        cache_dir: where to cache it; default :func:`pose_cache_dir`.
    Returns:
        the ``.task`` file (``<cache>/mediapipe/pose_landmarker_full-<hash>.task``, or
        ``<cache>/mediapipe/pose_landmarker_full.task`` for the released one).
    """
    models = _wheel_models()
    if models is None:
        return released_bundle_path(cache_dir)
    detector_path, landmarks_path = models
    detector, landmarks = detector_path.read_bytes(), landmarks_path.read_bytes()
    digest = hashlib.sha256(detector + landmarks + str(BUNDLE_FORMAT_VERSION).encode()).hexdigest()[:16]
    target = Path(cache_dir or pose_cache_dir()) / "mediapipe" / f"pose_landmarker_full-{digest}.task"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, build_pose_bundle_bytes(detector, landmarks))
    return target
