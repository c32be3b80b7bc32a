"""NTU RGB+D benchmark splits (cross-subject, cross-view, cross-setup) and a validation carve-out.

Sources (each list below repeats them):

- NTU RGB+D 60 (Shahroudy et al., CVPR 2016; official README shahroudy/NTURGB-D@ac2ebc8):
  cross-subject trains on 20 performers, cross-view trains on cameras 2 and 3.
- NTU RGB+D 120 (Liu et al., TPAMI 2019; same README): cross-subject trains on 53
  performers, cross-setup trains on the even setups.

Benchmarks are named ``"ntu60_xsub"``, ``"ntu60_xview"``, ``"ntu120_xsub"``, ``"ntu120_xset"``.
NTU RGB+D 60 holds setups 1-17 and actions 1-60; NTU RGB+D 120 setups 1-32 and actions 1-120.

Model selection must never look at the test split. :func:`split_samples` can carve a
validation split out of TRAIN, holding out whole groups so that no group leaks between
train and validation:

- xsub and xview: the group is the performer. (For xview, cameras 2 and 3 film the same
  performance at the same time, so a per-sample split would put one performance on both
  sides.)
- xset: the group is the setup, which mimics the test condition (unseen setups).

The held-out groups are drawn from the benchmark's full list of training groups with a
seeded generator, so they do not depend on which samples a user has on disk.
"""

from __future__ import annotations

from typing import Iterable, Literal, Union

import numpy as np

from .missing_skeletons import MISSING_SKELETONS_NTU60, MISSING_SKELETONS_NTU120
from .names import SampleName, format_sample_name, parse_sample_name

Split = Literal["train", "test"]

BENCHMARKS: tuple[str, ...] = ("ntu60_xsub", "ntu60_xview", "ntu120_xsub", "ntu120_xset")

# NTU RGB+D 60 cross-subject training performers (official README / CVPR 2016 paper).
XSUB_TRAIN_SUBJECTS_NTU60: frozenset[int] = frozenset((
    1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38,
))

# NTU RGB+D 120 cross-subject training performers: the 20 above plus 33 more
# (official README / TPAMI 2019 paper).
XSUB_TRAIN_SUBJECTS_NTU120: frozenset[int] = XSUB_TRAIN_SUBJECTS_NTU60 | frozenset((
    45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85,
    86, 89, 91, 92, 93, 94, 95, 97, 98, 100, 103,
))

# NTU RGB+D 60 cross-view: cameras 2 and 3 train, camera 1 tests (official README).
XVIEW_TRAIN_CAMERAS: frozenset[int] = frozenset((2, 3))

# Ranges of each dataset (official README): setups and actions, 1-based, inclusive.
_DATASET_RANGES = {"ntu60": (17, 60, 40), "ntu120": (32, 120, 106)}


def _check_benchmark(benchmark: str) -> str:
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; choose one of {', '.join(BENCHMARKS)}")
    return benchmark.split("_", 1)[0]


def _as_sample(name: Union[str, SampleName]) -> SampleName:
    return name if isinstance(name, SampleName) else parse_sample_name(name)


def is_in_benchmark(name: Union[str, SampleName], benchmark: str) -> bool:
    """True if the sample belongs to the benchmark's dataset.

    NTU RGB+D 60: setups 1-17 and actions 1-60. NTU RGB+D 120: setups 1-32, actions 1-120.

    Raises:
        SampleNameError: ``name`` is not an NTU sample name.
        ValueError: unknown benchmark.
    """
    dataset = _check_benchmark(benchmark)
    sample = _as_sample(name)
    max_setup, max_action, _ = _DATASET_RANGES[dataset]
    return sample.setup <= max_setup and sample.action <= max_action and sample.camera <= 3


