"""Depth TSM encoder: output shapes, temporal receptive field of the shift, timm frame encoders."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from actionfusion.modalities.depth.depth_encoder import DepthTSM, depth_tsm
from actionfusion.modalities.features import EncoderOutput
from actionfusion.registry import get_entry

torch.set_num_threads(1)


def _one_block_model(fold_div: int | None, blocks: int = 1) -> DepthTSM:
    """A stem and ``blocks`` shifted blocks, BN scales set to 1 so every branch contributes; eval mode."""
    torch.manual_seed(0)
    model = DepthTSM(num_classes=3, widths=(8,), depths=(blocks,), fold_div=fold_div, stem_stride=1,
                     temporal_head="mean")
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
    return model.eval()


def test_shapes_and_fields() -> None:
    model = depth_tsm(num_classes=5, temporal_head="mean")
    assert model.input_keys == ("depth",)
    x = torch.randn(2, 1, 6, 32, 40)
    feats = model.forward_features(x)
    assert isinstance(feats, EncoderOutput)
    d = model.num_features
    assert feats.sequence.shape == (2, 6, d) and feats.pooled.shape == (2, d)
    assert feats.spatial.shape[:3] == (2, d, 6) and feats.spatial.dim() == 5
    torch.testing.assert_close(feats.sequence, feats.spatial.mean(dim=(-2, -1)).transpose(1, 2))
    torch.testing.assert_close(feats.pooled, feats.sequence.mean(dim=1))
    assert model(x).shape == (2, 5)
    assert get_entry("model", "depth_tsm").modality == "depth"


def test_shift_mixes_exactly_the_neighbouring_frames() -> None:
    model = _one_block_model(fold_div=8)
    x = torch.randn(1, 1, 8, 12, 12)
    t = 3
    with torch.no_grad():
        base = model.forward_features(x).sequence[0, t]

        def seq_t_after_changing(frame: int) -> torch.Tensor:
            y = x.clone()
            y[:, :, frame] = torch.randn_like(y[:, :, frame])
            return model.forward_features(y).sequence[0, t]

        assert not torch.allclose(seq_t_after_changing(t + 1), base)  # t + 1 shifts into t
        assert not torch.allclose(seq_t_after_changing(t - 1), base)  # so does t - 1
        torch.testing.assert_close(seq_t_after_changing(t + 3), base, rtol=0, atol=0)  # out of reach
        torch.testing.assert_close(seq_t_after_changing(t - 2), base, rtol=0, atol=0)


def test_two_blocks_reach_two_frames_and_no_shift_reaches_none() -> None:
    x = torch.randn(1, 1, 8, 12, 12)
    y = x.clone()
    y[:, :, 5] += 1.0  # change frame t + 2 for t = 3
    with torch.no_grad():
        two = _one_block_model(fold_div=8, blocks=2)
        assert not torch.allclose(two.forward_features(y).sequence[0, 3], two.forward_features(x).sequence[0, 3])
        flat = _one_block_model(fold_div=None, blocks=2)
        z = x.clone()
        z[:, :, 4] += 1.0  # the very next frame: without the shift nothing crosses frames
        torch.testing.assert_close(
            flat.forward_features(z).sequence[0, 3], flat.forward_features(x).sequence[0, 3], rtol=0, atol=0
        )


def test_trains_on_a_temporal_order_task() -> None:
    """Class = whether a bright blob moves left-to-right or right-to-left: needs the shift."""
    torch.manual_seed(0)
    n, frames, size = 32, 6, 12
    labels = torch.arange(n) % 2
    x = torch.zeros(n, 1, frames, size, size)
    for i in range(n):
        cols = range(1, 1 + 2 * frames, 2) if labels[i] == 0 else range(2 * frames - 1, 0, -2)
        for t, c in enumerate(cols):
            x[i, 0, t, 4:8, c - 1 : c + 1] = 1.0
    flat = DepthTSM(num_classes=2, widths=(8, 16), depths=(1, 1), stem_stride=1, fold_div=None,
                    temporal_head="mean").eval()
    with torch.no_grad():  # without the shift both classes pool the same set of frames: unlearnable
        pooled = flat.forward_features(x[:2]).pooled
    torch.testing.assert_close(pooled[0], pooled[1])
    model = DepthTSM(num_classes=2, widths=(8, 16), depths=(1, 1), stem_stride=1, temporal_head="mean")
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(40):
        loss = nn.functional.cross_entropy(model(x), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(x).argmax(1) == labels).float().mean().item()
    assert acc == 1.0


def test_timm_backbone_with_one_input_channel() -> None:
    pytest.importorskip("timm")
    model = DepthTSM(num_classes=4, backbone="resnet10t")
    feats = model.forward_features(torch.randn(1, 1, 3, 32, 32))
    assert feats.sequence.shape == (1, 3, model.num_features) and feats.spatial.shape[:3] == (1, model.num_features, 3)
    assert model.backbone.model.conv1[0].in_channels == 1


def test_rejects_wrong_layout() -> None:
    with pytest.raises(ValueError, match=r"\[N, 1, T, H, W\]"):
        depth_tsm(num_classes=2).forward_features(torch.randn(2, 6, 1, 16, 16))


def test_transformer_head_tells_a_clip_from_its_reverse() -> None:
    """With the default temporal head the pooled feature depends on frame order even without the
    shift; the mean head cannot tell a clip from its reverse."""
    torch.manual_seed(0)
    x = torch.randn(1, 1, 6, 16, 16)
    reverse = x.flip(2)
    for head, same in (("mean", True), ("transformer", False)):
        model = DepthTSM(num_classes=2, widths=(8,), depths=(1,), fold_div=None, temporal_head=head).eval()
        with torch.no_grad():
            a, b = model.forward_features(x).pooled, model.forward_features(reverse).pooled
        assert torch.allclose(a, b, atol=1e-6) == same, head


def test_max_spatial_pool_keeps_a_small_object_that_the_mean_dilutes() -> None:
    """spatial_pool="max": each frame's vector is the strongest response anywhere in its map, so a
    patch a few pixels wide moves it as much in a large frame as in a small one; the mean divides by the area."""
    torch.manual_seed(0)
    model = DepthTSM(num_classes=0, in_channels=3, temporal_head="mean", spatial_pool="max").eval()
    for block in model.backbone.blocks:  # as after training: the residual branches are not zero
        nn.init.ones_(block.bn2.weight)
    mean_model = DepthTSM(num_classes=0, in_channels=3, temporal_head="mean").eval()
    mean_model.load_state_dict(model.state_dict())
    with torch.no_grad():
        feats = model.forward_features(torch.randn(2, 3, 4, 32, 32))
        torch.testing.assert_close(feats.sequence, feats.spatial.amax(dim=(-2, -1)).transpose(1, 2))
        changes = {}
        for side in (32, 96):
            clip = 0.1 * torch.randn(1, 3, 2, side, side, generator=torch.Generator().manual_seed(side))
            marked = clip.clone()
            marked[:, :, :, 10:14, 10:14] = 4.0  # the same 4 x 4 patch in a small and a large frame
            changes[side] = [float((m.forward_features(marked).pooled - m.forward_features(clip).pooled).abs().sum())
                             for m in (model, mean_model)]
    (max_small, mean_small), (max_large, mean_large) = changes[32], changes[96]
    assert max_large == pytest.approx(max_small, rel=0.05)
    assert mean_large < 0.3 * mean_small
    with pytest.raises(ValueError, match="spatial_pool"):
        DepthTSM(spatial_pool="sum")
