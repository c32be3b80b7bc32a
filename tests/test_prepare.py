"""prepare_store: modalities, failures, kill -9 and resume, config checks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from actionfusion.errors import StoreError
from actionfusion.datasets.ntu.depth import read_depth_png
from actionfusion.datasets.store.manifest import read_manifest
from actionfusion.datasets.store.prepare import PrepareConfig, prepare_store
from actionfusion.datasets.store.prepare_sample import sample_seed
from actionfusion.datasets.store.sample_store import SampleStore

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / ".." / "shared" / "fixtures"
NTU = FIXTURES / "ntu"
SKELETON = NTU / "S001C001P001R001A011.skeleton"  # same setup, camera and performer as the video and depth
VIDEO = NTU / "S001C001P001R001A001_rgb.avi"
DEPTH = NTU / "nturgb+d_depth_masked" / "S001C001P001R001A058"


def _need_fixtures() -> None:
    if not (SKELETON.is_file() and VIDEO.is_file() and DEPTH.is_dir()):
        pytest.skip(f"NTU fixtures not found at {NTU}: they live in ../shared beside the repo")


@pytest.fixture(scope="module")
def short_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 24 frames of the real fixture video, re-encoded at 640x360 (H.264)."""
    _need_fixtures()
    import av

    out = tmp_path_factory.mktemp("video") / "short_rgb.avi"
    with av.open(str(VIDEO)) as src, av.open(str(out), "w") as dst:
        stream = dst.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        for i, frame in enumerate(src.decode(video=0)):
            if i == 24:
                break
            small = frame.reformat(width=640, height=360, format="yuv420p")
            small.pts = None
            for packet in stream.encode(small):
                dst.mux(packet)
        for packet in stream.encode():
            dst.mux(packet)
    return out


def _add_sample(root: Path, name: str, *, skeleton: Path | str | None = None, video: Path | bytes | None = None,
                depth_frames: int = 0) -> None:
    """Put one sample into an NTU-layout root; ``str``/``bytes`` sources are written as file content."""
    if skeleton is not None:
        path = root / "nturgb+d_skeletons" / f"{name}.skeleton"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(skeleton) if isinstance(skeleton, str) else path.symlink_to(skeleton)
    if video is not None:
        path = root / "nturgb+d_rgb" / f"{name}_rgb.avi"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(video) if isinstance(video, bytes) else path.symlink_to(video)
    if depth_frames:
        directory = root / "nturgb+d_depth_masked" / name
        directory.mkdir(parents=True)
        for i in range(1, depth_frames + 1):
            (directory / f"MDepth-{i:08d}.png").symlink_to(DEPTH / f"MDepth-{i:08d}.png")


def _full_root(root: Path, video: Path, n: int, depth_frames: int = 12) -> list[str]:
    names = [f"S001C001P001R001A{a:03d}" for a in range(1, n + 1)]
    for name in names:
        _add_sample(root, name, skeleton=SKELETON, video=video, depth_frames=depth_frames)
    return names


def _store_files(store: Path) -> dict[str, bytes]:
    """Relative path -> content of every file under samples/ plus failures.json."""
    files = {p.relative_to(store).as_posix(): p.read_bytes() for p in (store / "samples").rglob("*") if p.is_file()}
    files["failures.json"] = (store / "failures.json").read_bytes()
    return files


def _assert_only_complete_samples(store: Path) -> list[str]:
    """Every visible sample directory has its meta.json and every file it names loads."""
    samples = SampleStore(store)
    visible = sorted(p.name for p in (store / "samples").iterdir() if not p.name.startswith("."))
    assert visible == samples.names
    for name in visible:
        modalities = samples.modalities(name)
        assert modalities == {"skeleton", "pose2d_sensor", "rgb", "depth", "points"}, name
        assert samples.load_rgb(name).shape[0] == samples.meta(name)["modalities"]["rgb"]["num_frames"]
        assert samples.load_depth(name).shape[0] == samples.load_points(name).shape[0]
        assert samples.load_skeleton(name).shape[1] > 0
        stray = [p.name for p in (store / "samples" / name).iterdir() if p.name.startswith(".")]
        assert stray == [], stray
    return visible


