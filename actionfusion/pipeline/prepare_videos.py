"""``actionfusion prepare VIDEO_DIR --out STORE``: your own videos into a sample store that trains.

For every video of the folder (:mod:`.video_folder`: class sub-folders, a labels CSV, or no labels):

1. 2D poses with the default extractor (MediaPipe BlazePose: several people, tracked) and its world
   3D keypoints, through the batch pose extraction (:mod:`.extract_poses`: worker processes,
   resumable, a bad video recorded in ``pose_failures.json`` and skipped);
2. person-cropped RGB frames around the extracted poses (:mod:`~actionfusion.datasets.store.sample_rgb`;
   ``rgb_size=0`` skips them);
3. for labelled videos, the store's benchmark file ``STORE/splits/<benchmark>.json`` (default
   ``videos``): the labels file's splits, or a stratified, seeded train / val / test split of the
   videos whose poses were extracted (``val_fraction``, ``test_fraction``, ``seed``), with the class
   names. ``data.benchmark: videos`` then trains on it, ``model.num_classes: auto`` takes its class
   count, and ``data.skeleton_source: coco17`` (or ``blazepose33``, ``coco17_2d``) reads the poses.

The stratified split is per video: two videos of one person or scene can land on both sides.
Give a ``split`` column in the labels file to control it.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from ..datasets.benchmarks import stratified_split, write_benchmark_file
from ..datasets.store.sample_update import sample_has_modality
from ..errors import UsageError, one_line
from .extract_poses import extract_poses_batch
from .extract_poses_inputs import VideoJob
from .video_folder import FolderVideo, class_names, scan_video_folder

PathLike = Union[str, "os.PathLike[str]"]
logger = logging.getLogger(__name__)

DEFAULT_BENCHMARK = "videos"


@dataclass
class VideoPrepareReport:
    """What :func:`prepare_videos` did."""

    store: str
    num_videos: int
    num_extracted: int = 0
    num_skipped: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    splits: dict[str, int] = field(default_factory=dict)
    benchmark_file: Optional[str] = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def summary_text(self) -> str:
        lines = [f"{self.store}: {self.num_videos} videos, {self.num_extracted} extracted now, "
                 f"{self.num_skipped} already done, {len(self.failures)} failed ({self.seconds:.1f} s)"]
        if self.benchmark_file:
            counts = ", ".join(f"{k} {v}" for k, v in self.splits.items())
            lines.append(f"{len(self.classes)} classes; benchmark {self.benchmark_file} ({counts})")
        else:
            lines.append("no labels: the store serves pretraining and feature extraction")
        for failure in self.failures[:20]:
            lines.append(f"  failed {failure['sample']} ({failure['video']}): {failure['error']}")
        return "\n".join(lines)


def prepare_videos(root: PathLike, out: PathLike, *, labels_file: Optional[PathLike] = None,
                   benchmark: str = DEFAULT_BENCHMARK, val_fraction: float = 0.1, test_fraction: float = 0.2,
                   seed: int = 0, workers: int = 2, progress: bool = True, rgb_size: int = 192,
                   rgb_quality: int = 75, max_persons: Optional[int] = None, backend: str = "default",
                   estimator_factory: Any = None, limit: Optional[int] = None) -> VideoPrepareReport:
    """Prepare a folder of videos into the store ``out`` (see the module docstring). Resumable:
    a rerun skips videos whose poses (and crops) are stored, and redraws nothing that was drawn.

    Raises:
        UsageError: a bad folder, fractions or benchmark name.
        LabelsFileError: a bad labels file (its line is named).
    """
    if not (0.0 <= val_fraction < 1.0 and 0.0 < test_fraction < 1.0 and val_fraction + test_fraction < 1.0):
        raise UsageError(f"--val-fraction {val_fraction} and --test-fraction {test_fraction} must lie in [0, 1) "
                         "and (0, 1) and leave some videos for training")
    if not 0 <= int(rgb_size) <= 4096 or not 1 <= int(rgb_quality) <= 100:
        raise UsageError(f"--rgb-size {rgb_size} must lie in 0..4096 (0: no crops) and --rgb-quality {rgb_quality} "
                         "in 1..100")
    if max_persons is not None and not 1 <= int(max_persons) <= 64:
        raise UsageError(f"--max-actors {max_persons} must lie in 1..64")
    from ..io import safe_component

    safe_component(benchmark, "benchmark name")
    start = time.perf_counter()
    videos = scan_video_folder(root, labels_file)
    if limit is not None:
        videos = videos[: max(int(limit), 0)]
    classes = class_names(videos)
    index = {name: i for i, name in enumerate(classes)}
    jobs = [VideoJob(v.name, str(v.path), index[v.label] if v.label is not None else None) for v in videos]
    poses = extract_poses_batch(jobs, out, backend=backend, workers=workers, progress=progress,
                                max_persons=max_persons, estimator_factory=estimator_factory, source=str(root))
    report = VideoPrepareReport(store=str(out), num_videos=len(videos), num_extracted=poses.num_extracted,
                                num_skipped=poses.num_skipped, classes=classes)
    report.failures = [{"sample": f.sample, "video": f.video, "error": f"{f.error_type}: {f.message}"}
                       for f in poses.failures]
    extracted = [v for v in videos if sample_has_modality(out, v.name, "pose2d")]
    if rgb_size > 0:
        report.failures += _add_crops(out, extracted, rgb_size, rgb_quality, progress)
    failed = {f["sample"] for f in report.failures}
    usable = [v for v in extracted if v.name not in failed]
    if classes and usable:
        splits = _splits(usable, index, val_fraction, test_fraction, seed)
        path = write_benchmark_file(out, benchmark, classes, splits,
                                    source=f"actionfusion prepare {root} (seed {seed}, val {val_fraction}, "
                                           f"test {test_fraction})")
        report.benchmark_file = str(path)
        report.splits = {k: len(v) for k, v in splits.items()}
        if not splits["train"] or not splits["test"]:
            logger.warning("%s: the %s benchmark has %d training and %d test videos; label more videos per class",
                           path, benchmark, len(splits["train"]), len(splits["test"]))
    report.seconds = time.perf_counter() - start
    return report


def _splits(videos: list[FolderVideo], index: dict[str, int], val_fraction: float, test_fraction: float,
            seed: int) -> dict[str, list[str]]:
    """The labels file's splits when it gives them, else a stratified seeded draw."""
    if all(v.split is not None for v in videos):
        return {s: sorted(v.name for v in videos if v.split == s) for s in ("train", "val", "test")}
    return stratified_split([v.name for v in videos], [index[v.label] for v in videos if v.label is not None],
                            {"val": val_fraction, "test": test_fraction}, seed)


def _add_crops(out: PathLike, videos: list[FolderVideo], size: int, quality: int, progress: bool
               ) -> list[dict[str, str]]:
    """Person-cropped RGB for every video whose sample lacks it; the failures, recorded and skipped."""
    from ..datasets.store.sample_rgb import add_person_rgb

    todo = [v for v in videos if not sample_has_modality(out, v.name, "rgb")]
    failures = []
    bar = _bar(len(todo), progress)
    for video in todo:
        try:
            add_person_rgb(out, video.name, video.path, size=size, jpeg_quality=quality)
        except Exception as err:  # one bad video must never stop the batch
            failures.append({"sample": video.name, "video": str(video.path), "error": f"{type(err).__name__}: "
                                                                                       f"{one_line(err)}"})
            logger.warning("%s: person crop failed: %s", video.path, one_line(err))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return failures


def _bar(total: int, enabled: bool) -> Any:
    if not enabled or total == 0:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="person crops", unit="video")
