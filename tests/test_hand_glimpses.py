"""Hand glimpses (``rgb_hands``): windows on the hands cut from the stored person crop.

The rendered held objects (a red cup in the right hand) must fill far more of the right-hand
glimpse than of the whole crop at the same pixel budget; the glimpse of the other hand must not
see it; mirroring must equal cutting the mirrored frames around the mirrored, swapped hands.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from actionfusion.datasets.modality_clips import HandGlimpseClipReader, segment_times
from actionfusion.datasets.store.prepare import PrepareConfig, prepare_store
from actionfusion.datasets.store.sample_store import SampleStore
from actionfusion.datasets.synthetic.generate import SynthConfig, generate_synthetic_ntu
from actionfusion.modalities.rgb.clip_transforms import IMAGENET_MEAN_255, IMAGENET_STD_255
from actionfusion.modalities.rgb.hand_glimpses import (cut_glimpses, fill_missing_centres, hand_centres_in_crop,
                                                       jitter_centres)
from actionfusion.pipeline.config import ConfigError, ExperimentConfig
from actionfusion.pipeline.data_builder import build_datasets
from actionfusion.pipeline.feature_checkpoint import prepared_modalities, stored_modalities


def test_centres_map_the_box_corners_onto_the_crop_corners_and_mark_missing_hands() -> None:
    xy = np.array([[[100.0, 50.0], [300.0, 250.0]], [[200.0, 150.0], [np.nan, 0.0]]])  # [T=2, H=2, 2]
    scores = np.array([[1.0, 1.0], [1.0, 1.0]])
    centres = hand_centres_in_crop(xy, scores, (100, 50, 300, 250), (96, 96))
    np.testing.assert_allclose(centres[0], [[0.0, 0.0], [96.0, 96.0]])
    np.testing.assert_allclose(centres[1, 0], [48.0, 48.0])
    assert np.isnan(centres[1, 1]).all()
    scores[0, 1] = 0.0  # an untracked joint counts as missing even with coordinates
    assert np.isnan(hand_centres_in_crop(xy, scores, (100, 50, 300, 250), (96, 96))[0, 1]).all()


def test_missing_centres_take_the_nearest_present_frame_or_the_crop_centre() -> None:
    centres = np.full((5, 2, 2), np.nan)
    centres[1, 0] = (10.0, 11.0)
    centres[4, 0] = (40.0, 41.0)
    filled = fill_missing_centres(centres, (64, 80))
    np.testing.assert_allclose(filled[:, 0, 0], [10, 10, 10, 40, 40])  # frame 2: the earlier one on a tie
    np.testing.assert_allclose(filled[:, 1], np.tile([39.5, 31.5], (5, 1)))  # never present: the crop's centre (x, y)


def test_glimpses_are_the_windows_around_the_centres_and_flip_mirrors_and_swaps_them() -> None:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(3, 96, 96, 3), dtype=np.uint8)
    centres = np.array([[[20.5, 30.5], [70.5, 60.5]]] * 3)  # pixel-aligned windows of 32 around (5..36, 15..46)
    out = cut_glimpses(frames, centres, window=32 / 96, size=32)
    assert out.shape == (3, 32, 64, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:, :, :32], frames[:, 15:47, 5:37])
    np.testing.assert_array_equal(out[:, :, 32:], frames[:, 45:77, 55:87])
    mirrored = frames[:, :, ::-1]
    mirrored_centres = centres.copy()
    mirrored_centres[..., 0] = 95 - centres[..., 0]
    flipped = cut_glimpses(frames, centres, window=64 / 96, size=32, flip=True)
    expected = cut_glimpses(np.ascontiguousarray(mirrored), mirrored_centres[:, ::-1], window=64 / 96, size=32)
    np.testing.assert_array_equal(flipped, expected)


def test_jitter_moves_each_hand_once_per_clip_within_its_bound() -> None:
    centres = np.zeros((6, 2, 2))
    moved = jitter_centres(centres, 192, window=0.25, jitter=0.1, rng=np.random.default_rng(1))
    assert np.all(np.abs(moved) <= 0.1 * 0.25 * 192) and np.abs(moved).max() > 0
    np.testing.assert_array_equal(moved, np.broadcast_to(moved[:1], moved.shape))  # the same shift in every frame
    np.testing.assert_array_equal(jitter_centres(centres, 192, 0.25, 0.0, np.random.default_rng(1)), centres)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared tiny synthetic store (skeleton + 96 px RGB crops) beside its raw root ``../raw``."""
    root = tmp_path_factory.mktemp("hands")
    generate_synthetic_ntu(root / "raw", SynthConfig(scale="tiny", actions=(1, 10), performers=(1, 3)),
                           workers=1, progress=False)
    prepare_store(root / "raw", root / "store", PrepareConfig(modalities=("skeleton", "rgb"), rgb_size=96),
                  workers=0, progress=False)
    return root / "store"


