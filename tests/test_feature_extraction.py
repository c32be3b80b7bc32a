"""The feature-extraction API and ``extract-features``: raw files and store samples, alone and batched."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from actionfusion.datasets.store.manifest import build_manifest, utc_now_iso, write_manifest
from actionfusion.datasets.store.prepare_sample import prepare_sample
from actionfusion.datasets.synthetic.generate import SynthConfig, generate_synthetic_ntu
from actionfusion.pipeline.checkpoints import save_weights
from actionfusion.pipeline.config import ExperimentConfig, save_config
from actionfusion.pipeline.feature_export import add_extract_features_parser, run_extract_features_cli
from actionfusion.datasets.store.prepare_config import PrepareConfig
from actionfusion.pipeline.feature_extraction import (
    FeatureExtractor,
    SampleFeatures,
    resolve_checkpoint,
    training_prepare_config,
)
from actionfusion.pipeline.feature_inputs import (
    MissingModalityError,
    RawSample,
    SamplePreparationError,
    StoreSample,
    resolve_input,
)
from actionfusion.pipeline.trainer import build_model

# The test model has no training store: raw inputs use the default PrepareConfig, which warns.
pytestmark = pytest.mark.filterwarnings("ignore:raw inputs are prepared with the default PrepareConfig")

ENCODERS = {
    "skeleton": {"name": "hypergcn"},  # the fastest skeleton encoder on CPU (ctrgcn: ~30x slower here)
    "rgb": {"name": "timm_frames", "kwargs": {"backbone": "test_resnet", "drop_rate": 0.0}},
    "depth": {"name": "depth_tsm", "kwargs": {"widths": [8, 8, 8, 8]}},
}


def tiny_config(store: Path, model: dict) -> ExperimentConfig:
    """Skeleton + RGB + depth clips of 8 skeleton / 4 image frames, two test clips averaged."""
    return ExperimentConfig.from_dict({
        "experiment": "fx_test",
        "data": {
            "store": str(store), "modalities": ["skeleton", "rgb", "depth"], "clip_len": 8, "test_clips": 2,
            "rgb": {"num_frames": 4, "size": 32, "scale_range": [1.0, 1.0]},
            "depth": {"num_frames": 4, "size": 32, "scale_range": [1.0, 1.0]},
            "test_transforms": [{"name": "center"}, {"name": "valid_crop_resize", "p_interval": [0.95], "min_len": 4}],
        },
        "model": model,
    })


def write_work_dir(work: Path, cfg: ExperimentConfig, seed: int = 0) -> None:
    work.mkdir(parents=True)
    save_config(cfg, work / "config.yaml")
    torch.manual_seed(seed)
    save_weights(work / "best.safetensors", build_model(cfg))




@pytest.fixture(scope="module")
def setup(tmp_path_factory, one_thread):
    base = tmp_path_factory.mktemp("fx")
    root = base / "ntu"
    generate_synthetic_ntu(root, SynthConfig(scale="tiny", actions=(1, 3, 58), performers=(1,), cameras=(1,)),
                           workers=1, progress=False)
    cfg = tiny_config(base / "no_store", {"name": "recognizer", "num_classes": 60,
                                          "kwargs": {"encoders": ENCODERS, "fusion": {"name": "late"}}})
    write_work_dir(base / "work", cfg)
    fx = FeatureExtractor.from_checkpoint(base / "work", progress=False, cache_dir=base / "cache")
    videos = sorted((root / "nturgb+d_rgb").glob("*_rgb.avi"))
    skeletons = sorted((root / "nturgb+d_skeletons").glob("*.skeleton"))
    assert len(videos) == 3 and len(skeletons) == 3
    yield {"base": base, "root": root, "fx": fx, "videos": videos, "skeletons": skeletons, "cfg": cfg}
    fx.close()  # stops its preparation worker


def close(x: np.ndarray, y: np.ndarray, atol: float = 1e-5) -> bool:
    """torch.allclose at ``atol`` after dividing both by the vector's largest magnitude (at least 1).

    The random weights give features and logits in the thousands; float32 sums taken in another
    order (batched kernels) move an entry near zero by ~1e-7 of that scale, so an absolute 1e-5
    only holds relative to the vector's scale.
    """
    scale = max(1.0, float(np.abs(y).max()))
    return torch.allclose(torch.from_numpy(x / scale), torch.from_numpy(y / scale), atol=atol)


def assert_same_features(a: SampleFeatures, b: SampleFeatures, atol: float = 1e-5) -> None:
    assert a.modalities_used == b.modalities_used
    assert sorted(a.modalities) == sorted(b.modalities) and sorted(a.branches) == sorted(b.branches)
    pairs = [(a.fused, b.fused), (a.logits, b.logits), (a.probabilities, b.probabilities)]
    pairs += [(a.modalities[m], b.modalities[m]) for m in a.modalities]
    pairs += [(a.branches[m], b.branches[m]) for m in a.branches]
    for x, y in pairs:
        assert close(x, y, atol), np.abs(x - y).max()


def test_same_features_alone_and_in_a_batch(setup):
    fx, videos = setup["fx"], setup["videos"]
    alone = fx(videos[1])
    batch = fx([videos[0], videos[1], videos[2], videos[1]])  # one input twice: prepared once
    assert [f.name for f in batch] == [v.name[: -len("_rgb.avi")] for v in [*videos, videos[1]]]
    assert_same_features(batch[1], batch[3])
    assert_same_features(alone, batch[1])
    # the rows are really different samples (not one row copied)
    assert not np.allclose(batch[0].fused, batch[1].fused, atol=1e-3)
    assert alone.fused.dtype == np.float32 and alone.probabilities.sum() == pytest.approx(1.0, abs=1e-5)


def test_raw_video_finds_skeleton_and_depth_skeleton_alone_gives_one_branch(setup):
    fx = setup["fx"]
    full = fx(setup["videos"][0])
    assert full.modalities_used == ["skeleton", "rgb", "depth"]
    assert set(full.branches) == {"skeleton", "rgb", "depth"}
    dims = {m: v.shape[0] for m, v in full.modalities.items()}
    assert dims == {"skeleton": 256, "rgb": 96, "depth": 8} and full.fused.shape == (360,)

    only = fx(setup["skeletons"][0])
    assert only.name == full.name and only.modalities_used == ["skeleton"]
    assert set(only.modalities) == {"skeleton"} and set(only.branches) == {"skeleton"}
    # the skeleton encoder sees the same clip either way; late fusion zeroes the absent modalities
    assert close(only.modalities["skeleton"], full.modalities["skeleton"])
    assert np.all(only.fused[256:] == 0) and np.any(full.fused[256:] != 0)


def test_non_ntu_video_is_video_only(setup, tmp_path):
    clip = tmp_path / "my clip.mp4"
    shutil.copy(setup["videos"][0], clip)
    shutil.copy(setup["skeletons"][0], tmp_path / f"{setup['skeletons'][0].name}")  # not this video's name
    feats = setup["fx"](clip)
    assert feats.name == "my clip" and feats.modalities_used == ["rgb"] and set(feats.branches) == {"rgb"}


def test_store_sample_equals_the_raw_files_it_came_from(setup, tmp_path):
    fx, video = setup["fx"], setup["videos"][2]
    (resolved,) = resolve_input(video)
    store = tmp_path / "store"
    store.mkdir()
    write_manifest(store, build_manifest(config=fx.prepare_config.to_dict(), source_root=str(setup["root"]),
                                         created=utc_now_iso(), samples={}))
    assert prepare_sample(resolved.paths, store, fx.prepare_config).status == "ok"
    raw = fx(video)
    from_store = fx(StoreSample(store, resolved.name))
    assert_same_features(raw, from_store)
    assert_same_features(raw, fx(f"{store}::{resolved.name}"))
    assert [f.name for f in fx(f"{store}::*")] == [resolved.name]  # a whole store gives a list


def test_explicit_raw_sample_and_depth_only(setup):
    name = setup["videos"][0].name[: -len("_rgb.avi")]
    depth_dir = setup["root"] / "nturgb+d_depth_masked" / name
    feats = setup["fx"](RawSample(depth=depth_dir, skeleton=setup["skeletons"][0], name="custom"))
    assert feats.name == "custom" and feats.modalities_used == ["skeleton", "depth"]
    assert setup["fx"](depth_dir).modalities_used == ["depth"]


def test_corrupt_skeleton_raises_typed_error_naming_file_and_stage(setup, tmp_path):
    bad = tmp_path / "S001C001P001R002A001.skeleton"
    text = setup["skeletons"][0].read_bytes()
    bad.write_bytes(text[: len(text) // 3])
    with pytest.raises(SamplePreparationError) as info:
        setup["fx"](bad)
    assert info.value.stage == "skeleton" and info.value.path == str(bad) and str(bad) in str(info.value)
    (resolved,) = resolve_input(bad)
    assert not setup["fx"]._cache.store_path(resolved.paths).exists()  # nothing half-prepared is cached


def test_single_encoder_model_from_weights_file(setup, tmp_path):
    cfg = tiny_config(tmp_path / "none", {"name": "hypergcn", "num_classes": 60})
    cfg = ExperimentConfig.from_dict({**cfg.to_dict(), "data": {**cfg.to_dict()["data"], "modalities": ["skeleton"]}})
    write_work_dir(tmp_path / "work", cfg, seed=1)
    fx = FeatureExtractor.from_checkpoint(tmp_path / "work" / "best.safetensors", progress=False, prepare_workers=0)
    threads = torch.get_num_threads()
    feats = fx(setup["skeletons"][1])  # prepared in this process
    assert torch.get_num_threads() == threads
    assert feats.modalities_used == ["skeleton"] and feats.branches == {}
    assert np.array_equal(feats.fused, feats.modalities["skeleton"])
    clip = tmp_path / "plain.mp4"
    shutil.copy(setup["videos"][0], clip)
    with pytest.raises(MissingModalityError, match="plain.mp4.*skeleton"):
        fx(clip)
    fx.close()
    assert not fx.cache_dir.exists()


def test_checkpoint_resolution(setup, tmp_path):
    work = setup["base"] / "work"
    epoch = tmp_path / "run" / "checkpoints" / "epoch_0003"
    epoch.mkdir(parents=True)
    shutil.copy(work / "best.safetensors", epoch / "model.safetensors")
    shutil.copy(work / "config.yaml", tmp_path / "run" / "config.yaml")
    weights, cfg, config_path = resolve_checkpoint(epoch)
    assert weights == epoch / "model.safetensors" and config_path == tmp_path / "run" / "config.yaml"
    assert cfg == setup["cfg"]
    lonely = tmp_path / "lonely" / "weights.safetensors"
    lonely.parent.mkdir()
    shutil.copy(work / "best.safetensors", lonely)
    with pytest.raises(FileNotFoundError, match="config"):
        resolve_checkpoint(lonely)
    assert resolve_checkpoint(lonely, config=work / "config.yaml")[1] == setup["cfg"]


def test_training_store_prepare_config_is_used(setup, tmp_path):
    store = tmp_path / "runs" / "stores" / "train_store"
    store.mkdir(parents=True)
    trained = PrepareConfig(rgb_size=64, depth_size=40, crop_padding=0.1)
    write_manifest(store, build_manifest(config=trained.to_dict(), source_root="x", created=utc_now_iso(), samples={}))
    cfg = tiny_config(Path("stores/train_store"), setup["cfg"].to_dict()["model"])
    found, where = training_prepare_config(cfg, near=[tmp_path / "runs"])
    assert found == trained and where == str(tmp_path / "runs" / "stores" / "train_store")
    fx = FeatureExtractor(build_model(cfg), cfg, progress=False, config_dir=tmp_path / "runs" / "work")
    assert fx.prepare_config.rgb_size == 64 and fx.prepare_config.crop_padding == 0.1
    assert fx.prepare_config.modalities == ("skeleton", "rgb", "depth")  # points: the model does not read them
    fx.close()


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    add_extract_features_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["extract-features", *argv])
    assert args.func is run_extract_features_cli
    return args.func(args)


def test_cli_writes_index_skips_on_rerun_and_records_bad_input(setup, tmp_path, capsys):
    from safetensors.numpy import load_file

    bad = tmp_path / "broken.skeleton"
    bad.write_text("12\n1\n")
    out = tmp_path / "out"
    inputs = [str(setup["videos"][0]), str(setup["skeletons"][1]), str(bad), str(tmp_path / "missing.avi")]
    common = ["--out", str(out), "--quiet", "--cache-dir", str(setup["fx"].cache_dir)]
    assert run_cli([str(setup["base"] / "work"), *inputs, *common]) == 1
    index = json.loads((out / "index.json").read_text())
    names = [setup["videos"][0].name[: -len("_rgb.avi")], setup["skeletons"][1].stem]
    assert sorted(index["samples"]) == sorted(names)
    entry = index["samples"][names[0]]
    assert entry["modalities_used"] == ["skeleton", "rgb", "depth"] and entry["dims"]["fused"] == 360
    tensors = load_file(str(out / entry["file"]))
    assert {"fused", "modality/skeleton", "branch/depth", "logits"} <= set(tensors)
    assert entry["top1"] == int(np.argmax(tensors["probabilities"])) and isinstance(entry["top1_class"], str)
    expected = setup["fx"](setup["videos"][0])
    assert close(tensors["fused"], expected.fused)
    failed = {Path(f["input"]).name: f["error"] for f in index["failures"]}
    assert set(failed) == {"broken.skeleton", "missing.avi"} and "skeleton" in failed["broken.skeleton"]

    stamp = (out / entry["file"]).stat().st_mtime_ns
    capsys.readouterr()
    assert run_cli([str(setup["base"] / "work"), *inputs[:2], *common]) == 0
    assert "0 written, 2 already there, 0 failed" in capsys.readouterr().out
    assert (out / entry["file"]).stat().st_mtime_ns == stamp

    npy_out = tmp_path / "npy"
    assert run_cli([str(setup["base"] / "work"), str(setup["skeletons"][1]), "--out", str(npy_out), "--quiet",
                    "--format", "npy"]) == 0
    written = np.load(npy_out / names[1] / "modality" / "skeleton.npy", allow_pickle=False)
    assert written.shape == (256,) and json.loads((npy_out / "index.json").read_text())["samples"][names[1]]
