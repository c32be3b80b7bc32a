"""Add person-cropped RGB frames to a published sample that holds extracted 2D poses (your own videos).

The crop is one square box per video around every keypoint the pose model found with a score above
``min_score`` (all tracks, all frames), enlarged by ``padding``: the same box the NTU ``prepare``
draws around the sensor skeleton's colour coordinates, here from the poses this library extracted.
The video is decoded once more, one frame at a time, and every frame is JPEG-encoded into
``rgb.pack`` (the store's frame pack, CRC-32 per frame); with no keypoint at all the box is the
centred square.

Safe against ``kill -9``: the pack is written to a hidden temporary file in the sample folder and
renamed into place, and only then is ``meta.json`` rewritten atomically with the ``rgb`` entry and
the file's size and checksum; a rerun redoes a sample whose meta has no ``rgb``.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Union

import numpy as np

from ...errors import StoreError
from ...io import atomic_write_json, load_json
from ...modalities.rgb.person_crop import person_box_from_points
from ...modalities.rgb.video import open_video
from .file_checksums import record_files
from .frame_pack import FramePackWriter
from .layout import META_FILE, MODALITY_FILES, sample_dir

PathLike = Union[str, "os.PathLike[str]"]


def pose_points(pose2d: np.ndarray, min_score: float = 0.3) -> np.ndarray:
    """float64 [N, 2] the (x, y) of every keypoint of ``pose2d`` [M, T, K, 3] scored above ``min_score``."""
    keypoints = np.asarray(pose2d, dtype=np.float64).reshape(-1, 3)
    return keypoints[keypoints[:, 2] > min_score, :2]


def add_person_rgb(store: PathLike, name: str, video: PathLike, *, size: int = 192, jpeg_quality: int = 75,
                   padding: float = 0.25, min_score: float = 0.3, video_backend: str = "pyav") -> dict[str, Any]:
    """Write ``rgb.pack`` (uint8 [T, size, size, 3] JPEG person crops of ``video``) into sample ``name``.

    Returns:
        the ``meta["modalities"]["rgb"]`` entry written.
    Raises:
        StoreError: the sample is not published or has no ``pose2d``.
        VideoDecodeError: the video cannot be decoded.
    """
    folder = sample_dir(Path(store), name)
    meta_path = folder / META_FILE
    try:
        meta = load_json(meta_path)
    except (OSError, ValueError) as err:
        raise StoreError(f"{meta_path}: unreadable sample meta ({err})") from None
    if not isinstance(meta, dict) or "pose2d" not in (meta.get("modalities") or {}):
        raise StoreError(f"{folder}: the sample has no pose2d to crop the person by; extract its poses first")
    points = pose_points(np.load(folder / MODALITY_FILES["pose2d"], allow_pickle=False), min_score)
    target = folder / MODALITY_FILES["rgb"]
    temporary = folder / f".tmp-{os.getpid()}-{MODALITY_FILES['rgb']}"
    try:
        with open_video(video, backend=video_backend) as decoder:
            frame_hw = tuple(int(v) for v in decoder.frame_size)
            box = person_box_from_points(points if len(points) else np.full((1, 2), np.nan), frame_hw,
                                         padding=padding, square=True)
            with FramePackWriter(temporary, "jpeg", jpeg_quality=jpeg_quality) as pack:
                for frame in decoder.iter_frames(size=(size, size), crop=box):
                    pack.append(frame)
                count = pack.count
            fps = float(decoder.fps)
        os.replace(temporary, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
    entry = {"shape": [count, size, size, 3], "dtype": "uint8", "num_frames": count, "codec": "jpeg",
             "jpeg_quality": int(jpeg_quality), "box": [int(v) for v in box],
             "crop_source": "pose2d" if len(points) else "centre", "video_size_hw": list(frame_hw), "fps": fps,
             "source_frames": list(range(count))}
    meta["modalities"] = {**dict(meta["modalities"]), "rgb": entry}
    record_files(meta, folder, [MODALITY_FILES["rgb"]])
    atomic_write_json(meta_path, meta)
    return entry
