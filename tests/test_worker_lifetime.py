"""kill -9 of a batch command leaves no worker process behind (actionfusion.worker_lifetime).

``prepare``'s forkserver pool is tested in test_prepare.py and ``extract-poses``' in
test_extract_poses.py; this covers the spawn pool of ``synth`` and the watchdog itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _cmdline(psutil, process) -> str:
    """The process's command line; "" for one that exited (or became a zombie) since it was listed."""
    try:
        return " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return ""


def test_kill_9_of_synth_leaves_no_worker_behind(tmp_path: Path) -> None:
    psutil = pytest.importorskip("psutil")
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "actionfusion", "synth", str(tmp_path / "raw"), "--scale", "tiny",
                             "--workers", "2", "--quiet"], env=env, stdout=subprocess.DEVNULL)
    main = psutil.Process(proc.pid)
    children: list = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            children = main.children(recursive=True)
            if len([c for c in children if "spawn_main" in _cmdline(psutil, c)]) >= 2:
                break
            time.sleep(0.01)
        assert proc.poll() is None and children, "the pool did not start before synth ended"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    _, alive = psutil.wait_procs(children, timeout=5)
    assert not alive, [(p.pid, _cmdline(psutil, p)[:120]) for p in alive if p.is_running()]


def test_a_worker_started_after_its_command_died_exits_at_once() -> None:
    """end_with_main_process in a process whose 'main' is already gone exits with status 1."""
    code = ("import sys; from actionfusion.worker_lifetime import end_with_main_process; "
            "end_with_main_process(int(sys.argv[1])); print('survived')")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", code, str(dead.pid)], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1 and "survived" not in result.stdout