def split_of(name: Union[str, SampleName], benchmark: str) -> Split:
    """``"train"`` or ``"test"``: the side of the benchmark split the sample lies on.

    Raises:
        SampleNameError: ``name`` is not an NTU sample name.
        ValueError: unknown benchmark, or the sample is not part of the benchmark's dataset
            (e.g. setup 18 under an NTU RGB+D 60 benchmark).
    """
    sample = _as_sample(name)
    if not is_in_benchmark(sample, benchmark):
        raise ValueError(f"{format_sample_name(sample)} is not part of benchmark {benchmark}")
    if benchmark == "ntu60_xsub":
        is_train = sample.performer in XSUB_TRAIN_SUBJECTS_NTU60
    elif benchmark == "ntu120_xsub":
        is_train = sample.performer in XSUB_TRAIN_SUBJECTS_NTU120
    elif benchmark == "ntu60_xview":
        is_train = sample.camera in XVIEW_TRAIN_CAMERAS
    else:  # ntu120_xset: even setups train, odd setups test
        is_train = sample.setup % 2 == 0
    return "train" if is_train else "test"


def validation_group_of(name: Union[str, SampleName], benchmark: str) -> int:
    """The group a training sample is held out with: its performer (xsub, xview) or setup (xset)."""
    _check_benchmark(benchmark)
    sample = _as_sample(name)
    return sample.setup if benchmark == "ntu120_xset" else sample.performer


def _train_groups(benchmark: str) -> list[int]:
    """Every group that can appear in the benchmark's TRAIN split, sorted."""
    if benchmark == "ntu60_xsub":
        return sorted(XSUB_TRAIN_SUBJECTS_NTU60)
    if benchmark == "ntu120_xsub":
        return sorted(XSUB_TRAIN_SUBJECTS_NTU120)
    if benchmark == "ntu60_xview":
        return list(range(1, _DATASET_RANGES["ntu60"][2] + 1))
    return list(range(2, _DATASET_RANGES["ntu120"][0] + 1, 2))


def validation_groups(benchmark: str, fraction: float = 0.1, seed: int = 0) -> frozenset[int]:
    """The groups (performers, or setups for xset) held out of TRAIN for validation.

    ``round(fraction * number_of_training_groups)`` groups (at least one when
    ``fraction > 0``), chosen by a ``numpy`` generator seeded with ``seed`` from the sorted
    list of the benchmark's training groups. The same arguments always give the same groups.
    """
    _check_benchmark(benchmark)
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation fraction must lie in [0, 1), not {fraction}")
    if fraction == 0.0:
        return frozenset()
    groups = _train_groups(benchmark)
    count = max(1, int(round(fraction * len(groups))))
    chosen = np.random.default_rng(seed).permutation(len(groups))[:count]
    return frozenset(groups[i] for i in chosen)


def missing_skeletons_for(benchmark: str) -> frozenset[str]:
    """The official missing-skeleton list of the benchmark's dataset (302 or 535 names)."""
    dataset = _check_benchmark(benchmark)
    return MISSING_SKELETONS_NTU60 if dataset == "ntu60" else MISSING_SKELETONS_NTU120


def split_samples(
    names: Iterable[Union[str, SampleName]],
    benchmark: str,
    exclude_missing: bool = True,
    *,
    validation_fraction: float = 0.0,
    seed: int = 0,
) -> dict[str, list[str]]:
    """Partition sample names into ``{"train": [...], "val": [...], "test": [...]}``.

    Names outside the benchmark's dataset are left out; with ``exclude_missing`` the
    official missing-skeleton samples are left out too (the lists that CTR-GCN/MAMP and pyskl
    use). ``"val"`` holds the training samples of :func:`validation_groups` and is empty when
    ``validation_fraction`` is 0; those samples are then not in ``"train"``. Each list is
    sorted and free of duplicates.

    Raises:
        SampleNameError: a name does not parse.
        ValueError: unknown benchmark or bad fraction.
    """
    _check_benchmark(benchmark)
    held_out = validation_groups(benchmark, validation_fraction, seed)
    missing = missing_skeletons_for(benchmark) if exclude_missing else frozenset()
    result: dict[str, set[str]] = {"train": set(), "val": set(), "test": set()}
    for name in names:
        sample = _as_sample(name)
        bare = format_sample_name(sample)
        if not is_in_benchmark(sample, benchmark) or bare in missing:
            continue
        side = split_of(sample, benchmark)
        if side == "train" and validation_group_of(sample, benchmark) in held_out:
            side = "val"
        result[side].add(bare)
    return {key: sorted(values) for key, values in result.items()}
