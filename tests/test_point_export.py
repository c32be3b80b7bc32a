"""export_points: one .ply / .pcd per stored frame, written through open3d and read back by it."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pytest

from actionfusion.errors import UnsafePathError, UsageError
from actionfusion.modalities.pointcloud.export import export_points

o3d = pytest.importorskip("open3d", reason="open3d is not installed: the .ply/.pcd export needs it")


class _Points:
    """A store reader's ``load_points`` over one in-memory sample."""

    def __init__(self, name: str, points: np.ndarray) -> None:
        self.name, self.points = name, points

    def load_points(self, name: str, frames: Optional[Sequence[int]] = None) -> np.ndarray:
        assert name == self.name
        return self.points if frames is None else self.points[list(frames)]


def _sample() -> _Points:
    points = np.random.default_rng(3).normal(0, 1, (4, 32, 3)).astype(np.float32) + np.array([0, 0, 3.5], np.float32)
    return _Points("S001C001P001R001A058", points)


@pytest.mark.parametrize("fmt", ["ply", "pcd"])
def test_export_writes_one_file_per_frame_that_open3d_reads_back(tmp_path: Path, fmt: str) -> None:
    store = _sample()
    paths = export_points(store, store.name, tmp_path / "out", fmt=fmt)
    assert [p.name for p in paths] == [f"{store.name}_{t:05d}.{fmt}" for t in range(4)]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [p.name for p in paths]  # no staging left
    for t, path in enumerate(paths):
        back = np.asarray(o3d.io.read_point_cloud(str(path)).points)
        np.testing.assert_array_equal(back, store.points[t].astype(np.float64))  # float32 -> float64 is exact


def test_export_frames_subset_negative_index_and_refusals(tmp_path: Path) -> None:
    store = _sample()
    paths = export_points(store, store.name, tmp_path, fmt="ply", frames=[2, -1])
    assert [p.name for p in paths] == [f"{store.name}_00002.ply", f"{store.name}_00003.ply"]
    np.testing.assert_array_equal(np.asarray(o3d.io.read_point_cloud(str(paths[1])).points), store.points[3])
    with pytest.raises(UsageError, match="out of range"):
        export_points(store, store.name, tmp_path, frames=[4])
    with pytest.raises(UsageError, match="format"):
        export_points(store, store.name, tmp_path, fmt="xyz")
    for bad in ("../escape", "a/b", ".hidden"):
        with pytest.raises(UnsafePathError):
            export_points(_Points(bad, store.points), bad, tmp_path / "inner")
    assert not (tmp_path / "escape_00000.ply").exists() and not (tmp_path / "inner").exists()


def test_export_points_command_on_a_prepared_store(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import json

    from actionfusion.datasets.store.prepare import PrepareConfig, prepare_store
    from actionfusion.datasets.synthetic.generate import SynthConfig, generate_synthetic_ntu
    from actionfusion.pipeline.cli import main

    generate_synthetic_ntu(tmp_path / "raw", SynthConfig(scale="tiny", actions=(23,), performers=(1,), cameras=(1,),
                                                         modalities=("skeleton", "depth_masked")),
                           workers=1, progress=False)
    prepare_store(tmp_path / "raw", tmp_path / "store", PrepareConfig(modalities=("skeleton", "points"), num_points=64),
                  workers=0, progress=False)
    name = next(p.name for p in (tmp_path / "store" / "samples").iterdir())
    assert main(["export-points", str(tmp_path / "store"), name, "--out", str(tmp_path / "ply"), "--frames", "0", "-1",
                 "--json"]) == 0
    files = json.loads(capsys.readouterr().out)["files"]
    assert len(files) == 2 and all(Path(f).parent == tmp_path / "ply" for f in files)
    assert len(np.asarray(o3d.io.read_point_cloud(files[0]).points)) == 64
    assert main(["export-points", str(tmp_path / "store"), name, "--out", str(tmp_path / "ply"), "--frames", "999"]) == 2
    assert "out of range" in capsys.readouterr().err
