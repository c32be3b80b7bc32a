"""Store integrity: every writer records its files' sizes and checksums in meta.json, verify checks
them (and each frame's CRC), old stores without them still load, and a huge depth PNG header is
refused before decoding during prepare."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from actionfusion.datasets.pyskl_pickle import PysklSample, save_pyskl_annotations
from actionfusion.datasets.store.frame_pack import FramePack
from actionfusion.datasets.store.layout import MODALITY_FILES
from actionfusion.datasets.store.prepare import prepare_store
from actionfusion.datasets.store.pyskl_import import import_pyskl_pickle
from actionfusion.datasets.store.sample_store import SampleStore
from actionfusion.datasets.store.sample_update import add_pose_to_sample, ensure_pose_store
from actionfusion.datasets.store.store_verify import verify_store
from actionfusion.errors import StoreError

from test_depth_and_index import _png_header
from test_prepare import SKELETON, _add_sample, _need_fixtures, short_video  # noqa: F401  (short_video is a fixture)


def _assert_records_match_files(store: SampleStore, name: str) -> None:
    """meta["files"] holds exactly the sample's modality files, each with its true size and BLAKE2b-128."""
    meta = store.meta(name)
    folder = store.path / "samples" / name
    assert set(meta["files"]) == {MODALITY_FILES[m] for m in meta["modalities"]}
    for file_name, record in meta["files"].items():
        data = (folder / file_name).read_bytes()
        assert record == {"size": len(data), "blake2b_128": hashlib.blake2b(data, digest_size=16).hexdigest()}


def _flip_bit(path: Path, position: int) -> None:
    data = bytearray(path.read_bytes())
    data[position] ^= 0x10
    path.write_bytes(bytes(data))


def _drop_records(store_path: Path, name: str) -> None:
    """Make the sample look like one of a store written before checksums (no meta["files"])."""
    meta_path = store_path / "samples" / name / "meta.json"
    meta = json.loads(meta_path.read_text())
    del meta["files"]
    meta_path.write_text(json.dumps(meta))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory, short_video: Path) -> Path:  # noqa: F811
    """A store of two samples with every modality (rgb: 24 JPEG frames), never modified by a test."""
    root = tmp_path_factory.mktemp("integrity") / "root"
    for action in (1, 2):
        _add_sample(root, f"S001C001P001R001A00{action}", skeleton=SKELETON, video=short_video, depth_frames=4)
    report = prepare_store(root, root.parent / "store", workers=0, progress=False)
    assert report.failures == [] and report.num_done == 2
    return root.parent / "store"


def _copy(store: Path, tmp_path: Path) -> Path:
    import shutil

    shutil.copytree(store, tmp_path / "store")
    return tmp_path / "store"


def test_prepare_records_sizes_and_checksums_and_verify_passes(prepared: Path) -> None:
    store = SampleStore(prepared)
    for name in store.names:
        _assert_records_match_files(store, name)
    report = verify_store(store)
    assert report.ok and report.checked == 2 and report.unrecorded == []
    assert report.to_dict()["notes"] == []


def test_verify_reports_a_flipped_byte_of_skeleton_npy(prepared: Path, tmp_path: Path) -> None:
    path = _copy(prepared, tmp_path)
    name = "S001C001P001R001A002"
    skeleton = path / "samples" / name / "skeleton.npy"
    _flip_bit(skeleton, skeleton.stat().st_size - 7)  # a coordinate's byte: still finite, same shape
    assert np.isfinite(SampleStore(path).load_skeleton(name)).all()  # the array alone looks fine
    report = verify_store(SampleStore(path))
    assert not report.ok and [n for n, _ in report.bad] == [name]
    assert "skeleton.npy: checksum mismatch" in report.bad[0][1]
    # a size change is named as such
    skeleton.write_bytes(skeleton.read_bytes() + b"\x00")
    assert "bytes on disk, meta.json records" in verify_store(SampleStore(path)).bad[0][1]


