"""NTU benchmark splits and the validation carve-out."""

import itertools

import pytest

from actionfusion.datasets.ntu.names import parse_sample_name
from actionfusion.datasets.ntu.splits import (
    BENCHMARKS,
    XSUB_TRAIN_SUBJECTS_NTU120,
    is_in_benchmark,
    split_of,
    split_samples,
    validation_group_of,
    validation_groups,
)
from actionfusion.errors import SampleNameError


def _grid(setups, cameras, performers, actions):
    return [
        f"S{s:03d}C{c:03d}P{p:03d}R{r:03d}A{a:03d}"
        for s, c, p, r, a in itertools.product(setups, cameras, performers, (1, 2), actions)
    ]


@pytest.mark.parametrize(
    "name, benchmark, expected",
    [
        ("S001C001P001R001A001", "ntu60_xsub", "train"),
        ("S001C001P003R001A001", "ntu60_xsub", "test"),
        ("S017C002P038R002A060", "ntu60_xsub", "train"),
        ("S001C001P001R001A001", "ntu60_xview", "test"),
        ("S001C002P003R001A001", "ntu60_xview", "train"),
        ("S001C003P003R001A001", "ntu60_xview", "train"),
        ("S020C001P045R001A100", "ntu120_xsub", "train"),
        ("S020C001P044R001A100", "ntu120_xsub", "test"),
        ("S001C001P001R001A001", "ntu120_xsub", "train"),
        ("S002C001P001R001A001", "ntu120_xset", "train"),
        ("S001C001P001R001A001", "ntu120_xset", "test"),
        ("S032C003P106R002A120", "ntu120_xset", "train"),
        ("S031C003P106R002A120", "ntu120_xset", "test"),
    ],
)
def test_split_of_known_samples(name, benchmark, expected):
    assert split_of(name, benchmark) == expected
    assert split_of(parse_sample_name(name), benchmark) == expected


def test_ntu120_xsub_subjects_decide_train_exactly():
    for performer in range(1, 107):
        name = f"S020C001P{performer:03d}R001A070"
        assert (split_of(name, "ntu120_xsub") == "train") == (performer in XSUB_TRAIN_SUBJECTS_NTU120)


def test_benchmark_membership():
    assert is_in_benchmark("S017C003P040R002A060", "ntu60_xsub")
    assert not is_in_benchmark("S018C001P001R001A001", "ntu60_xview")
    assert not is_in_benchmark("S001C001P001R001A061", "ntu60_xsub")
    assert is_in_benchmark("S032C001P001R001A120", "ntu120_xset")
    assert not is_in_benchmark("S033C001P001R001A001", "ntu120_xsub")
    assert not is_in_benchmark("S001C001P001R001A121", "ntu120_xsub")


def test_errors():
    with pytest.raises(ValueError, match="not part of benchmark"):
        split_of("S018C001P001R001A001", "ntu60_xsub")
    with pytest.raises(ValueError, match="unknown benchmark"):
        split_of("S001C001P001R001A001", "ntu60_xset")
    with pytest.raises(SampleNameError):
        split_of("S001C001P001R001", "ntu60_xsub")


def test_split_samples_partitions_and_excludes_missing():
    names = _grid((1, 2, 18), (1, 2), (1, 3, 5, 7), (1, 8, 61))
    names += ["S001C002P005R002A008", "S001C002P005R002A008"]  # officially missing, duplicated
    result = split_samples(names, "ntu60_xsub")
    assert set(result) == {"train", "val", "test"} and result["val"] == []
    expected = {n for n in names if parse_sample_name(n).setup <= 17 and parse_sample_name(n).action <= 60}
    expected.discard("S001C002P005R002A008")
    assert set(result["train"]) | set(result["test"]) == expected
    assert not set(result["train"]) & set(result["test"])
    assert result["train"] == sorted(result["train"])
    assert all(parse_sample_name(n).performer in (1, 5) for n in result["train"])
    kept = split_samples(names, "ntu60_xsub", exclude_missing=False)
    assert "S001C002P005R002A008" in kept["train"]


def test_validation_carve_out_holds_out_whole_performers():
    names = _grid(range(1, 18, 4), (1, 2, 3), range(1, 41), (1, 30))
    plain = split_samples(names, "ntu60_xsub")
    with_val = split_samples(names, "ntu60_xsub", validation_fraction=0.1, seed=3)
    assert with_val["test"] == plain["test"]
    assert sorted(with_val["train"] + with_val["val"]) == plain["train"]
    val_subjects = {parse_sample_name(n).performer for n in with_val["val"]}
    train_subjects = {parse_sample_name(n).performer for n in with_val["train"]}
    assert len(val_subjects) == 2 and not val_subjects & train_subjects
    assert val_subjects == set(validation_groups("ntu60_xsub", 0.1, seed=3))
    # deterministic, and the seed matters
    assert split_samples(names, "ntu60_xsub", validation_fraction=0.1, seed=3) == with_val
    draws = {validation_groups("ntu60_xsub", 0.1, seed=s) for s in range(10)}
    assert len(draws) > 1


def test_validation_groups_by_setup_for_xset_and_never_from_test():
    for benchmark in BENCHMARKS:
        groups = validation_groups(benchmark, 0.2, seed=1)
        assert groups
        for group in groups:
            if benchmark == "ntu120_xset":
                name = f"S{group:03d}C001P001R001A001"
            else:
                name = f"S001C002P{group:03d}R001A001"
            assert validation_group_of(name, benchmark) == group
            assert split_of(name, benchmark) == "train"
    assert validation_groups("ntu60_xsub", 0.0) == frozenset()
    with pytest.raises(ValueError):
        validation_groups("ntu60_xsub", 1.0)
