"""Deterministic random generators keyed by meaning, not by call order.

Every random draw of the generator comes from a generator seeded by the dataset seed and
a key (a performer, an event, a sample name), so samples can be generated in any order,
in any process, and still be byte-identical.
"""

from __future__ import annotations

import hashlib

import numpy as np


def keyed_rng(seed: int, *key: object) -> np.random.Generator:
    """A PCG64 generator seeded from SHA-256 of ``seed`` and ``key`` (stable across runs and platforms)."""
    text = "/".join([str(int(seed))] + [str(k) for k in key]).encode("utf-8")
    words = np.frombuffer(hashlib.sha256(text).digest()[:16], dtype="<u4")
    return np.random.default_rng(words.astype(np.uint64).tolist())
