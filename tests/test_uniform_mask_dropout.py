"""UniformMaskDropout: nn.Dropout's distribution and scaling from one uniform draw."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from actionfusion.modalities.dropout import UniformMaskDropout


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_keeps_each_activation_with_probability_one_minus_p_and_rescales(p: float) -> None:
    torch.manual_seed(0)
    drop = UniformMaskDropout(p).train()
    x = torch.full((400_000,), 2.0)
    y = drop(x)
    kept = y != 0
    # binomial standard error of the kept fraction is < 8e-4 here; 5e-3 is > 6 of them
    assert abs(kept.float().mean().item() - (1 - p)) < 5e-3
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 2.0 / (1 - p)))
    # E[y] = x, as nn.Dropout
    assert abs(y.mean().item() - 2.0) < 0.05


def test_gradient_is_the_same_mask_and_scale() -> None:
    torch.manual_seed(1)
    drop = UniformMaskDropout(0.5).train()
    x = torch.randn(64, 32, requires_grad=True)
    y = drop(x)
    y.sum().backward()
    torch.testing.assert_close(x.grad, (y.detach() != 0).float() * 2.0)


def test_identity_in_eval_mode_and_at_p_zero_and_zero_at_p_one() -> None:
    x = torch.randn(5, 7)
    assert UniformMaskDropout(0.5).eval()(x) is x
    assert UniformMaskDropout(0.0).train()(x) is x
    assert torch.count_nonzero(UniformMaskDropout(1.0).train()(x)) == 0
    # it is an nn.Dropout: code that switches dropout off through p sees it
    assert isinstance(UniformMaskDropout(0.5), nn.Dropout)


def test_masks_differ_between_calls_and_follow_the_seed() -> None:
    drop = UniformMaskDropout(0.5).train()
    x = torch.ones(1000)
    torch.manual_seed(3)
    first, second = drop(x), drop(x)
    assert not torch.equal(first, second)
    torch.manual_seed(3)
    assert torch.equal(drop(x), first)
