"""Frame packs, the sample-store reader, the manifest and PrepareConfig."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from actionfusion.errors import StoreError
from actionfusion.datasets.store.frame_pack import FramePack, FramePackWriter, write_frame_pack
from actionfusion.datasets.store.manifest import (
    build_manifest,
    check_resumable_config,
    config_differences,
    read_manifest,
    write_manifest,
)
from actionfusion.datasets.store.prepare_config import PrepareConfig
from actionfusion.datasets.store.sample_store import SampleStore

FIXTURES = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures"


def _smooth_rgb_frames(n: int, size: int = 64, seed: int = 0) -> list[np.ndarray]:
    """uint8 [size, size, 3] frames with smooth gradients and a moving square (JPEG-friendly)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    frames = []
    for t in range(n):
        base = np.stack([xx * 3 + t * 5, yy * 2 + 40, (xx + yy) * 1.5 + rng.uniform(0, 60)], axis=-1)
        frame = np.clip(base, 0, 255).astype(np.uint8)
        x0 = (t * 7) % (size - 16)
        frame[20:36, x0:x0 + 16] = (250, 30, 30)
        frames.append(frame)
    return frames


def test_jpeg_pack_random_access_matches_written_frames(tmp_path: Path) -> None:
    frames = _smooth_rgb_frames(12)
    path = tmp_path / "rgb.pack"
    assert write_frame_pack(path, iter(frames), "jpeg", jpeg_quality=95) == 12
    with FramePack(path) as pack:
        assert len(pack) == 12 and pack.shape == (64, 64, 3) and pack.dtype == np.uint8
        order = [7, 0, 11, 3, 3, -1]
        got = pack.read(order)
        assert got.shape == (6, 64, 64, 3) and got.dtype == np.uint8
        for k, i in enumerate(order):
            err = np.abs(got[k].astype(np.int16) - frames[i].astype(np.int16))
            assert err.mean() < 2.5, (i, err.mean())
            # the right frame, not a neighbour: it is closer to frame i than to any other
            dists = [np.abs(got[k].astype(np.int16) - f.astype(np.int16)).mean() for f in frames]
            assert int(np.argmin(dists)) == i % 12
        # decoding one frame equals decoding it inside a batch
        np.testing.assert_array_equal(pack[3], got[3])


def test_png16_pack_is_exact_for_any_uint16(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 65536, size=(40, 56), dtype=np.uint16) for _ in range(9)]
    frames[4][:] = 0  # an all-background frame
    path = tmp_path / "depth.pack"
    with FramePackWriter(path, "png16", png_compression=9) as writer:
        for frame in frames:
            writer.append(frame)
    pack = FramePack(path)
    assert pack.shape == (40, 56) and pack.dtype == np.uint16
    np.testing.assert_array_equal(pack.read(), np.stack(frames))
    np.testing.assert_array_equal(pack.read([8, 4, 0]), np.stack([frames[8], frames[4], frames[0]]))
    with pytest.raises(IndexError):
        pack[9]


def test_empty_pack_and_pack_offsets_bound_each_frame(tmp_path: Path) -> None:
    write_frame_pack(tmp_path / "empty.pack", [], "png16")
    empty = FramePack(tmp_path / "empty.pack")
    assert len(empty) == 0 and empty.read().shape[0] == 0
    frames = _smooth_rgb_frames(3, size=32)
    write_frame_pack(tmp_path / "a.pack", frames, "jpeg")
    pack = FramePack(tmp_path / "a.pack")
    sizes = np.diff(pack.offsets)
    assert (sizes > 0).all() and int(sizes.sum()) == pack.offsets[-1] - pack.offsets[0]
    assert bytes(pack.frame_bytes(1)[:2]) == b"\xff\xd8"  # each frame is a complete JPEG


def test_writer_failure_or_abort_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "x.pack"
    with pytest.raises(ValueError, match="shape"):
        with FramePackWriter(path, "png16") as writer:
            writer.append(np.zeros((8, 8), np.uint16))
            writer.append(np.zeros((8, 9), np.uint16))
    with FramePackWriter(path, "jpeg") as writer:
        writer.append(np.zeros((8, 8, 3), np.uint8))
        writer.abort()
    assert not path.exists()
    assert os.listdir(tmp_path) == []  # no temporary file either
    with pytest.raises(ValueError, match="uint16"):
        with FramePackWriter(path, "png16") as writer:
            writer.append(np.zeros((8, 8), np.uint8))


