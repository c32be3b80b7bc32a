"""Detect actions in an untrimmed sequence or video, and evaluate over PKU-MMD-format folders.

:func:`detect` takes a PKU-MMD skeleton file (``.txt``, Kinect-25 joints), a skeleton array in the
model's convention, or a video (poses extracted with the embedded BlazePose estimator; needs a
model trained on extracted poses, since a video cannot give the Kinect skeleton exactly). It
scores sliding windows (:mod:`.frame_scores`), smooths, groups and suppresses (:mod:`.segments`).

:func:`evaluate_folder` runs it over ``ROOT/skeleton/*.txt`` with ``ROOT/label/*.txt`` and writes
``detections.jsonl`` and ``metrics.json`` (mAP per IoU threshold, :mod:`.detection_map`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from ...datasets.pku_mmd import read_pku_labels, read_pku_skeleton
from ...datasets.skeleton_conventions import SENSOR_CONVENTION
from ...errors import ActionFusionError, UsageError, one_line
from ...io import atomic_write_json, atomic_write_text
from ..live.window_classifier import WindowClassifier
from .detection_map import PKU_IOU_THRESHOLDS, GroundTruth, Interpolation, Matching, detection_map
from .frame_scores import FrameScores, score_frames, window_argmax_segments
from .segments import Segment, SmoothingMethod, extract_segments, smooth_scores, temporal_nms

PathLike = Union[str, "os.PathLike[str]"]
log = logging.getLogger(__name__)

SKELETON_SUFFIXES = (".txt",)
"""Inputs read as PKU-MMD skeleton files; anything else is taken for a video."""
DETECTIONS_FILE, METRICS_FILE = "detections.jsonl", "metrics.json"


@dataclass(frozen=True)
class DetectionOptions:
    """How sequences become segments.

    The defaults were tuned on 10 synthetic untrimmed sequences of seed 100 (actions of 36-48
    frames, the trained synthetic CTR-GCN), not on the sequences a benchmark reports.

    Attributes:
        window: sliding-window length in frames; None takes the model's ``data.clip_len``.
        stride: frames between window starts.
        smoothing: ``"none"``, ``"mean"`` or ``"gaussian"`` along time.
        smoothing_width: moving-average frames, or the Gaussian's sigma in frames.
        thresholds: flooding levels of :func:`~.segments.extract_segments`.
        min_length: shortest segment kept, frames.
        require_top: a frame counts for a class only where it is the frame's top class.
        nms_iou: per-class NMS drops a segment overlapping a better one by more than this IoU.
        classes: 0-based labels that may be detected; None: all of the model's.
        batch_size: windows per forward pass.
    """

    window: Optional[int] = 40
    stride: int = 4
    smoothing: SmoothingMethod = "gaussian"
    smoothing_width: float = 4.0
    thresholds: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8)
    min_length: int = 24
    require_top: bool = False
    nms_iou: float = 0.3
    classes: Optional[tuple[int, ...]] = None
    batch_size: int = 32

    def validate(self) -> None:
        """Raise UsageError on an out-of-range option."""
        if self.window is not None and self.window < 1:
            raise UsageError(f"window must be >= 1 frame, got {self.window}")
        if self.stride < 1 or self.min_length < 1 or self.batch_size < 1:
            raise UsageError("stride, min_length and batch_size must be >= 1")
        if not self.thresholds or not all(0.0 <= t <= 1.0 for t in self.thresholds):
            raise UsageError(f"thresholds must be a non-empty list in [0, 1], got {list(self.thresholds)}")
        if not 0.0 <= self.nms_iou <= 1.0:
            raise UsageError(f"nms_iou must lie in [0, 1], got {self.nms_iou}")
        if self.smoothing not in ("none", "mean", "gaussian"):
            raise UsageError(f"unknown smoothing {self.smoothing!r}; choose none, mean or gaussian")


@dataclass
class Detection:
    """What :func:`detect` found in one sequence.

    Attributes:
        sequence: the sequence ID (file stem, or the given name).
        segments: kept segments by decreasing score.
        scores: the sliding-window scores (per frame and per window).
        num_frames: T.
        seconds: wall time of scoring and grouping (model loading and file reading excluded).
        baseline: the window-argmax segments of the same scores (no smoothing, thresholds or NMS).
    """

    sequence: str
    segments: list[Segment]
    scores: FrameScores
    num_frames: int
    seconds: float
    baseline: list[Segment] = field(default_factory=list)


def load_classifier(checkpoint: Union[PathLike, WindowClassifier], device: str = "cpu") -> WindowClassifier:
    """A :class:`WindowClassifier` from a work dir / checkpoint path, or the one given."""
    if isinstance(checkpoint, WindowClassifier):
        return checkpoint
    return WindowClassifier.from_checkpoint(checkpoint, device=device)


def read_input(source: Union[PathLike, np.ndarray], classifier: WindowClassifier) -> np.ndarray:
    """float32 [M, T, V, 3] in the classifier's convention from an array, a PKU-MMD skeleton file or a video.

    Raises:
        UsageError: a video for a model that reads the Kinect skeleton, or a missing file.
    """
    if isinstance(source, np.ndarray):
        return np.asarray(source, dtype=np.float32)
    path = Path(source)
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    if path.suffix.lower() in SKELETON_SUFFIXES:
        if classifier.convention != SENSOR_CONVENTION:
            raise UsageError(f"{path}: a PKU-MMD skeleton file holds Kinect-25 joints; the model reads "
                             f"{classifier.convention} (give it a video instead)")
        return read_pku_skeleton(path)
    if classifier.convention == SENSOR_CONVENTION:
        raise UsageError(f"{path}: the model reads sensor skeletons ({SENSOR_CONVENTION}); detection in a video needs "
                         "a model trained on extracted poses (data.skeleton_source: coco17 or blazepose33)")
    from ...modalities.pose.extract import extract_poses

    poses = extract_poses(path)
    if poses.world is None:
        raise UsageError(f"{path}: the pose backend gives no world keypoints; detection needs 3D poses")
    return classifier.from_pose_world(poses.world, poses.layout)


def segments_from_scores(frame_scores: np.ndarray, options: DetectionOptions) -> list[Segment]:
    """Smooth ``frame_scores`` [T, C], group into candidates, suppress per class."""
    smoothed = smooth_scores(frame_scores, options.smoothing, options.smoothing_width)
    candidates = extract_segments(smoothed, options.thresholds, options.min_length, options.require_top,
                                  options.classes)
    return temporal_nms(candidates, options.nms_iou)


def detect(source: Union[PathLike, np.ndarray], checkpoint: Union[PathLike, WindowClassifier],
           options: DetectionOptions = DetectionOptions(), sequence: Optional[str] = None,
           out: Optional[PathLike] = None, device: str = "cpu") -> Detection:
    """Detect actions in one untrimmed sequence or video.

    Args:
        source: a PKU-MMD skeleton ``.txt``, a video, or float [M, T, V, 3] in the model's convention.
        checkpoint: a training work dir / checkpoint, or a loaded :class:`WindowClassifier`.
        options: window, smoothing, grouping and NMS settings.
        sequence: the ID written with the segments (default: the file stem, or ``"sequence"``).
        out: if given, the segments are written to ``out/<sequence>.jsonl`` (atomically).
        device: torch device for a checkpoint path.
    Returns:
        :class:`Detection`; ``baseline`` holds :func:`~.frame_scores.window_argmax_segments`.
    """
    options.validate()
    classifier = load_classifier(checkpoint, device)
    skeleton = read_input(source, classifier)
    name = sequence or (Path(source).stem if not isinstance(source, np.ndarray) else "sequence")
    began = time.perf_counter()
    window = options.window or classifier.clip_len
    scores = score_frames(classifier, skeleton, window, options.stride, options.batch_size)
    segments = segments_from_scores(scores.frames, options)
    seconds = time.perf_counter() - began
    result = Detection(sequence=name, segments=segments, scores=scores, num_frames=int(skeleton.shape[1]),
                       seconds=seconds, baseline=window_argmax_segments(scores))
    log.info("%s: %d frames, %d segments, %.1f frames/s", name, result.num_frames, len(segments),
             result.num_frames / max(seconds, 1e-9))
    if out is not None:
        write_segments_jsonl(Path(out) / f"{name}.jsonl", {name: segments}, classifier)
    return result


def segment_lines(sequence: str, segments: Sequence[Segment], classifier: Optional[WindowClassifier]) -> list[str]:
    """JSON lines: sequence, 0-based label, 1-based action_id, class name, start, end (frames ``[start, end)``), score."""
    lines = []
    for seg in segments:
        row = {"sequence": sequence, "label": seg.label, "action_id": seg.label + 1,
               "name": classifier.class_name(seg.label) if classifier is not None else None,
               "start": seg.start, "end": seg.end, "score": round(seg.score, 6)}
        lines.append(json.dumps(row))
    return lines


def write_segments_jsonl(path: PathLike, segments: dict[str, Sequence[Segment]],
                         classifier: Optional[WindowClassifier] = None) -> None:
    """Write every sequence's segments as JSON lines to ``path``, atomically."""
    lines = [line for name, items in segments.items() for line in segment_lines(name, items, classifier)]
    atomic_write_text(path, "".join(line + "\n" for line in lines))


