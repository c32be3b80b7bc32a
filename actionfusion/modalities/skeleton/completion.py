"""Baseline completions of a corrupted skeleton sequence (:mod:`.corruption`), FineTec's baselines.

Each maps a :class:`~.corruption.CorruptedClip` to a full sequence [M, T, V, C] on the original
timeline, per joint, from the (frame, joint) pairs its ``observed`` mask holds:

- ``none``: observed joints in place, zeros elsewhere;
- ``interpolate``: linear interpolation in time between the joint's nearest observed frames
  before and after; before its first (after its last) observed frame the joint holds that
  frame's value;
- ``duplicate``: the joint's last observed value (frame duplication, a stalled stream); before its
  first observed frame, that frame's value.

A joint never observed (an occluded part) stays zero in every completion. Vectorised numpy: the
neighbouring observed frames come from running max / min over the mask, no Python loop over time.
"""

from __future__ import annotations

from typing import Callable, Dict, Tuple

import numpy as np

from ...errors import UnknownNameError
from .corruption import CorruptedClip


def observed_neighbours(observed: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(previous, next, seen) for a mask bool [T, V].

    ``previous[t, v]``: the last observed frame <= t of joint v (its first observed frame if none);
    ``next[t, v]``: the first observed frame >= t (its last observed frame if none); int64 [T, V].
    ``seen`` bool [V]: whether joint v is observed at all (where not, both are 0).
    """
    frames = observed.shape[0]
    time = np.arange(frames)[:, None]
    before = np.maximum.accumulate(np.where(observed, time, -1), axis=0)
    after = np.minimum.accumulate(np.where(observed, time, frames)[::-1], axis=0)[::-1]
    has_before, has_after = before >= 0, after < frames
    previous = np.where(has_before, before, after)
    following = np.where(has_after, after, before)
    seen = observed.any(axis=0)
    previous = np.where(seen[None], previous, 0)
    following = np.where(seen[None], following, 0)
    return previous.astype(np.int64), following.astype(np.int64), seen


def _gather(x: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """``x`` [M, T, V, C] at ``frames`` int [T, V]: out[m, t, v] = x[m, frames[t, v], v]."""
    index = np.broadcast_to(frames[None, :, :, None], (x.shape[0],) + frames.shape + (x.shape[3],))
    return np.take_along_axis(x, index, axis=1)


def complete_none(clip: CorruptedClip) -> np.ndarray:
    """[M, T, V, C]: observed joints in place, zeros elsewhere."""
    return clip.in_place()


def complete_interpolate(clip: CorruptedClip) -> np.ndarray:
    """[M, T, V, C]: each joint linearly interpolated between its observed frames (module docstring)."""
    x = clip.in_place()
    previous, following, seen = observed_neighbours(clip.observed)
    time = np.arange(x.shape[1])[:, None]
    span = following - previous
    weight = np.where(span > 0, (time - previous) / np.maximum(span, 1), 0.0)  # float64 [T, V]
    out = _gather(x, previous) * (1.0 - weight[None, :, :, None]) + _gather(x, following) * weight[None, :, :, None]
    return (out * seen[None, None, :, None]).astype(x.dtype)


def complete_duplicate(clip: CorruptedClip) -> np.ndarray:
    """[M, T, V, C]: each joint's last observed value (module docstring)."""
    x = clip.in_place()
    previous, _, seen = observed_neighbours(clip.observed)
    return (_gather(x, previous) * seen[None, None, :, None]).astype(x.dtype)


Completion = Callable[[CorruptedClip], np.ndarray]

COMPLETIONS: Dict[str, Completion] = {
    "none": complete_none,
    "interpolate": complete_interpolate,
    "duplicate": complete_duplicate,
}
"""The baseline completions by name."""


def complete(clip: CorruptedClip, method: str) -> np.ndarray:
    """``COMPLETIONS[method](clip)`` (UnknownNameError for another name)."""
    if method not in COMPLETIONS:
        raise UnknownNameError(f"unknown completion {method!r}; known: {', '.join(COMPLETIONS)}")
    return COMPLETIONS[method](clip)
