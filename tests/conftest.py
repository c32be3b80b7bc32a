"""Fixtures shared by the test modules."""

from __future__ import annotations

import functools
import importlib.util
from typing import Iterator, Optional

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One torch intra-op thread for a module's tests, restored afterwards.

    The tests' tensors are small, and the CI machine's two cores are shared with loader workers:
    a second spinning thread mostly waits (measured 5-30x slower on 2 cores).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@functools.lru_cache(maxsize=None)  # one look per session, not one per marked test
def blazepose_model_missing() -> Optional[str]:
    """Why the default pose backend (BlazePose) cannot run here without a download, or None when it can."""
    if importlib.util.find_spec("mediapipe") is None:
        return "mediapipe is not installed (the [pose] extra)"
    from actionfusion.modalities.pose.mediapipe_bundle import _wheel_models

    if _wheel_models() is not None:
        return None  # mediapipe 0.10.14 (Python <= 3.12): the bundle is built from the wheel's models
    return ("this mediapipe ships no BlazePose model (mediapipe 1.x, the Python 3.13 install) and the tests do not "
            "download it; tests/test_mediapipe_bundle_fallback.py tests fetching and placing it")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs_blazepose: runs the default pose backend; skipped (with the reason) "
                                       "where its model is not installed and would have to be downloaded")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("needs_blazepose") is not None:
        reason = blazepose_model_missing()
        if reason is not None:
            pytest.skip(reason)
