"""Every registered model keeps the encoder contract (timm's): ``num_classes=0`` builds no
classifier and gives the pooled features, ``forward_head(feats, pre_logits=True)`` gives them too,
``reset_classifier`` adds a head later, ``input_keys`` are declared. Also: the wildcard and
modality filters of ``list_models``, the heads registry, and registration without module lists."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any, Callable, Dict, Tuple

import pytest
import torch
from torch import nn

from actionfusion import registry
from actionfusion.fusion import base as fusion_base
from actionfusion.modalities.encoder_contract import Encoder, check_encoder, declared_input_keys
from actionfusion.modalities.features import EncoderOutput
from actionfusion.modalities.heads import BNLinearHead, LinearHead
from actionfusion.registry import create_head, create_model, get_entry, list_models, list_registered

pytestmark = pytest.mark.usefixtures("one_thread")

BUILTIN_MODALITIES = {
    "ctrgcn": "skeleton", "stgcn": "skeleton", "stgcnpp": "skeleton", "hypergcn": "skeleton",
    "hypergcn_large": "skeleton", "psumnet": "skeleton", "psumnet_body": "skeleton", "psumnet_hand": "skeleton",
    "psumnet_leg": "skeleton", "mamp": "skeleton", "depth_tsm": "depth", "tsm_frames": "rgb",
    "timm_frames": "rgb", "xshiftnet_rgb": "rgb", "xshiftnet_pose": "pose", "point_transformer": "points",
    "recognizer": "multimodal", "epam_net": "multimodal", "linear_probe": "any",
}


def _randn(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape)))


def skeleton(channels: int = 3) -> Dict[str, torch.Tensor]:
    return {"skeleton": _randn(2, 2, 8, 25, channels)}


SMALL_RECOGNIZER = {
    "encoders": {"skeleton": {"name": "ctrgcn", "kwargs": {"base_channels": 8}},
                 "depth": {"name": "depth_tsm", "kwargs": {"widths": [8, 8, 16, 16]}}},
    "fusion": {"name": "mmixer", "kwargs": {}},
}

# name -> (small constructor kwargs, the batch it reads). A model missing here fails the contract test.
SMALL: Dict[str, Tuple[Dict[str, Any], Callable[[], Dict[str, torch.Tensor]]]] = {
    "ctrgcn": ({"base_channels": 8}, skeleton),
    "stgcn": ({}, skeleton),
    "stgcnpp": ({}, skeleton),
    "stgcn_clr": ({"hidden_channels": 4, "hidden_dim": 8}, skeleton),
    "stgcn_unified": ({"hidden_channels": 4, "hidden_dim": 8}, skeleton),
    "bigru": ({"hidden_size": 6, "num_layers": 2}, skeleton),
    "hypergcn": ({}, skeleton),
    "hypergcn_large": ({}, skeleton),
    "psumnet": ({}, lambda: skeleton(12)),
    "psumnet_body": ({}, lambda: skeleton(12)),
    "psumnet_hand": ({}, lambda: skeleton(12)),
    "psumnet_leg": ({}, lambda: skeleton(12)),
    "mamp": ({"num_frames": 8, "embed_dim": 32, "depth": 1, "num_heads": 2, "head_hidden_dim": 16}, skeleton),
    "cascadeformer": ({"embed_dim": 16, "num_heads": 2, "depth": 1, "mlp_dim": 16, "max_frames": 8}, skeleton),
    "skeletonmae": ({"embed_dim": 16, "depth": 1}, skeleton),
    "aclnet": ({"base_channels": 24}, skeleton),
    "finetec_completion": ({"num_frames": 8, "dim": 16, "depth": 1, "temporal_hidden": 8, "spatial_hidden": 8,
                            "channel_hidden": 16, "num_prototypes": 4}, skeleton),
    "finetec": ({"num_frames": 8, "completion_kwargs": {"dim": 16, "depth": 1, "temporal_hidden": 8,
                                                        "spatial_hidden": 8, "channel_hidden": 16, "num_prototypes": 4},
                 "backbone_kwargs": {"base_channels": 8}}, skeleton),
    "depth_tsm": ({"widths": [8, 8, 16, 16]}, lambda: {"depth": _randn(2, 1, 4, 24, 24)}),
    "tsm_frames": ({"widths": [8, 8, 16, 16]}, lambda: {"rgb": _randn(2, 3, 4, 24, 24)}),
    "timm_frames": ({"backbone": "resnet18"}, lambda: {"rgb": _randn(2, 3, 2, 32, 32)}),
    "xshiftnet_rgb": ({}, lambda: {"rgb": _randn(2, 3, 2, 32, 32)}),
    # torchvision's video classifiers (actionfusion/modalities/rgb/torchvision_video.py): S3D's pooling
    # needs 224 x 224 and 16 frames
    "tv_r3d_18": ({}, lambda: {"rgb": _randn(2, 3, 4, 32, 32)}),
    "tv_mc3_18": ({}, lambda: {"rgb": _randn(2, 3, 4, 32, 32)}),
    "tv_r2plus1d_18": ({}, lambda: {"rgb": _randn(2, 3, 4, 32, 32)}),
    "tv_s3d": ({}, lambda: {"rgb": _randn(1, 3, 16, 224, 224)}),
    "tv_swin3d_t": ({}, lambda: {"rgb": _randn(2, 3, 4, 32, 32)}),
    "tv_swin3d_s": ({}, lambda: {"rgb": _randn(2, 3, 4, 32, 32)}),
    "tv_swin3d_b": ({}, lambda: {"rgb": _randn(2, 3, 4, 32, 32)}),
    "xshiftnet_pose": ({}, lambda: {"pose_heatmap": _randn(2, 17, 2, 16, 16)}),
    "point_transformer": ({}, lambda: {"points": _randn(2, 4, 64, 3)}),
    "epam_net": ({}, lambda: {"rgb": _randn(1, 3, 2, 64, 64), "pose_heatmap": _randn(1, 17, 2, 32, 32)}),
    "recognizer": (SMALL_RECOGNIZER, lambda: {**skeleton(), "depth": _randn(2, 1, 4, 24, 24)}),
    "linear_probe": ({"encoder": {"name": "ctrgcn", "kwargs": {"base_channels": 8}}}, skeleton),
    "_e2_tiny": ({}, skeleton),  # tests/trainer_standins.py, when a test module imported it
}


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def model_input(model: nn.Module, batch: Dict[str, torch.Tensor]) -> Any:
    keys = declared_input_keys(model)
    return batch[keys[0]] if len(keys) == 1 else {key: batch[key] for key in keys}


@pytest.mark.parametrize("name", list_models())
@torch.no_grad()
def test_every_registered_model_keeps_the_encoder_contract(name: str) -> None:
    assert name in SMALL, f"add a small variant of {name!r} to SMALL"
    kwargs, make_batch = SMALL[name]
    batch = make_batch()
    torch.manual_seed(0)
    bare = create_model(name, num_classes=0, **kwargs).eval()
    torch.manual_seed(0)
    full = create_model(name, num_classes=7, **kwargs).eval()
    for model in (bare, full):
        check_encoder(model)
        assert set(declared_input_keys(model)) <= set(batch)

    # num_classes=0: no classifier parameters at all (what reset_classifier adds below); forward gives the pooled
    assert bare.num_classes == 0 and bare.num_features == full.num_features
    bare_keys = set(bare.state_dict())
    assert bare_keys < set(full.state_dict()) and n_params(bare) < n_params(full)
    if isinstance(bare, Encoder):
        assert bare.get_classifier() is None
        assert n_params(bare) == n_params(full) - n_params(full.get_classifier())

    x = model_input(bare, batch)
    b = next(iter(batch.values())).shape[0]
    pooled = bare(x)
    feats = bare.forward_features(x)
    assert pooled.shape == (b, bare.num_features)
    torch.testing.assert_close(feats.pooled, pooled)
    torch.testing.assert_close(bare.forward_head(feats, pre_logits=True), pooled)

    # with a head: logits, and pre_logits gives the head's input (the pooled, but for MAMP's fine-tune head)
    full_feats = full.forward_features(x)
    assert full.forward_head(full_feats).shape == (b, 7)
    if name not in ("mamp", "cascadeformer", "skeletonmae"):  # their classifiers start from token sequences
        torch.testing.assert_close(full.forward_head(full_feats, pre_logits=True), full_feats.pooled)

    # reset_classifier adds a head with the same names and shapes as one built with the model
    bare.reset_classifier(7)
    assert bare.num_classes == 7
    assert {k: v.shape for k, v in bare.state_dict().items()} == {k: v.shape for k, v in full.state_dict().items()}
    assert bare.eval()(x).shape == (b, 7)
    assert n_params(bare) == n_params(full)
    bare.reset_classifier(0)
    assert set(bare.state_dict()) == bare_keys


def test_mamp_pre_logits_is_the_fine_tune_heads_input_and_the_encoder_stays_without_a_head() -> None:
    kwargs, make_batch = SMALL["mamp"]
    model = create_model("mamp", num_classes=5, **kwargs).eval()
    feats = model.forward_features(make_batch()["skeleton"])
    assert model.forward_head(feats, pre_logits=True).shape == (2, 25 * 32)  # [N, V * D]
    bare = create_model("mamp", num_classes=0, **kwargs)
    assert bare.head is None and hasattr(bare.encoder, "forward_tokens")
    assert not any(name.startswith("head.") for name in bare.state_dict())
    probe = create_model("mamp", num_classes=0, head="linear", **kwargs)
    probe.reset_classifier(5)
    assert isinstance(probe.head, BNLinearHead) and probe.encoder_frozen


def test_recognizer_with_late_fusion_and_no_classes_gives_the_concatenated_features() -> None:
    kwargs = {**SMALL_RECOGNIZER, "fusion": {"name": "late", "kwargs": {}}}
    model = create_model("recognizer", num_classes=0, **kwargs).eval()
    batch = SMALL["recognizer"][1]()
    assert model.get_classifier() is None and model(batch).shape == (2, 32 + 16)
    with pytest.raises(RuntimeError, match="reset_classifier"):
        model.forward_stream_logits(model.forward_features(batch))
    model.reset_classifier(3)
    assert model.head is None  # late fusion classifies with the encoders' heads
    assert set(model.get_classifier()) == {"skeleton", "depth"} and model.eval()(batch).shape == (2, 3)


def test_wildcard_and_modality_filters_are_exact() -> None:
    names = list_models()
    assert set(BUILTIN_MODALITIES) <= set(names) and names == sorted(names)
    assert list_models("*gcn*") == sorted(n for n in names if "gcn" in n)
    assert {"ctrgcn", "stgcn", "stgcnpp", "hypergcn", "hypergcn_large"} <= set(list_models("*gcn*"))
    for modality in set(BUILTIN_MODALITIES.values()):
        expected = sorted(n for n in names if get_entry("model", n).modality == modality)
        assert list_models(modality=modality) == expected
        assert {n for n, m in BUILTIN_MODALITIES.items() if m == modality} <= set(expected)
    assert list_models("psumnet*", modality="skeleton") == ["psumnet", "psumnet_body", "psumnet_hand", "psumnet_leg"]
    assert list_models("psumnet_?*") == ["psumnet_body", "psumnet_hand", "psumnet_leg"]
    assert list_models("*frames", modality="rgb") == ["timm_frames", "tsm_frames"]
    assert list_models("*gcn*", modality="rgb") == []
    assert list_models(["mamp", "epam*"]) == ["epam_net", "mamp"]
    assert list_models("*GCN*") == [] and list_models("ctrgcn") == ["ctrgcn"]
    assert list_models("") == names
    assert {"late", "mmixer"} <= set(list_registered("fusion"))


def test_heads_are_registered_parts_any_encoder_can_take() -> None:
    assert {"linear", "bn_linear", "mamp_finetune"} <= set(list_registered("head"))
    kwargs, make_batch = SMALL["ctrgcn"]
    encoder = create_model("ctrgcn", num_classes=0, **kwargs).eval()
    feats = encoder.forward_features(make_batch()["skeleton"])
    d = encoder.num_features

    linear = create_head("linear", in_features=d, num_classes=5, drop_rate=0.5, init_std=0.01).eval()
    assert isinstance(linear, LinearHead) and n_params(linear) == d * 5 + 5
    torch.testing.assert_close(linear(feats), linear.fc(feats.pooled))
    torch.testing.assert_close(linear(feats.pooled), linear(feats))  # the pooled tensor itself works too
    torch.testing.assert_close(linear(feats, pre_logits=True), feats.pooled)

    probe = create_head("bn_linear", in_features=d, num_classes=5)
    assert n_params(probe) == d * 5 + 5  # the norm has no parameters
    assert not probe.norm.affine and probe.norm.eps == 1e-6 and torch.all(probe.fc.bias == 0)
    probe.train()
    probe(feats)  # updates the running statistics
    probe.eval()
    norm = probe.norm
    expected = probe.fc((feats.pooled - norm.running_mean) / torch.sqrt(norm.running_var + 1e-6))
    torch.testing.assert_close(probe(feats), expected)
    torch.testing.assert_close(probe(feats, pre_logits=True), feats.pooled)

    # a probe on an encoder of another modality, through reset-free composition
    points = create_model("point_transformer", num_classes=0).eval()
    pooled = points(SMALL["point_transformer"][1]()["points"])
    assert create_head("bn_linear", in_features=points.num_features, num_classes=3).eval()(pooled).shape == (2, 3)


class NoKeys(Encoder):
    """A model that forgot its input_keys."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.num_features, self.num_classes = 4, num_classes
        self.head = LinearHead(4, num_classes)

    def forward_features(self, x: torch.Tensor) -> EncoderOutput:
        return EncoderOutput(sequence=x[:, None], pooled=x)


