"""``actionfusion run``: raw NTU-format root -> prepare -> train -> evaluate by modality, resumable."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

from actionfusion.datasets.synthetic.generate import SynthConfig, generate_synthetic_ntu
from actionfusion.pipeline.cli import main as cli_main
from actionfusion.pipeline.config import ConfigError, ExperimentConfig, save_config
from actionfusion.pipeline.run_experiment import run_experiment


@pytest.fixture(scope="module")
def raw_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("run") / "raw"
    generate_synthetic_ntu(root, SynthConfig(scale="tiny", actions=(1, 10, 58), performers=(1, 2, 3)),
                           workers=1, progress=False)
    return root


def _config(raw: Path, store: Path, **source) -> ExperimentConfig:
    return ExperimentConfig.from_dict({
        "experiment": "tiny_run",
        "source": {"raw_root": str(raw), "workers": 0, "rgb_size": 48, "num_points": 32, **source},
        "data": {"store": str(store), "modalities": ["skeleton", "depth"], "clip_len": 8, "batch_size": 4,
                 "num_workers": 0, "depth": {"num_frames": 4, "size": 24},
                 "train_transforms": [{"name": "valid_crop_resize", "p_interval": [0.5, 1.0], "min_len": 4}],
                 "test_transforms": [{"name": "valid_crop_resize", "p_interval": [0.95], "min_len": 4}]},
        "model": {"name": "recognizer", "num_classes": 60, "kwargs": {
            "encoders": {"skeleton": {"name": "ctrgcn", "kwargs": {"base_channels": 8}},
                         "depth": {"name": "depth_tsm", "kwargs": {"widths": [8, 8, 16, 16]}}},
            "fusion": {"name": "mmixer", "kwargs": {"hidden_dim": 16, "d_model": 16}},
            "aux_loss_weight": 0.5, "modality_dropout": 0.2}},
        "schedule": {"name": "constant", "epochs": 1, "warmup_epochs": 0, "milestones": []},
        "optim": {"lr": 0.01}, "train": {"amp": False, "cpu_threads": 1},
    })


def test_run_prepares_trains_evaluates_by_modality_and_resumes(raw_root: Path, tmp_path: Path) -> None:
    cfg = _config(raw_root, tmp_path / "store")
    work = tmp_path / "work"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tiny store's validation carve-out warns
        summary = run_experiment(cfg, work, progress=False)
    assert summary["prepare"]["failures"] == 0 and summary["prepare"]["done"] == summary["prepare"]["selected"] > 0
    assert (tmp_path / "store" / "manifest.json").is_file()
    for name in ("metrics.json", "confusion.png", "best.safetensors", "metrics_by_modality.json", "run_summary.json"):
        assert (work / name).is_file(), name
    by_modality = json.loads((work / "metrics_by_modality.json").read_text())
    assert {k: v["modalities"] for k, v in by_modality.items()} == {
        "all": ["skeleton", "depth"], "skeleton": ["skeleton"], "depth": ["depth"]}
    test_size = summary["train"]["test"]["num_samples"]
    assert all(v["num_samples"] == test_size for v in by_modality.values())
    # the "all" row is the training run's own test evaluation
    assert by_modality["all"]["top1"] == pytest.approx(summary["train"]["test"]["top1"])

    # a second run skips prepare's finished samples and the finished training
    before = (work / "metrics.json").stat().st_mtime_ns
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = run_experiment(cfg, work, progress=False)
    assert again["prepare"]["done"] == 0 and again["prepare"]["skipped"] == summary["prepare"]["selected"]
    assert (work / "metrics.json").stat().st_mtime_ns == before
    assert "train_s" not in again["timings"] and "evaluate_by_modality_s" not in again["timings"]


def test_run_cli_takes_the_raw_root_from_the_command_line(raw_root: Path, tmp_path: Path, capsys) -> None:
    cfg = _config(raw_root, tmp_path / "store")
    config_path = tmp_path / "tiny.yaml"
    save_config(ExperimentConfig.from_dict({**cfg.to_dict(), "source": {"raw_root": None, "workers": 0}}), config_path)
    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        status = cli_main(["run", str(config_path), "--raw-root", str(raw_root), "--work-dir", str(tmp_path / "w")])
    assert status == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(printed["test_top1_by_modality"]) == {"all", "skeleton", "depth"}
    assert printed["prepare_failures"] == 0


def test_run_without_raw_root_or_store_says_what_to_set(tmp_path: Path) -> None:
    cfg = _config(tmp_path / "nowhere", tmp_path / "store")
    with pytest.raises(ConfigError, match="source.raw_root"):
        run_experiment(cfg, tmp_path / "w", progress=False)
    cfg = ExperimentConfig.from_dict({**cfg.to_dict(), "source": {"raw_root": None}})
    with pytest.raises(ConfigError, match="data.store"):
        run_experiment(cfg, tmp_path / "w", progress=False)


def test_extracted_poses_require_heatmaps_from_them() -> None:
    with pytest.raises(ConfigError, match="keypoints: pose2d"):
        ExperimentConfig.from_dict({"source": {"pose_source": "extracted"},
                                    "data": {"modalities": ["pose_heatmap"], "pose_heatmap": {"keypoints": "sensor"}}})
    ExperimentConfig.from_dict({"source": {"pose_source": "extracted"},
                                "data": {"modalities": ["pose_heatmap"], "pose_heatmap": {"keypoints": "pose2d"}}})


@pytest.mark.needs_blazepose
def test_run_extracts_poses_from_the_raw_videos_and_trains_on_their_heatmaps(raw_root: Path, tmp_path: Path) -> None:
    """pose_source: extracted runs the embedded BlazePose over every video into the store; the
    pose-heatmap encoder then reads those keypoints (COCO-17), end to end from the raw root."""
    cfg = ExperimentConfig.from_dict({
        "experiment": "tiny_extracted",
        "source": {"raw_root": str(raw_root), "pose_source": "extracted", "pose_layout": "coco17", "workers": 0,
                   "rgb_size": 48, "num_points": 32},
        "data": {"store": str(tmp_path / "store"), "modalities": ["pose_heatmap"], "clip_len": 8, "batch_size": 4,
                 "num_workers": 0,
                 "pose_heatmap": {"num_frames": 8, "size": 16, "keypoints": "pose2d", "layout": "coco17"}},
        "model": {"name": "xshiftnet_pose", "num_classes": 60},
        "schedule": {"name": "constant", "epochs": 1, "warmup_epochs": 0, "milestones": []},
        "optim": {"lr": 0.01}, "train": {"amp": False, "cpu_threads": 1},
    })
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = run_experiment(cfg, tmp_path / "work", progress=False)
    assert summary["extract_poses"]["failures"] == 0
    from actionfusion.datasets.store.sample_store import SampleStore

    store = SampleStore(tmp_path / "store")
    keypoints = store.load_pose2d(store.names[0])
    assert keypoints.ndim == 4 and keypoints.shape[2:] == (17, 3) and float(keypoints[..., 2].max()) > 0.3
    assert summary["train"]["test"]["num_samples"] > 0
