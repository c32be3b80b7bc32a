"""Import and export of pyskl / mmaction2 skeleton annotation pickles.

Format (kennymckormick/pyskl@3f6795f ``tools/data/README.md``; open-mmlab/mmaction2@4d6c934
``tools/data/skeleton/README.md``)::

    {"split": {"xsub_train": [frame_dir, ...], "xsub_val": [...], ...},
     "annotations": [
        {"frame_dir": str,            # the sample name, e.g. "S001C001P001R001A001"
         "label": int,                # 0-based class (NTU: action - 1)
         "total_frames": int,         # T
         "keypoint": array [M, T, V, C],
         "keypoint_score": array [M, T, V],   # 2D poses only
         "img_shape": (h, w), "original_shape": (h, w),  # 2D poses only
         ...}, ...]}

Conventions users trip on:

- ``img_shape`` and ``original_shape`` are **(height, width)** (mmaction2 issue #2278 is a
  user writing (w, h)); keypoint x runs along the width. :func:`likely_swapped_img_shape`
  flags a 2D sample whose x coordinates fit the first number rather than the second.
- V is 17 for 2D poses in the COCO layout (the HRNet pickles ``ntu60_hrnet.pkl`` etc.) and
  25 for the Kinect v2 3D skeletons of NTU (``ntu60_3danno.pkl``); C is 2 (x, y in pixels)
  or 3 (x, y, z in metres). mmaction2 issue #2766 is about mixing the two.
- The 3D pickles store ``keypoint`` as float16 (about 1 mm resolution at 2-4 m); this
  module keeps the dtype it finds; call ``.astype(np.float32)`` before computing with it.
- Split lists may name samples that have no annotation (the public NTU pickles do, for the
  samples with missing skeletons); :meth:`PysklAnnotations.unmatched_split_names` lists them.

Loading a pickle can execute arbitrary code stored in the file, so
:func:`load_pyskl_annotations` refuses unless the caller passes ``trust_pickle=True``.
"""

from __future__ import annotations

import copyreg
import io
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Union

import numpy as np

from ..errors import AnnotationFormatError, UnsafeLoadError, UnsafePathError
from ..io import atomic_write_bytes, safe_component

PathLike = Union[str, "os.PathLike[str]"]

COCO_NUM_KEYPOINTS = 17
"""2D pose layout of the HRNet pickles (COCO keypoints)."""
NTU_NUM_JOINTS = 25
"""3D layout of the NTU Kinect v2 pickles."""
_KNOWN_KEYS = ("frame_dir", "label", "total_frames", "keypoint", "keypoint_score", "img_shape", "original_shape")


@dataclass
class PysklSample:
    """One annotation.

    Attributes:
        frame_dir: sample identifier (NTU: the sample name).
        label: 0-based class.
        total_frames: T.
        keypoint: [M, T, V, C], dtype as stored (float16 in the 3D pickles, float32 in 2D).
        keypoint_score: float [M, T, V] (2D), or ``None``.
        img_shape: (h, w) of the frames the keypoints refer to, or ``None``.
        original_shape: (h, w) of the source video, or ``None``.
        extra: any other keys of the annotation dict, kept for export.
    """

    frame_dir: str
    label: int
    total_frames: int
    keypoint: np.ndarray
    keypoint_score: Optional[np.ndarray] = None
    img_shape: Optional[tuple[int, int]] = None
    original_shape: Optional[tuple[int, int]] = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def layout(self) -> str:
        """``"coco17"`` (V = 17, C = 2), ``"ntu25"`` (V = 25, C = 3) or ``"other"``."""
        num_joints, channels = self.keypoint.shape[2], self.keypoint.shape[3]
        if num_joints == COCO_NUM_KEYPOINTS and channels == 2:
            return "coco17"
        if num_joints == NTU_NUM_JOINTS and channels == 3:
            return "ntu25"
        return "other"

    def to_dict(self) -> dict[str, Any]:
        """The plain annotation dict of the pickle format."""
        record: dict[str, Any] = {
            "frame_dir": self.frame_dir,
            "label": int(self.label),
            "total_frames": int(self.total_frames),
            "keypoint": np.asarray(self.keypoint),
        }
        if self.keypoint_score is not None:
            record["keypoint_score"] = np.asarray(self.keypoint_score)
        if self.img_shape is not None:
            record["img_shape"] = tuple(int(v) for v in self.img_shape)
        if self.original_shape is not None:
            record["original_shape"] = tuple(int(v) for v in self.original_shape)
        record.update(self.extra)
        return record


