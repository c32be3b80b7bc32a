"""Batch pose extraction: store writes, failure report, prepared samples, kill -9 resume.

Most tests use a stand-in estimator defined here (deterministic, derived from the frames, so
the stored poses prove the frames of the right video went through ``extract_poses``); one
test runs the real default backend (BlazePose) when mediapipe is importable. The module is
also a script: ``python tests/test_extract_poses.py ROOT STORE`` runs the stand-in extraction
in a fresh process (for the kill -9 test).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest

from actionfusion.datasets.store.layout import sample_dir
from actionfusion.datasets.store.manifest import read_manifest
from actionfusion.datasets.store.prepare import PrepareConfig, prepare_store
from actionfusion.datasets.store.sample_store import SampleStore
from actionfusion.datasets.store.sample_update import add_pose_to_sample, ensure_pose_store
from actionfusion.datasets.synthetic.generate import SynthConfig, generate_synthetic_ntu
from actionfusion.errors import StoreError
from actionfusion.modalities.pose.estimator import PersonPose
from actionfusion.modalities.rgb.video import open_video
from actionfusion.pipeline.extract_poses import extract_poses_batch
from actionfusion.pipeline.extract_poses import main as extract_poses_main
from actionfusion.pipeline.extract_poses_inputs import collect_video_jobs, sample_name_for_video

CORRUPT = "S001C001P002R001A001"  # an NTU name whose video is random bytes
NUM_JOINTS = 17


class StandInEstimator:
    """One person per frame at the centroid of the frame's bright pixels (COCO-17 layout).

    keypoints[k] = (cx + k, cy - k, 0.5 + k / 40) and world[k] = (k, frame mean / 255, 0):
    a pure function of the frame, so two runs over the same video store the same arrays.
    ``delay_s`` slows each frame down (the kill -9 test needs a run that takes a while).
    """

    layout = "coco17"

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1

    def estimate(self, frames: Sequence[np.ndarray]) -> list[list[PersonPose]]:
        out = []
        for frame in frames:
            time.sleep(self.delay_s)
            gray = frame.astype(np.float32).mean(axis=2)
            ys, xs = np.nonzero(gray > gray.mean())
            cx, cy = (float(xs.mean()), float(ys.mean())) if xs.size else (0.0, 0.0)
            k = np.arange(NUM_JOINTS, dtype=np.float32)
            keypoints = np.stack([cx + k, cy - k, 0.5 + k / 40], axis=1).astype(np.float32)
            world = np.stack([k, np.full_like(k, gray.mean() / 255), np.zeros_like(k)], axis=1)
            out.append([PersonPose(keypoints, (cx - 5, cy - 5, cx + 5, cy + 5), world.astype(np.float32))])
        return out


class DyingEstimator(StandInEstimator):
    """Kills its worker process on the first frame estimated anywhere (a marker file says so)."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = marker

    def estimate(self, frames: Sequence[np.ndarray]) -> list[list[PersonPose]]:
        try:
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return super().estimate(frames)
        os._exit(9)


class NobodyEstimator(StandInEstimator):
    """Finds nobody in any frame."""

    def estimate(self, frames: Sequence[np.ndarray]) -> list[list[PersonPose]]:
        return [[] for _ in frames]


CREATED: list[StandInEstimator] = []
"""Estimators built by :func:`stand_in_factory` in this process."""


def stand_in_factory(delay_s: float = 0.0) -> StandInEstimator:
    CREATED.append(StandInEstimator(delay_s))
    return CREATED[-1]


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 tiny synthetic samples (skeleton + RGB, one- and two-person) and one corrupt video."""
    root = tmp_path_factory.mktemp("synth")
    generate_synthetic_ntu(root, SynthConfig(scale="tiny", actions=(1, 58), performers=(1,), cameras=(1, 2),
                                             modalities=("skeleton", "rgb")), workers=1, progress=False)
    rng = np.random.default_rng(0)
    (root / "nturgb+d_rgb" / f"{CORRUPT}_rgb.avi").write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return root


def good_names(root: Path) -> list[str]:
    return sorted(p.name[: -len("_rgb.avi")] for p in (root / "nturgb+d_rgb").iterdir() if CORRUPT not in p.name)


def expected_pose(video: Path) -> np.ndarray:
    """float32 [1, T, 17, 3]: the stand-in's output over every decoded frame of ``video``."""
    with open_video(video) as reader:
        frames = list(reader.iter_frames())
    return np.stack([p[0].keypoints for p in StandInEstimator().estimate(frames)])[None]


