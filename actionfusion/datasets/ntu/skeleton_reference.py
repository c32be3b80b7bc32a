"""A deliberately plain, line-by-line ``.skeleton`` reader: the oracle and the baseline.

It reads the way the common NTU preprocessing scripts do (official
``read_skeleton_file.m``, mmaction2/pyskl ``read_skeleton_filter``, CTR-GCN
``get_raw_skes_data.py``): one line at a time, ``split``, ``float`` per field, with two
differences: body IDs are parsed as exact integers (``float`` merges IDs that differ in
the last digits), and the input is checked against the contract in
:mod:`actionfusion.datasets.ntu._skeleton_limits` with the cheapest checks that do it
(``float`` on bytes already refuses non-ASCII and junk; ``_`` digit groups and values
beyond float32 are refused explicitly).

Use :func:`actionfusion.datasets.ntu.skeleton_file.read_skeleton_file` in real code.
This module exists so that tests can compare the fast reader against an obviously
correct one, and so that ``benchmarks/bench_skeleton_parsing.py`` has a baseline.
"""

from __future__ import annotations

import os
from typing import Dict, List, Tuple

import numpy as np

from actionfusion.datasets.ntu._skeleton_limits import (
    FLOAT32_OVERFLOW,
    INT64_MAX,
    INT64_MIN,
    LINES_PER_BODY,
    MAX_BODIES_PER_FRAME,
    MAX_BODY_FRAME_CELLS,
    MAX_FRAMES,
    NUMBER_TOKEN,
    bound_reason,
    int_token_problem,
    joint_out_of_bounds,
)
from actionfusion.datasets.ntu.skeleton_file import (
    BODY_INFO_FIELDS,
    JOINT_FIELDS,
    NUM_JOINTS,
    SkeletonFile,
)
from actionfusion.errors import SkeletonFormatError


class _Lines:
    """The file's lines with a cursor; line numbers are 1-based."""

    def __init__(self, path: str, data: bytes) -> None:
        self.path = path
        self.lines = data.split(b"\n")
        if data.endswith(b"\n"):
            self.lines.pop()
        self.number = 0  # the line last read

    def remaining(self) -> int:
        return len(self.lines) - self.number

    def readline(self) -> List[bytes]:
        if self.number >= len(self.lines):
            self.fail("unexpected end of file", self.number + 1)
        self.number += 1
        return self.lines[self.number - 1].split()

    def fail(self, reason: str, line: int = 0) -> None:
        raise SkeletonFormatError(self.path, reason, line=line or self.number)

    def count(self, name: str, upper: int) -> int:
        fields = self.readline()
        if len(fields) != 1:
            self.fail(f"{name}: expected 1 field, found {len(fields)}")
        problem = int_token_problem(fields[0])
        if problem is not None:
            self.fail(f"{name}: {problem}")
        value = int(fields[0])
        if not 0 <= value <= upper:
            self.fail(f"{name} {value} outside 0..{upper}")
        return value

    def numbers(self, fields: List[bytes]) -> List[float]:
        """``float`` per field, as the common scripts do, plus the contract's checks.

        On bytes, ``float`` accepts exactly the grammar of the format plus ``_`` digit
        groups and ``nan``/``inf`` spellings, which the two checks below reject.
        """
        try:
            values = [float(token) for token in fields]
        except ValueError:
            values = []
        if len(values) != len(fields) or b"_" in b"".join(fields):
            bad = next(t for t in fields if not NUMBER_TOKEN.fullmatch(t))
            self.fail(f"not a number: {bad[:32]!r}")
        for token, value in zip(fields, values):
            if not -FLOAT32_OVERFLOW < value < FLOAT32_OVERFLOW:
                self.fail(f"not a finite float32: {token[:32]!r}")
        return values


