"""Distributed set-up: launch detection, sharding, gathering, and DDP (torchrun, 2 CPU processes, gloo)
matching a single process at the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from actionfusion.pipeline.distributed import (
    DistContext,
    ShardedSampler,
    epoch_permutation,
    gather_predictions,
    launch_environment,
    per_process_batch_size,
)
from actionfusion.pipeline.trainer import evaluate, train
from trainer_standins import tiny_config, tiny_datasets

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).resolve().parent / "trainer_standins.py"
ALONE = DistContext(0, 1, 0, torch.device("cpu"), None)


def test_launch_environment_without_torchrun_is_single_process():
    assert launch_environment({}) == (0, 1, 0)
    assert launch_environment({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == (3, 4, 1)
    assert launch_environment({"WORLD_SIZE": "1"}) == (0, 1, 0)
    with pytest.raises(RuntimeError, match="RANK not set"):
        launch_environment({"WORLD_SIZE": "2", "LOCAL_RANK": "0"})
    with pytest.raises(RuntimeError, match="outside"):
        launch_environment({"RANK": "2", "WORLD_SIZE": "2"})


def test_shards_recompose_the_single_process_batches():
    n, world, global_batch = 30, 3, 6
    single = ShardedSampler(n, 1, 0, shuffle=True, seed=7)
    single.set_epoch(4)
    order = single.indices()
    np.testing.assert_array_equal(order, epoch_permutation(n, 7, 4))
    per = per_process_batch_size(global_batch, DistContext(0, world, 0, torch.device("cpu"), "gloo"))
    shards = []
    for rank in range(world):
        sampler = ShardedSampler(n, world, rank, shuffle=True, seed=7)
        sampler.set_epoch(4)
        shards.append(sampler.indices())
    for k in range(n // global_batch):
        union = np.concatenate([s[k * per:(k + 1) * per] for s in shards])
        assert sorted(union) == sorted(order[k * global_batch:(k + 1) * global_batch])
    # Another epoch, another order; training pads to equal length, evaluation never duplicates.
    single.set_epoch(5)
    assert not np.array_equal(single.indices(), order)
    padded = [ShardedSampler(31, 2, r, shuffle=True, seed=0).indices() for r in range(2)]
    assert len(padded[0]) == len(padded[1]) == 16
    unpadded = [ShardedSampler(31, 2, r, shuffle=False, pad=False).indices() for r in range(2)]
    assert sorted(np.concatenate(unpadded)) == list(range(31))
    with pytest.raises(ValueError, match="not divisible"):
        per_process_batch_size(10, DistContext(0, 4, 0, torch.device("cpu"), "gloo"))


def test_gather_sorts_and_refuses_duplicates():
    indices, scores = gather_predictions(torch.tensor([2, 0, 1]), torch.eye(3), ALONE)
    np.testing.assert_array_equal(indices, [0, 1, 2])
    np.testing.assert_array_equal(scores, torch.eye(3).numpy()[[1, 2, 0]])
    with pytest.raises(RuntimeError, match="twice"):
        gather_predictions(torch.tensor([0, 0]), torch.zeros(2, 3), ALONE)


def _env():
    path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(ROOT)) if p)
    clean = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    return {**clean, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}


def _launch(work_dir, *args, ranks=None):
    script = [str(SCRIPT), str(work_dir), *args]
    if ranks:
        script = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks)] + script
    return subprocess.Popen([sys.executable, *script], env=_env(), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def test_ddp_two_processes_match_one_process_at_the_same_global_batch(tmp_path):
    # Equality run: drop_rate 0 and no BatchNorm. With either, the runs legitimately differ: each
    # rank draws its own dropout masks for its half batch, and BatchNorm normalises each rank's
    # B/W samples with their own statistics. What must match is everything else: the sample
    # order, the averaged gradients, the lr schedule and the evaluation over the full splits.
    common = ["--epochs", "2", "--batch", "8", "--drop-rate", "0"]
    ddp = _launch(tmp_path / "ddp", *common, ranks=2)
    # BatchNorm run: the test split gives the ranks 5 and 4 samples (2 and 1 batches of 4); the
    # evaluation must not hang, must count every sample once, and must score the saved weights
    # exactly as a one-process evaluation of them does.
    ddp_bn = _launch(tmp_path / "ddp_bn", *common, "--use-bn", ranks=2)
    plain = {"aux_weight": 0.01, "drop_rate": 0.0}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:  # the one-process run, here, while the two DDP runs go on
        train(tiny_config(epochs=2, batch_size=8, model={"kwargs": plain}), tmp_path / "single", progress=False,
              datasets=tiny_datasets())
    finally:
        torch.set_num_threads(threads)
    for process in (ddp, ddp_bn):
        out, err = process.communicate(timeout=150)
        assert process.returncode == 0, err.decode()[-4000:]
    a = json.loads((tmp_path / "single" / "metrics.json").read_text())
    b = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert (a["world_size"], b["world_size"]) == (1, 2)
    assert a["test"]["num_samples"] == b["test"]["num_samples"] == 9  # every sample once, no padding (ranks hold 5 and 4)
    assert a["val"]["num_samples"] == b["val"]["num_samples"] == 12
    for split in ("val", "test"):
        for key in ("top1", "top5", "mean_class_accuracy"):
            assert a[split][key] == b[split][key], (split, key)
        assert a[split]["loss"] == pytest.approx(b[split]["loss"], rel=1e-4)
    wa = load_file(str(tmp_path / "single" / "checkpoints" / "epoch_0002" / "model.safetensors"))
    wb = load_file(str(tmp_path / "ddp" / "checkpoints" / "epoch_0002" / "model.safetensors"))
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=1e-4, atol=1e-5)
    ha = json.loads((tmp_path / "single" / "history.json").read_text())
    hb = json.loads((tmp_path / "ddp" / "history.json").read_text())
    assert [h["global_step"] for h in ha] == [h["global_step"] for h in hb] == [5, 10]
    for x, y in zip(ha, hb):
        assert x["train_loss"] == pytest.approx(y["train_loss"], rel=1e-4)

    bn = json.loads((tmp_path / "ddp_bn" / "metrics.json").read_text())
    assert bn["world_size"] == 2 and bn["test"]["num_samples"] == 9
    cfg = tiny_config(epochs=2, batch_size=8, model={"kwargs": {**plain, "use_bn": True}})
    alone = evaluate(cfg, tmp_path / "ddp_bn" / "best.safetensors", progress=False, datasets=tiny_datasets())
    assert alone["top1"] == bn["test"]["top1"]
    assert alone["loss"] == pytest.approx(bn["test"]["loss"], rel=1e-5)


def test_ddp_pretraining_matches_one_process(tmp_path):
    """``pretrain`` under torchrun: the objective's own parameters are synchronised with the model's,
    the validation loss and the kNN monitor gather every rank's samples, and a deterministic
    objective ends where one process does."""
    from actionfusion.pipeline.pretrain import pretrain
    from trainer_standins import tiny_pretrain_config

    ddp = _launch(tmp_path / "ddp", "--pretrain", "--epochs", "2", "--batch", "8", ranks=2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = pretrain(tiny_pretrain_config(2, 8), tmp_path / "single", progress=False, datasets=tiny_datasets())
    finally:
        torch.set_num_threads(threads)
    out, err = ddp.communicate(timeout=150)
    assert ddp.returncode == 0, err.decode()[-4000:]
    both = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert (single["world_size"], both["world_size"]) == (1, 2)
    assert single["test_knn_top1"] == both["test_knn_top1"]
    for name in ("encoder.safetensors", "objective.safetensors"):
        a, b = load_file(str(tmp_path / "single" / name)), load_file(str(tmp_path / "ddp" / name))
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)
    ha = json.loads((tmp_path / "single" / "history.json").read_text())
    hb = json.loads((tmp_path / "ddp" / "history.json").read_text())
    for x, y in zip(ha, hb):
        assert x["val_knn_top1"] == y["val_knn_top1"]
        assert x["val_loss"] == pytest.approx(y["val_loss"], rel=1e-4)
        assert x["train_mse"] == pytest.approx(y["train_mse"], rel=1e-4)
