"""PKU-MMD, NW-UCLA and pyskl pickle formats: write small files, read them back."""

import json
import pickle

import numpy as np
import pytest

from actionfusion.datasets import nw_ucla, pku_mmd
from actionfusion.datasets.pyskl_pickle import (
    PysklSample,
    likely_swapped_img_shape,
    load_pyskl_annotations,
    save_pyskl_annotations,
)
from actionfusion.errors import AnnotationFormatError, SampleNameError, SkeletonFormatError, UnsafeLoadError


# ------------------------------------------------------------------ PKU-MMD

def _pku_sequence(num_frames=40):
    """[2, T, 25, 3]: person 1 everywhere; person 2 only in frames 20-29; frames 35+ empty."""
    rng = np.random.default_rng(0)
    seq = rng.normal(0, 1, (2, num_frames, 25, 3)).astype(np.float32)
    seq[1, :20] = 0
    seq[1, 30:] = 0
    seq[:, 35:] = 0
    return seq


def _write_pku_skeleton(path, seq):
    rows = seq.transpose(1, 0, 2, 3).reshape(seq.shape[1], 150)
    path.write_text("\n".join(" ".join(f"{v:.6f}" for v in row) for row in rows) + "\n")


def test_pku_skeleton_round_trip_and_clips(tmp_path):
    seq = _pku_sequence()
    _write_pku_skeleton(tmp_path / "0002-L.txt", seq)
    (tmp_path / "labels.txt").write_text("3,0,10,1\n51,20,30,2\n\n7,36,39,1\n5,30,100,1\n")
    read = pku_mmd.read_pku_skeleton(tmp_path / "0002-L.txt")
    assert read.shape == (2, 40, 25, 3) and read.dtype == np.float32
    np.testing.assert_allclose(read, seq, atol=1e-6)
    actions = pku_mmd.read_pku_labels(tmp_path / "labels.txt")
    assert [(a.action_id, a.start_frame, a.end_frame, a.line) for a in actions] == [
        (3, 0, 10, 1), (51, 20, 30, 2), (7, 36, 39, 4), (5, 30, 100, 5)]
    clips = pku_mmd.read_sequence_clips(tmp_path / "0002-L.txt", tmp_path / "labels.txt")
    # the all-zero clip (frames 36-38) is skipped; the range past the end is cut at T
    assert [(c.index, c.label, c.start, c.end) for c in clips] == [(0, 2, 0, 10), (1, 50, 20, 30), (3, 4, 30, 40)]
    assert all(c.sequence == "0002-L" for c in clips)
    np.testing.assert_allclose(clips[1].skeleton, seq[:, 20:30], atol=1e-6)
    assert clips[1].skeleton[1].any()  # the second person is in this clip
    inclusive = pku_mmd.cut_clips(read, actions[:1], end_inclusive=True)
    assert inclusive[0].skeleton.shape == (2, 11, 25, 3)
    with pytest.raises(AnnotationFormatError, match="line 4"):
        pku_mmd.cut_clips(read, actions, skip_empty=False, label_path=tmp_path / "labels.txt")


@pytest.mark.parametrize(
    "text, match",
    [("3,0,10\n", "line 1"), ("1,0,5,1\n52,0,5,1\n", "line 2"), ("1,9,5,1\n", "frame range"),
     ("1,0,x,1\n", "non-numeric"), ("1,0,2.5,1\n", "non-integer")],
)
def test_pku_bad_labels(tmp_path, text, match):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(AnnotationFormatError, match=match):
        pku_mmd.read_pku_labels(path)


def test_pku_bad_skeleton(tmp_path):
    seq = _pku_sequence(3)
    _write_pku_skeleton(tmp_path / "s.txt", seq)
    lines = (tmp_path / "s.txt").read_text().splitlines()
    (tmp_path / "short.txt").write_text("\n".join(lines[:2] + [" ".join(lines[2].split()[:149])]))
    with pytest.raises(SkeletonFormatError, match="line 3"):
        pku_mmd.read_pku_skeleton(tmp_path / "short.txt")
    (tmp_path / "word.txt").write_text("\n".join([lines[0], lines[1].replace(lines[1].split()[5], "abc", 1)]))
    with pytest.raises(SkeletonFormatError, match="line 2.*'abc'"):
        pku_mmd.read_pku_skeleton(tmp_path / "word.txt")
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(SkeletonFormatError, match="no frames"):
        pku_mmd.read_pku_skeleton(tmp_path / "empty.txt")


