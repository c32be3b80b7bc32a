"""``extract-poses``'s mmpose options: passed to the backend as its keyword arguments, refused in one
line (exit 2) with another backend, without --pose-config, or with half a detector."""

from __future__ import annotations

import importlib.util

import pytest

from actionfusion.pipeline import extract_poses
from actionfusion.pipeline.cli import main

MMPOSE = importlib.util.find_spec("mmpose") is not None


def test_mmpose_options_reach_the_backend(monkeypatch, tmp_path) -> None:
    seen = {}

    def fake_batch(inputs, out, **kwargs):
        seen.update(kwargs)
        raise SystemExit(0)  # stop before any work: only the arguments matter here

    monkeypatch.setattr(extract_poses, "extract_poses_batch", fake_batch)
    with pytest.raises(SystemExit):
        main(["extract-poses", "v.mp4", "--out", str(tmp_path / "s"), "--backend", "mmpose",
              "--pose-config", "rtmpose.py", "--pose-checkpoint", "rtmpose.pth",
              "--det-config", "rtmdet.py", "--det-checkpoint", "rtmdet.pth"])
    assert seen["backend"] == "mmpose"
    assert seen["estimator_kwargs"] == {"pose_config": "rtmpose.py", "pose_checkpoint": "rtmpose.pth",
                                        "det_config": "rtmdet.py", "det_checkpoint": "rtmdet.pth"}
    seen.clear()
    with pytest.raises(SystemExit):
        main(["extract-poses", "v.mp4", "--out", str(tmp_path / "s")])
    assert seen["backend"] == "default" and seen["estimator_kwargs"] == {}


@pytest.mark.parametrize("argv, message", [
    (["--pose-config", "a.py"], "only for --backend mmpose"),
    (["--backend", "mmpose"], "needs --pose-config" if MMPOSE else "needs mmpose"),
    (["--backend", "mmpose", "--pose-config", "a.py", "--det-config", "d.py"], "go together"),
])
def test_misused_mmpose_options_are_one_line(argv, message, tmp_path, capsys) -> None:
    assert main(["extract-poses", "v.mp4", "--out", str(tmp_path / "s"), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
