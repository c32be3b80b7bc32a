"""Bounded argument types for the command line: an absurd value is a one-line usage error (exit 2)
at parse time, before anything is allocated for it."""

from __future__ import annotations

import argparse
import math
from typing import Callable, Tuple, Union

MAX_WORKERS = 256
"""More worker processes than this is a typo, not a machine."""


def int_in(low: int, high: int) -> Callable[[str], int]:
    """An argparse ``type`` accepting integers in ``[low, high]``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is outside {low}..{high}")
        return value

    parse.__name__ = f"integer in {low}..{high}"
    return parse


def float_in(low: float, high: float, low_open: bool = False) -> Callable[[str], float]:
    """An argparse ``type`` accepting finite numbers in ``[low, high]`` (``(low, high]`` if ``low_open``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or value > high or value < low or (low_open and value == low):
            raise argparse.ArgumentTypeError(f"{text} is outside {'(' if low_open else '['}{low:g}, {high:g}]")
        return value

    parse.__name__ = "number"
    return parse


def frame_size(text: str) -> Tuple[int, int]:
    """``"1920x1080"`` -> (1920, 1080), each side in 16..8192."""
    parts = text.lower().split("x")
    try:
        width, height = (int(v) for v in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT, e.g. 1920x1080") from None
    if not (16 <= width <= 8192 and 16 <= height <= 8192):
        raise argparse.ArgumentTypeError(f"{text}: each side must lie in 16..8192")
    return width, height


def weight_list(text: str) -> Tuple[float, ...]:
    """``"2,2,1,1"`` -> (2.0, 2.0, 1.0, 1.0): finite, non-negative, not all zero."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None
    if not all(math.isfinite(v) and v >= 0 for v in values):
        raise argparse.ArgumentTypeError(f"{text}: weights must be finite and non-negative")
    if not any(v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"{text}: at least one weight must be positive")
    return values


def n_max_value(text: str) -> Union[int, str]:
    """``"auto"`` or an integer in 1..1,000,000 (a long-tailed split's samples of its first class)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return int_in(1, 1_000_000)(text)
    except argparse.ArgumentTypeError as err:
        raise argparse.ArgumentTypeError(f"{err}; give an integer or 'auto'") from None


n_max_value.__name__ = "integer or auto"

workers = int_in(0, MAX_WORKERS)
workers.__name__ = "workers"
