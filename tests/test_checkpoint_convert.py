"""Checkpoint converters against the committed official layouts (no official code needed).

The fixtures in tests/data/official_layouts/ record each official state dict's keys, shapes and
dtypes (written by ``benchmarks/parity.py --write-layouts``). Each converter must map every one
of them onto our model's keys and shapes, nothing missing or left over, and back again unchanged.
"""

from __future__ import annotations

import argparse
import json
from functools import lru_cache
from pathlib import Path
from typing import Dict, Tuple

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from actionfusion.pipeline.official_checkpoints import (
    CONVERTERS,
    KeyRule,
    LayoutMismatchError,
    UnmappedKeysError,
    build_target,
    check_layout,
    convert_to_ours,
    get_converter,
    layout_of,
    load_official_checkpoint,
)
from actionfusion.pipeline.official_checkpoints.convert_cli import add_convert_checkpoint_parser
from actionfusion.errors import UnsafeLoadError
from actionfusion.registry import create_model

LAYOUTS = Path(__file__).resolve().parent / "data" / "official_layouts"


def official_layout(name: str) -> Dict[str, Tuple[Tuple[int, ...], str]]:
    data = json.loads((LAYOUTS / f"{name}.json").read_text())
    assert data["converter"] == name
    return {k: (tuple(shape), dtype) for k, (shape, dtype) in data["keys"].items()}


