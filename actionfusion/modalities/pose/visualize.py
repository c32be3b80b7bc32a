"""The visual check: keypoints and skeleton edges drawn over the frames, as an MP4 or a PNG strip.

* :func:`draw_poses` draws the people of one frame (edges of the layout's tree, a dot per joint,
  one colour per track; joints below ``min_score`` are left out).
* :func:`write_pose_video` streams the video again and writes the drawn frames with the PyAV
  :class:`~actionfusion.modalities.rgb.video_writer.VideoWriter` (atomic).
* :func:`write_pose_strip` draws ``num_frames`` evenly spaced frames side by side into one PNG.
* :func:`run_visualize_poses` is the ``actionfusion visualize-poses`` command: a video path runs
  extraction first; a sample name of a store draws the stored ``pose2d`` over the stored RGB
  person crop.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import cv2
import numpy as np

from actionfusion.errors import StoreError, VideoDecodeError
from actionfusion.io import atomic_write_bytes
from actionfusion.modalities.pose.estimator import PoseSequence
from actionfusion.modalities.rgb.video import open_video
from actionfusion.modalities.rgb.video_writer import VideoWriter
from actionfusion.modalities.skeleton.layouts import get_layout

PathLike = Union[str, "os.PathLike[str]"]

# One RGB colour per track (tab10), cycled.
TRACK_COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
                 (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))


def draw_poses(frame: np.ndarray, keypoints: np.ndarray, layout: str, min_score: float = 0.3,
               thickness: Optional[int] = None) -> np.ndarray:
    """Draw people over a frame.

    Args:
        frame: uint8 [H, W, 3] RGB (not modified).
        keypoints: float [M, K, 3] (x, y pixels, score) in ``layout``; an all-zero person is skipped.
        min_score: joints with a lower score (and edges touching them) are not drawn.
        thickness: line width in pixels; default scales with the frame (1 per 360 px of height).
    Returns:
        uint8 [H, W, 3], a drawn copy.
    """
    out = np.ascontiguousarray(frame).copy()
    edges = get_layout(layout).edges()
    width = thickness or max(1, round(out.shape[0] / 360))
    for m, person in enumerate(np.asarray(keypoints, np.float32).reshape(-1, *np.shape(keypoints)[-2:])):
        if not np.any(person):
            continue
        colour = TRACK_COLOURS[m % len(TRACK_COLOURS)]
        ok = (person[:, 2] >= min_score) & np.all(np.isfinite(person[:, :2]), axis=1)
        points = np.round(np.nan_to_num(person[:, :2])).astype(np.int32)
        for a, b in edges:
            if ok[a] and ok[b]:
                cv2.line(out, tuple(map(int, points[a])), tuple(map(int, points[b])), colour, width, cv2.LINE_AA)
        for j in np.nonzero(ok)[0]:
            cv2.circle(out, tuple(map(int, points[j])), width + 2, (255, 255, 255), -1, cv2.LINE_AA)
            cv2.circle(out, tuple(map(int, points[j])), width + 1, colour, -1, cv2.LINE_AA)
    return out


def _even(value: int) -> int:
    return max(2, int(value) // 2 * 2)


def _scaled_size(frame_hw: Sequence[int], max_height: Optional[int]) -> tuple[int, int]:
    """(height, width), even, scaled down so height <= max_height (None keeps the size)."""
    height, width = int(frame_hw[0]), int(frame_hw[1])
    scale = 1.0 if max_height is None or height <= max_height else max_height / height
    return _even(round(height * scale)), _even(round(width * scale))


def _scale_keypoints(keypoints: np.ndarray, sx: float, sy: float) -> np.ndarray:
    out = np.array(keypoints, np.float32, copy=True)
    out[..., 0] *= sx
    out[..., 1] *= sy
    return out


def write_pose_video(frames: Iterable[np.ndarray], poses: PoseSequence, out: PathLike,
                     max_height: Optional[int] = 540, min_score: float = 0.3) -> Path:
    """Draw ``poses`` over ``frames`` (uint8 [H, W, 3] each, the frames of ``poses.frame_indices``,
    in order and at ``poses.frame_size``) and encode them to a video (``.mp4``/``.avi``/...).

    Frames stream through (never all in memory). ``max_height`` scales the output down.
    Returns the written path.
    """
    height, width = _scaled_size(poses.frame_size, max_height)
    sx, sy = width / poses.frame_size[1], height / poses.frame_size[0]
    fps = max(1, round(poses.fps)) if poses.fps > 0 else 30
    with VideoWriter(out, width, height, fps=fps) as writer:
        for t, frame in enumerate(frames):
            if t >= poses.num_frames:
                break
            small = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
            writer.write(draw_poses(small, _scale_keypoints(poses.keypoints[:, t], sx, sy), poses.layout, min_score))
    return Path(out)


def strip_indices(num_frames: int, count: int) -> np.ndarray:
    """``count`` evenly spaced time indices in [0, num_frames), int64 (fewer if the video is shorter)."""
    count = max(1, min(int(count), int(num_frames)))
    return np.unique(np.linspace(0, num_frames - 1, count).round().astype(np.int64))


def write_pose_strip(frames: np.ndarray, keypoints: np.ndarray, layout: str, out: PathLike,
                     frame_height: int = 270, min_score: float = 0.3) -> Path:
    """Draw poses over a few frames and save them side by side as one PNG (atomically).

    Args:
        frames: uint8 [N, H, W, 3] RGB.
        keypoints: float [M, N, K, 3] in pixels of ``frames``.
        frame_height: height of each tile in the strip.
    Returns:
        the written path.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or len(frames) == 0:
        raise ValueError(f"expected frames [N, H, W, 3] with N >= 1, got shape {frames.shape}")
    height, width = _scaled_size(frames.shape[1:3], frame_height)
    sx, sy = width / frames.shape[2], height / frames.shape[1]
    tiles = [draw_poses(cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA),
                        _scale_keypoints(keypoints[:, n], sx, sy), layout, min_score)
             for n, frame in enumerate(frames)]
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(np.concatenate(tiles, axis=1), cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"{out}: PNG encoding failed")
    atomic_write_bytes(out, encoded.tobytes())
    return Path(out)


