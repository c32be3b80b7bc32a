"""What feature extraction runs on: user inputs resolved into samples, raw ones prepared on the fly.

An input is one of:

- a video file (``.avi``, ``.mp4``, ...). When its name is an NTU sample name
  (``SsssCcccPpppRrrrAaaa_rgb.avi``) the sample's ``.skeleton`` file and masked-depth folder are
  picked up too, where they exist beside the video or in the NTU root layout
  (``nturgb+d_skeletons/<name>.skeleton``, ``nturgb+d_depth_masked/<name>/``) under the video's
  folder or the folder above it (a video in ``ROOT/nturgb+d_rgb/`` finds ``ROOT``'s files).
  Any other name gives the video alone;
- a ``.skeleton`` file (the skeleton alone);
- a masked-depth folder of ``MDepth-%08d.png`` frames (depth alone);
- :class:`RawSample` with explicit paths;
- :class:`StoreSample`, a sample of a prepared store, or its string form ``"STORE_DIR::NAME"``
  (``"STORE_DIR::*"``: every sample of the store).

Raw inputs are then prepared into a cache of small stores (:mod:`.feature_cache`).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Union

from ..datasets.ntu.depth import MASKED_DEPTH_PREFIX
from ..datasets.ntu.index import DEPTH_MASKED_DIR, SKELETON_DIR, SamplePaths
from ..datasets.ntu.names import format_sample_name, parse_sample_name
from ..datasets.store.prepare_sample import SOURCE_FOR_MODALITY
from ..datasets.store.sample_store import SampleStore
from ..errors import ActionFusionError, SampleNameError, StoreError

PathLike = Union[str, "os.PathLike[str]"]

VIDEO_SUFFIXES: tuple[str, ...] = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg")
"""File suffixes taken as videos."""
SKELETON_SUFFIX = ".skeleton"
STORE_SEPARATOR = "::"
"""``"STORE_DIR::NAME"``: a sample of a prepared store (``::*`` for all of them)."""

STORE_MODALITIES_OF_SOURCE: dict[str, tuple[str, ...]] = {
    "skeleton": ("skeleton", "pose2d_sensor"),
    "rgb": ("rgb",),
    "depth_masked": ("depth", "points"),
}
"""Stored modalities each raw source can give (pose2d_sensor comes with the skeleton)."""


class FeatureInputError(ActionFusionError):
    """An input cannot be used for feature extraction (missing file, unknown kind, no usable modality).

    Attributes:
        input: the input as the user gave it (a short text).
    """

    def __init__(self, input_label: str, reason: str) -> None:
        self.input = input_label
        self.reason = reason
        super().__init__(f"{input_label}: {reason}")


class MissingModalityError(FeatureInputError):
    """The input provides none of the modalities the model reads (or not all of a single-stream model's)."""


class SamplePreparationError(FeatureInputError):
    """Preparing a raw input failed.

    Attributes:
        stage: the first failed stage (``skeleton``, ``rgb``, ``depth``, ``points`` or ``publish``).
        path: the source file of that stage (None for ``publish``).
        failures: every (stage, "ErrorType: message") the preparation recorded.
    """

    def __init__(self, input_label: str, failures: list[tuple[str, str]], paths: SamplePaths) -> None:
        self.failures = list(failures) or [("sample", "StoreError: nothing was prepared")]
        self.stage = self.failures[0][0]
        source = SOURCE_FOR_MODALITY.get(self.stage)
        self.path: Optional[str] = str(getattr(paths, source)) if source and getattr(paths, source) else None
        details = "; ".join(f"[{stage}] {error}" for stage, error in self.failures)
        where = f" (stage {self.stage!r}, file {self.path})" if self.path else f" (stage {self.stage!r})"
        super().__init__(input_label, f"preparing the sample failed{where}: {details}")


@dataclass(frozen=True)
class RawSample:
    """A raw recording given by explicit paths (any may be None, not all).

    Attributes:
        video: an RGB video file.
        skeleton: an NTU ``.skeleton`` file.
        depth: a masked-depth folder of ``MDepth-%08d.png`` frames (16-bit PNG, mm).
        name: the sample name (default: the NTU name of a source, else the first source's stem).
    """

    video: Optional[PathLike] = None
    skeleton: Optional[PathLike] = None
    depth: Optional[PathLike] = None
    name: Optional[str] = None


@dataclass(frozen=True)
class StoreSample:
    """Sample ``name`` of the prepared store at ``store``."""

    store: PathLike
    name: str


FeatureInput = Union[str, "os.PathLike[str]", RawSample, StoreSample]
"""What :class:`~actionfusion.pipeline.feature_extraction.FeatureExtractor` accepts per sample."""


@dataclass
class ResolvedInput:
    """One input, resolved: a raw sample's paths, or a store sample.

    Attributes:
        label: the input as text (for messages and the export index).
        name: the sample name (in its store, or in the cache a raw input is prepared into).
        paths: the raw sources (None for a store sample).
        store: the store directory (None for a raw sample).
        provides: stored modalities the input can give (``skeleton``, ``pose2d_sensor``, ``rgb``, ...).
        output_name: the name its features are written and reported under (default ``name``; an
            export gives repeated names a ``__2``, ``__3``... suffix).
    """

    label: str
    name: str
    paths: Optional[SamplePaths] = None
    store: Optional[Path] = None
    provides: frozenset[str] = field(default_factory=frozenset)
    output_name: Optional[str] = None

    @property
    def out_name(self) -> str:
        """The name its features are written under."""
        return self.output_name or self.name

    @property
    def is_raw(self) -> bool:
        return self.paths is not None


# ---------------------------------------------------------------------------- resolving


def describe_input(item: Any) -> str:
    """A short text naming ``item`` (a path, ``STORE::NAME`` or the RawSample's fields)."""
    if isinstance(item, StoreSample):
        return f"{item.store}{STORE_SEPARATOR}{item.name}"
    if isinstance(item, RawSample):
        parts = [f"{key}={getattr(item, key)}" for key in ("video", "skeleton", "depth", "name") if getattr(item, key)]
        return "RawSample(" + ", ".join(parts) + ")"
    return os.fspath(item) if isinstance(item, (str, os.PathLike)) else repr(item)


def ntu_name(stem: str) -> Optional[str]:
    """The canonical NTU sample name of ``stem`` (``_rgb`` suffix allowed), or None."""
    for candidate in (stem[: -len("_rgb")] if stem.endswith("_rgb") else None, stem):
        if candidate:
            with contextlib.suppress(SampleNameError):
                name = format_sample_name(parse_sample_name(candidate))
                if name == candidate:
                    return name
    return None


def has_masked_depth_frames(folder: Path) -> bool:
    """True when ``folder`` is a directory holding at least one ``MDepth-*.png``."""
    if not folder.is_dir():
        return False
    with os.scandir(folder) as entries:
        return any(e.name.startswith(MASKED_DEPTH_PREFIX) and e.name.lower().endswith(".png") for e in entries)


def find_ntu_companions(video: Path, name: str) -> tuple[Optional[Path], Optional[Path]]:
    """(``.skeleton`` file, masked-depth folder) of NTU sample ``name`` near ``video``, None where absent.

    Looked up in the video's folder, then the folder above it; in each, the loose files
    (``<name>.skeleton``, ``<name>/``) first, then the NTU layout folders.
    """
    skeleton = depth = None
    for root in (video.parent, video.parent.parent):
        if skeleton is None:
            for candidate in (root / f"{name}{SKELETON_SUFFIX}", root / SKELETON_DIR / f"{name}{SKELETON_SUFFIX}"):
                if candidate.is_file():
                    skeleton = candidate
                    break
        if depth is None:
            for candidate in (root / name, root / DEPTH_MASKED_DIR / name):
                if has_masked_depth_frames(candidate):
                    depth = candidate
                    break
    return skeleton, depth


def _existing_file(label: str, path: PathLike, what: str) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise FeatureInputError(label, f"{what} {path} not found")
    return path


def _raw_name(explicit: Optional[str], sources: list[Path]) -> str:
    """The explicit name, else the NTU name of a source, else the first source's stem."""
    if explicit:
        return safe_sample_name(str(explicit))
    stems = [p.name[: -len(SKELETON_SUFFIX)] if p.name.endswith(SKELETON_SUFFIX) else
             (p.name if p.is_dir() else p.stem) for p in sources]
    name = next((n for n in (ntu_name(s) for s in stems) if n), None)
    return safe_sample_name(name or stems[0])


def safe_sample_name(name: str) -> str:
    """``name`` usable as one file or folder name: path separators and a leading dot replaced."""
    cleaned = name.replace(os.sep, "_").replace("/", "_").replace(STORE_SEPARATOR, "_").strip()
    if cleaned.startswith("."):
        cleaned = "_" + cleaned[1:]
    return cleaned or "sample"


def resolve_raw(raw: RawSample, label: Optional[str] = None) -> ResolvedInput:
    """A :class:`RawSample` as a :class:`ResolvedInput` (files checked to exist).

    Raises:
        FeatureInputError: no path given, or a given path does not exist.
    """
    label = label or describe_input(raw)
    video = _existing_file(label, raw.video, "video") if raw.video is not None else None
    skeleton = _existing_file(label, raw.skeleton, "skeleton file") if raw.skeleton is not None else None
    depth = None
    if raw.depth is not None:
        depth = Path(raw.depth).expanduser()
        if not depth.is_dir():
            raise FeatureInputError(label, f"masked-depth folder {depth} not found")
    sources = [p for p in (video, skeleton, depth) if p is not None]
    if not sources:
        raise FeatureInputError(label, "a RawSample needs at least one of video, skeleton, depth")
    paths = SamplePaths(_raw_name(raw.name, sources), skeleton=skeleton, rgb=video, depth_masked=depth)
    provides = frozenset(m for source in ("skeleton", "rgb", "depth_masked") if getattr(paths, source) is not None
                         for m in STORE_MODALITIES_OF_SOURCE[source])
    return ResolvedInput(label=label, name=paths.name, paths=paths, provides=provides)


def resolve_input(item: FeatureInput, stores: Optional[dict[str, SampleStore]] = None) -> list[ResolvedInput]:
    """The sample(s) ``item`` names (one, except ``"STORE::*"``).

    Args:
        item: see the module docstring.
        stores: open stores by path, reused and filled (a store is opened once).
    Raises:
        FeatureInputError: a missing file, a file of an unknown kind, an unknown store sample.
    """
    label = describe_input(item)
    if isinstance(item, RawSample):
        return [resolve_raw(item, label)]
    if isinstance(item, StoreSample):
        return [_resolve_store_sample(Path(item.store), item.name, label, stores)]
    if isinstance(item, str) and STORE_SEPARATOR in item:
        store, name = item.rsplit(STORE_SEPARATOR, 1)
        if name == "*":
            opened = _open_store(Path(store), label, stores)
            return [_resolve_store_sample(Path(store), n, f"{store}{STORE_SEPARATOR}{n}", stores) for n in opened.names]
        return [_resolve_store_sample(Path(store), name, label, stores)]
    if not isinstance(item, (str, os.PathLike)):
        raise FeatureInputError(label, "expected a path, a RawSample or a StoreSample")
    path = Path(item).expanduser()
    if path.is_dir():
        if has_masked_depth_frames(path):
            return [resolve_raw(RawSample(depth=path), label)]
        raise FeatureInputError(label, f"a folder that holds no {MASKED_DEPTH_PREFIX}*.png frames; "
                                       "give a video, a .skeleton file, a masked-depth folder or STORE_DIR::NAME")
    if not path.exists():
        raise FeatureInputError(label, "no such file")
    if path.name.endswith(SKELETON_SUFFIX):
        return [resolve_raw(RawSample(skeleton=path), label)]
    if path.suffix.lower() in VIDEO_SUFFIXES:
        name = ntu_name(path.stem)
        skeleton, depth = find_ntu_companions(path, name) if name else (None, None)
        return [resolve_raw(RawSample(video=path, skeleton=skeleton, depth=depth, name=name), label)]
    raise FeatureInputError(label, f"unknown input kind (not a video {VIDEO_SUFFIXES}, a {SKELETON_SUFFIX} "
                                   "file, a masked-depth folder or STORE_DIR::NAME)")


def _open_store(path: Path, label: str, stores: Optional[dict[str, SampleStore]]) -> SampleStore:
    key = str(path.resolve())
    if stores is not None and key in stores:
        return stores[key]
    try:
        store = SampleStore(path)
    except StoreError as err:
        raise FeatureInputError(label, str(err)) from err
    if stores is not None:
        stores[key] = store
    return store


def _resolve_store_sample(path: Path, name: str, label: str,
                          stores: Optional[dict[str, SampleStore]]) -> ResolvedInput:
    store = _open_store(path, label, stores)
    if name not in store:
        raise FeatureInputError(label, f"no sample {name!r} in the store {path} ({len(store)} samples)")
    return ResolvedInput(label=label, name=name, store=path, provides=frozenset(store.modalities(name)))


def resolve_inputs(items: Iterable[FeatureInput], stores: Optional[dict[str, SampleStore]] = None
                   ) -> list[Union[ResolvedInput, FeatureInputError]]:
    """:func:`resolve_input` of each item, flattened; an input that fails gives its error in place."""
    out: list[Union[ResolvedInput, FeatureInputError]] = []
    for item in items:
        try:
            out.extend(resolve_input(item, stores))
        except FeatureInputError as err:
            out.append(err)
    return out
