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


# ----------------------------------------------------------------------------- frame CRCs and header bounds


def _pack_parts(data: bytes) -> tuple[int, list[bytes], np.ndarray, dict]:
    """(version, encoded frames, crcs or empty, JSON header) of a pack's bytes."""
    import struct

    version = {b"AFPACK01": 1, b"AFPACK02": 2}[data[:8]]
    index_pos, header_len, _ = struct.unpack("<qq8s", data[-24:])
    header_pos = len(data) - 24 - header_len
    header = json.loads(data[header_pos:header_pos + header_len])
    count = header["count"]
    offsets = np.frombuffer(data[index_pos:index_pos + 8 * (count + 1)], "<i8")
    crcs = np.frombuffer(data[index_pos + 8 * (count + 1):header_pos], "<u4")
    return version, [data[a:b] for a, b in zip(offsets[:-1], offsets[1:])], crcs, header


def _build_pack(version: int, frames: list[bytes], header: dict) -> bytes:
    """A pack of ``version`` (1: no CRCs, the old format) from encoded frames, CRCs recomputed."""
    import struct
    import zlib

    body = b"".join(frames)
    offsets = np.cumsum([8] + [len(f) for f in frames]).astype("<i8")
    crcs = np.asarray([zlib.crc32(f) for f in frames], "<u4").tobytes() if version == 2 else b""
    header_bytes = json.dumps(header).encode()
    index_pos = 8 + len(body)
    return (f"AFPACK0{version}".encode() + body + offsets.tobytes() + crcs + header_bytes
            + struct.pack("<qq8s", index_pos, len(header_bytes), b"AFPKEND1"))


def test_a_flipped_bit_in_a_jpeg_frame_raises_store_error_naming_file_and_frame(tmp_path: Path) -> None:
    path = tmp_path / "rgb.pack"
    frames = _smooth_rgb_frames(4, size=64)
    write_frame_pack(path, frames, "jpeg", jpeg_quality=90)
    pack = FramePack(path)
    assert pack.version == 2 and pack.crcs is not None and len(pack.crcs) == 4
    start, end = int(pack.offsets[2]), int(pack.offsets[3])
    damaged = bytearray(path.read_bytes())
    damaged[(start + end) // 2] ^= 0x10  # one bit in the entropy-coded data of frame 2
    (tmp_path / "flipped.pack").write_bytes(bytes(damaged))
    flipped = FramePack(tmp_path / "flipped.pack")
    with pytest.raises(StoreError, match=r"flipped\.pack, frame 2 .*CRC"):
        flipped[2]
    with pytest.raises(StoreError, match="frame 2"):
        flipped.read([0, 2])
    np.testing.assert_array_equal(flipped.read([0, 1, 3]), pack.read([0, 1, 3]))  # the other frames are intact


def test_version_1_packs_without_crcs_still_read(tmp_path: Path) -> None:
    path = tmp_path / "new.pack"
    write_frame_pack(path, _smooth_rgb_frames(3, size=32), "jpeg")
    version, frames, crcs, header = _pack_parts(path.read_bytes())
    assert version == 2 and len(crcs) == 3
    (tmp_path / "old.pack").write_bytes(_build_pack(1, frames, header))
    old = FramePack(tmp_path / "old.pack")
    assert old.version == 1 and old.crcs is None and len(old) == 3
    np.testing.assert_array_equal(old.read(), FramePack(path).read())
    write_frame_pack(tmp_path / "depth.pack", [np.full((16, 16), 900, np.uint16)] * 2, "png16")
    _, frames, _, header = _pack_parts((tmp_path / "depth.pack").read_bytes())
    (tmp_path / "old_depth.pack").write_bytes(_build_pack(1, frames, header))
    assert (FramePack(tmp_path / "old_depth.pack").read() == 900).all()


def _png_header(height: int, width: int) -> bytes:
    """A PNG signature and IHDR chunk (16-bit greyscale) claiming ``height`` x ``width``, then IEND."""
    import struct
    import zlib

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 0, 0, 0, 0))
            + chunk(b"IEND", b""))


def test_a_frame_header_larger_than_the_pack_is_refused_before_decoding(tmp_path: Path, monkeypatch) -> None:
    import cv2

    from actionfusion.datasets.store import frame_pack

    write_frame_pack(tmp_path / "d.pack", [np.full((16, 16), 900, np.uint16)] * 2, "png16")
    _, frames, _, header = _pack_parts((tmp_path / "d.pack").read_bytes())
    # a frame whose header claims 16000 x 16000, with a valid CRC (damage a CRC cannot see)
    (tmp_path / "huge.pack").write_bytes(_build_pack(2, [frames[0], _png_header(16000, 16000)], header))
    decoded: list[int] = []
    real_imdecode = cv2.imdecode
    monkeypatch.setattr(frame_pack.cv2, "imdecode", lambda data, flags: decoded.append(len(data))
                        or real_imdecode(data, flags))
    pack = FramePack(tmp_path / "huge.pack")
    with pytest.raises(StoreError, match=r"huge\.pack, frame 1: image header claims 16000x16000"):
        pack[1]
    assert decoded == []  # refused on the header alone
    assert (pack[0] == 900).all() and len(decoded) == 1
    # a pack whose own header declares absurd frames is refused when opened
    (tmp_path / "absurd.pack").write_bytes(_build_pack(2, frames, {**header, "height": 100000}))
    with pytest.raises(StoreError, match="100000x16 frames"):
        FramePack(tmp_path / "absurd.pack")


def test_image_headers_give_the_size_of_png_and_jpeg_frames() -> None:
    import cv2

    from actionfusion.datasets.image_header import image_size_hw, jpeg_size_hw, png_size_hw

    frame = _smooth_rgb_frames(1, size=48)[0][:40]
    jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_OPTIMIZE, 1])[1].tobytes()
    png = cv2.imencode(".png", np.zeros((30, 70), np.uint16))[1].tobytes()
    assert jpeg_size_hw(jpeg) == image_size_hw(jpeg) == (40, 48)
    assert png_size_hw(png) == image_size_hw(png) == (30, 70)
    assert png_size_hw(_png_header(16000, 12000)) == (16000, 12000)
    assert image_size_hw(b"not an image") is None and jpeg_size_hw(b"\xff\xd8\xff\xd9") is None
