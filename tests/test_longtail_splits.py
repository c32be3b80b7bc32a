"""Long-tailed NTU splits (BRL's NTU60-LT / NTU120-LT): exact counts, the seeded draw, the store's split
file, the data builder reading it, and the ``lt-split`` command."""

from __future__ import annotations

import json
import warnings
from collections import Counter
from pathlib import Path

import pytest

from actionfusion.datasets.ntu.longtail_splits import (
    LONGTAIL_N_MAX, base_benchmark, largest_n_max, longtail_benchmark_name, longtail_counts,
    parse_longtail_benchmark, select_longtail_names,
)
from actionfusion.datasets.ntu.names import parse_sample_name
from actionfusion.datasets.ntu.splits import split_of, split_samples
from actionfusion.datasets.store.layout import split_file
from actionfusion.datasets.store.prepare import PrepareConfig, prepare_store
from actionfusion.datasets.store.sample_store import SampleStore
from actionfusion.datasets.store.split_files import read_split_file, write_longtail_split
from actionfusion.datasets.synthetic.generate import SynthConfig, generate_synthetic_ntu
from actionfusion.errors import LongTailSplitError, StoreError
from actionfusion.pipeline.cli import main
from actionfusion.pipeline.config import ConfigError, ExperimentConfig
from actionfusion.pipeline.data_builder import build_datasets, split_names

# BRL's released NTU60-LT / NTU120-LT training lists (spec: robust-longtail.md, BRL).
PAPER_SIZES = {
    ("ntu60_xsub", 100): 7892, ("ntu60_xsub", 50): 9150, ("ntu60_xsub", 10): 14142,
    ("ntu120_xsub", 100): 15600, ("ntu120_xsub", 50): 18137, ("ntu120_xsub", 10): 28182,
    ("ntu120_xset", 100): 10378, ("ntu120_xset", 50): 12069, ("ntu120_xset", 10): 18771,
}


@pytest.mark.parametrize("base, rho", sorted(PAPER_SIZES))
def test_counts_equal_the_released_lists(base: str, rho: int) -> None:
    classes = 60 if base.startswith("ntu60") else 120
    counts = longtail_counts(classes, rho, LONGTAIL_N_MAX[base])
    assert sum(counts) == PAPER_SIZES[(base, rho)]
    assert counts[0] == LONGTAIL_N_MAX[base] and counts == sorted(counts, reverse=True)


def test_xview_uses_the_ntu60_counts() -> None:
    assert longtail_counts(60, 100, LONGTAIL_N_MAX["ntu60_xview"]) == longtail_counts(60, 100, 600)


def test_benchmark_names() -> None:
    assert longtail_benchmark_name("ntu120_xset", 50) == "ntu120_xset_lt50"
    assert parse_longtail_benchmark("ntu60_xsub_lt100") == ("ntu60_xsub", 100)
    for name in ("ntu60_xsub", "ntu60_xsub_lt1", "ntu60_xsub_lt0", "ntu60_xsub_lt010", "ntu61_xsub_lt10",
                 "ntu60_xsub_lt10/..", "ntu60_xsub_lt"):
        assert parse_longtail_benchmark(name) is None, name
    assert base_benchmark("ntu60_xview_lt10") == "ntu60_xview" and base_benchmark("ntu60_xview") == "ntu60_xview"
    with pytest.raises(LongTailSplitError, match="rho"):
        longtail_benchmark_name("ntu60_xsub", 1)


def _grid(performers: tuple[int, ...], actions: tuple[int, ...], cameras: int = 3) -> list[str]:
    return [f"S001C{c:03d}P{p:03d}R001A{a:03d}" for p in performers for c in range(1, cameras + 1) for a in actions]