def read_truths(path: PathLike, num_classes: int) -> list[GroundTruth]:
    """Ground truths of a PKU-MMD label file (0-based labels; frames as written, ``[start, end)``)."""
    return [GroundTruth(a.label, a.start_frame, a.end_frame) for a in read_pku_labels(path, num_classes)]


def find_sequences(root: PathLike, labels: Optional[PathLike] = None) -> list[tuple[Path, Path]]:
    """(skeleton, label) file pairs: ``root/skeleton/*.txt`` with ``labels`` (default ``root/label``)/<stem>.txt.

    ``root`` may also be one skeleton file, with ``labels`` its label file.

    Raises:
        UsageError: nothing to evaluate, or a skeleton without its label file.
    """
    root = Path(root)
    if root.is_file():
        if labels is None or not Path(labels).is_file():
            raise UsageError(f"{root}: evaluating one sequence needs its label file (--labels FILE)")
        return [(root, Path(labels))]
    skeleton_dir = root / "skeleton" if (root / "skeleton").is_dir() else root
    label_dir = Path(labels) if labels is not None else root / "label"
    pairs = []
    for skeleton in sorted(skeleton_dir.glob("*.txt")):
        label = label_dir / skeleton.name
        if not label.is_file():
            raise UsageError(f"{skeleton}: no label file {label}")
        pairs.append((skeleton, label))
    if not pairs:
        raise UsageError(f"{skeleton_dir}: no skeleton files (*.txt)")
    return pairs