@dataclass
class PysklAnnotations:
    """A whole annotation file: named splits and the samples."""

    splits: dict[str, list[str]]
    samples: list[PysklSample]

    def by_name(self) -> dict[str, PysklSample]:
        """frame_dir -> sample."""
        return {sample.frame_dir: sample for sample in self.samples}

    def split_samples(self, split: str) -> list[PysklSample]:
        """The samples of one split, in split order, skipping names without annotation."""
        if split not in self.splits:
            raise KeyError(f"no split {split!r}; the file has {sorted(self.splits)}")
        index = self.by_name()
        return [index[name] for name in self.splits[split] if name in index]

    def unmatched_split_names(self) -> dict[str, list[str]]:
        """Per split, the names that have no annotation (empty lists omitted)."""
        names = {sample.frame_dir for sample in self.samples}
        missing = {split: [n for n in members if n not in names] for split, members in self.splits.items()}
        return {split: members for split, members in missing.items() if members}


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _shape_hw(path: Path, value: object, where: str) -> tuple[int, int]:
    if not isinstance(value, (tuple, list, np.ndarray)) or len(value) != 2 or not all(_is_int(v) and v > 0 for v in value):
        raise AnnotationFormatError(path, f"expected (h, w), two positive integers; found {value!r}", where=where)
    return int(value[0]), int(value[1])


def _validate_sample(path: Path, index: int, record: object) -> PysklSample:
    where = f"annotations[{index}]"
    if not isinstance(record, Mapping):
        raise AnnotationFormatError(path, f"expected a dict, found {type(record).__name__}", where=where)
    for key in ("frame_dir", "label", "total_frames", "keypoint"):
        if key not in record:
            raise AnnotationFormatError(path, f"missing key {key!r}", where=where)
    frame_dir, label, total_frames = record["frame_dir"], record["label"], record["total_frames"]
    if not isinstance(frame_dir, str) or not frame_dir:
        raise AnnotationFormatError(path, f"frame_dir must be a non-empty string, found {frame_dir!r}", where=where)
    try:
        safe_component(frame_dir, "frame_dir")
    except UnsafePathError as error:
        raise AnnotationFormatError(path, str(error), where=where) from None
    where = f"{where} ({frame_dir})"
    if not _is_int(label) or label < 0:
        raise AnnotationFormatError(path, f"label must be an integer >= 0, found {label!r}", where=where)
    if not _is_int(total_frames) or total_frames < 0:
        raise AnnotationFormatError(path, f"total_frames must be an integer >= 0, found {total_frames!r}", where=where)
    keypoint = record["keypoint"]
    if not isinstance(keypoint, np.ndarray) or keypoint.ndim != 4 or keypoint.dtype.kind != "f":
        raise AnnotationFormatError(path, "keypoint must be a float array [M, T, V, C]", where=where)
    if keypoint.shape[1] != total_frames:
        raise AnnotationFormatError(
            path, f"keypoint has {keypoint.shape[1]} frames but total_frames is {total_frames}", where=where
        )
    if keypoint.shape[3] not in (2, 3):
        raise AnnotationFormatError(path, f"keypoint has C = {keypoint.shape[3]}; expected 2 or 3", where=where)
    if not np.isfinite(keypoint).all():
        raise AnnotationFormatError(path, "keypoint holds NaN or inf (the format marks absent joints with 0)",
                                    where=where)
    score = record.get("keypoint_score")
    if score is not None and (not isinstance(score, np.ndarray) or score.shape != keypoint.shape[:3]):
        found = getattr(score, "shape", type(score).__name__)
        raise AnnotationFormatError(
            path, f"keypoint_score must be an array [M, T, V] = {keypoint.shape[:3]}, found {found}", where=where
        )
    img_shape = record.get("img_shape")
    original_shape = record.get("original_shape")
    return PysklSample(
        frame_dir=frame_dir,
        label=int(label),
        total_frames=int(total_frames),
        keypoint=keypoint,
        keypoint_score=score,
        img_shape=None if img_shape is None else _shape_hw(path, img_shape, f"{where} img_shape"),
        original_shape=None if original_shape is None else _shape_hw(path, original_shape, f"{where} original_shape"),
        extra={k: v for k, v in record.items() if k not in _KNOWN_KEYS},
    )


def _validate_splits(path: Path, splits: object) -> dict[str, list[str]]:
    if not isinstance(splits, Mapping):
        raise AnnotationFormatError(path, f"'split' must be a dict of lists, found {type(splits).__name__}")
    result = {}
    for name, members in splits.items():
        if not isinstance(name, str) or not isinstance(members, (list, tuple)):
            raise AnnotationFormatError(path, "each split must be a name with a list of frame_dir", where=f"split[{name!r}]")
        if not all(isinstance(m, str) for m in members):
            raise AnnotationFormatError(path, "split members must be strings", where=f"split[{name!r}]")
        result[name] = list(members)
    return result


