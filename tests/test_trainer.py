"""The trainer: outputs, aux losses, validation-only selection, multi-clip evaluation, exact resume after kill -9."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from actionfusion.pipeline.checkpoints import latest_checkpoint
from actionfusion.pipeline.trainer import evaluate, train
from actionfusion.pipeline.train_loop import FeaturesAndLogits
from trainer_standins import TinyClipDataset, TinySkeletonNet, tiny_config, tiny_datasets

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).resolve().parent / "trainer_standins.py"


class CountingDataset(TinyClipDataset):
    """Counts item reads, to prove when a split was used."""

    reads = 0

    def __getitem__(self, index):
        type(self).reads += 1
        return super().__getitem__(index)


def tensorboard_works() -> bool:
    """Whether the optional ``tensorboard`` package (what torch.utils.tensorboard needs) is installed."""
    return importlib.util.find_spec("tensorboard") is not None


pytestmark = pytest.mark.usefixtures("one_thread")


def test_features_and_logits_exposes_only_loss_entries():
    model = FeaturesAndLogits(TinySkeletonNet(aux_weight=0.5))
    logits, aux, streams = model(torch.randn(3, 2, 8, 25, 3))
    assert logits.shape == (3, 5)
    assert set(aux) == {"loss_feature_l2"} and aux["loss_feature_l2"].requires_grad
    assert streams == {}


def test_train_outputs_and_test_split_used_only_at_the_end(tmp_path):
    datasets = tiny_datasets()
    CountingDataset.reads = 0
    datasets["test"] = CountingDataset(9, offset=2)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="TensorBoard logging is off")
        results = train(tiny_config(epochs=2), tmp_path, progress=False, datasets=datasets)
    # Selection used val only: the test split was read once, by the final evaluation.
    assert CountingDataset.reads == 9
    for name in ("config.yaml", "best.safetensors", "metrics.json", "confusion.png", "per_class.csv",
                 "scores_test.npy", "labels_test.npy", "names_test.json", "history.json"):
        assert (tmp_path / name).is_file(), name
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    if tensorboard_works():
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        events = EventAccumulator(str(tmp_path / "tb"))
        events.Reload()
        tags = set(events.Tags()["scalars"])
        assert {"train/loss", "train/lr", "final_test/top1", "final_val/top1"} <= tags
        (final,) = events.Scalars("final_test/top1")
        assert final.step == 2 and final.value == pytest.approx(metrics["test"]["top1"])
    assert metrics["selected_by"] == "val_top1" and metrics["test"]["num_samples"] == 9
    assert metrics["val"]["num_samples"] == 12 and metrics["top1"] == results["top1"]
    history = json.loads((tmp_path / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert history[0]["train_loss_feature_l2"] > 0  # the aux loss was collected
    assert history[-1]["train_loss"] < history[0]["train_loss"]  # it learns
    scores = np.load(tmp_path / "scores_test.npy")
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-5)
    assert metrics["top1"] == pytest.approx(float(np.mean(scores.argmax(1) == np.load(tmp_path / "labels_test.npy"))))
    # A fresh run must not overwrite an existing one.
    with pytest.raises(FileExistsError):
        train(tiny_config(epochs=2), tmp_path, progress=False, datasets=tiny_datasets())


def test_evaluate_multi_clip_averages_probabilities(tmp_path):
    cfg = tiny_config(epochs=1)
    train(cfg, tmp_path / "run", progress=False, datasets=tiny_datasets())
    datasets = tiny_datasets(test_clips=3)
    result = evaluate(cfg, tmp_path / "run", split="test", work_dir=tmp_path / "eval", progress=False, datasets=datasets)
    scores = np.load(tmp_path / "eval" / "scores_test.npy")
    model = TinySkeletonNet(num_classes=5, aux_weight=0.01)
    model.load_state_dict(load_file(str(tmp_path / "run" / "best.safetensors")))
    model.eval()
    clips = torch.stack([datasets["test"][i]["skeleton"] for i in range(9)])  # [9, 3, M, T, V, C]
    with torch.no_grad():
        manual = torch.softmax(model(clips.flatten(0, 1)), -1).reshape(9, 3, 5).mean(1).numpy()
    np.testing.assert_allclose(scores, manual, rtol=1e-5, atol=1e-6)
    assert result["num_samples"] == 9 and (tmp_path / "eval" / "confusion_test.png").is_file()
    assert json.loads((tmp_path / "eval" / "metrics_test.json").read_text())["top1"] == result["top1"]


def test_results_do_not_depend_on_persistent_workers(tmp_path):
    # Workers keep their own copy of the dataset; the epoch travels with each index, so epoch 2's
    # augmentation is epoch 2's in a persistent worker too.
    weights = []
    for workers in (0, 2):
        cfg = tiny_config(epochs=2, data={"batch_size": 8, "num_workers": workers, "clip_len": 8})
        train(cfg, tmp_path / str(workers), progress=False, datasets=tiny_datasets())
        weights.append(load_file(str(tmp_path / str(workers) / "checkpoints" / "epoch_0002" / "model.safetensors")))
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def _run(args, **kwargs):
    path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(ROOT)) if p)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    return subprocess.Popen([sys.executable, str(SCRIPT), *map(str, args)], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def _finish(process, timeout=60):
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err.decode()[-3000:]
    return json.loads(out.decode().strip().splitlines()[-1])


def test_kill_9_mid_epoch_then_resume_is_bit_identical(tmp_path):
    marker = tmp_path / "epoch2_started"
    killed = _run([tmp_path / "b", "--pause-epoch", 1, "--marker", marker])
    # The uninterrupted reference run, here meanwhile (same settings as the script's defaults).
    expected = train(tiny_config(epochs=3, model={"kwargs": {"aux_weight": 0.01, "drop_rate": 0.2}}), tmp_path / "a",
                     progress=False, datasets=tiny_datasets())
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert killed.poll() is None, killed.communicate()[1].decode()[-3000:]
        assert time.monotonic() < deadline, "epoch 2 never started"
        time.sleep(0.05)
    time.sleep(0.5)  # a few steps into epoch 2
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    assert killed.returncode == -signal.SIGKILL
    assert latest_checkpoint(tmp_path / "b").name == "epoch_0001"  # killed inside epoch 2
    assert not (tmp_path / "b" / "metrics.json").exists()
    resumed = _finish(_run([tmp_path / "b", "--resume"]))
    assert resumed == expected
    assert json.loads((tmp_path / "a" / "metrics.json").read_text()) == json.loads((tmp_path / "b" / "metrics.json").read_text())
    for name in ("best.safetensors", "checkpoints/epoch_0003/model.safetensors"):
        a, b = load_file(str(tmp_path / "a" / name)), load_file(str(tmp_path / "b" / name))
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), f"{name}: {key} differs after resume"
    history_a = json.loads((tmp_path / "a" / "history.json").read_text())
    assert history_a == json.loads((tmp_path / "b" / "history.json").read_text())


FIXTURES = ROOT / ".." / "shared" / "fixtures"


def test_real_config_ctrgcn_on_ntu_fixture_store(tmp_path, capsys):
    """The whole path: YAML config + --set overrides, prepared store, E1's datasets, the real CTR-GCN."""
    ntu = FIXTURES / "ntu"
    if not ntu.is_dir():
        pytest.skip(f"NTU fixtures not found at {ntu}: they live in ../shared beside the repo")
    import actionfusion.modalities.skeleton.ctrgcn  # noqa: F401  (registers "ctrgcn")
    from actionfusion.datasets.store.prepare import PrepareConfig, prepare_store
    from actionfusion.pipeline.trainer import run_evaluate_cli, run_train_cli

    store = tmp_path / "store"
    prepare_store(ntu, store, PrepareConfig(modalities=("skeleton",)), workers=0, progress=False)
    overrides = [f"data.store={store}", "data.clip_len=8", "data.batch_size=2", "data.num_workers=0",
                 "data.validation_fraction=0.4", "schedule.epochs=1", "schedule.warmup_epochs=0",
                 "schedule.milestones=[]"]
    config = ROOT / "configs" / "synthetic" / "ctrgcn.yaml"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tiny store's validation carve-out warns
        assert run_train_cli(config, overrides, tmp_path / "run", resume=False) == 0
        printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        # Two xsub training performers (P001, P008): one is held out for val; P003 is test.
        assert printed["val"]["num_samples"] == 1 and printed["test"]["num_samples"] == 1
        saved = (tmp_path / "run" / "config.yaml").read_text()
        assert "ctrgcn" in saved and "clip_len: 8" in saved
        assert run_evaluate_cli(config, tmp_path / "run", overrides, split="test") == 0
        evaluated = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert evaluated["top1"] == printed["test"]["top1"]
    assert np.load(tmp_path / "run" / "scores_test.npy").shape == (1, 60)


def test_select_by_last_evaluates_the_final_epoch(tmp_path):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="TensorBoard logging is off")
        train(tiny_config(epochs=3, train={"select_by": "last", "amp": False}), tmp_path, progress=False,
              datasets=tiny_datasets())
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["selected_by"] == "last_epoch" and metrics["best_epoch"] == 3
    from actionfusion.pipeline.checkpoints import read_weights

    best, last = read_weights(tmp_path / "best.safetensors"), read_weights(tmp_path / "checkpoints" / "epoch_0003" / "model.safetensors")
    assert all(torch.equal(best[k], last[k]) for k in best)
