"""The one engine: an objective registered here trains through it, pretraining resumes bit-exactly,
selection by a named metric, views, and pretrained-encoder loading."""

from __future__ import annotations

import json
import shutil
from typing import Any, Mapping

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from actionfusion.objectives import Objective, ObjectiveOutput, create_objective, list_objectives, register_objective
from actionfusion.pipeline.config import ConfigError
from actionfusion.pipeline.pretrain import pretrain
from actionfusion.pipeline.trainer import build_model, load_pretrained, train
from trainer_standins import NUM_CLASSES, tiny_config, tiny_datasets

pytestmark = pytest.mark.usefixtures("one_thread")


class _PatternReconstruction(Objective):
    """Self-supervised test objective: a linear decoder (its own parameters) predicts the clip's mean
    pose from the pooled feature of a noised view; MSE. Registered from this test module only."""

    needs_labels = False

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.decoder = nn.Linear(width, 25 * 3)
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))

    def forward(self, model: nn.Module, batch: Mapping[str, Any]) -> ObjectiveOutput:
        x = self.inputs(model, batch)
        target = x.mean(dim=(1, 2)).flatten(1)  # [B, V*C]
        noised = x + 0.5 * torch.randn_like(x)  # uses the engine's per-epoch torch stream
        prediction = self.decoder(model.forward_features(noised).pooled)
        loss = (prediction - target).pow(2).mean()
        if self.training:
            self.steps += 1
        return ObjectiveOutput(loss=loss, losses={"mse": loss.detach()}, batch_size=int(x.shape[0]))


try:
    register_objective("_test_pattern_reconstruction")(_PatternReconstruction)
except ValueError:  # imported twice under another module name
    pass


def _pretrain_config(epochs: int = 3, select_by: str = "val/loss"):
    cfg = tiny_config(epochs=epochs)
    data = cfg.to_dict()
    data["objective"] = {"name": "_test_pattern_reconstruction", "kwargs": {}}
    data["model"]["num_classes"] = 0
    data["model"]["kwargs"] = {"aux_weight": 0.0, "drop_rate": 0.0}
    data["optim"] = {**data["optim"], "name": "adamw", "lr": 0.01}
    data["train"] = {**data["train"], "amp": False, "select_by": select_by, "knn_every": 1}
    return type(cfg).from_dict(data)


def test_objective_registered_from_a_test_module_trains_through_the_engine(tmp_path):
    assert "_test_pattern_reconstruction" in list_objectives() and "cross_entropy" in list_objectives()
    results = pretrain(_pretrain_config(epochs=4), tmp_path, progress=False, datasets=tiny_datasets())
    history = json.loads((tmp_path / "history.json").read_text())
    assert history[-1]["train_mse"] < 0.9 * history[0]["train_mse"]
    assert {"val_loss", "val_knn_top1"} <= set(history[-1])
    # The objective's own state is checkpointed beside the model's.
    objective_state = load_file(tmp_path / "checkpoints" / "epoch_0004" / "objective.safetensors")
    assert int(objective_state["steps"]) == 4 * 5  # 40 samples / batch 8 = 5 steps an epoch
    encoder = load_file(tmp_path / "encoder.safetensors")
    assert not any(key.startswith("head.") for key in encoder)  # num_classes=0: no head
    assert set(results["test_knn_top1"]) == {"1", "2", "5", "10"}
    assert results["selected_by"] == "val_loss"
    assert (tmp_path / "embedding_test.png").stat().st_size > 1000
    assert (tmp_path / "log.txt").read_text().count("epoch ") >= 4