def test_prepare_writes_every_modality_with_shapes_and_dtypes(tmp_path: Path, short_video: Path) -> None:
    root = tmp_path / "root"
    names = _full_root(root, short_video, 2)
    report = prepare_store(root, tmp_path / "store", workers=0, progress=False)
    assert (report.num_selected, report.num_done, report.num_failed) == (2, 2, 0) and report.failures == []

    store = SampleStore(tmp_path / "store")
    config = PrepareConfig()
    name = names[1]
    skeleton = store.load_skeleton(name)
    assert skeleton.dtype == np.float32 and skeleton.shape[0] == 2 and skeleton.shape[2:] == (25, 3)
    rgb = store.load_rgb(name)
    assert rgb.dtype == np.uint8 and rgb.shape == (24, config.rgb_size, config.rgb_size, 3)
    assert rgb.std() > 10  # real image content, not a blank crop
    depth = store.load_depth(name, frames=[0, 11])
    assert depth.dtype == np.uint16 and depth.shape == (2, config.depth_size, config.depth_size)
    assert (depth > 0).mean() > 0.05 and depth.max() < 8000  # the performer, in millimetres
    points = store.load_points(name)
    assert points.dtype == np.float32 and points.shape == (12, config.num_points, 3)
    assert 0.5 < np.median(points[..., 2]) < 6.0  # metres in front of the camera

    meta = store.meta(name)
    assert meta["label"] == 1 and meta["status"] == "ok"
    rgb_meta = meta["modalities"]["rgb"]
    x0, y0, x1, y1 = rgb_meta["box"]
    assert rgb_meta["crop_source"] == "skeleton" and x1 - x0 == y1 - y0 and 0 <= x0 and x1 <= 640 and y1 <= 360
    assert meta["modalities"]["depth"]["crop_source"] == "skeleton"
    assert meta["modalities"]["depth"]["source_frames"] == list(range(12))
    assert len(meta["modalities"]["skeleton"]["source_frames"]) == skeleton.shape[1]

    # float16 storage of the points: recompute frame 0 in float32 with the sample's seed
    from actionfusion.modalities.pointcloud.backproject import depth_to_points
    from actionfusion.modalities.pointcloud.sampling import sample_points

    rng = np.random.default_rng(sample_seed(name, config.seed))
    exact = sample_points(depth_to_points(read_depth_png(DEPTH / "MDepth-00000001.png"), config.camera),
                          config.num_points, method=config.point_sampling, voxel_size=config.point_voxel_size, rng=rng)
    assert np.abs(points[0] - exact).max() <= 2e-3  # float16 keeps mm-level precision at NTU depths

    manifest = json.loads((tmp_path / "store" / "manifest.json").read_text())
    assert manifest["samples"] == {n: {"status": "ok"} for n in names}
    assert manifest["size_estimate"]["estimate_full_ntu60_bytes"] == report.estimate_full_ntu60_bytes > 0
    assert set(report.bytes_per_frame) == {"skeleton", "rgb", "depth", "points"}
    assert report.bytes_per_frame["points"] == pytest.approx(config.num_points * 3 * 2, rel=0.1)


def test_prepare_synthetic_root(tmp_path: Path) -> None:
    from actionfusion.datasets.synthetic.generate import SynthConfig, generate_synthetic_ntu

    root = tmp_path / "synthetic"
    generate_synthetic_ntu(root, SynthConfig(seed=0, scale="tiny", actions=(23, 58), performers=(1, 3), cameras=(1,)),
                           workers=0, progress=False)
    config = PrepareConfig(rgb_size=96, depth_size=40, num_points=64)
    report = prepare_store(root, tmp_path / "store", config, workers=0, progress=False)
    assert (report.num_selected, report.num_done, report.failures) == (4, 4, [])

    store = SampleStore(tmp_path / "store")
    assert [store.label(n) for n in store.names] == [22, 57, 22, 57]
    for name in store.names:
        assert store.modalities(name) == {"skeleton", "pose2d_sensor", "rgb", "depth", "points"}
        meta = store.meta(name)["modalities"]
        frames = meta["rgb"]["num_frames"]
        assert store.load_rgb(name).shape == (frames, 96, 96, 3)
        assert store.load_depth(name).shape == (meta["depth"]["num_frames"], 40, 40)
        assert store.load_points(name, frames=[0, -1]).shape == (2, 64, 3)
        skeleton = store.load_skeleton(name)
        assert skeleton.shape[0] == 2 and skeleton.shape[1] == meta["skeleton"]["num_frames"] > 0
        # the second actor slot holds data exactly when the denoiser put a body there, and
        # one-person actions never get one (short two-person clips may lose a body to the
        # lineage's <= 11-frame filter)
        second = store.meta(name)["denoise"]["actor_bodies"][1]
        assert (np.abs(skeleton[1]).sum() > 0) == bool(second)
        assert store.label(name) == 57 or not second
        assert meta["rgb"]["crop_source"] == meta["depth"]["crop_source"] == "skeleton"
        # the depth box holds the performer: nearly every non-zero source pixel lies inside it
        source = read_depth_png(sorted((root / store.meta(name)["sources"]["depth_masked"]).iterdir())[0])
        x0, y0, x1, y1 = meta["depth"]["box"]
        assert np.count_nonzero(source[y0:y1, x0:x1]) >= 0.95 * np.count_nonzero(source) > 0
        assert np.count_nonzero(store.load_depth(name, frames=[0])) > 0


