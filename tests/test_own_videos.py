"""Your own videos: a folder of videos (class sub-folders, a labels CSV, or none) becomes a store with
extracted poses, person crops and a stratified split, and trains through one command."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from actionfusion.datasets.synthetic.generate import SynthConfig
from actionfusion.datasets.synthetic.video_folder_format import write_synthetic_video_folder
from actionfusion.errors import UsageError
from actionfusion.pipeline.video_folder import LabelsFileError, is_video_folder, sample_name_of, scan_video_folder

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def video_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 motion classes x 6 synthetic renders (12-16 frames), RGB only, in class sub-folders."""
    out = tmp_path_factory.mktemp("videos")
    counts = write_synthetic_video_folder(out, SynthConfig(scale="tiny", actions=(23, 24, 27), rgb_size=(320, 180)),
                                          workers=1, progress=False)
    assert counts == {"hand_waving": 6, "jump_up": 6, "kicking_something": 6}
    return out


def test_the_synthetic_folder_holds_videos_only_in_class_folders(video_folder: Path) -> None:
    files = sorted(str(p.relative_to(video_folder)) for p in video_folder.rglob("*") if p.is_file())
    assert len(files) == 18 and all(f.endswith(".avi") and f.count("/") == 1 for f in files)
    assert not any("S001" in f for f in files)  # no NTU name leaks into the user's layout
    assert is_video_folder(video_folder)
    videos = scan_video_folder(video_folder)
    assert Counter(v.label for v in videos) == {"hand_waving": 6, "jump_up": 6, "kicking_something": 6}
    assert videos[0].name == "hand_waving__take_0001"


def test_sample_names_stay_one_plain_component() -> None:
    assert sample_name_of("walk/clip 1.mp4") == "walk__clip_1"
    assert sample_name_of("../../etc/passwd.mp4") == "etc__passwd"
    assert sample_name_of(".hidden.mp4") == "hidden"


def test_folder_layout_and_labels_file_errors(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.mp4").write_bytes(b"")
    (tmp_path / "top.mp4").write_bytes(b"")
    with pytest.raises(UsageError, match=r"holds videos at the top level \(top\.mp4\) and in class folders"):
        scan_video_folder(tmp_path)
    labels = tmp_path / "labels.csv"
    labels.write_text("video,label,split\ntop.mp4,walk,train\na/x.mp4,run,tset\n")
    with pytest.raises(LabelsFileError, match=r"labels\.csv, line 3: split 'tset' of video 'a/x\.mp4'"):
        scan_video_folder(tmp_path, labels)
    labels.write_text("video,label\ntop.mp4,walk\nmissing.mp4,run\n")
    with pytest.raises(LabelsFileError, match=r"line 3: video 'missing\.mp4' does not exist"):
        scan_video_folder(tmp_path, labels)
    labels.write_text("video,label,split\ntop.mp4,walk,train\na/x.mp4,run,\n")
    with pytest.raises(LabelsFileError, match="1 rows give a split and 1 do not"):
        scan_video_folder(tmp_path, labels)
    labels.write_text("video,label,split\ntop.mp4,walk,train\na/x.mp4,run,test\n")
    videos = scan_video_folder(tmp_path, labels)
    assert [(v.name, v.label, v.split) for v in videos] == [("a__x", "run", "test"), ("top", "walk", "train")]


@pytest.mark.skipif(importlib.util.find_spec("mediapipe") is None, reason="mediapipe (the default pose model) is "
                                                                          "not installed")
@pytest.mark.needs_blazepose
def test_one_command_takes_class_folders_to_a_trained_coco17_gcn(video_folder: Path, tmp_path: Path) -> None:
    store, work = tmp_path / "store", tmp_path / "work"
    command = [sys.executable, "-m", "actionfusion", "run", "custom/ctrgcn_coco17", "--raw-root", str(video_folder),
               "--work-dir", str(work), "--workers", "1", "--set", f"data.store={store}", "--set", "schedule.epochs=2",
               "--set", "schedule.milestones=[]", "--set", "train.cpu_threads=1", "--set", "data.clip_len=12",
               "--set", "source.rgb_size=64"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240,
                          env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-3000:]
    brief = json.loads(done.stdout.strip().splitlines()[-1])
    assert brief["prepare_failures"] == 0
    split = json.loads((store / "splits" / "videos.json").read_text())
    assert split["classes"] == ["hand_waving", "jump_up", "kicking_something"]
    # stratified: round(0.2 * 6) = 1 test and round(0.1 * 6) = 1 validation video per class
    assert (len(split["train"]), len(split["val"]), len(split["test"])) == (12, 3, 3)
    meta = json.loads((store / "samples" / split["test"][0] / "meta.json").read_text())
    assert {"pose2d", "pose3d_world", "rgb"} <= set(meta["modalities"])
    assert meta["modalities"]["rgb"]["shape"][1:] == [64, 64, 3]
    assert (work / "config.yaml").read_text().count("num_classes: 3") == 1
    per_class = (work / "per_class.csv").read_text()
    assert "hand_waving" in per_class and (work / "confusion.png").is_file()
    # the feature extractor reads the store's extracted poses and names the classes from classes.json
    from actionfusion.pipeline.cli import main

    features = tmp_path / "features"
    assert main(["extract-features", str(work), f"{store}::{split['test'][0]}", "--out", str(features)]) == 0
    entry = next(iter(json.loads((features / "index.json").read_text())["samples"].values()))
    assert entry["top1_class"] == split["classes"][entry["top1"]]
    # a rerun skips the finished stages
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120,
                           env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert again.returncode == 0, again.stderr[-3000:]
    assert "is finished (metrics.json): not training again" in again.stderr + again.stdout


def test_unlabelled_videos_and_a_bad_video_are_prepared_and_reported(video_folder: Path, tmp_path: Path) -> None:
    """No labels: poses and crops, no benchmark file; a broken video is recorded and the others go on;
    a rerun skips what is done."""
    import shutil

    from test_extract_poses import stand_in_factory

    from actionfusion.pipeline.prepare_videos import prepare_videos

    flat = tmp_path / "flat"
    flat.mkdir()
    for video in sorted(video_folder.glob("jump_up/*.avi"))[:2]:
        shutil.copy(video, flat / f"clip {video.stem}.avi")
    (flat / "broken.mp4").write_bytes(b"\x00not a video" * 32)
    store = tmp_path / "store"
    report = prepare_videos(flat, store, workers=1, progress=False, rgb_size=32, estimator_factory=stand_in_factory)
    assert (report.num_videos, report.num_extracted, report.benchmark_file) == (3, 2, None)
    assert [f["sample"] for f in report.failures] == ["broken"]
    assert sorted(p.name for p in (store / "samples").iterdir()) == ["clip_take_0001", "clip_take_0002"]
    meta = json.loads((store / "samples" / "clip_take_0001" / "meta.json").read_text())
    assert meta["modalities"]["rgb"]["shape"][1:] == [32, 32, 3] and meta["modalities"]["rgb"]["crop_source"] == "pose2d"
    again = prepare_videos(flat, store, workers=1, progress=False, rgb_size=32, estimator_factory=stand_in_factory)
    assert (again.num_extracted, again.num_skipped) == (0, 2)
