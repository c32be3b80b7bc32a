"""The multimodal Recognizer: built from config data, trains with any subset of modalities,
modality dropout, weighted stream losses, late fusion and EPAM's attention as a fusion."""

from __future__ import annotations

import itertools

import pytest
import torch

from actionfusion.fusion.base import create_fusion
from actionfusion.fusion.recognizer import Recognizer, sample_modality_keep
from actionfusion.modalities.features import EncoderOutput
from actionfusion.pipeline.config import ExperimentConfig
from actionfusion.pipeline.trainer import build_model
from actionfusion.pipeline.train_loop import FeaturesAndLogits
from actionfusion.registry import create_model, list_registered

CLASSES = 5
SMALL_ENCODERS = {
    "skeleton": {"name": "ctrgcn", "kwargs": {"base_channels": 8}},
    "depth": {"name": "depth_tsm", "kwargs": {"widths": [8, 8, 16, 16]}},
    "rgb": {"name": "tsm_frames", "kwargs": {"widths": [8, 8, 16, 16]}},
}


pytestmark = pytest.mark.usefixtures("one_thread")


def batch(n: int = 4, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"skeleton": torch.randn(n, 2, 8, 25, 3, generator=g), "depth": torch.randn(n, 1, 4, 24, 24, generator=g),
            "rgb": torch.randn(n, 3, 4, 24, 24, generator=g)}


def recognizer(entries=("skeleton", "depth", "rgb"), fusion=None, **kwargs) -> Recognizer:
    torch.manual_seed(0)
    encoders = {name: SMALL_ENCODERS[name] for name in entries}
    return create_model("recognizer", num_classes=CLASSES, encoders=encoders,
                        fusion=fusion or {"name": "mmixer", "kwargs": {}}, **kwargs)


def test_every_fusion_is_registered():
    create_fusion("late", {"a": 4})  # imports the built-in fusion modules
    assert {"late", "mmixer", "deformable3d", "pose_guided_attention"} <= set(list_registered("fusion"))


def test_built_from_an_experiment_config():
    cfg = ExperimentConfig.from_dict({"model": {"name": "recognizer", "num_classes": CLASSES, "kwargs": {
        "encoders": SMALL_ENCODERS, "fusion": {"name": "late", "kwargs": {"weights": {"depth": 2.0}}},
        "aux_loss_weight": 0.3}}})
    model = build_model(cfg)
    assert isinstance(model, Recognizer)
    assert model.input_keys == ("skeleton", "depth", "rgb")
    assert model.dims == {"skeleton": 32, "depth": 16, "rgb": 16}
    with pytest.raises(ValueError, match="needs 'name'"):
        Recognizer(CLASSES, {"skeleton": {"kwargs": {}}}, {"name": "late"})


def test_a_malformed_part_spec_is_a_usage_error_that_shows_the_yaml_slip():
    from actionfusion.errors import UsageError

    # `--set "model.kwargs.encoders={rgb: {name:tsm_frames}}"`: YAML reads one key "name:tsm_frames"
    with pytest.raises(UsageError, match=r"encoder 'rgb'.*\['name:tsm_frames'\].*space after each colon"):
        Recognizer(CLASSES, {"rgb": {"name:tsm_frames": None}}, {"name": "late"})
    with pytest.raises(UsageError, match="fusion: needs 'name'"):
        Recognizer(CLASSES, SMALL_ENCODERS, {"kind": "late"})
    with pytest.raises(UsageError, match="expected a mapping"):
        Recognizer(CLASSES, {"rgb": "tsm_frames"}, {"name": "late"})


@pytest.mark.parametrize("fusion", ["mmixer", "late"])
def test_trains_and_infers_with_any_subset_of_modalities(fusion):
    entries = ("skeleton", "depth", "rgb")
    for size in (1, 2, 3):
        for subset in itertools.combinations(entries, size):
            model = recognizer(subset, {"name": fusion}, aux_loss_weight=0.5, modality_dropout=0.3)
            wrapped = FeaturesAndLogits(model)
            x = {k: v for k, v in batch().items() if k in subset}
            logits, aux, streams = wrapped(x)
            loss = sum(model.stream_loss_weights[name] * torch.nn.functional.cross_entropy(z, torch.arange(4) % CLASSES)
                       for name, z in streams.items())
            loss.backward()
            assert logits.shape == (4, CLASSES) and torch.isfinite(loss)
            grads = [p.grad for p in model.parameters() if p.requires_grad]
            assert all(g is not None and torch.isfinite(g).all() for g in grads), subset
            model.eval()
            for k in range(1, size + 1):  # inference with fewer modalities than trained with
                for present in itertools.combinations(subset, k):
                    out = model({key: x[key] for key in present})
                    assert out.shape == (4, CLASSES) and torch.isfinite(out).all()


def test_one_training_step_lowers_the_loss_of_a_fixed_batch():
    model = recognizer(fusion={"name": "mmixer"}, aux_loss_weight=0.5)
    wrapped = FeaturesAndLogits(model)
    x, y = batch(8), torch.arange(8) % CLASSES
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.eval()  # no dropout / BN noise: compare the same function before and after
    losses = []
    for _ in range(6):
        _, _, streams = wrapped(x)
        loss = sum(model.stream_loss_weights[k] * torch.nn.functional.cross_entropy(z, y) for k, z in streams.items())
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[-1] < losses[0]


