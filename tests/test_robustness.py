"""``actionfusion robustness`` (pipeline/robustness.py): the corruption is inserted before the stream
step, seeded per clip independently of the other draws, and the CLI scores a tiny trained model
end to end (clean accuracy = ``evaluate``'s, reruns identical, json / md / png written)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from actionfusion.datasets.store.prepare import PrepareConfig, prepare_store
from actionfusion.datasets.synthetic.generate import SynthConfig, generate_synthetic_ntu
from actionfusion.errors import UsageError
from actionfusion.modalities.skeleton.completion import complete
from actionfusion.modalities.skeleton.corruption import corrupt
from actionfusion.modalities.skeleton.transforms import build_skeleton_pipeline
from actionfusion.pipeline.cli import main
from actionfusion.pipeline.config import load_config
from actionfusion.pipeline.data_builder import build_datasets
from actionfusion.pipeline.robustness import CorruptingBuilder, CorruptionStep, check_completion, parse_names

pytestmark = pytest.mark.usefixtures("one_thread")

TEST_SPECS = [{"name": "center"}, {"name": "valid_crop_resize", "test_p_interval": [0.95], "out_len": 24,
                                   "min_len": 16}, {"name": "stream", "stream": "bone"}]


def raw_sequence(frames: int = 40) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(2, frames, 25, 3)).astype(np.float32) + 1.0


def test_builder_corrupts_before_the_stream_step() -> None:
    pipeline = CorruptingBuilder("block_drop", "moderate", "interpolate", seed=3)(TEST_SPECS, "ntu25", False)
    x = raw_sequence()
    out = pipeline(x.copy(), np.random.default_rng([0, 0, 5]))
    before = build_skeleton_pipeline(TEST_SPECS[:-1], "ntu25", False)(x.copy(), np.random.default_rng([0, 0, 5]))
    step = CorruptionStep("block_drop", "moderate", "interpolate", "ntu25", 3)
    clip = corrupt(before, "block_drop", "moderate", step.generator(np.random.default_rng([0, 0, 5])))
    expected = build_skeleton_pipeline(TEST_SPECS[-1:], "ntu25", False)(complete(clip, "interpolate"), None)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)
    assert clip.num_kept == 12
    # training pipelines are left alone
    train = CorruptingBuilder("block_drop", "moderate", "none")(TEST_SPECS, "ntu25", True)
    plain = build_skeleton_pipeline(TEST_SPECS, "ntu25", True)
    np.testing.assert_array_equal(train(x.copy(), np.random.default_rng(1)), plain(x.copy(), np.random.default_rng(1)))


def test_corruption_seed_is_the_clip_key_not_the_stream_position() -> None:
    step = CorruptionStep("frame_drop", "severe", "none", "ntu25", 0)
    used = np.random.default_rng([0, 0, 7])
    used.random(100)  # earlier steps' draws do not change the corruption
    a = step(raw_sequence(32), used)
    b = step(raw_sequence(32), np.random.default_rng([0, 0, 7]))
    c = step(raw_sequence(32), np.random.default_rng([0, 0, 8]))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    other = CorruptionStep("frame_drop", "severe", "none", "ntu25", 1)(raw_sequence(32), np.random.default_rng([0, 0, 7]))
    assert not np.array_equal(a, other)


def test_option_parsing() -> None:
    assert parse_names("all", ("a", "b"), "corruption") == ("a", "b")
    assert parse_names("b, a", ("a", "b"), "corruption") == ("a", "b")
    for bad in ("c", "", "a,c"):
        with pytest.raises(UsageError):
            parse_names(bad, ("a", "b"), "corruption")
    with pytest.raises(UsageError, match="--completion-weights"):
        check_completion("finetec")
    with pytest.raises(UsageError, match="only with --completion finetec"):
        check_completion("interpolate", "w.safetensors")
    with pytest.raises(UsageError, match="unknown completion"):
        check_completion("spline")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("robustness")
    generate_synthetic_ntu(root / "raw", SynthConfig(scale="tiny", modalities=("skeleton",)), workers=1, progress=False)
    prepare_store(root / "raw", root / "store", PrepareConfig(modalities=("skeleton",)), workers=0, progress=False)
    sets = [f"--set={o}" for o in (f"data.store={root / 'store'}", "data.num_workers=0", "data.batch_size=8",
                                   "train.amp=false", "schedule.epochs=1", "schedule.warmup_epochs=0",
                                   "train.cpu_threads=1", "data.clip_len=16")]
    assert main(["train", "configs/synthetic/stgcn.yaml", "--work-dir", str(root / "run"), *sets]) == 0
    return {"root": root, "run": root / "run", "sets": sets}


def _robustness(trained: dict, out: str, *extra: str) -> dict:
    args = ["robustness", "configs/synthetic/stgcn.yaml", "--checkpoint", str(trained["run"]),
            "--corruptions", "frame_drop,joint_occlusion", "--levels", "minor,severe", "--out",
            str(trained["root"] / out), *extra, *trained["sets"]]
    assert main(args) == 0
    return json.loads((trained["root"] / out / "robustness.json").read_text())


def test_cli_end_to_end(trained: dict) -> None:
    report = _robustness(trained, "rob_a", "--completion", "interpolate")
    metrics = json.loads((trained["run"] / "metrics.json").read_text())
    assert report["clean"]["top1"] == pytest.approx(metrics["top1"])  # the clean split is evaluate's
    rows = {(r["corruption"], r["level"]): r for r in report["results"]}
    assert set(rows) == {("frame_drop", "minor"), ("frame_drop", "severe"), ("joint_occlusion", "minor"),
                         ("joint_occlusion", "severe")}
    assert rows[("frame_drop", "severe")]["observed_share"] == pytest.approx(4 / 16)  # 16 frames, 12 lost
    assert rows[("joint_occlusion", "severe")]["observed_share"] == pytest.approx(5 / 25)
    assert all(r["num_samples"] == report["clean"]["num_samples"] for r in report["results"])
    assert report["completion"] == "interpolate"
    out = trained["root"] / "rob_a"
    assert (out / "robustness.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| frame_drop |" in (out / "robustness.md").read_text()
    again = _robustness(trained, "rob_b", "--completion", "interpolate")
    assert again["results"] == report["results"]  # seeded per clip: a rerun is identical


def test_cli_models_draws_several_runs(trained: dict) -> None:
    out = trained["root"] / "rob_models"
    args = ["robustness", "--models", str(trained["run"]), str(trained["run"]), "--corruptions", "jitter",
            "--levels", "severe", "--out", str(out), *trained["sets"]]
    assert main(args) == 0
    document = json.loads((out / "robustness.json").read_text())
    assert len(document["models"]) == 2
    assert document["models"][0]["results"] == document["models"][1]["results"]
    assert (out / "robustness.png").stat().st_size > 1000
    summary = (out / "robustness.md").read_text().split("\n## run (stgcn)")[0]
    assert "## Summary: top-1 (%) at the severe level" in summary
    assert summary.count("| run (stgcn) | ") == 2  # one row per model, labelled by work dir and model


def test_cli_models_resumes_from_the_saved_per_model_reports(trained: dict) -> None:
    out = trained["root"] / "rob_resume"
    second = trained["root"] / "run_copy"
    shutil.copytree(trained["run"], second, dirs_exist_ok=True)
    args = ["robustness", "--models", str(trained["run"]), str(second), "--corruptions", "block_drop",
            "--levels", "severe", "--out", str(out), *trained["sets"]]
    assert main(args) == 0
    saved = sorted((out / "models").glob("*.json"))
    assert [p.name.rsplit("-", 1)[0] for p in saved] == ["run", "run_copy"]
    # as if the run had been killed after the first model: its report stays, the second is recomputed
    first = json.loads(saved[0].read_text())
    first["report"]["clean"]["top1"] = 0.123  # a value only the saved file holds
    saved[0].write_text(json.dumps(first))
    saved[1].unlink()
    assert main(args) == 0
    models = json.loads((out / "robustness.json").read_text())["models"]
    assert models[0]["clean"]["top1"] == 0.123
    assert models[1]["clean"]["top1"] != 0.123 and saved[1].is_file()
    # the list's order does not matter: each work dir has its own file
    reordered = args[:2] + [str(second), str(trained["run"])] + args[4:]
    assert main(reordered) == 0
    models = json.loads((out / "robustness.json").read_text())["models"]
    assert [m["clean"]["top1"] == 0.123 for m in models] == [False, True]
    # another option (the corruption seed) makes the saved reports stale: both are recomputed
    assert main(args + ["--seed", "1"]) == 0
    models = json.loads((out / "robustness.json").read_text())["models"]
    assert models[0]["clean"]["top1"] == models[1]["clean"]["top1"] != 0.123
    assert models[0]["seed"] == 1


def test_cli_scores_a_recognizers_skeleton_stream(trained: dict) -> None:
    """A multimodal Recognizer (here its skeleton encoder alone, late fusion) goes through the same
    corruption: its clean score is evaluate's, and its skeleton input loses the corrupted frames."""
    run = trained["root"] / "recognizer_run"
    recognizer = [f"--set={o}" for o in ("model.name=recognizer",
                                         "model.kwargs={encoders: {skeleton: {name: stgcn, kwargs: {block_dropout: 0.0}}}, "
                                         "fusion: {name: late}}")]
    assert main(["train", "configs/synthetic/stgcn.yaml", "--work-dir", str(run), *trained["sets"], *recognizer]) == 0
    out = trained["root"] / "rob_recognizer"
    assert main(["robustness", str(run / "config.yaml"), "--checkpoint", str(run), "--corruptions", "frame_drop",
                 "--levels", "severe", "--out", str(out), *trained["sets"]]) == 0
    report = json.loads((out / "robustness.json").read_text())
    assert report["model"] == "recognizer"
    assert report["clean"]["top1"] == pytest.approx(json.loads((run / "metrics.json").read_text())["top1"])
    scores = report["results"][0]
    assert scores["observed_share"] == pytest.approx(4 / 16)
    cfg = load_config(run / "config.yaml", [o.split("=", 1)[1] for o in trained["sets"]])
    clean = build_datasets(cfg)["test"][0]["skeleton"]
    corrupted = build_datasets(cfg, pipeline_builder=CorruptingBuilder("frame_drop", "severe", "none"))["test"][0]["skeleton"]
    assert np.asarray(clean).shape == np.asarray(corrupted).shape == (2, 16, 25, 3)  # [M, T, V, C]
    assert int(np.asarray(clean).any(axis=(0, 2, 3)).sum()) == 16
    assert int(np.asarray(corrupted).any(axis=(0, 2, 3)).sum()) == 4  # 16 frames, 12 lost