def read_skeleton_file_reference(path: "os.PathLike[str] | str") -> SkeletonFile:
    """Read a ``.skeleton`` file line by line (slow, plain; see the module docstring).

    Returns:
        SkeletonFile: body_ids int64 [B] (first appearance order), joints float32
        [B, T, 25, 12], body_info float32 [B, T, 9], body_order int16 [B, T].

    Raises:
        SkeletonFormatError: on any deviation from the format, with the 1-based line.
    """
    path = os.fspath(path)
    with open(path, "rb") as handle:
        data = handle.read()
    if not data:
        raise SkeletonFormatError(path, "empty file", line=1)
    f = _Lines(path, data)
    num_frames = f.count("frameCount", MAX_FRAMES)
    if num_frames > f.remaining():
        f.fail(f"frameCount {num_frames} needs at least that many more lines, {f.remaining()} remain")

    ids: List[int] = []
    index_of: Dict[int, int] = {}
    # (body index, frame, position in frame) -> (info [9], joints [25][12])
    records: List[Tuple[int, int, int, List[float], List[List[float]]]] = []
    for frame in range(num_frames):
        body_count = f.count("bodyCount", MAX_BODIES_PER_FRAME)
        if body_count * LINES_PER_BODY > f.remaining():
            f.fail(
                f"bodyCount {body_count} needs {body_count * LINES_PER_BODY} more lines, "
                f"{f.remaining()} remain"
            )
        seen = set()
        for position in range(body_count):
            fields = f.readline()
            if len(fields) != 1 + len(BODY_INFO_FIELDS):
                f.fail(f"body line: expected {1 + len(BODY_INFO_FIELDS)} fields, found {len(fields)}")
            problem = int_token_problem(fields[0])
            if problem is not None:
                f.fail(f"bodyID: {problem}")
            body_id = int(fields[0])
            if not INT64_MIN <= body_id <= INT64_MAX:
                f.fail(f"bodyID {body_id} outside the int64 range")
            info = f.numbers(fields[1:])
            if body_id in seen:
                f.fail(f"bodyID {body_id} appears twice in frame {frame}")
            seen.add(body_id)
            if body_id not in index_of:
                if (len(ids) + 1) * num_frames > MAX_BODY_FRAME_CELLS:
                    f.fail(f"more than {MAX_BODY_FRAME_CELLS} body-frame cells: not a recording")
                index_of[body_id] = len(ids)
                ids.append(body_id)
            joint_count = f.count("jointCount", NUM_JOINTS)
            if joint_count != NUM_JOINTS:
                f.fail(f"jointCount {joint_count}, expected {NUM_JOINTS}")
            joints = []
            for _ in range(NUM_JOINTS):
                fields = f.readline()
                if len(fields) != len(JOINT_FIELDS):
                    f.fail(f"joint line: expected {len(JOINT_FIELDS)} fields, found {len(fields)}")
                values = f.numbers(fields)
                bad = np.flatnonzero(joint_out_of_bounds(np.asarray(values, np.float64)))
                if bad.size:
                    f.fail(bound_reason(int(bad[0]), values[int(bad[0])]))
                joints.append(values)
            records.append((index_of[body_id], frame, position, info, joints))
    for extra in range(f.number, len(f.lines)):
        if f.lines[extra].strip():
            f.fail("unexpected content after the last frame", extra + 1)

    b = len(ids)
    joints_out = np.full((b, num_frames, NUM_JOINTS, len(JOINT_FIELDS)), np.nan, dtype=np.float32)
    info_out = np.full((b, num_frames, len(BODY_INFO_FIELDS)), np.nan, dtype=np.float32)
    order_out = np.full((b, num_frames), -1, dtype=np.int16)
    for body, frame, position, info, joints in records:
        joints_out[body, frame] = joints
        info_out[body, frame] = info
        order_out[body, frame] = position
    return SkeletonFile(
        num_frames=num_frames,
        body_ids=np.array(ids, dtype=np.int64),
        joints=joints_out,
        body_info=info_out,
        body_order=order_out,
    )
