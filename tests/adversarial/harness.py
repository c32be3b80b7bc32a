"""The adversarial suite's harness: run one CLI command in-process on a bad input, and check that it
ends in the typed one-line error (or the correct result) and writes nothing outside its outputs.

A :class:`Case` is data: the argv (built from the :class:`Env` of paths), an optional set-up that
writes the bad input, the exit status expected (1 failure, 2 usage; 0 where the right answer is a
result, e.g. a batch job that records a bad sample and goes on) and the paths it may write.
"""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from actionfusion.pipeline.cli import main

TALLY: Dict[str, int] = {}
"""Outcome counts of the cases that passed their checks (printed at the end of the session)."""

OUTCOMES = {0: "correct result", 1: "typed error (exit 1)", 2: "usage error (exit 2)",
            3: "correct result, strict (exit 3)"}


@dataclass
class Env:
    """Paths one case may use: its own folder (the working directory), and the session's data."""

    case: Path
    raw: Path
    store: Path

    def write(self, name: str, data: "str | bytes") -> Path:
        path = self.case / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data)
        return path


@dataclass
class Case:
    """One bad input for one command."""

    id: str
    argv: Callable[[Env], List[str]]
    setup: Optional[Callable[[Env], None]] = None
    status: "int | Tuple[int, ...]" = (1, 2)
    outputs: Tuple[str, ...] = ("out",)
    stdout_check: Optional[Callable[[str, Env], None]] = None
    match: Optional[str] = None  # a substring the error line must hold


@dataclass
class Result:
    status: int
    stdout: str
    stderr: str


def run_cli(argv: Sequence[str], cwd: Path) -> Result:
    """``actionfusion ARGV`` in this process, in ``cwd``; argparse's exits become statuses."""
    out, err = io.StringIO(), io.StringIO()
    previous = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = main(list(argv))
            except SystemExit as exit_:  # argparse usage errors
                status = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        os.chdir(previous)
    return Result(int(status), out.getvalue(), err.getvalue())


def snapshot(root: Path, skip: Sequence[Path] = ()) -> Dict[str, Tuple[int, int]]:
    """{relative path: (size, mtime_ns)} of every file and folder under ``root`` outside ``skip``."""
    skip = [s.resolve() for s in skip]
    found: Dict[str, Tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath).resolve()
        dirnames[:] = [d for d in dirnames if (here / d).resolve() not in skip]
        for name in dirnames + filenames:
            path = here / name
            if path.resolve() in skip:
                continue
            info = path.lstat()
            found[str(path.relative_to(root.resolve()))] = (info.st_size if path.is_file() else 0, info.st_mtime_ns)
    return found


def error_lines(stderr: str) -> List[str]:
    """stderr's non-empty lines, progress-bar carriage returns dropped."""
    return [line.rsplit("\r", 1)[-1].strip() for line in stderr.splitlines() if line.rsplit("\r", 1)[-1].strip()]


def check_case(case: Case, env: Env, watched: Sequence[Path]) -> Result:
    """Run ``case`` and assert its contract; returns the result (for the suite's tally)."""
    if case.setup is not None:
        case.setup(env)
    argv = case.argv(env)  # may write the bad input (a config) too
    outputs = [env.case / name for name in case.outputs]
    before = {str(root): snapshot(root, outputs) for root in (env.case, *watched)}
    result = run_cli(argv, env.case)
    statuses = case.status if isinstance(case.status, tuple) else (case.status,)
    lines = error_lines(result.stderr)
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "internal error" not in result.stderr, result.stderr[-3000:]
    assert result.status in statuses, (result.status, result.stderr[-2000:], result.stdout[-500:])
    if result.status in (1, 2):
        assert len(lines) == 1, lines
        assert lines[0].startswith("actionfusion ") and ": error: " in lines[0], lines[0]
        if case.match is not None:
            assert case.match in lines[0], lines[0]
    if case.stdout_check is not None:
        case.stdout_check(result.stdout, env)
    after = {str(root): snapshot(root, outputs) for root in (env.case, *watched)}
    for root in before:
        changed = sorted(k for k in set(before[root]) | set(after[root]) if before[root].get(k) != after[root].get(k))
        assert not changed, f"{case.id} wrote outside its outputs, under {root}: {changed[:5]}"
    outcome = OUTCOMES.get(result.status, f"exit {result.status}")
    TALLY[outcome] = TALLY.get(outcome, 0) + 1
    return result