def test_missing_inputs_are_not_run_and_an_empty_batch_is_named():
    model = recognizer(("skeleton", "depth")).eval()
    feats = model.forward_features({"depth": batch()["depth"]})
    assert set(feats.modalities) == {"depth"} and set(feats.present) == {"depth"}
    with pytest.raises(KeyError, match="none of the recognizer's inputs"):
        model.forward_features({"rgb": batch()["rgb"]})


def test_modality_dropout_keeps_at_least_one_modality_and_drops_at_the_rate():
    torch.manual_seed(0)
    keep = sample_modality_keep(20000, 3, 0.3, torch.device("cpu"))
    assert keep.any(dim=1).all()
    # P(drop) = 0.3, raised slightly by the rows that had everything dropped (0.3^3 / 3 per entry)
    assert abs(float((~keep).float().mean()) - (0.3 - 0.3 ** 3 / 3)) < 0.01
    model = recognizer(modality_dropout=0.5).train()
    feats = model.forward_features(batch(16))
    present = torch.stack([feats.present[k] for k in ("skeleton", "depth", "rgb")], dim=1)
    assert present.any(dim=1).all() and not present.all()
    model.eval()
    feats = model.forward_features(batch(16))
    assert all(bool(v.all()) for v in feats.present.values())


def test_stream_losses_carry_the_configured_weights():
    assert recognizer(aux_loss_weight=0.0).stream_loss_weights == {"fused": 1.0}
    assert recognizer(aux_loss_weight=0.25).stream_loss_weights == {"fused": 1.0, "skeleton": 0.25, "depth": 0.25,
                                                                    "rgb": 0.25}
    model = recognizer(aux_loss_weight=0.0)
    assert model.ddp_find_unused_parameters  # encoder heads get no gradient: DDP must not wait for them
    assert set(model.forward_stream_logits(model.forward_features(batch()))) == {"fused"}


def test_late_fusion_is_the_weighted_sum_of_the_encoder_heads_over_present_modalities():
    model = recognizer(("skeleton", "depth"), {"name": "late", "kwargs": {"weights": {"skeleton": 1.0, "depth": 3.0}}})
    model.eval()
    x = batch()
    z_s = model.encoders["skeleton"](x["skeleton"])
    z_d = model.encoders["depth"](x["depth"])
    torch.testing.assert_close(model(x), z_s + 3.0 * z_d)
    torch.testing.assert_close(model({"skeleton": x["skeleton"]}), z_s)
    with pytest.raises(ValueError, match="not encoders"):
        recognizer(("skeleton",), {"name": "late", "kwargs": {"weights": {"rgb": 1.0}}})


def _map(n, c, t, h, w, seed):
    g = torch.Generator().manual_seed(seed)
    seq = torch.randn(n, t, c, generator=g)
    spatial = torch.randn(n, c, t, h, w, generator=g)
    return EncoderOutput(sequence=seq, pooled=spatial.mean(dim=(2, 3, 4)), spatial=spatial)


def test_pose_guided_attention_lets_pose_reweight_rgb_only_where_pose_is_present():
    fusion = create_fusion("pose_guided_attention", {"rgb": 6, "pose": 4}, rgb_key="rgb", pose_key="pose").eval()
    rgb, pose, other = _map(3, 6, 4, 5, 5, 0), _map(3, 4, 12, 7, 7, 1), _map(3, 4, 12, 7, 7, 2)
    everyone = {"rgb": torch.ones(3, dtype=torch.bool), "pose": torch.ones(3, dtype=torch.bool)}
    out = fusion({"rgb": rgb, "pose": pose}, everyone)
    assert out.pooled.shape == (3, 10) and fusion.out_dim == 10
    changed = fusion({"rgb": rgb, "pose": other}, everyone)
    assert not torch.allclose(out.branches["rgb"], changed.branches["rgb"])  # cross-modal path alive
    # the attended map is f + f * A with A in (0, 1): never below f's own GAP where f > 0 everywhere
    absent = fusion({"rgb": rgb, "pose": pose}, {**everyone, "pose": torch.tensor([True, False, True])})
    torch.testing.assert_close(absent.branches["rgb"][1], rgb.spatial[1].mean(dim=(1, 2, 3)))
    torch.testing.assert_close(absent.branches["rgb"][0], out.branches["rgb"][0])
    alone = fusion({"rgb": rgb}, {"rgb": everyone["rgb"]})
    torch.testing.assert_close(alone.branches["rgb"], rgb.spatial.mean(dim=(2, 3, 4)))
    with pytest.raises(ValueError, match="no image layout"):
        joints = EncoderOutput(sequence=torch.zeros(3, 4, 4), pooled=torch.zeros(3, 4), spatial=torch.zeros(3, 4, 4, 25))
        fusion({"rgb": rgb, "pose": joints}, everyone)
