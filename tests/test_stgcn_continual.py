"""Continual ST-GCN: frame-by-frame logits equal the padding-free windowed forward on every aligned window."""

from __future__ import annotations

from typing import List, Tuple

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from actionfusion.modalities.skeleton.stgcn import STGCN
from actionfusion.modalities.skeleton.stgcn_continual import (
    ContinualSTGCN,
    stgcn_receptive_field,
    stgcn_total_stride,
    stgcn_valid_features,
    stgcn_valid_forward,
    stgcn_valid_length,
)

FRAMES = 200  # the receptive field is 153 frames: a stream long enough for a dozen aligned windows
WINDOW = 169  # T' = 5 final positions


def randomised_stgcn(layout: str = "ntu25", seed: int = 0) -> STGCN:
    """A small ST-GCN in eval mode whose weights, edge masks and BN statistics are all non-trivial.

    The reference init (N(0, 0.02) convolutions) leaves the logits almost input-independent;
    fan-in-scaled weights and non-zero biases keep every layer's input dependence visible.
    """
    torch.manual_seed(seed)
    model = STGCN(num_classes=5, hidden_channels=4, hidden_dim=8, layout=layout)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("edge_importance"):
                p.uniform_(0.5, 1.5)
            elif p.ndim > 1:
                p.normal_(0.0, (2.0 / p[0].numel()) ** 0.5)
            elif name.endswith("bias"):
                p.normal_(0.0, 0.1)
            else:
                p.uniform_(0.8, 1.2)
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def stream(model: STGCN, x: torch.Tensor, window: int) -> List[Tuple[int, torch.Tensor]]:
    """(frames pushed, logits) for every step of ``x`` [N, M, T, V, C] that returned logits."""
    continual = ContinualSTGCN(model, window)
    out = []
    for n in range(1, x.shape[2] + 1):
        logits = continual.step(x[:, :, n - 1])
        if logits is not None:
            out.append((n, logits))
    return out


def test_receptive_field_and_lengths() -> None:
    model = randomised_stgcn()
    assert stgcn_receptive_field(model) == 153
    assert stgcn_total_stride(model) == 4
    assert stgcn_valid_length(model, 152) == 0
    assert stgcn_valid_length(model, 153) == 1
    assert stgcn_valid_length(model, 156) == 1
    assert stgcn_valid_length(model, 157) == 2
    assert stgcn_valid_length(model, 300) == (300 - 153) // 4 + 1 == 37
    for t in (153, 160, 200, 233):
        features = stgcn_valid_features(model, torch.randn(1, 1, t, 25, 3))
        assert features.sequence.shape[1] == stgcn_valid_length(model, t)
    with pytest.raises(ValueError, match="receptive field"):
        stgcn_valid_forward(model, torch.randn(1, 1, 64, 25, 3))
    with pytest.raises(ValueError, match="receptive field"):
        ContinualSTGCN(model, 64)


@pytest.mark.parametrize("layout, joints", [("ntu25", 25), ("coco17", 17)])
def test_continual_equals_valid_forward_on_every_aligned_window(layout: str, joints: int) -> None:
    torch.set_num_threads(1)
    model = randomised_stgcn(layout)
    x = torch.randn(2, 2, FRAMES, joints, 3)
    got = stream(model, x, WINDOW)
    assert [n for n, _ in got] == list(range(WINDOW, FRAMES + 1, 4))
    previous = None
    for n, logits in got:
        expected = stgcn_valid_forward(model, x[:, :, n - WINDOW:n])
        torch.testing.assert_close(logits, expected, atol=1e-5, rtol=0)
        if previous is not None:  # the windows really differ, so a stale or shifted state would show
            assert (expected - previous).abs().max() > 1e-3
        previous = expected


def test_frames_without_time_axis_and_minimum_window() -> None:
    model = randomised_stgcn()
    x = torch.randn(1, 2, 160, 25, 3)
    continual = ContinualSTGCN(model, 153)
    got = [(n, continual.step(x[:, :, n - 1])) for n in range(1, 161)]  # [N, M, V, C] frames
    returned = [(n, logits) for n, logits in got if logits is not None]
    assert [n for n, _ in returned] == [153, 157]
    for n, logits in returned:
        torch.testing.assert_close(logits, stgcn_valid_forward(model, x[:, :, n - 153:n]), atol=1e-5, rtol=0)


