"""Fast ``.skeleton`` parsing, exact to ``np.float32(float(token))``.

Two paths share one vectorised number parser (:mod:`._skeleton_numbers`, all tokens of
the file in one pass; the few it cannot take, such as exponents ``-7.257856E-05``, go
through ``float`` one by one after the grammar check the reference reader applies):

- :func:`parse_well_formed`, the fast path, takes the structure from the token count of
  every line and the values of the count lines: a Python loop runs once per frame (not
  per line or per body), and the layout those counts imply is checked against all lines
  at once. It accepts only files it can prove well formed (canonical counts and IDs,
  every number valid and within bounds, no body twice in a frame) and otherwise returns
  ``None``, without saying why.
- :func:`parse_careful` walks the count and body lines in Python (:class:`_Walker`) and
  finds the earliest problem: every error carries the 1-based line of the earliest
  problem in the file, the line that :mod:`actionfusion.datasets.ntu.skeleton_reference`
  reports too.

:func:`parse_skeleton_bytes` tries the fast path and falls back to the careful one, so a
malformed file gets exactly the careful path's error, and any file either path accepts
reads to the same arrays.
"""

from __future__ import annotations

import os
from typing import List, Optional, Tuple

import numpy as np

from actionfusion.datasets.ntu._skeleton_limits import (
    FLOAT32_OVERFLOW,
    INFO_FIELD_COUNT,
    INT64_MAX,
    INT64_MIN,
    LINES_PER_BODY,
    MAX_BODIES_PER_FRAME,
    MAX_BODY_FRAME_CELLS,
    MAX_FRAMES,
    NUM_JOINTS,
    NUMBER_TOKEN,
    JOINT_FIELD_BOUNDS,
    JOINT_FIELD_COUNT,
    bound_reason,
    int_token_problem,
    joint_out_of_bounds,
)
from actionfusion.datasets.ntu._skeleton_numbers import SCRATCH, control_bytes, decimals, line_ends, tokens
from actionfusion.errors import SkeletonFormatError

_JOINT_TOKENS = np.arange(1 + INFO_FIELD_COUNT + 1, 1 + INFO_FIELD_COUNT + 1 + NUM_JOINTS * JOINT_FIELD_COUNT)
"""Token offsets of the 300 joint values from a body line's ID (ID, 9 info, "25", joints)."""

_SMALL_COUNTS = {str(k).encode(): k for k in range(MAX_BODIES_PER_FRAME + 1)}

Problem = Tuple[int, str]  # (1-based line, reason)
ParsedSkeleton = Tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


