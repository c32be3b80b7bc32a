"""EPAM-Net: spatial-temporal attention, two X-ShiftNet streams, summed heads, stage-1 -> stage-2 loading."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from actionfusion.fusion.epam_net import EPAMNet, epam_net
from actionfusion.fusion.spatial_temporal_attention import SpatialTemporalAttention, temporal_step
from actionfusion.modalities.rgb.xshiftnet import xshiftnet_pose, xshiftnet_rgb

torch.set_num_threads(1)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def model() -> EPAMNet:
    """A fresh EPAM-Net whose BN statistics were estimated on data (at init they make features ~0)."""
    torch.manual_seed(0)
    net = epam_net(num_classes=7)
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = None  # cumulative average
    with torch.no_grad():
        for seed in range(2):
            net.train()(small_batch(4, seed=10 + seed))
    return net.eval()


def small_batch(n: int = 2, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"rgb": torch.randn(n, 3, 8, 64, 64, generator=g),
            "pose_heatmap": torch.rand(n, 17, 24, 16, 16, generator=g)}


def test_parameter_counts_match_official():
    m60, m120 = EPAMNet(num_classes=60), EPAMNet(num_classes=120)
    assert n_params(m60) == 2_538_717 and n_params(m120) == 2_577_717
    assert n_params(m60.sta) == 107
    assert n_params(m60.rgb.head) == 25_980 and n_params(m60.pose.head) == 13_020
    assert n_params(m60.rgb.backbone) == 1_980_030 and n_params(m60.pose.backbone) == 519_580
    assert m60.input_keys == ("rgb", "pose_heatmap")


def test_sta_maps_shapes_range_and_identity_at_zero():
    torch.manual_seed(0)
    sta = SpatialTemporalAttention().eval()
    f_r, f_p = torch.randn(2, 432, 16, 7, 7), torch.randn(2, 216, 48, 7, 7)
    a_s, a_t = sta.attention_maps(f_p, (16, 7, 7))
    assert a_s.shape == (2, 1, 16, 7, 7) and a_t.shape == (2, 1, 16, 1, 1)
    for a in (a_s, a_t):
        assert float(a.detach().min()) >= 0.0 and float(a.detach().max()) <= 1.0
    assert torch.equal(sta.combine(f_r, torch.zeros(2, 1, 16, 7, 7)), f_r)
    assert torch.allclose(sta(f_r, f_p), f_r * (1 + a_s * a_t))
    # the spatial map follows the pose features: a peak of activity gets more attention than the rest
    assert not torch.allclose(a_s[0, 0, 0], a_s[0, 0, 0].mean().expand(7, 7))


def test_sta_uses_pose_frames_0_3_6_only():
    sta = SpatialTemporalAttention().eval()
    f_r, f_p = torch.randn(1, 8, 16, 7, 7), torch.randn(1, 216, 48, 7, 7)
    base = sta(f_r, f_p)
    skipped = f_p.clone()
    skipped[:, :, 1::3] += 5.0
    skipped[:, :, 2::3] -= 5.0
    assert torch.equal(sta(f_r, skipped), base)
    used = f_p.clone()
    used[:, :, 3] += 5.0
    assert not torch.allclose(sta(f_r, used), base)
    assert temporal_step(16, 48) == 3 and temporal_step(8, 24) == 3 and temporal_step(8, 8) == 1
    with pytest.raises(ValueError):
        sta(f_r, torch.randn(1, 216, 40, 7, 7))


@torch.no_grad()
def test_stream_logits_sum_and_feature_layout(model):
    feats = model.forward_features(small_batch())
    streams = model.forward_stream_logits(feats)
    assert set(streams) == {"rgb", "pose"}
    assert torch.allclose(streams["rgb"] + streams["pose"], model(small_batch()), atol=1e-5)
    assert feats.pooled.shape == (2, 432 + 216)
    assert feats.sequence.shape == (2, 8, 432 + 216)
    assert feats.spatial.shape == (2, 432, 8, 2, 2)
    assert torch.allclose(feats.pooled[:, :432], feats.spatial.mean(dim=(2, 3, 4)), atol=1e-5)
    assert torch.equal(feats.aux["rgb_pooled"], feats.pooled[:, :432])
    assert torch.equal(feats.aux["pose_pooled"], feats.pooled[:, 432:])
    assert not any(k.startswith("loss_") for k in feats.aux)


@torch.no_grad()
def test_pose_guides_rgb_but_not_the_reverse(model):
    base = model.forward_stream_logits(model.forward_features(small_batch()))
    other_pose = small_batch()
    other_pose["pose_heatmap"] = torch.rand_like(other_pose["pose_heatmap"])
    guided = model.forward_stream_logits(model.forward_features(other_pose))
    assert not torch.allclose(guided["rgb"], base["rgb"], rtol=1e-3, atol=1e-4)
    other_rgb = small_batch()
    other_rgb["rgb"] = torch.randn_like(other_rgb["rgb"])
    swapped = model.forward_stream_logits(model.forward_features(other_rgb))
    assert torch.equal(swapped["pose"], base["pose"])
    assert not torch.allclose(swapped["rgb"], base["rgb"], rtol=1e-3, atol=1e-4)


@torch.no_grad()
def test_small_and_mismatched_inputs(model):
    x = {"rgb": torch.randn(1, 3, 8, 112, 112), "pose_heatmap": torch.rand(1, 17, 24, 56, 56)}
    feats = model.forward_features(x)  # RGB map 4 x 4, pose map 7 x 7
    assert feats.spatial.shape == (1, 432, 8, 4, 4) and model.forward_head(feats).shape == (1, 7)
    with pytest.raises(ValueError):
        model({"rgb": torch.randn(1, 3, 8, 32, 32), "pose_heatmap": torch.rand(1, 17, 12, 16, 16)})
    with pytest.raises(KeyError):
        model({"rgb": torch.randn(1, 3, 8, 32, 32)})


@torch.no_grad()
def test_stage_two_starts_from_stage_one_streams():
    torch.manual_seed(3)
    rgb, pose = xshiftnet_rgb(num_classes=7).eval(), xshiftnet_pose(num_classes=7).eval()
    for m in (rgb, pose):  # make the trained-looking weights distinct from any fresh init
        for p in m.parameters():
            p.add_(0.01)
    joint = EPAMNet.from_streams(rgb, pose).eval()
    x = small_batch(1, seed=5)
    streams = joint.forward_stream_logits(joint.forward_features(x))
    assert torch.allclose(streams["pose"], pose(x["pose_heatmap"]), atol=1e-5)
    assert torch.allclose(joint.rgb.backbone(x["rgb"]), rgb.backbone(x["rgb"]))
    fresh = EPAMNet(num_classes=7)
    fresh.load_stream_weights(rgb_state=rgb.state_dict())
    assert torch.equal(fresh.rgb.head.fc.weight, rgb.head.fc.weight)
    assert not torch.equal(fresh.pose.head.fc.weight, pose.head.fc.weight)


def test_one_training_step_reaches_every_part():
    torch.manual_seed(0)
    model = EPAMNet(num_classes=4).train()
    x = {"rgb": torch.randn(2, 3, 4, 32, 32), "pose_heatmap": torch.rand(2, 17, 8, 8, 8)}
    streams = model.forward_stream_logits(model.forward_features(x))
    target = torch.tensor([1, 3])
    loss = sum(nn.functional.cross_entropy(z, target) for z in streams.values())
    loss.backward()
    for part in (model.sta.spatial_conv, model.sta.temporal_conv, model.rgb.backbone.conv1_s[0],
                 model.pose.backbone.conv1_s[0]):
        assert part.weight.grad is not None and part.weight.grad.abs().sum() > 0
