"""Temporal and spatial corruption of skeleton sequences: the robustness benchmark's inputs.

Every corruption is a pure function of a sequence ``x`` float [M, T, V, C] and a seed (an int, a
sequence of ints or a ``numpy.random.Generator``), returning a :class:`CorruptedClip`:

- ``sequence`` [M, T, V, C]: the T_hat kept frames in time order, then zero frames up to T, as
  FineTec's input (its "corrupted sequence keeps T_hat < T frames, zero-padded");
- ``observed`` bool [T, V]: which (frame, joint) of the *original* timeline was observed;
- ``frame_times`` int64 [T_hat]: the source frame of each kept row.

All persons lose the same frames and joints (frames are a property of time; RA-GCN occludes a part
of every person). The corruptions (:data:`CORRUPTIONS`):

- ``frame_drop``: a uniformly random subset of ``round(rate * T)`` frames is lost (gaps of any
  length: a tracker that misses frames).
- ``block_drop``: one contiguous block of ``round(rate * T)`` frames, starting uniformly at random,
  is lost (a stall, an occluder passing).
- ``uniform_subsample``: a lower frame rate. The timeline is cut into T_hat = T - round(rate * T)
  equal segments and the frame at each segment's centre is kept; the seed is not used.
- ``random_subsample``: a jittered lower frame rate. The same T_hat segments, one uniformly random
  frame kept in each (TSN-style segment sampling: gaps are at most two segments long).
- ``joint_occlusion``: the joints of the named body parts (:mod:`.occlusion_parts`, RA-GCN's arms,
  hands, legs, trunk) are zero in every frame; every frame is kept. A level may offer several part
  sets, one drawn per clip.
- ``jitter``: Gaussian noise of standard deviation ``sigma * scale`` on every non-zero joint, where
  ``scale`` is the clip's body size (the RMS distance of its non-zero joints to their person-frame
  centroid), so the levels mean the same for metres and pixels; every frame and joint is kept.
  Zero joints (absent persons, padding) stay zero.

Counting: ``round`` rounds halves up; at least one frame is always kept, so
``lost = min(T - 1, floor(rate * T + 0.5))`` and every frame-losing corruption keeps exactly
``T - lost`` frames. The frames are counted over the whole clip (padding included): in the
benchmark the clip is the model's fixed-length input after the test crop, which holds no padding.

Levels (:data:`LEVELS`, data). FineTec does not publish its corruption levels; ours, chosen here:

- the four frame corruptions lose 25 / 50 / 75% of the frames at minor / moderate / severe;
- occlusion hides about 25 / 50 / 75% of the joints: one arm (left or right, drawn per clip; NTU
  6 of 25 joints, COCO 3 of 17) / both arms (12 of 25; 6 of 17) / both arms and both legs (20 of
  25; 12 of 17), RA-GCN's part lists;
- jitter has ``sigma`` 0.05 / 0.1 / 0.2 of the body size (about 2 / 4 / 8 cm on an adult in NTU).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Sequence, Tuple, Union

import numpy as np

from ...errors import UnknownNameError, UsageError
from .occlusion_parts import occlusion_parts

Seed = Union[int, Sequence[int], np.random.Generator]
"""What a corruption takes as its randomness: ``numpy.random.default_rng(seed)`` of it."""

SEVERITIES: Tuple[str, ...] = ("minor", "moderate", "severe")
"""The levels, mildest first; their position + 1 is the severity axis of the benchmark's plot."""


@dataclass(frozen=True)
class CorruptedClip:
    """A corrupted sequence (module docstring).

    Attributes:
        sequence: float [M, T, V, C]: kept frames first (occluded joints zero), then zero frames.
        observed: bool [T, V]: observed (frame, joint) pairs on the original timeline.
        frame_times: int64 [T_hat]: source frame of each kept row of ``sequence``, increasing.
    """

    sequence: np.ndarray
    observed: np.ndarray
    frame_times: np.ndarray

    @property
    def num_kept(self) -> int:
        """T_hat, the frames kept."""
        return int(len(self.frame_times))

    def in_place(self) -> np.ndarray:
        """float [M, T, V, C]: observed joints at their original frames, zeros elsewhere (the
        ``none`` completion)."""
        out = np.zeros_like(self.sequence)
        out[:, self.frame_times] = self.sequence[:, : self.num_kept]
        return out * self.observed[None, :, :, None].astype(out.dtype)

    def packed_observed(self) -> np.ndarray:
        """bool [T, V]: the observed mask in ``sequence``'s (packed) row order."""
        mask = np.zeros_like(self.observed)
        mask[: self.num_kept] = self.observed[self.frame_times]
        return mask


