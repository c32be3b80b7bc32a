"""MAMP encoder, heads, motion-aware masking and layer-wise lr decay."""

from __future__ import annotations

import math

import pytest
import torch
from einops import rearrange

import actionfusion.modalities.skeleton.mamp  # noqa: F401  (registers "mamp")
from actionfusion.modalities.features import EncoderOutput
from actionfusion.modalities.skeleton.layer_decay import layer_decay_param_groups, mamp_layer_id
from actionfusion.modalities.skeleton.mamp import (
    MAMP,
    MAMPEncoder,
    patchify_skeleton,
)
from actionfusion.modalities.skeleton.mamp_masking import motion_aware_masking, num_tokens_kept, token_motion
from actionfusion.pipeline.official_checkpoints import get_converter
from actionfusion.registry import create_model, list_models

torch.set_num_threads(1)


def n_params(module: torch.nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


@pytest.fixture(scope="module")
def finetune_model() -> MAMP:
    torch.manual_seed(0)
    return MAMP(num_classes=60).eval()


def small_model(**kwargs) -> MAMP:
    torch.manual_seed(1)
    return MAMP(num_classes=7, num_frames=16, depth=2, embed_dim=32, num_heads=4, head_hidden_dim=64, **kwargs)


# ---------------------------------------------------------------- sizes and shapes


def test_encoder_has_634m_parameters(finetune_model: MAMP) -> None:
    count = n_params(finetune_model.encoder)
    assert abs(count - 6.34e6) / 6.34e6 < 0.01
    assert finetune_model.encoder.num_tokens == 750


def test_finetune_model_matches_official_parameter_count(finetune_model: MAMP) -> None:
    assert n_params(finetune_model) == 19_572_284


def test_linear_probe_trains_only_its_15k_head() -> None:
    model = MAMP(num_classes=60, head="linear")
    assert n_params(model.head) == 15_420  # BatchNorm1d(affine=False) has no parameters
    assert n_params(model, trainable_only=True) == 15_420
    model.train()
    assert not model.encoder.training and model.head.training
    assert model.head.norm.eps == 1e-6 and not model.head.norm.affine


def test_full_size_forward_shapes(finetune_model: MAMP) -> None:
    x = torch.randn(1, 2, 120, 25, 3)
    with torch.no_grad():
        feats = finetune_model.forward_features(x)
        logits = finetune_model.forward_head(feats)
    assert feats.sequence.shape == (1, 30, 256)
    assert feats.pooled.shape == (1, 256)
    assert feats.spatial.shape == (1, 256, 30, 25)
    assert logits.shape == (1, 60)
    assert torch.isfinite(logits).all()


def test_wrong_input_shape_is_rejected(finetune_model: MAMP) -> None:
    with pytest.raises(ValueError, match="120"):
        finetune_model(torch.zeros(1, 2, 100, 25, 3))
    with pytest.raises(ValueError):
        finetune_model(torch.zeros(2, 120, 25, 3))


def test_registry_builds_mamp() -> None:
    assert "mamp" in list_models(modality="skeleton")
    model = create_model("mamp", num_classes=5, head="linear", num_frames=8, depth=1)
    assert isinstance(model, MAMP) and model.head.fc.out_features == 5


# ---------------------------------------------------------------- features and heads


def test_bodies_are_encoded_separately_and_pooled_over_persons() -> None:
    model = small_model().eval()
    x = torch.randn(2, 2, 16, 25, 3)
    x[1, 1] = 0.0  # a zero-padded body is still encoded
    with torch.no_grad():
        feats = model.forward_features(x)
        changed = x.clone()
        changed[:, 1] += 1.0
        feats_changed = model.forward_features(changed)
        body0 = model.encoder(x[:, 0])
        body1 = model.encoder(x[:, 1])
    tokens = feats.aux["person_tokens"]
    assert torch.allclose(tokens[:, 0], body0, atol=1e-5)
    assert torch.allclose(tokens[:, 1], body1, atol=1e-5)
    assert tokens[1, 1].abs().sum() > 0
    # person 0 does not see person 1
    assert torch.allclose(feats_changed.aux["person_tokens"][:, 0], tokens[:, 0], atol=1e-6)
    expected = (body0 + body1) / 2
    assert torch.allclose(feats.spatial, rearrange(expected, "n t v d -> n d t v"), atol=1e-5)
    assert torch.allclose(feats.sequence, expected.mean(dim=2), atol=1e-5)
    assert torch.allclose(feats.pooled, expected.mean(dim=(1, 2)), atol=1e-5)


def test_finetune_head_follows_upstream_order_and_spatial_path_is_equivalent() -> None:
    model = small_model().eval()
    head = model.head
    with torch.no_grad():
        head.bn.running_mean.uniform_(-0.1, 0.1)  # non-trivial BN statistics
        head.bn.running_var.uniform_(0.5, 2.0)
        feats = model.forward_features(torch.randn(3, 2, 16, 25, 3))
        logits = model.forward_head(feats)
        # upstream ActionHeadFinetune on (N, M, T, J, C): mean over T, reshape to J*C, mean over M
        n, m, t, j, c = feats.aux["person_tokens"].shape
        ref = feats.aux["person_tokens"].permute(0, 1, 3, 4, 2).mean(-1).reshape(n, m, j * c).mean(1)
        ref = head.fc2(torch.relu(head.bn(head.fc1(ref))))
        # forward_head from the persons-averaged spatial map alone
        no_aux = EncoderOutput(sequence=feats.sequence, pooled=feats.pooled, spatial=feats.spatial)
        from_spatial = model.forward_head(no_aux)
    assert torch.allclose(logits, ref, atol=1e-5)
    assert torch.allclose(from_spatial, logits, atol=1e-5)


def test_finetune_head_dropout_acts_in_training() -> None:
    model = small_model()
    feats = model.forward_features(torch.randn(4, 2, 16, 25, 3))
    model.train()
    torch.manual_seed(0)
    a = model.forward_head(feats)
    b = model.forward_head(feats)
    assert not torch.allclose(a, b)
    loss = a.logsumexp(dim=1).sum()
    loss.backward()
    assert model.encoder.patch_embed.weight.grad is not None


def test_linear_head_uses_pooled_mean_over_persons_segments_joints() -> None:
    model = small_model(head="linear").eval()
    feats = model.forward_features(torch.randn(2, 2, 16, 25, 3))
    with torch.no_grad():
        logits = model.forward_head(feats)
    bn = model.head.norm
    pooled = feats.aux["person_tokens"].mean(dim=(1, 2, 3))
    ref = model.head.fc((pooled - bn.running_mean) / torch.sqrt(bn.running_var + 1e-6))
    assert torch.allclose(logits, ref, atol=1e-5)
    assert not feats.pooled.requires_grad  # the encoder is frozen


# ---------------------------------------------------------------- token subsets


def test_forward_tokens_on_all_tokens_in_any_order_equals_full_forward() -> None:
    encoder = MAMPEncoder(num_frames=16, depth=2, embed_dim=32, num_heads=4).eval()
    x = torch.randn(2, 16, 25, 3)
    gen = torch.Generator().manual_seed(0)
    order = torch.stack([torch.randperm(encoder.num_tokens, generator=gen) for _ in range(2)])
    with torch.no_grad():
        full = encoder.forward_tokens(x)
        shuffled = encoder.forward_tokens(x, keep_index=order)
        grid = encoder(x)
    assert full.shape == (2, 100, 32)
    assert torch.allclose(shuffled, torch.gather(full, 1, order[..., None].expand(-1, -1, 32)), atol=1e-5)
    assert torch.allclose(rearrange(grid, "b t v d -> b (t v) d"), full)


def test_forward_tokens_on_a_subset_sees_only_that_subset() -> None:
    encoder = MAMPEncoder(num_frames=16, depth=2, embed_dim=32, num_heads=4).eval()
    x = torch.randn(1, 16, 25, 3)
    keep = torch.arange(0, 100, 10)[None]
    changed = x.clone()
    changed[:, 4:8, 1] += 5.0  # token (segment 1, joint 1) = index 26, not kept
    with torch.no_grad():
        a = encoder.forward_tokens(x, keep_index=keep)
        b = encoder.forward_tokens(changed, keep_index=keep)
        full_a = encoder.forward_tokens(x)
    assert a.shape == (1, 10, 32)
    assert torch.allclose(a, b)
    assert not torch.allclose(a, full_a[:, ::10], atol=1e-4)


# ---------------------------------------------------------------- masking


def test_patchify_groups_four_frames_of_one_joint() -> None:
    x = torch.arange(1 * 8 * 2 * 3, dtype=torch.float32).reshape(1, 8, 2, 3)
    patches = patchify_skeleton(x)
    assert patches.shape == (1, 2, 2, 12)
    assert torch.equal(patches[0, 1, 0], x[0, 4:8, 0].reshape(12))


def test_keep_count_is_75_of_750() -> None:
    patches = torch.randn(3, 30, 25, 12)
    draw = motion_aware_masking(patches, mask_ratio=0.9, tau=0.8, generator=torch.Generator().manual_seed(0))
    assert draw.keep_index.shape == (3, 75) and num_tokens_kept(750, 0.9) == 75
    assert torch.equal(draw.mask.sum(dim=1), torch.full((3,), 675.0))
    for b in range(3):
        assert draw.keep_index[b].unique().numel() == 75
        assert (draw.mask[b, draw.keep_index[b]] == 0).all()
    # restore_index puts [visible, hidden] back in token order
    order = torch.argsort(draw.restore_index, dim=1)
    assert torch.equal(order[:, :75], draw.keep_index)
    assert num_tokens_kept(750, 0.9, official_floor=True) == 74  # upstream's float artefact


def test_motion_of_the_first_segment_copies_the_second() -> None:
    patches = torch.zeros(1, 3, 1, 12)
    patches[0, 1] = 1.0
    patches[0, 2] = 3.0
    assert torch.allclose(token_motion(patches), torch.tensor([[1.0, 1.0, 2.0]]))


def _moving_and_static_patches(batch: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(3)
    patches = torch.zeros(batch, 30, 25, 12)
    patches[:, :, :5] = torch.randn(batch, 30, 5, 12, generator=gen) * 2.0  # joints 0-4 move
    return patches


def test_moving_tokens_are_masked_more_often() -> None:
    patches = _moving_and_static_patches(64)
    draw = motion_aware_masking(patches, 0.9, 0.8, generator=torch.Generator().manual_seed(0))
    mask = rearrange(draw.mask, "b (t v) -> b t v", v=25)
    moving, static = mask[:, :, :5].mean().item(), mask[:, :, 5:].mean().item()
    assert moving > static + 0.03
    # with tau = 0 the masking is uniform: no preference
    uniform = motion_aware_masking(patches, 0.9, 0.0, generator=torch.Generator().manual_seed(0))
    umask = rearrange(uniform.mask, "b (t v) -> b t v", v=25)
    assert abs(umask[:, :, :5].mean().item() - umask[:, :, 5:].mean().item()) < 0.02
    assert math.isclose(umask.mean().item(), 0.9, abs_tol=1e-6)


def test_masking_is_reproducible_with_a_generator() -> None:
    patches = _moving_and_static_patches(2)
    a = motion_aware_masking(patches, generator=torch.Generator().manual_seed(5))
    b = motion_aware_masking(patches, generator=torch.Generator().manual_seed(5))
    c = motion_aware_masking(patches, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a.keep_index, b.keep_index)
    assert not torch.equal(a.keep_index, c.keep_index)


# ---------------------------------------------------------------- layer-wise lr decay


def test_layer_decay_groups_cover_every_parameter_once(finetune_model: MAMP) -> None:
    groups = layer_decay_param_groups(finetune_model, base_lr=3e-4, weight_decay=0.05, layer_decay=0.8)
    seen = [id(p) for g in groups for p in g["params"]]
    assert len(seen) == len(set(seen)) == len(list(finetune_model.parameters()))
    where = {id(p): g for g in groups for p in g["params"]}
    named = dict(finetune_model.named_parameters())

    def group_of(name: str) -> dict:
        return where[id(named[name])]

    assert math.isclose(group_of("encoder.patch_embed.weight")["lr"], 3e-4 * 0.8**9)
    assert math.isclose(group_of("encoder.temporal_embed")["lr_scale"], 0.8**9)
    assert math.isclose(group_of("encoder.blocks.0.attn.qkv.weight")["lr_scale"], 0.8**8)
    assert math.isclose(group_of("encoder.blocks.7.mlp.fc2.weight")["lr_scale"], 0.8)
    assert group_of("encoder.norm.weight")["lr_scale"] == 1.0
    assert group_of("head.fc1.weight")["lr"] == 3e-4
    for name in ("encoder.blocks.3.attn.qkv.bias", "encoder.norm.weight", "head.bn.weight",
                 "encoder.temporal_embed", "encoder.spatial_embed"):
        assert group_of(name)["weight_decay"] == 0.0, name
    for name in ("encoder.blocks.3.attn.qkv.weight", "encoder.patch_embed.weight", "head.fc2.weight"):
        assert group_of(name)["weight_decay"] == 0.05, name
    official = layer_decay_param_groups(finetune_model, 3e-4, 0.05, no_weight_decay=())
    official_where = {id(p): g for g in official for p in g["params"]}
    assert official_where[id(named["encoder.temporal_embed"])]["weight_decay"] == 0.05


def test_layer_decay_groups_drive_adamw_and_skip_frozen_parameters() -> None:
    model = small_model()
    groups = layer_decay_param_groups(model, base_lr=1e-3, weight_decay=0.05)
    assert sorted({g["layer_id"] for g in groups}) == [0, 1, 2, 3]
    optimizer = torch.optim.AdamW(groups)
    before = model.encoder.patch_embed.weight.detach().clone()
    model(torch.randn(2, 2, 16, 25, 3)).sum().backward()
    optimizer.step()
    assert not torch.equal(before, model.encoder.patch_embed.weight)
    probe = small_model(head="linear")
    probe_groups = layer_decay_param_groups(probe, base_lr=0.1, weight_decay=0.0)
    assert sum(p.numel() for g in probe_groups for p in g["params"]) == n_params(probe.head)


def test_mamp_layer_id_for_bare_encoder_names() -> None:
    assert mamp_layer_id("patch_embed.bias", 8) == 0
    assert mamp_layer_id("blocks.5.norm1.weight", 8) == 6
    assert mamp_layer_id("norm.bias", 8) == 9


# ---------------------------------------------------------------- upstream checkpoints


def test_official_state_dict_names_convert_and_load() -> None:
    """A MAMP pretraining checkpoint (encoder + decoder) converts strictly into our encoder."""
    model = small_model()
    official_names = {
        "patch_embed.": "joints_embed.proj.",
        "temporal_embed": "temp_embed",
        "spatial_embed": "pos_embed",
        "blocks.": "blocks.",
        "norm.": "norm.",
    }
    official = {}
    for key, value in model.encoder.state_dict().items():
        for ours, theirs in official_names.items():
            if key.startswith(ours):
                key = theirs + key[len(ours):]
                break
        official[key] = torch.randn_like(value.float()).to(value.dtype)
    official["mask_token"] = torch.zeros(1, 1, 32)
    official["decoder_pred.weight"] = torch.zeros(12, 32)
    converter = get_converter("mamp_pretrain")
    converted = converter.to_ours(official)
    dropped = converter.discarded_keys(official)
    assert sorted(dropped) == ["decoder_pred.weight", "mask_token"]
    model.encoder.load_state_dict(converted, strict=True)
    assert torch.equal(model.encoder.temporal_embed, official["temp_embed"])
    assert torch.equal(model.encoder.blocks[1].mlp.fc1.weight, official["blocks.1.mlp.fc1.weight"])
