"""Pretrained tags: create_model(name, pretrained=TAG, checkpoint_path=...), the cache, the download
path (the network replaced by a local byte stream), hash checks, the listing, the errors.

The official files are real official-layout files: one of our models, its state dict converted
to the official names with the converter's ``to_official`` and saved with ``torch.save`` in the
wrapping the official code writes. No test touches the network.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import urllib.error
from pathlib import Path
from typing import Dict

import pytest
import torch

from actionfusion import list_pretrained
from actionfusion.errors import CheckpointError, UnknownNameError, UsageError, WeightsUnavailableError
from actionfusion.pipeline.cli_errors import run_with_error_boundary
from actionfusion.pipeline.official_checkpoints import get_converter
from actionfusion.pipeline.pretrained import PRETRAINED_TAGS, tags as tags_module
from actionfusion.pipeline.pretrained import weights
from actionfusion.registry import create_model, list_models

torch.set_num_threads(1)


def _source_model(model: str, tag: str, seed: int = 0) -> torch.nn.Module:
    """Our model built as the tag describes, with random weights and BatchNorm statistics."""
    entry = weights.get_tag(model, tag)
    torch.manual_seed(seed)
    kwargs = {**get_converter(entry.converter).model_kwargs, **entry.model_kwargs}
    net = create_model(model, num_classes=entry.num_classes, **kwargs)
    with torch.no_grad():
        for name, buffer in net.named_buffers():
            if name.endswith("running_mean"):
                buffer.normal_(0.0, 0.1)
            elif name.endswith("running_var"):
                buffer.uniform_(0.5, 1.5)
    return net.eval()


def _write_official(net: torch.nn.Module, converter: str, path: Path, wrap: str = "state_dict") -> Path:
    official = get_converter(converter).to_official(net.state_dict())
    torch.save({wrap: official, "meta": {"epoch": 80}} if wrap else official, path)
    return path


def _input(net: torch.nn.Module, in_channels: int = 3) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(1, 2, 12, net.num_joints, in_channels)  # [N, M, T, V, C]


def _same_outputs(a: torch.nn.Module, b: torch.nn.Module) -> None:
    x = _input(a)
    with torch.no_grad():
        torch.testing.assert_close(b.eval()(x), a(x), rtol=0, atol=0)


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("ACTIONFUSION_CACHE", str(root))
    return root


def _no_network(url: str, timeout: float = 0.0) -> None:
    raise urllib.error.URLError(f"no network in tests ({url})")


def _serve(monkeypatch: pytest.MonkeyPatch, payload: bytes) -> Dict[str, int]:
    """urlopen returns ``payload``: the real download_url (atomic write) runs on it."""
    calls = {"n": 0}

    def urlopen(url: str, timeout: float = 0.0) -> io.BytesIO:
        calls["n"] += 1
        return io.BytesIO(payload)

    monkeypatch.setattr(weights.urllib.request, "urlopen", urlopen)
    return calls


def _with_hash(monkeypatch: pytest.MonkeyPatch, model: str, tag: str, **hashes: str) -> None:
    """The table with ``model.tag`` given a known hash (no released file publishes one)."""
    table = {m: tuple(dataclasses.replace(t, **hashes) if (m, t.tag) == (model, tag) else t for t in ts)
             for m, ts in PRETRAINED_TAGS.items()}
    monkeypatch.setattr(weights, "PRETRAINED_TAGS", table)


@pytest.mark.parametrize("model, tag, wrap", [
    ("stgcnpp", "ntu60_xsub_joint", "state_dict"),  # pyskl: {"state_dict", "meta"}
    ("stgcnpp", "ntu120_xset_hrnet_bone", "state_dict"),  # COCO-17, 120 classes
    ("stgcn", "ntu60_xview_joint", ""),  # st-gcn saves the bare state dict
])
def test_official_file_converts_to_identical_outputs(tmp_path: Path, model: str, tag: str, wrap: str) -> None:
    source = _source_model(model, tag)
    path = _write_official(source, weights.get_tag(model, tag).converter, tmp_path / "official.pth", wrap)
    loaded = create_model(model, pretrained=tag, checkpoint_path=path)
    _same_outputs(source, loaded)
    assert loaded.num_classes == weights.get_tag(model, tag).num_classes
    assert loaded.pretrained_cfg["layout"] == weights.get_tag(model, tag).converter
    assert loaded.pretrained_cfg["top1"] == weights.get_tag(model, tag).top1


def test_name_dot_tag_and_pretrained_true(tmp_path: Path, cache: Path) -> None:
    source = _source_model("stgcnpp", "ntu60_xsub_joint")
    default = weights.get_tag("stgcnpp", True)
    assert default.tag == "ntu60_xsub_joint"  # the first tag is the default
    target = weights.cached_checkpoint_path(default)
    target.parent.mkdir(parents=True)
    _write_official(source, "stgcnpp", target)
    _same_outputs(source, create_model("stgcnpp", pretrained=True))
    _same_outputs(source, create_model("stgcnpp.ntu60_xsub_joint", pretrained=True))
    with pytest.raises(UsageError):
        create_model("stgcnpp.ntu60_xsub_joint", pretrained="ntu60_xview_joint")


def test_our_safetensors_layout_is_detected(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    source = _source_model("stgcnpp", "ntu120_xsub_joint")
    path = tmp_path / "ours.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    loaded = create_model("stgcnpp", checkpoint_path=path)  # no tag: classes read off the classifier
    assert loaded.num_classes == 120 and loaded.pretrained_cfg["layout"] == "ours"
    _same_outputs(source, loaded)
    official = _write_official(source, "stgcnpp", tmp_path / "official.pth")
    detected = create_model("stgcnpp", checkpoint_path=official)  # no tag: the official layout is found
    assert detected.pretrained_cfg["layout"] == "stgcnpp"
    _same_outputs(source, detected)


def test_file_of_another_model_is_refused(tmp_path: Path) -> None:
    source = _source_model("stgcn", "ntu60_xsub_joint")
    path = _write_official(source, "stgcn", tmp_path / "stgcn.pth")
    with pytest.raises(CheckpointError) as caught:
        create_model("stgcnpp", pretrained="ntu60_xsub_joint", checkpoint_path=path)
    assert "\n" not in str(caught.value) and "stgcnpp" in str(caught.value)


def test_cache_file_placed_by_hand_is_used(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(weights.urllib.request, "urlopen", _no_network)
    tag = weights.get_tag("stgcnpp", "ntu60_xview_bone")
    target = weights.cached_checkpoint_path(tag)
    assert target == cache / "pretrained" / "stgcnpp" / "ntu60_xview_bone" / "b.pth"
    source = _source_model("stgcnpp", "ntu60_xview_bone")
    target.parent.mkdir(parents=True)
    _write_official(source, "stgcnpp", target)
    _same_outputs(source, create_model("stgcnpp", pretrained="ntu60_xview_bone"))


def test_download_writes_the_cache_atomically_and_checks_the_hash(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _source_model("stgcnpp", "ntu60_xsub_bone_motion")
    payload = _write_official(source, "stgcnpp", tmp_path / "bm.pth").read_bytes()
    _with_hash(monkeypatch, "stgcnpp", "ntu60_xsub_bone_motion", sha256=hashlib.sha256(payload).hexdigest())
    calls = _serve(monkeypatch, payload)
    loaded = create_model("stgcnpp", pretrained="ntu60_xsub_bone_motion")
    _same_outputs(source, loaded)
    target = weights.cached_checkpoint_path(weights.get_tag("stgcnpp", "ntu60_xsub_bone_motion"))
    assert target.read_bytes() == payload
    assert [p.name for p in target.parent.iterdir()] == ["bm.pth"]  # no temporary file left
    create_model("stgcnpp", pretrained="ntu60_xsub_bone_motion")
    assert calls["n"] == 1  # the second call reads the cache


@pytest.mark.parametrize("hashes", [{"sha256": "0" * 64}, {"sha256_prefix": "deadbeef"}])
def test_wrong_hash_is_refused_and_the_file_removed(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch, hashes: Dict[str, str]
) -> None:
    source = _source_model("stgcnpp", "ntu60_xsub_joint")
    payload = _write_official(source, "stgcnpp", tmp_path / "j.pth").read_bytes()
    _with_hash(monkeypatch, "stgcnpp", "ntu60_xsub_joint", **hashes)
    _serve(monkeypatch, payload)
    target = weights.cached_checkpoint_path(weights.get_tag("stgcnpp", "ntu60_xsub_joint"))
    with pytest.raises(CheckpointError) as caught:
        create_model("stgcnpp", pretrained="ntu60_xsub_joint")
    message = str(caught.value)
    assert "\n" not in message and "does not match" in message and "removed" in message
    assert not target.exists()
    # a file given by path is refused too, and left where it is
    with pytest.raises(CheckpointError):
        create_model("stgcnpp", pretrained="ntu60_xsub_joint", checkpoint_path=tmp_path / "j.pth")
    assert (tmp_path / "j.pth").exists()


def test_right_hash_prefix_is_accepted(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = _source_model("stgcnpp", "ntu60_xsub_joint")
    path = _write_official(source, "stgcnpp", tmp_path / "j.pth")
    prefix = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    _with_hash(monkeypatch, "stgcnpp", "ntu60_xsub_joint", sha256_prefix=prefix)
    _same_outputs(source, create_model("stgcnpp", pretrained="ntu60_xsub_joint", checkpoint_path=path))


def test_offline_error_names_the_url_and_the_cache_path(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(weights.urllib.request, "urlopen", _no_network)
    tag = weights.get_tag("stgcn", "ntu60_xsub_joint")
    with pytest.raises(WeightsUnavailableError) as caught:
        create_model("stgcn", pretrained="ntu60_xsub_joint")
    message = str(caught.value)
    assert "\n" not in message
    assert tag.url in message
    assert str(cache / "pretrained" / "stgcn" / "ntu60_xsub_joint" / "st_gcn.ntu-xsub.pt") in message
    assert not any(cache.rglob("*.pt"))  # nothing half-written


def test_listing_matches_the_table_exactly() -> None:
    expected = sorted(f"{t.model}.{t.tag}" for tags in PRETRAINED_TAGS.values() for t in tags)
    assert list_pretrained() == expected
    assert len(expected) == 34  # ST-GCN 2 + ST-GCN++ 4 benchmarks x 2 annotations x 4 streams
    assert list_models(pretrained=True) == expected  # timm: pretrained=True lists name.tag
    assert list_models(pretrained=True, include_tags=False) == ["stgcn", "stgcnpp"]
    assert list_pretrained("stgcn") == ["stgcn.ntu60_xsub_joint", "stgcn.ntu60_xview_joint"]
    assert list_pretrained("*hrnet_joint_motion") == [
        "stgcnpp.ntu120_xset_hrnet_joint_motion", "stgcnpp.ntu120_xsub_hrnet_joint_motion",
        "stgcnpp.ntu60_xsub_hrnet_joint_motion", "stgcnpp.ntu60_xview_hrnet_joint_motion"]
    assert "ctrgcn" in list_models() and "ctrgcn" not in list_models(pretrained=True, include_tags=False)


def test_table_entries_as_published() -> None:
    # kennymckormick/pyskl@3f6795f configs/stgcn++/README.md, NTU-120 X-Sub HRNet joint motion
    tag = weights.get_tag("stgcnpp", "ntu120_xsub_hrnet_joint_motion")
    assert tag.url == "http://download.openmmlab.com/mmaction/pyskl/ckpt/stgcnpp/stgcnpp_ntu120_xsub_hrnet/jm.pth"
    assert (tag.top1, tag.num_classes, dict(tag.model_kwargs)) == (76.4, 120, {"layout": "coco17", "in_channels": 3})
    # yysijie/st-gcn@221c0e1 tools/get_models.sh + OLD_README.md
    tag = weights.get_tag("stgcn", "ntu60_xview_joint")
    assert tag.url == "https://open-mmlab.s3.ap-northeast-2.amazonaws.com/mmskeleton/models/st-gcn/st_gcn.ntu-xview.pt"
    assert tag.top1 == 88.8
    for tags in tags_module.PRETRAINED_TAGS.values():
        for t in tags:
            get_converter(t.converter)  # every converter exists
            assert t.hash_status == "unknown (layout checked)"  # no release publishes a hash


def test_unknown_tag_is_one_line_listing_the_tags_and_exits_2() -> None:
    with pytest.raises(UnknownNameError) as caught:
        create_model("stgcn", pretrained="kinetics")
    assert str(caught.value) == ("model 'stgcn' has no pretrained tag 'kinetics'; its tags: "
                                 "ntu60_xsub_joint, ntu60_xview_joint")
    with pytest.raises(UnknownNameError, match="has no pretrained tags"):
        create_model("ctrgcn", pretrained=True)
    stream = io.StringIO()

    def handler() -> int:
        create_model("stgcn", pretrained="kinetics")
        return 0

    assert run_with_error_boundary("train", handler, stream=stream) == 2
    assert stream.getvalue().count("\n") == 1 and "ntu60_xview_joint" in stream.getvalue()


@pytest.mark.parametrize("num_classes", [10, 0])
def test_num_classes_override_drops_the_head(tmp_path: Path, num_classes: int) -> None:
    source = _source_model("stgcnpp", "ntu60_xsub_joint")
    path = _write_official(source, "stgcnpp", tmp_path / "j.pth")
    loaded = create_model("stgcnpp", pretrained="ntu60_xsub_joint", checkpoint_path=path,
                          num_classes=num_classes).eval()
    x = _input(source)
    with torch.no_grad():
        out = loaded(x)
        features = loaded.forward_features(x).pooled
        torch.testing.assert_close(features, source.forward_features(x).pooled, rtol=0, atol=0)
    assert loaded.num_classes == num_classes
    assert out.shape == ((1, num_classes) if num_classes else (1, loaded.num_features))
    if num_classes:
        assert not torch.equal(loaded.head.fc.weight[:num_classes], source.head.fc.weight[:num_classes])
    same = create_model("stgcnpp", pretrained="ntu60_xsub_joint", checkpoint_path=path, num_classes=60)
    _same_outputs(source, same)  # the tag's own classes keep the head


def test_models_command_lists_names_and_pretrained_tags(capsys) -> None:
    from actionfusion.pipeline.cli import main
    from actionfusion.registry import list_models, list_pretrained

    assert main(["models", "*gcn*"]) == 0
    assert capsys.readouterr().out.split() == list_models("*gcn*")
    assert main(["models", "--pretrained", "stgcn*"]) == 0
    assert capsys.readouterr().out.split() == list_pretrained("stgcn*")
    assert main(["models", "no_such_model*"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no model matches" in err[0]