class _Structure(Exception):
    """A structural problem found by the walk; carries (1-based line, reason)."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.problem: Problem = (line, reason)


class _Walker:
    """The structural walk over count and body lines (0-based line indices)."""

    def __init__(self, raw: np.ndarray) -> None:
        self.raw = raw
        self.view = memoryview(raw)  # lines are sliced from it as bytes
        ends = line_ends(raw)
        if raw[-1] != 10:
            ends = np.append(ends, raw.size)
        starts = np.empty_like(ends)
        starts[:1] = 0
        starts[1:] = ends[:-1] + 1
        self.line_starts, self.line_ends = starts, ends
        self.starts, self.ends = starts.tolist(), ends.tolist()
        self.n = len(self.ends)
        self.body_lines: List[int] = []  # per body record: index of its body line
        self.info_lines: List[int] = []  # body lines whose 9 numbers are to be checked
        self.record_body: List[int] = []
        self.record_frame: List[int] = []
        self.record_position: List[int] = []
        self.ids: List[int] = []

    def line(self, i: int) -> bytes:
        if i >= self.n:
            raise _Structure(i + 1, "unexpected end of file")
        return self.view[self.starts[i]:self.ends[i]].tobytes()

    def count(self, i: int, name: str, upper: int) -> int:
        fields = self.line(i).split()
        if len(fields) != 1:
            raise _Structure(i + 1, f"{name}: expected 1 field, found {len(fields)}")
        problem = int_token_problem(fields[0])
        if problem is not None:
            raise _Structure(i + 1, f"{name}: {problem}")
        value = int(fields[0])
        if not 0 <= value <= upper:
            raise _Structure(i + 1, f"{name} {value} outside 0..{upper}")
        return value

    def walk(self) -> int:
        """Walk the whole file; return frameCount. Raises _Structure."""
        n, view, starts, ends = self.n, self.view, self.starts, self.ends
        num_frames = self.count(0, "frameCount", MAX_FRAMES)
        if num_frames > n - 1:
            raise _Structure(1, f"frameCount {num_frames} needs at least that many more lines, {n - 1} remain")
        index_of: dict = {}
        info_lines, body_lines, ids = self.info_lines, self.body_lines, self.ids
        record_body, record_frame, record_position = self.record_body, self.record_frame, self.record_position
        i = 1
        for frame in range(num_frames):
            if i >= n:
                raise _Structure(i + 1, "unexpected end of file")
            body_count = _SMALL_COUNTS.get(view[starts[i]:ends[i]].tobytes().strip())  # the common case
            if body_count is None:
                body_count = self.count(i, "bodyCount", MAX_BODIES_PER_FRAME)
            if body_count * LINES_PER_BODY > n - i - 1:
                raise _Structure(
                    i + 1,
                    f"bodyCount {body_count} needs {body_count * LINES_PER_BODY} more lines, {n - i - 1} remain",
                )
            i += 1
            seen = set()
            for position in range(body_count):
                fields = view[starts[i]:ends[i]].tobytes().split()
                if len(fields) != 1 + INFO_FIELD_COUNT:
                    raise _Structure(i + 1, f"body line: expected {1 + INFO_FIELD_COUNT} fields, found {len(fields)}")
                problem = int_token_problem(fields[0])
                if problem is not None:
                    raise _Structure(i + 1, f"bodyID: {problem}")
                body_id = int(fields[0])
                if not INT64_MIN <= body_id <= INT64_MAX:
                    raise _Structure(i + 1, f"bodyID {body_id} outside the int64 range")
                info_lines.append(i)  # its numbers are checked even if the walk stops below
                if body_id in seen:
                    raise _Structure(i + 1, f"bodyID {body_id} appears twice in frame {frame}")
                seen.add(body_id)
                body = index_of.get(body_id)
                if body is None:
                    if (len(ids) + 1) * num_frames > MAX_BODY_FRAME_CELLS:
                        raise _Structure(i + 1, f"more than {MAX_BODY_FRAME_CELLS} body-frame cells: not a recording")
                    body = index_of[body_id] = len(ids)
                    ids.append(body_id)
                if view[starts[i + 1]:ends[i + 1]].tobytes().strip() != b"25":
                    joint_count = self.count(i + 1, "jointCount", NUM_JOINTS)
                    if joint_count != NUM_JOINTS:
                        raise _Structure(i + 2, f"jointCount {joint_count}, expected {NUM_JOINTS}")
                body_lines.append(i)
                record_body.append(body)
                record_frame.append(frame)
                record_position.append(position)
                i += LINES_PER_BODY
        for extra in range(i, n):
            if self.line(extra).strip():
                raise _Structure(extra + 1, "unexpected content after the last frame")
        return num_frames

    def numbers(self) -> Tuple[Optional[np.ndarray], Optional[np.ndarray], Optional[Problem]]:
        """Parse the body-info and joint lines of every body walked so far.

        Returns:
            info float64 [R, 9] and joints float64 [R, 25, 12] (R bodies-in-frames, in
            file order; joints is a per-thread scratch view, valid until the next call),
            or the earliest problem on those lines.
        """
        body_lines = np.array(self.body_lines, np.int64)
        info_lines = np.array(self.info_lines, np.int64)
        joint_lines = (body_lines[:, None] + np.arange(2, 2 + NUM_JOINTS)).ravel()
        starts, ends = tokens(self.raw)
        first_token = np.searchsorted(starts, self.line_starts)  # [L] index of each line's first token
        per_line = np.diff(first_token, append=starts.size)
        info_line = np.zeros(self.n, bool)
        info_line[info_lines] = True
        number_line = info_line.copy()
        number_line[joint_lines] = True
        problems: List[Problem] = []
        expected_fields = ((info_lines, 1 + INFO_FIELD_COUNT, "body"), (joint_lines, JOINT_FIELD_COUNT, "joint"))
        for lines, fields, name in expected_fields:
            wrong = lines[per_line[lines] != fields]
            if wrong.size:
                line = int(wrong.min())
                problems.append((line + 1, f"{name} line: expected {fields} fields, found {per_line[line]}"))
        control = control_bytes(self.raw)
        if control.size:
            lines = np.searchsorted(self.line_ends, control)
            hits = np.flatnonzero(number_line[lines])
            if hits.size:
                problems.append((int(lines[hits[0]]) + 1, f"control byte 0x{self.raw[control[hits[0]]]:02x}"))
        values, regular = decimals(self.raw, starts, ends)
        irregular = np.flatnonzero(~regular)
        lines = np.searchsorted(self.line_ends, starts[irregular])
        body_id = info_line[lines] & (irregular == first_token[lines])  # checked by the walk
        check = number_line[lines] & ~body_id
        for index, line in zip(irregular[check].tolist(), lines[check].tolist()):
            token = self.view[starts[index]:ends[index]].tobytes()
            if not NUMBER_TOKEN.fullmatch(token):
                problems.append((line + 1, f"not a number: {token[:32]!r}"))
                break
            value = float(token)
            if not abs(value) < FLOAT32_OVERFLOW:  # regular tokens (< 10**15) never overflow
                problems.append((line + 1, f"not a finite float32: {token[:32]!r}"))
                break
            values[index] = value
        bound = self._bound_problem(values, first_token, per_line, joint_lines)
        if bound is not None:
            problems.append(bound)
        if problems:
            return None, None, min(problems)
        first = first_token[body_lines]  # the ID token; then 9 info, "25", 300 joint values
        info = values[first[:, None] + np.arange(1, 1 + INFO_FIELD_COUNT)]
        index = SCRATCH.get("length", (first.size, NUM_JOINTS * JOINT_FIELD_COUNT), np.int64)
        np.add(first[:, None], _JOINT_TOKENS, out=index)
        joints = SCRATCH.get("a", (first.size, NUM_JOINTS, JOINT_FIELD_COUNT), np.float64)
        np.take(values, index.reshape(joints.shape), out=joints, mode="clip")
        return info, joints, None

    def _bound_problem(
        self, values: np.ndarray, first_token: np.ndarray, per_line: np.ndarray, joint_lines: np.ndarray
    ) -> Optional[Problem]:
        """The earliest joint line (of those with 12 fields) holding a value beyond its bound."""
        lines = joint_lines[per_line[joint_lines] == JOINT_FIELD_COUNT]
        if not lines.size:
            return None
        line_values = values[first_token[lines][:, None] + np.arange(JOINT_FIELD_COUNT)]  # [L, 12]
        bad = joint_out_of_bounds(line_values)
        rows = np.flatnonzero(bad.any(axis=1))
        if not rows.size:
            return None
        row = rows[np.argmin(lines[rows])]
        field = int(np.flatnonzero(bad[row])[0])
        return int(lines[row]) + 1, bound_reason(field, float(line_values[row, field]))


def read_into_scratch(path: str) -> np.ndarray:
    """The file's bytes, uint8 [n], in a per-thread buffer reused by the next call.

    A fresh ``bytes`` object per file costs a page fault per 4 KiB when the allocator
    has returned the previous one to the system; the reused buffer does not.
    """
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        buffer = SCRATCH.get("file", (size + 1,), np.uint8)
        count = handle.readinto(memoryview(buffer))
        if count <= size:
            return buffer[:count]
        rest = handle.read()  # the file grew while being read
    return np.frombuffer(buffer.tobytes() + rest, np.uint8)


def parse_careful(path: str, raw: np.ndarray) -> ParsedSkeleton:
    """Parse a whole ``.skeleton`` file's bytes, uint8 [n] (n > 0), line by line in structure.

    Returns:
        (num_frames T, body_ids int64 [B], joints float32 [B, T, 25, 12] NaN where
        absent, body_info float32 [B, T, 9] NaN where absent, body_order int16 [B, T]).

    Raises:
        SkeletonFormatError: with the 1-based line of the earliest problem.
    """
    walker = _Walker(raw)
    try:
        num_frames = walker.walk()
        structure = None
    except _Structure as problem:
        structure = problem.problem
    info, joints, number_problem = walker.numbers()
    problems = [p for p in (structure, number_problem) if p is not None]
    if problems:
        line, reason = min(problems)
        raise SkeletonFormatError(path, reason, line=line)
    body = np.array(walker.record_body, np.int64)
    frame = np.array(walker.record_frame, np.int64)
    position = np.array(walker.record_position, np.int64)
    joints_out, info_out, order_out = _dense(num_frames, len(walker.ids), body, frame, position, info, joints)
    return num_frames, np.array(walker.ids, dtype=np.int64), joints_out, info_out, order_out


def _dense(
    num_frames: int, num_bodies: int, body: np.ndarray, frame: np.ndarray, position: np.ndarray,
    info: np.ndarray, joints: np.ndarray,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scatter R body records into the dense arrays.

    Args:
        body, frame, position: int64 [R], each record's body index, frame and position
            in its frame's body list.
        info: float64 [R, 9]; joints: float64 [R, 25, 12].

    Returns:
        joints float32 [B, T, 25, 12] and info float32 [B, T, 9] (NaN where absent),
        body_order int16 [B, T] (-1 where absent).
    """
    joints_out = np.full((num_bodies, num_frames, NUM_JOINTS, JOINT_FIELD_COUNT), np.nan, dtype=np.float32)
    info_out = np.full((num_bodies, num_frames, INFO_FIELD_COUNT), np.nan, dtype=np.float32)
    order_out = np.full((num_bodies, num_frames), -1, dtype=np.int16)
    joints_out[body, frame] = joints
    info_out[body, frame] = info
    order_out[body, frame] = position
    return joints_out, info_out, order_out