def test_batch_writes_poses_and_reports_the_corrupt_video(synth_root: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    report = extract_poses_batch(synth_root, store, workers=2, progress=False,
                                 estimator_factory=functools.partial(stand_in_factory, 0.0))
    names = good_names(synth_root)
    assert (report.num_videos, report.num_extracted, report.num_failed) == (len(names) + 1, len(names), 1)
    assert [(f.sample, f.error_type) for f in report.failures] == [(CORRUPT, "VideoDecodeError")]
    assert CORRUPT in report.summary_text() and "VideoDecodeError" in report.summary_text()
    on_disk = json.loads((store / "pose_failures.json").read_text())
    assert [(f["sample"], f["error_type"]) for f in on_disk] == [(CORRUPT, "VideoDecodeError")]
    assert on_disk[0]["message"] and on_disk[0]["video"].endswith(f"{CORRUPT}_rgb.avi")

    samples = SampleStore(store)
    assert samples.names == names  # the corrupt video left nothing behind
    for name in names:
        pose = samples.load_pose2d(name)
        expected = expected_pose(synth_root / "nturgb+d_rgb" / f"{name}_rgb.avi")
        np.testing.assert_allclose(pose, expected, atol=1e-5)
        entry = samples.meta(name)["modalities"]["pose2d"]
        assert entry["layout"] == "coco17" and entry["frame_size_hw"] == [270, 480] and entry["num_tracks"] == 1
        assert samples.meta(name)["label"] == int(name[-3:]) - 1  # NTU name: label action - 1
        world = np.load(sample_dir(store, name) / "pose3d_world.npy")
        assert world.shape == pose.shape and samples.meta(name)["modalities"]["pose3d_world"]["unit"] == "m"
    assert report.num_frames == sum(samples.load_pose2d(n).shape[1] for n in names) and report.frames_per_s > 0
    manifest = read_manifest(store)
    assert manifest["config"]["source"] == "pose-extraction"
    assert manifest["samples"][CORRUPT]["status"] == "failed" and manifest["counts"]["ok"] == len(names)

    rerun = extract_poses_batch(synth_root, store, workers=1, progress=False,
                                estimator_factory=functools.partial(stand_in_factory, 0.0))
    assert (rerun.num_skipped, rerun.num_extracted, rerun.num_failed) == (len(names), 0, 1)  # failures retried
    with pytest.raises(StoreError, match="layout"):
        extract_poses_batch(synth_root, store, workers=1, progress=False, layout="ntu25",
                            estimator_factory=functools.partial(stand_in_factory, 0.0))
    with pytest.raises(ValueError, match="unknown joint layout"):
        extract_poses_batch(synth_root, store, workers=1, progress=False, layout="coco71")


def test_one_estimator_serves_every_video_reset_between(synth_root: Path, tmp_path: Path) -> None:
    CREATED.clear()
    report = extract_poses_batch(synth_root, tmp_path / "store", workers=1, progress=False,
                                 estimator_factory=functools.partial(stand_in_factory, 0.0))
    assert report.num_extracted == len(good_names(synth_root))
    assert len(CREATED) == 1 and CREATED[0].resets >= report.num_extracted  # built once, reset per video


def test_a_dying_worker_fails_its_videos_and_the_run_goes_on(synth_root: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    report = extract_poses_batch(synth_root, store, workers=2, progress=False,
                                 estimator_factory=functools.partial(DyingEstimator, str(tmp_path / "died")))
    assert report.num_extracted + report.num_failed == report.num_videos
    assert "BrokenProcessPool" in {f.error_type for f in report.failures}
    rerun = extract_poses_batch(synth_root, store, workers=2, progress=False,
                                estimator_factory=functools.partial(DyingEstimator, str(tmp_path / "died")))
    assert [f.sample for f in rerun.failures] == [CORRUPT]
    assert SampleStore(store).names == good_names(synth_root)


def test_a_video_with_nobody_is_stored_with_zero_tracks(synth_root: Path, tmp_path: Path) -> None:
    name = good_names(synth_root)[0]
    report = extract_poses_batch(synth_root / "nturgb+d_rgb" / f"{name}_rgb.avi", tmp_path / "store", workers=1,
                                 progress=False, estimator_factory=NobodyEstimator)
    assert (report.num_extracted, report.num_without_person, report.num_with_world) == (1, 1, 0)
    samples = SampleStore(tmp_path / "store")
    pose = samples.load_pose2d(name)
    assert pose.shape[0] == 0 and pose.shape[1] >= 12 and pose.shape[2:] == (17, 3)
    assert samples.modalities(name) == {"pose2d"}


def test_poses_join_a_prepared_sample_without_breaking_it(synth_root: Path, tmp_path: Path) -> None:
    store = tmp_path / "prepared"
    config = PrepareConfig(modalities=("skeleton",))
    prepare_store(synth_root, store, config, workers=1, progress=False)
    name = good_names(synth_root)[0]
    skeleton = SampleStore(store).load_skeleton(name)
    report = extract_poses_batch(synth_root / "nturgb+d_rgb" / f"{name}_rgb.avi", store, workers=1, progress=False,
                                 layout="ntu25", estimator_factory=functools.partial(stand_in_factory, 0.0))
    assert report.num_extracted == 1
    samples = SampleStore(store)
    assert samples.modalities(name) == {"skeleton", "pose2d_sensor", "pose2d", "pose3d_world"}
    np.testing.assert_array_equal(samples.load_skeleton(name), skeleton)
    pose = samples.load_pose2d(name)
    assert pose.ndim == 4 and pose.shape[0] == 1 and pose.shape[2:] == (25, 3)
    assert samples.meta(name)["modalities"]["pose2d"]["layout"] == "ntu25"
    assert samples.meta(name)["denoise"]  # the prepared meta is kept, only extended
    # The store is still the prepared store: prepare resumes it with the same config.
    again = prepare_store(synth_root, store, config, workers=1, progress=False)
    assert again.num_skipped == again.num_selected and "pose2d" in SampleStore(store).modalities(name)


def test_adding_poses_without_world_drops_a_stale_world_entry(tmp_path: Path) -> None:
    store = tmp_path / "store"
    (store / "samples").mkdir(parents=True)  # an empty samples/ (a kill before the manifest) is accepted
    ensure_pose_store(store, config={}, source_root="test")
    pose = np.ones((2, 5, 17, 3), np.float32)
    add_pose_to_sample(store, "clip", pose, layout="coco17", fps=25.0, frame_size_hw=(90, 160), backend="x",
                       world=pose * 2)
    assert SampleStore(store).modalities("clip") == {"pose2d", "pose3d_world"}
    add_pose_to_sample(store, "clip", pose * 3, layout="coco17", fps=25.0, frame_size_hw=(90, 160), backend="x")
    samples = SampleStore(store)
    assert samples.modalities("clip") == {"pose2d"} and samples.meta("clip")["label"] is None
    np.testing.assert_array_equal(samples.load_pose2d("clip"), pose * 3)
    assert not (sample_dir(store, "clip") / "pose3d_world.npy").exists()
    with pytest.raises(ValueError, match=r"\[M, T, K, 3\]"):
        add_pose_to_sample(store, "bad", np.ones((5, 17, 3), np.float32), layout="coco17", fps=25.0,
                           frame_size_hw=(90, 160), backend="x")


def test_inputs_name_videos_and_take_no_label_from_other_names(tmp_path: Path) -> None:
    assert sample_name_for_video("/d/S001C002P003R002A058_rgb.avi") == ("S001C002P003R002A058", 57)
    assert sample_name_for_video("/d/A058_fight.mp4") == ("A058_fight", None)
    listing = tmp_path / "videos.txt"
    listing.write_text("# two videos\nsub/A058_fight.mp4\n\n/abs/S001C001P001R001A001_rgb.avi  # NTU\n")
    jobs = collect_video_jobs([listing])
    assert [(j.name, j.label) for j in jobs] == [("A058_fight", None), ("S001C001P001R001A001", 0)]
    assert jobs[0].video == str(tmp_path / "sub" / "A058_fight.mp4")
    with pytest.raises(StoreError, match="maps to sample"):
        collect_video_jobs([tmp_path / "a" / "clip.mp4", tmp_path / "b" / "clip.mp4"])


@pytest.mark.skipif(sys.platform == "win32", reason="kill -9 and sessions are POSIX")
def test_resumes_after_kill_9(synth_root: Path, tmp_path: Path) -> None:
    """kill -9 of the command (workers=2) after its first sample: its workers exit, nothing half
    written is visible, and a rerun finishes exactly the rest, equal to an uninterrupted run."""
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    names = good_names(synth_root)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                        os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, __file__, str(synth_root), str(killed)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 25
        while time.monotonic() < deadline and proc.poll() is None:
            if any(_has_pose(killed, n) for n in names):
                break
            time.sleep(0.01)
        assert proc.poll() is None, "the extraction ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)  # the main process only, like kill -9 PID
        proc.wait(timeout=10)
        deadline = time.monotonic() + 5  # the bound: no process left 5 s after kill -9
        while _session_processes(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _session_processes(proc.pid), "worker processes outlived the killed command"
    finally:
        if _session_processes(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    done = [n for n in names if _has_pose(killed, n)]
    assert 1 <= len(done) < len(names)
    resumed = extract_poses_batch(synth_root, killed, workers=1, progress=False,
                                  estimator_factory=functools.partial(stand_in_factory, 0.0))
    assert resumed.num_skipped == len(done) and resumed.num_extracted == len(names) - len(done)
    extract_poses_batch(synth_root, clean, workers=1, progress=False,
                        estimator_factory=functools.partial(stand_in_factory, 0.0))
    a, b = SampleStore(killed), SampleStore(clean)
    assert a.names == b.names == names
    assert not [p for p in (killed / "samples").iterdir() if p.name.startswith(".")]  # staging cleaned
    for name in names:
        np.testing.assert_array_equal(a.load_pose2d(name), b.load_pose2d(name))
        assert a.meta(name)["modalities"] == b.meta(name)["modalities"]


def _session_processes(session: int) -> list[int]:
    """Live (non-zombie) processes whose session id is ``session`` (Linux /proc; [] elsewhere)."""
    found: list[int] = []
    if not Path("/proc/self/stat").is_file():
        return found
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[3]) == session:
            found.append(int(entry.name))
    return found


def _has_pose(store: Path, name: str) -> bool:
    try:
        return "pose2d" in json.loads((sample_dir(store, name) / "meta.json").read_text())["modalities"]
    except (OSError, ValueError):
        return False


@pytest.mark.needs_blazepose
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_default_backend_through_the_command(synth_root: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("mediapipe", reason="the default backend needs mediapipe")
    name = good_names(synth_root)[0]
    video = synth_root / "nturgb+d_rgb" / f"{name}_rgb.avi"
    argv = [str(video), "--out", str(tmp_path / "store"), "--workers", "1", "--layout", "coco17",
            "--max-persons", "2", "--quiet", "--json", "--strict"]
    assert extract_poses_main(argv) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (report["num_extracted"], report["backend"], report["failures"]) == (1, "default", [])
    samples = SampleStore(tmp_path / "store")
    pose = samples.load_pose2d(name)
    with open_video(video) as reader:
        num_frames = reader.num_frames
    assert pose.shape[1:] == (num_frames, 17, 3) and pose.shape[0] <= 2
    entry = samples.meta(name)["modalities"]["pose2d"]
    assert (entry["backend"], entry["layout"], entry["frame_size_hw"]) == ("default", "coco17", [270, 480])


if __name__ == "__main__":  # the kill -9 test's child: a slow stand-in extraction, 2 workers
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_extract_poses import stand_in_factory as _factory  # importable by name (not __main__)

    extract_poses_batch(sys.argv[1], sys.argv[2], workers=2, progress=False,
                        estimator_factory=functools.partial(_factory, 0.08))


def test_a_run_whose_backend_failed_does_not_block_the_next(synth_root: Path, tmp_path: Path) -> None:
    """mmpose missing: the first run fails with the install hint; a run with another backend then
    goes on (the first extracted nothing), while settings that did extract poses still bind."""
    from actionfusion.errors import MissingDependencyError

    out = tmp_path / "store"
    if importlib.util.find_spec("mmpose") is not None:
        pytest.skip("mmpose is installed: its backend would load")
    with pytest.raises(MissingDependencyError, match="pip install"):
        extract_poses_batch(synth_root, out, backend="mmpose", workers=0, progress=False, limit=1)
    report = extract_poses_batch(synth_root, out, workers=0, progress=False, limit=1,
                                 estimator_factory=functools.partial(stand_in_factory, 0.0))
    assert report.num_extracted == 1
    with pytest.raises(StoreError, match="--overwrite"):
        extract_poses_batch(synth_root, out, backend="mmpose", workers=0, progress=False, limit=1)