def test_a_flipped_bit_in_an_rgb_frame_raises_on_read_and_verify_reports_it(prepared: Path, tmp_path: Path) -> None:
    path = _copy(prepared, tmp_path)
    name = "S001C001P001R001A001"
    pack_path = path / "samples" / name / "rgb.pack"
    with FramePack(pack_path) as pack:
        start, end = int(pack.offsets[5]), int(pack.offsets[6])
    _flip_bit(pack_path, (start + end) // 2)
    store = SampleStore(path)
    assert store.load_rgb(name, frames=[4, 6]).shape[0] == 2  # the other frames still read
    with pytest.raises(StoreError, match=r"rgb\.pack, frame 5 .*CRC"):
        store.load_rgb(name, frames=[4, 5])
    report = verify_store(store)
    assert [n for n, _ in report.bad] == [name]
    assert "frame 5" in report.bad[0][1] and "rgb.pack: checksum mismatch" in report.bad[0][1]
    # without the checksum records (an old meta), the frame's CRC still catches it
    _drop_records(path, name)
    report = verify_store(SampleStore(path))
    assert [n for n, _ in report.bad] == [name] and "frame 5" in report.bad[0][1] and "CRC" in report.bad[0][1]


def test_old_meta_without_checksums_loads_and_verify_notes_it(prepared: Path, tmp_path: Path) -> None:
    path = _copy(prepared, tmp_path)
    name = "S001C001P001R001A002"
    _drop_records(path, name)
    store = SampleStore(path)
    assert store.load_skeleton(name).shape[2:] == (25, 3) and store.load_rgb(name, frames=[0]).shape[0] == 1
    report = verify_store(store)
    assert report.ok and report.bad == []
    assert report.unrecorded == [(name, sorted(report.unrecorded[0][1]))] and "skeleton.npy" in report.unrecorded[0][1]
    summary = report.to_dict()
    assert summary["no_checksum_recorded"]["count"] == 1
    assert "no checksum recorded" in summary["notes"][0]


def test_a_hostile_files_record_is_refused_not_followed(prepared: Path, tmp_path: Path) -> None:
    path = _copy(prepared, tmp_path)
    name = "S001C001P001R001A001"
    meta_path = path / "samples" / name / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["files"]["../../manifest.json"] = {"size": 1, "blake2b_128": "00"}
    meta_path.write_text(json.dumps(meta))
    report = verify_store(SampleStore(path))
    assert [n for n, _ in report.bad] == [name] and "unknown file" in report.bad[0][1]


def test_prepare_refuses_a_huge_depth_png_header_before_decoding(tmp_path: Path, monkeypatch) -> None:
    import actionfusion.datasets.ntu.depth as depth_module

    _need_fixtures()
    root = tmp_path / "root"
    good, hostile = "S001C001P001R001A001", "S001C001P001R001A002"
    _add_sample(root, good, skeleton=SKELETON, depth_frames=2)
    _add_sample(root, hostile, skeleton=SKELETON, depth_frames=2)
    frame = root / "nturgb+d_depth_masked" / hostile / "MDepth-00000002.png"
    frame.unlink()
    frame.write_bytes(_png_header(16000, 16000))
    headers: list[bytes] = []
    real_imdecode = depth_module.cv2.imdecode
    monkeypatch.setattr(depth_module.cv2, "imdecode", lambda data, flags: headers.append(bytes(data[:24]))
                        or real_imdecode(data, flags))
    report = prepare_store(root, tmp_path / "store", workers=0, progress=False)
    assert {(n, s) for n, s, _ in report.failures} == {(hostile, "depth"), (hostile, "points")}
    error = dict((n, e) for n, _, e in report.failures)[hostile]
    assert error.startswith("DepthFormatError") and "MDepth-00000002.png" in error and "16000x16000" in error
    assert _png_header(16000, 16000)[:24] not in headers and len(headers) >= 3  # the others were decoded
    store = SampleStore(tmp_path / "store")
    _assert_records_match_files(store, good)
    _assert_records_match_files(store, hostile)  # the partial sample records what it published
    assert verify_store(store).ok


def test_pose_writers_and_pyskl_import_record_checksums(tmp_path: Path) -> None:
    store_path = tmp_path / "poses"
    ensure_pose_store(store_path, config={}, source_root="test")
    pose = np.ones((1, 5, 17, 3), np.float32)
    add_pose_to_sample(store_path, "clip", pose, layout="coco17", fps=25.0, frame_size_hw=(90, 160), backend="x",
                       world=pose * 2)
    _assert_records_match_files(SampleStore(store_path), "clip")
    # an update in place re-records the new file and drops the stale world file's record
    add_pose_to_sample(store_path, "clip", pose * 3, layout="coco17", fps=25.0, frame_size_hw=(90, 160), backend="x")
    store = SampleStore(store_path)
    _assert_records_match_files(store, "clip")
    assert verify_store(store).ok

    pkl = tmp_path / "a.pkl"
    keypoint = np.random.default_rng(0).normal(size=(2, 6, 25, 3)).astype(np.float16)
    save_pyskl_annotations(pkl, [PysklSample("S001C001P001R001A001", 0, 6, keypoint)], {})
    import_pyskl_pickle(pkl, tmp_path / "imported", trust_pickle=True)
    imported = SampleStore(tmp_path / "imported")
    _assert_records_match_files(imported, "S001C001P001R001A001")
    assert verify_store(imported).ok


def test_poses_added_to_an_old_sample_record_only_their_file(prepared: Path, tmp_path: Path) -> None:
    path = _copy(prepared, tmp_path)
    name = "S001C001P001R001A001"
    _drop_records(path, name)
    add_pose_to_sample(path, name, np.ones((1, 24, 17, 3), np.float32), layout="coco17", fps=30.0,
                       frame_size_hw=(360, 640), backend="x")
    meta = SampleStore(path).meta(name)
    assert set(meta["files"]) == {"pose2d.npy"}
    report = verify_store(SampleStore(path))
    assert report.ok and dict(report.unrecorded)[name] and "pose2d.npy" not in dict(report.unrecorded)[name]
