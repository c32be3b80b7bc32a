"""Which videos a batch pose extraction runs over, and the sample name of each.

Inputs are NTU-format roots (every sample with an RGB video), list files (one video path a
line) and video files. A video's sample is its NTU name when the file name parses as one
(``<name>_rgb.avi``, label ``action - 1``), else its file stem with no label: no label is
ever guessed from a non-NTU file name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

from ..datasets.ntu.index import scan_ntu_root
from ..datasets.ntu.names import format_sample_name, parse_sample_name
from ..errors import SampleNameError, StoreError

PathLike = Union[str, "os.PathLike[str]"]

LIST_SUFFIXES = (".txt", ".lst", ".list")
"""An input file with one of these suffixes is a list of videos, one path a line."""


@dataclass(frozen=True)
class VideoJob:
    """One video to extract: its sample name, path and label (None unless the name is NTU's)."""

    name: str
    video: str
    label: Optional[int] = None


def sample_name_for_video(path: PathLike) -> tuple[str, Optional[int]]:
    """(sample name, label) of a video: the NTU name and label when ``<name>[_rgb].ext`` parses,
    else (file stem, None). A leading dot is replaced (hidden names are staging leftovers)."""
    stem = Path(path).stem
    for candidate in (stem[: -len("_rgb")] if stem.endswith("_rgb") else None, stem):
        if candidate:
            try:
                sample = parse_sample_name(candidate)
            except SampleNameError:
                continue
            return format_sample_name(sample), sample.label
    return ("_" + stem[1:] if stem.startswith(".") else stem) or "video", None


def collect_video_jobs(inputs: Union[PathLike, Sequence[Union[PathLike, VideoJob]]]) -> list[VideoJob]:
    """The videos named by ``inputs``, sorted by sample name.

    Args:
        inputs: one or more of: an NTU-format root directory (every sample that has an RGB
            video, via :func:`~actionfusion.datasets.ntu.index.scan_ntu_root`); a list file
            (``.txt``/``.lst``/``.list``: one video path a line, ``#`` comments, relative paths
            taken from the list's folder); a video file; a :class:`VideoJob` (name and label given).
            A missing video is kept (it becomes a failure-report entry).
    Raises:
        StoreError: a list file that cannot be read, or two videos that map to one sample name.
    """
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    jobs: dict[str, VideoJob] = {}

    def add(job: VideoJob) -> None:
        if job.name in jobs and jobs[job.name].video != job.video:
            raise StoreError(f"{job.video}: maps to sample {job.name!r} like {jobs[job.name].video}; rename one")
        jobs[job.name] = job

    for item in items:
        if isinstance(item, VideoJob):  # named and labelled by the caller (your own videos' prepare)
            add(item)
            continue
        path = Path(item)
        if path.is_dir():
            index = scan_ntu_root(path)
            for name in index.with_modalities("rgb"):
                add(VideoJob(name, str(index.samples[name].rgb), parse_sample_name(name).label))
        elif path.suffix.lower() in LIST_SUFFIXES:
            for video in _read_video_list(path):
                add(VideoJob(*_named(video)))
        else:
            add(VideoJob(*_named(path)))
    return [jobs[name] for name in sorted(jobs)]


def _named(video: Path) -> tuple[str, str, Optional[int]]:
    name, label = sample_name_for_video(video)
    return name, str(video), label


def _read_video_list(path: Path) -> list[Path]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise StoreError(f"{path}: unreadable video list ({err})") from err
    videos = []
    for line in lines:
        entry = line.split("#", 1)[0].strip()
        if entry:
            video = Path(entry).expanduser()
            videos.append(video if video.is_absolute() else path.parent / video)
    return videos