def test_draw_is_seeded_nested_across_rho_and_keeps_only_training_names() -> None:
    names = _grid((1, 2, 4, 5, 8, 3, 6), (1, 3, 8, 10, 22))  # P3, P6 are xsub test performers
    train = split_samples(names, "ntu60_xsub")["train"]
    labels = [parse_sample_name(n).label for n in train]
    first = select_longtail_names(train, labels, 10)
    assert first == select_longtail_names(list(reversed(train)), list(reversed(labels)), 10)  # order-free
    assert first.n_max == 15 and first.classes == [0, 2, 7, 9, 21]
    assert list(first.counts.values()) == longtail_counts(5, 10, 15) == [15, 8, 4, 2, 1]
    assert Counter(parse_sample_name(n).label for n in first.names) == Counter(first.counts)
    assert set(first.names) <= set(train) and first.names == sorted(first.names)
    assert select_longtail_names(train, labels, 10, seed=1).names != first.names
    # rho 100 keeps a prefix of each class's permutation: its names lie inside rho 10's.
    assert set(select_longtail_names(train, labels, 100, n_max=15).names) <= set(first.names)


def test_auto_n_max_is_the_largest_that_fits_and_capped() -> None:
    assert largest_n_max([10, 10, 10], 10) == 10
    # Rank 1 needs int(n * 10 ** -0.5) <= 2, i.e. n <= 9 (int(9 * 0.316) = 2, int(10 * 0.316) = 3).
    assert largest_n_max([50, 2, 50], 10) == 9
    names = _grid((1, 2), (1, 2))
    labels = [parse_sample_name(n).label for n in names]
    assert select_longtail_names(names, labels, 10, auto_limit=4).n_max == 4