# --------------------------------------------------------------------------- fast path

_RECORD_TOKENS = 1 + INFO_FIELD_COUNT + 1 + NUM_JOINTS * JOINT_FIELD_COUNT
"""Tokens from a body line's ID to its last joint value: ID, 9 info, "25", 300 joint values."""

_RECORD_OFFSETS = np.arange(_RECORD_TOKENS)
_RECORD_BOUNDS = np.tile(JOINT_FIELD_BOUNDS, NUM_JOINTS)
"""float64 [2, 300]: :data:`JOINT_FIELD_BOUNDS` for the 25 joints of a record, in file order."""

_DIGIT_THRESHOLDS = 10.0 ** np.arange(1, 16)
"""10, 100, ..., 10**15: ``searchsorted(_, v, "right") + 1`` is the digit count of an integer v >= 0."""

_MAX_ID_DIGITS = len(str(INT64_MAX))


class _Lines:
    """Where the tokens of a text lie, line by line (lines end at ``\\n``; 0-based).

    Attributes:
        starts, ends: int64 [N], token byte ranges (scratch views), as ``bytes.split`` splits.
        first_token: int64 [L], index of each line's first token (of the next line's when it
            has none).
        per_line: int64 [L], the number of tokens on each line.
    """

    def __init__(self, raw: np.ndarray) -> None:
        newlines = line_ends(raw)
        count = newlines.size + (raw[-1] != 10)  # a last line without its newline counts
        line_starts = np.empty(count, np.int64)
        line_starts[0] = 0
        np.add(newlines[:count - 1], 1, out=line_starts[1:])
        self.starts, self.ends = tokens(raw, split_like_python=True)
        self.first_token = np.searchsorted(self.starts, line_starts)
        self.per_line = np.empty(count, np.int64)
        np.subtract(self.first_token[1:], self.first_token[:-1], out=self.per_line[:-1])
        self.per_line[-1] = self.starts.size - self.first_token[-1]