def test_pku_split_file(tmp_path):
    path = tmp_path / "cross-view.txt"
    path.write_text("Training videos: \n0002-M, 0002-R, 0003-M\nValidataion videos: \n0002-L, 0003-L\n")
    split = pku_mmd.read_pku_split(path)
    assert split.train == ("0002-M", "0002-R", "0003-M") and split.test == ("0002-L", "0003-L")
    assert split.split_of("0002-R") == "train" and split.split_of("0009-L") == "test"
    inline = tmp_path / "cross-subject.txt"
    inline.write_text("Training videos (3): 0002-L, 0002-M,\n 0002-R\nTest videos: 0013-L\n")
    assert pku_mmd.read_pku_split(inline).train == ("0002-L", "0002-M", "0002-R")
    bad = tmp_path / "bad.txt"
    bad.write_text("0002-L, 0002-M\n")
    with pytest.raises(AnnotationFormatError, match="line 1"):
        pku_mmd.read_pku_split(bad)


# ------------------------------------------------------------------ NW-UCLA

def test_ucla_json_labels_and_split(tmp_path):
    skeleton = np.random.default_rng(1).normal(size=(12, 20, 3))
    path = tmp_path / "a12_s03_e01_v03.json"
    path.write_text(json.dumps({"file_name": path.stem, "skeletons": skeleton.tolist()}))
    values = nw_ucla.read_ucla_json(path)
    assert values.shape == (12, 20, 3) and values.dtype == np.float32
    np.testing.assert_allclose(values, skeleton, rtol=1e-6)
    name = nw_ucla.parse_ucla_name(path.name)
    assert (name.action, name.subject, name.episode, name.view, name.label) == (12, 3, 1, 3, 9)
    assert str(name) == "a12_s03_e01_v03"
    assert [nw_ucla.parse_ucla_name(f"a{a:02d}_s01_e00_v01").label for a in nw_ucla.ACTIONS] == list(range(10))
    assert nw_ucla.split_of("a01_s01_e00_v01") == "train" == nw_ucla.split_of("a01_s01_e00_v02")
    assert nw_ucla.split_of(name) == "test"
    with pytest.raises(SampleNameError):
        nw_ucla.parse_ucla_name("a07_s01_e00_v01")  # action 7 is not in NW-UCLA
    with pytest.raises(SampleNameError):
        nw_ucla.split_of("a01_s01_e00_v04")
    (tmp_path / "a07_s01_e00_v01.json").write_text("{}")
    (tmp_path / "notes.json").write_text("{}")
    assert nw_ucla.list_ucla_samples(tmp_path) == [path]
    assert len(nw_ucla.JOINT_NAMES) == len(nw_ucla.JOINT_PARENTS) == 20 == len(nw_ucla.CLASS_NAMES) * 2


@pytest.mark.parametrize(
    "content, match",
    [("{not json", "not valid JSON"), ('{"x": []}', "skeletons"), ('{"skeletons": []}', "no frame"),
     ('{"skeletons": [[[0, 0, 0]]]}', r"skeletons\[0\]")],
)
def test_ucla_bad_json(tmp_path, content, match):
    path = tmp_path / "a01_s01_e00_v01.json"
    path.write_text(content)
    with pytest.raises(SkeletonFormatError, match=match):
        nw_ucla.read_ucla_json(path)


# ------------------------------------------------------------------ pyskl pickles

def _samples():
    rng = np.random.default_rng(2)
    two_d = PysklSample(
        frame_dir="S001C001P001R001A001", label=0, total_frames=5,
        keypoint=rng.uniform(0, 1000, (1, 5, 17, 2)).astype(np.float32),
        keypoint_score=rng.uniform(0, 1, (1, 5, 17)).astype(np.float32),
        img_shape=(1080, 1920), original_shape=(1080, 1920), extra={"raw_file": "x.avi"},
    )
    three_d = PysklSample(
        frame_dir="S001C001P001R001A050", label=49, total_frames=4,
        keypoint=rng.normal(size=(2, 4, 25, 3)).astype(np.float16),
    )
    return [two_d, three_d]