def test_short_class_is_a_one_line_error_naming_it() -> None:
    names = _grid((1, 2), (1, 2, 3))
    labels = [parse_sample_name(n).label for n in names]
    with pytest.raises(LongTailSplitError) as info:
        select_longtail_names(names, labels, 10, n_max=7, where="STORE")
    message = str(info.value)
    assert "\n" not in message and message.startswith("STORE: class 0 (action A001, rank 0) has 6")
    assert "--n-max 6" in message
    with pytest.raises(LongTailSplitError, match="at least 2 classes"):
        select_longtail_names(names[:2], [0, 0], 10)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 samples: 5 classes, xsub train performers 1, 2, 4 (9 per class), test performer 3."""
    root = tmp_path_factory.mktemp("longtail")
    config = SynthConfig(scale="tiny", modalities=("skeleton",), performers=(1, 2, 4, 3))
    generate_synthetic_ntu(root / "raw", config, workers=1, progress=False)
    prepare_store(root / "raw", root / "store", PrepareConfig(modalities=("skeleton",)), workers=0, progress=False)
    return root / "store"


def _config(store_path: Path, benchmark: str, **data: object) -> ExperimentConfig:
    raw = ExperimentConfig().to_dict()
    raw["data"].update({"store": str(store_path), "benchmark": benchmark, "clip_len": 12, **data})
    return ExperimentConfig.from_dict(raw)


def test_split_file_round_trip(store_path: Path) -> None:
    store = SampleStore(store_path)
    path, record = write_longtail_split(store, "ntu60_xsub", 10)
    assert path == split_file(store_path, "ntu60_xsub_lt10") == store_path / "splits" / "ntu60_xsub_lt10.json"
    assert record["n_max"] == 9 and record["n_max_requested"] == "auto" and record["seed"] == 0
    assert list(record["counts"].values()) == longtail_counts(5, 10, 9) == [9, 5, 2, 1, 0] and record["num_train"] == 17
    assert set(record["available"].values()) == {9}
    again = read_split_file(store_path, "ntu60_xsub_lt10", store.names)
    assert again == json.loads(path.read_text()) == record


def test_train_reads_the_split_file_and_keeps_the_test_set(store_path: Path) -> None:
    store = SampleStore(store_path)
    _, record = write_longtail_split(store, "ntu60_xsub", 10)
    base = split_names(_config(store_path, "ntu60_xsub", validation_fraction=0.0), store)
    splits = split_names(_config(store_path, "ntu60_xsub_lt10", validation_fraction=0.0), store)
    assert splits["train"] == record["train"] and not splits["val"]
    assert splits["test"] == base["test"] and len(splits["test"]) == 15
    # The validation carve-out works inside the long-tailed list, as for the base benchmark.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the per-sample fallback may warn, as for the base benchmark
        carved = split_names(_config(store_path, "ntu60_xsub_lt10", validation_fraction=0.3), store)
    assert sorted(carved["train"] + carved["val"]) == record["train"] and carved["val"] and carved["train"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        datasets = build_datasets(_config(store_path, "ntu60_xsub_lt10", validation_fraction=0.0),
                                  pipeline_builder=lambda specs, layout, train: (lambda x, rng: x[:, :12]))
    assert Counter(datasets["train"].labels) == {int(k): v for k, v in record["counts"].items() if v}
    assert datasets["test"].names == base["test"]


def test_missing_split_file_says_to_run_lt_split(store_path: Path) -> None:
    cfg = _config(store_path, "ntu60_xview_lt50")
    with pytest.raises(ConfigError, match=r"run `actionfusion lt-split .* --benchmark ntu60_xview --rho 50` first"):
        split_names(cfg, SampleStore(store_path))
    with pytest.raises(ConfigError, match="is not one of .* a long-tailed"):
        _config(store_path, "ntu60_xsub_lt1")


@pytest.mark.parametrize("name, problem", [
    ("S001C001P003R002A001", "not a training sample of ntu60_xsub"),  # a test sample: would leak
    ("S001C001P005R001A001", "not in the store"),
    ("../../etc", "one plain file name"),
    ("S001C001P001R001A001.skeleton", "not a bare sample name"),
])
def test_tampered_split_file_is_refused(store_path: Path, tmp_path: Path, name: str, problem: str) -> None:
    store = SampleStore(store_path)
    path, record = write_longtail_split(store, "ntu60_xsub", 50)
    try:
        path.write_text(json.dumps({**record, "train": record["train"][:-1] + [name]}))
        with pytest.raises(StoreError, match=problem) as info:
            read_split_file(store_path, "ntu60_xsub_lt50", store.names)
        assert "\n" not in str(info.value) and "actionfusion lt-split" in str(info.value)
        path.write_text(json.dumps({**record, "rho": 10}))
        with pytest.raises(StoreError, match="rho is 10"):
            read_split_file(store_path, "ntu60_xsub_lt50", store.names)
    finally:
        path.unlink()


def test_lt_split_command_prints_one_json_line(store_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["lt-split", str(store_path), "--benchmark", "ntu60_xsub", "--rho", "100", "--n-max", "8"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    line = json.loads(out[0])
    assert line["benchmark"] == "ntu60_xsub_lt100" and line["file"].endswith("splits/ntu60_xsub_lt100.json")
    assert list(line["counts"].values()) == longtail_counts(5, 100, 8) and line["total"] == sum(line["counts"].values())


@pytest.mark.parametrize("args, status, needle", [
    (["--rho", "1"], 2, "argument --rho: 1 is outside 2..1000000"),
    (["--rho", "10", "--n-max", "10"], 2, "class 0 (action A001, rank 0) has 9 training samples"),
    (["--rho", "10", "--n-max", "many"], 2, "give an integer or 'auto'"),
    (["--rho", "10", "--benchmark", "ntu60"], 2, "invalid choice"),
])
def test_lt_split_bad_input_is_one_line(store_path: Path, capsys: pytest.CaptureFixture, args: list, status: int,
                                        needle: str) -> None:
    argv = ["lt-split", str(store_path), "--benchmark", "ntu60_xsub", *args]
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own usage errors
        code = exit_.code
    err = capsys.readouterr().err.strip()
    assert code == status and needle in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_lt_split_without_store_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["lt-split", str(tmp_path / "none"), "--benchmark", "ntu60_xsub", "--rho", "10"]) == 1
    assert "not a sample store" in capsys.readouterr().err


def test_split_of_every_kept_name_is_train(store_path: Path) -> None:
    _, record = write_longtail_split(SampleStore(store_path), "ntu60_xsub", 10, seed=3)
    assert all(split_of(name, "ntu60_xsub") == "train" for name in record["train"])
