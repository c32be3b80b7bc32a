"""CascadeFormer: person selection, the stage-1 slot mask and loss, exact parameter counts, the
encoder contract, and stage 2 starting from stage 1's weights through the pipeline's loaders."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from actionfusion.modalities.encoder_contract import check_encoder
from actionfusion.modalities.skeleton.cascadeformer import CascadeHead, FrameTransformer, select_person
from actionfusion.objectives import create_objective
from actionfusion.objectives.cascadeformer import masked_slot_count, masked_slot_mse, random_slot_mask
from actionfusion.pipeline.checkpoints import save_weights
from actionfusion.pipeline.config import load_config
from actionfusion.pipeline.probe import protocol_config
from actionfusion.pipeline.trainer import build_model, initialise_from, load_pretrained
from actionfusion.registry import create_model

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]
TINY = {"embed_dim": 16, "num_heads": 2, "depth": 2, "mlp_dim": 24, "max_frames": 12}


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def transformer_layer_params(d: int, m: int) -> int:
    """One post-LN TransformerEncoderLayer: attention 4d^2 + 4d, FFN 2dm + m + d, two LayerNorms 4d."""
    return 4 * d * d + 4 * d + 2 * d * m + m + d + 4 * d


def t1_params(d: int, layers: int, m: int, frames: int = 64, joints: int = 25, channels: int = 3) -> int:
    return (joints * channels + 1) * d + frames * d + layers * transformer_layer_params(d, m)


def cascade_head_params(d: int, layers: int, m: int, classes: int, ffn: int | None = None) -> int:
    f = d if ffn is None else ffn
    cross = 4 * d * d + 4 * d + 2 * d + (d * f + f + f * d + d) + 2 * d
    mlp = 2 * d + d * d + d + d * classes + classes
    return layers * transformer_layer_params(d, m) + cross + mlp


def skeletons(batch: int = 3, persons: int = 2, frames: int = 10, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, persons, frames, 25, 3, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("d, heads, layers, m, classes, ffn", [(16, 2, 2, 24, 7, None), (24, 4, 3, 40, 60, 10)])
def test_parameter_counts_follow_the_analytic_formulas(d: int, heads: int, layers: int, m: int, classes: int,
                                                       ffn: int | None) -> None:
    kwargs = {"embed_dim": d, "num_heads": heads, "depth": layers, "mlp_dim": m, "cross_ffn_dim": ffn}
    bare = create_model("cascadeformer", num_classes=0, **kwargs)
    full = create_model("cascadeformer", num_classes=classes, **kwargs)
    assert n_params(bare) == t1_params(d, layers, m)
    assert n_params(full.head) == cascade_head_params(d, layers, m, classes, ffn)
    assert n_params(full) == t1_params(d, layers, m) + cascade_head_params(d, layers, m, classes, ffn)
    assert n_params(create_objective("cascadeformer", embed_dim=d)) == d * 75 + 75  # Linear(d -> 25 x 3)


def test_published_cross_view_size_counts_exactly() -> None:
    # d 512, 8 heads, 12 layers, feed-forward 2048 (upstream's nn.TransformerEncoderLayer default)
    t1 = FrameTransformer(embed_dim=512, num_heads=8, depth=12)
    assert n_params(t1) == t1_params(512, 12, 2048) == 37_900_288
    head = CascadeHead(512, 60, num_heads=8, depth=12)
    assert n_params(head) == cascade_head_params(512, 12, 2048, 60) == 39_701_052


def test_person_selection_picks_the_largest_summed_absolute_value_per_clip() -> None:
    x = torch.zeros(3, 2, 4, 25, 3)
    x[0, 0] = 1.0  # clip 0: body 0
    x[1, 0] = 0.5
    x[1, 1] = -0.6  # clip 1: body 1, through |x| (its sum is negative)
    x[2, 1, 0, 0, 0] = 1e-3  # clip 2: a near-empty body 1 beats the all-zero body 0
    chosen, index = select_person(x)
    assert index.tolist() == [0, 1, 1]
    assert torch.equal(chosen, x[torch.arange(3), index])
    # ties (two zero bodies) go to the first body
    assert select_person(torch.zeros(1, 2, 3, 25, 3))[1].tolist() == [0]
    # the model and the objective see the same body
    model = create_model("cascadeformer", num_classes=0, **TINY).eval()
    feats = model.forward_features(x)
    assert feats.aux["person_index"].tolist() == [0, 1, 1]
    torch.testing.assert_close(feats.sequence, model.encoder(chosen))


@pytest.mark.parametrize("ratio, frames", [(0.3, 32), (0.3, 10), (0.5, 7), (0.15, 64)])
def test_exactly_the_configured_share_of_slots_is_masked(ratio: float, frames: int) -> None:
    torch.manual_seed(0)
    mask = random_slot_mask(6, frames, 25, ratio)
    expected = int(ratio * frames * 25)
    assert masked_slot_count(frames, 25, ratio) == expected
    assert mask.dtype == torch.bool and mask.shape == (6, frames, 25)
    assert mask.flatten(1).sum(dim=1).tolist() == [expected] * 6
    assert not torch.equal(mask[0], mask[1])  # drawn per clip


def test_the_objective_zeroes_exactly_the_masked_slots() -> None:
    model = create_model("cascadeformer", num_classes=0, **TINY)
    objective = create_objective("cascadeformer", embed_dim=16, mask_ratio=0.3)
    seen = {}
    original = model.encoder.forward

    def spy(x: torch.Tensor) -> torch.Tensor:
        seen["input"] = x.detach().clone()
        return original(x)

    model.encoder.forward = spy  # type: ignore[method-assign]
    x = skeletons() + 5.0  # no coordinate is zero
    torch.manual_seed(3)
    out = objective(model, {"skeleton": x})
    torch.manual_seed(3)
    bodies, _ = select_person(x)
    mask = objective.draw_mask(bodies)
    zeroed = (seen["input"] == 0).all(dim=-1)
    assert torch.equal(zeroed, mask)
    assert float(out.metrics["masked_fraction"]) == pytest.approx(int(0.3 * 10 * 25) / 250)
    assert torch.equal(seen["input"][~mask], bodies[~mask])


def test_the_loss_ignores_unmasked_slots() -> None:
    gen = torch.Generator().manual_seed(1)
    target = torch.randn(2, 6, 25, 3, generator=gen)
    pred = torch.randn(2, 6, 25, 3, generator=gen)
    torch.manual_seed(0)
    mask = random_slot_mask(2, 6, 25, 0.3)
    loss = masked_slot_mse(pred, target, mask)
    changed = pred.clone()
    changed[~mask] += 100.0 * torch.randn_like(changed[~mask])
    assert torch.equal(masked_slot_mse(changed, target, mask), loss)
    manual = ((pred - target) ** 2)[mask].mean()
    torch.testing.assert_close(loss, manual)
    # predictions of masked slots do move it; so does the gradient reach only them
    pred.requires_grad_(True)
    masked_slot_mse(pred, target, mask).backward()
    assert torch.all(pred.grad[~mask] == 0) and torch.all(pred.grad[mask].abs().sum(-1) > 0)


def test_the_objective_trains_t1_and_its_reconstruction_head() -> None:
    torch.manual_seed(0)
    model = create_model("cascadeformer", num_classes=0, **TINY)
    objective = create_objective("cascadeformer", embed_dim=16)
    x = skeletons(frames=8)
    out = objective(model, {"skeleton": x})
    out.loss.backward()
    assert out.batch_size == 3 and "mse" in out.losses
    assert all(p.grad is not None for p in model.parameters())
    assert objective.reconstruction_head.weight.grad is not None
    with pytest.raises(ValueError, match="embed_dim"):
        create_objective("cascadeformer", embed_dim=32)(model, {"skeleton": x})


def test_encoder_contract() -> None:
    x = skeletons(frames=8)
    torch.manual_seed(0)
    bare = create_model("cascadeformer", num_classes=0, **TINY).eval()
    torch.manual_seed(0)
    full = create_model("cascadeformer", num_classes=5, **TINY).eval()
    for model in (bare, full):
        check_encoder(model)
        assert model.input_keys == ("skeleton",) and model.num_features == 16
    assert bare.head is None and set(bare.state_dict()) < set(full.state_dict())
    assert all(k.startswith("encoder.") for k in bare.state_dict())
    feats = bare.forward_features(x)
    assert feats.sequence.shape == (3, 8, 16) and feats.pooled.shape == (3, 16)
    torch.testing.assert_close(bare(x), feats.sequence.mean(dim=1))
    full_feats = full.forward_features(x)
    assert full(x).shape == (3, 5)
    assert isinstance(full.head, CascadeHead)
    # pre_logits: the MLP head's input, the time-averaged cross-attended sequence
    pre = full.forward_head(full_feats, pre_logits=True)
    torch.testing.assert_close(pre, full.head.cross_attention(full_feats.sequence, full.head.t2(full_feats.sequence))
                               .mean(dim=1))
    torch.testing.assert_close(full.head.mlp(pre), full(x))
    bare.reset_classifier(5)
    assert {k: v.shape for k, v in bare.state_dict().items()} == {k: v.shape for k, v in full.state_dict().items()}
    bare.reset_classifier(0)
    assert bare.head is None
    with pytest.raises(ValueError, match="max_frames"):
        bare(skeletons(frames=13))


def tiny_config(**extra: str):  # type: ignore[no-untyped-def]
    sizes = [f"model.kwargs.{k}={v}" for k, v in TINY.items()]
    return load_config(ROOT / "configs/synthetic/cascadeformer.yaml", sizes + [f"{k}={v}" for k, v in extra.items()])


def test_stage_two_starts_from_stage_one_weights_exactly(tmp_path: Path) -> None:
    cfg = tiny_config()
    # stage 1: the pretraining model (num_classes=0) after an optimiser step, written as `pretrain` does
    torch.manual_seed(0)
    stage1 = build_model(cfg, num_classes=0)
    objective = create_objective("cascadeformer", embed_dim=16)
    optimizer = torch.optim.Adam([*stage1.parameters(), *objective.parameters()], lr=1e-2)
    objective(stage1, {"skeleton": skeletons(frames=8)}).loss.backward()
    optimizer.step()
    weights = tmp_path / "encoder.safetensors"
    save_weights(weights, stage1, {"model": "cascadeformer"})

    # stage 2 (`train --pretrained`): every T1 tensor loaded, the cascade head left at its initialisation
    torch.manual_seed(1)
    stage2 = build_model(cfg)
    torch.manual_seed(1)
    fresh = build_model(cfg)
    head_keys = load_pretrained(stage2, weights, cfg)
    assert head_keys == sorted(k for k in stage2.state_dict() if k.startswith("head."))
    s1, s2, s0 = stage1.state_dict(), stage2.state_dict(), fresh.state_dict()
    assert set(s1) == {k for k in s2 if k.startswith("encoder.")}
    assert all(torch.equal(s2[k], s1[k]) for k in s1)
    assert all(torch.equal(s2[k], s0[k]) for k in head_keys)
    assert any(not torch.equal(s0[k], s1[k]) for k in s1)  # the stage-1 step changed T1
    x = skeletons(frames=8)
    stage1.eval(), stage2.eval()
    torch.testing.assert_close(stage2.forward_features(x).sequence, stage1.forward_features(x).sequence,
                               rtol=0, atol=0)

    # the linear probe (`probe --protocol linear --pretrained`) reads the same T1
    probe_cfg = protocol_config(cfg, "linear", str(weights), seed=0)
    probe = build_model(probe_cfg)
    initialise_from(probe, probe_cfg.model.init)
    assert all(torch.equal(probe.encoder.state_dict()[k], s1[k]) for k in s1)


def test_stage_two_refuses_another_size(tmp_path: Path) -> None:
    from actionfusion.pipeline.config import ConfigError

    torch.manual_seed(0)
    other = create_model("cascadeformer", num_classes=0, **{**TINY, "embed_dim": 8})
    weights = tmp_path / "encoder.safetensors"
    save_weights(weights, other)
    cfg = tiny_config()
    with pytest.raises(ConfigError, match="shapes differ"):
        load_pretrained(build_model(cfg), weights, cfg)


def test_official_checkpoints_convert_into_t1_and_the_objective() -> None:
    import json

    from actionfusion.pipeline.official_checkpoints.cascadeformer_converters import (
        CASCADEFORMER_STAGE2,
        cascadeformer_objective_kwargs,
        join_cascadeformer_stage2,
        split_cascadeformer_pretrain,
    )

    layouts = ROOT / "tests" / "data" / "official_layouts"
    keys = json.loads((layouts / "cascadeformer_pretrain.json").read_text())["keys"]
    gen = torch.Generator().manual_seed(0)
    official = {k: torch.randn(shape, generator=gen) for k, (shape, _) in keys.items()}
    encoder, head = split_cascadeformer_pretrain(official)
    kwargs = cascadeformer_objective_kwargs(official)
    assert kwargs == {"embed_dim": 512, "num_joints": 25, "in_channels": 3}
    objective = create_objective("cascadeformer", **kwargs)
    objective.load_state_dict(head)  # strict
    t1 = FrameTransformer()
    t1.load_state_dict(encoder)  # strict
    assert torch.equal(t1.temporal_embed, official["pos_embedding"])
    assert torch.equal(objective.reconstruction_head.weight, official["reconstruction_head.weight"])
    # stage 2: upstream's four files joined; T1's unused reconstruction head is dropped
    stage2 = json.loads((layouts / "cascadeformer.json").read_text())["keys"]
    parts = {p: {k[len(p) + 1:]: torch.zeros(s) for k, (s, _) in stage2.items() if k.startswith(p + ".")}
             for p in ("t1", "t2", "cross_attn", "gait_head")}
    joined = join_cascadeformer_stage2(parts["t1"], parts["t2"], parts["cross_attn"], parts["gait_head"])
    assert list(joined) == list(stage2)
    assert CASCADEFORMER_STAGE2.discarded_keys(joined) == ["t1.reconstruction_head.weight", "t1.reconstruction_head.bias"]