def lost_frames(num_frames: int, rate: float) -> int:
    """Frames a frame corruption removes: ``min(T - 1, floor(rate * T + 0.5))``.

    Raises:
        UsageError: ``rate`` outside [0, 1].
    """
    if not 0.0 <= float(rate) <= 1.0:
        raise UsageError(f"the share of frames lost must lie in [0, 1], got {rate}")
    return int(min(num_frames - 1, np.floor(float(rate) * num_frames + 0.5)))


def keep_frames(x: np.ndarray, kept: np.ndarray) -> CorruptedClip:
    """The clip of ``x`` [M, T, V, C] keeping the sorted frames ``kept`` [T_hat] (all joints)."""
    _check_sequence(x)
    frames = x.shape[1]
    kept = np.asarray(kept, dtype=np.int64)
    sequence = np.zeros_like(x)
    sequence[:, : len(kept)] = x[:, kept]
    observed = np.zeros((frames, x.shape[2]), dtype=bool)
    observed[kept] = True
    return CorruptedClip(sequence, observed, kept)


def drop_random_frames(x: np.ndarray, rate: float, seed: Seed) -> CorruptedClip:
    """``x`` [M, T, V, C] without a uniformly random set of ``lost_frames(T, rate)`` frames."""
    frames = x.shape[1]
    kept = np.random.default_rng(seed).choice(frames, frames - lost_frames(frames, rate), replace=False)
    return keep_frames(x, np.sort(kept))


def drop_frame_block(x: np.ndarray, rate: float, seed: Seed) -> CorruptedClip:
    """``x`` [M, T, V, C] without one contiguous block of ``lost_frames(T, rate)`` frames."""
    frames = x.shape[1]
    lost = lost_frames(frames, rate)
    start = int(np.random.default_rng(seed).integers(0, frames - lost + 1))
    return keep_frames(x, np.concatenate([np.arange(start), np.arange(start + lost, frames)]))


def _segments(frames: int, kept: int) -> Tuple[np.ndarray, np.ndarray]:
    """(starts, ends) int64 [kept] of ``kept`` equal segments of ``frames`` frames (each >= 1 frame)."""
    bounds = (np.arange(kept + 1) * frames) // kept
    return bounds[:-1], bounds[1:]


