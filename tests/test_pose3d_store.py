"""``pose3d`` end to end on a tiny prepared store with extracted 2D poses: both stages train,
``evaluate`` reloads the weights, the metrics skip the face joints, and no batch carries the
Kinect reference (checked per batch, by key and by content)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest
import torch

from actionfusion.datasets.store.prepare import PrepareConfig, prepare_store
from actionfusion.datasets.synthetic.generate import SynthConfig, generate_synthetic_ntu
from actionfusion.modalities.pose.estimator import PersonPose
from actionfusion.modalities.pose.unipose import train as unipose_train
from actionfusion.modalities.pose.unipose.config import UniPoseConfigError
from actionfusion.pipeline.extract_poses import extract_poses_batch
from actionfusion.pipeline.pose3d import load_pose3d_config, run_pose3d_evaluate, run_pose3d_train
from actionfusion.pipeline.pose3d_store import uncrop_depth

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "pose3d" / "synthetic_unipose_store.yaml"
SMALL = ["data.frame_stride=3", "data.max_frames_per_sample=6", "data.num_points=128", "data.crop_size=16",
         "data.clip_len=3", "point_net.sa_centroids=[32,8]", "point_net.sa_neighbors=8", "point_net.widths=[16,32,32]",
         "point_net.top_k=8", "a2j.width=8", "train.point_epochs=2", "train.lift_epochs=2", "train.threads=1",
         "data.min_score=0.0"]


class BrightBlobEstimator:
    """A stand-in 2D estimator (COCO-17): joints on a vertical line through the bright pixels' centroid,
    spread over their vertical extent; a pure function of the frame."""

    layout = "coco17"

    def reset(self) -> None:
        pass

    def estimate(self, frames: Sequence[np.ndarray]) -> list[list[PersonPose]]:
        out = []
        for frame in frames:
            gray = frame.astype(np.float32).mean(axis=2)
            ys, xs = np.nonzero(gray > gray.mean())
            cx = float(xs.mean()) if xs.size else frame.shape[1] / 2
            y0, y1 = (float(ys.min()), float(ys.max())) if ys.size else (0.0, float(frame.shape[0]))
            k = np.arange(17, dtype=np.float32)
            kp = np.stack([cx + (k % 2 - 0.5) * 6, y0 + (y1 - y0) * k / 17, np.full(17, 0.9)], 1).astype(np.float32)
            out.append([PersonPose(kp, (cx - 5, y0, cx + 5, y1), None)])
        return out


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny synthetic root (one action, a train and a test performer) prepared, with extracted poses."""
    tmp = tmp_path_factory.mktemp("pose3d")
    root, store = tmp / "root", tmp / "store"
    generate_synthetic_ntu(root, SynthConfig(scale="tiny", actions=(8,), performers=(1, 3), cameras=(1,),
                                             num_frames=(20, 20)), workers=1, progress=False)
    prepare_store(root, store, PrepareConfig(modalities=("skeleton", "depth", "points"), depth_size=64,
                                             num_points=128), workers=1, progress=False)
    extract_poses_batch(root, store, workers=0, progress=False, layout="coco17", max_persons=1,
                        estimator_factory=BrightBlobEstimator)
    return root, store


def test_uncrop_depth_pastes_the_crop_back_at_its_box() -> None:
    crop = np.arange(16, dtype=np.uint16).reshape(4, 4) + 1
    full = uncrop_depth(crop, (-2, 10, 6, 18), (424, 512))  # 8x8 box, half outside on the left
    assert full[10:18, 0:6].min() > 0 and full.sum() == full[10:18, 0:6].sum()
    assert full[10, 0] == crop[0, 1] and full[17, 5] == crop[3, 3]


def test_store_mode_refuses_rgb_and_raw_root_refuses_real_detections() -> None:
    with pytest.raises(UniPoseConfigError, match="use_rgb"):
        load_pose3d_config(CONFIG, ["data.store=/x", "data.use_rgb=true"])
    with pytest.raises(UniPoseConfigError, match="data.store"):
        load_pose3d_config(CONFIG, ["data.root=/x"])


def test_stage2_train_and_evaluate_end_to_end(stores: tuple[Path, Path], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    _, store = stores
    seen: list[dict] = []
    original = unipose_train.assert_no_reference

    def checking(batch: dict) -> None:  # the per-batch check, plus: no tensor equals a reference frame
        original(batch)
        seen.append({k: v.detach().clone() for k, v in batch.items() if torch.is_tensor(v)})

    monkeypatch.setattr(unipose_train, "assert_no_reference", checking)
    work = tmp_path / "work"
    report = run_pose3d_train(CONFIG, [f"data.store={store}", *SMALL], work_dir=work, log=lambda s: None)
    for name in ("point_net.safetensors", "depth_a2j.safetensors", "metrics.json", "config.json", "skeletons.png"):
        assert (work / name).is_file(), name
    assert (work / "skeletons.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    test = report["test"]
    assert set(test) == {"naive_baseline", "point_network", "depth_lifting"}
    joints = set(test["depth_lifting"]["per_joint"])
    assert joints == {"left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
                      "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle"}
    assert all(np.isfinite(test[m]["mpjpe_m"]) for m in test)
    assert len(report["lift_loss_history"]["depth"]) == 2
    # both stages' batches went through the check, and none carried the reference by content
    assert any("points" in b for b in seen) and any("crop" in b or "depth_crop" in b or "image" in b for b in seen)
    from actionfusion.pipeline.pose3d_store import load_store_split
    cfg = load_pose3d_config(CONFIG, [f"data.store={store}", *SMALL])
    refs = np.concatenate([r.reference for r in load_store_split(cfg, "train")[0]])
    refs = torch.from_numpy(np.nan_to_num(refs[:, 5:]))  # the joints the reference has
    for batch in seen:
        for value in batch.values():
            if value.shape[-2:] == (17, 3):
                flat = value.reshape(-1, 17, 3)[:, 5:].float()
                assert not any(torch.allclose(f, r, atol=1e-4) for f in flat for r in refs)
    evaluated = run_pose3d_evaluate(CONFIG, work, [f"data.store={store}", *SMALL], log=lambda s: None)
    for method in test:
        assert evaluated[method]["mpjpe_m"] == pytest.approx(test[method]["mpjpe_m"], rel=1e-5)
    assert json.loads((work / "metrics.json").read_text())["test"]["naive_baseline"]["map_10cm"] >= 0.0


def test_left_right_repair_undoes_flickering_flips_only() -> None:
    from actionfusion.modalities.pose.left_right_consistency import consistent_left_right
    rng = np.random.default_rng(0)
    t = np.arange(12, dtype=np.float32)
    base = np.zeros((12, 17, 3), np.float32)
    base[:, :, 0] = 100 + np.arange(17) * 10 * np.where(np.arange(17) % 2, 1, -1) + t[:, None]  # left/right apart
    base[:, :, 1] = 50 + np.arange(17) * 5
    base[:, :, 2] = 0.9
    noisy = base.copy()
    for frame in (3, 4, 9):  # the legs flip on three frames
        for a, b in ((11, 12), (13, 14), (15, 16)):
            noisy[frame, [a, b]] = base[frame, [b, a]]
    noisy[:, :, :2] += rng.normal(0, 0.5, (12, 17, 2))
    fixed = consistent_left_right(noisy)
    np.testing.assert_allclose(fixed[:, :, :2], base[:, :, :2], atol=3.0)
