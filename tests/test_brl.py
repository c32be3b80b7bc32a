"""BRL (shared/specs/robust-longtail.md): the action-aware weights and their schedule, the rebalanced
partial mixup (per-pair alpha, joints at their own indices), the pair-weighted loss, the temporal
flip, and a run through the engine."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from actionfusion.modalities.skeleton.transforms import build_skeleton_pipeline, temporal_flip
from actionfusion.objectives import create_objective
from actionfusion.objectives.brl import pair_weighted_cross_entropy
from actionfusion.objectives.brl_rebalance import (NTU_LOWER_BODY, NTU_UPPER_BODY, action_aware_weights, pair_alpha,
                                                   rebalanced_partial_mixup)
from actionfusion.pipeline.trainer import train
from trainer_standins import NUM_CLASSES, tiny_config, tiny_datasets

pytestmark = pytest.mark.usefixtures("one_thread")


def test_body_split_covers_ntu25_once():
    assert sorted(NTU_UPPER_BODY + NTU_LOWER_BODY) == list(range(25))


def test_action_aware_weights_match_the_formula_and_sum_to_the_class_count():
    counts = torch.tensor([600, 215, 77, 27, 6])
    w = action_aware_weights(counts).double()
    n = counts.double()
    beta = 0.99 + 0.0099 * (n - 6) / (600 - 6)
    raw = (1 - beta) / (1 - beta ** n)
    assert torch.allclose(w, raw / raw.sum() * 5, rtol=1e-6)
    assert float(w.sum()) == pytest.approx(5.0, rel=1e-6)
    assert torch.all(w[1:] > w[:-1])  # rarer classes weigh more


def test_action_aware_weights_ignore_classes_without_samples_and_are_uniform_on_balanced_counts():
    w = action_aware_weights(torch.tensor([0, 30, 0, 3, 12]))
    assert w[0] == 0 and w[2] == 0 and float(w.sum()) == pytest.approx(3.0, rel=1e-6)
    assert torch.allclose(action_aware_weights(torch.tensor([7, 7, 7])), torch.ones(3))


def test_weights_are_uniform_before_the_step_epoch_then_balanced():
    objective = create_objective("brl", step_epoch=4)
    objective.observe_training_labels([0] * 50 + [1] * 10 + [2] * 2)
    for epoch in range(3):  # 0-based epochs 0..2 < step_epoch - 1
        objective.start_epoch(epoch)
        assert torch.equal(objective.class_weights, torch.ones(3))
    objective.start_epoch(3)
    assert float(objective.class_weights.sum()) == pytest.approx(3.0, rel=1e-6)
    assert torch.allclose(objective.class_weights, action_aware_weights(torch.tensor([50, 10, 2])))
    objective.start_epoch(10)  # stays balanced (the official code flips the list in place every epoch)
    assert torch.allclose(objective.class_weights, action_aware_weights(torch.tensor([50, 10, 2])))
    plain = create_objective("brl", step_epoch=4, reweight=False)
    plain.observe_training_labels([0] * 50 + [1] * 10 + [2] * 2)
    plain.start_epoch(10)
    assert torch.equal(plain.class_weights, torch.ones(3))


def test_pair_alpha_follows_the_count_ratio():
    n_i = torch.tensor([100.0, 10.0, 40.0, 30.0])
    n_j = torch.tensor([10.0, 100.0, 20.0, 10.0])
    # head with tail: learn the tail partner (0); tail with head: keep own (1); balanced: 0.64;
    # exactly 3x is not "more than 3x".
    assert pair_alpha(n_i, n_j, 0.64, 3.0).tolist() == pytest.approx([0.0, 1.0, 0.64, 0.64])


def _distinct_batch(b: int) -> torch.Tensor:
    """[B, 2, 4, 25, 3] where every value names its sample and joint."""
    x = torch.zeros(b, 2, 4, 25, 3)
    x += torch.arange(b).view(b, 1, 1, 1, 1) * 1000.0
    x += torch.arange(25).view(1, 1, 1, 25, 1)
    return x + torch.rand(b, 2, 4, 25, 3) * 0.1


def test_mixup_takes_the_lower_body_of_a_partner_at_the_same_joint_indices():
    torch.manual_seed(0)
    b = 32
    x = _distinct_batch(b)
    before = x.clone()
    labels = torch.arange(b) % 4
    counts = torch.tensor([200, 60, 20, 5])
    out = rebalanced_partial_mixup(x, labels, counts, num_mixed=8, lower=NTU_LOWER_BODY)
    assert int(out.mixed.sum()) == 8
    assert torch.equal(x, before)  # the input is not edited in place
    lower = list(NTU_LOWER_BODY)
    upper = list(NTU_UPPER_BODY)
    alphas = set()
    for i in range(b):
        if not out.mixed[i]:
            assert torch.equal(out.x[i], x[i]) and int(out.label_b[i]) == int(labels[i]) and float(out.alpha[i]) == 1.0
            continue
        assert torch.equal(out.x[i][..., upper, :], x[i][..., upper, :])  # own upper body, own indices
        j = int(out.x[i, 0, 0, lower[0], 0] // 1000)
        assert j != i
        assert torch.equal(out.x[i][..., lower, :], x[j][..., lower, :])  # partner's lower body, same indices
        assert int(out.label_b[i]) == int(labels[j])
        expected = pair_alpha(counts[labels[i]].float()[None], counts[labels[j]].float()[None], 0.64, 3.0)
        assert float(out.alpha[i]) == pytest.approx(float(expected[0]))
        alphas.add(round(float(out.alpha[i]), 2))
    assert len(alphas) >= 2  # alpha is per pair, not one per batch


def test_pair_weighted_loss_reduces_to_weighted_and_to_official_cross_entropy():
    torch.manual_seed(1)
    logits = torch.randn(6, 4)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    y2 = torch.tensor([1, 1, 3, 3, 2, 0])
    w = torch.tensor([0.5, 1.0, 1.5, 1.0])
    # No mixing (alpha 1): torch's class-weighted mean.
    ones = torch.ones(6)
    assert torch.allclose(pair_weighted_cross_entropy(logits, y, y2, ones, w), F.cross_entropy(logits, y, weight=w))
    # One alpha, uniform weights: the official alpha CE(y) + (1 - alpha) CE(y').
    a = torch.full((6,), 0.64)
    official = 0.64 * F.cross_entropy(logits, y) + 0.36 * F.cross_entropy(logits, y2)
    assert torch.allclose(pair_weighted_cross_entropy(logits, y, y2, a, torch.ones(4)), official)
    # Hand computation with per-pair alphas and weights.
    a = torch.tensor([1.0, 0.0, 0.64, 1.0, 0.64, 0.0])
    ce = lambda t: -torch.log_softmax(logits, 1)[torch.arange(6), t]  # noqa: E731
    num = (a * w[y] * ce(y) + (1 - a) * w[y2] * ce(y2)).sum()
    den = (a * w[y] + (1 - a) * w[y2]).sum()
    assert torch.allclose(pair_weighted_cross_entropy(logits, y, y2, a, w), num / den)


def test_temporal_flip_reverses_valid_frames_and_keeps_the_padding_last():
    x = np.zeros((1, 6, 25, 3), np.float32)
    x[0, :4] = np.arange(1, 5, dtype=np.float32)[:, None, None]
    flipped = temporal_flip(x)
    assert flipped[0, :, 0, 0].tolist() == [4, 3, 2, 1, 0, 0]
    assert np.array_equal(temporal_flip(flipped), x)
    pipe = build_skeleton_pipeline([{"name": "temporal_flip", "p": 1.0}], "ntu25", train=True)
    assert np.array_equal(pipe(x, np.random.default_rng(0)), flipped)
    assert np.array_equal(build_skeleton_pipeline([{"name": "temporal_flip", "p": 1.0}], "ntu25", train=False)(
        x, np.random.default_rng(0)), x)


def test_brl_trains_through_the_engine_with_the_mixed_share_it_asks_for(tmp_path):
    cfg = tiny_config(epochs=3)
    data = cfg.to_dict()
    data["objective"] = {"name": "brl", "kwargs": {"step_epoch": 2, "mix_fraction": 0.25}}
    cfg = type(cfg).from_dict(data)
    datasets = tiny_datasets()
    results = train(cfg, tmp_path, progress=False, datasets=datasets)
    history = json.loads((tmp_path / "history.json").read_text())
    assert len(history) == 3 and all(np.isfinite(h["train_loss"]) for h in history)
    assert history[0]["train_mixed"] == pytest.approx(0.25)  # 2 of each batch of 8
    assert 0.0 <= results["top1"] <= 1.0 and NUM_CLASSES == 5


def test_synthetic_brl_recipe_differs_from_its_cross_entropy_baseline_only_in_the_objective():
    from pathlib import Path

    from actionfusion.pipeline.config import load_config

    configs = Path(__file__).resolve().parents[1] / "configs"
    brl, ce = (load_config(configs / "synthetic" / f"{name}_lt.yaml").to_dict() for name in ("brl", "ce"))
    assert brl["objective"]["name"] == "brl" and ce["objective"]["name"] == "cross_entropy"
    for cfg in (brl, ce):
        cfg.pop("objective"), cfg.pop("experiment")
    assert brl == ce
    for benchmark in ("ntu60_xsub", "ntu60_xview", "ntu120_xsub", "ntu120_xset"):
        recipe = load_config(configs / benchmark / "brl.yaml")
        assert recipe.data.benchmark == f"{benchmark}_lt100" and recipe.model.name == "stgcnpp"
        # The official 24 epochs over a 5x repeated set, weights from epoch 19: 120 passes, switch at 95.
        assert recipe.schedule.epochs == 120 and recipe.objective.kwargs["step_epoch"] - 1 == 95


def test_six_stream_fusion_through_the_cli_weighs_j_b_k_twice_jm_bm_km_once(tmp_path, capsys):
    from actionfusion.pipeline.cli import main
    from actionfusion.pipeline.metrics import write_evaluation_outputs

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=12)
    files, arrays = [], []
    for stream in ("j", "b", "k", "jm", "bm", "km"):
        scores = rng.random((12, 4)).astype(np.float32)
        write_evaluation_outputs(tmp_path / stream, scores, labels, [f"s{i}" for i in range(12)], "test")
        files.append(str(tmp_path / stream / "scores_test.npy"))
        arrays.append(scores)
    assert main(["fuse", *files, "--weights", "2,2,2,1,1,1", "--out", str(tmp_path / "fused")]) == 0
    result = json.loads(capsys.readouterr().out)
    expected = 2 * (arrays[0] + arrays[1] + arrays[2]) + arrays[3] + arrays[4] + arrays[5]
    assert result["weights"] == [2.0, 2.0, 2.0, 1.0, 1.0, 1.0]
    assert result["top1"] == pytest.approx(float((expected.argmax(1) == labels).mean()))
    assert np.allclose(np.load(tmp_path / "fused" / "fused_scores.npy"), expected, rtol=1e-6)