def parse_pyskl_annotations(path: PathLike, content: object) -> PysklAnnotations:
    """Validate an already unpickled object (``{"split": ..., "annotations": ...}``).

    Raises:
        AnnotationFormatError: the structure is not the pyskl format (position named).
    """
    path = Path(path)
    if not isinstance(content, Mapping) or "annotations" not in content:
        raise AnnotationFormatError(path, "expected a dict with 'split' and 'annotations'")
    annotations = content["annotations"]
    if not isinstance(annotations, (list, tuple)):
        raise AnnotationFormatError(path, f"'annotations' must be a list, found {type(annotations).__name__}")
    samples = [_validate_sample(path, i, record) for i, record in enumerate(annotations)]
    seen: set[str] = set()
    for i, sample in enumerate(samples):
        if sample.frame_dir in seen:
            raise AnnotationFormatError(path, f"frame_dir {sample.frame_dir!r} appears twice", where=f"annotations[{i}]")
        seen.add(sample.frame_dir)
    return PysklAnnotations(_validate_splits(path, content.get("split", {})), samples)


def load_pyskl_annotations(path: PathLike, *, trust_pickle: bool = False) -> PysklAnnotations:
    """Load a pyskl / mmaction2 annotation pickle (e.g. ``ntu60_hrnet.pkl``).

    Args:
        path: the ``.pkl`` file.
        trust_pickle: must be True. Unpickling runs whatever code the file names, so only
            load files from a source you trust (e.g. the official pyskl/OpenMMLab downloads).

    Raises:
        UnsafeLoadError: ``trust_pickle`` is not True (nothing is read).
        AnnotationFormatError: the file cannot be unpickled or is not in the pyskl format.
    """
    path = Path(path)
    if trust_pickle is not True:
        raise UnsafeLoadError(
            f"{path}: this is a Python pickle, and loading a pickle can run arbitrary code stored in it. "
            "If you trust where the file came from, opt in with --trust-pickle "
            "(Python: load_pyskl_annotations(path, trust_pickle=True))."
        )
    try:
        with open(path, "rb") as handle:
            content = pickle.load(handle)  # noqa: S301 - explicit opt-in above
    except OSError as exc:
        raise AnnotationFormatError(path, f"cannot read the file: {exc.strerror or exc}") from exc
    except Exception as exc:  # unpickling raises many types on corrupt input
        raise AnnotationFormatError(path, f"not a readable pickle: {type(exc).__name__}: {exc}") from exc
    return parse_pyskl_annotations(path, content)


class _PortablePickler(pickle.Pickler):
    """Pickles ndarrays through ``copyreg._reconstructor`` and ``numpy.ndarray``.

    NumPy 2 pickles arrays by reference to ``numpy._core.multiarray._reconstruct``, a module
    that NumPy 1.x (which pyskl's pinned environment uses) cannot import. These two globals
    exist under the same names in every NumPy version; the array state is NumPy's own
    ``__reduce__`` state, so the loaded array is identical, writable and owns its data.
    """

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is np.ndarray:
            return copyreg._reconstructor, (np.ndarray, np.ndarray, (0,)), obj.__reduce__()[2]
        return NotImplemented


def _portable_pickle_bytes(content: object) -> bytes:
    buffer = io.BytesIO()
    _PortablePickler(buffer, protocol=4).dump(content)
    return buffer.getvalue()


def save_pyskl_annotations(
    path: PathLike, samples: Iterable[PysklSample], splits: Mapping[str, Iterable[str]]
) -> None:
    """Write samples and splits as a pyskl annotation pickle, atomically.

    Only plain dicts, lists, strings, integers, tuples and numpy arrays are pickled (values
    in ``extra`` as they are), so pyskl and mmaction2 read the file without actionfusion
    installed, under NumPy 1.x as well as 2.x (protocol 4; see :class:`_PortablePickler`).

    Raises:
        AnnotationFormatError: a sample fails the checks of :func:`load_pyskl_annotations`.
    """
    path = Path(path)
    content = {
        "split": {name: list(members) for name, members in splits.items()},
        "annotations": [sample.to_dict() for sample in samples],
    }
    parse_pyskl_annotations(path, content)
    atomic_write_bytes(path, _portable_pickle_bytes(content))


def likely_swapped_img_shape(sample: PysklSample) -> bool:
    """True if a 2D sample's ``img_shape`` looks written as (w, h) instead of (h, w).

    The test: some x coordinate exceeds the stated width by more than 5 % while every x
    fits under the stated height (for a landscape frame written the wrong way round).
    """
    if sample.img_shape is None or sample.keypoint.shape[3] != 2 or sample.keypoint.size == 0:
        return False
    height, width = sample.img_shape
    x = sample.keypoint[..., 0].astype(np.float32)
    x_max = float(np.nanmax(x)) if np.isfinite(x).any() else 0.0
    return x_max > 1.05 * width and x_max <= 1.05 * height
