"""The random-initialisation baseline's BatchNorm statistics are the training data's."""

from __future__ import annotations

import torch
from torch import nn

from actionfusion.pipeline.protocols.bn_calibration import calibrate_batchnorm
from actionfusion.registry import create_model


def test_calibration_gives_the_exact_mean_and_variance_of_all_batches() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Dropout(0.9)).eval()
    batches = [torch.randn(8, 3) * 5 + 2 for _ in range(4)]
    weight = model[0].weight.clone()
    seen = calibrate_batchnorm(model, batches, lambda m, x: m(x))
    assert seen == 4 and not model.training and torch.equal(model[0].weight, weight)
    hidden = torch.cat([model[0](x) for x in batches]).detach()
    assert torch.allclose(model[1].running_mean, hidden.mean(0), atol=1e-5)
    per_batch_var = torch.stack([model[0](x).detach().var(0, unbiased=True) for x in batches]).mean(0)
    assert torch.allclose(model[1].running_var, per_batch_var, atol=1e-4)   # the average of batch variances
    assert model[1].momentum == 0.1                                          # restored


def test_a_random_stgcn_clr_gives_usable_features_only_after_calibration() -> None:
    torch.manual_seed(0)
    model = create_model("stgcn_clr", num_classes=0).eval()
    clips = [torch.randn(4, 2, 16, 25, 3) for _ in range(3)]
    with torch.no_grad():
        before = model.forward_features(clips[0]).pooled
    calibrate_batchnorm(model, clips, lambda m, x: m.forward_features(x))
    with torch.no_grad():
        after = model.forward_features(clips[0]).pooled
    # N(0, 0.02) weights shrink the activations block after block under the initial statistics.
    assert float(before.abs().max()) < 1e-4 < float(after.abs().mean())