def test_pretraining_resume_is_bit_identical(tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    cfg = _pretrain_config(epochs=3)
    pretrain(cfg, straight, progress=False, datasets=tiny_datasets())
    pretrain(cfg, resumed, progress=False, datasets=tiny_datasets())
    # As if killed after epoch 2's checkpoint: drop what epoch 3 wrote, then resume.
    shutil.rmtree(resumed / "checkpoints" / "epoch_0003")
    pretrain(cfg, resumed, resume=True, progress=False, datasets=tiny_datasets())
    for name in ("model.safetensors", "objective.safetensors"):
        a = load_file(straight / "checkpoints" / "epoch_0003" / name)
        b = load_file(resumed / "checkpoints" / "epoch_0003" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert json.loads((straight / "history.json").read_text()) == json.loads((resumed / "history.json").read_text())


def test_selection_metric_must_be_computed(tmp_path):
    cfg = _pretrain_config(epochs=1, select_by="val/top1")
    with pytest.raises(ConfigError, match="val/top1"):
        pretrain(cfg, tmp_path, progress=False, datasets=tiny_datasets())
    with pytest.raises(ConfigError, match="pretrain"):
        train(cfg, tmp_path / "t", progress=False, datasets=tiny_datasets())


def test_supervised_select_by_val_loss_picks_the_lowest_loss_epoch(tmp_path):
    results = train(tiny_config(epochs=3, train={"select_by": "val/loss", "amp": False}), tmp_path, progress=False,
                    datasets=tiny_datasets())
    history = json.loads((tmp_path / "history.json").read_text())
    best = min(history, key=lambda record: record["val_loss"])
    assert results["best_epoch"] == best["epoch"] and results["selected_by"] == "val_loss"


def test_pretrained_encoder_loads_into_a_model_with_a_head(tmp_path):
    pretrain(_pretrain_config(epochs=1), tmp_path / "pre", progress=False, datasets=tiny_datasets())
    weights = tmp_path / "pre" / "encoder.safetensors"
    cfg = tiny_config(epochs=1, model={"pretrained": str(weights)})
    model = build_model(cfg)
    head_before = model.head.weight.detach().clone()
    left = load_pretrained(model, weights, cfg)
    assert left == ["head.bias", "head.weight"] and torch.equal(model.head.weight, head_before)
    encoder = load_file(weights)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in encoder.items())
    wrong = tmp_path / "wrong.safetensors"
    from safetensors.torch import save_file

    save_file({**encoder, "embed.weight": torch.zeros(3, 3)}, str(wrong))
    with pytest.raises(ConfigError, match="shapes differ"):
        load_pretrained(build_model(cfg), wrong, cfg)
    # Through the trainer (model.pretrained): it trains and evaluates.
    assert 0.0 <= train(cfg, tmp_path / "fine", progress=False, datasets=tiny_datasets())["top1"] <= 1.0


def test_views_draw_independent_augmentations(tmp_path):
    from actionfusion.datasets.clip_dataset import SkeletonClipDataset

    class _Store:
        path = str(tmp_path)

        def label(self, name):
            return 0

        def load_skeleton(self, name):
            return np.ones((1, 8, 25, 3), dtype=np.float32)

    def jitter(x, rng):
        return x + rng.normal(size=x.shape).astype(np.float32)

    dataset = SkeletonClipDataset(_Store(), ["a", "b"], jitter, clip_len=8, max_persons=1,
                                  view_transforms=[jitter, jitter, jitter])
    item = dataset[0]
    views = [v["skeleton"] for v in item["views"]]
    assert len(views) == 3 and torch.equal(item["skeleton"], views[0])
    assert not torch.equal(views[0], views[1]) and not torch.equal(views[1], views[2])
    again = dataset[0]
    assert all(torch.equal(a["skeleton"], b["skeleton"]) for a, b in zip(item["views"], again["views"]))
    dataset.set_epoch(1)
    assert not torch.equal(dataset[0]["views"][1]["skeleton"], views[1])


def test_cross_entropy_objective_matches_plain_cross_entropy():
    cfg = tiny_config(epochs=1)
    model = build_model(cfg).eval()
    objective = create_objective("cross_entropy", label_smoothing=0.0)
    batch = tiny_datasets()["train"]
    items = [batch[i] for i in range(6)]
    x = torch.stack([it["skeleton"] for it in items])
    y = torch.stack([it["label"] for it in items])
    out = objective(model, {"skeleton": x, "label": y})
    logits = model(x)
    expected = nn.functional.cross_entropy(logits, y) + model.forward_features(x).aux["loss_feature_l2"]
    assert torch.allclose(out.loss, expected)
    assert float(out.metrics["top1"]) == pytest.approx(float((logits.argmax(1) == y).float().mean()))
    assert out.batch_size == 6 and NUM_CLASSES == logits.shape[1]


def test_mamp_pretraining_resume_is_bit_identical(tmp_path):
    """MAMP's masks come from the engine's per-epoch torch stream: a resumed run redraws them exactly."""
    data = _pretrain_config(epochs=2, select_by="last").to_dict()
    data["model"] = {"name": "mamp", "num_classes": 0,
                     "kwargs": {"num_frames": 8, "embed_dim": 16, "depth": 1, "num_heads": 2}}
    data["objective"] = {"name": "mamp", "kwargs": {"num_frames": 8, "encoder_dim": 16, "decoder_dim": 16,
                                                    "decoder_depth": 1, "decoder_heads": 2, "mask_ratio": 0.5}}
    data["train"]["knn_every"] = 0
    cfg = type(_pretrain_config()).from_dict(data)
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    pretrain(cfg, straight, progress=False, datasets=tiny_datasets())
    pretrain(cfg, resumed, progress=False, datasets=tiny_datasets())
    shutil.rmtree(resumed / "checkpoints" / "epoch_0002")
    pretrain(cfg, resumed, resume=True, progress=False, datasets=tiny_datasets())
    for name in ("encoder.safetensors", "objective.safetensors"):
        a, b = load_file(straight / name), load_file(resumed / name)
        assert any(k.startswith("decoder.") for k in a) or name == "encoder.safetensors"
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name


def test_compiled_training_step_gives_the_eager_weights(tmp_path):
    """train.compile runs the step through torch.compile; the trained weights equal the eager run's
    within 1e-5 relative (the same batches, seeds and optimizer). Dropout is off: compiled code
    draws its masks from inductor's own random stream, so with dropout the runs differ by design."""
    results = {}
    for compiled in (False, True):
        cfg = tiny_config(epochs=2, train={"compile": compiled},
                          model={"kwargs": {"aux_weight": 0.01, "drop_rate": 0.0}})
        work = tmp_path / ("compiled" if compiled else "eager")
        train(cfg, work, progress=False, datasets=tiny_datasets(train_size=16))
        results[compiled] = load_file(work / "checkpoints" / "epoch_0002" / "model.safetensors")
    for key, eager in results[False].items():
        torch.testing.assert_close(results[True][key], eager, rtol=1e-5, atol=1e-6, msg=key)
