"""A mediapipe without BlazePose in its wheel (0.10.15+, 1.x: the Python 3.13 releases): the released
PoseLandmarker bundle is downloaded once into the cache (atomically), or placed there by hand offline
(one-line error naming the URL and the path), checked by content, a damaged file removed; the
estimator then runs from it."""

from __future__ import annotations

import importlib.util
import urllib.error
import urllib.request

import numpy as np
import pytest

from actionfusion.errors import MissingDependencyError
from actionfusion.modalities.pose import mediapipe_bundle
from actionfusion.modalities.pose.mediapipe_bundle import (
    RELEASED_BUNDLE_NAME,
    RELEASED_BUNDLE_URL,
    blazepose_bundle_path,
    build_pose_bundle_bytes,
)

pytestmark = pytest.mark.skipif(importlib.util.find_spec("mediapipe") is None,
                                reason="mediapipe is not installed: pip install 'mediapipe==0.10.14'")


@pytest.fixture(scope="module")
def bundle_bytes() -> bytes:
    """A real PoseLandmarker bundle (built from the installed 0.10.14 wheel's models)."""
    models = mediapipe_bundle._wheel_models()
    if models is None:
        pytest.skip("the installed mediapipe ships no BlazePose model to build a reference bundle from")
    detector, landmarks = models
    return build_pose_bundle_bytes(detector.read_bytes(), landmarks.read_bytes())


@pytest.fixture
def newer_mediapipe(monkeypatch) -> None:
    monkeypatch.setattr(mediapipe_bundle, "_wheel_models", lambda: None)


class _Response:
    def __init__(self, data: bytes) -> None:
        self.data, self.offset = data, 0

    def read(self, size: int = -1) -> bytes:
        chunk = self.data[self.offset:] if size < 0 else self.data[self.offset:self.offset + size]
        self.offset += len(chunk)
        return chunk

    def __enter__(self) -> "_Response":
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def test_released_bundle_is_downloaded_once_and_runs(newer_mediapipe, bundle_bytes, monkeypatch, tmp_path) -> None:
    asked = []

    def urlopen(url, timeout=None):
        asked.append(url)
        return _Response(bundle_bytes)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    path = blazepose_bundle_path(tmp_path)
    assert path == tmp_path / "mediapipe" / RELEASED_BUNDLE_NAME and path.read_bytes() == bundle_bytes
    assert asked == [RELEASED_BUNDLE_URL]
    assert [p.name for p in path.parent.iterdir()] == [RELEASED_BUNDLE_NAME]  # no temporary file left
    assert blazepose_bundle_path(tmp_path) == path and asked == [RELEASED_BUNDLE_URL]  # cached: no second fetch
    from actionfusion.modalities.pose.mediapipe_backend import BlazePoseEstimator

    estimator = BlazePoseEstimator(cache_dir=str(tmp_path))
    try:
        assert estimator.estimate([np.zeros((96, 96, 3), np.uint8)]) == [[]]  # runs; nobody in a black frame
    finally:
        estimator.close()


def test_offline_error_names_the_url_and_the_path(newer_mediapipe, monkeypatch, tmp_path) -> None:
    def offline(url, timeout=None):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(MissingDependencyError) as error:
        blazepose_bundle_path(tmp_path)
    message = str(error.value)
    assert RELEASED_BUNDLE_URL in message and str(tmp_path / "mediapipe" / RELEASED_BUNDLE_NAME) in message
    assert "\n" not in message and not any((tmp_path / "mediapipe").iterdir())


def test_placed_by_hand_is_used_and_a_damaged_file_removed(newer_mediapipe, bundle_bytes, monkeypatch,
                                                           tmp_path) -> None:
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("no download expected"))
    target = tmp_path / "mediapipe" / RELEASED_BUNDLE_NAME
    target.parent.mkdir(parents=True)
    target.write_bytes(bundle_bytes)
    assert blazepose_bundle_path(tmp_path) == target
    target.write_bytes(b"<html>quota exceeded</html>")  # what a failed download can leave
    with pytest.raises(MissingDependencyError, match="not a .task bundle"):
        blazepose_bundle_path(tmp_path)
    assert not target.exists()
