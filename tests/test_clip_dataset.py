"""Skeleton clip datasets over a tiny synthetic store: shapes, seeding, multi-clip, splits and labels."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from actionfusion.datasets.clip_dataset import SkeletonClipDataset, fit_length, fit_persons
from actionfusion.datasets.ntu.names import parse_sample_name
from actionfusion.datasets.ntu.splits import split_of
from actionfusion.datasets.store.prepare import PrepareConfig, prepare_store
from actionfusion.datasets.store.sample_store import SampleStore
from actionfusion.datasets.synthetic.generate import SynthConfig, generate_synthetic_ntu
from actionfusion.pipeline.config import ConfigError, ExperimentConfig
from actionfusion.pipeline.data_builder import build_datasets, build_transform, split_names


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("clip_dataset")
    generate_synthetic_ntu(root / "raw", SynthConfig(scale="tiny", modalities=("skeleton",)), workers=1, progress=False)
    prepare_store(root / "raw", root / "store", PrepareConfig(modalities=("skeleton",)), workers=0, progress=False)
    return root / "store"


@pytest.fixture(scope="module")
def store(store_path: Path) -> SampleStore:
    return SampleStore(store_path)


def jitter_and_crop(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Stand-in transform: random temporal crop of 20 frames and Gaussian jitter, [M, T, V, C] -> [M, 20, V, C]."""
    start = int(rng.integers(0, max(1, x.shape[1] - 20)))
    crop = x[:, start:start + 20]
    return crop + rng.normal(0.0, 0.01, size=crop.shape).astype(np.float32)


