"""X-ShiftNet backbones (EPAM-Net) and the timm per-frame encoder with temporal shift."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from actionfusion.modalities.rgb.frame_encoder import FrameShift, TimmFrameEncoder, timm_frames
from actionfusion.modalities.rgb.xshiftnet import XShiftNet, pose_spec, rgb_spec, xshiftnet_pose, xshiftnet_rgb
from actionfusion.modalities.rgb.xshiftnet_blocks import SqueezeExcite3d, XShiftBlock, round_width
from actionfusion.modalities.temporal_shift import temporal_shift

torch.set_num_threads(1)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_round_width_matches_x3d_rule():
    assert [round_width(c, 1 / 16) for c in (54, 108, 216, 432)] == [8, 8, 16, 32]
    assert round_width(24, 2.25) == 56 and round_width(20) == 24


def test_rgb_backbone_parameter_counts_match_official():
    net = XShiftNet(rgb_spec())
    per_stage = {name: n_params(m) for name, m in net.named_children()}
    assert per_stage == {"conv1_s": 696, "layer1": 12_502, "layer2": 63_528, "layer3": 526_488,
                         "layer4": 1_293_008, "conv5": 83_808}
    assert n_params(net) == 1_980_030
    assert sum(isinstance(m, SqueezeExcite3d) for m in net.modules()) == 15
    assert [len(getattr(net, f"layer{i}")) for i in range(1, 5)] == [3, 5, 11, 7]
    # BN running statistics are buffers, not parameters
    assert any(name.endswith("running_mean") for name, _ in net.named_buffers())


def test_pose_backbone_parameter_counts_match_official():
    net = XShiftNet(pose_spec())
    per_stage = {name: n_params(m) for name, m in net.named_children()}
    assert per_stage == {"conv1_s": 3_720, "layer1": 20_112, "layer2": 140_268, "layer3": 334_312, "conv5": 21_168}
    assert n_params(net) == 519_580
    assert sum(isinstance(m, SqueezeExcite3d) for m in net.modules()) == 13


def test_shift_folds_and_se_placement():
    rgb, pose = XShiftNet(rgb_spec()), XShiftNet(pose_spec())
    assert {b.fold_div for b in rgb.modules() if isinstance(b, XShiftBlock)} == {8}
    assert {b.fold_div for b in pose.modules() if isinstance(b, XShiftBlock)} == {4}
    assert [b.se is not None for b in rgb.layer2] == [True, False, True, False, True]


@torch.no_grad()
def test_output_shapes_official_strides_and_small_clips():
    rgb = XShiftNet(rgb_spec()).eval()
    assert rgb(torch.randn(1, 3, 1, 224, 224)).shape == (1, 432, 1, 7, 7)      # official spatial size
    assert rgb(torch.randn(2, 3, 16, 64, 64)).shape == (2, 432, 16, 2, 2)      # official T, no temporal stride
    assert rgb(torch.randn(1, 3, 8, 112, 112)).shape == (1, 432, 8, 4, 4)      # small training clip
    pose = XShiftNet(pose_spec()).eval()
    assert pose(torch.rand(1, 17, 48, 56, 56)).shape == (1, 216, 48, 7, 7)    # official pose clip
    assert pose(torch.rand(2, 17, 24, 32, 32)).shape == (2, 216, 24, 4, 4)
    with pytest.raises(ValueError):
        pose(torch.rand(1, 3, 8, 32, 32))


def _identity_block(fold_div: int = 4, use_se: bool = True) -> XShiftBlock:
    torch.manual_seed(0)
    return XShiftBlock(16, 36, 16, spatial_stride=1, fold_div=fold_div, use_se=use_se).eval()


@torch.no_grad()
def test_shift_is_residual_identity_path_unshifted():
    block = _identity_block()
    x = torch.randn(2, 16, 6, 5, 5)
    expected = torch.relu(block.residual(temporal_shift(x, 4)) + x)
    in_place = torch.relu(block.residual(temporal_shift(x, 4)) + temporal_shift(x, 4))
    assert torch.allclose(block(x), expected, atol=1e-6)
    assert not torch.allclose(block(x), in_place, atol=1e-3)
    # with the residual branch silenced the block is ReLU(x): the identity never saw the shift
    nn.init.zeros_(block.conv3[1].weight)
    assert torch.equal(block(x), torch.relu(x))


@torch.no_grad()
def test_block_mixes_exactly_the_neighbouring_frames():
    block = _identity_block(use_se=False)  # SE pools over T, H, W: it would reach every frame
    x = torch.randn(1, 16, 7, 5, 5)
    y = x.clone()
    y[:, :, 3] += 1.0
    changed = (block(x) - block(y)).abs().amax(dim=(0, 1, 3, 4)) > 1e-6
    assert changed.tolist() == [False, False, True, True, True, False, False]
    with_se = _identity_block(use_se=True)
    assert ((with_se(x) - with_se(y)).abs().amax(dim=(0, 1, 3, 4)) > 1e-6).all()
    no_shift = XShiftBlock(16, 36, 16, fold_div=None).eval()
    changed = (no_shift(x) - no_shift(y)).abs().amax(dim=(0, 1, 3, 4)) > 1e-6
    assert changed.tolist() == [False, False, False, True, False, False, False]


def test_stream_classifiers_registered_with_their_batch_keys():
    from actionfusion.registry import get_entry

    assert get_entry("model", "xshiftnet_rgb").modality == "rgb"
    assert get_entry("model", "xshiftnet_pose").modality == "pose"
    assert get_entry("model", "timm_frames").modality == "rgb"
    rgb, pose = xshiftnet_rgb(num_classes=60), xshiftnet_pose(num_classes=60)
    assert rgb.input_keys == ("rgb",) and pose.input_keys == ("pose_heatmap",)
    assert n_params(rgb.head) == 25_980 and n_params(pose.head) == 13_020
    feats = pose.eval().forward_features(torch.rand(2, 17, 8, 16, 16))
    assert feats.spatial.shape == (2, 216, 8, 2, 2) and feats.sequence.shape == (2, 8, 216)
    assert torch.allclose(feats.pooled, feats.spatial.mean(dim=(2, 3, 4)), atol=1e-6)
    assert pose.forward_head(feats).shape == (2, 60)


def _frame_changes(model: TimmFrameEncoder, frames: int = 4, perturbed: int = 0) -> list:
    torch.manual_seed(1)
    for m in model.modules():  # timm zero-initialises each block's last BN (residual branch off at init)
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.uniform_(m.weight, 0.5, 1.5)
    x = torch.randn(1, 3, frames, 32, 32)
    y = x.clone()
    y[:, :, perturbed] += 1.0
    with torch.no_grad():
        a, b = model.forward_features(x).sequence, model.forward_features(y).sequence
    return ((a - b).abs().amax(dim=(0, 2)) > 1e-5).tolist()


def test_timm_resnet_gets_residual_shift_and_mixes_frames():
    plain = timm_frames(num_classes=5, backbone="resnet18").eval()
    assert _frame_changes(plain) == [True, False, False, False]           # frames encoded independently
    shifted = timm_frames(num_classes=5, backbone="resnet18", shift_fold_div=8).eval()
    assert len(shifted.shifts) == 8                                        # one per BasicBlock
    assert all(isinstance(block.conv1, FrameShift) for stage in (shifted.encoder.layer1, shifted.encoder.layer4)
               for block in stage)
    assert _frame_changes(shifted) == [True, True, True, True]            # 8 blocks: info reaches every frame
    feats = shifted.forward_features(torch.randn(2, 3, 4, 32, 32))
    assert feats.spatial.shape == (2, 512, 4, 1, 1) and feats.pooled.shape == (2, 512)
    assert shifted(torch.randn(2, 3, 4, 32, 32)).shape == (2, 5)


def test_timm_generic_fallback_shifts_block_inputs():
    model = TimmFrameEncoder("mobilenetv3_small_050", num_classes=3, shift_fold_div=4).eval()
    assert len(model.shifts) > 5 and all(isinstance(s.inner, nn.Module) for s in model.shifts)
    assert _frame_changes(model, perturbed=3) == [True, True, True, True]
    with pytest.raises(ValueError):
        TimmFrameEncoder("resnet18", in_channels=3).forward_features(torch.randn(1, 4, 2, 32, 32))


def test_frame_shift_layouts_agree_with_clip_shift():
    clip = torch.randn(2, 8, 3, 4, 5)                                         # [N, C, T, H, W]
    expected = temporal_shift(clip, 4)
    nchw = FrameShift(4, nn.Identity())
    nchw.num_frames = 3
    out = nchw(clip.permute(0, 2, 1, 3, 4).reshape(6, 8, 4, 5))               # [(N T), C, H, W]
    assert torch.equal(out.reshape(2, 3, 8, 4, 5).permute(0, 2, 1, 3, 4), expected)
    nhwc = FrameShift(4, nn.Identity(), channels_last=True)
    nhwc.num_frames = 3
    out = nhwc(clip.permute(0, 2, 3, 4, 1).reshape(6, 4, 5, 8))               # [(N T), H, W, C]
    assert torch.equal(out.reshape(2, 3, 4, 5, 8).permute(0, 4, 1, 2, 3), expected)
    tokens = FrameShift(4, nn.Identity())
    tokens.num_frames = 3
    out = tokens(clip.flatten(3).permute(0, 2, 3, 1).reshape(6, 20, 8))      # [(N T), L, C]
    assert torch.equal(out.reshape(2, 3, 20, 8).permute(0, 3, 1, 2), expected.flatten(3))
    with pytest.raises(ValueError):
        nchw(torch.randn(5, 8, 4, 5))                                         # 5 images, not a multiple of T = 3


def test_frame_conv_equals_conv3d_with_the_same_weights() -> None:
    from actionfusion.modalities.rgb.xshiftnet_blocks import FrameConv3d

    torch.manual_seed(0)
    for kwargs in ({"kernel_size": (1, 3, 3), "padding": (0, 1, 1), "groups": 6, "stride": (1, 2, 2)},
                   {"kernel_size": 1}, {"kernel_size": (3, 3, 3), "padding": 1}):
        ours = FrameConv3d(6, 12, bias=False, **kwargs)
        reference = torch.nn.Conv3d(6, 12, bias=False, **kwargs)
        reference.load_state_dict(ours.state_dict())
        x = torch.randn(2, 6, 5, 9, 9)
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-5)
