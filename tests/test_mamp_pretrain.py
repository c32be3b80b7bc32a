"""MAMP pretraining as an objective: decoder sizes, motion-aware masking through the objective,
the motion target, the masked loss, the official pretraining checkpoint layout (decoder included)
and a few optimiser steps that learn."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from actionfusion.objectives import create_objective
from actionfusion.objectives.mamp import MAMPPretraining, masked_mse, motion_target, normalise_tokens
from actionfusion.objectives.mamp_decoder import MAMPDecoder
from actionfusion.pipeline.official_checkpoints import LayoutMismatchError, UnmappedKeysError, check_layout, layout_of
from actionfusion.pipeline.official_checkpoints.convert_cli import add_convert_checkpoint_parser
from actionfusion.pipeline.official_checkpoints.converters import convert_objective_part
from actionfusion.pipeline.official_checkpoints.mamp_converters import (
    MAMP_PRETRAIN,
    join_mamp_pretrain,
    mamp_objective_kwargs,
    split_mamp_pretrain,
)
from actionfusion.registry import create_model

pytestmark = pytest.mark.usefixtures("one_thread")

LAYOUT = Path(__file__).resolve().parent / "data" / "official_layouts" / "mamp_pretrain.json"
TINY = {"num_frames": 16, "num_joints": 25, "in_channels": 3, "segment_frames": 4}


def official_layout() -> Dict[str, Tuple[Tuple[int, ...], str]]:
    """The recorded official pretraining state dict (5 decoder blocks): key -> (shape, dtype)."""
    data = json.loads(LAYOUT.read_text())
    assert data["converter"] == "mamp_pretrain"
    return {k: (tuple(shape), dtype) for k, (shape, dtype) in data["keys"].items()}


def fake_official(layout: Dict[str, Tuple[Tuple[int, ...], str]], seed: int = 0) -> Dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(shape, generator=gen, dtype=getattr(torch, dtype)) for k, (shape, dtype) in layout.items()}


def tiny_pair(dim: int = 32, **objective_kwargs: object) -> Tuple[torch.nn.Module, MAMPPretraining]:
    """A 16-frame, one-block MAMP model and a matching objective (one decoder block)."""
    model = create_model("mamp", num_classes=0, num_frames=16, depth=1, embed_dim=dim, num_heads=4)
    kwargs = {**TINY, "encoder_dim": dim, "decoder_dim": dim, "decoder_depth": 1, "decoder_heads": 4,
              **objective_kwargs}
    return model, create_objective("mamp", **kwargs)


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --- sizes ----------------------------------------------------------------------------------


def test_decoder_parameter_counts_are_exact() -> None:
    # per block: 2 LN (1,024) + qkv (197,376) + proj (65,792) + fc1 (263,168) + fc2 (262,400) = 789,760;
    # embed 65,792 + mask token 256 + temporal 7,680 + spatial 6,400 + LN 512 + pred 3,084 = 83,724
    assert n_params(MAMPDecoder(depth=3)) == 3 * 789_760 + 83_724 == 2_453_004  # NTU60
    assert n_params(MAMPDecoder(depth=5)) == 5 * 789_760 + 83_724 == 4_032_524  # NTU120 / PKU
    objective = create_objective("mamp", decoder_depth=5)
    assert isinstance(objective, MAMPPretraining) and not objective.needs_labels
    assert n_params(objective) == 4_032_524  # the decoder is all the objective owns


def test_full_size_keeps_75_of_750_tokens() -> None:
    model = create_model("mamp", num_classes=0)
    objective = create_objective("mamp")
    torch.manual_seed(0)
    out = objective(model, {"skeleton": torch.randn(1, 2, 120, 25, 3)})
    assert out.batch_size == 1 and torch.isfinite(out.loss) and out.losses["mse"] == out.loss
    assert out.metrics["masked_fraction"].item() == pytest.approx(675 / 750, abs=1e-7)
    bodies = torch.randn(2, 120, 25, 3)
    assert objective.draw_mask(bodies).keep_index.shape == (2, 75)
    official = create_objective("mamp", official_floor=True)
    assert official.draw_mask(bodies).keep_index.shape == (2, 74)  # upstream's int(750 * 0.1)


def test_model_of_other_size_is_refused_in_one_line() -> None:
    model, _ = tiny_pair()
    objective = create_objective("mamp", **{**TINY, "num_frames": 32}, encoder_dim=32, decoder_dim=32,
                                 decoder_depth=1, decoder_heads=4)
    with pytest.raises(ValueError, match=r"num_frames is 32 but the model's encoder has 16") as info:
        objective(model, {"skeleton": torch.randn(1, 1, 16, 25, 3)})
    assert "\n" not in str(info.value)
    wide = create_objective("mamp", **TINY, encoder_dim=64, decoder_dim=32, decoder_depth=1, decoder_heads=4)
    with pytest.raises(ValueError, match=r"encoder_dim is 64 but the model's encoder has 32"):
        wide(model, {"skeleton": torch.randn(1, 1, 16, 25, 3)})


# --- masking ---------------------------------------------------------------------------------


@pytest.mark.parametrize("tau", [0.8, 0.0])
def test_masking_prefers_moving_tokens_unless_tau_is_zero(tau: float) -> None:
    _, objective = tiny_pair(tau=tau, mask_ratio=0.5)
    gen = torch.Generator().manual_seed(0)
    bodies = torch.randn(400, 1, 25, 3, generator=gen).expand(400, 16, 25, 3).clone()  # static joints
    bodies[:, :, :5] = 0.1 * torch.randn(400, 16, 5, 3, generator=gen)  # joints 0-4 move every frame
    torch.manual_seed(0)
    hidden = objective.draw_mask(bodies).mask.view(400, 4, 25)
    moving, static = hidden[:, :, :5].mean().item(), hidden[:, :, 5:].mean().item()
    if tau > 0:
        assert moving > static + 0.2  # measured 0.76 vs 0.44
    else:
        assert abs(moving - static) < 0.03  # 8,000 draws each side: std of the difference 0.006


# --- target and loss --------------------------------------------------------------------------


def numpy_target(x: np.ndarray, stride: int, segment: int, normalise: bool) -> np.ndarray:
    """Plain numpy reference: motion, patchify to (segment, joint) tokens of (frame, channel)."""
    n, t, v, c = x.shape
    motion = np.zeros_like(x)
    motion[:, : t - stride] = x[:, stride:] - x[:, : t - stride]
    tokens = motion.reshape(n, t // segment, segment, v, c).transpose(0, 1, 3, 2, 4).reshape(n, -1, segment * c)
    if normalise:
        mean = tokens.mean(axis=-1, keepdims=True)
        var = tokens.var(axis=-1, ddof=1, keepdims=True)  # upstream: torch's unbiased var
        tokens = (tokens - mean) / np.sqrt(var + 1e-6)
    return tokens


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("norm_target", [True, False])
def test_motion_target_matches_numpy_reference(stride: int, norm_target: bool) -> None:
    x = np.random.default_rng(stride).normal(size=(3, 16, 25, 3))
    _, objective = tiny_pair(motion_stride=stride, norm_target=norm_target)
    got = objective.target(torch.from_numpy(x)).numpy()
    assert got.shape == (3, 100, 12)
    np.testing.assert_allclose(got, numpy_target(x, stride, 4, norm_target), rtol=1e-10, atol=1e-10)
    motion = motion_target(torch.from_numpy(x), stride).numpy()
    assert np.all(motion[:, -stride:] == 0)
    np.testing.assert_array_equal(motion[:, 5], x[:, 5 + stride] - x[:, 5])


def test_normalised_tokens_have_zero_mean_and_unbiased_unit_variance() -> None:
    tokens = torch.randn(4, 7, 12, dtype=torch.float64) * 3 + 1
    out = normalise_tokens(tokens)
    assert torch.allclose(out.mean(dim=-1), torch.zeros(4, 7, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(out.var(dim=-1), torch.ones(4, 7, dtype=torch.float64), atol=1e-5)


def test_masked_mse_counts_hidden_tokens_only() -> None:
    pred = torch.zeros(1, 3, 2)
    target = torch.tensor([[[1.0, 1.0], [2.0, 0.0], [9.0, 9.0]]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])  # token 2 is visible
    assert masked_mse(pred, target, mask).item() == pytest.approx((1.0 + 2.0) / 2)
    changed = target.clone()
    changed[0, 2] = -100.0
    assert masked_mse(pred, changed, mask).item() == pytest.approx(1.5)
    changed[0, 0] = 0.0
    assert masked_mse(pred, changed, mask).item() == pytest.approx(1.0)


def test_objective_loss_is_masked_mse_with_its_own_mask() -> None:
    model, objective = tiny_pair()
    batch = {"skeleton": torch.randn(2, 2, 16, 25, 3)}
    torch.manual_seed(5)
    out = objective(model, batch)
    torch.manual_seed(5)  # the same draw from the global stream: the same mask
    bodies = objective.bodies(batch["skeleton"])
    mask = objective.draw_mask(bodies)
    with torch.no_grad():
        pred = objective.predict(model.encoder, bodies, mask)
    target = objective.target(bodies)
    assert out.loss.item() == pytest.approx(masked_mse(pred, target, mask.mask).item(), rel=1e-6)
    visible = mask.mask == 0
    assert int(visible.sum()) == 4 * 10  # 10 of 100 tokens per body
    moved = target.clone()
    moved[visible] += 5.0  # a visible token's target does not count
    assert masked_mse(pred, moved, mask.mask).item() == pytest.approx(out.loss.item(), rel=1e-6)
    everything = (pred - target).pow(2).mean().item()
    assert abs(everything - out.loss.item()) > 1e-4  # not the mean over all tokens


def test_decoder_puts_visible_latents_at_their_tokens() -> None:
    torch.manual_seed(0)
    decoder = MAMPDecoder(encoder_dim=8, decoder_dim=16, depth=1, num_heads=2, num_segments=3, num_joints=4)
    keep_index = torch.tensor([[5, 0, 11], [2, 7, 3]])
    hidden = torch.tensor([[i for i in range(12) if i not in row] for row in keep_index.tolist()])
    order = torch.cat([keep_index, hidden], dim=1)
    restore_index = torch.argsort(order, dim=1)
    visible = torch.randn(2, 3, 8)
    full = decoder.mask_token.expand(2, 12, 16).clone()
    for b in range(2):
        full[b, keep_index[b]] = decoder.decoder_embed(visible[b])
    full = full + (decoder.decoder_pos_embed + decoder.decoder_temp_embed).reshape(1, 12, 16)
    for block in decoder.decoder_blocks:
        full = block(full)
    expected = decoder.decoder_pred(decoder.decoder_norm(full))
    assert torch.allclose(decoder(visible, restore_index), expected, atol=1e-6)


# --- official checkpoint layout, decoder included ----------------------------------------------


def test_decoder_keys_are_upstreams_unchanged() -> None:
    layout = official_layout()
    decoder_keys = {k: v[0] for k, v in layout.items() if MAMP_PRETRAIN.is_discarded(k)}
    assert "mask_token" in decoder_keys and "decoder_blocks.4.mlp.fc2.bias" in decoder_keys
    ours = {k: v[0] for k, v in layout_of(MAMPDecoder(depth=5).state_dict()).items()}
    assert ours == decoder_keys


def test_official_pretrain_checkpoint_splits_into_encoder_and_objective_and_back() -> None:
    layout = official_layout()
    official = fake_official(layout)
    kwargs = mamp_objective_kwargs(official)
    assert kwargs == {"num_frames": 120, "num_joints": 25, "in_channels": 3, "segment_frames": 4,
                      "encoder_dim": 256, "decoder_dim": 256, "decoder_depth": 5}
    model = create_model("mamp", num_classes=0)
    objective = create_objective("mamp", **kwargs)
    encoder_state, objective_state = split_mamp_pretrain(official)
    check_layout("mamp_pretrain", "official -> ours", encoder_state, layout_of(model.encoder.state_dict()), True)
    check_layout("mamp_pretrain", "official -> ours", objective_state, layout_of(objective.state_dict()), True)
    model.encoder.load_state_dict(encoder_state, strict=True)
    objective.load_state_dict(objective_state, strict=True)
    assert torch.equal(objective.decoder.mask_token, official["mask_token"])
    qkv = objective.decoder.decoder_blocks[4].attn.qkv.weight
    assert torch.equal(qkv, official["decoder_blocks.4.attn.qkv.weight"])
    assert torch.equal(model.encoder.temporal_embed, official["temp_embed"])
    back = join_mamp_pretrain(model.encoder.state_dict(), objective.state_dict())
    assert sorted(back) == sorted(layout)  # every key, nothing more
    assert all(torch.equal(back[k], official[k]) for k in layout)


def test_our_encoder_and_objective_write_the_official_layout() -> None:
    layout = official_layout()
    model = create_model("mamp", num_classes=0)
    objective = create_objective("mamp", decoder_depth=5)
    official = join_mamp_pretrain(model.encoder.state_dict(), objective.state_dict())
    check_layout("mamp_pretrain", "ours -> official", official, layout, check_dtype=True)
    encoder_state, objective_state = split_mamp_pretrain(official)
    assert list(objective_state) == list(objective.state_dict())
    assert all(torch.equal(objective_state[k], v) for k, v in objective.state_dict().items())
    assert all(torch.equal(encoder_state[k], v) for k, v in model.encoder.state_dict().items())


def test_ntu60_checkpoint_has_three_decoder_blocks() -> None:
    extra_blocks = ("decoder_blocks.3.", "decoder_blocks.4.")
    layout = {k: v for k, v in official_layout().items() if not k.startswith(extra_blocks)}
    official = fake_official(layout)
    converted = convert_objective_part("mamp_pretrain", official)
    assert converted is not None
    state, report = converted
    assert report.objective == "mamp" and report.objective_kwargs["decoder_depth"] == 3
    create_objective("mamp", decoder_depth=3).load_state_dict(state, strict=True)
    assert convert_objective_part("mamp", official) is None  # the fine-tune converter has no objective part


def test_unknown_decoder_key_is_an_error_never_silent() -> None:
    official = fake_official(official_layout())
    official["decoder_extra"] = torch.ones(1)
    with pytest.raises(LayoutMismatchError) as info:
        convert_objective_part("mamp_pretrain", official)
    assert info.value.leftover == ["decoder.decoder_extra"]
    official = fake_official(official_layout())
    official["encoder_extra"] = torch.ones(1)
    with pytest.raises(UnmappedKeysError):
        split_mamp_pretrain(official)


def test_cli_writes_the_objective_part_beside_the_encoder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    official = fake_official(official_layout(), seed=2)
    src, out = tmp_path / "mamp.pth", tmp_path / "mamp_pretrain.safetensors"
    torch.save({"model": official, "epoch": 399}, src)
    parser = argparse.ArgumentParser()
    add_convert_checkpoint_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["convert-checkpoint", "--from", "mamp_pretrain", str(src), str(out)])
    assert args.func(args) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    objective_path = tmp_path / "mamp_pretrain.objective.safetensors"
    assert report["objective_out"] == str(objective_path) and report["dropped_by_name"] == []
    assert report["objective_tensors"] == len([k for k in official if MAMP_PRETRAIN.is_discarded(k)])
    with safe_open(str(objective_path), "pt") as f:
        meta = f.metadata()
    objective = create_objective("mamp", **json.loads(meta["objective_kwargs"]))
    objective.load_state_dict(load_file(str(objective_path)), strict=True)
    model = create_model("mamp", num_classes=0)
    model.encoder.load_state_dict(load_file(str(out)), strict=True)
    assert torch.equal(objective.decoder.decoder_pred.weight, official["decoder_pred.weight"])
    assert torch.equal(model.encoder.blocks[7].norm2.bias, official["blocks.7.norm2.bias"])


# --- learning -------------------------------------------------------------------------------------


def test_a_few_adamw_steps_learn_the_motion_of_a_fixed_batch() -> None:
    torch.manual_seed(0)
    model, objective = tiny_pair(dim=64)
    t = torch.arange(16.0).view(1, 1, 16, 1, 1)
    velocity, acceleration = torch.randn(1, 1, 1, 25, 3), 0.1 * torch.randn(1, 1, 1, 25, 3)
    batch = {"skeleton": (velocity * t + acceleration * t * t).expand(4, 2, 16, 25, 3).contiguous()}
    optimizer = torch.optim.AdamW([*model.parameters(), *objective.parameters()], lr=3e-3)

    def held_out_loss() -> float:
        torch.manual_seed(123)  # one fixed mask, not seen in training
        with torch.no_grad():
            return objective(model, batch).loss.item()

    before = held_out_loss()
    for _ in range(80):
        loss = objective(model, batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = held_out_loss()
    assert after < 0.2 * before
    assert after < 0.5 * (11 / 12)  # well below predicting 0 (normalised tokens: (P - 1) / P)
