"""The 3D deformable cross-modal transformer fusion: sampling, stride attention, the fusion contract."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from actionfusion.fusion.deformable_attention import DeformableAttention3D, reference_points, sample_volume
from actionfusion.fusion.deformable_transformer import DeformableCrossModalFusion
from actionfusion.fusion.stride_attention import JointStrideAttention, TemporalStrideAttention
from actionfusion.modalities.features import EncoderOutput
from actionfusion.registry import create

pytestmark = pytest.mark.usefixtures("one_thread")


SMALL = dict(dim=32, num_blocks=2, num_heads=2, num_points=2, joint_stride=3, temporal_stride=2)


def trilinear(volume: torch.Tensor, t: float, y: float, x: float) -> torch.Tensor:
    """Hand-written trilinear interpolation of volume [C, T, H, W] at (t, y, x) inside the volume -> [C]."""
    out = torch.zeros(volume.shape[0], dtype=volume.dtype)
    t0, y0, x0 = math.floor(t), math.floor(y), math.floor(x)
    for dt in (0, 1):
        for dy in (0, 1):
            for dx in (0, 1):
                ti, yi, xi = t0 + dt, y0 + dy, x0 + dx
                w = ((1 - abs(t - ti)) * (1 - abs(y - yi)) * (1 - abs(x - xi)))
                if w > 0:
                    out += w * volume[:, ti, yi, xi]
    return out


def make_feats(batch=3, c_r=12, c_p=10, t_r=4, t_p=6, hw=(5, 7), joints=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    rgb = torch.randn(batch, c_r, t_r, *hw, generator=g)
    pose = torch.randn(batch, c_p, t_p, joints, generator=g)
    return rgb, pose


def encoder_outputs(rgb=None, pose=None):
    feats = {}
    if rgb is not None:
        feats["rgb"] = EncoderOutput(rgb.mean(dim=(3, 4)).transpose(1, 2), rgb.mean(dim=(2, 3, 4)), rgb)
    if pose is not None:
        feats["skeleton"] = EncoderOutput(pose.mean(dim=3).transpose(1, 2), pose.mean(dim=(2, 3)), pose)
    return feats


def all_present(batch, keys=("rgb", "skeleton")):
    return {k: torch.ones(batch, dtype=torch.bool) for k in keys}


def build(**options):
    torch.manual_seed(0)
    return create("fusion", "deformable3d", dims={"rgb": 12, "skeleton": 10}, **{**SMALL, **options})


# --------------------------------------------------------------------------- trilinear sampling

def test_sample_volume_matches_indexing_and_hand_trilinear():
    volume = torch.randn(2, 3, 4, 5, 6, dtype=torch.float64)
    points = torch.tensor([[[0, 0, 0], [3, 4, 5], [2, 1, 3]], [[1, 2, 0], [0, 4, 2], [3, 0, 5]]], dtype=torch.float64)
    got = sample_volume(volume, points)
    for b in range(2):
        for n in range(3):
            t, y, x = (int(v) for v in points[b, n])
            # exact up to the normalise / unnormalise round trip of grid_sample's coordinates
            torch.testing.assert_close(got[b, n], volume[b, :, t, y, x], rtol=0, atol=1e-12)
    frac = torch.tensor([[[1.25, 2.5, 3.75]], [[2.9, 0.1, 4.4]]], dtype=torch.float64)
    got = sample_volume(volume, frac)
    for b in range(2):
        torch.testing.assert_close(got[b, 0], trilinear(volume[b], *frac[b, 0].tolist()), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("reference", ["center", "grid"])
@pytest.mark.parametrize("frames", [4, 2])
def test_zero_offsets_sample_exactly_at_references(reference, frames):
    torch.manual_seed(0)
    attn = DeformableAttention3D(8, num_heads=2, num_points=3, reference=reference,
                                 zero_init_offsets=False).double()
    assert attn.offsets.weight.abs().sum() > 0
    with torch.no_grad():
        attn.offsets.weight.zero_()
        attn.offsets.bias.zero_()
    volume = torch.randn(2, 8, 4, 5, 7, dtype=torch.float64)
    query = torch.randn(2, frames, 4, 8, dtype=torch.float64)
    tokens, points = attn.sample_tokens(query, volume)
    refs = reference_points(frames, (4, 5, 7), 2, 3, reference, dtype=torch.float64)
    assert torch.equal(points, refs.expand_as(points))
    for b in range(2):
        for t in range(frames):
            for h in range(2):
                for k in range(3):
                    tr, yr, xr = refs[t, h, k].tolist()
                    expected = trilinear(volume[b], tr, yr, xr)
                    if reference == "center" and frames == 4:      # integer references: direct indexing
                        assert (tr, yr, xr) == (t, 2.0, 3.0)
                        expected = volume[b, :, t, 2, 3]
                    torch.testing.assert_close(tokens[b, t, h, k], expected, rtol=1e-12, atol=1e-12)
    if reference == "grid":   # distinct spatial references per head and point
        assert len({tuple(p) for p in refs[0].reshape(-1, 3)[:, 1:].tolist()}) == 6


@pytest.mark.parametrize("zero_init", [False, True])
def test_gradients_reach_the_offset_network(zero_init):
    torch.manual_seed(0)
    attn = DeformableAttention3D(16, num_heads=2, num_points=2, zero_init_offsets=zero_init)
    volume = torch.randn(2, 16, 4, 6, 6)
    query = torch.randn(2, 4, 5, 16)
    tokens, _ = attn.sample_tokens(query, volume)
    (tokens * torch.randn_like(tokens)).sum().backward()
    assert attn.offsets.weight.grad is not None and attn.offsets.weight.grad.abs().sum() > 0
    assert attn.offsets.bias.grad.abs().sum() > 0


def test_offsets_move_the_samples():
    torch.manual_seed(0)
    attn = DeformableAttention3D(16, num_heads=2, num_points=2, zero_init_offsets=False)
    volume = torch.randn(1, 16, 4, 6, 6)
    query = torch.randn(1, 4, 5, 16)
    tokens, points = attn.sample_tokens(query, volume)
    refs = reference_points(4, (4, 6, 6), 2, 2)
    assert not torch.allclose(points[0], refs)
    flat = points.reshape(1, -1, 3)
    torch.testing.assert_close(tokens.reshape(1, -1, 16), sample_volume(volume, flat))


# --------------------------------------------------------------------------- stride attention

def test_temporal_stride_reduces_tokens_and_windows_stay_local():
    torch.manual_seed(0)
    layer = TemporalStrideAttention(16, num_heads=2, temporal_stride=2)
    tokens = torch.randn(2, 5, 3, 16)
    out = layer(tokens)
    assert out.shape == (2, 3, 3, 16)
    assert TemporalStrideAttention(16, 2, temporal_stride=3)(torch.randn(2, 6, 3, 16)).shape == (2, 2, 3, 16)
    changed = tokens.clone()
    changed[:, 2, 1] += 1.0                      # frame 2 lies in window 1; slot 1
    diff = (layer(changed) - out).abs().amax(dim=(0, 3))   # [windows, slots]
    assert diff[1, 1] > 0
    assert diff[[0, 2]].eq(0).all() and diff[:, [0, 2]].eq(0).all()


def test_joint_stride_groups_do_not_mix():
    torch.manual_seed(0)
    layer = JointStrideAttention(16, num_heads=2, joint_stride=3)
    joints = torch.randn(2, 4, 7, 16)            # groups {0,1,2} {3,4,5} {6}
    cross = torch.randn(2, 4, 16)
    out = layer(joints, cross)
    changed = joints.clone()
    changed[:, :, 4] += 1.0
    diff = (layer(changed, cross) - out).abs().amax(dim=(0, 1, 3))
    assert (diff[3:6] > 0).all()
    assert diff[[0, 1, 2, 6]].eq(0).all()
    # the cross-modal token reaches every group
    diff_cross = (layer(joints, cross + 1.0) - out).abs().amax(dim=(0, 1, 3))
    assert (diff_cross > 0).all()


# --------------------------------------------------------------------------- fusion contract

def test_registry_shapes_and_options():
    rgb, pose = make_feats()
    for pooling, out_dim in (("concat", 64), ("sum", 32)):
        fusion = build(pooling=pooling)
        assert isinstance(fusion, DeformableCrossModalFusion)
        out = fusion(encoder_outputs(rgb, pose), all_present(3))
        assert fusion.out_dim == out_dim and out.pooled.shape == (3, out_dim)
        assert set(out.branches) == {"rgb", "skeleton"}
        assert all(v.shape == (3, 32) for v in out.branches.values())
    # a 5-D pose map (V = h w), pooled time alignment, other keys
    fusion = create("fusion", "deformable3d", dims={"depth": 12, "pose_heatmap": 6}, rgb_key="depth",
                    pose_key="pose_heatmap", time_align="pool", reference="center", offset_source="query_mean",
                    **SMALL)
    heat = torch.randn(3, 6, 8, 4, 4)
    feats = {"depth": EncoderOutput(rgb.mean(dim=(3, 4)).transpose(1, 2), rgb.mean(dim=(2, 3, 4)), rgb),
             "pose_heatmap": EncoderOutput(heat.mean(dim=(3, 4)).transpose(1, 2), heat.mean(dim=(2, 3, 4)), heat)}
    out = fusion(feats, {"depth": torch.ones(3, dtype=torch.bool), "pose_heatmap": torch.ones(3, dtype=torch.bool)})
    assert out.pooled.shape == (3, 64) and torch.isfinite(out.pooled).all()
    with pytest.raises(ValueError):
        create("fusion", "deformable3d", dims={"rgb": 12, "skeleton": 10, "depth": 4})
    with pytest.raises(ValueError):
        create("fusion", "deformable3d", dims={"rgb": 12})


def test_cross_modal_path_alive_both_ways():
    fusion = build()
    rgb, pose = make_feats()
    base = fusion(encoder_outputs(rgb, pose), all_present(3))
    new_pose = fusion(encoder_outputs(rgb, pose + torch.randn_like(pose)), all_present(3))
    new_rgb = fusion(encoder_outputs(rgb + torch.randn_like(rgb), pose), all_present(3))
    assert (new_pose.branches["rgb"] - base.branches["rgb"]).abs().amax(dim=1).gt(1e-4).all()
    assert (new_rgb.branches["skeleton"] - base.branches["skeleton"]).abs().amax(dim=1).gt(1e-4).all()


def test_no_cross_modal_switch_makes_branches_independent():
    fusion = build(cross_modal=False)
    rgb, pose = make_feats()
    base = fusion(encoder_outputs(rgb, pose), all_present(3))
    new_pose = fusion(encoder_outputs(rgb, pose * 3.0 + 1.0), all_present(3))
    new_rgb = fusion(encoder_outputs(rgb * -2.0 + 0.5, pose), all_present(3))
    assert torch.equal(new_pose.branches["rgb"], base.branches["rgb"])
    assert torch.equal(new_rgb.branches["skeleton"], base.branches["skeleton"])
    assert not torch.equal(new_pose.branches["skeleton"], base.branches["skeleton"])
    assert not torch.equal(new_rgb.branches["rgb"], base.branches["rgb"])


def test_any_subset_is_finite_and_absent_inputs_do_not_leak():
    fusion = build()
    rgb, pose = make_feats()
    for feats in (encoder_outputs(rgb=rgb), encoder_outputs(pose=pose)):
        out = fusion(feats, all_present(3, tuple(feats)))
        assert out.pooled.shape == (3, 64) and torch.isfinite(out.pooled).all()
    present = {"rgb": torch.tensor([False, True, True]), "skeleton": torch.tensor([True, False, True])}
    rgb_z, pose_z = rgb.clone(), pose.clone()
    rgb_z[0] = 0.0
    pose_z[1] = 0.0
    out = fusion(encoder_outputs(rgb_z, pose_z), present)
    assert torch.isfinite(out.pooled).all()
    # what an absent sample's features hold never reaches the output
    rgb_junk, pose_junk = rgb_z.clone(), pose_z.clone()
    rgb_junk[0] = torch.randn_like(rgb_junk[0]) * 10
    pose_junk[1] = torch.randn_like(pose_junk[1]) * 10
    junk = fusion(encoder_outputs(rgb_junk, pose_junk), present)
    torch.testing.assert_close(junk.pooled, out.pooled, rtol=0, atol=1e-6)
    # per-sample absence of all RGB equals the missing-key path's use of the absent signal only
    no_rgb = fusion(encoder_outputs(rgb_z, pose_z), {"rgb": torch.zeros(3, dtype=torch.bool),
                                                     "skeleton": present["skeleton"]})
    assert torch.isfinite(no_rgb.pooled).all()


def xor_data(n, u, v, frames=2):
    """rgb [n, 8, frames, 3, 3] carries sign a, pose [n, 8, frames, 5] sign b; label = sign(a) XOR sign(b)."""
    a = torch.randint(0, 2, (n,)) * 2 - 1
    b = torch.randint(0, 2, (n,)) * 2 - 1
    rgb = a[:, None, None, None, None] * u[None, :, None, None, None] + 0.3 * torch.randn(n, 8, frames, 3, 3)
    pose = b[:, None, None, None] * v[None, :, None, None] + 0.3 * torch.randn(n, 8, frames, 5)
    return encoder_outputs(rgb, pose), (a * b > 0).long()


def train_xor(cross_modal: bool) -> float:
    """Held-out accuracy after 40 full-batch Adam steps on 48 samples."""
    torch.manual_seed(0)
    u, v = torch.randn(8), torch.randn(8)
    feats, label = xor_data(48, u, v)
    test_feats, test_label = xor_data(128, u, v)
    fusion = create("fusion", "deformable3d", dims={"rgb": 8, "skeleton": 8}, dim=32, num_blocks=1,
                    num_heads=2, num_points=2, joint_stride=5, temporal_stride=2, cross_modal=cross_modal)
    head = nn.Linear(fusion.out_dim, 2)
    optim = torch.optim.Adam([*fusion.parameters(), *head.parameters()], lr=1e-2)
    for _ in range(40):
        loss = nn.functional.cross_entropy(head(fusion(feats, all_present(48)).pooled), label)
        optim.zero_grad()
        loss.backward()
        optim.step()
    with torch.no_grad():
        logits = head(fusion(test_feats, all_present(128)).pooled)
    return (logits.argmax(dim=1) == test_label).float().mean().item()


def test_learns_xor_of_two_modalities():
    assert train_xor(cross_modal=True) >= 0.95
    # control: without the cross-modal path the linear head on [z^r ; z^p] cannot express XOR
    assert train_xor(cross_modal=False) <= 0.8


def test_no_dead_parameters():
    fusion = build()
    rgb, pose = make_feats(batch=4)
    present = {"rgb": torch.tensor([True, False, True, True]), "skeleton": torch.tensor([True, True, False, True])}
    out = fusion(encoder_outputs(rgb, pose), present)
    (out.pooled * torch.randn_like(out.pooled)).sum().backward()
    dead = [name for name, p in fusion.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead, dead
    # the offset heads start at zero yet get gradient
    for block in fusion.blocks:
        assert block.deform.offsets.weight.abs().sum() == 0
        assert block.deform.offsets.weight.grad.abs().sum() > 0
