"""Multimodal clips from a prepared store: aligned frames, shared flips, seeded randomness,
sensor 2D keypoints stored beside the skeleton, and a run trained end to end on them."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from actionfusion.datasets.modality_clips import frame_indices, segment_times, times_for
from actionfusion.datasets.store.prepare import PrepareConfig, prepare_store
from actionfusion.datasets.store.sample_store import SampleStore
from actionfusion.datasets.synthetic.generate import SynthConfig, generate_synthetic_ntu
from actionfusion.pipeline.config import ConfigError, ExperimentConfig
from actionfusion.pipeline.data_builder import build_datasets

MODALITIES = ["skeleton", "rgb", "pose_heatmap", "depth", "points"]


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("multimodal")
    generate_synthetic_ntu(root / "raw", SynthConfig(scale="tiny", actions=(1, 10, 58), performers=(1, 2, 3)),
                           workers=1, progress=False)
    prepare_store(root / "raw", root / "store", PrepareConfig(rgb_size=64, num_points=64), workers=0, progress=False)
    return root / "store"


def _config(store: Path, **data: object) -> ExperimentConfig:
    base = {"store": str(store), "benchmark": "ntu60_xsub", "modalities": MODALITIES, "clip_len": 8,
            "batch_size": 2, "num_workers": 0, "rgb": {"num_frames": 4, "size": 32},
            "pose_heatmap": {"num_frames": 12, "size": 16}, "depth": {"num_frames": 4, "size": 24},
            "points": {"num_frames": 4, "num_points": 32},
            "train_transforms": [{"name": "valid_crop_resize", "p_interval": [0.5, 1.0], "min_len": 4}],
            "test_transforms": [{"name": "valid_crop_resize", "p_interval": [0.95], "min_len": 4}]}
    base.update(data)
    return ExperimentConfig.from_dict({"data": base, "model": {"name": "ctrgcn", "num_classes": 60}})


def _datasets(cfg: ExperimentConfig) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tiny store's validation carve-out warns
        return build_datasets(cfg)


def test_shared_times_align_every_third_pose_frame_with_rgb() -> None:
    rng = np.random.default_rng(0)
    times = segment_times(48, True, rng)
    assert np.all(np.diff(np.floor(times * 48)) == 1)  # one time per segment
    np.testing.assert_array_equal(times_for(times, 16), times[::3])
    np.testing.assert_array_equal(frame_indices(times_for(times, 16), 90), frame_indices(times, 90)[::3])
    test = segment_times(4, False, rng, clip=1, num_clips=2)
    np.testing.assert_allclose(test, (np.arange(4) + 0.75) / 4)


def test_store_holds_the_sensor_keypoints_of_the_skeleton_actors(store_path: Path) -> None:
    store = SampleStore(store_path)
    name = store.names[0]
    skeleton, keypoints = store.load_skeleton(name), store.load_pose2d_sensor(name)
    assert keypoints.shape == skeleton.shape[:3] + (3,)
    present = np.any(skeleton != 0, axis=(2, 3))
    np.testing.assert_array_equal(keypoints[..., 2].max(axis=2) > 0, present)


def test_items_hold_every_modality_with_its_shape(store_path: Path) -> None:
    datasets = _datasets(_config(store_path))
    item = datasets["train"][0]
    assert set(item) == set(MODALITIES) | {"label", "index"}
    assert item["rgb"].shape == (3, 4, 32, 32)
    assert item["pose_heatmap"].shape == (25, 12, 16, 16)
    assert item["depth"].shape == (1, 4, 24, 24)
    assert item["points"].shape == (4, 32, 3)
    assert item["skeleton"].shape == (2, 8, 25, 3)
    assert float(item["pose_heatmap"].max()) > 0.5  # the joints are drawn
    # seeded per (seed, epoch, index): the same item twice is identical, another epoch differs
    again = datasets["train"][0]
    assert all(torch.equal(item[k], again[k]) for k in MODALITIES)
    datasets["train"].set_epoch(1)
    assert not torch.equal(item["rgb"], datasets["train"][0]["rgb"])


def test_flip_mirrors_rgb_and_heatmaps_together(store_path: Path) -> None:
    never = _datasets(_config(store_path, flip_p=0.0))["train"]
    always = _datasets(_config(store_path, flip_p=1.0, rgb={"num_frames": 4, "size": 32, "scale_range": [1.0, 1.0]}))["train"]
    plain = _datasets(_config(store_path, flip_p=0.0, rgb={"num_frames": 4, "size": 32, "scale_range": [1.0, 1.0]}))["train"]
    a, b = always[1], plain[1]
    assert never[1]["rgb"].shape == a["rgb"].shape
    # the same random draws except the flip (drawn first, consumed either way): the flipped
    # clip's columns run backwards (crops at scale 1 are the full frame up to aspect jitter)
    from actionfusion.modalities.pose.heatmap_volume import flip_heatmap_volume

    np.testing.assert_allclose(flip_heatmap_volume(b["pose_heatmap"].numpy(), "ntu25"), a["pose_heatmap"].numpy(),
                               atol=1e-6)


def test_multi_clip_test_items_stack_clips(store_path: Path) -> None:
    test = _datasets(_config(store_path, test_clips=3, pose_heatmap={"num_frames": 4, "size": 16}))["test"]
    item = test[0]
    assert item["rgb"].shape == (3, 3, 4, 32, 32) and item["points"].shape == (3, 4, 32, 3)
    assert not torch.equal(item["rgb"][0], item["rgb"][2])  # different segment offsets


def test_unknown_modality_and_keypoint_source_are_named() -> None:
    with pytest.raises(ConfigError, match=r"data.modalities\[0\]"):
        ExperimentConfig.from_dict({"data": {"modalities": ["thermal"]}})
    with pytest.raises(ConfigError, match="data.pose_heatmap.keypoints"):
        ExperimentConfig.from_dict({"data": {"pose_heatmap": {"keypoints": "hrnet"}}})


def test_depth_encoder_trains_on_the_store_and_init_loads_its_weights(store_path: Path, tmp_path: Path) -> None:
    from actionfusion.pipeline.trainer import train

    torch.set_num_threads(1)
    cfg = ExperimentConfig.from_dict({
        "data": {"store": str(store_path), "modalities": ["depth"], "depth": {"num_frames": 4, "size": 24},
                 "batch_size": 4, "num_workers": 0},
        "model": {"name": "depth_tsm", "num_classes": 60},
        "schedule": {"name": "constant", "epochs": 1, "warmup_epochs": 0, "milestones": []},
        "optim": {"lr": 0.01}, "train": {"amp": False},
    })
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metrics = train(cfg, tmp_path / "run", progress=False)
    assert 0.0 <= metrics["test"]["top1"] <= 1.0
    weights = tmp_path / "run" / "best.safetensors"
    assert weights.is_file()
    # model.init: a second run starts from those weights (whole model, path "")
    from actionfusion.pipeline.trainer import build_model, initialise_from

    model = build_model(cfg)
    initialise_from(model, {"": str(weights)})
    from actionfusion.pipeline.checkpoints import read_weights

    saved = read_weights(weights)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in saved.items())
    with pytest.raises(ConfigError, match="model.init.nothing"):
        initialise_from(model, {"nothing": str(weights)})
    with pytest.raises(ConfigError, match="no weights file"):
        initialise_from(model, {"": str(tmp_path / "missing.safetensors")})
