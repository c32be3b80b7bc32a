"""Prepare one NTU sample: every requested modality into a staging directory, then publish it.

Stages, in order (each is tried on its own; see "Failures" below):

- ``skeleton``: read the ``.skeleton`` file, denoise it (CTR-GCN/MAMP lineage) into
  float32 [M, T', 25, 3] actors. The kept bodies' colorX/Y and depthX/Y give the crop boxes.
- ``rgb``: ONE person box around every kept actor's colorX/Y over the whole clip (scaled from
  1920x1080 to the video's real size), padded and squared; frames are decoded, cropped,
  resized to ``rgb_size`` and JPEG-encoded one at a time into ``rgb.pack``.
- ``depth`` and ``points`` share one pass over the masked depth PNGs: each frame is cropped
  to the box around the kept actors' depthX/Y (nearest-neighbour resize to ``depth_size``,
  uint16 mm) into ``depth.pack``, and back-projected with the depth intrinsics (whole frame;
  the mask already isolates the performer) and sampled to ``num_points`` points.

Without a usable skeleton the boxes fall back: RGB to the centred square of the frame, depth
to the box around every non-zero masked-depth pixel of the clip (one extra pass). ``meta.json``
records which (``crop_source``).

Frame alignment: every RGB and depth frame of the source is kept, so stored RGB frame ``i``
is video frame ``i`` and stored depth frame ``i`` is the source frame
``meta["modalities"]["depth"]["source_frames"][i]`` (0-based; depth folders may have gaps).
Denoising drops skeleton frames; ``meta["modalities"]["skeleton"]["source_frames"]`` maps each
stored skeleton frame to its 0-based frame in the ``.skeleton`` file, which NTU records
frame-synchronously with the video and depth streams.

Integrity: ``meta["files"]`` records each published file's size and BLAKE2b-128 checksum,
computed in the staging directory before ``meta.json`` is written (see ``file_checksums``).

Failures: a stage that raises is recorded as ``(stage, "ErrorType: message")`` and the other
stages go on. If at least one modality was written the sample is published with status
``partial`` (its meta lists the failed stages, and a rerun keeps it); if nothing was written
the sample is not published (status ``failed``) and a rerun tries it again. A source the
sample simply lacks (no video in the root) is not a failure: it is listed under ``absent``.
When the skeleton is read only for the crop boxes (``skeleton`` not among the modalities) and
cannot be used, the boxes fall back and ``meta["warnings"]`` says so; the sample stays ``ok``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ...errors import SampleNameError, SkeletonFormatError, StoreError
from ...io import atomic_publish_dir, atomic_save_npy, atomic_write_json, make_staging_dir
from ...modalities.depth.depth_crop import crop_depth, depth_box_from_skeleton
from ...modalities.rgb.person_crop import person_box_from_points, scale_color_xy_to_video
from ...modalities.rgb.video import open_video
from ..ntu.actor_fields import sensor_keypoints_2d
from ..ntu.denoise import DenoiseReport, denoise_skeleton
from ..ntu.depth import depth_frame_index, list_depth_frames, read_depth_png
from ..ntu.index import SamplePaths
from ..ntu.names import parse_sample_name
from ..ntu.skeleton_file import SkeletonFile, read_skeleton_file
from .file_checksums import record_files
from .frame_pack import FramePackWriter
from .layout import META_FILE, MODALITY_FILES, sample_dir
from .prepare_config import PrepareConfig

# Columns of SkeletonFile.joints (actionfusion.datasets.ntu.skeleton_file.JOINT_FIELDS).
_DEPTH_XY = slice(3, 5)
_COLOR_XY = slice(5, 7)

SOURCE_FOR_MODALITY = {"skeleton": "skeleton", "rgb": "rgb", "depth": "depth_masked", "points": "depth_masked"}
"""Which :class:`SamplePaths` field each stored modality is made from."""


@dataclass
class SampleResult:
    """What happened to one sample.

    Attributes:
        name: the sample.
        status: ``ok`` (every requested modality the sample has was written), ``partial``
            (published, some stage failed), ``failed`` (nothing written, not published) or
            ``skipped`` (already in the store).
        failures: (stage, "ErrorType: message") per failed stage.
        bytes: stored bytes per modality.
        frames: stored frames per modality.
        seconds: wall time spent.
        cpu_s: CPU time (user + system, all threads) of the process while preparing it.
        peak_rss_mb: peak resident memory of the process that prepared it, so far (MiB).
    """

    name: str
    status: str
    failures: list[tuple[str, str]] = field(default_factory=list)
    bytes: dict[str, int] = field(default_factory=dict)
    frames: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    cpu_s: float = 0.0
    peak_rss_mb: float = 0.0


def wanted_modalities(paths: SamplePaths, config: PrepareConfig) -> list[str]:
    """The requested modalities whose source the sample has."""
    return [m for m in config.modalities if getattr(paths, SOURCE_FOR_MODALITY[m]) is not None]


def sample_seed(name: str, base_seed: int) -> int:
    """A per-sample seed that depends only on the name and the base seed (not on run order)."""
    return (zlib.crc32(name.encode("utf-8")) + 1_000_003 * int(base_seed)) % (2**32)


def error_text(err: BaseException) -> str:
    """``"ErrorType: message"``, one line."""
    return f"{type(err).__name__}: {' '.join(str(err).split())}"


def prepare_sample(paths: SamplePaths, store: Path, config: PrepareConfig, root: Optional[Path] = None,
                   video_threads: int = 0) -> SampleResult:
    """Prepare ``paths`` into ``<store>/samples/<name>`` (see the module docstring).

    Args:
        paths: the sample's source files.
        store: the store directory.
        config: what to write.
        root: the NTU root, to record source paths relative to it in the meta.
        video_threads: decoder threads (0 = the backend's choice; 1 inside parallel workers).
    Returns:
        the :class:`SampleResult`. Never raises for bad input: every error is recorded.
    """
    start, cpu_start = time.perf_counter(), time.process_time()
    final = sample_dir(store, paths.name)
    if (final / META_FILE).is_file():
        return SampleResult(paths.name, "skipped", seconds=time.perf_counter() - start)
    result = SampleResult(paths.name, "failed")
    staging = make_staging_dir(final)
    try:
        meta = _write_modalities(paths, staging, config, result, root, video_threads)
        if meta["modalities"]:
            result.status = "partial" if result.failures else "ok"
            meta["status"] = result.status
            meta["failures"] = [{"stage": s, "error": e} for s, e in result.failures]
            for modality, nbytes in result.bytes.items():
                meta["modalities"][modality]["bytes"] = nbytes
            record_files(meta, staging, [MODALITY_FILES[m] for m in meta["modalities"]])
            atomic_write_json(staging / META_FILE, meta)
            if final.exists():  # a directory without meta.json is not a published sample
                shutil.rmtree(final)
            atomic_publish_dir(staging, final)
        else:
            if not result.failures:
                result.failures.append(("sample", "StoreError: the sample has none of the requested modalities"))
            result.status = "failed"
    except Exception as err:  # publishing itself failed (disk full, permissions): record and go on
        result.failures.append(("publish", error_text(err)))
        result.status = "failed"
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    result.seconds = time.perf_counter() - start
    result.cpu_s = time.process_time() - cpu_start
    result.peak_rss_mb = peak_rss_mb()
    return result


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (0 where ``resource`` is unavailable)."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return 0.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def _write_modalities(paths: SamplePaths, staging: Path, config: PrepareConfig, result: SampleResult,
                      root: Optional[Path], video_threads: int) -> dict[str, Any]:
    """Run every stage into ``staging``; fill ``result``; return the meta dict."""
    meta: dict[str, Any] = {"name": paths.name, "label": None, "modalities": {}, "absent": []}
    with contextlib.suppress(SampleNameError):  # a non-NTU name has no label
        meta["label"] = parse_sample_name(paths.name).label
    meta["sources"] = {key: _relative(getattr(paths, key), root)
                       for key in ("skeleton", "rgb", "depth_masked") if getattr(paths, key) is not None}
    wanted = wanted_modalities(paths, config)
    meta["absent"] = [m for m in config.modalities if m not in wanted]

    actors_xy: Optional[np.ndarray] = None  # float32 [A, T, 25, 4]: colorX/Y, depthX/Y of the kept bodies
    if paths.skeleton is not None:
        try:
            skeleton, report, actors_xy, keypoints_2d = _skeleton_stage(paths.skeleton, config)
            if "skeleton" in wanted:
                denoise = _jsonable(dataclasses.asdict(report))
                atomic_save_npy(staging / MODALITY_FILES["skeleton"], skeleton)
                meta["denoise"] = denoise
                meta["modalities"]["skeleton"] = {
                    "shape": list(skeleton.shape), "dtype": "float32", "unit": "m",
                    "num_frames": int(skeleton.shape[1]),
                    "source_frames": [int(t) for t in report.kept_frames],
                    "num_frames_in_file": int(report.num_frames_in_file),
                }
                _account(result, staging, "skeleton", int(skeleton.shape[1]))
                atomic_save_npy(staging / MODALITY_FILES["pose2d_sensor"], keypoints_2d)
                meta["modalities"]["pose2d_sensor"] = {
                    "shape": list(keypoints_2d.shape), "dtype": "float32", "layout": "ntu25",
                    "unit": "colour-camera pixels (colorX, colorY), score 1 present / 0 absent",
                    "num_frames": int(keypoints_2d.shape[1]),
                }
        except Exception as err:
            if "skeleton" in wanted:
                result.failures.append(("skeleton", error_text(err)))
            else:  # only wanted for the crop boxes, which fall back: a warning, not a failed modality
                meta.setdefault("warnings", []).append(f"skeleton unusable for crop boxes: {error_text(err)}")
            actors_xy = None

    if "rgb" in wanted:
        try:
            meta["modalities"]["rgb"] = _rgb_stage(paths, staging, config, actors_xy, video_threads)
            _account(result, staging, "rgb", meta["modalities"]["rgb"]["num_frames"])
        except Exception as err:
            result.failures.append(("rgb", error_text(err)))

    depth_wanted = [m for m in ("depth", "points") if m in wanted]
    if depth_wanted:
        _depth_points_stage(paths, staging, config, actors_xy, depth_wanted, meta, result)
    _limit_torch_threads()
    return meta


def _skeleton_stage(path: Path, config: PrepareConfig) -> tuple[np.ndarray, DenoiseReport, np.ndarray, np.ndarray]:
    """Read and denoise; also return the kept bodies' 2D coordinates.

    Returns:
        (skeleton float32 [M, T', 25, 3], report, actors_xy float32 [A, T, 25, 4] with
        colorX, colorY, depthX, depthY of the A kept bodies over all file frames, NaN where absent,
        keypoints_2d float32 [M, T', 25, 3] the sensor's colorX/Y and score in the skeleton's slots).
    Raises:
        SkeletonFormatError: unreadable file, or no body in any frame.
    """
    sk: SkeletonFile = read_skeleton_file(path)
    skeleton, report = denoise_skeleton(sk, max_actors=config.max_actors)
    if report.no_bodies or skeleton.shape[1] == 0:
        raise SkeletonFormatError(path, "no body in any frame (an official missing-skeleton sample?)")
    kept_ids = {int(body_id) for slot in report.actor_bodies for body_id in slot}
    rows = [b for b in range(sk.num_bodies) if int(sk.body_ids[b]) in kept_ids]
    actors_xy = np.concatenate([sk.joints[rows][..., _COLOR_XY], sk.joints[rows][..., _DEPTH_XY]], axis=-1)
    keypoints_2d = sensor_keypoints_2d(sk, report)
    return np.ascontiguousarray(skeleton, dtype=np.float32), report, actors_xy.astype(np.float32), keypoints_2d


def _rgb_stage(paths: SamplePaths, staging: Path, config: PrepareConfig, actors_xy: Optional[np.ndarray],
               video_threads: int) -> dict[str, Any]:
    """Decode, crop, resize and JPEG-encode the video one frame at a time into ``rgb.pack``."""
    size = (config.rgb_size, config.rgb_size)
    with open_video(paths.rgb, backend=config.video_backend, threads=video_threads) as video:
        frame_hw = tuple(int(v) for v in video.frame_size)
        if actors_xy is not None and np.isfinite(actors_xy[..., 0:2]).any():
            xy = scale_color_xy_to_video(actors_xy[..., 0:2], frame_hw)
            crop_source = "skeleton"
        else:
            xy = np.full((1, 2), np.nan)
            crop_source = "centre"
        box = person_box_from_points(xy, frame_hw, padding=config.crop_padding, square=True)
        with FramePackWriter(staging / MODALITY_FILES["rgb"], "jpeg", jpeg_quality=config.rgb_jpeg_quality) as pack:
            for frame in video.iter_frames(size=size, crop=box):
                pack.append(frame)
            count = pack.count
        fps = float(video.fps)
    return {
        "shape": [count, size[0], size[1], 3], "dtype": "uint8", "num_frames": count,
        "codec": "jpeg", "jpeg_quality": config.rgb_jpeg_quality,
        "box": [int(v) for v in box], "crop_source": crop_source,
        "video_size_hw": list(frame_hw), "fps": fps,
        "source_frames": list(range(count)),  # every video frame is kept
    }


def _depth_points_stage(paths: SamplePaths, staging: Path, config: PrepareConfig, actors_xy: Optional[np.ndarray],
                        wanted: list[str], meta: dict[str, Any], result: SampleResult) -> None:
    """One pass over the masked depth frames writing ``depth.pack`` and/or ``points.npy``."""
    try:
        frames = list_depth_frames(paths.depth_masked, masked=True)
        if not frames:
            raise StoreError(f"{paths.depth_masked}: no MDepth-*.png frame")
        source_frames = [depth_frame_index(p) - 1 for p in frames]
    except Exception as err:
        for modality in wanted:
            result.failures.append((modality, error_text(err)))
        return

    depth_ok = "depth" in wanted
    points_ok = "points" in wanted
    box: Optional[tuple[int, int, int, int]] = None
    crop_source = ""
    if depth_ok:
        try:
            if actors_xy is not None and np.isfinite(actors_xy[..., 2:4]).any():
                box = depth_box_from_skeleton(actors_xy[..., 2:4], padding=config.crop_padding, square=True)
                crop_source = "skeleton"
            else:
                box = depth_box_from_skeleton(_nonzero_extent(frames), padding=config.crop_padding, square=True)
                crop_source = "masked_depth"
        except Exception as err:
            result.failures.append(("depth", error_text(err)))
            depth_ok = False

    # imported here: only the workers that sample points need them
    from ...modalities.pointcloud.backproject import depth_to_points
    from ...modalities.pointcloud.sampling import sample_points

    rng = np.random.default_rng(sample_seed(paths.name, config.seed))
    points = np.zeros((len(frames), config.num_points, 3), dtype=np.float32) if points_ok else None
    empty_frames: list[int] = []
    with contextlib.ExitStack() as stack:
        writer = None
        if depth_ok:
            writer = stack.enter_context(FramePackWriter(
                staging / MODALITY_FILES["depth"], "png16", png_compression=config.depth_png_compression))
        for t, frame_path in enumerate(frames):
            if not (depth_ok or points_ok):
                break
            try:
                depth = read_depth_png(frame_path)
            except Exception as err:  # an unreadable frame: both modalities of this sample lose
                result.failures += [(m, error_text(err)) for m, ok in (("depth", depth_ok), ("points", points_ok)) if ok]
                depth_ok = points_ok = False
                break
            if depth_ok and writer is not None:
                try:
                    writer.append(crop_depth(depth, box, config.depth_size))
                except Exception as err:
                    result.failures.append(("depth", error_text(err)))
                    depth_ok = False
            if points_ok and points is not None:
                try:
                    cloud = depth_to_points(depth, config.camera)
                    if len(cloud) == 0:
                        empty_frames.append(t)
                    points[t] = sample_points(cloud, config.num_points, method=config.point_sampling,
                                              voxel_size=config.point_voxel_size, rng=rng)
                except Exception as err:
                    result.failures.append(("points", error_text(err)))
                    points_ok = False
        if writer is not None and not depth_ok:
            writer.abort()

    if depth_ok and box is not None:
        meta["modalities"]["depth"] = {
            "shape": [len(frames), config.depth_size, config.depth_size], "dtype": "uint16", "unit": "mm",
            "num_frames": len(frames), "codec": "png16", "box": [int(v) for v in box],
            "crop_source": crop_source, "source_frames": source_frames,
        }
        _account(result, staging, "depth", len(frames))
    if points_ok and points is not None:
        try:
            stored = points.astype(np.dtype(config.points_dtype))
            atomic_save_npy(staging / MODALITY_FILES["points"], stored)
            meta["modalities"]["points"] = {
                "shape": list(stored.shape), "dtype": config.points_dtype, "unit": "m",
                "num_frames": len(frames), "intrinsics": config.intrinsics, "sampling": config.point_sampling,
                "empty_frames": empty_frames, "source_frames": source_frames,
            }
            _account(result, staging, "points", len(frames))
        except Exception as err:
            result.failures.append(("points", error_text(err)))


def _nonzero_extent(frames: list[Path]) -> np.ndarray:
    """float64 [2, 2]: the two corners (x, y) of the box around every non-zero pixel of the clip.

    Raises:
        StoreError: every frame is all zero.
    """
    lo = np.array([np.inf, np.inf])
    hi = np.array([-np.inf, -np.inf])
    for path in frames:
        depth = read_depth_png(path)
        cols = np.flatnonzero(depth.any(axis=0))
        rows = np.flatnonzero(depth.any(axis=1))
        if cols.size:
            lo = np.minimum(lo, [cols[0], rows[0]])
            hi = np.maximum(hi, [cols[-1], rows[-1]])
    if not np.isfinite(lo).all():
        raise StoreError(f"{frames[0].parent}: every masked depth frame is empty; no box to crop")
    return np.stack([lo, hi])


def _account(result: SampleResult, staging: Path, modality: str, frames: int) -> None:
    result.bytes[modality] = (staging / MODALITY_FILES[modality]).stat().st_size
    result.frames[modality] = int(frames)


def _relative(path: Optional[Path], root: Optional[Path]) -> Optional[str]:
    if path is None:
        return None
    if root is not None and Path(path).resolve().is_relative_to(Path(root).resolve()):
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    return str(path)


def _jsonable(value: Any) -> Any:
    """Numpy scalars/arrays and tuples to plain JSON types (dict keys to str)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def _limit_torch_threads() -> None:
    """If a stage imported torch, keep it to one thread so parallel workers do not oversubscribe."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != 1:
        torch.set_num_threads(1)
