"""The open3d sampling backend, the prepare default sampler, and resuming stores prepared before
``point_voxel_size`` existed."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from actionfusion.datasets.store.manifest import build_manifest, write_manifest
from actionfusion.datasets.store.prepare import _open_store
from actionfusion.datasets.store.prepare_config import KEYS_ADDED_LATER, PrepareConfig, complete_stored_config
from actionfusion.errors import MissingDependencyError, StoreError
from actionfusion.modalities.pointcloud.open3d_backend import open3d_farthest_point_sample
from actionfusion.modalities.pointcloud.sampling import farthest_point_sample, sample_points


def _cloud(points: int = 600) -> np.ndarray:
    return np.random.default_rng(7).uniform(-1, 1, (points, 3)).astype(np.float32)


def test_open3d_backend_gives_n_distinct_points_of_the_cloud_picked_by_exact_fps() -> None:
    pytest.importorskip("open3d", reason="open3d is not installed: the open3d_fps backend needs it")
    cloud = _cloud()
    sampled = sample_points(cloud, 64, "open3d_fps", rng=0)
    assert sampled.shape == (64, 3) and sampled.dtype == np.float32
    rows = [np.flatnonzero((cloud == p).all(axis=1)) for p in sampled]
    assert all(len(r) == 1 for r in rows) and len({int(r[0]) for r in rows}) == 64  # input points, no repeat
    # exact FPS: the same picks as our numpy FPS from the same start (open3d returns them in input order)
    expected = cloud[np.sort(farthest_point_sample(cloud.astype(np.float64), 64, 11))]
    np.testing.assert_array_equal(open3d_farthest_point_sample(cloud, 64, 11), expected)
    # fewer points than n: padded by repetition, as every method
    assert np.array_equal(sample_points(cloud[:5], 8, "open3d_fps"), cloud[[0, 1, 2, 3, 4, 0, 1, 2]])


def test_open3d_backend_missing_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "open3d", None)  # import open3d now raises ImportError
    with pytest.raises(MissingDependencyError, match="pip install open3d"):
        sample_points(_cloud(), 16, "open3d_fps")


def test_prepare_default_sampler_is_the_measured_choice() -> None:
    config = PrepareConfig()
    assert (config.point_sampling, config.point_voxel_size, config.num_points) == ("open3d_fps", 0.05, 256)
    sampled = sample_points(_cloud(), config.num_points, config.point_sampling, voxel_size=config.point_voxel_size)
    assert sampled.shape == (256, 3)
    with pytest.raises(ValueError, match="point_sampling"):
        PrepareConfig(point_sampling="poisson")
    with pytest.raises(ValueError, match="point_voxel_size"):
        PrepareConfig(point_voxel_size=0.0)


def _old_store(tmp_path: Path) -> Path:
    """A store whose manifest config predates ``point_voxel_size`` (and the open3d_fps default)."""
    old = PrepareConfig(point_sampling="voxel_fps").to_dict()
    for key in KEYS_ADDED_LATER:
        del old[key]
    write_manifest(tmp_path, build_manifest(config=old, source_root="/r", created="t0", samples={}))
    return tmp_path


def test_store_prepared_before_a_key_existed_resumes_with_its_historical_value(tmp_path: Path) -> None:
    store = _old_store(tmp_path)
    assert KEYS_ADDED_LATER == {"point_voxel_size": 0.02} != {"point_voxel_size": PrepareConfig().point_voxel_size}
    created, _ = _open_store(store, Path("/r"), PrepareConfig(point_sampling="voxel_fps", point_voxel_size=0.02),
                             overwrite=False)
    assert created == "t0"  # resumed, not refused
    with pytest.raises(StoreError, match=r"\(point_voxel_size: stored 0.02, requested 0.05\)"):
        _open_store(store, Path("/r"), PrepareConfig(point_sampling="voxel_fps", point_voxel_size=0.05), overwrite=False)
    with pytest.raises(StoreError, match="point_sampling: stored 'voxel_fps', requested 'open3d_fps'"):
        _open_store(store, Path("/r"), PrepareConfig(), overwrite=False)  # the new default samples differently
    # readers see the historical value too; a stored value is never overridden
    old = complete_stored_config({})
    assert old["point_voxel_size"] == 0.02
    assert PrepareConfig.from_dict({k: v for k, v in PrepareConfig().to_dict().items() if k != "point_voxel_size"}
                                   ).point_voxel_size == 0.02
    assert complete_stored_config({"point_voxel_size": 0.05})["point_voxel_size"] == 0.05
