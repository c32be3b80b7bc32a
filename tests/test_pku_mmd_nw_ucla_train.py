"""PKU-MMD and NW-UCLA end to end: synthetic raw root -> prepare -> store and benchmark files -> training.

The synthetic roots come from :mod:`actionfusion.datasets.synthetic.pku_mmd_format` and
:mod:`~actionfusion.datasets.synthetic.nw_ucla_format`; prepare from
:mod:`actionfusion.datasets.store.prepare_pku_mmd` and :mod:`~actionfusion.datasets.store.prepare_nw_ucla`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from actionfusion.datasets import nw_ucla, pku_mmd
from actionfusion.datasets.benchmarks.benchmark_file import read_benchmark_file
from actionfusion.datasets.ntu.constants import NTU120_CLASS_NAMES
from actionfusion.datasets.pku_mmd import PKU_MMD_CLASS_NAMES
from actionfusion.datasets.store.layout import split_file
from actionfusion.datasets.store.prepare_nw_ucla import is_nw_ucla_root, prepare_nw_ucla
from actionfusion.datasets.store.prepare_pku_mmd import find_pku_mmd_root, is_pku_mmd_root, prepare_pku_mmd
from actionfusion.datasets.store.sample_store import SampleStore
from actionfusion.datasets.synthetic.nw_ucla_format import (NTU_MOTION_OF_UCLA_ACTION, UclaSynthConfig,
                                                            write_synthetic_nw_ucla)
from actionfusion.datasets.synthetic.pku_mmd_format import (PKU_MMD_ACTION_OF_NTU, PkuSynthConfig,
                                                            write_synthetic_pku_mmd)
from actionfusion.errors import StoreError
from actionfusion.modalities.skeleton.layouts import convert_layout, layout_graph

torch.set_num_threads(1)

# The release's UCLA graph (6UOOON9/Hyper-GCN@cefe70b graph/ucla.py, the same in Uason-Chen/CTR-GCN):
# 1-based inward edges (child, parent).
RELEASE_UCLA_EDGES = ((1, 2), (2, 3), (4, 3), (5, 3), (6, 5), (7, 6), (8, 7), (9, 3), (10, 9), (11, 10), (12, 11),
                      (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18), (20, 19))


@pytest.fixture(scope="module")
def pku_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("pku") / "raw"
    return root, write_synthetic_pku_mmd(root, PkuSynthConfig.at_scale("tiny"))


@pytest.fixture(scope="module")
def pku_store(pku_root: tuple[Path, object]) -> Path:
    root, _ = pku_root
    store = root.parent / "store"
    prepare_pku_mmd(root, store)
    return store


@pytest.fixture(scope="module")
def ucla_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("ucla") / "raw"
    return root, write_synthetic_nw_ucla(root, UclaSynthConfig.at_scale("tiny"))


@pytest.fixture(scope="module")
def ucla_store(ucla_root: tuple[Path, object]) -> Path:
    root, _ = ucla_root
    store = root.parent / "store"
    prepare_nw_ucla(root, store)
    return store


# ------------------------------------------------------------------ constants


def test_pku_mmd_class_names_and_the_synthetic_mapping() -> None:
    assert len(PKU_MMD_CLASS_NAMES) == 51 and len(set(PKU_MMD_CLASS_NAMES)) == 51
    assert list(PKU_MMD_CLASS_NAMES) == sorted(PKU_MMD_CLASS_NAMES)  # the IDs follow the alphabetical order
    assert PKU_MMD_CLASS_NAMES[0] == "bow" and PKU_MMD_CLASS_NAMES[50] == "writing"
    for ntu, pku in PKU_MMD_ACTION_OF_NTU.items():  # each synthetic class goes to the PKU-MMD class of that action
        assert NTU120_CLASS_NAMES[ntu - 1].startswith(PKU_MMD_CLASS_NAMES[pku - 1]), (ntu, pku)
    assert sorted(NTU_MOTION_OF_UCLA_ACTION) == list(nw_ucla.ACTIONS)
    assert len(set(NTU_MOTION_OF_UCLA_ACTION.values())) == 10  # ten distinct motions
    assert NTU_MOTION_OF_UCLA_ACTION[5] == 8 and NTU_MOTION_OF_UCLA_ACTION[6] == 9  # sit down, stand up


# ------------------------------------------------------------------ PKU-MMD


def test_synthetic_pku_root_reads_with_the_pku_readers(pku_root: tuple[Path, object]) -> None:
    root, summary = pku_root
    assert is_pku_mmd_root(root) and not is_nw_ucla_root(root)
    assert len(summary.sequences) == 12  # 4 recordings x 3 views
    xview = pku_mmd.read_pku_split(root / "cross-view.txt")
    xsub = pku_mmd.read_pku_split(root / "cross-subject.txt")
    assert sorted(xview.train) == [s for s in summary.sequences if s[-1] in "MR"]
    assert sorted(xview.test) == [s for s in summary.sequences if s.endswith("-L")]
    assert sorted(xsub.test) == ["0004-L", "0004-M", "0004-R"]  # recording 4: performer 4, the test performer
    # MAMP reads the second line split by ", "
    assert (root / "cross-view.txt").read_text().splitlines()[1].split(", ") == list(xview.train)
    for sequence in ("0001-L", "0001-M"):
        skeleton = pku_mmd.read_pku_skeleton(root / "skeleton" / f"{sequence}.txt")
        actions = pku_mmd.read_pku_labels(root / "label" / f"{sequence}.txt")
        assert skeleton.shape[0] == 2 and skeleton.shape[2:] == (25, 3)
        assert [a.action_id for a in actions] == summary.actions[sequence]
        assert all(a.action_id in PKU_MMD_ACTION_OF_NTU.values() for a in actions)
        assert actions[0].start_frame > 0 and actions[-1].end_frame < skeleton.shape[1]  # idle frames around
    # the three views of a recording hold the same actions at the same frames
    labels = [(root / "label" / f"0002-{v}.txt").read_text() for v in "LMR"]
    assert labels[0] == labels[1] == labels[2]


def test_prepare_pku_mmd_cuts_one_sample_per_label_row(pku_root: tuple[Path, object], pku_store: Path) -> None:
    root, summary = pku_root
    store = SampleStore(pku_store)
    assert len(store.names) == summary.num_clips
    assert json.loads((pku_store / "failures.json").read_text()) == []
    name = "pku1_0002-M_01"
    actions = pku_mmd.read_pku_labels(root / "label" / "0002-M.txt")
    sequence = pku_mmd.read_pku_skeleton(root / "skeleton" / "0002-M.txt")
    meta = store.meta(name)
    assert store.label(name) == actions[1].action_id - 1
    assert meta["frames"] == [actions[1].start_frame, actions[1].end_frame]
    np.testing.assert_array_equal(store.load_skeleton(name), sequence[:, actions[1].start_frame:actions[1].end_frame])


def test_pku_mmd_benchmark_files_follow_the_official_split_rule(pku_root: tuple[Path, object],
                                                                pku_store: Path) -> None:
    root, _ = pku_root
    names = SampleStore(pku_store).names
    for benchmark, split_name in (("pku_mmd_v1_xsub", "cross-subject.txt"), ("pku_mmd_v1_xview", "cross-view.txt")):
        lists = read_benchmark_file(split_file(pku_store, benchmark), benchmark, set(names))
        train = set(pku_mmd.read_pku_split(root / split_name).train)
        assert lists.classes == PKU_MMD_CLASS_NAMES
        assert sorted(lists.splits["train"] + lists.splits["test"]) == sorted(names) and not lists.splits["val"]
        assert all(n.rsplit("_", 1)[0][len("pku1_"):] in train for n in lists.splits["train"])
        assert not any(n.rsplit("_", 1)[0][len("pku1_"):] in train for n in lists.splits["test"])
    xview = json.loads(split_file(pku_store, "pku_mmd_v1_xview").read_text())
    assert {n.split("_")[1][-1] for n in xview["test"]} == {"L"}


def test_pku_mmd_bad_files_are_recorded_and_a_rerun_resumes(pku_root: tuple[Path, object], tmp_path: Path) -> None:
    source, summary = pku_root
    root, store = tmp_path / "raw", tmp_path / "store"
    shutil.copytree(source, root)
    lines = (root / "skeleton" / "0001-L.txt").read_text().splitlines()
    lines[4] = " ".join(lines[4].split()[:149])
    (root / "skeleton" / "0001-L.txt").write_text("\n".join(lines) + "\n")
    (root / "label" / "0002-L.txt").write_text("99,0,10,1\n")
    (root / "label" / "0009-L.txt").write_text("1,0,10,1\n")  # no skeleton file
    (root / "skeleton" / "..txt").write_text((root / "skeleton" / "0003-L.txt").read_text())  # odd but safe name
    (root / "label" / "..txt").write_text((root / "label" / "0003-L.txt").read_text())
    report = prepare_pku_mmd(root, store)
    failures = json.loads((store / "failures.json").read_text())
    by_sample = {f["sample"]: f for f in failures}
    assert sorted(by_sample) == ["pku1_0001-L", "pku1_0002-L", "pku1_0009-L"] and report.failed == 3
    assert "line 5" in by_sample["pku1_0001-L"]["error"] and "0001-L.txt" in by_sample["pku1_0001-L"]["error"]
    assert "99" in by_sample["pku1_0002-L"]["error"] and "no skeleton" in by_sample["pku1_0009-L"]["error"]
    assert all("\n" not in f["error"] for f in failures)
    expected = (summary.num_clips - len(summary.actions["0001-L"]) - len(summary.actions["0002-L"])
                + len(summary.actions["0003-L"]))
    assert report.done == expected and report.skipped == 0
    assert (store / "samples" / "pku1_._00" / "skeleton.npy").is_file()
    assert all(p.resolve().is_relative_to(store.resolve()) for p in store.rglob("*"))

    # a killed run: a sample half written (staging folder), another never published, no manifest
    victim = store / "samples" / "pku1_0003-M_00"
    shutil.rmtree(victim)
    staging = store / "samples" / ".tmp-pku1_0003-M_00.abc"
    staging.mkdir()
    (staging / "skeleton.npy").write_bytes(b"partial")
    (store / "manifest.json").unlink()
    again = prepare_pku_mmd(root, store)
    assert (again.done, again.skipped, again.failed) == (1, expected - 1, 3)
    assert not staging.exists() and (victim / "meta.json").is_file()
    assert len(SampleStore(store).names) == expected


def test_pku_mmd_v2_and_store_guards(tmp_path: Path, pku_store: Path, ucla_root: tuple[Path, object]) -> None:
    root = tmp_path / "v2"
    summary = write_synthetic_pku_mmd(root, PkuSynthConfig(version="v2", recordings=2, performers=(1, 2),
                                                           test_performers=(2,)))
    assert (root / "cross_subject_v2.txt").is_file() and is_pku_mmd_root(root)
    report = prepare_pku_mmd(root, tmp_path / "store2")
    assert report.done == summary.num_clips and set(report.benchmarks) == {"pku_mmd_v2_xsub", "pku_mmd_v2_xview"}
    assert all(n.startswith("pku2_") for n in SampleStore(tmp_path / "store2").names)
    with pytest.raises(StoreError, match="config"):  # a PKU-MMD v1 store does not take NW-UCLA or v2
        prepare_nw_ucla(ucla_root[0], pku_store)
    with pytest.raises(StoreError, match="config"):
        prepare_pku_mmd(root, pku_store)
    with pytest.raises(StoreError, match="not a PKU-MMD root"):
        prepare_pku_mmd(ucla_root[0], tmp_path / "nothing")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="not empty"):
        prepare_pku_mmd(root, tmp_path / "busy")


def test_the_unpacked_release_layout_is_found(pku_root: tuple[Path, object], tmp_path: Path) -> None:
    """PKUMMD/Data/PKU_Skeleton_Renew, Label/Train_Label_PKU_final, Split/ (the release as unpacked)."""
    source, summary = pku_root
    root = tmp_path / "PKUMMD"
    shutil.copytree(source / "skeleton", root / "Data" / "PKU_Skeleton_Renew")
    shutil.copytree(source / "label", root / "Label" / "Train_Label_PKU_final")
    (root / "Split").mkdir()
    shutil.copy(source / "cross-subject.txt", root / "Split" / "cross-subject.txt")
    layout = find_pku_mmd_root(root)
    assert layout is not None and layout.version == "v1" and set(layout.split_files) == {"xsub"}
    assert layout.label_dir == root / "Label" / "Train_Label_PKU_final"
    report = prepare_pku_mmd(root, tmp_path / "store")
    assert report.done == summary.num_clips and set(report.benchmarks) == {"pku_mmd_v1_xsub"}


# ------------------------------------------------------------------ NW-UCLA


def test_synthetic_nw_ucla_root(ucla_root: tuple[Path, object]) -> None:
    root, summary = ucla_root
    assert is_nw_ucla_root(root) and not is_pku_mmd_root(root)
    files = nw_ucla.list_ucla_samples(root / "all_sqe")
    assert len(files) == len(summary.names) == 10 * 2 * 3  # actions x subjects x views
    views = [nw_ucla.read_ucla_json(root / "all_sqe" / f"a05_s01_e00_v0{v}.json") for v in (1, 2, 3)]
    assert all(v.shape[1:] == (20, 3) for v in views)
    # one event seen from three cameras: the same body (bone lengths) in each view, within the sensor noise
    lengths = [np.linalg.norm(v[:, 1] - v[:, 2], axis=-1).mean() for v in views]  # Spine - ShoulderCenter
    assert max(lengths) - min(lengths) < 0.02 and not np.allclose(views[0][0], views[2][0], atol=0.05)


def test_prepare_nw_ucla_and_its_cross_view_benchmark(ucla_root: tuple[Path, object], ucla_store: Path) -> None:
    root, summary = ucla_root
    store = SampleStore(ucla_store)
    assert store.names == summary.names
    name = "a08_s02_e00_v03"
    skeleton = store.load_skeleton(name)
    assert skeleton.shape[0] == 1 and skeleton.shape[2:] == (20, 3) and skeleton.dtype == np.float32
    np.testing.assert_array_equal(skeleton[0], nw_ucla.read_ucla_json(root / "all_sqe" / f"{name}.json"))
    assert store.label(name) == 6  # donning
    lists = read_benchmark_file(split_file(ucla_store, "nw_ucla_xview"), "nw_ucla_xview", set(store.names))
    assert lists.classes == nw_ucla.CLASS_NAMES
    assert lists.splits["train"] == [n for n in summary.names if n.endswith(("v01", "v02"))]
    assert lists.splits["test"] == [n for n in summary.names if n.endswith("v03")]


def test_nw_ucla_bad_files_are_recorded_and_a_rerun_resumes(ucla_root: tuple[Path, object], tmp_path: Path) -> None:
    root = tmp_path / "raw"
    shutil.copytree(ucla_root[0], root)
    (root / "all_sqe" / "a01_s01_e00_v01.json").write_text('{"skeletons": [[1, 2]]}')
    (root / "all_sqe" / "a02_s01_e00_v02.json").write_text("not json")
    shutil.copy(root / "all_sqe" / "a03_s01_e00_v01.json", root / "all_sqe" / "a03_s01_e00_v04.json")
    (root / "all_sqe" / "README.json").write_text("{}")  # not a sample name: passed over
    report = prepare_nw_ucla(root, tmp_path / "store")
    failures = {f["sample"]: f for f in json.loads((tmp_path / "store" / "failures.json").read_text())}
    assert sorted(failures) == ["a01_s01_e00_v01", "a02_s01_e00_v02", "a03_s01_e00_v04"]
    assert failures["a03_s01_e00_v04"]["stage"] == "split" and "view 4" in failures["a03_s01_e00_v04"]["error"]
    assert "skeletons[0]" in failures["a01_s01_e00_v01"]["error"]
    assert report.done == 60 - 2
    shutil.rmtree(tmp_path / "store" / "samples" / "a04_s02_e00_v03")
    again = prepare_nw_ucla(root, tmp_path / "store")
    assert (again.done, again.skipped, again.failed) == (1, 57, 3)


# ------------------------------------------------------------------ the GCNs on NW-UCLA's 20 joints


def test_nw_ucla_graph_is_the_release_graph() -> None:
    """(Every GCN on this layout: tests/test_gcn_layouts.py.)"""
    from actionfusion.registry import create_model

    graph = layout_graph("nw_ucla20")
    undirected = {frozenset(e) for e in graph.edges}
    assert undirected == {frozenset((c - 1, p - 1)) for c, p in RELEASE_UCLA_EDGES}
    with pytest.raises(ValueError, match="20 joints"):
        create_model("hypergcn", num_classes=10, layout="nw_ucla20", num_joints=25)
    # the Kinect v2 -> v1 conversion the synthetic root uses keeps every v1 joint
    assert np.count_nonzero(convert_layout(np.ones((25, 3)), "ntu25", "nw_ucla20").any(axis=-1)) == 20


# ------------------------------------------------------------------ training


def _tiny_config(store: Path, benchmark: str, *, layout: str, persons: int, model_kwargs: dict,
                 epochs: int, rotation: float):
    from actionfusion.pipeline.config import ExperimentConfig

    raw = ExperimentConfig().to_dict()
    raw["experiment"] = f"tiny_{benchmark}"
    raw["data"].update({
        "store": str(store), "benchmark": benchmark, "clip_len": 16, "batch_size": 8, "num_workers": 0,
        "validation_fraction": 0.0, "layout": layout, "max_persons": persons,
        "train_transforms": [{"name": "center"}, {"name": "valid_crop_resize", "p_interval": [0.5, 1.0], "min_len": 8},
                             {"name": "random_rotation", "max_angle": rotation}],
        "test_transforms": [{"name": "center"}, {"name": "valid_crop_resize", "p_interval": [0.95], "min_len": 8}]})
    raw["model"].update({"name": "ctrgcn", "num_classes": "auto", "kwargs": {"base_channels": 8, **model_kwargs}})
    raw["optim"].update({"lr": 0.1})
    raw["schedule"].update({"name": "cosine", "epochs": epochs, "warmup_epochs": 0, "milestones": []})
    raw["train"].update({"cpu_threads": 1, "select_by": "last", "amp": False, "keep_last": 1})
    return ExperimentConfig.from_dict(raw)


def test_training_on_the_pku_mmd_store_learns(pku_store: Path, tmp_path: Path) -> None:
    from actionfusion.pipeline.trainer import train

    cfg = _tiny_config(pku_store, "pku_mmd_v1_xsub", layout="ntu25", persons=2, model_kwargs={}, epochs=6,
                       rotation=0.3)
    results = train(cfg, tmp_path / "run", progress=False)
    lists = read_benchmark_file(split_file(pku_store, "pku_mmd_v1_xsub"), "x", set(SampleStore(pku_store).names))
    store = SampleStore(pku_store)
    chance = 1 / len({store.label(n) for n in lists.splits["train"]})  # 12 classes
    assert results["test"]["num_samples"] == len(lists.splits["test"])
    assert results["top1"] >= 3 * chance
    assert json.loads((tmp_path / "run" / "classes.json").read_text())[32] == "sitting down"


def test_training_on_the_nw_ucla_store_learns(ucla_store: Path, tmp_path: Path) -> None:
    from actionfusion.pipeline.trainer import train

    cfg = _tiny_config(ucla_store, "nw_ucla_xview", layout="nw_ucla20", persons=1,
                       model_kwargs={"layout": "nw_ucla20", "num_persons": 1}, epochs=16, rotation=1.05)
    results = train(cfg, tmp_path / "run", progress=False)
    assert results["test"]["num_samples"] == 20  # view 3: 10 actions x 2 subjects
    assert results["top1"] >= 3 * 0.1  # chance: 10 classes


def test_the_cli_synthesises_prepares_and_runs_both_formats(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``synth --format pku-mmd|nw-ucla``, ``prepare`` dispatching on the root's layout, and ``run --raw-root``."""
    from actionfusion.pipeline.cli import main

    for fmt, benchmark in (("pku-mmd", "pku_mmd_v1_xsub"), ("nw-ucla", "nw_ucla_xview")):
        raw, store = tmp_path / f"{fmt}_raw", tmp_path / f"{fmt}_store"
        assert main(["synth", str(raw), "--format", fmt, "--scale", "tiny", "--json"]) == 0
        assert main(["prepare", str(raw), "--out", str(store), "--json"]) == 0
        report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert report["failed"] == 0 and report["done"] > 0 and benchmark in report["benchmarks"]
        assert main(["prepare", str(raw), "--out", str(store), "--rgb-size", "64"]) == 2  # a usage error: no RGB here
        assert "does not apply to" in capsys.readouterr().err
    config = "configs/synthetic/pku_mmd_ctrgcn.yaml"
    assert main(["run", config, "--raw-root", str(tmp_path / "pku-mmd_raw"), "--work-dir", str(tmp_path / "run"),
                 "--set", f"data.store={tmp_path / 'pku-mmd_store'}", "--set", "schedule.epochs=1",
                 "--set", "schedule.milestones=[]", "--set", "schedule.warmup_epochs=0",
                 "--set", "train.cpu_threads=1"]) == 0
    brief = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert brief["prepare_failures"] == 0 and 0.0 <= brief["test_top1"] <= 1.0
