"""Add extracted poses to a sample of a store, in place or as a new sample.

Two cases, both safe against ``kill -9`` at any point:

* The sample directory exists (published by ``actionfusion prepare`` or an earlier
  extraction): ``pose2d.npy`` (and ``pose3d_world.npy``) are written atomically into it,
  and only then is its ``meta.json`` rewritten atomically with the new modality entries.
  A reader therefore never sees a modality in ``meta.json`` whose file is missing; a kill
  between the two leaves an unlisted file that the next run overwrites. The new files' sizes
  and checksums go into ``meta["files"]`` with the same rewrite (``file_checksums``).
* It does not: a new sample directory is written in a staging directory and published by
  rename (:func:`~actionfusion.io.atomic_publish_dir`), into a store that
  :func:`ensure_pose_store` created with a valid manifest if there was none.

Meta entries written (``meta["modalities"]``)::

    pose2d        {"shape": [M, T, K, 3], "dtype": "float32", "unit": "px", "layout",
                   "fps", "frame_size_hw": [H, W], "backend", "num_tracks": M, "num_frames": T}
    pose3d_world  {"shape": [M, T, K, 3], "dtype": "float32", "unit": "m", "layout",
                   "fps", "backend", "num_tracks": M, "num_frames": T}
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import numpy as np

from ...errors import StoreError
from ...io import atomic_publish_dir, atomic_save_npy, atomic_write_json, load_json, make_staging_dir
from .file_checksums import FILES_KEY, record_files
from .layout import MANIFEST_FILE, META_FILE, is_published_sample, sample_dir, samples_dir
from .manifest import build_manifest, read_manifest, utc_now_iso, write_manifest

PathLike = Union[str, "os.PathLike[str]"]

POSE_STORE_SOURCE = "pose-extraction"
"""``manifest["config"]["source"]`` of a store created by pose extraction."""

POSE_MODALITY_FILES: dict[str, str] = {
    "pose2d": "pose2d.npy",
    "pose3d_world": "pose3d_world.npy",
}
"""Files of the pose modalities inside a sample directory (``pose2d`` matches
:data:`~actionfusion.datasets.store.layout.MODALITY_FILES`)."""


def ensure_pose_store(store: PathLike, *, config: Mapping[str, Any], source_root: str) -> dict[str, Any]:
    """Open ``store``, creating it (manifest + ``samples/``) if it does not exist yet.

    Args:
        store: the store directory; may be missing or empty.
        config: recorded as the manifest's ``config`` of a new store; ``"source"`` is set to
            :data:`POSE_STORE_SOURCE`.
        source_root: where the videos came from (a root, a list file or ``"<N videos>"``).
    Returns:
        the store's manifest (the existing one, or the one just written).
    Raises:
        StoreError: ``store`` is a file, or a non-empty directory that is not a sample store.
    """
    store = Path(store)
    if store.exists() and not store.is_dir():
        raise StoreError(f"{store}: exists and is not a directory")
    if (store / MANIFEST_FILE).exists():
        return read_manifest(store)
    if store.is_dir() and any(not _ignorable(p) for p in store.iterdir()):
        raise StoreError(f"{store}: not empty and not a sample store (no {MANIFEST_FILE}); use another --out")
    manifest = build_manifest(config={**dict(config), "source": POSE_STORE_SOURCE}, source_root=source_root,
                              created=utc_now_iso(), samples={})
    write_manifest(store, manifest)  # first: a kill after it leaves a valid (empty) store
    samples_dir(store).mkdir(parents=True, exist_ok=True)
    return manifest


def _ignorable(entry: Path) -> bool:
    """Hidden staging leftovers and an empty ``samples/`` do not make a directory "not empty"."""
    if entry.name.startswith("."):
        return True
    return entry == samples_dir(entry.parent) and entry.is_dir() and not any(entry.iterdir())


def sample_has_modality(store: PathLike, name: str, modality: str) -> bool:
    """True when the published sample ``name`` lists ``modality`` in its ``meta.json``.

    An unreadable ``meta.json`` counts as not having it (the sample is then redone).
    """
    path = sample_dir(Path(store), name) / META_FILE
    try:
        meta = load_json(path)
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and modality in (meta.get("modalities") or {})


def add_pose_to_sample(
    store: PathLike,
    name: str,
    keypoints: np.ndarray,
    *,
    layout: str,
    fps: float,
    frame_size_hw: tuple[int, int],
    backend: str,
    world: Optional[np.ndarray] = None,
    label: Optional[int] = None,
    sources: Optional[Mapping[str, str]] = None,
) -> Path:
    """Write 2D (and world 3D) poses of one video into sample ``name`` of ``store``.

    Args:
        store: an existing store (see :func:`ensure_pose_store`).
        name: the sample name (its directory under ``samples/``).
        keypoints: float32 [M, T, K, 3] (x, y in pixels of the source frames, score).
        layout: joint layout name of K (e.g. ``"blazepose33"``, ``"coco17"``).
        fps: frames per second of the source video.
        frame_size_hw: (height, width) of the source frames.
        backend: the pose backend that produced them.
        world: float32 [M, T, K, 3] metric world keypoints, or None.
        label: 0-based label of a new sample (None: unknown); an existing sample keeps its own.
        sources: ``{"rgb": path}`` recorded in a new sample's meta.
    Returns:
        the sample directory.
    Raises:
        ValueError: ``keypoints`` / ``world`` do not have the shape [M, T, K, 3] or disagree.
    """
    arrays = _pose_arrays(keypoints, world)
    entries = _pose_entries(arrays, layout=layout, fps=fps, frame_size_hw=frame_size_hw, backend=backend)
    store = Path(store)
    final = sample_dir(store, name)
    if is_published_sample(final):
        _update_published(final, arrays, entries)
        return final
    if final.exists():  # a directory without meta.json is not a published sample: replace it
        shutil.rmtree(final)
    staging = make_staging_dir(final)
    try:
        for modality, array in arrays.items():
            atomic_save_npy(staging / POSE_MODALITY_FILES[modality], array)
        meta: dict[str, Any] = {
            "name": name,
            "label": None if label is None else int(label),
            "status": "ok",
            "source": POSE_STORE_SOURCE,
            "sources": dict(sources or {}),
            "modalities": entries,
        }
        record_files(meta, staging, [POSE_MODALITY_FILES[m] for m in arrays])
        atomic_write_json(staging / META_FILE, meta)
        atomic_publish_dir(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def _pose_arrays(keypoints: np.ndarray, world: Optional[np.ndarray]) -> dict[str, np.ndarray]:
    """{"pose2d": float32 [M, T, K, 3], "pose3d_world"?: float32 [M, T, K, 3]}, shapes checked."""
    pose2d = np.ascontiguousarray(keypoints, dtype=np.float32)
    if pose2d.ndim != 4 or pose2d.shape[-1] != 3:
        raise ValueError(f"keypoints must be [M, T, K, 3], got shape {tuple(pose2d.shape)}")
    arrays = {"pose2d": pose2d}
    if world is not None:
        world3d = np.ascontiguousarray(world, dtype=np.float32)
        if world3d.shape != pose2d.shape:
            raise ValueError(f"world {tuple(world3d.shape)} must have the keypoints' shape {tuple(pose2d.shape)}")
        arrays["pose3d_world"] = world3d
    return arrays


def _pose_entries(arrays: Mapping[str, np.ndarray], *, layout: str, fps: float,
                  frame_size_hw: tuple[int, int], backend: str) -> dict[str, dict[str, Any]]:
    """The ``meta["modalities"]`` entries for ``arrays`` (see the module docstring)."""
    entries: dict[str, dict[str, Any]] = {}
    for modality, array in arrays.items():
        entry: dict[str, Any] = {
            "shape": [int(s) for s in array.shape], "dtype": "float32",
            "unit": "px" if modality == "pose2d" else "m", "layout": str(layout), "fps": float(fps),
            "backend": str(backend), "num_tracks": int(array.shape[0]), "num_frames": int(array.shape[1]),
            "bytes": int(array.nbytes),
        }
        if modality == "pose2d":
            entry["frame_size_hw"] = [int(frame_size_hw[0]), int(frame_size_hw[1])]
        entries[modality] = entry
    return entries


def _update_published(final: Path, arrays: Mapping[str, np.ndarray], entries: Mapping[str, dict[str, Any]]) -> None:
    """Files first, ``meta.json`` last; a stale world file of an earlier run goes after the meta."""
    meta_path = final / META_FILE
    try:
        meta = load_json(meta_path)
    except (OSError, ValueError) as err:
        raise StoreError(f"{meta_path}: unreadable sample meta ({err})") from err
    if not isinstance(meta, dict):
        raise StoreError(f"{meta_path}: sample meta is not a JSON object")
    for modality, array in arrays.items():
        atomic_save_npy(final / POSE_MODALITY_FILES[modality], array)
    modalities = dict(meta.get("modalities") or {})
    stale = [m for m in POSE_MODALITY_FILES if m in modalities and m not in entries]
    for modality in stale:
        del modalities[modality]
    modalities.update(entries)
    meta["modalities"] = modalities
    records = meta.get(FILES_KEY)
    if isinstance(records, dict):
        meta[FILES_KEY] = {f: r for f, r in records.items() if f not in {POSE_MODALITY_FILES[m] for m in stale}}
    record_files(meta, final, [POSE_MODALITY_FILES[m] for m in arrays])
    atomic_write_json(meta_path, meta)
    for modality in stale:
        with contextlib.suppress(FileNotFoundError):
            (final / POSE_MODALITY_FILES[modality]).unlink()
