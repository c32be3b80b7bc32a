"""The contract shared by both ``.skeleton`` readers: limits and the token grammar.

Both :func:`actionfusion.datasets.ntu.skeleton_file.read_skeleton_file` (fast) and
:func:`actionfusion.datasets.ntu.skeleton_reference.read_skeleton_file_reference` (plain)
accept exactly the same files and report the same line for a malformed one:

- lines end with ``\\n``; a ``\\r`` before it, like any ASCII whitespace (space, tab,
  CR, VT, FF), separates fields; any other byte below 32 or above 126 is an error;
- counts (frameCount, bodyCount, jointCount) are a single integer token;
- a body ID is an integer token in the int64 range;
- every other field is a decimal number ``[+-]digits[.digits][(e|E)[+-]digits]`` whose
  value is finite as float32: ``nan``, ``inf``, ``4e38``, hex and ``_`` digit groups are
  rejected, since the Kinect SDK never writes them and ``NaN`` marks an absent body in
  memory;
- a count larger than the remaining lines allow is an error at the count line
  (each frame needs at least 1 line, each body 27);
- a joint's camera-space coordinate beyond :data:`MAX_CAMERA_METRES`, or its depth or colour
  pixel coordinate more than :data:`PIXEL_FRAME_MARGIN` frame sizes outside its frame, is an
  error at its joint line (finite but absurd values, e.g. ``1e30``, would otherwise pass into a
  model's input normalisation and poison its statistics);
- an integer token (count, body ID) of more than :data:`MAX_INT_DIGITS` digits is an error;
- a body ID twice in one frame is an error at its second body line;
- after the last frame only blank lines may follow.
"""

from __future__ import annotations

import re

NUM_JOINTS = 25
"""Kinect v2 body joints per body (official README, shahroudy/NTURGB-D)."""

JOINT_FIELD_COUNT = 12
"""Fields on a joint line (x y z depthX depthY colorX colorY orientationWXYZ trackingState)."""

INFO_FIELD_COUNT = 9
"""Fields on a body line after the body ID."""

MAX_FRAMES = 100_000
"""A frameCount above this is not a recording (NTU's longest sample has about 300 frames)."""

MAX_BODIES_PER_FRAME = 64
"""A bodyCount above this is not a recording (Kinect v2 tracks at most 6 bodies)."""

MAX_BODY_FRAME_CELLS = 1 << 18
"""Cap on distinct bodies x frames (the dense output holds 1.2 KiB per cell, so at most
about 315 MiB): a hostile file of a few hundred KiB cannot demand gigabytes."""

LINES_PER_BODY = 27
"""Body line, jointCount line and 25 joint lines."""

MAX_CAMERA_METRES = 100.0
"""Largest |x|, |y|, |z| of a joint in camera space, in metres. The Kinect v2 sees to about 8 m;
100 m leaves room for any sensor while catching corrupt values."""

PIXEL_FRAME_MARGIN = 10
"""Pixel coordinates may lie outside their frame (joints out of view are projected), but by at
most this many frame widths / heights on either side."""

DEPTH_FRAME = (512, 424)
COLOR_FRAME = (1920, 1080)
"""Kinect v2 depth and colour frame sizes (width, height), the frames of depthX/Y and colorX/Y."""

MAX_INT_DIGITS = 20
"""An integer token longer than this (int64 has 19 digits) is refused before ``int`` sees it."""


def _joint_field_bounds() -> "np.ndarray":
    """float64 [2, 12]: the lowest and highest accepted value of each joint field."""
    import numpy as np

    low = np.full(JOINT_FIELD_COUNT, -np.inf)
    high = np.full(JOINT_FIELD_COUNT, np.inf)
    low[0:3], high[0:3] = -MAX_CAMERA_METRES, MAX_CAMERA_METRES
    for first, (width, height) in ((3, DEPTH_FRAME), (5, COLOR_FRAME)):
        for offset, size in enumerate((width, height)):
            low[first + offset] = -PIXEL_FRAME_MARGIN * size
            high[first + offset] = (1 + PIXEL_FRAME_MARGIN) * size
    return np.stack([low, high])


JOINT_FIELD_NAMES = ("x", "y", "z", "depthX", "depthY", "colorX", "colorY",
                     "orientationW", "orientationX", "orientationY", "orientationZ", "trackingState")
"""The 12 per-joint fields, in file order."""


def joint_out_of_bounds(values: "np.ndarray") -> "np.ndarray":
    """bool [..., 12]: where a joint line's value is beyond its field's physical bound.

    Args:
        values: float [..., 12], joint lines' values (NaN counts as in bounds: absent).
    """
    import numpy as np

    low, high = JOINT_FIELD_BOUNDS
    with np.errstate(invalid="ignore"):
        return (values < low) | (values > high)


def bound_reason(field: int, value: float) -> str:
    """The error text for joint field ``field`` holding ``value``."""
    low, high = JOINT_FIELD_BOUNDS[:, field]
    unit = "m" if field < 3 else "px"
    return (f"joint field {JOINT_FIELD_NAMES[field]} = {value:.6g} is outside [{low:g}, {high:g}] {unit}: "
            "not a physical value (a corrupt file?); fix or exclude the sample")


INT_TOKEN = re.compile(rb"[+-]?[0-9]+")
NUMBER_TOKEN = re.compile(rb"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")

FLOAT32_OVERFLOW = 3.4028235677973366e38
"""``(2 - 2**-24) * 2**127``: a float64 at or above this (in magnitude) rounds to float32 inf."""

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1


def int_token_problem(token: bytes) -> "str | None":
    """Why ``token`` is not an accepted integer token, or ``None`` when it is.

    The digit count is checked before ``int`` runs: Python refuses to convert strings of more
    than 4,300 digits (with a ``ValueError`` of its own), and no count or ID needs more than 20.
    """
    if token.isdigit() and len(token) <= MAX_INT_DIGITS:  # the common case, fast
        return None
    if not INT_TOKEN.fullmatch(token):
        return f"not an integer: {token[:32]!r}"
    if len(token.lstrip(b"+-")) > MAX_INT_DIGITS:
        return f"an integer of {len(token.lstrip(b'+-'))} digits, more than any count or ID has"
    return None


JOINT_FIELD_BOUNDS = _joint_field_bounds()
