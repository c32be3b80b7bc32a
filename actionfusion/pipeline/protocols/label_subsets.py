"""Labelled subsets of a training split for the semi-supervised protocol (MAMP: 1% and 10%).

The rule: stratified per class. A class with ``n_c`` training samples keeps
``max(1, floor(n_c * percent / 100 + 0.5))`` of them (the share rounded half up, at least one,
at most ``n_c``), drawn uniformly without replacement by ``numpy.random.default_rng(seed)``,
classes visited in ascending order. Every class is therefore labelled at least once, and the
subset size differs from ``percent`` % of the split by at most half a sample per class plus the
classes raised to one sample (NTU60 X-Sub at 1%: about 670 samples a class give 7 each,
about 420 of 40,320, i.e. 1.04%).

Each seed draws its own subset; the same seed always draws the same one. (MAMP's
``feeder_ntu_semi.py`` shuffles with the global NumPy state, unstratified: every run there
gets the same subset, so its spread over seeds measures no subset variation.)
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def per_class_count(class_size: int, percent: float) -> int:
    """How many of a class's ``class_size`` samples are labelled: round(share) half up, in [1, class_size]."""
    return min(class_size, max(1, int(np.floor(class_size * percent / 100.0 + 0.5))))


def labelled_subset(labels: Sequence[int], percent: float, seed: int) -> np.ndarray:
    """Indices (sorted int64 [S]) of a stratified ``percent`` % subset of ``labels`` (int [N]).

    Every class present in ``labels`` keeps at least one sample; see the module docstring for
    the exact rule. ``percent`` lies in (0, 100]; 100 returns every index.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0:
        raise ValueError(f"labels must be a non-empty 1-D sequence of class ids, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integer class ids, got dtype {labels.dtype}")
    if not 0 < percent <= 100:
        raise ValueError(f"percent must lie in (0, 100] (1 means 1%), got {percent}")
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        chosen.append(rng.choice(members, size=per_class_count(len(members), percent), replace=False))
    return np.sort(np.concatenate(chosen)).astype(np.int64)