def test_valid_features_are_the_padded_models_interior_positions() -> None:
    """Without padding, the features equal the padded model's where its padding cannot reach.

    An independent check of :func:`stgcn_valid_features` (and of its residual taken at the
    kernel's centre): valid position k covers frames 4k .. 4k + 152, the padded model's position
    q is centred on frame 4q, so k matches q = k + 76 / 4 = k + 19 when 4q + 76 < T.
    """
    model = randomised_stgcn()
    x = torch.randn(2, 2, FRAMES, 25, 3)
    valid = stgcn_valid_features(model, x).sequence  # [N, 12, D]
    with torch.no_grad():
        padded = model.forward_features(x).sequence  # [N, 50, D]
    offset = (stgcn_receptive_field(model) - 1) // 2 // stgcn_total_stride(model)
    assert offset == 19 and valid.shape[1] == 12 and padded.shape[1] == 50
    torch.testing.assert_close(valid, padded[:, offset:offset + valid.shape[1]], atol=1e-5, rtol=1e-5)
    # the border positions do feel the padding: the full padded average is another number
    assert (padded[:, :offset] - padded[:, offset:2 * offset]).abs().max() > 1e-3


def test_valid_forward_differs_from_the_padded_forward() -> None:
    model = randomised_stgcn()
    x = torch.randn(2, 2, WINDOW, 25, 3)
    with torch.no_grad():
        padded = model(x)
    valid = stgcn_valid_forward(model, x)
    assert valid.shape == padded.shape == (2, 5)
    assert (valid - padded).abs().max() > 1e-2


def test_reset_restarts_cleanly() -> None:
    model = randomised_stgcn()
    a = torch.randn(1, 2, 190, 25, 3)
    b = torch.randn(1, 2, FRAMES, 25, 3)
    continual = ContinualSTGCN(model, WINDOW)
    for n in range(190):  # a stream ended off the 4-frame grid, with buffers and positions full
        continual.step(a[:, :, n])
    continual.reset()
    got = [(n, continual.step(b[:, :, n - 1])) for n in range(1, FRAMES + 1)]
    returned = [(n, logits) for n, logits in got if logits is not None]
    fresh = stream(model, b, WINDOW)
    assert [n for n, _ in returned] == [n for n, _ in fresh] == list(range(WINDOW, FRAMES + 1, 4))
    for (n, logits), (_, expected) in zip(returned, fresh):
        torch.testing.assert_close(logits, expected, atol=0, rtol=0)
        torch.testing.assert_close(logits, stgcn_valid_forward(model, b[:, :, n - WINDOW:n]), atol=1e-5, rtol=0)


def test_person_count_change_needs_reset_and_eval_mode_is_required() -> None:
    model = randomised_stgcn()
    continual = ContinualSTGCN(model, WINDOW)
    continual.step(torch.randn(1, 2, 25, 3))
    with pytest.raises(ValueError, match="M changed"):
        continual.step(torch.randn(1, 1, 25, 3))
    continual.reset()
    continual.step(torch.randn(1, 1, 25, 3))
    with pytest.raises(ValueError, match="eval mode"):
        ContinualSTGCN(model.train(), WINDOW)


def test_continual_work_per_classification_is_a_fraction_of_a_window() -> None:
    """Executed conv / matmul FLOPs, counted by torch: four continual steps (one classification)
    against one padded forward of a 64-frame window and one valid forward of the same T."""
    model = randomised_stgcn()
    x = torch.randn(1, 2, 300, 25, 3)
    window = 233  # T' = 21
    continual = ContinualSTGCN(model, window)
    for n in range(window):
        continual.step(x[:, :, n])
    with FlopCounterMode(display=False) as counter:
        for n in range(window, window + 4):  # one full period of the stride-2 layers
            continual.step(x[:, :, n])
    per_classification = counter.get_total_flops()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x[:, :, :64])
    padded_64 = counter.get_total_flops()
    with FlopCounterMode(display=False) as counter:
        stgcn_valid_forward(model, x[:, :, :window])
    valid_window = counter.get_total_flops()
    assert per_classification > 0
    print(f"continual 4 steps / padded T=64: {per_classification / padded_64:.3f}; "
          f"/ valid T={window}: {per_classification / valid_window:.3f}")
    assert per_classification < padded_64 / 5
    assert per_classification < valid_window / 20
