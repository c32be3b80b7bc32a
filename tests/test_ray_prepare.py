"""prepare and extract-poses on a Ray cluster of two nodes (a head and a worker raylet, on loopback):
the same bytes as the local process pool, bad samples recorded, resume after the driver's kill -9.

The cluster is ``ray.cluster_utils.Cluster``: two raylets (two Ray nodes, one CPU each) started
by this test, with every address on 127.0.0.1. ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` keeps Ray
from replacing 127.0.0.1 by the machine's network address (its "not a cluster" mode picks the
loopback address); the test's processes inherit it.
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'actionfusion[scale]' (or pip install ray)")

from actionfusion.datasets.store.layout import samples_dir  # noqa: E402
from actionfusion.datasets.store.prepare import PrepareConfig, prepare_store  # noqa: E402
from actionfusion.datasets.synthetic.generate import SynthConfig, generate_synthetic_ntu  # noqa: E402
from actionfusion.pipeline.extract_poses import extract_poses_batch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
CONFIG = PrepareConfig(rgb_size=96, depth_size=40, num_points=64)
BAD = "S001C003P001R001A023"  # an unreadable skeleton and a video of random bytes: nothing can be written
HANGING = "S001C002P003R001A058"  # the resume test's sample whose 2nd depth frame blocks (a FIFO)
TIMES = ("created", "updated")


@pytest.fixture(scope="module")
def raw_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 synthetic samples (skeleton, RGB, masked depth; one- and two-person) and one bad sample."""
    root = tmp_path_factory.mktemp("raw")
    generate_synthetic_ntu(root, SynthConfig(seed=0, scale="tiny", actions=(23, 58), performers=(1, 3), cameras=(1, 2)),
                           workers=1, progress=False)
    (root / "nturgb+d_skeletons" / f"{BAD}.skeleton").write_text("3\n1\nthis is not a skeleton\n")
    (root / "nturgb+d_rgb" / f"{BAD}_rgb.avi").write_bytes(b"\x00not an AVI file" * 64)
    return root