def test_pyskl_round_trip(tmp_path):
    path = tmp_path / "ann.pkl"
    splits = {"xsub_train": ["S001C001P001R001A001"], "xsub_val": ["S001C001P001R001A050", "S099C001P001R001A001"]}
    save_pyskl_annotations(path, _samples(), splits)
    loaded = load_pyskl_annotations(path, trust_pickle=True)
    assert loaded.splits == splits
    assert loaded.unmatched_split_names() == {"xsub_val": ["S099C001P001R001A001"]}
    for original, back in zip(_samples(), loaded.samples):
        assert back.frame_dir == original.frame_dir and back.label == original.label
        assert back.keypoint.dtype == original.keypoint.dtype
        np.testing.assert_array_equal(back.keypoint, original.keypoint)
        assert back.img_shape == original.img_shape and back.extra == original.extra
    assert loaded.samples[0].layout == "coco17" and loaded.samples[1].layout == "ntu25"
    assert loaded.samples[1].keypoint.dtype == np.float16 and loaded.samples[1].keypoint_score is None
    assert [s.frame_dir for s in loaded.split_samples("xsub_val")] == ["S001C001P001R001A050"]
    # the file is plain pyskl format: a dict of lists and dicts, arrays writable
    raw = pickle.loads(path.read_bytes())
    assert set(raw) == {"split", "annotations"} and isinstance(raw["annotations"][0], dict)
    assert raw["annotations"][1]["keypoint"].flags.writeable
    # no reference to numpy._core, which NumPy 1.x (pyskl's pinned environment) lacks
    assert b"numpy._core" not in path.read_bytes()


def test_pyskl_refuses_without_opt_in(tmp_path):
    path = tmp_path / "ann.pkl"
    save_pyskl_annotations(path, _samples(), {})
    with pytest.raises(UnsafeLoadError, match="trust_pickle=True"):
        load_pyskl_annotations(path)
    with pytest.raises(UnsafeLoadError):
        load_pyskl_annotations(path, trust_pickle="yes")


def _dump(tmp_path, content):
    path = tmp_path / "bad.pkl"
    path.write_bytes(pickle.dumps(content))
    return path


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda a: a.pop("keypoint"), "missing key 'keypoint'"),
        (lambda a: a.update(total_frames=6), "total_frames"),
        (lambda a: a.update(keypoint=np.zeros((5, 17, 2), np.float32)), r"\[M, T, V, C\]"),
        (lambda a: a.update(keypoint_score=np.zeros((1, 5, 16), np.float32)), "keypoint_score"),
        (lambda a: a.update(img_shape=(1080,)), r"\(h, w\)"),
        (lambda a: a.update(label=-1), "label"),
    ],
)
def test_pyskl_structure_errors_name_the_sample(tmp_path, mutate, match):
    record = _samples()[0].to_dict()
    mutate(record)
    path = _dump(tmp_path, {"split": {}, "annotations": [record]})
    with pytest.raises(AnnotationFormatError, match=match) as info:
        load_pyskl_annotations(path, trust_pickle=True)
    assert "annotations[0]" in str(info.value)


def test_pyskl_bad_files(tmp_path):
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle")
    with pytest.raises(AnnotationFormatError, match="not a readable pickle"):
        load_pyskl_annotations(tmp_path / "junk.pkl", trust_pickle=True)
    with pytest.raises(AnnotationFormatError, match="'annotations'"):
        load_pyskl_annotations(_dump(tmp_path, [1, 2]), trust_pickle=True)
    record = _samples()[1].to_dict()
    with pytest.raises(AnnotationFormatError, match="twice"):
        load_pyskl_annotations(_dump(tmp_path, {"split": {}, "annotations": [record, record]}), trust_pickle=True)
    with pytest.raises(AnnotationFormatError):
        save_pyskl_annotations(tmp_path / "out.pkl", [_samples()[0]], {"xsub_train": [1]})
    assert not (tmp_path / "out.pkl").exists()


def test_swapped_img_shape_is_flagged():
    sample = _samples()[0]
    assert not likely_swapped_img_shape(sample)
    sample.keypoint[..., 0] = np.linspace(100, 1900, 17)  # x spans a 1920-wide frame
    sample.img_shape = (1920, 1080)  # written (w, h)
    assert likely_swapped_img_shape(sample)
