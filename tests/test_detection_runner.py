"""End-to-end detection on a tiny generated sequence with a tiny random model: shapes and formats."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from actionfusion.datasets.synthetic.untrimmed import UntrimmedConfig, generate_untrimmed
from actionfusion.errors import UsageError
from actionfusion.pipeline.checkpoints import save_weights
from actionfusion.pipeline.config import ExperimentConfig, save_config
from actionfusion.pipeline.detection.runner import DetectionOptions, detect, evaluate_folder
from actionfusion.pipeline.trainer import build_model

OPTIONS = DetectionOptions(window=12, stride=6, min_length=2, thresholds=(0.0,), smoothing_width=2.0)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, one_thread):
    root = tmp_path_factory.mktemp("detect")
    work = root / "work"
    cfg = ExperimentConfig.from_dict({
        "experiment": "detect_test", "data": {"store": str(root / "no_store"), "clip_len": 8, "max_persons": 2},
        "model": {"name": "stgcn", "num_classes": 60, "kwargs": {"hidden_channels": 4, "hidden_dim": 8}},
    })
    work.mkdir()
    save_config(cfg, work / "config.yaml")
    torch.manual_seed(0)
    save_weights(work / "best.safetensors", build_model(cfg))
    data = root / "data"
    summary = generate_untrimmed(data, UntrimmedConfig(seed=1, num_sequences=2, actions_per_sequence=(2, 2),
                                                       action_frames=(12, 14), gap_frames=(4, 6)))
    return {"work": work, "data": data, "summary": summary, "root": root}


def test_detect_sequence_file(setup):
    name = setup["summary"].sequences[0]
    frames = setup["summary"].frames[0]
    out = setup["root"] / "segments"
    result = detect(setup["data"] / "skeleton" / f"{name}.txt", setup["work"], OPTIONS, out=out)
    assert result.sequence == name and result.num_frames == frames
    assert result.scores.frames.shape == (frames, 60) and result.scores.window == 12
    np.testing.assert_allclose(result.scores.frames.sum(axis=1), 1.0, atol=1e-4)  # means of softmaxes
    assert result.scores.windows.shape == (len(result.scores.starts), 60)
    assert result.segments, "threshold 0 must yield at least one segment"
    for seg in result.segments:
        assert 0 <= seg.label < 60 and 0 <= seg.start < seg.end <= frames and seg.end - seg.start >= 2
    assert [s.score for s in result.segments] == sorted((s.score for s in result.segments), reverse=True)
    rows = [json.loads(line) for line in (out / f"{name}.jsonl").read_text().splitlines()]
    assert len(rows) == len(result.segments)
    assert set(rows[0]) == {"sequence", "label", "action_id", "name", "start", "end", "score"}
    assert rows[0]["action_id"] == rows[0]["label"] + 1 and rows[0]["sequence"] == name


def test_evaluate_folder_writes_metrics(setup):
    out = setup["root"] / "eval"
    metrics = evaluate_folder(setup["data"], setup["work"], out, OPTIONS)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["map"] == metrics["map"]
    assert list(saved["map"]) == ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7"]
    assert all(0.0 <= v <= 1.0 for v in saved["map"].values())
    assert saved["num_sequences"] == 2 and saved["num_truths"] == sum(setup["summary"].actions)
    assert saved["num_frames"] == sum(setup["summary"].frames) and saved["frames_per_second"] > 0
    lines = (out / "detections.jsonl").read_text().splitlines()
    assert len(lines) == saved["num_detections"]


def test_video_needs_a_pose_model(setup):
    video = setup["root"] / "clip.mp4"
    video.write_bytes(b"not decoded: refused before")
    with pytest.raises(UsageError, match="extracted poses"):
        detect(video, setup["work"], OPTIONS)
    with pytest.raises(UsageError, match="window"):
        detect(setup["data"] / "skeleton" / f"{setup['summary'].sequences[0]}.txt", setup["work"],
               DetectionOptions(window=0))


def test_detect_and_synth_untrimmed_commands(setup, capsys):
    from actionfusion.pipeline.cli import main

    data = setup["root"] / "cli_data"
    assert main(["synth-untrimmed", str(data), "--sequences", "1", "--seed", "3"]) == 0
    written = json.loads(capsys.readouterr().out)
    assert written["sequences"] == 1 and written["actions"] >= 6
    (name,) = [p.stem for p in (data / "skeleton").glob("*.txt")]
    options = ["--checkpoint", str(setup["work"]), "--window", "12", "--stride", "6", "--thresholds", "0",
               "--min-length", "2", "--smoothing-width", "2"]
    out = setup["root"] / "cli"
    assert main(["detect", str(data / "skeleton" / f"{name}.txt"), *options, "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["sequence"] == name and (out / f"{name}.jsonl").is_file()
    assert printed["segments"] == len((out / f"{name}.jsonl").read_text().splitlines())
    assert main(["detect", str(data), *options, "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["num_sequences"] == 1 and printed["num_truths"] == written["actions"]
    assert set(printed["map"]) == {"0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7"}
    assert (out / "metrics.json").is_file()
    # a damaged sequence is left out and reported; the others are scored
    (data / "skeleton" / "broken.txt").write_text("1 2 3\n")
    (data / "label" / "broken.txt").write_text("1,0,10,1\n")
    assert main(["detect", str(data), *options, "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["failed"] == 1 and printed["num_sequences"] == 1
    failed = json.loads((out / "metrics.json").read_text())["failed"]
    assert list(failed) == ["broken"] and "line 1" in failed["broken"]
    assert main(["detect", str(setup["root"] / "missing.txt"), *options]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such file" in err[0]
