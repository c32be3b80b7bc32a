"""Fixtures shared by the test modules."""

from __future__ import annotations

from typing import Iterator

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
