"""Readers that turn one stored sample into one model-ready clip of a modality.

Each reader takes the sample's clip times, shared by every modality of an item (normalised to
[0, 1) of the sample's duration), so frames of different modalities line up; see
:func:`segment_times`. The random choices (crop, rotation, jitter) come from the item's
generator; the horizontal flip is decided once per item and passed to every image-like reader.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..modalities.depth.depth_clip import depth_clip_pipeline
from ..modalities.pointcloud.point_clip import point_clip_pipeline
from ..modalities.pose.heatmap_volume import flip_heatmap_volume, heatmap_volume, layout_limbs
from ..modalities.rgb.clip_transforms import normalize_clip, rgb_clip_pipeline
from ..modalities.rgb.hand_glimpses import (HAND_JOINTS, cut_glimpses, fill_missing_centres, hand_centres_in_crop,
                                            jitter_centres)
from ..modalities.rgb.person_crop import scale_color_xy_to_video
from ..errors import StoreError
from .store.sample_store import SampleStore


def segment_times(num_frames: int, train: bool, rng: np.random.Generator, clip: int = 0, num_clips: int = 1) -> np.ndarray:
    """float64 [num_frames] normalised times in [0, 1): one per uniform segment (TSN sampling).

    Training draws a random position inside each segment; testing takes the same position in
    every segment: the centre for one clip, offsets ``(clip + 0.5) / num_clips`` for multi-clip
    testing.
    """
    if train:
        offsets = rng.random(num_frames)
    else:
        offsets = np.full(num_frames, (clip + 0.5) / num_clips)
    return (np.arange(num_frames) + offsets) / num_frames


def times_for(times: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` of ``times`` a modality with fewer frames uses: every ``len / count``-th when
    that divides (EPAM: 16 RGB frames are every 3rd of the 48 pose frames), else evenly spread."""
    total = len(times)
    if count >= total:
        return times
    if total % count == 0:
        return times[:: total // count][:count]
    return times[np.round(np.linspace(0, total - 1, count)).astype(np.int64)]


def frame_indices(times: np.ndarray, num_frames: int) -> np.ndarray:
    """int64 indices of ``times`` into a stored sequence of ``num_frames`` frames."""
    return np.minimum((times * num_frames).astype(np.int64), max(num_frames - 1, 0))


class ClipReader(Protocol):
    """``read(store, name, times, train, rng, flip) -> np.ndarray``, with the frame count it wants."""

    num_frames: int

    def read(self, store: SampleStore, name: str, times: np.ndarray, train: bool,
             rng: np.random.Generator, flip: bool) -> np.ndarray: ...


def _stored_frames(store: SampleStore, name: str, modality: str) -> int:
    entry = store.meta(name)["modalities"].get(modality, {})
    frames = entry.get("num_frames") or (entry.get("shape") or [0])[0]
    if not frames:
        raise ValueError(f"{store.path}: sample {name} has no {modality} frames")
    return int(frames)


@dataclass(frozen=True)
class RGBClipReader:
    """float32 [3, T, size, size] ImageNet-normalised person-crop clip (random-resized crop when training)."""

    num_frames: int
    size: int
    area_range: tuple[float, float] = (0.6, 1.0)

    def read(self, store: SampleStore, name: str, times: np.ndarray, train: bool,
             rng: np.random.Generator, flip: bool) -> np.ndarray:
        index = frame_indices(times, _stored_frames(store, name, "rgb"))
        frames = store.load_rgb(name, index.tolist())
        return rgb_clip_pipeline(frames, self.size, train, rng, flip=flip, area_range=self.area_range)


def _keypoints_at_rgb_frames(store: SampleStore, name: str, index: np.ndarray, source: str) -> np.ndarray:
    """float64 [T, K, 3] (x, y, score) in video pixels of the first actor, at stored RGB frames ``index``.

    ``sensor``: the skeleton's colorX/Y (colour-camera pixels, rescaled to the video), whose frames are
    the skeleton's kept file frames: each RGB frame takes the kept frame nearest to its video frame.
    ``pose2d``: keypoints extracted from the video itself, one per video frame.
    """
    meta = store.meta(name)["modalities"]
    rgb_meta = meta.get("rgb") or {}
    source_frames = np.asarray(rgb_meta.get("source_frames") or np.arange(_stored_frames(store, name, "rgb")))
    video_frames = source_frames[np.minimum(index, len(source_frames) - 1)]
    try:
        keypoints = store.load_pose2d_sensor(name) if source == "sensor" else store.load_pose2d(name)
    except StoreError as err:
        hint = ("stores prepared before pose2d_sensor existed lack it: prepare again with --overwrite"
                if source == "sensor" else "run `actionfusion extract-poses` first")
        raise StoreError(f"{err}; {hint}") from err
    first = keypoints[0]  # [T', K, 3]
    if source == "sensor":
        kept = np.asarray((meta.get("skeleton") or {}).get("source_frames") or np.arange(first.shape[0]))
        slot = np.abs(video_frames[:, None] - kept[None, : first.shape[0]]).argmin(axis=1)
        picked = first[slot].astype(np.float64)
        picked[..., :2] = scale_color_xy_to_video(picked[..., :2], tuple(rgb_meta.get("video_size_hw") or (1080, 1920)))
        return picked
    return first[np.minimum(video_frames, first.shape[0] - 1)].astype(np.float64)


@dataclass(frozen=True)
class HandGlimpseClipReader:
    """float32 [3, T, size, 2 * size] ImageNet-normalised windows on the right and left hand of the
    first actor, cut from the stored person crop (:mod:`actionfusion.modalities.rgb.hand_glimpses`).

    ``window``: window side as a fraction of the person crop; ``jitter``: training shift of each
    window (one per clip and hand, uniform in +- jitter x window); ``keypoints``: ``sensor`` (the
    skeleton's colorX/Y) or ``pose2d`` (extracted); ``layout``: the keypoints' layout.
    """

    num_frames: int
    size: int
    window: float = 0.33
    jitter: float = 0.1
    keypoints: str = "sensor"
    layout: str = "ntu25"

    def read(self, store: SampleStore, name: str, times: np.ndarray, train: bool,
             rng: np.random.Generator, flip: bool) -> np.ndarray:
        index = frame_indices(times, _stored_frames(store, name, "rgb"))
        frames = store.load_rgb(name, index.tolist())
        keypoints = _keypoints_at_rgb_frames(store, name, index, self.keypoints)
        hands = list(HAND_JOINTS[self.layout])
        box = store.meta(name)["modalities"]["rgb"].get("box") or (0, 0, frames.shape[2], frames.shape[1])
        crop_hw = (frames.shape[1], frames.shape[2])
        centres = fill_missing_centres(hand_centres_in_crop(keypoints[:, hands, :2], keypoints[:, hands, 2], box, crop_hw),
                                       crop_hw)
        if train:
            centres = jitter_centres(centres, frames.shape[1], self.window, self.jitter, rng)
        return normalize_clip(cut_glimpses(frames, centres, self.window, self.size, flip=flip))


@dataclass(frozen=True)
class HeatmapClipReader:
    """float32 [K (+ L), T, size, size] Gaussian heatmaps of the sample's 2D keypoints."""

    num_frames: int
    size: int
    sigma: float
    padding: float
    keypoints: str  # "sensor" or "pose2d"
    layout: str
    with_limbs: bool

    def read(self, store: SampleStore, name: str, times: np.ndarray, train: bool,
             rng: np.random.Generator, flip: bool) -> np.ndarray:
        try:
            kp = store.load_pose2d_sensor(name) if self.keypoints == "sensor" else store.load_pose2d(name)
        except StoreError as err:
            hint = ("stores prepared before pose2d_sensor existed lack it: prepare again with --overwrite"
                    if self.keypoints == "sensor" else
                    "import pyskl keypoints (`actionfusion import-pyskl`) or run `actionfusion extract-poses` first")
            raise StoreError(f"{err}; {hint}") from err
        kp = kp[:, frame_indices(times, kp.shape[1])]
        limbs = layout_limbs(self.layout) if self.with_limbs else None
        volume = heatmap_volume(kp, self.size, self.sigma, padding=self.padding, limbs=limbs)
        return flip_heatmap_volume(volume, self.layout, limbs=limbs) if flip else volume


@dataclass(frozen=True)
class DepthClipReader:
    """float32 [1, T, size, size] normalised depth clip."""

    num_frames: int
    size: int
    area_range: tuple[float, float] = (0.6, 1.0)

    def read(self, store: SampleStore, name: str, times: np.ndarray, train: bool,
             rng: np.random.Generator, flip: bool) -> np.ndarray:
        index = frame_indices(times, _stored_frames(store, name, "depth"))
        return depth_clip_pipeline(store.load_depth(name, index.tolist()), self.size, train, rng, flip=flip,
                                   area_range=self.area_range)


@dataclass(frozen=True)
class PointClipReader:
    """float32 [T, num_points, 3] point clip centred on its mean point."""

    num_frames: int
    num_points: int

    def read(self, store: SampleStore, name: str, times: np.ndarray, train: bool,
             rng: np.random.Generator, flip: bool) -> np.ndarray:
        index = frame_indices(times, _stored_frames(store, name, "points"))
        return point_clip_pipeline(store.load_points(name, index.tolist()), self.num_points, train, rng)
