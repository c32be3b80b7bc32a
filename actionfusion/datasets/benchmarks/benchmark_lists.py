"""What a benchmark provides: the sample names of each split, optionally their labels, and the class
names; and the seeded, stratified splits a benchmark without its own lists gets.

A benchmark is a named provider of (sample, label, split) and class names
(:mod:`.resolve` finds it by name). NTU's benchmarks derive the splits from the sample names and
take the labels from the store; a store's benchmark file (:mod:`.benchmark_file`) or a user's list
names its samples, and may carry labels and class names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import numpy as np

SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class BenchmarkLists:
    """The samples of one benchmark in one store.

    Attributes:
        name: what ``data.benchmark`` named.
        splits: ``{"train", "val", "test"}`` sorted sample names (``val`` may be empty).
        classes: class names by 0-based label, or None (NTU RGB+D's class names apply).
        labels: ``{sample: 0-based label}`` given by the benchmark, or None (the store's labels).
        source: where the lists came from, for messages and ``metrics.json``.
        missing: ``{split: names}`` the benchmark lists but the store lacks (left out, reported).
        by_ntu_names: True for NTU RGB+D's benchmarks, whose splits follow from the sample names:
            ``val`` holds out whole groups (performers or setups), and test samples the disk lacks
            are found through the manifest; False when the benchmark lists its samples.
    """

    name: str
    splits: dict[str, list[str]]
    classes: Optional[tuple[str, ...]] = None
    labels: Optional[dict[str, int]] = None
    source: str = ""
    missing: dict[str, list[str]] = field(default_factory=dict)
    by_ntu_names: bool = False

    def labels_of(self, names: Sequence[str]) -> Optional[list[int]]:
        """The benchmark's labels of ``names`` (None when labels come from the store)."""
        return None if self.labels is None else [self.labels[name] for name in names]


def stratified_split(names: Sequence[str], labels: Sequence[Optional[int]], fractions: Mapping[str, float],
                     seed: int) -> dict[str, list[str]]:
    """Split ``names`` by ``fractions`` (``{"val": 0.1, "test": 0.2}``; the rest is ``train``), class by
    class, with a seeded generator: every class keeps its proportions up to rounding.

    Within a class of n samples, split s gets ``round(fraction_s * n)`` samples, drawn in a permutation
    seeded by ``(seed, class)`` so that adding a class leaves the others' split unchanged; a class of
    at least two samples keeps one for training. Unlabelled samples (label None) form one group of
    their own. Each returned list is sorted.
    """
    order = [s for s in fractions if s != "train"]
    result: dict[str, list[str]] = {"train": [], **{s: [] for s in order}}
    groups: dict[Optional[int], list[str]] = {}
    for name, label in zip(names, labels):
        groups.setdefault(label, []).append(name)
    for label, members in groups.items():
        members = sorted(members)
        key = -1 if label is None else int(label)
        permutation = np.random.default_rng([int(seed), key + 1]).permutation(len(members))
        start = 0
        for split in order:
            count = int(round(float(fractions[split]) * len(members)))
            count = min(count, len(members) - start - (1 if len(members) >= 2 else 0))
            count = max(count, 0)
            result[split].extend(members[i] for i in permutation[start:start + count])
            start += count
        result["train"].extend(members[i] for i in permutation[start:])
    return {split: sorted(values) for split, values in result.items()}