def _cup_fraction(frames: np.ndarray) -> float:
    """Share of the pixels of uint8 frames [..., 3] of the cup's saturated red (hue within 16 degrees of
    red in OpenCV's 0-180 scale; the shading of the render moves its value, not its hue)."""
    hsv = cv2.cvtColor(np.ascontiguousarray(frames).reshape(-1, 1, 3), cv2.COLOR_RGB2HSV).reshape(-1, 3)
    hue, saturation, value = hsv[:, 0], hsv[:, 1], hsv[:, 2]
    return float((((hue <= 8) | (hue >= 176)) & (saturation > 150) & (value > 90)).mean())


def _uint8(clip: np.ndarray) -> np.ndarray:
    """A normalised clip [3, T, H, W] back to uint8 frames [T, H, W, 3]."""
    frames = clip.transpose(1, 2, 3, 0) * np.array(IMAGENET_STD_255) + np.array(IMAGENET_MEAN_255)
    return frames.round().clip(0, 255).astype(np.uint8)


def _fractions(store: SampleStore, name: str) -> tuple[float, float, float]:
    """(cup share of the right-hand glimpses, of the left-hand ones, of the whole crop at about the same pixels)."""
    reader = HandGlimpseClipReader(num_frames=8, size=32, window=0.33, jitter=0.0)
    rng = np.random.default_rng(0)
    clip = reader.read(store, name, segment_times(8, False, rng), False, rng, False)
    assert clip.shape == (3, 8, 32, 64) and clip.dtype == np.float32
    frames = _uint8(clip)
    crops = store.load_rgb(name)
    whole = np.stack([cv2.resize(f, (45, 45), interpolation=cv2.INTER_AREA) for f in crops])  # 45^2 ~ 2 x 32^2 pixels
    return _cup_fraction(frames[:, :, :32]), _cup_fraction(frames[:, :, 32:]), _cup_fraction(whole)


def test_the_cup_fills_the_right_hand_glimpse_not_the_left_nor_a_whole_crop_of_the_same_pixels(store_path: Path) -> None:
    store = SampleStore(store_path)
    # performer 1 wears pink, not red (performer 3's red clothes would count as cup)
    drinking = [_fractions(store, n) for n in store.names if "P001" in n and n.endswith("A001")]
    control = [_fractions(store, n) for n in store.names if "P001" in n and n.endswith("A010")]
    assert len(drinking) == 3 and len(control) == 3
    right, left, whole = np.mean(drinking, axis=0)
    assert np.max(control) < 0.001, control  # no red without the cup
    assert right > 0.01, drinking
    assert right > 2 * left, drinking
    assert right > 5 * whole, drinking


def _config(store: Path, **data: object) -> ExperimentConfig:
    base = {"store": str(store), "benchmark": "ntu60_xsub", "modalities": ["skeleton", "rgb_hands"], "clip_len": 8,
            "batch_size": 2, "num_workers": 0, "rgb_hands": {"num_frames": 4, "size": 16},
            "train_transforms": [{"name": "valid_crop_resize", "p_interval": [0.5, 1.0], "min_len": 4}],
            "test_transforms": [{"name": "valid_crop_resize", "p_interval": [0.95], "min_len": 4}]}
    base.update(data)
    return ExperimentConfig.from_dict({"data": base, "model": {"name": "ctrgcn", "num_classes": 60}})


