"""Video decoding backends on the real NTU fixture video, and failures on broken files."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from actionfusion.errors import VideoDecodeError
from actionfusion.modalities.rgb.person_crop import crop_and_resize
from actionfusion.modalities.rgb.video import VIDEO_BACKENDS, open_video

FIXTURES = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures"
VIDEO = FIXTURES / "ntu" / "S001C001P001R001A001_rgb.avi"
BOX = (660, 240, 1260, 840)  # a 600x600 box around the performer's region


@pytest.fixture(scope="module")
def video_path() -> Path:
    if not VIDEO.is_file():
        pytest.skip(f"NTU fixtures not found at {FIXTURES}: they live in ../shared beside the repo")
    return VIDEO


@pytest.fixture(scope="module")
def pyav_crops(video_path: Path) -> list[np.ndarray]:
    """All frames through the pyav backend, cropped to BOX and resized to 112x112 (streamed)."""
    with open_video(video_path) as reader:
        return list(reader.iter_frames(size=(112, 112), crop=BOX))


def test_registry_has_backends() -> None:
    assert {"pyav", "decord", "opencv"} <= set(VIDEO_BACKENDS)
    with pytest.raises(ValueError, match="unknown video backend"):
        open_video(VIDEO, backend="nope")


def test_pyav_metadata(video_path: Path) -> None:
    with open_video(video_path) as reader:
        assert reader.frame_size == (1080, 1920)
        assert reader.num_frames == 103
        assert reader.fps == pytest.approx(30.0, abs=0.01)


def test_iter_frames_streams_all_frames_with_crop_and_resize(pyav_crops: list[np.ndarray]) -> None:
    assert len(pyav_crops) == 103
    for frame in pyav_crops:
        assert frame.shape == (112, 112, 3) and frame.dtype == np.uint8
    # the video moves: frames are not all the same image
    assert np.abs(pyav_crops[0].astype(int) - pyav_crops[60].astype(int)).mean() > 1.0


def test_fast_yuv_crop_matches_rgb_then_cv2(video_path: Path) -> None:
    """The plane-wise YUV crop+resize agrees with converting the full frame first."""
    with open_video(video_path) as reader:
        full = reader.read_frames([40])[0]
        fast = reader.read_frames([40], size=(224, 224), crop=BOX)[0]
    assert full.shape == (1080, 1920, 3)
    reference = crop_and_resize(full, BOX, 224)
    diff = np.abs(fast.astype(int) - reference.astype(int))
    assert diff.mean() < 2.0, diff.mean()


def test_crop_without_resize_and_odd_size(video_path: Path) -> None:
    with open_video(video_path) as reader:
        crop_only = reader.read_frames([5], crop=(10, 20, 110, 70))
        odd = reader.read_frames([5], size=(33, 45))
        full = reader.read_frames([5])
    assert crop_only.shape == (1, 50, 100, 3)
    np.testing.assert_array_equal(crop_only[0], full[0, 20:70, 10:110])
    assert odd.shape == (1, 33, 45, 3)


def test_read_frames_sparse_equals_sequential(video_path: Path, pyav_crops: list[np.ndarray]) -> None:
    indices = [97, 0, 13, 13, 50, 102]
    with open_video(video_path) as reader:
        sparse = reader.read_frames(indices, size=(112, 112), crop=BOX)
    assert sparse.shape == (len(indices), 112, 112, 3)
    for got, index in zip(sparse, indices):
        np.testing.assert_array_equal(got, pyav_crops[index])


def test_read_frames_past_end_raises(video_path: Path) -> None:
    with open_video(video_path) as reader:
        with pytest.raises(VideoDecodeError, match="frame 103"):
            reader.read_frames([103], size=(32, 32))


@pytest.mark.skipif(importlib.util.find_spec("decord") is None, reason="decord not installed")
def test_decord_agrees_with_pyav(video_path: Path, pyav_crops: list[np.ndarray]) -> None:
    indices = [0, 31, 77, 102]
    with open_video(video_path, backend="decord") as reader:
        assert reader.num_frames == 103
        assert reader.frame_size == (1080, 1920)
        frames = reader.read_frames(indices, size=(112, 112), crop=BOX)
    for got, index in zip(frames, indices):
        assert np.abs(got.astype(int) - pyav_crops[index].astype(int)).mean() < 3.0


def test_opencv_agrees_with_pyav(video_path: Path, pyav_crops: list[np.ndarray]) -> None:
    with open_video(video_path, backend="opencv") as reader:
        assert reader.num_frames == 103 and reader.frame_size == (1080, 1920)
        frames = reader.read_frames([0, 10], size=(112, 112), crop=BOX)
    for got, index in zip(frames, [0, 10]):
        assert np.abs(got.astype(int) - pyav_crops[index].astype(int)).mean() < 3.0


def _broken_files(tmp_path: Path, video_path: Path) -> dict[str, Path]:
    data = video_path.read_bytes()
    files = {
        "random": tmp_path / "random.avi",
        "truncated": tmp_path / "truncated.avi",
        "header_only": tmp_path / "header_only.avi",
        "empty": tmp_path / "empty.avi",
        "missing": tmp_path / "missing.avi",
    }
    files["random"].write_bytes(np.random.default_rng(0).integers(0, 256, 200_000, dtype=np.uint8).tobytes())
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["header_only"].write_bytes(data[:5000])
    files["empty"].write_bytes(b"")
    return files


@pytest.mark.parametrize("kind", ["random", "truncated", "header_only", "empty", "missing"])
@pytest.mark.parametrize("backend", ["pyav", "opencv"])
def test_broken_file_raises_video_decode_error(tmp_path: Path, video_path: Path, kind: str, backend: str) -> None:
    path = _broken_files(tmp_path, video_path)[kind]
    with pytest.raises(VideoDecodeError) as info:
        with open_video(path, backend=backend) as reader:
            for _ in reader.iter_frames(size=(32, 32)):
                pass
    assert str(path) in str(info.value)
    if kind == "truncated":
        assert info.value.where is not None and info.value.where.startswith("frame ")


def test_declared_frame_size_is_bounded_before_decoding(video_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A container declaring frames beyond MAX_FRAME_SIDE is refused on open, naming the file (the
    1080p fixture stands in for a hostile header by lowering the bound below its 1920 px)."""
    import actionfusion.modalities.rgb.video as video_module
    from actionfusion.errors import VideoDecodeError

    monkeypatch.setattr(video_module, "MAX_FRAME_SIDE", 1000)
    with pytest.raises(VideoDecodeError, match="1920x1080 frames, outside 1..1000") as info:
        video_module.open_video(video_path)
    assert str(video_path) in str(info.value)
