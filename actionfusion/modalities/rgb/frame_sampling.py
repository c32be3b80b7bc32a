"""Which source frames a clip uses: uniform segments (TSN), dense clips, and EPAM's RGB/pose alignment.

Every function takes the number of source frames of the video (or of the stored sample) and
returns int64 frame indices in ``[0, num_frames)``, in temporal order for a clip that fits
the video. Random choices come only from the ``rng`` passed in (a ``numpy.random.Generator``),
so a clip is a pure function of its arguments: deterministic given the generator's state,
and safe in DataLoader workers that seed their own generators.

Conventions (``train`` selects random or fixed positions):

- :func:`uniform_segment_indices`: the video is cut into ``num_segments`` equal segments
  (integer bounds ``floor(i * N / S)``) and one frame is taken from each: a uniformly random
  frame of the segment in training (TSN, Wang et al. 2016; pyskl ``UniformSampleFrames``), the
  frame at relative position ``(c + 0.5) / C`` of every segment for test view ``c`` of ``C``
  (the centre when ``C = 1``; mmaction ``SampleFrames`` test offsets). A video shorter than
  ``num_segments`` repeats frames in order.
- :func:`dense_clip_indices`: ``clip_len`` frames ``frame_interval`` apart from a start that is
  random (training) or evenly spread over the possible starts (test view ``c`` of ``C``; the
  centre for ``C = 1``; mmaction ``SampleFrames``). A video shorter than the clip span loops
  (``index mod N``, random start in training) or clamps to the last frame (start 0).
- :func:`epam_aligned_indices`: EPAM-Net's 48 pose frames sampled uniformly and the RGB frames
  taken as every 3rd of them (16), so ``rgb == pose[::3]`` and the pose features at
  ``0:48:3`` meet the RGB frames they are fused with.

Deviation from pyskl's ``UniformSampleFrames`` (which EPAM's pose pipeline follows): for
videos shorter than the clip, pyskl loops from a random start (frames out of order) and
for ``clip_len <= N < 2 clip_len`` inserts single skips; here every length uses the same
segment rule, which keeps frames in temporal order. pyskl's test mode draws random offsets
with a fixed seed; here test offsets are fixed positions (segment centres).
"""

from __future__ import annotations

from typing import Literal, Optional

import numpy as np

EPAM_POSE_FRAMES = 48
"""Pose frames per EPAM-Net clip (ahmed-nady/Multimodal-Action-Recognition, UniformSampleFrames clip_len 48)."""
EPAM_RGB_STRIDE = 3
"""EPAM-Net's RGB frames are every 3rd pose frame (16 of 48; the attention takes pose features at 0:48:3)."""

ShortVideo = Literal["loop", "clamp"]


def _check_view(clip_index: int, num_clips: int) -> None:
    if num_clips < 1 or not 0 <= clip_index < num_clips:
        raise ValueError(f"need 0 <= clip_index < num_clips, got clip_index={clip_index}, num_clips={num_clips}")


def _require_rng(rng: Optional[np.random.Generator], train: bool) -> np.random.Generator:
    if train and rng is None:
        raise ValueError("training sampling is random: pass rng (a numpy.random.Generator)")
    return rng  # type: ignore[return-value]


def segment_bounds(num_frames: int, num_segments: int) -> np.ndarray:
    """int64 [S + 1] segment boundaries ``floor(i * N / S)``; segment i is ``[b[i], b[i + 1])``.

    With ``N >= S`` every segment holds at least one frame; with ``N < S`` some are empty.
    """
    if num_frames < 1 or num_segments < 1:
        raise ValueError(f"num_frames and num_segments must be >= 1, got {num_frames}, {num_segments}")
    return (np.arange(num_segments + 1, dtype=np.int64) * num_frames) // num_segments


