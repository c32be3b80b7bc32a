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

INT_TOKEN = re.compile(rb"[+-]?[0-9]+")
NUMBER_TOKEN = re.compile(rb"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")

FLOAT32_OVERFLOW = 3.4028235677973366e38
"""``(2 - 2**-24) * 2**127``: a float64 at or above this (in magnitude) rounds to float32 inf."""

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