def fake_state(layout: Dict[str, Tuple[Tuple[int, ...], str]], seed: int = 0) -> Dict[str, torch.Tensor]:
    """Distinct random tensors of the recorded shapes and dtypes."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, (shape, dtype) in layout.items():
        torch_dtype = getattr(torch, dtype)
        if torch_dtype.is_floating_point:
            state[key] = torch.randn(shape, generator=gen, dtype=torch_dtype)
        else:
            state[key] = torch.randint(0, 1000, shape, generator=gen, dtype=torch_dtype)
    return state


@lru_cache(maxsize=None)
def our_state(name: str) -> Dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return dict(build_target(get_converter(name), 60).state_dict())


def test_every_converter_has_a_committed_layout() -> None:
    assert sorted(p.stem for p in LAYOUTS.glob("*.json")) == sorted(CONVERTERS)


@pytest.mark.parametrize("name", sorted(CONVERTERS))
def test_official_layout_maps_onto_ours_and_back_unchanged(name: str) -> None:
    converter = get_converter(name)
    layout = official_layout(name)
    official = fake_state(layout)
    ours = converter.to_ours(official)
    check_layout(name, "official -> ours", ours, layout_of(our_state(name)), check_dtype=True)
    back = converter.to_official(ours)
    kept = {k: v for k, v in official.items() if not converter.is_discarded(k)}
    assert list(back) == list(kept)
    assert all(torch.equal(back[k], kept[k]) and back[k].dtype == kept[k].dtype for k in kept)


@pytest.mark.parametrize("name", sorted(CONVERTERS))
def test_our_layout_maps_onto_official_and_back_unchanged(name: str) -> None:
    converter = get_converter(name)
    ours = our_state(name)
    official = converter.to_official(ours)
    expected = {k: v for k, v in official_layout(name).items() if not converter.is_discarded(k)}
    check_layout(name, "ours -> official", official, expected, check_dtype=True)
    again = converter.to_ours(official)
    assert list(again) == list(ours) and all(torch.equal(again[k], ours[k]) for k in ours)


def test_official_tensors_land_on_the_right_names() -> None:
    official = fake_state(official_layout("stgcn"))
    ours = get_converter("stgcn").to_ours(official)
    assert torch.equal(ours["blocks.3.tcn.2.bn.running_var"], official["st_gcn_networks.3.tcn.3.running_var"])
    assert torch.equal(ours["head.fc.weight"], official["fcn.weight"][:, :, 0, 0])
    ctr = get_converter("ctrgcn").to_ours(fake_state(official_layout("ctrgcn"), seed=3))
    ctr_official = fake_state(official_layout("ctrgcn"), seed=3)
    assert torch.equal(ctr["blocks.0.gcn.A"], ctr_official["l1.gcn1.PA"])
    assert torch.equal(ctr["blocks.9.tcn.branches.2.4.weight"], ctr_official["l10.tcn1.branches.2.4.weight"])
    hyper_official = fake_state(official_layout("hypergcn"))
    hyper = get_converter("hypergcn").to_ours(hyper_official)
    assert torch.equal(hyper["blocks.0.tcn.branches.1.4.bias"], hyper_official["l1.tcn1.branches.1.3.bn.bias"])
    assert torch.equal(hyper["pos_embedding"], hyper_official["pos_embedding"][0])
    epam_official = fake_state(official_layout("epam_net"))
    epam = get_converter("epam_net").to_ours(epam_official)
    assert torch.equal(epam["rgb.backbone.layer1.0.se.fc1.weight"],
                       epam_official["rgb_backbone.layer1.0.se_module.fc1.weight"])
    assert torch.equal(epam["pose.backbone.layer3.6.conv2.1.running_var"],
                       epam_official["pose_backbone.layer3.6.conv2.bn.running_var"])
    assert torch.equal(epam["sta.temporal_conv.weight"], epam_official["attention_module.conv_temporal_attention.weight"])


def test_unknown_official_key_raises_and_lists_it() -> None:
    official = fake_state(official_layout("ctrgcn"))
    official["l1.gcn1.extra_scale"] = torch.ones(1)
    official["decoder.weight"] = torch.ones(1)
    with pytest.raises(UnmappedKeysError) as info:
        get_converter("ctrgcn").to_ours(official)
    assert "decoder.weight" in info.value.keys and "decoder.weight" in str(info.value)


def test_leftover_and_missing_keys_raise_against_our_model() -> None:
    official = fake_state(official_layout("ctrgcn"))
    official["l3.gcn1.extra"] = torch.ones(1)  # maps by rule to blocks.2.gcn.extra: no such key in ours
    del official["l2.tcn1.branches.0.0.bias"]
    with pytest.raises(LayoutMismatchError) as info:
        convert_to_ours("ctrgcn", official)
    assert info.value.leftover == ["blocks.2.gcn.extra"]
    assert info.value.missing == ["blocks.1.tcn.branches.0.0.bias"]


def test_two_keys_on_one_name_raise() -> None:
    official = {"l1.gcn1.PA": torch.ones(1), "l1.gcn1.A": torch.ones(1)}
    with pytest.raises(LayoutMismatchError) as info:
        get_converter("ctrgcn").to_ours(official)
    assert info.value.duplicates == ["blocks.0.gcn.A"]


def test_mamp_pretrain_drops_the_decoder_by_name_only() -> None:
    converter = get_converter("mamp_pretrain")
    official = fake_state(official_layout("mamp_pretrain"))
    dropped = converter.discarded_keys(official)
    assert "mask_token" in dropped and any(k.startswith("decoder_blocks.") for k in dropped)
    assert not any(k.startswith(("blocks.", "norm.")) for k in dropped)
    official["decoder_fancy"] = torch.ones(1)  # matches the decoder pattern: dropped too
    official["encoder_extra"] = torch.ones(1)  # no rule: an error, never silent
    with pytest.raises(UnmappedKeysError) as info:
        converter.to_ours(official)
    assert info.value.keys == ["encoder_extra"]


def test_rule_templates_must_agree() -> None:
    with pytest.raises(ValueError):
        KeyRule("l{b}.gcn1.{rest}", "blocks.gcn.{rest}")


def test_loading_unwraps_and_reports_what_is_not_a_tensor(tmp_path: Path) -> None:
    state = {"module.fc.weight": torch.ones(2, 3), "module.fc.bias": torch.zeros(2)}
    path = tmp_path / "mamp_style.pth"
    torch.save({"model": state, "epoch": 7, "args": argparse.Namespace(lr=0.1), "optimizer": {"state": {}}}, path)
    loaded = load_official_checkpoint(path)
    assert loaded.wrapper_key == "model" and loaded.stripped_prefix == "module."
    assert sorted(loaded.state_dict) == ["fc.bias", "fc.weight"]
    assert loaded.non_tensor == {"epoch": "int", "args": "Namespace", "optimizer": "dict of 1 entries"}
    path2 = tmp_path / "mmcv_style.pth"
    torch.save({"meta": {"epoch": 3}, "state_dict": {"a": torch.ones(1), "note": "text"}}, path2)
    loaded2 = load_official_checkpoint(path2)
    assert loaded2.wrapper_key == "state_dict" and list(loaded2.state_dict) == ["a"]
    assert loaded2.non_tensor == {"meta": "dict of 1 entries", "state_dict/note": "str"}


class _CodeOnLoad:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (print, ("this must never run",))


def test_loading_refuses_objects_that_would_run_code(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"a": torch.ones(1)}, "payload": _CodeOnLoad()}, path)
    with pytest.raises(UnsafeLoadError, match="weights_only"):
        load_official_checkpoint(path)


def _run_cli(argv: list) -> int:
    parser = argparse.ArgumentParser()
    add_convert_checkpoint_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_converts_a_wrapped_official_checkpoint_that_loads_strictly(tmp_path: Path) -> None:
    official = {f"module.{k}": v for k, v in fake_state(official_layout("ctrgcn")).items()}
    official = {**official, **{"module.fc.weight": torch.randn(120, 256), "module.fc.bias": torch.randn(120)}}
    src, out = tmp_path / "ctrgcn.pt", tmp_path / "ctrgcn.safetensors"
    torch.save({"state_dict": official, "meta": {"mmcv_version": "1.5"}}, src)
    assert _run_cli(["convert-checkpoint", "--from", "ctrgcn", str(src), str(out)]) == 0
    model = create_model("ctrgcn", num_classes=120)
    model.load_state_dict(load_file(str(out)), strict=True)
    state = model.state_dict()
    assert torch.equal(state["blocks.0.gcn.A"], official["module.l1.gcn1.PA"])
    assert torch.equal(state["blocks.9.gcn.A"], official["module.l10.gcn1.PA"])
    assert torch.equal(state["head.fc.bias"], official["module.fc.bias"])
    with safe_open(str(out), "pt") as f:
        meta = f.metadata()
    assert meta["converted_from"] == "ctrgcn" and meta["num_classes"] == "120"


def test_cli_refuses_a_checkpoint_of_another_model(tmp_path: Path) -> None:
    src = tmp_path / "stgcn.pth"
    torch.save(fake_state(official_layout("stgcn")), src)
    with pytest.raises(UnmappedKeysError):
        _run_cli(["convert-checkpoint", "--from", "ctrgcn", str(src), str(tmp_path / "out.safetensors")])
    assert not (tmp_path / "out.safetensors").exists()


def test_psumnet_blocks_keep_their_own_learned_adjacency(tmp_path: Path) -> None:
    official = fake_state(official_layout("psumnet_leg"))
    src, out = tmp_path / "leg.pt", tmp_path / "leg.safetensors"
    torch.save(official, src)
    assert _run_cli(["convert-checkpoint", "--from", "psumnet_leg", str(src), str(out)]) == 0
    model = create_model("psumnet_leg", num_classes=60, leg_graph="official")
    model.load_state_dict(load_file(str(out)), strict=True)
    for block in range(4):
        assert torch.equal(model.state_dict()[f"blocks.{block}.gcn.adjacency"], official[f"layers.{block}.gcn1.PA"])