def test_truncated_or_foreign_pack_raises_store_error(tmp_path: Path) -> None:
    path = tmp_path / "d.pack"
    write_frame_pack(path, [np.full((16, 16), 1000, np.uint16)] * 3, "png16")
    data = path.read_bytes()
    (tmp_path / "cut.pack").write_bytes(data[: len(data) - 5])
    with pytest.raises(StoreError, match="cut.pack"):
        FramePack(tmp_path / "cut.pack")
    (tmp_path / "foreign.pack").write_bytes(b"\x89PNG" + data[4:])
    with pytest.raises(StoreError, match="magic"):
        FramePack(tmp_path / "foreign.pack")
    # a frame whose bytes were overwritten fails to decode with a StoreError naming the frame
    broken = bytearray(data)
    pack = FramePack(path)
    start, end = int(pack.offsets[1]), int(pack.offsets[2])
    broken[start:end] = b"\x00" * (end - start)
    (tmp_path / "broken.pack").write_bytes(bytes(broken))
    with pytest.raises(StoreError, match="frame 1"):
        FramePack(tmp_path / "broken.pack")[1]


def test_prepare_config_round_trip_and_validation() -> None:
    config = PrepareConfig(modalities=("skeleton", "points"), num_points=128, points_dtype="float32")
    data = json.loads(json.dumps(config.to_dict()))
    assert PrepareConfig.from_dict(data) == config
    with pytest.raises(StoreError, match="bogus"):
        PrepareConfig.from_dict({**data, "bogus": 1})
    with pytest.raises(StoreError, match="modalities"):
        PrepareConfig.from_dict({**data, "modalities": ["skeleton", "sound"]})
    with pytest.raises(ValueError):
        PrepareConfig(rgb_jpeg_quality=0)
    with pytest.raises(ValueError):
        PrepareConfig(intrinsics="unknown_camera")


def test_manifest_config_check_names_differing_keys(tmp_path: Path) -> None:
    a = PrepareConfig().to_dict()
    b = PrepareConfig(rgb_size=128, num_points=64).to_dict()
    assert config_differences(a, b) == ["num_points", "rgb_size"]
    assert config_differences(a, json.loads(json.dumps(a))) == []  # tuples vs lists do not count
    write_manifest(tmp_path, build_manifest(config=a, source_root="/r", created="t", samples={"x": {"status": "ok"}}))
    manifest = read_manifest(tmp_path)
    assert manifest["counts"] == {"ok": 1, "partial": 0, "failed": 0}
    check_resumable_config(tmp_path, manifest["config"], a)
    with pytest.raises(StoreError, match="num_points.*rgb_size"):
        check_resumable_config(tmp_path, manifest["config"], b)


def test_sample_store_rejects_non_stores(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not a sample store"):
        SampleStore(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format": "something-else"}')
    with pytest.raises(StoreError, match="format"):
        SampleStore(tmp_path)


def _skeleton_store(tmp_path: Path) -> SampleStore:
    from actionfusion.datasets.store.prepare import prepare_store

    ntu = FIXTURES / "ntu"
    if not ntu.is_dir():
        pytest.skip(f"NTU fixtures not found at {ntu}: they live in ../shared beside the repo")
    prepare_store(ntu, tmp_path / "store", PrepareConfig(modalities=("skeleton",)), workers=0, progress=False)
    return SampleStore(tmp_path / "store")


def test_sample_store_reads_skeletons_and_summarises(tmp_path: Path) -> None:
    store = _skeleton_store(tmp_path)
    # the two-person fixture keeps both bodies as two actors
    assert store.names == ["S001C001P001R001A011", "S001C003P008R002A058", "S002C001P003R001A003"]
    two = store.load_skeleton("S001C003P008R002A058")
    assert two.dtype == np.float32 and two.ndim == 4 and two.shape[0] == 2 and two.shape[2:] == (25, 3)
    assert np.abs(two[0]).sum() > 0 and np.abs(two[1]).sum() > 0
    assert store.label("S001C003P008R002A058") == 57
    meta = store.meta("S001C003P008R002A058")
    kept = meta["modalities"]["skeleton"]["source_frames"]
    assert len(kept) == two.shape[1] and kept == sorted(kept)
    assert store.modalities("S002C001P003R001A003") == {"skeleton", "pose2d_sensor"}
    with pytest.raises(StoreError, match="no rgb"):
        store.load_rgb("S002C001P003R001A003")
    with pytest.raises(StoreError, match="no sample"):
        store.meta("S009C001P001R001A001")
    summary = store.summary()
    assert summary["num_samples"] == 3
    assert summary["shapes"]["skeleton"][2:] == [25, 3]
    # S001 P001/P008 are xsub training subjects; P003 is a test subject
    assert summary["per_class_split"]["ntu60_xsub"]["57"] == {"train": 1}
    assert summary["per_class_split"]["ntu60_xsub"]["2"] == {"test": 1}
    assert summary["per_class_split"]["ntu60_xview"]["57"] == {"train": 1}  # camera 3
