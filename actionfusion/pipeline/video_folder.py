"""A folder of your own videos: which videos, their sample names, labels and (optional) splits.

Three ways to label (:func:`scan_video_folder`):

- **class sub-folders**: ``ROOT/<class>/<video>`` (deeper folders below a class are allowed); the
  classes are the sub-folder names in sorted order;
- **a labels file** (``--labels FILE``): CSV with a header row naming ``video`` and ``label`` and
  optionally ``split`` (train / val / test; give it on every row or on none). ``video`` is a path
  relative to ROOT (or absolute); the classes are the labels in sorted order;
- **none**: every video of ROOT unlabelled (for pretraining or feature extraction).

A sample's name is the video's path below ROOT without its suffix, folders joined by ``__`` and
every character outside letters, digits and ``_.+-`` replaced by ``_`` (``walk/clip 1.mp4`` ->
``walk__clip_1``): one plain path component, so that no name read from disk leaves the store.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

from ..errors import FileFormatError, UsageError
from ..io import read_csv_rows

PathLike = Union[str, "os.PathLike[str]"]

VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
"""File suffixes taken for videos (case-insensitive)."""
NTU_FOLDERS: tuple[str, ...] = ("nturgb+d_skeletons", "nturgb+d_rgb", "nturgb+d_depth_masked", "nturgb+d_depth")
SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")
MAX_NAME_CHARS = 200
_UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]")


class LabelsFileError(FileFormatError):
    """A labels file of your own videos does not follow its format (the line is named)."""


@dataclass(frozen=True)
class FolderVideo:
    """One video of the folder: sample name, path, class name (None: unlabelled), split (None: to draw)."""

    name: str
    path: Path
    label: Optional[str] = None
    split: Optional[str] = None


def is_video_folder(root: PathLike) -> bool:
    """True for a folder that is not an NTU RGB+D root and holds at least one video (at any depth)."""
    root = Path(root)
    if not root.is_dir() or any((root / folder).is_dir() for folder in NTU_FOLDERS):
        return False
    return any(p.suffix.lower() in VIDEO_SUFFIXES and p.is_file() for p in root.rglob("*"))


def sample_name_of(relative: PathLike) -> str:
    """The sample name of a video at ``relative`` below the root (see the module docstring)."""
    parts = list(Path(relative).with_suffix("").parts)
    name = "__".join(_UNSAFE.sub("_", part) for part in parts if part not in ("", ".", ".."))
    name = name.lstrip("._") or "video"
    return name[:MAX_NAME_CHARS]


def _videos_below(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def scan_video_folder(root: PathLike, labels_file: Optional[PathLike] = None) -> list[FolderVideo]:
    """The videos of ``root`` with names, labels and splits (see the module docstring), sorted by name.

    Raises:
        UsageError: no video; videos both at the top level and in class folders; two videos with one
            sample name.
        LabelsFileError: a bad labels file (its line is named).
    """
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"{root}: no such folder of videos")
    if labels_file is not None:
        videos = _read_labels_file(root, Path(labels_file))
    else:
        top = sorted(p for p in root.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
        classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and _videos_below(p))
        if top and classes:
            raise UsageError(f"{root}: holds videos at the top level ({top[0].name}) and in class folders "
                             f"({classes[0].name}/): move the top-level videos into class folders, or label them "
                             "with --labels FILE")
        if classes:
            videos = [FolderVideo(sample_name_of(v.relative_to(root)), v, folder.name)
                      for folder in classes for v in _videos_below(folder)]
        else:
            videos = [FolderVideo(sample_name_of(v.relative_to(root)), v) for v in _videos_below(root)]
    if not videos:
        raise UsageError(f"{root}: no video ({', '.join(VIDEO_SUFFIXES)}) found")
    seen: dict[str, Path] = {}
    for video in videos:
        if video.name in seen:
            raise UsageError(f"{video.path} and {seen[video.name]} both become sample {video.name!r}: rename one")
        seen[video.name] = video.path
    return sorted(videos, key=lambda v: v.name)


def _read_labels_file(root: Path, path: Path) -> list[FolderVideo]:
    try:
        header, rows = read_csv_rows(path)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such labels file") from None
    except FileFormatError as err:
        raise LabelsFileError(path, err.reason) from None
    if "video" not in header or "label" not in header:
        raise LabelsFileError(path, "the header row must name the columns video and label (and optionally split); "
                                    f"it names {', '.join(header) or 'nothing'}", line=1)
    videos: list[FolderVideo] = []
    with_split = without_split = 0
    for line, values in rows:
        video, label, split = values.get("video", ""), values.get("label", ""), values.get("split", "").lower()
        if not video:
            raise LabelsFileError(path, "the video column is empty", line=line)
        if not label:
            raise LabelsFileError(path, f"video {video!r} has no label", line=line)
        if split and split not in SPLIT_NAMES:
            raise LabelsFileError(path, f"split {split!r} of video {video!r} is not one of train, val, test", line=line)
        file = Path(video).expanduser()
        file = file if file.is_absolute() else root / file
        if not file.is_file():
            raise LabelsFileError(path, f"video {video!r} does not exist (looked for {file})", line=line)
        try:
            relative = file.resolve().relative_to(root.resolve())
        except ValueError:
            relative = Path(file.name)
        with_split += bool(split)
        without_split += not split
        videos.append(FolderVideo(sample_name_of(relative), file, label, split or None))
    if with_split and without_split:
        raise LabelsFileError(path, f"{with_split} rows give a split and {without_split} do not: give a split on "
                                    "every row, or on none (a stratified split is then drawn)")
    return videos


def class_names(videos: Sequence[FolderVideo]) -> list[str]:
    """The sorted class names of the labelled videos."""
    return sorted({v.label for v in videos if v.label is not None})
