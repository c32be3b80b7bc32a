"""Several skeleton conventions of one clip from a sample store (MS-CLR's multi-convention input).

MS-CLR (shared/specs/self-supervised.md) contrasts skeletons of the same clip written in different
joint conventions. Here the conventions come from one store sample:

- ``ntu25``: ``skeleton.npy``, the Kinect v2 sensor's 25 joints (camera space, metres);
- ``blazepose33``: ``pose3d_world.npy``, the 33 world keypoints (metres) that this library's pose
  extraction (``actionfusion extract-poses``, MediaPipe BlazePose) writes;
- ``coco17``: the same BlazePose run re-expressed in the 17 COCO keypoints with
  :func:`~actionfusion.modalities.skeleton.layouts.convert_layout` (every COCO joint has an exact
  BlazePose twin). It is derived, not a second detector's output: mmpose is optional and not
  required by this library. A store whose world keypoints are already COCO-17 gives ``coco17``
  directly (and no ``blazepose33``).

What :func:`load_conventions` does to make the conventions of a sample comparable:

- **one timeline**: the extracted keypoints are per video frame, the sensor skeleton keeps only the
  frames its denoising kept (``meta["modalities"]["skeleton"]["source_frames"]`` of the
  ``num_frames_in_file`` frames). The extracted sequence is first mapped onto the skeleton file's
  frames (nearest frame, proportionally, when the two counts differ) and then cut to the kept
  frames, so frame ``t`` of every convention shows the same instant. Without the frame list the
  extracted sequence is mapped proportionally onto the skeleton's frames; a sample without a
  sensor skeleton keeps the extraction's own timeline;
- **one axis convention**: MediaPipe's world keypoints have y pointing down (image convention);
  they are turned 180 degrees about x (``(x, y, z) -> (x, -y, -z)``, a rotation, no mirror) so
  that y points up as in the Kinect camera space. Their origin stays the hip midpoint of each
  frame (BlazePose's world frame has no global trajectory), and their heading about the vertical
  axis is the model's, not the camera's: the two are not registered to the sensor's frame.

:func:`match_valid_frames` then gives every convention the same set of non-empty frames (a frame
where the sensor tracked the body but the detector did not, or the reverse, is filled with the
convention's nearest non-empty frame). The temporal transforms (``valid_crop_resize``,
``temporal_crop_pad``) read only the frame count and the number of non-empty frames, so the
conventions of a view, run through their pipelines with generators seeded alike, get the same
temporal crop -- as long as no step that draws one value per joint (``gaussian_noise``,
``joint_mask``) comes before a temporal step (:func:`check_shared_crop` enforces it).

Persons: the extraction's tracks and the sensor's actors are not matched to each other; both are
fitted to ``data.max_persons`` in their own order.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np

from ..errors import StoreError
from ..modalities.skeleton.layouts import convert_layout
from .store.sample_store import SampleStore

CONVENTIONS: tuple[str, ...] = ("ntu25", "coco17", "blazepose33", "coco17_2d")
"""Skeleton conventions a store sample can provide (``data.conventions``, ``data.skeleton_source``)."""
CONVENTION_LAYOUTS: Mapping[str, str] = {"ntu25": "ntu25", "coco17": "coco17", "blazepose33": "blazepose33",
                                         "coco17_2d": "coco17"}
"""The joint layout (graph, bones, flip pairs) of each convention."""
POSE2D_CONVENTION = "coco17_2d"
"""2D keypoints as pyskl's 2D GCNs read them: ``pose2d.npy``'s COCO-17 (x, y, score), x and y
normalised to [-1, 1] by the frame size (pyskl ``PreNormalize2D``: ``(x - w/2) / (w/2)``), image
axes (y down); the score is the third channel."""
DEFAULT_FRAME_HW = (1080, 1920)
"""The frame size a 2D sample without one is normalised by (pyskl ``PreNormalize2D``'s default)."""
SENSOR_CONVENTION = "ntu25"
"""The convention of ``skeleton.npy`` (the sensor)."""
CONVENTIONS_KEY = "conventions"
"""Item and batch key of the per-convention tensors: ``item["conventions"][name]`` [M, T, V_c, C]."""

WORLD_TO_SENSOR_AXES = np.array([1.0, -1.0, -1.0], dtype=np.float32)
"""Per-axis signs taking MediaPipe world keypoints (y down) to the Kinect camera's y-up axes: a
180-degree turn about x."""

# Which world-keypoint layouts each extracted convention can be made from.
_EXTRACTED_FROM: Mapping[str, tuple[str, ...]] = {"blazepose33": ("blazepose33",), "coco17": ("blazepose33", "coco17")}

# Steps whose random draws do not depend on the joint count, and the temporal ones that must see
# identical draws in every convention (module docstring).
TEMPORAL_STEPS: tuple[str, ...] = ("valid_crop_resize", "temporal_crop_pad")
PER_JOINT_DRAW_STEPS: tuple[str, ...] = ("gaussian_noise", "joint_mask")


def _pose_hint(store: SampleStore) -> str:
    return f"run `actionfusion extract-poses RGB_ROOT --out {store.path}` first"


def check_pose_available(store: SampleStore, names: Sequence[str], conventions: Sequence[str]) -> None:
    """Raise a one-line :class:`StoreError` naming the first sample without extracted world
    keypoints when any of ``conventions`` needs them (coco17, blazepose33)."""
    if POSE2D_CONVENTION in conventions:
        lacking = [n for n in names if "pose2d" not in store.modalities(n)]
        if lacking:
            raise StoreError(f"{store.path}: sample {lacking[0]} has no pose2d.npy (2D keypoints), which skeleton "
                             f"convention {POSE2D_CONVENTION} needs ({len(lacking)} of {len(names)} samples lack it); "
                             f"{_pose_hint(store)}")
    needed = [c for c in conventions if c not in (SENSOR_CONVENTION, POSE2D_CONVENTION)]
    if not needed:
        return
    missing = [n for n in names if "pose3d_world" not in store.modalities(n)]
    if missing:
        raise StoreError(f"{store.path}: sample {missing[0]} has no pose3d_world.npy (extracted world keypoints), "
                         f"which skeleton convention {needed[0]} needs ({len(missing)} of {len(names)} samples lack "
                         f"it); {_pose_hint(store)}")


def nearest_frames(source_frames: int, target_frames: int) -> np.ndarray:
    """int64 [target_frames]: the source frame nearest to each target frame when a sequence of
    ``source_frames`` is spread proportionally over ``target_frames`` (first onto first, last onto last)."""
    if target_frames <= 1 or source_frames <= 1:
        return np.zeros(max(target_frames, 0), dtype=np.int64)
    position = np.arange(target_frames) * ((source_frames - 1) / (target_frames - 1))
    return np.minimum(np.rint(position).astype(np.int64), source_frames - 1)


def sensor_timeline(meta: Mapping[str, Any], extracted_frames: int) -> Optional[np.ndarray]:
    """int64 [T]: the frames of the extracted sequence that match the sensor skeleton's T frames, or
    None when the sample has no sensor skeleton (module docstring, "one timeline")."""
    skeleton = (meta.get("modalities") or {}).get("skeleton")
    if not skeleton:
        return None
    kept = skeleton.get("source_frames")
    in_file = skeleton.get("num_frames_in_file")
    if kept is not None and in_file:
        to_file = nearest_frames(extracted_frames, int(in_file))  # extracted frame of each file frame
        kept = np.asarray(kept, dtype=np.int64)
        return to_file[np.clip(kept, 0, int(in_file) - 1)]
    frames = skeleton.get("num_frames") or (skeleton.get("shape") or [0, 0])[1]
    return nearest_frames(extracted_frames, int(frames))


def world_to_sensor_axes(world: np.ndarray) -> np.ndarray:
    """float32 [..., 3]: MediaPipe world keypoints (y down) with y and z negated (y up); zeros stay zero."""
    return (np.asarray(world, dtype=np.float32) * WORLD_TO_SENSOR_AXES).astype(np.float32)


def load_extracted(store: SampleStore, name: str, convention: str, world: np.ndarray, layout: str) -> np.ndarray:
    """float32 [M, T, V_c, 3]: ``world`` keypoints of ``layout`` expressed in ``convention``."""
    sources = _EXTRACTED_FROM[convention]
    if layout not in sources:
        raise StoreError(f"{store.path}: sample {name} has world keypoints in layout {layout}, from which skeleton "
                         f"convention {convention} cannot be made (it needs {' or '.join(sources)}); re-run "
                         f"`actionfusion extract-poses RGB_ROOT --out {store.path}` with the default BlazePose backend")
    return world if layout == convention else convert_layout(world, layout, convention)


def load_conventions(store: SampleStore, name: str, conventions: Sequence[str]) -> dict[str, np.ndarray]:
    """``{convention: float32 [M_c, T, V_c, 3]}`` of sample ``name`` on one timeline and in y-up
    axes (module docstring). Every extracted convention has the same T as the sensor skeleton.

    Raises:
        StoreError: a convention needs ``pose3d_world.npy`` and the sample has none (one line naming
            the sample and the ``extract-poses`` command), or an unknown convention.
    """
    unknown = [c for c in conventions if c not in CONVENTIONS]
    if unknown:
        raise StoreError(f"unknown skeleton convention {unknown[0]!r}; known: {', '.join(CONVENTIONS)}")
    out: dict[str, np.ndarray] = {}
    if SENSOR_CONVENTION in conventions:
        out[SENSOR_CONVENTION] = store.load_skeleton(name)
    if POSE2D_CONVENTION in conventions:
        out[POSE2D_CONVENTION] = load_pose2d_convention(store, name)
    extracted = [c for c in conventions if c not in (SENSOR_CONVENTION, POSE2D_CONVENTION)]
    if extracted:
        meta = store.meta(name)
        entry = (meta.get("modalities") or {}).get("pose3d_world")
        if entry is None:
            raise StoreError(f"{store.path}: sample {name} has no pose3d_world.npy (extracted world keypoints), "
                             f"which skeleton convention {extracted[0]} needs; {_pose_hint(store)}")
        world = world_to_sensor_axes(store.load_pose3d_world(name))
        frames = sensor_timeline(meta, world.shape[1])
        if frames is not None:
            world = world[:, frames] if world.shape[1] else np.zeros(
                (world.shape[0], len(frames)) + world.shape[2:], dtype=np.float32)
        layout = str(entry.get("layout") or "blazepose33")
        for convention in extracted:
            out[convention] = load_extracted(store, name, convention, world, layout)
    return {c: np.ascontiguousarray(out[c], dtype=np.float32) for c in conventions}


def load_pose2d_convention(store: SampleStore, name: str) -> np.ndarray:
    """float32 [M, T, 17, 3] (x, y, score) of sample ``name``'s ``pose2d.npy`` in COCO-17, x and y
    normalised by the frame size (:data:`POSE2D_CONVENTION`), on the sensor skeleton's timeline when
    the sample has one. Undetected keypoints (score 0) stay all zero.

    Raises:
        StoreError: no ``pose2d.npy``, or keypoints in a layout COCO-17 cannot be made from.
    """
    meta = store.meta(name)
    entry = (meta.get("modalities") or {}).get("pose2d")
    if entry is None:
        raise StoreError(f"{store.path}: sample {name} has no pose2d.npy (2D keypoints), which skeleton convention "
                         f"{POSE2D_CONVENTION} needs; {_pose_hint(store)}")
    keypoints = np.asarray(store.load_pose2d(name), dtype=np.float32)
    layout = str(entry.get("layout") or ("coco17" if keypoints.shape[2] == 17 else "blazepose33"))
    if layout not in ("coco17", "blazepose33"):
        raise StoreError(f"{store.path}: sample {name} has 2D keypoints in layout {layout}, from which "
                         f"{POSE2D_CONVENTION} cannot be made (it needs coco17 or blazepose33)")
    if layout != "coco17":
        keypoints = convert_layout(keypoints, layout, "coco17")
    height, width = (entry.get("frame_size_hw") or meta.get("img_shape_hw") or DEFAULT_FRAME_HW)[:2]
    half = np.array([float(width) / 2.0, float(height) / 2.0], dtype=np.float32)
    seen = keypoints[..., 2:3] > 0
    xy = np.where(seen, (keypoints[..., :2] - half) / half, 0.0)
    out = np.concatenate([xy, np.where(seen, keypoints[..., 2:3], 0.0)], axis=-1).astype(np.float32)
    frames = sensor_timeline(meta, out.shape[1])
    if frames is not None:
        out = out[:, frames] if out.shape[1] else np.zeros((out.shape[0], len(frames)) + out.shape[2:], np.float32)
    return out


def valid_frames(x: np.ndarray) -> np.ndarray:
    """bool [T]: frames of x [M, T, V, C] with a non-zero coordinate in any person."""
    return np.any(x != 0, axis=(0, 2, 3))


def match_valid_frames(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Give every convention the same non-empty frames: the union over the conventions.

    Args:
        arrays: ``{convention: float32 [M, T, V_c, C]}``, one T for all.

    Returns:
        the same arrays where a frame that is empty in one convention but not in another holds that
        convention's nearest non-empty frame (the earlier one on a tie). A convention that is empty
        throughout stays empty.
    """
    lengths = {x.shape[1] for x in arrays.values()}
    if len(lengths) > 1:
        raise ValueError(f"conventions of one clip must share the frame count, got {sorted(lengths)}")
    union = np.zeros(next(iter(lengths), 0), dtype=bool)
    for x in arrays.values():
        union |= valid_frames(x)
    out: dict[str, np.ndarray] = {}
    for convention, x in arrays.items():
        own = valid_frames(x)
        gaps = np.flatnonzero(union & ~own)
        if gaps.size == 0 or not own.any():
            out[convention] = x
            continue
        present = np.flatnonzero(own)
        after = np.clip(np.searchsorted(present, gaps), 0, present.size - 1)
        before = np.clip(after - 1, 0, present.size - 1)
        nearest = np.where(np.abs(present[before] - gaps) <= np.abs(present[after] - gaps), present[before],
                           present[after])
        filled = x.copy()
        filled[:, gaps] = x[:, nearest]
        out[convention] = filled
    return out


def check_shared_crop(specs: Sequence[Mapping[str, Any]]) -> Optional[str]:
    """None when a pipeline's temporal steps see the same draws in every convention, else why not
    (a per-joint-draw step such as ``gaussian_noise`` before a temporal crop)."""
    names = [str(spec.get("name")) for spec in specs]
    for i, step in enumerate(names):
        if step in PER_JOINT_DRAW_STEPS:
            later = [s for s in names[i + 1:] if s in TEMPORAL_STEPS]
            if later:
                return (f"step {step} draws one value per joint, so the conventions' random streams part before "
                        f"{later[0]}; move the temporal steps ({', '.join(TEMPORAL_STEPS)}) before it")
    return None