def subsample_uniform(x: np.ndarray, rate: float, seed: Seed = 0) -> CorruptedClip:
    """``x`` [M, T, V, C] at a lower frame rate: the centre frame of each of T_hat equal segments
    (``seed`` is unused: the result is deterministic)."""
    frames = x.shape[1]
    starts, ends = _segments(frames, frames - lost_frames(frames, rate))
    return keep_frames(x, (starts + ends - 1) // 2)


def subsample_random(x: np.ndarray, rate: float, seed: Seed) -> CorruptedClip:
    """``x`` [M, T, V, C] keeping one uniformly random frame in each of T_hat equal segments."""
    frames = x.shape[1]
    starts, ends = _segments(frames, frames - lost_frames(frames, rate))
    offsets = np.floor(np.random.default_rng(seed).random(len(starts)) * (ends - starts)).astype(np.int64)
    return keep_frames(x, starts + offsets)


def occlude_parts(x: np.ndarray, part_sets: Sequence[Sequence[str]], seed: Seed, layout: str = "ntu25") -> CorruptedClip:
    """``x`` [M, T, V, C] with the joints of one part set zero in every frame.

    Args:
        part_sets: alternatives, each a list of part names of :func:`~.occlusion_parts.occlusion_parts`
            (``left_arm``, ``right_arm``, ``hands``, ``legs``, ``trunk``); one is drawn per clip
            (none drawn when there is one).
        layout: the joint layout of ``x`` (``ntu25`` or ``coco17``).

    Raises:
        UnknownNameError: a part the layout does not have.
    """
    _check_sequence(x)
    try:
        parts = occlusion_parts(layout)
    except ValueError as err:
        raise UsageError(str(err)) from None
    if x.shape[2] != max(max(ids) for ids in parts.values()) + 1:
        raise UsageError(f"occlusion parts of {layout} need {layout}'s joints, got a sequence of {x.shape[2]} joints")
    chosen = part_sets[0] if len(part_sets) == 1 else part_sets[int(np.random.default_rng(seed).integers(len(part_sets)))]
    unknown = [p for p in chosen if p not in parts]
    if unknown:
        raise UnknownNameError(f"unknown body parts {unknown} for {layout}; known: {', '.join(parts)}")
    hidden = sorted({j for part in chosen for j in parts[part]})
    observed = np.ones((x.shape[1], x.shape[2]), dtype=bool)
    observed[:, hidden] = False
    sequence = x * observed[None, :, :, None].astype(x.dtype)
    return CorruptedClip(sequence, observed, np.arange(x.shape[1], dtype=np.int64))


def body_scale(x: np.ndarray) -> float:
    """RMS distance of the non-zero joints of ``x`` [M, T, V, C] to their person-frame centroid
    (0.0 for an empty clip)."""
    present = np.any(x != 0, axis=-1)  # [M, T, V]
    counts = present.sum(axis=-1, keepdims=True)  # [M, T, 1]
    centroid = (x * present[..., None]).sum(axis=2, keepdims=True) / np.maximum(counts, 1)[..., None]
    squared = (((x - centroid) ** 2).sum(axis=-1)) * present
    total = int(present.sum())
    return float(np.sqrt(squared.sum() / total)) if total else 0.0


def add_jitter(x: np.ndarray, sigma: float, seed: Seed) -> CorruptedClip:
    """``x`` [M, T, V, C] plus N(0, (sigma * body_scale(x))^2) on every non-zero joint."""
    _check_sequence(x)
    if not np.isfinite(sigma) or sigma < 0:
        raise UsageError(f"jitter sigma must be finite and >= 0, got {sigma}")
    present = np.any(x != 0, axis=-1, keepdims=True)
    dtype = np.float32 if x.dtype == np.float32 else np.float64
    noise = np.random.default_rng(seed).standard_normal(x.shape, dtype=dtype) * dtype(float(sigma) * body_scale(x))
    sequence = (x + noise * present).astype(x.dtype)
    return CorruptedClip(sequence, np.ones(x.shape[1:3], dtype=bool), np.arange(x.shape[1], dtype=np.int64))


def _check_sequence(x: np.ndarray) -> None:
    if x.ndim != 4 or x.shape[1] < 1:
        raise ValueError(f"a skeleton sequence is [M, T, V, C] with T >= 1, got shape {x.shape}")


Corruption = Callable[..., CorruptedClip]
"""``corruption(x [M, T, V, C], **level_options, seed=...) -> CorruptedClip``."""

CORRUPTIONS: Dict[str, Corruption] = {
    "frame_drop": drop_random_frames,
    "block_drop": drop_frame_block,
    "uniform_subsample": subsample_uniform,
    "random_subsample": subsample_random,
    "joint_occlusion": occlude_parts,
    "jitter": add_jitter,
}
"""Registered corruptions by name, in the benchmark's order."""

_FRAME_RATES = {"minor": {"rate": 0.25}, "moderate": {"rate": 0.5}, "severe": {"rate": 0.75}}
LEVELS: Mapping[str, Mapping[str, Mapping[str, Any]]] = {
    "frame_drop": _FRAME_RATES,
    "block_drop": _FRAME_RATES,
    "uniform_subsample": _FRAME_RATES,
    "random_subsample": _FRAME_RATES,
    "joint_occlusion": {
        "minor": {"part_sets": (("left_arm",), ("right_arm",))},
        "moderate": {"part_sets": (("left_arm", "right_arm"),)},
        "severe": {"part_sets": (("left_arm", "right_arm", "legs"),)},
    },
    "jitter": {"minor": {"sigma": 0.05}, "moderate": {"sigma": 0.1}, "severe": {"sigma": 0.2}},
}
"""``{corruption: {level: keyword options}}`` (module docstring: the choices)."""


def check_corruption(name: str, level: str) -> None:
    """Raises UnknownNameError for a corruption or level that does not exist."""
    if name not in CORRUPTIONS:
        raise UnknownNameError(f"unknown corruption {name!r}; known: {', '.join(CORRUPTIONS)}")
    if level not in LEVELS[name]:
        raise UnknownNameError(f"unknown level {level!r} of {name}; known: {', '.join(LEVELS[name])}")


def corrupt(x: np.ndarray, name: str, level: str, seed: Seed, layout: str = "ntu25") -> CorruptedClip:
    """Apply corruption ``name`` at ``level`` (:data:`LEVELS`) to ``x`` [M, T, V, C]."""
    check_corruption(name, level)
    options = dict(LEVELS[name][level])
    if name == "joint_occlusion":
        options["layout"] = layout
    return CORRUPTIONS[name](x, seed=seed, **options)