def zoom_to_people(frames: np.ndarray, keypoints: np.ndarray, padding: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """Crop frames uint8 [N, H, W, 3] to the box around every present keypoint [M, N, K, 3]
    (enlarged by ``padding`` on each side, clipped to the frame); keypoints are shifted to match.
    Nothing to zoom to (no keypoint) returns the inputs."""
    present = np.any(keypoints != 0, axis=-1)
    if not present.any():
        return frames, keypoints
    xy = keypoints[..., :2][present]
    (x0, y0), (x1, y1) = xy.min(axis=0), xy.max(axis=0)
    pad = padding * max(x1 - x0, y1 - y0)
    height, width = frames.shape[1:3]
    x0, y0 = int(max(0, x0 - pad)), int(max(0, y0 - pad))
    x1, y1 = int(min(width, np.ceil(x1 + pad))), int(min(height, np.ceil(y1 + pad)))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return frames, keypoints
    shifted = np.where(present[..., None], keypoints - np.array([x0, y0, 0], np.float32), 0.0)
    return frames[:, y0:y1, x0:x1], shifted.astype(np.float32)


def visualize_video_poses(video_path: PathLike, poses: PoseSequence, out: PathLike, num_frames: int = 6,
                          video_backend: str = "pyav", zoom: bool = True) -> Path:
    """Draw ``poses`` (extracted from ``video_path``) over its frames: ``out`` ending in ``.png``
    gives a strip of ``num_frames`` frames (cropped to the people when ``zoom``), a video suffix
    gives the whole video (full frames, scaled to 540 lines)."""
    frame_indices = poses.frame_indices if poses.frame_indices is not None else np.arange(poses.num_frames)
    with open_video(video_path, backend=video_backend) as video:
        if Path(out).suffix.lower() == ".png":
            steps = strip_indices(poses.num_frames, num_frames)
            frames = video.read_frames([int(frame_indices[t]) for t in steps])
            keypoints = poses.keypoints[:, steps]
            if zoom:
                frames, keypoints = zoom_to_people(frames, keypoints)
            return write_pose_strip(frames, keypoints, poses.layout, out)
        wanted = set(int(i) for i in frame_indices)
        frames = (f for i, f in enumerate(video.iter_frames()) if i in wanted)
        return write_pose_video(frames, poses, out)


def _store_crop_poses(store, name: str) -> tuple[np.ndarray, np.ndarray, str]:
    """(rgb crops uint8 [T, S, S, 3], pose2d in crop pixels [M, T, K, 3], layout) of a store sample."""
    meta = store.meta(name)
    modalities = meta.get("modalities", {})
    missing = [m for m in ("pose2d", "rgb") if m not in modalities]
    if missing:
        raise StoreError(f"sample {name!r} has no {' and no '.join(missing)} in the store")
    rgb_meta, pose_meta = modalities["rgb"], modalities["pose2d"]
    pose2d = store.load_pose2d(name)
    x0, y0, x1, y1 = (float(v) for v in rgb_meta["box"])
    crops = store.load_rgb(name)
    sx, sy = crops.shape[2] / (x1 - x0), crops.shape[1] / (y1 - y0)
    # Time: map pose steps onto RGB frames by their frame rates (both from the same video).
    ratio = float(rgb_meta.get("fps", 0) or 0) / float(pose_meta.get("fps", 0) or 1) or 1.0
    rgb_t = np.clip(np.round(np.arange(pose2d.shape[1]) * ratio).astype(np.int64), 0, len(crops) - 1)
    present = np.any(pose2d != 0, axis=-1, keepdims=True)
    shifted = pose2d.copy()
    shifted[..., 0] = (pose2d[..., 0] - x0) * sx
    shifted[..., 1] = (pose2d[..., 1] - y0) * sy
    return crops[rgb_t], np.where(present, shifted, 0.0).astype(np.float32), pose_meta.get("layout", "blazepose33")


def run_visualize_poses(input: str, out: PathLike, backend: str = "default", store=None,
                        num_frames: int = 6, device: str = "cpu") -> Path:
    """``actionfusion visualize-poses VIDEO_OR_SAMPLE --out FILE``.

    Args:
        input: a video file (poses are extracted with ``backend``), or a sample name of ``store``.
        out: ``.png`` for a strip of ``num_frames`` frames, or a video file (``.mp4``, ...).
        store: an open sample store (``SampleStore``) for sample names: its ``pose2d`` is drawn over
            its RGB person crops.
    Returns:
        the written path.
    Raises:
        VideoDecodeError: ``input`` is neither a file nor a sample of ``store``, or the video cannot
            be decoded.
        StoreError: the sample lacks pose2d or rgb.
    """
    if Path(input).is_file():
        from actionfusion.modalities.pose.extract import extract_poses

        poses = extract_poses(input, backend=backend, device=device)
        return visualize_video_poses(input, poses, out, num_frames=num_frames)
    if store is None or input not in store:
        where = "and no store was given" if store is None else "nor a sample of the store"
        raise VideoDecodeError(input, f"not a video file ({where})")
    crops, keypoints, layout = _store_crop_poses(store, input)
    if Path(out).suffix.lower() == ".png":
        steps = strip_indices(len(crops), num_frames)
        return write_pose_strip(crops[steps], keypoints[:, steps], layout, out, frame_height=crops.shape[1])
    fps = float(store.meta(input)["modalities"]["pose2d"].get("fps", 30.0) or 30.0)
    size = (_even(crops.shape[1]), _even(crops.shape[2]))
    poses = PoseSequence(keypoints, layout, fps, size)
    return write_pose_video(iter(crops[:, :size[0], :size[1]]), poses, out, max_height=None)
