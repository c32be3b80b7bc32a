"""The sensor's 2D keypoints follow the denoiser's actor slots and kept frames exactly."""

from pathlib import Path

import numpy as np
import pytest

from actionfusion.datasets.ntu.actor_fields import actor_joint_fields, sensor_keypoints_2d
from actionfusion.datasets.ntu.denoise import denoise_skeleton
from actionfusion.datasets.ntu.skeleton_file import read_skeleton_file

FIXTURES = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures" / "ntu"


def _skeleton_files() -> list[Path]:
    if not FIXTURES.is_dir():
        pytest.skip(f"NTU fixtures not found at {FIXTURES}: they live in ../shared beside the repo")
    files = sorted(FIXTURES.rglob("*.skeleton"))
    if not files:
        pytest.skip(f"no .skeleton files under {FIXTURES}")
    return files


def test_replaying_the_slots_on_xyz_reproduces_the_denoised_skeleton() -> None:
    for path in _skeleton_files():
        sk = read_skeleton_file(path)
        x, report = denoise_skeleton(sk, max_actors=2)
        replay = actor_joint_fields(sk, report, (0, 1, 2))
        assert replay.shape == x.shape, path.name
        np.testing.assert_array_equal(np.nan_to_num(replay, nan=0.0), x, err_msg=path.name)


def test_sensor_keypoints_score_marks_the_present_actor_frames() -> None:
    for path in _skeleton_files():
        sk = read_skeleton_file(path)
        x, report = denoise_skeleton(sk, max_actors=2)
        keypoints = sensor_keypoints_2d(sk, report)
        present = np.any(x != 0, axis=(2, 3))  # [M, T']
        np.testing.assert_array_equal(keypoints[..., 2].max(axis=2) > 0, present, err_msg=path.name)
        xy = keypoints[..., :2][present]
        assert np.all((xy[..., 0] > 0) & (xy[..., 0] < 1920) & (xy[..., 1] > 0) & (xy[..., 1] < 1080)), path.name
        assert np.all(keypoints[..., :2][~present] == 0)
