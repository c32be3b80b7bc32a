"""Optimizers and the closed-form per-iteration learning-rate schedule."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from actionfusion.pipeline.optim import build_optimizer, build_scheduler, lr_factor


def _model() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 3))


def _lrs(optimizer, scheduler, steps):
    seen = []
    for _ in range(steps):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return seen


def test_step_schedule_with_per_iteration_warmup():
    opt = build_optimizer(_model(), {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4})
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["nesterov"]
    sched = build_scheduler(opt, {"name": "step", "epochs": 6, "warmup_epochs": 2, "milestones": [3, 5], "gamma": 0.1}, 4)
    lrs = _lrs(opt, sched, 24)
    # warm-up over 8 iterations: 0.1 * (i + 1) / 8
    for i in range(8):
        assert lrs[i] == pytest.approx(0.1 * (i + 1) / 8)
    assert lrs[8:12] == [pytest.approx(0.1)] * 4  # epoch 2
    assert lrs[12:20] == [pytest.approx(0.01)] * 8  # epochs 3, 4 (milestone 3)
    assert lrs[20:24] == [pytest.approx(0.001)] * 4  # epoch 5 (milestone 5)


def test_cosine_reaches_min_lr_and_resume_jumps_exactly():
    opt = build_optimizer(_model(), {"name": "adamw", "lr": 1e-3, "weight_decay": 0.05, "betas": [0.9, 0.95]})
    cfg = {"name": "cosine", "epochs": 10, "warmup_epochs": 1, "min_lr": 1e-5}
    sched = build_scheduler(opt, cfg, 5)
    lrs = _lrs(opt, sched, 50)
    assert lrs[4] == pytest.approx(1e-3)  # end of warm-up
    assert lrs[5] == pytest.approx(1e-3)  # cosine starts at the peak
    midpoint = 5 + 45 // 2
    expected_mid = 1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + math.cos(math.pi * (midpoint - 5) / 45))
    assert lrs[midpoint] == pytest.approx(expected_mid)
    assert min(lrs[5:]) > 1e-5 and lr_factor(50, 5, name="cosine", epochs=10, warmup_epochs=1, min_lr_ratio=0.01) == pytest.approx(0.01)
    # A fresh scheduler set to step 37 gives the same lr as stepping 37 times.
    opt2 = build_optimizer(_model(), {"name": "adamw", "lr": 1e-3, "weight_decay": 0.05})
    sched2 = build_scheduler(opt2, cfg, 5)
    sched2.set_step(37)
    assert opt2.param_groups[0]["lr"] == pytest.approx(lrs[37])


def test_no_decay_on_norm_and_bias_option():
    model = _model()
    opt = build_optimizer(model, {"name": "sgd", "lr": 0.1, "weight_decay": 1e-4, "decay_norm_and_bias": False})
    decayed, exempt = opt.param_groups
    assert decayed["weight_decay"] == 1e-4 and exempt["weight_decay"] == 0.0
    assert {p.ndim for p in decayed["params"]} == {2}
    assert len(exempt["params"]) == 4  # two Linear biases, BN weight and bias
    with pytest.raises(ValueError, match="optim.name"):
        build_optimizer(model, {"name": "lamb", "lr": 0.1})
    with pytest.raises(ValueError, match="layer_decay"):
        build_optimizer(model, {"name": "adamw_layer_decay", "lr": 0.1})


def test_lr_mult_scales_the_learning_rate_of_a_module_through_the_schedule():
    model = _model()
    names = [n for n, _ in model.named_parameters()]
    prefix = names[0].rsplit(".", 1)[0]  # the first layer
    opt = build_optimizer(model, {"name": "sgd", "lr": 0.1, "momentum": 0.9, "lr_mult": {prefix: 0.1}})
    by_lr = {round(g["lr"], 6): sum(p.numel() for p in g["params"]) for g in opt.param_groups}
    first = sum(p.numel() for n, p in model.named_parameters() if n.startswith(prefix + "."))
    assert by_lr == {0.01: first, 0.1: sum(p.numel() for p in model.parameters()) - first}
    sched = build_scheduler(opt, {"name": "cosine", "epochs": 4, "warmup_epochs": 0}, 5)
    for _ in range(7):
        opt.step()
        sched.step()
    lrs = sorted(g["lr"] for g in opt.param_groups)
    assert lrs[0] == pytest.approx(0.1 * lrs[1])  # the ratio holds at every step
    with pytest.raises(ValueError, match="own no trainable parameter"):
        build_optimizer(model, {"name": "sgd", "lr": 0.1, "lr_mult": {"nothing": 0.5}})
