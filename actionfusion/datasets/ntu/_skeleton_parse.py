"""Fast ``.skeleton`` parsing, exact to ``np.float32(float(token))``.

The file's structure is fixed by its count lines, which are few (per frame one
bodyCount line, per body a body line and a jointCount line): those are walked in Python
(:class:`_Walker`). All numbers (9 per body line, 12 per joint line) are then parsed in
one vectorised pass over the whole file (:mod:`._skeleton_numbers`); the few tokens it
cannot take (exponents such as ``-7.257856E-05``, junk) go through ``float`` one by one
after the grammar check the reference reader applies. Every error carries the 1-based
line of the earliest problem in the file, the line that
:mod:`actionfusion.datasets.ntu.skeleton_reference` reports too.
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


def parse_skeleton_bytes(path: str, data: "bytes | np.ndarray") -> ParsedSkeleton:
    """Parse a whole ``.skeleton`` file's bytes (``bytes`` or uint8 [n]).

    Returns:
        (num_frames T, body_ids int64 [B], joints float32 [B, T, 25, 12] NaN where
        absent, body_info float32 [B, T, 9] NaN where absent, body_order int16 [B, T]).

    Raises:
        SkeletonFormatError: with the 1-based line of the earliest problem.
    """
    raw = data if isinstance(data, np.ndarray) else np.frombuffer(data, np.uint8)
    if not raw.size:
        raise SkeletonFormatError(path, "empty file", line=1)
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
    b = len(walker.ids)
    body, frame = np.array(walker.record_body, np.int64), np.array(walker.record_frame, np.int64)
    joints_out = np.full((b, num_frames, NUM_JOINTS, JOINT_FIELD_COUNT), np.nan, dtype=np.float32)
    info_out = np.full((b, num_frames, INFO_FIELD_COUNT), np.nan, dtype=np.float32)
    order_out = np.full((b, num_frames), -1, dtype=np.int16)
    joints_out[body, frame] = joints
    info_out[body, frame] = info
    order_out[body, frame] = walker.record_position
    return num_frames, np.array(walker.ids, dtype=np.int64), joints_out, info_out, order_out