def test_a_model_without_input_keys_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(TypeError, match="NoKeys declares no input_keys"):
        check_encoder(NoKeys())
    with pytest.raises(TypeError, match="NoKeys declares no input_keys"):
        declared_input_keys(NoKeys())
    entry = registry.RegistryEntry("_no_keys", "model", NoKeys, "test", "")
    monkeypatch.setitem(registry._REGISTRY["model"], "_no_keys", entry)
    with pytest.raises(TypeError, match="NoKeys, which declares no input_keys"):
        create_model("_no_keys")
    from actionfusion.fusion.recognizer import Recognizer

    with pytest.raises(TypeError, match="NoKeys"):
        Recognizer(3, {"a": {"name": "_no_keys"}}, {"name": "late"})


def test_registration_comes_from_the_packages_and_import_stays_light() -> None:
    assert not hasattr(registry, "BUILTIN_MODEL_MODULES")
    assert not hasattr(fusion_base, "BUILTIN_FUSION_MODULES")
    code = ("import json, sys, actionfusion; light = 'torch' not in sys.modules; "
            "print(json.dumps([light, actionfusion.list_models(), actionfusion.registry.list_registered('head')]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    light, names, heads = json.loads(out.stdout.strip().splitlines()[-1])
    assert light
    assert set(BUILTIN_MODALITIES) <= set(names)
    assert {"linear", "bn_linear"} <= set(heads)
