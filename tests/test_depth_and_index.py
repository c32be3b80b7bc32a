"""Depth PNG reading, frame listing, and the NTU root index."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from actionfusion.datasets.ntu.depth import (
    depth_frame_index,
    iter_depth_frames,
    list_depth_frames,
    missing_depth_frames,
    read_depth_png,
)
from actionfusion.datasets.ntu.index import scan_ntu_root
from actionfusion.errors import DepthFormatError

FIXTURES = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures"
NTU = FIXTURES / "ntu"
MASKED = NTU / "nturgb+d_depth_masked" / "S001C001P001R001A058"


def _fixture_dir() -> Path:
    if not MASKED.is_dir():
        pytest.skip(f"NTU fixtures not found at {NTU}: they live in ../shared beside the repo")
    return MASKED


def _write_png(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(".png", image)
    assert ok
    path.write_bytes(data.tobytes())
    return path


def test_fixture_masked_depth_is_millimetres():
    frames = list_depth_frames(_fixture_dir())
    assert [depth_frame_index(p) for p in frames] == list(range(1, len(frames) + 1))
    depth = read_depth_png(frames[len(frames) // 2])
    assert depth.dtype == np.uint16 and depth.shape == (424, 512)
    nonzero = depth[depth > 0]
    assert 0.005 < nonzero.size / depth.size < 0.5  # a masked person, background zero
    assert np.mean((nonzero >= 500) & (nonzero <= 8000)) > 0.95
    assert depth[0, 0] == 0 and depth[-1, -1] == 0


def test_iter_depth_frames_streams_in_order():
    frames = list_depth_frames(_fixture_dir())
    seen = []
    for index, depth in iter_depth_frames(_fixture_dir()):
        seen.append(index)
        assert depth.shape == (424, 512)
        if len(seen) == 3:
            break
    assert seen == [1, 2, 3] and len(frames) > 3


def test_corrupt_and_wrong_pngs_raise(tmp_path):
    corrupt = tmp_path / "MDepth-00000001.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(DepthFormatError, match="MDepth-00000001.png"):
        read_depth_png(corrupt)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(DepthFormatError):
        read_depth_png(empty)
    with pytest.raises(DepthFormatError):
        read_depth_png(tmp_path / "absent.png")
    eight_bit = _write_png(tmp_path / "u8.png", np.zeros((424, 512), np.uint8))
    with pytest.raises(DepthFormatError, match="16-bit"):
        read_depth_png(eight_bit)
    colour = _write_png(tmp_path / "rgb16.png", np.zeros((424, 512, 3), np.uint16))
    with pytest.raises(DepthFormatError, match="one channel"):
        read_depth_png(colour)
    small = _write_png(tmp_path / "small.png", np.full((10, 20), 1234, np.uint16))
    with pytest.raises(DepthFormatError, match="424x512"):
        read_depth_png(small)
    np.testing.assert_array_equal(read_depth_png(small, check_size=False), np.full((10, 20), 1234, np.uint16))


def test_round_trip_values(tmp_path):
    depth = np.random.default_rng(0).integers(0, 65535, (424, 512), dtype=np.uint16)
    path = _write_png(tmp_path / "Depth-00000001.png", depth)
    np.testing.assert_array_equal(read_depth_png(path), depth)


def test_listing_gaps_duplicates_and_prefixes(tmp_path):
    frame = np.zeros((424, 512), np.uint16)
    for i in (1, 2, 4, 10):
        _write_png(tmp_path / f"MDepth-{i:08d}.png", frame)
    _write_png(tmp_path / "Depth-00000003.png", frame)
    (tmp_path / "notes.txt").write_text("x")
    frames = list_depth_frames(tmp_path)
    assert [depth_frame_index(p) for p in frames] == [1, 2, 4, 10]
    assert missing_depth_frames(frames) == [3, 5, 6, 7, 8, 9]
    assert [depth_frame_index(p) for p in list_depth_frames(tmp_path, masked=False)] == [3]
    with pytest.raises(DepthFormatError, match="6 depth frame"):
        list_depth_frames(tmp_path, allow_gaps=False)
    assert [i for i, _ in iter_depth_frames(tmp_path)] == [1, 2, 4, 10]
    _write_png(tmp_path / "MDepth-4.png", frame)
    with pytest.raises(DepthFormatError, match="also stored"):
        list_depth_frames(tmp_path)
    with pytest.raises(DepthFormatError):
        list_depth_frames(tmp_path / "absent")


def test_scan_fixture_root():
    _fixture_dir()
    index = scan_ntu_root(NTU)
    summary = index.summary()
    assert summary["skeleton"] == 3 and summary["rgb"] == 1 and summary["depth_masked"] == 1
    assert summary["depth"] == 0 and summary["samples"] == 5
    assert list(index.samples) == sorted(index.samples)
    assert index.samples["S001C003P008R002A058"].skeleton.name == "S001C003P008R002A058.skeleton"
    assert index.samples["S001C001P001R001A001"].modalities() == ("rgb",)
    assert index.samples["S001C001P001R001A058"].depth_masked == MASKED
    assert index.with_modalities("skeleton") == [
        "S001C001P001R001A011", "S001C003P008R002A058", "S002C001P003R001A003"]


def test_scan_official_layout_with_junk(tmp_path):
    (tmp_path / "nturgb+d_skeletons").mkdir()
    (tmp_path / "nturgb+d_skeletons" / "S001C001P001R001A001.skeleton").write_text("0\n")
    (tmp_path / "nturgb+d_skeletons" / "S001C001P001R001A001.skeleton.bak").write_text("0\n")
    (tmp_path / "nturgb+d_skeletons" / "readme.txt").write_text("x")
    (tmp_path / "nturgb+d_rgb").mkdir()
    (tmp_path / "nturgb+d_rgb" / "S001C001P001R001A001_rgb.avi").write_bytes(b"")
    (tmp_path / "nturgb+d_rgb" / "S001C001P001R001A002_rgb.avi").write_bytes(b"")
    (tmp_path / "nturgb+d_depth" / "S001C001P001R001A002").mkdir(parents=True)
    (tmp_path / "nturgb+d_depth_masked" / "S001C001P001R001A001").mkdir(parents=True)
    (tmp_path / "nturgb+d_depth_masked" / "bad_name").mkdir()
    (tmp_path / "S001C001P001R001A001.skeleton").write_text("0\n")  # second copy: ignored
    loose = tmp_path / "S009C001P001R001A009"
    _write_png(loose / "MDepth-00000001.png", np.zeros((4, 4), np.uint16))
    index = scan_ntu_root(tmp_path)
    first = index.samples["S001C001P001R001A001"]
    assert first.modalities() == ("skeleton", "rgb", "depth_masked")
    assert first.skeleton.parent.name == "nturgb+d_skeletons"
    assert index.samples["S001C001P001R001A002"].modalities() == ("rgb", "depth")
    assert index.samples["S009C001P001R001A009"].depth_masked == loose
    ignored = {p.name for p in index.ignored}
    assert ignored == {"S001C001P001R001A001.skeleton.bak", "readme.txt", "bad_name", "S001C001P001R001A001.skeleton"}
    assert index.summary()["combinations"] == {"depth_masked": 1, "rgb+depth": 1, "skeleton+rgb+depth_masked": 1}
    with pytest.raises(NotADirectoryError):
        scan_ntu_root(tmp_path / "absent")


def _png_header(height, width):
    """A PNG signature and IHDR chunk (16-bit greyscale) claiming ``height`` x ``width``, then IEND."""
    import struct
    import zlib

    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 0, 0, 0, 0))
            + chunk(b"IEND", b""))


def test_a_huge_png_header_is_refused_before_decoding(tmp_path, monkeypatch):
    import actionfusion.datasets.ntu.depth as depth_module

    decoded = []
    real_imdecode = depth_module.cv2.imdecode
    monkeypatch.setattr(depth_module.cv2, "imdecode", lambda data, flags: decoded.append(len(data))
                        or real_imdecode(data, flags))
    huge = tmp_path / "MDepth-00000001.png"
    huge.write_bytes(_png_header(16000, 16000))
    with pytest.raises(DepthFormatError, match=r"MDepth-00000001\.png.*16000x16000"):
        read_depth_png(huge)
    with pytest.raises(DepthFormatError, match=r"MDepth-00000001\.png.*16000x16000.*refused before decoding"):
        read_depth_png(huge, check_size=False)
    (tmp_path / "jpeg.png").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 40)  # not a PNG at all
    with pytest.raises(DepthFormatError, match="not a PNG"):
        read_depth_png(tmp_path / "jpeg.png")
    assert decoded == []  # nothing reached the decoder
    fine = _write_png(tmp_path / "twice.png", np.full((848, 1024), 7, np.uint16))  # within the margin
    assert read_depth_png(fine, check_size=False).shape == (848, 1024) and len(decoded) == 1