def _count_values(lines: _Lines, values: np.ndarray, regular: np.ndarray) -> np.ndarray:
    """int64 [L]: each line's value where the line is one canonical unsigned integer (digits
    only: no sign, point or leading zero), else -1.

    A regular token (``[+-]digits[.digits]``) is canonical exactly when its value is an
    integer >= 0 with as many digits as the token has bytes.
    """
    single = np.flatnonzero(lines.per_line == 1)  # the count lines: a few hundred of thousands of lines
    token = lines.first_token[single]
    value = values[token]
    digits = np.searchsorted(_DIGIT_THRESHOLDS, value, side="right") + 1
    canonical = regular[token]
    canonical &= lines.ends[token] - lines.starts[token] == digits
    canonical &= value == np.floor(value)
    counts = np.full(lines.per_line.size, -1, np.int64)
    counts[single[canonical]] = value[canonical]
    return counts


def _walk_frames(counts: np.ndarray) -> Optional[Tuple[int, List[int], int]]:
    """Follow the frameCount and bodyCount lines; one step per frame.

    Args:
        counts: int64 [L], from :func:`_count_values`.

    Returns:
        (T, the bodyCount line of each frame [T], the first line after the last frame),
        or None when a count is missing, out of range, or runs past the end of the file.
    """
    n_lines = counts.size
    num_frames = int(counts[0])
    if not 0 <= num_frames <= MAX_FRAMES:
        return None
    lookup = memoryview(counts)  # indexing gives Python ints, without converting all lines
    frame_lines: List[int] = []
    line = 1
    for _ in range(num_frames):
        if line >= n_lines:
            return None
        body_count = lookup[line]
        if not 0 <= body_count <= MAX_BODIES_PER_FRAME:
            return None
        frame_lines.append(line)
        line += 1 + LINES_PER_BODY * body_count
    return (num_frames, frame_lines, line) if line <= n_lines else None


