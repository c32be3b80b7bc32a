"""Long-tailed NTU benchmarks (NTU60-LT, NTU120-LT): fewer training samples per class, test sets unchanged.

Source: BRL, "Balanced Representation Learning for Long-tailed Skeleton-based Action Recognition"
(Liu et al.; firework8/BRL@8ec5c59, ``data/imblance_gentxt.py``). Class ``c`` (0-based rank in the
natural order of the classes present) keeps

    n_c = int(n_max * (1 / rho) ** (c / (C - 1)))

training samples, ``C`` the number of classes, ``rho`` the imbalance factor (10, 50 or 100 in the
paper), ``n_max`` 600 for NTU60 XSub / XView and NTU120 XSub, 400 for NTU120 XSet
(:data:`LONGTAIL_N_MAX`). The power is computed in float64 in the official script's order (``1 / rho``
is the same double as the script's literal ``0.01``), so the counts equal the released lists: NTU60
7,892 / 9,150 / 14,142 at rho 100 / 50 / 10; NTU120 XSub 15,600 / 18,137 / 28,182; NTU120 XSet
10,378 / 12,069 / 18,771.

Which samples a class keeps: the class's training names, sorted, permuted by
``numpy.random.default_rng([seed, label])`` (seed 0 by default); the first ``n_c`` of the
permutation are kept. Each class's draw depends on its own samples and label only, and for one seed
a smaller ``n_c`` keeps a prefix of the same permutation, so the rho 100 split of a class lies
inside its rho 10 split (same ``n_max``). The official script shuffles with ``np.random.seed(0)``
across classes in turn, so the chosen names differ from the released lists; the counts do not.

A long-tailed benchmark is named ``<base>_lt<rho>`` (``ntu60_xsub_lt100``); its training list lives
in the store's split file (:mod:`actionfusion.datasets.store.split_files`).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Literal, Optional, Sequence, Union

import numpy as np

from ...errors import LongTailSplitError
from .splits import BENCHMARKS

LONGTAIL_N_MAX: dict[str, int] = {"ntu60_xsub": 600, "ntu60_xview": 600, "ntu120_xsub": 600, "ntu120_xset": 400}
"""Training samples of the most frequent class per base benchmark (BRL, ``data/imblance_gentxt.py``)."""

PAPER_RHOS: tuple[int, ...] = (10, 50, 100)
"""The imbalance factors of BRL's NTU60-LT / NTU120-LT lists."""

MAX_RHO = 1_000_000
MAX_N_MAX = 1_000_000

NMax = Union[int, Literal["auto"]]

_LONGTAIL_NAME = re.compile(r"^(?P<base>[a-z0-9]+_[a-z]+)_lt(?P<rho>[1-9][0-9]{0,6})$")


def longtail_benchmark_name(base: str, rho: int) -> str:
    """``"ntu60_xsub", 10`` -> ``"ntu60_xsub_lt10"``."""
    _check_rho(rho)
    if base not in BENCHMARKS:
        raise LongTailSplitError(f"unknown base benchmark {base!r}: choose one of {', '.join(BENCHMARKS)}")
    return f"{base}_lt{rho}"


def parse_longtail_benchmark(name: str) -> Optional[tuple[str, int]]:
    """``"ntu60_xsub_lt10"`` -> ``("ntu60_xsub", 10)``; None for any other name (a base benchmark,
    an unknown base, rho below 2)."""
    match = _LONGTAIL_NAME.match(name) if isinstance(name, str) else None
    if match is None or match["base"] not in BENCHMARKS or not 2 <= int(match["rho"]) <= MAX_RHO:
        return None
    return match["base"], int(match["rho"])


def base_benchmark(name: str) -> str:
    """The base benchmark of ``name`` (itself for a base benchmark); ValueError for an unknown name."""
    if name in BENCHMARKS:
        return name
    parsed = parse_longtail_benchmark(name)
    if parsed is None:
        raise ValueError(f"unknown benchmark {name!r}; choose one of {', '.join(BENCHMARKS)} "
                         "or <base>_lt<rho> (e.g. ntu60_xsub_lt10)")
    return parsed[0]


def _check_rho(rho: int) -> None:
    if isinstance(rho, bool) or not isinstance(rho, (int, np.integer)) or not 2 <= rho <= MAX_RHO:
        raise LongTailSplitError(f"imbalance factor rho {rho!r} must be an integer in 2..{MAX_RHO} (BRL uses 10, 50, 100)")


def longtail_counts(num_classes: int, rho: int, n_max: int) -> list[int]:
    """Training samples kept per class rank ``c = 0 .. C-1``: ``int(n_max * (1/rho) ** (c / (C-1)))``.

    Raises:
        LongTailSplitError: fewer than 2 classes, rho outside 2..1e6 or n_max outside 1..1e6.
    """
    _check_rho(rho)
    if num_classes < 2:
        raise LongTailSplitError(f"a long-tailed split needs at least 2 classes, got {num_classes}")
    if isinstance(n_max, bool) or not 1 <= int(n_max) <= MAX_N_MAX:
        raise LongTailSplitError(f"n_max {n_max!r} must be an integer in 1..{MAX_N_MAX}")
    factor = 1.0 / rho
    return [int(n_max * (factor ** (c / (num_classes - 1.0)))) for c in range(num_classes)]


