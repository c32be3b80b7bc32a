"""The NTU RGB+D ``.skeleton`` text format: a columnar in-memory record, reader and writer.

Format (official Matlab/read_skeleton_file.m, shahroudy/NTURGB-D@ac2ebc8)::

    <frameCount>
    per frame:
      <bodyCount>
      per body:
        bodyID clipedEdges handLeftConfidence handLeftState handRightConfidence
               handRightState isResticted leanX leanY trackingState        # 10 fields
        <jointCount>                                                        # 25
        per joint: x y z depthX depthY colorX colorY
                   orientationW orientationX orientationY orientationZ trackingState  # 12 fields
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from actionfusion.datasets.ntu._skeleton_limits import (
    INT64_MAX,
    INT64_MIN,
    MAX_BODIES_PER_FRAME,
    MAX_BODY_FRAME_CELLS,
    JOINT_FIELD_NAMES,
    MAX_FRAMES,
    NUM_JOINTS,
    bound_reason,
    joint_out_of_bounds,
)
from actionfusion.datasets.ntu._skeleton_parse import parse_skeleton_bytes, read_into_scratch
from actionfusion.io import atomic_write

JOINT_FIELDS = JOINT_FIELD_NAMES
"""The 12 per-joint fields, in file order."""

BODY_INFO_FIELDS = (
    "clipedEdges", "handLeftConfidence", "handLeftState", "handRightConfidence",
    "handRightState", "isResticted", "leanX", "leanY", "trackingState",
)
"""The 9 per-body fields after the body ID, in file order (original spellings)."""


@dataclass
class SkeletonFile:
    """A whole ``.skeleton`` file, columnar.

    Attributes:
        num_frames: T, the frame count in the header (frames with 0 bodies included).
        body_ids: int64 [B], exact 64-bit body IDs in order of first appearance.
        joints: float32 [B, T, 25, 12], fields as :data:`JOINT_FIELDS`; NaN where body b
            is absent from frame t.
        body_info: float32 [B, T, 9], fields as :data:`BODY_INFO_FIELDS`; NaN where absent.
        body_order: int16 [B, T], the body's position within its frame's body list
            (-1 where absent), so that writing back reproduces the original order.
    """

    num_frames: int
    body_ids: np.ndarray
    joints: np.ndarray
    body_info: np.ndarray
    body_order: np.ndarray

    @property
    def num_bodies(self) -> int:
        """B, the number of distinct body IDs."""
        return int(self.body_ids.shape[0])

    def present(self) -> np.ndarray:
        """bool [B, T]: body b is in frame t."""
        return self.body_order >= 0

    def xyz(self) -> np.ndarray:
        """float32 [B, T, 25, 3] camera-space joints in metres (NaN where absent)."""
        return self.joints[..., 0:3]


# --------------------------------------------------------------------------- reader


def read_skeleton_file(path: "os.PathLike[str] | str") -> SkeletonFile:
    """Read a ``.skeleton`` file (CRLF or LF line endings, final newline optional).

    Body IDs are parsed as exact 64-bit integers (parsing them with ``float``, as
    mmaction2's ``read_skeleton_filter`` does, merges distinct bodies). Every number
    equals ``np.float32(float(token))`` bit for bit; see
    :mod:`actionfusion.datasets.ntu._skeleton_parse` for how it is done fast, and
    :mod:`actionfusion.datasets.ntu._skeleton_limits` for the accepted grammar (finite
    decimals only: ``nan``/``inf`` text is rejected, as NaN means "absent" here).
    Well-formed files take a fast path; any other file (a malformed one, or a rare legal
    spelling such as ``+1``) the careful path, which reports the earliest problem. About
    5x faster than a minimal line-by-line reader (``split`` and ``float`` per value) when
    reading file after file, about 4.6x right after other work has evicted the caches
    (CPU time on the NTU fixtures, ``benchmarks/bench_skeleton_parsing.py``). It keeps
    per-thread scratch buffers of roughly 25 times the largest file read so far (about
    9 MiB for a 360 KiB file) for reuse by the next call.

    Returns:
        SkeletonFile: body_ids int64 [B] in order of first appearance, joints float32
        [B, T, 25, 12] and body_info float32 [B, T, 9] (NaN where absent), body_order
        int16 [B, T] (-1 where absent).

    Raises:
        SkeletonFormatError: the file is malformed (empty, truncated, wrong field or
            joint count, a non-numeric field, a count out of range or larger than the
            remaining lines allow, a body ID twice in one frame, undecodable bytes); its
            ``line`` is the 1-based line of the earliest problem.
    """
    path = os.fspath(path)
    num_frames, body_ids, joints, body_info, body_order = parse_skeleton_bytes(path, read_into_scratch(path))
    return SkeletonFile(
        num_frames=num_frames, body_ids=body_ids, joints=joints, body_info=body_info, body_order=body_order
    )


# --------------------------------------------------------------------------- writer

_NEWLINES = ("\r\n", "\n")
_MAX_EXACT_INT = 2.0**53


def _format_values(values: np.ndarray) -> np.ndarray:
    """Text for each float32 value that parses back (via ``float``) to the same bits.

    Args:
        values: float32 [N] (any finite or non-finite value).

    Returns:
        str array [N]: integral values as integers (``2``, ``0``), others as numpy's
        shortest float32 representation, checked to round-trip, else ``%.9g``.
    """
    values = np.ascontiguousarray(values, dtype=np.float32).ravel()
    # Upper-case exponent ("-7.257856E-05") as the Kinect SDK writes it.
    text = np.char.upper(values.astype(str)).astype(object)
    with np.errstate(invalid="ignore"):
        integral = (
            (np.abs(values) < _MAX_EXACT_INT)  # False for NaN and inf
            & (values == np.trunc(values))
            & ~((values == 0) & np.signbit(values))  # keep "-0.0": it must round-trip
        )
    if integral.any():
        text[integral] = values[integral].astype(np.int64).astype(str)
    # Shortest-repr text goes through float64 when read; confirm every value survives.
    back = np.array([float(s) for s in text], dtype=np.float64).astype(np.float32)
    same = (back.view(np.uint32) == values.view(np.uint32)) | (np.isnan(back) & np.isnan(values))
    for i in np.flatnonzero(~same):
        text[i] = ("%.9g" % float(values[i])).upper()
    return text


def _check_writable(sk: SkeletonFile) -> np.ndarray:
    """Validate ``sk`` for writing; return the int64 body_order [B, T]."""
    t = sk.num_frames
    if not isinstance(t, (int, np.integer)) or not 0 <= t <= MAX_FRAMES:
        raise ValueError(f"num_frames must be an int in 0..{MAX_FRAMES}, got {t!r}")
    ids = np.asarray(sk.body_ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"body_ids must be an integer array [B], got {ids.dtype} {ids.shape}")
    if ids.size and (int(ids.max()) > INT64_MAX or int(ids.min()) < INT64_MIN):
        raise ValueError("body_ids must fit in int64")
    b = ids.shape[0]
    if len(np.unique(ids)) != b:
        raise ValueError("body_ids must be distinct")
    if b * t > MAX_BODY_FRAME_CELLS:
        raise ValueError(f"B x T = {b * t} exceeds {MAX_BODY_FRAME_CELLS}, more than the reader accepts")
    expected = {
        "joints": (b, t, NUM_JOINTS, len(JOINT_FIELDS)),
        "body_info": (b, t, len(BODY_INFO_FIELDS)),
        "body_order": (b, t),
    }
    for name, shape in expected.items():
        got = np.shape(getattr(sk, name))
        if tuple(got) != shape:
            raise ValueError(f"{name} must have shape {shape} (B={b}, T={t}), got {tuple(got)}")
    order = np.asarray(sk.body_order)
    if not np.issubdtype(order.dtype, np.integer):
        raise ValueError(f"body_order must be an integer array, got {order.dtype}")
    order = order.astype(np.int64)
    present = order >= 0
    if b and not present.any(axis=1).all():
        raise ValueError(f"bodies {np.flatnonzero(~present.any(axis=1)).tolist()} are in no frame")
    counts = present.sum(axis=0)
    if counts.size and counts.max() > MAX_BODIES_PER_FRAME:
        raise ValueError(f"a frame holds more than {MAX_BODIES_PER_FRAME} bodies")
    # In each frame the present bodies' positions must be exactly 0..k-1.
    ranks = np.sort(np.where(present, order, np.iinfo(np.int64).max), axis=0)
    want = np.arange(b)[:, None]
    if not np.all((ranks == want) | (want >= counts[None, :])):
        bad = int(np.flatnonzero(~np.all((ranks == want) | (want >= counts[None, :]), axis=0))[0])
        raise ValueError(f"body_order in frame {bad} is not a permutation of 0..{counts[bad] - 1}")
    return order


def write_skeleton_file(
    path: "os.PathLike[str] | str", sk: SkeletonFile, *, newline: str = "\r\n"
) -> None:
    """Write ``sk`` as a ``.skeleton`` text file, atomically.

    Bodies appear in each frame in ``body_order``; body IDs are written as exact
    integers; integral values (states, counts, ``0``) are written as integers and every
    other float32 value with enough digits that :func:`read_skeleton_file` gives back
    the identical bits.

    Args:
        path: the target file (replaced atomically through :func:`actionfusion.io.atomic_write`).
        sk: the record; joints float32 [B, T, 25, 12], body_info float32 [B, T, 9],
            body_order int [B, T].
        newline: ``"\\r\\n"`` (as the real files) or ``"\\n"``.

    Raises:
        ValueError: inconsistent shapes or dtypes, repeated body IDs, a frame whose
            body_order is not 0..k-1, a body present in no frame, a non-finite value
            where a body is present, or sizes beyond what the reader accepts.
    """
    if newline not in _NEWLINES:
        raise ValueError(f"newline must be one of {_NEWLINES!r}, got {newline!r}")
    order = _check_writable(sk)
    ids = [str(int(i)) for i in np.asarray(sk.body_ids)]
    present = order >= 0
    # Frames in time order, and within a frame the bodies sorted by body_order.
    frame_idx, body_idx = np.nonzero(present.T)
    sort = np.lexsort((order.T[frame_idx, body_idx], frame_idx))
    frame_idx, body_idx = frame_idx[sort], body_idx[sort]
    joints = np.asarray(sk.joints, dtype=np.float32)[body_idx, frame_idx]  # [P, 25, 12]
    info = np.asarray(sk.body_info, dtype=np.float32)[body_idx, frame_idx]  # [P, 9]
    for name, values in (("joints", joints), ("body_info", info)):
        if not np.isfinite(values).all():
            raise ValueError(f"{name} of a present body holds NaN or inf; the format has no absent values")
    beyond = joint_out_of_bounds(joints.astype(np.float64))
    if beyond.any():
        field = int(np.flatnonzero(beyond.any(axis=(0, 1)))[0])
        raise ValueError(f"joints beyond the physical bounds the reader enforces: {bound_reason(field, float(joints[..., field][beyond[..., field]][0]))}")
    joint_text = _format_values(joints).reshape(-1, len(JOINT_FIELDS))
    info_text = _format_values(info).reshape(-1, len(BODY_INFO_FIELDS))
    joint_lines = [" ".join(row) for row in joint_text.tolist()]
    counts = present.sum(axis=0).tolist()
    lines = [str(int(sk.num_frames))]
    p = 0
    for count in counts:
        lines.append(str(count))
        for _ in range(count):
            lines.append(ids[body_idx[p]] + " " + " ".join(info_text[p].tolist()))
            lines.append(str(NUM_JOINTS))
            lines.extend(joint_lines[p * NUM_JOINTS:(p + 1) * NUM_JOINTS])
            p += 1
    lines.append("")
    with atomic_write(path, "wb") as handle:
        handle.write(newline.join(lines).encode("ascii"))