def _records(counts: np.ndarray, frame_lines: List[int]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each body record's body line, frame and position in its frame, int64 [R] each."""
    frame_line = np.array(frame_lines, np.int64)
    body_counts = counts[frame_line]
    frame = np.repeat(np.arange(frame_line.size), body_counts)
    first = np.cumsum(body_counts) - body_counts  # record index of each frame's first body
    position = np.arange(frame.size) - first[frame]
    body_line = frame_line[frame] + 1 + LINES_PER_BODY * position
    return body_line, frame, position


def _layout_holds(lines: _Lines, counts: np.ndarray, frame_lines: List[int], body_line: np.ndarray, end: int) -> bool:
    """Every line has the token count its place demands (1 for counts, 10 for a body line,
    12 for a joint line, 0 after the last frame), and every jointCount is 25."""
    expected = np.full(lines.per_line.size, JOINT_FIELD_COUNT, np.int64)
    expected[0] = 1
    expected[frame_lines] = 1
    expected[body_line] = 1 + INFO_FIELD_COUNT
    expected[body_line + 1] = 1
    expected[end:] = 0
    return bool(np.array_equal(lines.per_line, expected)) and bool((counts[body_line + 1] == NUM_JOINTS).all())


def _body_ids(raw: np.ndarray, lines: _Lines, id_tokens: np.ndarray) -> Optional[Tuple[List[int], np.ndarray]]:
    """Exact body IDs in order of first appearance, and each record's body index int64 [R].

    None when an ID is not a canonical integer token in 0..INT64_MAX (a sign or leading
    zero would let two spellings name one body: those files take the careful path).
    """
    view = memoryview(raw)
    index_of: dict = {}
    body: List[int] = []
    for start, end in zip(lines.starts[id_tokens].tolist(), lines.ends[id_tokens].tolist()):
        token = view[start:end].tobytes()
        index = index_of.get(token)
        if index is None:
            canonical = token.isdigit() and len(token) <= _MAX_ID_DIGITS and (len(token) == 1 or token[0] != 48)
            if not canonical or int(token) > INT64_MAX:
                return None
            index = index_of[token] = len(index_of)
        body.append(index)
    return [int(token) for token in index_of], np.array(body, np.int64)


def _fix_irregular(raw: np.ndarray, lines: _Lines, values: np.ndarray, regular: np.ndarray, id_tokens: np.ndarray) -> bool:
    """Parse, in place, the number tokens the vectorised parser left (exponents, long ones).

    Body IDs are skipped (count tokens are regular once the layout holds). False when a
    token is not an accepted number (see :data:`NUMBER_TOKEN`) or not finite as float32.
    ``regular`` (bool [N], scratch) is overwritten.
    """
    regular[id_tokens] = True  # skipped: parsed as integers by _body_ids
    irregular = np.flatnonzero(np.logical_not(regular, out=regular))
    view = memoryview(raw)
    for index in irregular.tolist():
        token = view[int(lines.starts[index]):int(lines.ends[index])].tobytes()
        if not NUMBER_TOKEN.fullmatch(token):
            return False
        value = float(token)
        if not abs(value) < FLOAT32_OVERFLOW:
            return False
        values[index] = value
    return True


def _record_values(values: np.ndarray, id_tokens: np.ndarray) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """info float64 [R, 9] and joints float64 [R, 25, 12] of the records whose ID tokens are
    ``id_tokens`` [R]; None when a joint value lies beyond its physical bound."""
    if not id_tokens.size:
        return np.zeros((0, INFO_FIELD_COUNT)), np.zeros((0, NUM_JOINTS, JOINT_FIELD_COUNT))
    # Scratch, not fresh arrays: here a fresh array of a few hundred KiB costs more in
    # page faults than the gather itself (measured). Both names are free once decimals
    # has returned (its values live in another buffer).
    index = SCRATCH.get("lane_index", (id_tokens.size, _RECORD_TOKENS), np.int64)
    np.add(id_tokens[:, None], _RECORD_OFFSETS, out=index)
    records = SCRATCH.get("a", index.shape, np.float64)
    np.take(values, index, out=records, mode="clip")  # [R, 311]
    info = records[:, 1:1 + INFO_FIELD_COUNT]
    joint_values = records[:, 2 + INFO_FIELD_COUNT:]  # [R, 300]
    low, high = _RECORD_BOUNDS  # [300] each
    if (np.minimum.reduce(joint_values, axis=0) < low).any() or (np.maximum.reduce(joint_values, axis=0) > high).any():
        return None
    return info, joint_values.reshape(-1, NUM_JOINTS, JOINT_FIELD_COUNT)


def parse_well_formed(raw: np.ndarray) -> Optional[ParsedSkeleton]:
    """The fast path: parse ``raw`` (uint8 [n]) if it is a well-formed file, else None.

    Accepts a subset of what :func:`parse_careful` accepts (everything real files hold) and
    returns the identical result for it; None means "take the careful path", for errors
    and for rare legal spellings alike (``+1``, ``007``, a body ID with a sign).

    Returns:
        (num_frames T, body_ids int64 [B], joints float32 [B, T, 25, 12] NaN where
        absent, body_info float32 [B, T, 9] NaN where absent, body_order int16 [B, T]),
        or None.
    """
    if not raw.size:
        return None
    lines = _Lines(raw)
    if not lines.starts.size:
        return None
    values, regular = decimals(raw, lines.starts, lines.ends)
    counts = _count_values(lines, values, regular)
    walked = _walk_frames(counts)
    if walked is None:
        return None
    num_frames, frame_lines, end = walked
    body_line, frame, position = _records(counts, frame_lines)
    if not _layout_holds(lines, counts, frame_lines, body_line, end):
        return None
    id_tokens = lines.first_token[body_line]
    ids = _body_ids(raw, lines, id_tokens)
    if ids is None or len(ids[0]) * num_frames > MAX_BODY_FRAME_CELLS:
        return None
    if not _fix_irregular(raw, lines, values, regular, id_tokens):
        return None
    numbers = _record_values(values, id_tokens)
    if numbers is None:
        return None
    body_ids, body = ids
    joints, info, order = _dense(num_frames, len(body_ids), body, frame, position, numbers[0], numbers[1])
    if np.count_nonzero(order >= 0) != body.size:  # a body twice in one frame
        return None
    return num_frames, np.array(body_ids, dtype=np.int64), joints, info, order


def parse_skeleton_bytes(path: str, data: "bytes | np.ndarray") -> ParsedSkeleton:
    """Parse a whole ``.skeleton`` file's bytes (``bytes`` or uint8 [n]).

    The fast path first (:func:`parse_well_formed`); the careful path
    (:func:`parse_careful`) for any file it does not accept.

    Returns:
        (num_frames T, body_ids int64 [B], joints float32 [B, T, 25, 12] NaN where
        absent, body_info float32 [B, T, 9] NaN where absent, body_order int16 [B, T]).

    Raises:
        SkeletonFormatError: with the 1-based line of the earliest problem.
    """
    raw = data if isinstance(data, np.ndarray) else np.frombuffer(data, np.uint8)
    if not raw.size:
        raise SkeletonFormatError(path, "empty file", line=1)
    parsed = parse_well_formed(raw)
    return parsed if parsed is not None else parse_careful(path, raw)