def largest_n_max(available: Sequence[int], rho: int) -> int:
    """The largest ``n_max`` whose counts each class covers: ``longtail_counts(C, rho, n)[c] <=
    available[c]`` for every rank ``c``. At most ``available[0]`` (class 0 keeps ``n_max``)."""
    if not available or min(available) < 1:
        raise LongTailSplitError(f"every class needs at least one training sample, got counts {list(available)}")

    def fits(n_max: int) -> bool:
        return all(need <= have for need, have in zip(longtail_counts(len(available), rho, n_max), available))

    low, high = 1, min(int(available[0]), MAX_N_MAX)  # fits(1): class 0 needs 1, the others 0
    while low < high:  # each count grows with n_max, so `fits` holds up to a threshold
        middle = (low + high + 1) // 2
        low, high = (middle, high) if fits(middle) else (low, middle - 1)
    return low


@dataclass(frozen=True)
class LongTailSelection:
    """The chosen training samples of a long-tailed split.

    Attributes:
        names: the kept names, sorted.
        classes: the labels present, in natural (ascending) order: the rank ``c`` of the formula.
        available: training samples each class had, keyed by label.
        counts: training samples each class keeps, keyed by label.
        rho, n_max, seed: the split's parameters (``n_max`` resolved when ``"auto"`` was asked).
    """

    names: list[str]
    classes: list[int]
    available: dict[int, int]
    counts: dict[int, int]
    rho: int
    n_max: int
    seed: int


def select_longtail_names(names: Sequence[str], labels: Sequence[int], rho: int, n_max: NMax = "auto",
                          seed: int = 0, *, auto_limit: Optional[int] = None,
                          where: str = "the training samples") -> LongTailSelection:
    """Keep ``longtail_counts(C, rho, n_max)[c]`` random samples of the class of rank ``c``.

    Args:
        names, labels: the base benchmark's training samples and their 0-based labels.
        rho: imbalance factor (n_0 / n_{C-1}), an integer of at least 2.
        n_max: samples of the most frequent class, or ``"auto"``: the largest that every class can
            supply (:func:`largest_n_max`), capped at ``auto_limit`` (the benchmark's value, so that a
            full NTU store gets the paper's split).
        seed: seeds each class's permutation (``default_rng([seed, label])``, see the module).
        where: names the source in error messages (the store).
    Raises:
        LongTailSplitError: a class holds fewer samples than it must keep (names the class and the
            largest n_max that fits), fewer than 2 classes, or rho / n_max out of range.
        ValueError: names and labels differ in length, a name repeats or a label is negative.
    """
    if len(names) != len(labels):
        raise ValueError(f"{len(names)} names but {len(labels)} labels")
    if len(set(names)) != len(names):
        raise ValueError("a training name repeats")
    by_class: dict[int, list[str]] = defaultdict(list)
    for name, label in zip(names, labels):
        if int(label) < 0:
            raise ValueError(f"{name}: negative label {label}")
        by_class[int(label)].append(name)
    classes = sorted(by_class)
    available = {label: len(by_class[label]) for label in classes}
    _check_rho(rho)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise LongTailSplitError(f"seed {seed!r} must be a non-negative integer")
    if len(classes) < 2:
        raise LongTailSplitError(f"{where}: a long-tailed split needs at least 2 classes, found {len(classes)}")
    fitting = largest_n_max([available[label] for label in classes], rho)
    if n_max == "auto":
        resolved = min(fitting, auto_limit) if auto_limit is not None else fitting
    elif isinstance(n_max, bool) or not isinstance(n_max, (int, np.integer)):
        raise LongTailSplitError(f"n_max {n_max!r} must be an integer or 'auto'")
    else:
        resolved = int(n_max)
    wanted = longtail_counts(len(classes), rho, resolved)
    for rank, (label, need) in enumerate(zip(classes, wanted)):
        if need > available[label]:
            raise LongTailSplitError(
                f"{where}: class {label} (action A{label + 1:03d}, rank {rank}) has {available[label]} training "
                f"samples but n_max {resolved}, rho {rho} asks for {need}: use --n-max {fitting} or less "
                "(--n-max auto picks it) or a store with more samples")
    chosen: list[str] = []
    for label, need in zip(classes, wanted):
        pool = sorted(by_class[label])
        order = np.random.default_rng([seed, label]).permutation(len(pool))
        chosen.extend(pool[i] for i in order[:need])
    return LongTailSelection(names=sorted(chosen), classes=classes, available=available,
                             counts=dict(zip(classes, wanted)), rho=int(rho), n_max=resolved, seed=int(seed))