def crop_20(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Stand-in transform: the first 20 frames, [M, T, V, C] -> [M, 20, V, C]."""
    return x[:, :20]


def identity(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return x


def stand_in_builder(specs: list, layout: str, train: bool):
    """Records nothing and ignores the specs: the split and label tests do not depend on transforms."""
    return jitter_and_crop if train else identity


def _config(store_path: Path, **data: object) -> ExperimentConfig:
    base = ExperimentConfig().to_dict()
    base["data"].update({"store": str(store_path), "clip_len": 24, **data})
    return ExperimentConfig.from_dict(base)


def test_item_shapes_dtypes_and_persons(store: SampleStore) -> None:
    names = store.names[:4]
    ds = SkeletonClipDataset(store, names, crop_20, clip_len=32, max_persons=3)
    item = ds[2]
    assert item["skeleton"].shape == (3, 32, 25, 3) and item["skeleton"].dtype == torch.float32
    assert item["label"].dtype == torch.int64 and item["label"].ndim == 0
    assert item["index"] == 2 and len(ds) == 4
    raw = store.load_skeleton(names[2])[:, :20]
    persons, frames = raw.shape[:2]
    # Person slots past the stored ones are zero; so are the frames after the crop (clip_len 32 > 20).
    assert persons < 3 and torch.count_nonzero(item["skeleton"][persons:]) == 0
    assert torch.count_nonzero(item["skeleton"][:, frames:]) == 0
    np.testing.assert_array_equal(item["skeleton"][:persons, :frames].numpy(), raw)
    with pytest.raises(IndexError):
        ds[4]


def test_fit_helpers() -> None:
    x = np.arange(2 * 10 * 1 * 1, dtype=np.float32).reshape(2, 10, 1, 1)
    assert fit_persons(x, 1).shape == (1, 10, 1, 1) and fit_persons(x, 4)[2:].sum() == 0
    down = fit_length(x, 4)
    # Linear resampling keeps both ends and spreads the rest evenly.
    np.testing.assert_allclose(down[0, :, 0, 0], [0.0, 3.0, 6.0, 9.0])
    up = fit_length(x, 12)
    np.testing.assert_array_equal(up[:, :10], x)
    assert up[:, 10:].sum() == 0
    assert fit_length(x, 10) is x


def test_same_epoch_and_index_give_identical_clips(store: SampleStore) -> None:
    a = SkeletonClipDataset(store, store.names, jitter_and_crop, clip_len=24, seed=5)
    b = SkeletonClipDataset(store, store.names, jitter_and_crop, clip_len=24, seed=5)
    a.set_epoch(3)
    b.set_epoch(3)
    for i in (0, 7):
        assert torch.equal(a[i]["skeleton"], b[i]["skeleton"])
    # Through a pickle round trip (as into a spawned loader worker) the clips are unchanged too.
    c = pickle.loads(pickle.dumps(a))
    assert torch.equal(c[7]["skeleton"], a[7]["skeleton"])
    # Another epoch, another seed, or another index: another augmentation.
    first = a[0]["skeleton"]
    a.set_epoch(4)
    assert not torch.equal(a[0]["skeleton"], first)
    other_seed = SkeletonClipDataset(store, store.names, jitter_and_crop, clip_len=24, seed=6)
    other_seed.set_epoch(3)
    assert not torch.equal(other_seed[0]["skeleton"], first)


def test_rng_is_seeded_by_seed_epoch_index(store: SampleStore) -> None:
    seen = []

    def record(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        seen.append(rng.random())
        return x

    ds = SkeletonClipDataset(store, store.names, record, clip_len=16, seed=9)
    ds.set_epoch(2)
    ds[5]
    assert seen == [np.random.default_rng([9, 2, 5]).random()]


def test_multi_clip_items(store: SampleStore) -> None:
    ds = SkeletonClipDataset(store, store.names, jitter_and_crop, clip_len=24, num_clips=3, seed=1)
    ds.set_epoch(1)
    clips = ds[4]["skeleton"]
    assert clips.shape == (3, 2, 24, 25, 3)
    assert not torch.equal(clips[0], clips[1])  # independent clips
    raw = ds.load(4)
    expected = fit_length(jitter_and_crop(raw.copy(), np.random.default_rng([1, 1, 4, 2])), 24)
    np.testing.assert_array_equal(clips[2].numpy(), expected)


def test_labels_match_the_sample_names(store: SampleStore) -> None:
    ds = SkeletonClipDataset(store, store.names, identity, clip_len=16)
    for i, name in enumerate(ds.names):
        assert ds.labels[i] == parse_sample_name(name).action - 1
        assert int(ds[i]["label"]) == ds.labels[i]


def test_build_datasets_splits_are_disjoint_and_on_the_right_side(store_path: Path) -> None:
    cfg = _config(store_path, test_clips=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        datasets = build_datasets(cfg, pipeline_builder=stand_in_builder)
    # The tiny store's single training performer is not among the held-out performers: the
    # builder falls back to a per-sample carve-out and says so.
    assert any("holding out" in str(w.message) for w in caught)
    train, val, test = (set(datasets[k].names) for k in ("train", "val", "test"))
    assert train and val and test
    assert not (train & val) and not (train & test) and not (val & test)
    assert train | val | test == set(SampleStore(store_path).names)
    assert all(split_of(n, "ntu60_xsub") == "train" for n in train | val)
    assert all(split_of(n, "ntu60_xsub") == "test" for n in test)
    assert datasets["train"][0]["skeleton"].shape == (2, 24, 25, 3)
    assert datasets["val"][0]["skeleton"].shape == (2, 2, 24, 25, 3)
    assert datasets["test"].labels == [parse_sample_name(n).action - 1 for n in datasets["test"].names]
    # Same config, same split.
    with pytest.warns(UserWarning, match="holding out"):
        again = split_names(cfg, SampleStore(store_path))
    assert again["val"] == datasets["val"].names


def test_group_carve_out_is_kept_when_it_finds_samples(store: SampleStore) -> None:
    # Performer 1 (the tiny set's training performer) is held out for some seeds; find one.
    for seed in range(200):
        cfg = ExperimentConfig.from_dict({"seed": seed, "data": {"validation_fraction": 0.5}})
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                splits = split_names(cfg, store)
            except UserWarning:
                continue
        assert splits["val"] and not splits["train"]  # whole performer held out, no per-sample mixing
        return
    pytest.fail("no seed held out performer 1")


def test_missing_store_says_how_to_make_one(tmp_path: Path) -> None:
    cfg = _config(tmp_path / "no_store")
    with pytest.raises(ConfigError, match="make demo") as info:
        build_datasets(cfg, pipeline_builder=stand_in_builder)
    assert info.value.key == "data.store"


def test_real_pipeline_gives_clip_len_and_stream_channels(store_path: Path) -> None:
    pytest.importorskip("actionfusion.modalities.skeleton.transforms")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        joint = build_datasets(_config(store_path, clip_len=20))
        unified = build_datasets(_config(store_path, clip_len=20, stream="unified12"))
    assert joint["train"][0]["skeleton"].shape == (2, 20, 25, 3)
    item = unified["train"][0]["skeleton"]
    assert item.shape == (2, 20, 25, 12)
    # The unified input's first three channels are the joint stream of the same augmented clip.
    assert torch.allclose(item[..., :3], joint["train"][0]["skeleton"])
    # Test clips are deterministic (centre crop, no augmentation) whatever the epoch.
    test = joint["test"]
    first = test[0]["skeleton"]
    test.set_epoch(7)
    assert torch.equal(test[0]["skeleton"], first)


def test_test_transform_crop_interval_is_used_at_test(store_path: Path) -> None:
    pytest.importorskip("actionfusion.modalities.skeleton.transforms")
    cfg = _config(store_path, test_transforms=[{"name": "valid_crop_resize", "p_interval": [0.5]}])
    wide = _config(store_path, test_transforms=[{"name": "valid_crop_resize", "p_interval": [1.0]}])
    x = SampleStore(store_path).load_skeleton(SampleStore(store_path).names[0])
    rng = np.random.default_rng(0)
    narrow_clip = build_transform(cfg.data, train=False)(x.copy(), rng)
    wide_clip = build_transform(wide.data, train=False)(x.copy(), rng)
    assert narrow_clip.shape == wide_clip.shape == (x.shape[0], 24, 25, 3)
    assert not np.allclose(narrow_clip, wide_clip)


def test_batches_do_not_depend_on_the_number_of_workers(store: SampleStore) -> None:
    from torch.utils.data import DataLoader

    ds = SkeletonClipDataset(store, store.names, jitter_and_crop, clip_len=24, seed=2)
    ds.set_epoch(1)
    serial = [b["skeleton"] for b in DataLoader(ds, batch_size=4, num_workers=0)]
    parallel = [b["skeleton"] for b in DataLoader(ds, batch_size=4, num_workers=2)]
    assert len(serial) == len(parallel)
    assert all(torch.equal(a, b) for a, b in zip(serial, parallel))
