"""Temporal shift: exactly 2 * C // fold_div channels move one frame, zero-padded at the ends."""

import pytest
import torch

from actionfusion.modalities.temporal_shift import TemporalShift, temporal_shift


@pytest.mark.parametrize("fold_div, moved_fraction", [(8, 0.25), (4, 0.5)])
def test_shift_moves_exactly_the_specified_fraction(fold_div: int, moved_fraction: float) -> None:
    n, c, t = 2, 32, 5
    # every value names its (channel, frame) so a move is visible
    x = (torch.arange(c).view(1, c, 1, 1, 1) * 100 + torch.arange(t).view(1, 1, t, 1, 1) + 1).float()
    x = x.expand(n, c, t, 3, 4).contiguous()
    y = temporal_shift(x, fold_div)
    fold = c // fold_div
    changed = (y != x).flatten(2).any(-1).any(0)  # [C]: channel differs somewhere
    assert changed.float().mean().item() == pytest.approx(moved_fraction)
    assert torch.equal(y[:, :fold, :-1], x[:, :fold, 1:])          # takes frame t + 1
    assert torch.equal(y[:, fold:2 * fold, 1:], x[:, fold:2 * fold, :-1])  # takes frame t - 1
    assert torch.all(y[:, :fold, -1] == 0) and torch.all(y[:, fold:2 * fold, 0] == 0)  # zero padding
    assert torch.equal(y[:, 2 * fold:], x[:, 2 * fold:])
    assert torch.equal(x[:, :, :, 0, 0], x[:, :, :, 1, 1])  # input untouched


def test_shift_is_its_own_adjoint_for_gradients() -> None:
    x = torch.randn(1, 8, 4, 2, 2, requires_grad=True)
    g = torch.randn(1, 8, 4, 2, 2)
    (temporal_shift(x, 4) * g).sum().backward()
    # <shift(x), g> = <x, shift^T(g)>: the first fold's gradient comes from frame t - 1 of g
    assert torch.equal(x.grad[:, :2, 1:], g[:, :2, :-1]) and torch.all(x.grad[:, :2, 0] == 0)


def test_module_and_bad_arguments() -> None:
    module = TemporalShift(fold_div=8, inner=torch.nn.Identity())
    x = torch.randn(2, 16, 3, 2, 2)
    assert torch.equal(module(x), temporal_shift(x, 8))
    with pytest.raises(ValueError):
        temporal_shift(x, 1)
    with pytest.raises(ValueError):
        temporal_shift(torch.randn(3, 4), 4)
