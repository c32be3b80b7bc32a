"""Live recognition on the real NTU fixture video with the default pose model (BlazePose): the
windows a live recognizer classifies equal the offline extraction's windows, ``actionfusion
recognize`` writes a labelled video and per-window JSON lines, and ``actionfusion stream`` reads
the video as a live MPEG-TS stream over loopback TCP and stops when it ends."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import av
import numpy as np
import pytest

from actionfusion.pipeline.cli import main

from test_live_units import _work_dir

FIXTURES = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures"
VIDEO = FIXTURES / "ntu" / "S001C001P001R001A001_rgb.avi"

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.skipif(importlib.util.find_spec("mediapipe") is None,
                       reason="mediapipe is not installed: pip install 'mediapipe==0.10.14' (the [dev] extra)"),
    pytest.mark.skipif(not VIDEO.is_file(), reason=f"NTU fixtures not found at {FIXTURES}: they live in ../shared"),
]


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory) -> Path:
    return _work_dir(tmp_path_factory.mktemp("live") / "model")


@pytest.mark.needs_blazepose
def test_live_windows_equal_offline_windows(work_dir) -> None:
    from actionfusion.modalities.pose.estimator import create_pose_estimator
    from actionfusion.modalities.pose.extract import extract_poses
    from actionfusion.pipeline.live.frame_source import LiveFrameSource
    from actionfusion.pipeline.live.live_recognizer import LiveRecognizer
    from actionfusion.pipeline.live.window_classifier import WindowClassifier

    offline = extract_poses(VIDEO)  # batches of 8 frames, tracks assembled at the end
    classifier = WindowClassifier.from_checkpoint(work_dir)
    window = 16
    recognizer = LiveRecognizer(create_pose_estimator("default"), classifier, window=window, step=8)
    results = []
    for frame in LiveFrameSource(str(VIDEO), realtime=False, max_height=0):  # every frame, full size
        results += recognizer.process(frame.index, frame.image, frame.arrived, frame.scale).windows
    assert len(results) >= 10  # the one person, every 8 frames once half a window is filled
    rows = {tid: m for m, tid in enumerate(offline.track_ids)}
    for result in results:
        t = result.frame
        world = offline.world[rows[result.track], max(0, t - window + 1): t + 1]
        world = np.concatenate([np.zeros((window - len(world),) + world.shape[1:], np.float32), world])
        expected = classifier.scores([classifier.from_pose_world(world[None], offline.layout)])[0]
        np.testing.assert_allclose(result.scores, expected, atol=1e-5)
        assert len(result.top) == 5 and result.top[0][2] == pytest.approx(float(result.scores.max()))


def _frames_of(path: Path) -> tuple[int, tuple[int, int]]:
    with av.open(str(path)) as container:
        frames = [f for f in container.decode(video=0)]
    return len(frames), (frames[0].height, frames[0].width)


@pytest.mark.needs_blazepose
def test_recognize_writes_a_labelled_video_and_window_records(work_dir, tmp_path, capsys) -> None:
    out = tmp_path / "labelled.mp4"
    assert main(["recognize", str(VIDEO), "--checkpoint", str(work_dir), "--out", str(out), "--step", "10",
                 "--max-height", "270"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["frames"] == 103 and summary["dropped"] == 0 and summary["windows"] >= 8
    assert _frames_of(out) == (103, (270, 480))
    assert "processed 103 frames" in (tmp_path / "labelled.log").read_text()
    records = [json.loads(line) for line in (tmp_path / "labelled.jsonl").read_text().splitlines()]
    assert len(records) == summary["windows"]
    assert all(r["frame"] % 10 == 9 and len(r["top"]) == 5 for r in records)
    first = records[0]
    assert set(first) == {"frame", "track", "latency_ms", "box", "top"}
    # boxes in source pixels (1920x1080), though the frames were decoded at 480x270
    x0, y0, x1, y1 = first["box"]
    assert 0 <= x0 < x1 <= 1920 and 0 <= y0 < y1 <= 1080 and x1 - x0 > 50
    scores = [t["score"] for t in first["top"]]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1.0001


@pytest.mark.needs_blazepose
def test_stream_reads_a_live_loopback_stream_until_it_ends(work_dir, tmp_path, capsys) -> None:
    from actionfusion.pipeline.live.replay_server import ReplayServer, encode_mpegts

    ts = encode_mpegts(VIDEO, tmp_path / "fixture.ts")
    jsonl = tmp_path / "windows.jsonl"
    with ReplayServer(ts, fps=30, frames=103) as url:
        status = main(["stream", url, "--checkpoint", str(work_dir), "--show", "no", "--jsonl", str(jsonl),
                       "--step", "4", "--stall-timeout", "5", "--out", str(tmp_path / "live.mp4"),
                       "--all-scores"])
    assert status == 0
    err = capsys.readouterr().err
    summary = json.loads(err.split("summary ", 1)[1].splitlines()[0])
    assert summary["decoded"] == 103 and not summary["stalled"]
    assert summary["frames"] + summary["dropped"] == 103 and summary["frames"] >= 20
    assert summary["latency_ms_mean"] is not None and summary["windows"] >= 1
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(records) == summary["windows"]
    assert all(len(r["scores"]) == 7 and abs(sum(r["scores"]) - 1) < 1e-4 for r in records)
    assert records[0]["top"][0]["score"] == pytest.approx(max(records[0]["scores"]), abs=1e-4)
    assert _frames_of(tmp_path / "live.mp4")[0] == summary["frames"]


def test_stream_refuses_a_sensor_skeleton_model(tmp_path, capsys) -> None:
    sensor = _work_dir(tmp_path / "sensor", source="ntu25")
    assert main(["stream", str(VIDEO), "--checkpoint", str(sensor), "--show", "no"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "extracted poses" in err[0]


@pytest.mark.needs_blazepose
def test_detect_on_a_video_extracts_poses_and_writes_segments(work_dir, tmp_path, capsys) -> None:
    out = tmp_path / "detections"
    assert main(["detect", str(VIDEO), "--checkpoint", str(work_dir), "--out", str(out), "--window", "16",
                 "--stride", "8", "--min-length", "4", "--thresholds", "0"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["frames"] == 103  # one pose step per video frame
    lines = [json.loads(line) for line in (out / f"{VIDEO.stem}.jsonl").read_text().splitlines()]
    assert len(lines) == printed["segments"] >= 1  # at threshold 0 every frame belongs to some class
    assert all(0 <= seg["start"] < seg["end"] <= 103 and 0 <= seg["label"] < 7 for seg in lines)
