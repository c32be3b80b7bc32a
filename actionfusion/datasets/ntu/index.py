"""Index of an NTU RGB+D root: which sample has which modality, and where.

Accepted layouts (any subset, mixed freely), relative to the root:

- ``nturgb+d_skeletons/<name>.skeleton``
- ``nturgb+d_rgb/<name>_rgb.avi``
- ``nturgb+d_depth_masked/<name>/MDepth-%08d.png``
- ``nturgb+d_depth/<name>/Depth-%08d.png``
- loose files in the root itself: ``<name>.skeleton``, ``<name>_rgb.avi``, and sample
  directories ``<name>/`` holding ``MDepth-*`` (masked) or ``Depth-*`` frames.

The folder names are those of the official archives (shahroudy/NTURGB-D@ac2ebc8 README).
A depth directory counts when it exists (its frames are only checked when read, so that
scanning 114,480 samples stays fast), except a loose ``<name>/`` directory in the root,
which is classified by looking at its files. Entries whose names do not parse, and
second copies of a sample's modality (the folder layout wins over loose files), are listed
in :attr:`NtuIndex.ignored`.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

from ...errors import SampleNameError
from .depth import FULL_DEPTH_PREFIX, MASKED_DEPTH_PREFIX
from .names import format_sample_name, parse_sample_name

PathLike = Union[str, "os.PathLike[str]"]

SKELETON_DIR = "nturgb+d_skeletons"
RGB_DIR = "nturgb+d_rgb"
DEPTH_MASKED_DIR = "nturgb+d_depth_masked"
DEPTH_DIR = "nturgb+d_depth"
MODALITIES: tuple[str, ...] = ("skeleton", "rgb", "depth_masked", "depth")
_SKELETON_SUFFIX = ".skeleton"
_RGB_SUFFIX = "_rgb.avi"


@dataclass
class SamplePaths:
    """Where one sample's modalities are; ``None`` for a modality that is absent.

    ``depth_masked`` and ``depth`` are directories of PNG frames.
    """

    name: str
    skeleton: Optional[Path] = None
    rgb: Optional[Path] = None
    depth_masked: Optional[Path] = None
    depth: Optional[Path] = None

    def modalities(self) -> tuple[str, ...]:
        """The modalities present, in the order of :data:`MODALITIES`."""
        return tuple(m for m in MODALITIES if getattr(self, m) is not None)


@dataclass
class NtuIndex:
    """The samples found under ``root``, sorted by name, and the entries that were skipped."""

    root: Path
    samples: dict[str, SamplePaths] = field(default_factory=dict)
    ignored: list[Path] = field(default_factory=list)

    def names(self) -> list[str]:
        """All sample names, sorted."""
        return list(self.samples)

    def with_modalities(self, *modalities: str) -> list[str]:
        """Names of the samples that have every one of ``modalities``, sorted."""
        unknown = set(modalities) - set(MODALITIES)
        if unknown:
            raise ValueError(f"unknown modalities {sorted(unknown)}; choose from {MODALITIES}")
        return [n for n, s in self.samples.items() if all(getattr(s, m) is not None for m in modalities)]

    def summary(self) -> dict[str, object]:
        """Counts: ``samples``; per modality; per combination (``"skeleton+rgb"``); ``ignored``."""
        per_modality = {m: sum(getattr(s, m) is not None for s in self.samples.values()) for m in MODALITIES}
        combos = Counter("+".join(s.modalities()) for s in self.samples.values())
        return {
            "samples": len(self.samples),
            **per_modality,
            "combinations": dict(sorted(combos.items())),
            "ignored": len(self.ignored),
        }


def _sample_name(stem: str) -> Optional[str]:
    try:
        return format_sample_name(parse_sample_name(stem))
    except SampleNameError:
        return None


class _Builder:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.samples: dict[str, SamplePaths] = {}
        self.ignored: list[Path] = []

    def put(self, name: str, modality: str, path: Path) -> None:
        sample = self.samples.setdefault(name, SamplePaths(name))
        if getattr(sample, modality) is None:
            setattr(sample, modality, path)
        else:
            self.ignored.append(path)

    def scan_files(self, directory: Path, suffix: str, modality: str) -> None:
        for entry in _entries(directory):
            stem = entry.name[: -len(suffix)] if entry.name.endswith(suffix) else None
            name = _sample_name(stem) if stem is not None and entry.is_file() else None
            if name is None or stem != name:
                self.ignored.append(Path(entry.path))
            else:
                self.put(name, modality, Path(entry.path))

    def scan_depth_dirs(self, directory: Path, modality: str) -> None:
        for entry in _entries(directory):
            name = _sample_name(entry.name) if entry.is_dir() else None
            if name is None or entry.name != name:
                self.ignored.append(Path(entry.path))
            else:
                self.put(name, modality, Path(entry.path))

    def scan_root(self) -> None:
        layout = {SKELETON_DIR, RGB_DIR, DEPTH_MASKED_DIR, DEPTH_DIR}
        loose = []
        for entry in _entries(self.root):
            if entry.name in layout and entry.is_dir():
                continue
            loose.append(entry)
        self.scan_files(self.root / SKELETON_DIR, _SKELETON_SUFFIX, "skeleton")
        self.scan_files(self.root / RGB_DIR, _RGB_SUFFIX, "rgb")
        self.scan_depth_dirs(self.root / DEPTH_MASKED_DIR, "depth_masked")
        self.scan_depth_dirs(self.root / DEPTH_DIR, "depth")
        for entry in loose:
            self.scan_loose(entry)

    def scan_loose(self, entry: "os.DirEntry[str]") -> None:
        path = Path(entry.path)
        if entry.is_file():
            for suffix, modality in ((_SKELETON_SUFFIX, "skeleton"), (_RGB_SUFFIX, "rgb")):
                if entry.name.endswith(suffix):
                    name = _sample_name(entry.name[: -len(suffix)])
                    if name is not None and name == entry.name[: -len(suffix)]:
                        self.put(name, modality, path)
                        return
        elif entry.is_dir() and _sample_name(entry.name) == entry.name:
            prefixes = {child.name.split("-", 1)[0] + "-" for child in _entries(path) if child.name.endswith(".png")}
            if MASKED_DEPTH_PREFIX in prefixes:
                self.put(entry.name, "depth_masked", path)
                return
            if FULL_DEPTH_PREFIX in prefixes:
                self.put(entry.name, "depth", path)
                return
        self.ignored.append(path)


def _entries(directory: Path) -> list["os.DirEntry[str]"]:
    if not directory.is_dir():
        return []
    with os.scandir(directory) as it:
        return sorted(it, key=lambda e: e.name)


def scan_ntu_root(root: PathLike) -> NtuIndex:
    """Find every NTU sample under ``root`` and the modalities it has.

    Returns:
        :class:`NtuIndex` whose ``samples`` are sorted by name.

    Raises:
        NotADirectoryError: ``root`` is not a directory.
    """
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a directory; expected an NTU RGB+D root")
    builder = _Builder(root)
    builder.scan_root()
    samples = {name: builder.samples[name] for name in sorted(builder.samples)}
    return NtuIndex(root=root, samples=samples, ignored=sorted(builder.ignored))