def test_bad_samples_are_reported_and_the_rest_finishes(tmp_path: Path, short_video: Path) -> None:
    root = tmp_path / "root"
    good = "S001C001P001R001A001"
    bad_skeleton = "S001C001P001R001A002"
    garbage_video = "S001C001P001R001A003"
    truncated_video = "S001C001P001R001A004"
    bad_depth = "S001C001P001R001A005"
    _add_sample(root, good, skeleton=SKELETON, video=short_video, depth_frames=4)
    _add_sample(root, bad_skeleton, skeleton="3\n1\nthis is not a skeleton\n", depth_frames=4)
    _add_sample(root, garbage_video, video=b"\x00garbage, not an AVI file" * 40)
    video_bytes = short_video.read_bytes()
    _add_sample(root, truncated_video, skeleton=SKELETON, video=video_bytes[: len(video_bytes) // 2])
    _add_sample(root, bad_depth, skeleton=SKELETON, depth_frames=3)
    corrupt = root / "nturgb+d_depth_masked" / bad_depth / "MDepth-00000002.png"
    corrupt.unlink()
    corrupt.write_bytes(DEPTH.joinpath("MDepth-00000002.png").read_bytes()[:300])  # cut short

    report = prepare_store(root, tmp_path / "store", workers=0, progress=False)
    stages = {(name, stage) for name, stage, _ in report.failures}
    assert stages == {(bad_skeleton, "skeleton"), (garbage_video, "rgb"), (truncated_video, "rgb"),
                      (bad_depth, "depth"), (bad_depth, "points")}
    assert (report.num_done, report.num_partial, report.num_failed) == (4, 3, 1)
    errors = {name: error for name, _, error in report.failures}
    assert errors[bad_skeleton].startswith("SkeletonFormatError")
    assert errors[garbage_video].startswith("VideoDecodeError")

    assert errors[bad_depth].startswith("DepthFormatError") and "MDepth-00000002.png" in errors[bad_depth]

    store = SampleStore(tmp_path / "store")
    assert store.names == [good, bad_skeleton, truncated_video, bad_depth]  # the garbage video had nothing else
    assert store.modalities(good) == {"skeleton", "pose2d_sensor", "rgb", "depth", "points"}
    assert store.modalities(bad_skeleton) == {"depth", "points"}
    assert store.meta(bad_skeleton)["modalities"]["depth"]["crop_source"] == "masked_depth"
    assert store.modalities(truncated_video) == {"skeleton", "pose2d_sensor"}
    assert sorted(p.name for p in (tmp_path / "store" / "samples" / truncated_video).iterdir()) == [
        "meta.json", "pose2d_sensor.npy", "skeleton.npy"]  # no half-written rgb.pack or temporary file
    assert sorted(p.name for p in (tmp_path / "store" / "samples" / bad_depth).iterdir()) == [
        "meta.json", "pose2d_sensor.npy", "skeleton.npy"]  # the depth pack begun before the bad frame is gone

    failures = json.loads((tmp_path / "store" / "failures.json").read_text())
    assert {(f["sample"], f["stage"]) for f in failures} == stages
    manifest = json.loads((tmp_path / "store" / "manifest.json").read_text())
    assert manifest["samples"][garbage_video]["status"] == "failed"
    assert "VideoDecodeError" in manifest["samples"][garbage_video]["reason"]
    assert manifest["samples"][bad_skeleton]["status"] == "partial"

    # a rerun keeps the published samples and retries only the failed one
    again = prepare_store(root, tmp_path / "store", workers=0, progress=False)
    assert (again.num_skipped, again.num_failed, again.num_done) == (4, 1, 0)
    assert {(n, s) for n, s, _ in again.failures} == stages


_KILLED_RUN = """
import sys
from actionfusion.datasets.store.prepare import prepare_store
prepare_store(sys.argv[1], sys.argv[2], workers=0, progress=False)
"""


def test_sigkill_mid_run_then_resume_equals_uninterrupted_run(tmp_path: Path, short_video: Path) -> None:
    root = tmp_path / "root"
    names = _full_root(root, short_video, 6, depth_frames=8)
    # the reference runs in worker processes, the killed and resumed runs inline: the same bytes
    reference = prepare_store(root, tmp_path / "reference", workers=2, progress=False)
    assert reference.num_done == 6 and reference.failures == []

    store = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_RUN, str(root), str(store)], env=env)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            samples = store / "samples"
            if samples.is_dir() and any(not p.name.startswith(".") for p in samples.iterdir()):
                break
            time.sleep(0.005)
        assert proc.poll() is None, "the run finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    read_manifest(store)  # always a complete JSON file, even when killed
    published = _assert_only_complete_samples(store)
    assert 1 <= len(published) < len(names)

    resumed = prepare_store(root, store, workers=0, progress=False)
    assert resumed.num_skipped == len(published) and resumed.num_done == len(names) - len(published)
    assert _assert_only_complete_samples(store) == names
    assert not [p for p in (store / "samples").iterdir() if p.name.startswith(".")]  # staging cleaned up
    assert _store_files(store) == _store_files(tmp_path / "reference")


