"""Where things live inside a prepared sample store (one place, shared by writer and reader).

::

    <store>/manifest.json            version, creation time, source root, PrepareConfig,
                                     per-sample status, size estimate (see manifest.py)
    <store>/failures.json            [{"sample", "stage", "error"}] of the last prepare run
    <store>/samples/<name>/          one directory per sample, published by rename
        meta.json                    label, per-modality shapes/frames/bytes, frame alignment,
                                     the denoising report, failed stages, and under "files" each
                                     file's size and BLAKE2b-128 checksum (file_checksums.py)
        skeleton.npy                 float32 [M, T, 25, 3] denoised actors, metres
        rgb.pack                     frame pack (CRC-32 per frame) of JPEG person crops, uint8 [T, S, S, 3]
        depth.pack                   frame pack of 16-bit PNG crops, uint16 [T, D, D] (mm)
        points.npy                   float16 (or float32) [T, N, 3] points, metres, camera space
        pose2d_sensor.npy            float32 [M, T, 25, 3] the sensor's colorX/Y (x, y, score 1/0)
                                     of the stored skeleton's actors and frames, colour pixels
        pose2d.npy                   float32 [M, T, K, 3] 2D keypoints (x, y, score), pixels
                                     (imported pyskl 2D pickles; pose extraction)
        pose3d_world.npy             float32 [M, T, K, 3] the pose model's world keypoints, metres
    <store>/splits/<benchmark>.json  a benchmark's training list kept with the store (long-tailed
                                     splits, ``actionfusion lt-split``; see split_files.py)

A sample directory that exists holds a ``meta.json``: the directory is renamed into place
only after every file in it has been written (``atomic_publish_dir``). Hidden ``.tmp-*``
entries are staging leftovers of a killed run; ``prepare`` removes them at start.
"""

from __future__ import annotations

from pathlib import Path

from ...io import safe_component

MANIFEST_FILE = "manifest.json"
FAILURES_FILE = "failures.json"
SAMPLES_DIR = "samples"
SPLITS_DIR = "splits"
META_FILE = "meta.json"

STORE_FORMAT = "actionfusion-sample-store"
STORE_FORMAT_VERSION = 1

MODALITIES: tuple[str, ...] = ("skeleton", "rgb", "depth", "points")
"""Modalities that ``prepare`` writes, in processing order."""

MODALITY_FILES: dict[str, str] = {
    "skeleton": "skeleton.npy",
    "rgb": "rgb.pack",
    "depth": "depth.pack",
    "points": "points.npy",
    "pose2d_sensor": "pose2d_sensor.npy",
    "pose2d": "pose2d.npy",
    "pose3d_world": "pose3d_world.npy",
}
"""The one file that holds each modality inside a sample directory."""


def samples_dir(store: Path) -> Path:
    """``<store>/samples``."""
    return Path(store) / SAMPLES_DIR


def sample_dir(store: Path, name: str) -> Path:
    """``<store>/samples/<name>``.

    Raises:
        UnsafePathError: ``name`` is not one plain path component (it comes from files: manifests,
            pickles, lists), so it could point outside the store.
    """
    return Path(store) / SAMPLES_DIR / safe_component(name, "sample name")


def is_published_sample(path: Path) -> bool:
    """True for a finished sample directory (not a staging leftover, has its ``meta.json``)."""
    return not path.name.startswith(".") and (path / META_FILE).is_file()


def split_file(store: Path, benchmark: str) -> Path:
    """``<store>/splits/<benchmark>.json``.

    Raises:
        UnsafePathError: ``benchmark`` is not one plain path component.
    """
    return Path(store) / SPLITS_DIR / f"{safe_component(benchmark, 'benchmark name')}.json"