def uniform_segment_indices(
    num_frames: int,
    num_segments: int,
    *,
    train: bool,
    rng: Optional[np.random.Generator] = None,
    clip_index: int = 0,
    num_clips: int = 1,
) -> np.ndarray:
    """One frame per equal segment of the video (TSN-style uniform sampling).

    Args:
        num_frames: N, source frames of the video (>= 1).
        num_segments: S, frames in the clip.
        train: random frame per segment (needs ``rng``); otherwise fixed test positions.
        rng: the random generator (training only).
        clip_index, num_clips: test view ``c`` of ``C``: the frame at relative position
            ``(c + 0.5) / C`` inside every segment (``C = 1``: the centre). Ignored in training.
    Returns:
        int64 [S] non-decreasing indices in ``[0, N)``; for ``N >= S`` index i lies in segment i,
        so every segment is used exactly once. For ``N < S`` frames repeat in order.
    """
    rng = _require_rng(rng, train)
    bounds = segment_bounds(num_frames, num_segments)
    sizes = np.maximum(np.diff(bounds), 1)  # an empty segment (N < S) uses its start frame
    if train:
        offsets = rng.integers(0, sizes)
    else:
        _check_view(clip_index, num_clips)
        offsets = np.floor((clip_index + 0.5) / num_clips * sizes).astype(np.int64)
    return np.minimum(bounds[:-1] + offsets, num_frames - 1).astype(np.int64)


def dense_clip_indices(
    num_frames: int,
    clip_len: int,
    frame_interval: int = 1,
    *,
    train: bool,
    rng: Optional[np.random.Generator] = None,
    clip_index: int = 0,
    num_clips: int = 1,
    short_video: ShortVideo = "loop",
) -> np.ndarray:
    """``clip_len`` frames ``frame_interval`` apart (a dense clip, as in SlowFast/X3D sampling).

    Args:
        num_frames: N, source frames of the video (>= 1).
        clip_len: frames in the clip.
        frame_interval: step between consecutive clip frames (>= 1).
        train: random start (needs ``rng``); otherwise fixed test starts.
        rng: the random generator (training only).
        clip_index, num_clips: test view ``c`` of ``C``: start ``floor((c + 0.5) (N - span + 1) / C)``
            with ``span = (clip_len - 1) * frame_interval + 1`` (``C = 1``: the centred clip).
        short_video: when ``N < span``: ``"loop"`` wraps indices modulo N (random start in
            training, 0 in test); ``"clamp"`` starts at 0 and repeats the last frame.
    Returns:
        int64 [clip_len] indices in ``[0, N)``.
    """
    if num_frames < 1 or clip_len < 1 or frame_interval < 1:
        raise ValueError(f"num_frames, clip_len and frame_interval must be >= 1, got "
                         f"{num_frames}, {clip_len}, {frame_interval}")
    if short_video not in ("loop", "clamp"):
        raise ValueError(f"short_video must be 'loop' or 'clamp', got {short_video!r}")
    rng = _require_rng(rng, train)
    if not train:
        _check_view(clip_index, num_clips)
    steps = np.arange(clip_len, dtype=np.int64) * frame_interval
    span = int(steps[-1]) + 1
    if num_frames >= span:
        free = num_frames - span + 1  # number of possible starts
        start = int(rng.integers(0, free)) if train else int((clip_index + 0.5) * free / num_clips)
        return steps + start
    if short_video == "clamp":
        return np.minimum(steps, num_frames - 1)
    start = int(rng.integers(0, num_frames)) if train else 0
    return (steps + start) % num_frames


def epam_aligned_indices(
    num_frames: int,
    *,
    train: bool,
    rng: Optional[np.random.Generator] = None,
    pose_frames: int = EPAM_POSE_FRAMES,
    rgb_stride: int = EPAM_RGB_STRIDE,
    clip_index: int = 0,
    num_clips: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """EPAM-Net's aligned clip: ``pose_frames`` uniform-segment indices and every ``rgb_stride``-th of them.

    Args:
        num_frames: N, source frames shared by the pose and RGB streams (the store keeps them aligned).
        train, rng, clip_index, num_clips: as in :func:`uniform_segment_indices`.
        pose_frames: pose clip length (EPAM 48).
        rgb_stride: RGB takes pose frames ``0, stride, 2 stride, ...`` (EPAM 3, giving 16 of 48).
    Returns:
        (pose int64 [pose_frames], rgb int64 [ceil(pose_frames / rgb_stride)]) with ``rgb == pose[::rgb_stride]``.
    """
    if rgb_stride < 1:
        raise ValueError(f"rgb_stride must be >= 1, got {rgb_stride}")
    pose = uniform_segment_indices(num_frames, pose_frames, train=train, rng=rng,
                                   clip_index=clip_index, num_clips=num_clips)
    return pose, pose[::rgb_stride].copy()