def test_datasets_deliver_hand_clips_beside_the_skeleton(store_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tiny store's validation carve-out warns
        datasets = build_datasets(_config(store_path))
    item = datasets["train"][0]
    assert tuple(item["rgb_hands"].shape) == (3, 4, 16, 32)
    assert item["skeleton"].shape[0] == 2
    test_item = datasets["test"][0]
    again = datasets["test"][0]
    np.testing.assert_array_equal(test_item["rgb_hands"].numpy(), again["rgb_hands"].numpy())


def test_hand_settings_are_checked_and_say_where_they_come_from() -> None:
    with pytest.raises(ConfigError, match="data.rgb_hands.layout"):
        _config(Path("s"), rgb_hands={"layout": "smpl"})
    with pytest.raises(ConfigError, match="data.rgb_hands.window"):
        _config(Path("s"), rgb_hands={"window": 0.0})
    cfg = _config(Path("s"))
    assert prepared_modalities("rgb_hands", cfg) == ("rgb", "skeleton")
    assert stored_modalities("rgb_hands", cfg) == ("rgb", "pose2d_sensor")
    extracted = _config(Path("s"), rgb_hands={"keypoints": "pose2d", "layout": "coco17"})
    assert prepared_modalities("rgb_hands", extracted) is None  # extracted keypoints come only from a store
    assert stored_modalities("rgb_hands", extracted) == ("rgb", "pose2d")


def test_features_from_a_raw_video_and_skeleton_equal_the_stored_sample(store_path: Path, tmp_path: Path) -> None:
    """Raw inputs are prepared as the training store was, so their hand glimpses, and features, are the same."""
    from actionfusion.pipeline.checkpoints import save_weights
    from actionfusion.pipeline.config import save_config
    from actionfusion.pipeline.feature_extraction import FeatureExtractor
    from actionfusion.pipeline.feature_inputs import MissingModalityError, RawSample
    from actionfusion.pipeline.trainer import build_model

    encoders = {"skeleton": {"name": "hypergcn"},
                "hands": {"name": "tsm_frames", "kwargs": {"input_key": "rgb_hands", "widths": [8, 8, 8, 8],
                                                            "temporal_head": "mean"}}}
    cfg = _config(store_path)
    cfg = ExperimentConfig.from_dict({**cfg.to_dict(), "model": {"name": "recognizer", "num_classes": 60, "kwargs": {
        "encoders": encoders, "fusion": {"name": "late"}}}})
    work = tmp_path / "work"
    work.mkdir()
    save_config(cfg, work / "config.yaml")
    torch.manual_seed(0)
    save_weights(work / "best.safetensors", build_model(cfg))
    raw = store_path.parent / "raw"
    name = sorted(n for n in SampleStore(store_path).names if n.endswith("A001"))[0]
    with FeatureExtractor.from_checkpoint(work, progress=False, cache_dir=tmp_path / "cache") as fx:
        from_raw = fx(RawSample(video=raw / "nturgb+d_rgb" / f"{name}_rgb.avi",
                                skeleton=raw / "nturgb+d_skeletons" / f"{name}.skeleton"))
        stored = fx(f"{store_path}::{name}")
        assert from_raw.modalities_used == ["skeleton", "rgb_hands"]
        np.testing.assert_allclose(from_raw.modalities["hands"], stored.modalities["hands"], rtol=1e-4, atol=1e-5)
        with pytest.raises(MissingModalityError, match="rgb_hands|pose2d_sensor|skeleton"):
            fx(RawSample(video=raw / "nturgb+d_rgb" / f"{name}_rgb.avi"))  # no keypoints to find the hands by