def test_config_mismatch_refuses_to_resume(tmp_path: Path) -> None:
    _need_fixtures()
    store = tmp_path / "store"
    prepare_store(NTU, store, PrepareConfig(modalities=("skeleton",)), workers=0, progress=False, limit=1)
    with pytest.raises(StoreError, match="max_actors.*refusing to resume"):
        prepare_store(NTU, store, PrepareConfig(modalities=("skeleton",), max_actors=1), workers=0, progress=False)
    assert SampleStore(store).config["max_actors"] == 2  # untouched
    report = prepare_store(NTU, store, PrepareConfig(modalities=("skeleton",), max_actors=1), workers=0,
                           progress=False, overwrite=True)
    assert report.num_skipped == 0 and report.num_done == 3
    assert all(SampleStore(store).load_skeleton(n).shape[0] == 1 for n in SampleStore(store).names)

    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("not a store")
    with pytest.raises(StoreError, match="not a sample store"):
        prepare_store(NTU, tmp_path / "other", workers=0, progress=False)


def test_selection_limit_and_missing_skeleton_exclusion(tmp_path: Path) -> None:
    _need_fixtures()
    full = prepare_store(NTU, tmp_path / "a", PrepareConfig(modalities=("skeleton", "depth")), workers=0,
                         progress=False)
    # the video-only fixture sample has no source for skeleton or depth
    assert (full.num_selected, full.num_excluded) == (4, 1)
    only_skeletons = prepare_store(NTU, tmp_path / "b", PrepareConfig(exclude_missing_skeletons=True), workers=0,
                                   progress=False, limit=2)
    assert only_skeletons.num_selected == 2 and only_skeletons.num_excluded == 2
    assert SampleStore(tmp_path / "b").names == ["S001C001P001R001A011", "S001C003P008R002A058"]

    # a staging leftover of a killed run is removed when the next run starts
    stale = tmp_path / "b" / "samples" / ".tmp-S002C001P003R001A003.x1y2"
    stale.mkdir()
    (stale / "skeleton.npy").write_bytes(b"half a file")
    resumed = prepare_store(NTU, tmp_path / "b", PrepareConfig(exclude_missing_skeletons=True), workers=0,
                            progress=False)
    assert (resumed.num_skipped, resumed.num_done) == (2, 1) and not stale.exists()


_POOLED_RUN = """
import sys
from actionfusion.datasets.store.prepare import prepare_store
prepare_store(sys.argv[1], sys.argv[2], workers=2, progress=False)
"""


def test_kill_9_leaves_no_worker_process_behind(tmp_path: Path, short_video: Path) -> None:
    """The forkserver, the pool's workers and the resource tracker are gone 5 s after kill -9."""
    psutil = pytest.importorskip("psutil")
    root = tmp_path / "root"
    _full_root(root, short_video, 8, depth_frames=8)
    store = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-c", _POOLED_RUN, str(root), str(store)], env=env)
    main = psutil.Process(proc.pid)
    deadline = time.monotonic() + 60
    children: list = []
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            children = main.children(recursive=True)
            if len(children) >= 3:  # resource tracker + forkserver + at least one worker
                break
            time.sleep(0.01)
        assert proc.poll() is None and len(children) >= 3, "the pool did not start before the run ended"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    _, alive = psutil.wait_procs(children, timeout=5)
    assert not alive, [(p.pid, " ".join(p.cmdline())[:120]) for p in alive if p.is_running()]
