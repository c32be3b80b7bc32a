"""Timing curves shared by the synthetic motions: phases, envelopes and oscillations.

All curves are over normalised clip time, so a motion keeps its shape at any frame count.
"""

from __future__ import annotations

import numpy as np


def smoothstep(x: np.ndarray) -> np.ndarray:
    """C1 ramp from 0 (x <= 0) to 1 (x >= 1): float array of x's shape."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def active_phase(rng: np.random.Generator, num_frames: int,
                 start: tuple[float, float] = (0.04, 0.22),
                 length: tuple[float, float] = (0.6, 0.8)) -> np.ndarray:
    """float [T]: 0 before the action starts, rising linearly to 1 at its end.

    The start time and duration (hence speed) vary per performance.
    """
    t = np.linspace(0.0, 1.0, num_frames)
    t0 = rng.uniform(*start)
    t1 = min(t0 + rng.uniform(*length), 0.98)
    return np.clip((t - t0) / (t1 - t0), 0.0, 1.0)


def bump(s: np.ndarray, rise: float = 0.2, fall: float = 0.2,
         lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
    """float [T]: 0 outside [lo, hi], a smooth rise over ``rise`` and fall over ``fall``
    (fractions of the window), 1 between."""
    x = (s - lo) / max(hi - lo, 1e-9)
    up = smoothstep(x / rise)
    down = smoothstep((1 - x) / fall)
    return np.where((x > 0) & (x < 1), np.minimum(up, down), 0.0)


def oscillation(s: np.ndarray, cycles: float, phase: float = 0.0) -> np.ndarray:
    """float [T]: sin over the active phase with ``cycles`` periods."""
    return np.sin(2 * np.pi * cycles * s + phase)


def lerp(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(1 - w) a + w b with w [T] broadcast over a trailing coordinate axis: [T, 3]."""
    w = np.asarray(w)[..., None]
    return a * (1 - w) + b * w
