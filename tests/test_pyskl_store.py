"""pyskl pickles <-> sample store: the import needs an explicit opt-in and round-trips."""

import numpy as np
import pytest

from actionfusion.datasets.pyskl_pickle import PysklSample, load_pyskl_annotations, save_pyskl_annotations
from actionfusion.datasets.store.pyskl_import import export_pyskl_pickle, import_pyskl_pickle
from actionfusion.datasets.store.sample_store import SampleStore
from actionfusion.errors import UnsafeLoadError
from actionfusion.pipeline.cli import main


def _samples_3d():
    rng = np.random.default_rng(0)
    names = ["S001C001P001R001A001", "S001C002P003R001A005", "S002C003P002R002A058"]
    return [
        PysklSample(n, int(n[-3:]) - 1, 20 + i, rng.normal(size=(2, 20 + i, 25, 3)).astype(np.float16))
        for i, n in enumerate(names)
    ]


def test_import_refuses_without_trust_and_writes_nothing(tmp_path):
    pkl = tmp_path / "a.pkl"
    save_pyskl_annotations(pkl, _samples_3d(), {"xsub_train": ["S001C001P001R001A001"]})
    with pytest.raises(UnsafeLoadError):
        import_pyskl_pickle(pkl, tmp_path / "store")
    assert not (tmp_path / "store").exists()
    assert main(["import-pyskl", str(pkl), "--out", str(tmp_path / "store")]) == 2


def test_3d_import_then_export_round_trips(tmp_path):
    pkl = tmp_path / "a.pkl"
    samples = _samples_3d()
    save_pyskl_annotations(pkl, samples, {"xsub_train": [samples[0].frame_dir], "xsub_val": [samples[1].frame_dir]})
    report = import_pyskl_pickle(pkl, tmp_path / "store", trust_pickle=True)
    assert report["imported"] == 3
    assert import_pyskl_pickle(pkl, tmp_path / "store", trust_pickle=True)["skipped"] == 3
    store = SampleStore(tmp_path / "store")
    assert store.names == sorted(s.frame_dir for s in samples)
    first = store.load_skeleton(samples[0].frame_dir)
    assert first.dtype == np.float32 and first.shape == (2, 20, 25, 3)
    assert np.array_equal(first, samples[0].keypoint.astype(np.float32))
    assert store.label("S002C003P002R002A058") == 57

    out = tmp_path / "back.pkl"
    assert export_pyskl_pickle(tmp_path / "store", out) == 3
    assert main(["export-pyskl", str(tmp_path / "store"), "--out", str(tmp_path / "cli.pkl")]) == 0
    assert (tmp_path / "cli.pkl").read_bytes() == out.read_bytes()
    back = load_pyskl_annotations(out, trust_pickle=True)
    assert back.splits == {"xsub_train": [samples[0].frame_dir], "xsub_val": [samples[1].frame_dir]}
    for original, again in zip(samples, back.samples):
        assert again.frame_dir == original.frame_dir and again.label == original.label
        assert np.array_equal(again.keypoint, original.keypoint)


def test_2d_import_keeps_scores_and_hw(tmp_path):
    rng = np.random.default_rng(1)
    kp = rng.uniform(0, 400, size=(1, 12, 17, 2)).astype(np.float32)
    score = rng.uniform(0, 1, size=(1, 12, 17)).astype(np.float32)
    sample = PysklSample("S001C001P001R001A001", 0, 12, kp, score, img_shape=(480, 640), original_shape=(1080, 1920))
    pkl = tmp_path / "b.pkl"
    save_pyskl_annotations(pkl, [sample], {"xsub_train": [sample.frame_dir]})
    import_pyskl_pickle(pkl, tmp_path / "store", trust_pickle=True)
    store = SampleStore(tmp_path / "store")
    pose = store.load_pose2d(sample.frame_dir)
    assert pose.shape == (1, 12, 17, 3)
    assert np.array_equal(pose[..., :2], kp) and np.array_equal(pose[..., 2], score)
    assert store.meta(sample.frame_dir)["img_shape_hw"] == [480, 640]