def evaluate_folder(root: PathLike, checkpoint: Union[PathLike, WindowClassifier], out: PathLike,
                    options: DetectionOptions = DetectionOptions(), labels: Optional[PathLike] = None,
                    iou_thresholds: Sequence[float] = PKU_IOU_THRESHOLDS, matching: Matching = "greedy",
                    interpolation: Interpolation = "all_point", device: str = "cpu") -> dict:
    """Detect in every sequence of a PKU-MMD-format folder and score against its labels.

    Writes ``out/detections.jsonl`` and ``out/metrics.json`` (atomically). Returns the metrics:
    ``map`` (threshold -> mAP), ``ap`` per class, ``baseline_map`` (window argmax, no smoothing or
    NMS), counts, throughput (frames/s of scoring and grouping), the options, and ``failed``: the
    sequences whose skeleton or label file could not be read ({sequence: one-line reason}), left out
    of the scores and logged (the others go on).

    Raises:
        UsageError: no sequence to evaluate, or every sequence failed.
    """
    classifier = load_classifier(checkpoint, device)
    detections: dict[str, list[Segment]] = {}
    baseline: dict[str, list[Segment]] = {}
    truths: dict[str, list[GroundTruth]] = {}
    failed: dict[str, str] = {}
    frames, seconds = 0, 0.0
    pairs = find_sequences(root, labels)
    for skeleton_path, label_path in pairs:
        try:
            sequence_truths = read_truths(label_path, classifier.num_classes)
            result = detect(skeleton_path, classifier, options)
        except ActionFusionError as error:
            failed[skeleton_path.stem] = one_line(error)
            log.warning("left out %s: %s", skeleton_path.stem, one_line(error))
            continue
        truths[result.sequence] = sequence_truths
        detections[result.sequence] = result.segments
        baseline[result.sequence] = result.baseline
        frames += result.num_frames
        seconds += result.seconds
    if not truths:
        raise UsageError(f"{root}: none of the {len(pairs)} sequences could be read; first: "
                         f"{next(iter(failed.items()))[0]}: {next(iter(failed.values()))}")
    scored = detection_map(detections, truths, iou_thresholds, matching, interpolation)
    reference = detection_map(baseline, truths, iou_thresholds, matching, interpolation)
    metrics = {
        "map": scored["map"], "ap": {k: {str(c): v for c, v in aps.items()} for k, aps in scored["ap"].items()},
        "baseline_map": reference["map"], "classes": scored["classes"],
        "num_sequences": len(truths), "num_truths": scored["num_truths"],
        "num_detections": scored["num_detections"], "num_frames": frames,
        "frames_per_second": frames / max(seconds, 1e-9), "matching": matching, "interpolation": interpolation,
        "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(options).items()},
        "window": options.window or classifier.clip_len, "failed": failed,
    }
    out = Path(out)
    write_segments_jsonl(out / DETECTIONS_FILE, detections, classifier)
    atomic_write_json(out / METRICS_FILE, metrics)
    log.info("detection mAP %s over %d sequences (%d actions)",
             {k: round(v, 3) for k, v in scored["map"].items()}, len(truths), scored["num_truths"])
    return metrics