@pytest.fixture(scope="module")
def local_store(raw_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference: the local process pool's store (2 workers)."""
    out = tmp_path_factory.mktemp("local") / "store"
    report = prepare_store(raw_root, out, CONFIG, workers=2, progress=False)
    assert (report.num_done, report.num_failed) == (8, 1)
    return out


def _loopback_env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(TESTS), str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1",
            "PYTHONPATH": path}


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A head and a worker node (one CPU each) on 127.0.0.1; yields the head's address."""
    from ray import cluster_utils
    from ray._private import ray_constants

    saved = {k: os.environ.get(k) for k in _loopback_env()}
    os.environ.update(_loopback_env())  # the raylets, and so every Ray worker, inherit it
    saved_flag, ray_constants.ENABLE_RAY_CLUSTER = ray_constants.ENABLE_RAY_CLUSTER, False  # read at call time
    temp_dir = tempfile.mkdtemp(prefix="afray", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    # Cluster() writes the head's address to <default Ray temp dir>/ray_current_cluster whatever the
    # nodes' temp_dir, and does not create that folder (on a machine where Ray never ran, it is absent)
    from ray._common.utils import get_default_ray_temp_dir

    os.makedirs(get_default_ray_temp_dir(), exist_ok=True)
    node = {"num_cpus": 1, "object_store_memory": 100 * 1024**2, "node_ip_address": "127.0.0.1",
            "include_dashboard": False}
    nodes = cluster_utils.Cluster(initialize_head=True, head_node_args={**node, "temp_dir": temp_dir})
    try:
        nodes.add_node(**node)
        yield nodes.address
    finally:
        if ray.is_initialized():
            ray.shutdown()
        nodes.shutdown()
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(temp_dir, ignore_errors=True)


def _files(store: Path) -> list[str]:
    return sorted(str(p.relative_to(store)) for p in store.rglob("*") if p.is_file())


def assert_same_store(a: Path, b: Path, b_root: str = "", a_root: str = "") -> None:
    """Every file byte for byte, except the manifest's times. With roots given, ``b_root`` in the
    text of ``b``'s ``failures.json`` and manifest (error messages, the source root) reads ``a_root``."""
    assert _files(a) == _files(b)
    reports = ("manifest.json", "failures.json")
    different = [f for f in _files(a) if f not in reports and not filecmp.cmp(a / f, b / f, shallow=False)]
    assert different == []
    texts = [(a / name).read_text() for name in reports]
    texts_b = [(b / name).read_text().replace(b_root, a_root) if b_root else (b / name).read_text() for name in reports]
    assert texts[1] == texts_b[1]
    ma, mb = json.loads(texts[0]), json.loads(texts_b[0])
    for key in TIMES:
        ma.pop(key), mb.pop(key)
    assert ma == mb


def test_two_node_ray_prepare_is_byte_identical_to_the_local_pool(raw_root: Path, local_store: Path, cluster: str,
                                                                  tmp_path: Path) -> None:
    ray.init(address=cluster, logging_level="WARNING")  # the caller's connection is used as it is
    try:
        nodes = [n for n in ray.nodes() if n["Alive"]]
        assert len(nodes) == 2 and ray.cluster_resources()["CPU"] == 2
        report = prepare_store(raw_root, tmp_path / "store", CONFIG, progress=False, ray_address=cluster)
    finally:
        ray.shutdown()
    # the bad sample is recorded, and the run went on with every other one
    assert (report.num_selected, report.num_done, report.num_failed) == (9, 8, 1)
    assert {name for name, _, _ in report.failures} == {BAD}
    assert {stage for _, stage, _ in report.failures} >= {"skeleton", "rgb"}
    manifest = json.loads((tmp_path / "store" / "manifest.json").read_text())
    assert manifest["samples"][BAD]["status"] == "failed" and manifest["counts"]["ok"] == 8
    assert_same_store(local_store, tmp_path / "store")


def _blocked_tasks() -> list[int]:
    """Ray workers running a prepare task (process title ``ray::prepare_sample_on_node``) that wait
    in the open of a FIFO for a writer (kernel wait channel ``wait_for_partner``)."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            title = (proc / "cmdline").read_bytes()
            if title.startswith(b"ray::prepare_sample_on_node") and (proc / "wchan").read_text() == "wait_for_partner":
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def test_ray_run_killed_mid_way_resumes_to_the_same_store(raw_root: Path, local_store: Path, cluster: str,
                                                          tmp_path: Path) -> None:
    root, out = tmp_path / "raw", tmp_path / "store"
    shutil.copytree(raw_root, root)
    frame = root / "nturgb+d_depth_masked" / HANGING / "MDepth-00000002.png"
    frame.unlink()
    os.mkfifo(frame)  # reading it blocks: the sample stays in flight until the driver is killed
    driver = subprocess.Popen([sys.executable, "-m", "actionfusion", "prepare", str(root), "--out", str(out),
                               "--ray", cluster, "--quiet", "--rgb-size", "96", "--depth-size", "40",
                               "--num-points", "64"], cwd=ROOT, env={**os.environ, **_loopback_env()},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            published = {p.name for p in samples_dir(out).glob("S*")} if samples_dir(out).is_dir() else set()
            staged = [p.name for p in samples_dir(out).glob(".*")] if samples_dir(out).is_dir() else []
            if len(published) == 7 and _blocked_tasks() and staged:
                break
            assert driver.poll() is None, driver.communicate()[1].decode()[-3000:]
            time.sleep(0.2)
        else:
            pytest.fail(f"the Ray run did not reach 7 samples with one in flight: {sorted(published)}, staged {staged}")
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.communicate(timeout=30)
    assert HANGING not in published  # it was in flight, in its staging directory, when the driver died
    # Whether that staging directory outlives the kill depends on how Ray ends the orphaned task (a
    # signal that unwinds it runs its cleanup); the rerun below must finish with none left either way.
    deadline = time.monotonic() + 60  # Ray ends the dead driver's tasks
    while _blocked_tasks() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _blocked_tasks() == [], "Ray did not end the killed driver's task"
    frame.unlink()
    shutil.copyfile(raw_root / frame.relative_to(root), frame)

    report = prepare_store(root, out, CONFIG, progress=False, ray_address=cluster)
    assert (report.num_skipped, report.num_done, report.num_failed) == (7, 1, 1)  # the bad sample is retried
    assert not any(p.name.startswith(".") for p in samples_dir(out).iterdir())
    assert_same_store(local_store, out, str(root), str(raw_root))


def counting_factory(marker_dir: str) -> Any:
    """A stand-in pose estimator that leaves one file per build (so the test counts the builds)."""
    from test_extract_poses import StandInEstimator

    Path(marker_dir, f"{os.getpid()}-{uuid.uuid4().hex}").touch()
    return StandInEstimator()


def test_ray_pose_actors_reuse_their_model_and_match_the_local_pool(raw_root: Path, cluster: str,
                                                                   tmp_path: Path) -> None:
    import functools

    builds = tmp_path / "builds"
    builds.mkdir()
    factory = functools.partial(counting_factory, str(builds))
    local = extract_poses_batch(raw_root, tmp_path / "local", workers=2, progress=False, layout="coco17",
                                estimator_factory=factory)
    local_builds = len(list(builds.iterdir()))
    on_ray = extract_poses_batch(raw_root, tmp_path / "ray", progress=False, layout="coco17",
                                 estimator_factory=factory, ray_address=cluster)
    assert (on_ray.num_extracted, on_ray.num_failed, on_ray.workers) == (local.num_extracted, 1, 2) == (8, 1, 2)
    assert [f.sample for f in on_ray.failures] == [BAD]
    assert len(list(builds.iterdir())) - local_builds == 2  # one model per actor, reused over 9 videos
    assert _files(tmp_path / "local") == _files(tmp_path / "ray")
    for name in _files(tmp_path / "local"):
        if name != "manifest.json":
            assert filecmp.cmp(tmp_path / "local" / name, tmp_path / "ray" / name, shallow=False), name
