"""Multi-node training: two torchrun launches on loopback (two "nodes" of one process each, c10d
rendezvous, gloo on CPU) end with the weights of one process at the same global batch, and resume
from a work dir that both nodes share."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from actionfusion.pipeline.trainer import train
from trainer_standins import tiny_config, tiny_datasets

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).resolve().parent / "trainer_standins.py"
EPOCHS, BATCH = 3, 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(ROOT)) if p)
    clean = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    # gloo binds the interface its host name resolves to unless told: keep it on loopback
    return {**clean, "OMP_NUM_THREADS": "1", "PYTHONPATH": path, "GLOO_SOCKET_IFNAME": "lo"}


def _two_nodes(work_dirs: tuple[Path, Path], *args: str) -> list[subprocess.CompletedProcess]:
    """Run the stand-in trainer as 2 torchrun "nodes" (one process each) rendezvousing on loopback."""
    port, run_id = _free_port(), uuid.uuid4().hex[:8]
    nodes = []
    for rank, work_dir in enumerate(work_dirs):
        command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node-rank", str(rank),
                   "--nproc-per-node", "1", "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}",
                   "--rdzv-id", run_id, "--local-addr", "127.0.0.1", "--max-restarts", "0",
                   str(SCRIPT), str(work_dir), "--epochs", str(EPOCHS), "--batch", str(BATCH), "--drop-rate", "0",
                   *args]
        nodes.append(subprocess.Popen(command, env=_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    done = []
    for node in nodes:
        out, err = node.communicate(timeout=240)
        done.append(subprocess.CompletedProcess(node.args, node.returncode, out.decode(), err.decode()))
    return done


def _weights(work_dir: Path, epoch: int) -> dict[str, torch.Tensor]:
    return load_file(str(work_dir / "checkpoints" / f"epoch_{epoch:04d}" / "model.safetensors"))


def test_two_torchrun_nodes_match_one_process_and_resume_from_a_shared_work_dir(tmp_path: Path) -> None:
    shared = tmp_path / "shared"  # one folder both nodes see: the shared-storage case
    first = _two_nodes((shared, shared))
    for node in first:
        assert node.returncode == 0, node.stderr[-4000:]
    _train_alone(tmp_path / "single")
    single, both = (json.loads((d / "metrics.json").read_text()) for d in (tmp_path / "single", shared))
    assert (single["world_size"], both["world_size"]) == (1, 2)
    for split in ("val", "test"):
        assert single[split]["top1"] == both[split]["top1"]
        assert single[split]["loss"] == pytest.approx(both[split]["loss"], rel=1e-4)
    expected = _weights(tmp_path / "single", EPOCHS)
    for key, value in _weights(shared, EPOCHS).items():
        torch.testing.assert_close(value, expected[key], rtol=1e-4, atol=1e-5)

    # Resume: the last epoch's checkpoint is gone (as if both nodes died in it); both nodes read
    # epoch 2 from the shared folder, redo epoch 3 and end where one process does.
    shutil.rmtree(shared / "checkpoints" / f"epoch_{EPOCHS:04d}")
    resumed = _two_nodes((shared, shared), "--resume")
    for node in resumed:
        assert node.returncode == 0, node.stderr[-4000:]
    assert f"epoch_{EPOCHS - 1:04d}" in (shared / "log.txt").read_text().split("resumed from", 1)[1].split("\n")[0]
    history = json.loads((shared / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    for key, value in _weights(shared, EPOCHS).items():
        torch.testing.assert_close(value, expected[key], rtol=1e-4, atol=1e-5)


def _train_alone(work_dir: Path) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(tiny_config(epochs=EPOCHS, batch_size=BATCH, model={"kwargs": {"aux_weight": 0.01, "drop_rate": 0.0}}),
              work_dir, progress=False, datasets=tiny_datasets())
    finally:
        torch.set_num_threads(threads)


def test_nodes_that_see_different_checkpoints_refuse_to_resume(tmp_path: Path) -> None:
    """Each node with its own work dir (not shared): one holds the checkpoints, the other none.
    Every rank stops with the same one-line reason instead of training from different epochs."""
    _train_alone(tmp_path / "node0")
    nodes = _two_nodes((tmp_path / "node0", tmp_path / "node1"), "--resume")
    for node in nodes:
        assert node.returncode != 0
        assert "every node shares" in node.stderr, node.stderr[-3000:]
