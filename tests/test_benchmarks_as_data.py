"""Benchmarks as data: the store's benchmark files, a user's CSV/JSON lists, a pyskl import's named
splits, class names into the reports, ``model.num_classes: auto``, and the 2D keypoint convention."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from actionfusion.datasets.benchmarks import (BenchmarkFileError, read_benchmark_csv, resolve_benchmark,
                                              stratified_split, write_benchmark_file)
from actionfusion.datasets.pyskl_pickle import PysklSample, save_pyskl_annotations
from actionfusion.datasets.skeleton_conventions import load_pose2d_convention
from actionfusion.datasets.store.pyskl_import import import_pyskl_pickle
from actionfusion.datasets.store.sample_store import SampleStore
from actionfusion.errors import StoreError, UnknownNameError
from actionfusion.pipeline.config import ConfigError, load_config

CLASSES = ("wave", "jump", "squat")


def _motion(label: int, rng: np.random.Generator, frames: int = 24, joints: int = 17) -> np.ndarray:
    """float32 [1, T, V, 2] keypoints whose motion tells the class: wave = fast sideways oscillation of
    the upper joints, jump = whole body up and down, squat = lower joints still, upper ones sinking."""
    t = np.linspace(0.0, 1.0, frames)[:, None]
    base = rng.normal(0, 5, size=(1, joints, 2)) + np.stack([np.linspace(900, 1000, joints),
                                                            np.linspace(300, 700, joints)], -1)[None]
    x = np.repeat(base, frames, axis=0).astype(np.float64)
    upper = np.arange(joints) < joints // 2
    if label == 0:
        x[:, upper, 0] += 250 * np.sin(2 * np.pi * 4 * t)
    elif label == 1:
        x[:, :, 1] -= 300 * np.abs(np.sin(2 * np.pi * t))
    else:
        x[:, upper, 1] += 300 * t
    x += rng.normal(0, 3, size=x.shape)
    return x[None].astype(np.float32)


def _pyskl_2d_store(tmp_path: Path, per_class: int = 12) -> Path:
    """A pyskl 2D (COCO-17) pickle with custom names and splits train / val, imported."""
    rng = np.random.default_rng(0)
    samples, train, val = [], [], []
    for label in range(len(CLASSES)):
        for i in range(per_class):
            name = f"myclip_{label}_{i:03d}"
            keypoint = _motion(label, rng)
            samples.append(PysklSample(frame_dir=name, label=label, total_frames=keypoint.shape[1], keypoint=keypoint,
                                       keypoint_score=np.full(keypoint.shape[:-1], 0.9, np.float32),
                                       img_shape=(1080, 1920)))
            (val if i % 3 == 0 else train).append(name)
    pkl = tmp_path / "custom.pkl"
    save_pyskl_annotations(pkl, samples, {"train": train, "val": val})
    import_pyskl_pickle(pkl, tmp_path / "store", trust_pickle=True)
    return tmp_path / "store"


def test_stratified_split_keeps_every_class_in_proportion_and_is_seeded() -> None:
    names = [f"v{i:03d}" for i in range(100)]
    labels = [i % 4 for i in range(100)]  # 25 per class
    parts = stratified_split(names, labels, {"val": 0.1, "test": 0.2}, seed=3)
    assert sorted(sum(parts.values(), [])) == names  # a partition
    by_label = dict(zip(names, labels))
    for split, per_class in (("val", 2), ("test", 5), ("train", 18)):  # round(2.5) = 2, round(5.0) = 5
        assert Counter(by_label[n] for n in parts[split]) == {c: per_class for c in range(4)}
    assert stratified_split(names, labels, {"val": 0.1, "test": 0.2}, seed=3) == parts
    assert stratified_split(names, labels, {"val": 0.1, "test": 0.2}, seed=4)["test"] != parts["test"]
    # adding a class leaves the split of the others as it was
    more = stratified_split(names + ["w0", "w1", "w2", "w3"], labels + [9] * 4, {"val": 0.1, "test": 0.2}, seed=3)
    assert [n for n in more["test"] if n.startswith("v")] == parts["test"]


def test_csv_list_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text("sample,split,label\na,train,wave\nb,tset,jump\n")
    with pytest.raises(BenchmarkFileError, match=r"list\.csv, line 3: split 'tset' of sample 'b'"):
        read_benchmark_csv(path, "list", {"a", "b"})
    path.write_text("sample,split,label\na,train,wave\n../x,test,jump\n")
    with pytest.raises(BenchmarkFileError, match=r"line 3: sample name '\.\./x' holds a path separator"):
        read_benchmark_csv(path, "list", {"a"})
    path.write_text("sample,split\na,train\na,test\n")
    with pytest.raises(BenchmarkFileError, match=r"line 3: sample 'a' is listed twice \(first on line 2\)"):
        read_benchmark_csv(path, "list", {"a"})
    path.write_text("name,fold\na,1\n")
    with pytest.raises(BenchmarkFileError, match=r"line 1: the header row must name 'sample'"):
        read_benchmark_csv(path, "list", {"a"})


def test_csv_list_gives_labels_classes_and_reports_absent_samples(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text("sample,split,label\nc,test,wave\na,train,squat\nb,val,jump\nz,test,jump\n")
    lists = read_benchmark_csv(path, "list", {"a", "b", "c"})
    assert lists.classes == ("jump", "squat", "wave")  # the names, sorted
    assert lists.labels == {"a": 1, "b": 0, "c": 2, "z": 0}
    assert lists.splits == {"train": ["a"], "val": ["b"], "test": ["c"]}
    assert lists.missing == {"test": ["z"]}
    with pytest.raises(StoreError, match="none of its 4 samples is in the store"):
        read_benchmark_csv(path, "list", {"q"})


def test_pyskl_import_trains_with_its_own_splits_class_names_and_2d_keypoints(tmp_path: Path) -> None:
    from actionfusion.pipeline.trainer import train

    store_path = _pyskl_2d_store(tmp_path)
    store = SampleStore(store_path)
    lists = resolve_benchmark("pyskl", store)
    assert (len(lists.splits["train"]), len(lists.splits["val"]), len(lists.splits["test"])) == (24, 0, 12)
    with pytest.raises(UnknownNameError, match=r"has no benchmark 'xsub'; it serves ntu60_xsub, .*, pyskl,"):
        resolve_benchmark("xsub", store)
    with pytest.raises(StoreError, match="are not NTU sample names"):
        resolve_benchmark("ntu60_xsub", store)
    # the 2D convention: COCO-17 (x, y, score), x and y in [-1, 1] of the 1920 x 1080 frame
    x = load_pose2d_convention(store, "myclip_0_000")
    raw = store.load_pose2d("myclip_0_000")
    assert x.shape == (1, 24, 17, 3)
    np.testing.assert_allclose(x[..., 0], (raw[..., 0] - 960) / 960, rtol=1e-6)
    np.testing.assert_allclose(x[..., 1], (raw[..., 1] - 540) / 540, rtol=1e-6)
    np.testing.assert_allclose(x[..., 2], 0.9)

    classes = tmp_path / "classes.json"  # the user's list also names the classes
    labels = json.loads(json.dumps({n: store.label(n) for n in store.names}))
    classes.write_text(json.dumps({"classes": list(CLASSES), "train": lists.splits["train"],
                                   "test": lists.splits["test"], "labels": labels}))
    cfg = load_config("synthetic/stgcn", [
        f"data.store={store_path}", f"data.benchmark={classes}", "data.skeleton_source=coco17_2d",
        "data.validation_fraction=0.2", "data.clip_len=16", "data.max_persons=1", "data.batch_size=4",
        "data.num_workers=0", "data.train_transforms=[{name: valid_crop_resize, p_interval: [0.8, 1.0], min_len: 8}]",
        "data.test_transforms=[{name: valid_crop_resize, p_interval: [0.95], min_len: 8}]",
        "model.num_classes=auto", "model.kwargs={layout: coco17, hidden_channels: 16, hidden_dim: 32}", "schedule.epochs=8",
        "schedule.warmup_epochs=0", "schedule.milestones=[]", "optim.lr=0.1", "train.cpu_threads=1"])
    results = train(cfg, tmp_path / "work", progress=False)
    assert results["test"]["top1"] > 1 / 3 + 0.25  # chance is 1/3; the motions are distinct
    recorded = load_config(tmp_path / "work" / "config.yaml")
    assert recorded.model.num_classes == 3  # auto, resolved and recorded
    assert json.loads((tmp_path / "work" / "classes.json").read_text()) == list(CLASSES)
    per_class = (tmp_path / "work" / "per_class.csv").read_text()
    assert all(name in per_class for name in CLASSES)

    too_few = load_config("synthetic/stgcn", [f"data.store={store_path}", "data.benchmark=pyskl", "data.max_persons=1",
                                              "data.skeleton_source=coco17_2d", "model.kwargs={layout: coco17}",
                                              "model.num_classes=2", "train.cpu_threads=1"])
    with pytest.raises(ConfigError, match=r"model.num_classes: is 2, but the labels of pyskl reach 2"):
        train(too_few, tmp_path / "work2", progress=False)


def test_store_benchmark_file_round_trip_and_validation_carve_out(tmp_path: Path) -> None:
    store_path = _pyskl_2d_store(tmp_path, per_class=10)
    store = SampleStore(store_path)
    names = store.names
    train = [n for n in names if int(n[-3:]) < 8]  # 8 per class
    test = [n for n in names if n not in train]
    path = write_benchmark_file(store_path, "mine", CLASSES, {"train": train, "test": test + ["gone"]}, source="test")
    assert path == store_path / "splits" / "mine.json"
    lists = resolve_benchmark("mine", store, validation_fraction=0.25, seed=0)
    assert lists.classes == CLASSES and lists.missing == {"test": ["gone"]}
    assert len(lists.splits["val"]) == 6 and not set(lists.splits["val"]) & set(lists.splits["train"])
    assert Counter(store.label(n) for n in lists.splits["val"]) == {0: 2, 1: 2, 2: 2}  # stratified
    record = json.loads(path.read_text())
    record["train"].append(record["train"][0])
    path.write_text(json.dumps(record))
    with pytest.raises(BenchmarkFileError, match=r"mine\.json, train\[24\]: sample .* is listed twice"):
        resolve_benchmark("mine", store)


def test_config_accepts_store_benchmarks_and_refuses_ntu_typos(tmp_path: Path) -> None:
    assert load_config("synthetic/ctrgcn", ["data.benchmark=videos"]).data.benchmark == "videos"
    assert load_config("synthetic/ctrgcn", ["data.benchmark=lists/my.csv"]).data.benchmark == "lists/my.csv"
    for bad in ("ntu60", "ntu60_xsub_lt1", "../x"):
        with pytest.raises(ConfigError, match="data.benchmark"):
            load_config("synthetic/ctrgcn", [f"data.benchmark={bad}"])
    with pytest.raises(ConfigError, match="model.num_classes: must be an integer or 'auto'"):
        load_config("synthetic/ctrgcn", ["model.num_classes=many"])
