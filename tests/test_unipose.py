"""UniPose: weak losses, voting, anchor-to-joint, metrics, the no-3D-supervision guarantee, training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from actionfusion.geometry import KINECT_V2_DEPTH_3DV as K
from actionfusion.modalities.pose.unipose import (
    A2JNet, PointClipDataset, PointPoseNet, SequenceRecord, UniPoseConfigError, anchor_to_joint,
    assert_no_reference, backprojection_loss, make_anchors, map_at, mpjpe, naive_lift, simulate_detections,
    symmetry_loss, unipose_config_from_dict)
from actionfusion.modalities.pose.unipose.config import UniPoseConfig
from actionfusion.modalities.pose.unipose.dataset import crop_to_pose, pose_to_crop, surface_thickness_targets
from actionfusion.modalities.pose.unipose.train import point_step, train_point_network
from actionfusion.modalities.pose.unipose.weak_losses import limb_prior_lengths


def _pose(seed: int = 0) -> np.ndarray:
    """A plausible COCO-17 pose float [17, 3] about 3 m in front of the camera."""
    rng = np.random.default_rng(seed)
    base = np.array([
        [0, 1.6, 0], [0.03, 1.63, 0], [-0.03, 1.63, 0], [0.07, 1.6, 0], [-0.07, 1.6, 0],
        [0.2, 1.4, 0], [-0.2, 1.4, 0], [0.25, 1.1, 0.05], [-0.25, 1.1, 0.05], [0.28, 0.85, 0.1], [-0.28, 0.85, 0.1],
        [0.12, 0.95, 0], [-0.12, 0.95, 0], [0.13, 0.5, 0.05], [-0.13, 0.5, 0.05], [0.14, 0.08, 0], [-0.14, 0.08, 0],
    ], dtype=np.float64)
    return (base + np.array([0.1, -0.9, 3.0]) + rng.normal(0, 0.01, base.shape)).astype(np.float32)


def _detections(pose: np.ndarray) -> torch.Tensor:
    uv = K.project(pose)
    return torch.tensor(np.concatenate([uv, np.ones((len(pose), 1))], -1), dtype=torch.float32)


def test_backprojection_loss_zero_on_rays_and_grows_off_them():
    pose = _pose()
    det = _detections(pose)
    on_ray = torch.tensor(pose)
    assert backprojection_loss(on_ray, det, K).item() < 1e-6
    # slide every joint along its own ray: still zero
    assert backprojection_loss(on_ray * 1.3, det, K).item() < 1e-6
    losses = []
    for d in (0.02, 0.05, 0.1, 0.2):
        shifted = on_ray.clone()
        shifted[:, 0] += d
        losses.append(backprojection_loss(shifted, det, K).item())
    assert losses[0] > 1e-4 and all(a < b for a, b in zip(losses, losses[1:]))
    # missed joints (score 0) do not count
    det_missed = det.clone()
    det_missed[3, 2] = 0
    moved = on_ray.clone()
    moved[3] += 0.5
    assert backprojection_loss(moved, det_missed, K).item() < 1e-6


def test_symmetry_loss_zero_for_symmetric_pose_only():
    pose = torch.tensor(_pose())
    mirrored = pose.clone()
    for left, right in ((5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)):
        mirrored[right] = pose[left] * torch.tensor([-1.0, 1.0, 1.0])
    mirrored[:, 0] += 0.3
    assert symmetry_loss(mirrored).item() < 1e-10
    broken = mirrored.clone()
    broken[9] += torch.tensor([0.0, -0.15, 0.0])  # longer left forearm
    assert symmetry_loss(broken).item() > 1e-3


def test_anchor_to_joint_single_anchor_zero_offset_returns_joint():
    anchors = torch.tensor([[10.0, 20.0], [40.0, 5.0], [3.0, 50.0]])
    c = torch.full((1, 3, 2), -1e4)
    c[0, 1, 0] = 10.0  # joint 0 -> anchor 1
    c[0, 2, 1] = 10.0  # joint 1 -> anchor 2
    depth = torch.zeros(1, 3, 2)
    depth[0, 1, 0], depth[0, 2, 1] = 7.0, -3.0
    xy, z, anchor_xy = anchor_to_joint(c, torch.zeros(1, 3, 2, 2), depth, anchors)
    assert torch.allclose(xy[0], torch.tensor([[40.0, 5.0], [3.0, 50.0]]))
    assert torch.allclose(z[0], torch.tensor([7.0, -3.0]))
    assert torch.allclose(anchor_xy, xy)
    single = anchor_to_joint(torch.zeros(1, 1, 1), torch.zeros(1, 1, 1, 2), torch.full((1, 1, 1), 2.5), anchors[:1])
    assert torch.allclose(single[0], anchors[:1][None]) and single[1].item() == 2.5


def test_anchor_grid_and_a2j_net_shapes():
    anchors = make_anchors(16, 8, (2.0, 6.0))
    assert anchors.shape == (16, 2)
    assert anchors[:4].tolist() == [[2, 2], [6, 2], [2, 6], [6, 6]]
    out = A2JNet(3, 17, 32, 8, (2.0, 6.0), 8)(torch.rand(2, 3, 32, 32))
    assert out.xy.shape == (2, 17, 2) and out.z.shape == (2, 17)
    assert (out.anchor_xy >= 0).all() and (out.anchor_xy <= 32).all()


def test_crop_round_trip():
    pose = np.stack([_pose(0), _pose(1)])
    box = np.array([[200, 100, 330, 230], [190, 90, 340, 240]], np.float32)
    ref = np.array([3.0, 3.1], np.float32)
    xy, z = pose_to_crop(pose, box, ref, 64, 100.0, K)
    assert np.allclose(crop_to_pose(xy, z, box, ref, 64, 100.0, K), pose, atol=1e-4)


def test_metrics_on_hand_made_examples():
    ref = np.zeros((2, 3, 3))
    pred = ref.copy()
    pred[0, 0, 0] = 0.3  # 30 cm
    pred[1, 2] = [0.0, 0.06, 0.08]  # 10 cm exactly
    assert mpjpe(pred, ref) == pytest.approx(0.4 / 6)
    assert map_at(pred, ref) == pytest.approx(5 / 6)
    pred[1, 1, 2] = np.nan  # left out
    assert mpjpe(pred, ref) == pytest.approx(0.4 / 5)


def test_simulated_detector_noise_and_misses():
    rng = np.random.default_rng(0)
    xy = np.tile(np.arange(25, dtype=np.float32)[None, :, None] * 10 + 100, (400, 1, 2))
    det = simulate_detections(xy, rng, pixel_sigma=2.0, miss_prob=0.1, swap_prob=0.0, outlier_prob=0.0)
    missed = det[..., 2] == 0
    assert det.shape == (400, 17, 3) and 0.07 < missed.mean() < 0.13
    assert (det[missed] == 0).all()
    clean = simulate_detections(xy, np.random.default_rng(0), 0.0, 0.0, 0.0, 0.0)
    err = det[~missed][:, :2] - clean[~missed][:, :2]
    assert 1.7 < err.std() < 2.3


def test_naive_baseline_lifts_onto_depth_surface():
    depth = np.zeros((424, 512), np.uint16)
    depth[100:300, 200:300] = 2500
    det = np.array([[250.0, 150.0, 1.0], [199.0, 150.0, 1.0], [0.0, 0.0, 0.0]], np.float32)  # on, next to, missed
    out = naive_lift(det, depth, K, 5)
    assert np.allclose(out[0], K.backproject(250.0, 150.0, 2.5), atol=1e-5)
    assert out[1, 2] == pytest.approx(2.5)  # window median
    assert np.allclose(out[2], out[:2].mean(0), atol=1e-5)


def test_surface_targets_sit_behind_the_surface_by_half_the_width():
    depth = np.zeros((424, 512), np.uint16)
    depth[100:300, 240:270] = 3000  # a 30 px wide, 200 px tall limb at 3 m
    det = np.array([[255.0, 200.0, 0.9], [0.0, 0.0, 0.0]], np.float32)
    out = surface_thickness_targets(det, depth, K, 5, max_radius_m=0.5)
    assert out[0, 0] == pytest.approx(3.0 + 0.5 * 30 * 3.0 / K.fx, abs=1e-4) and out[0, 1] == pytest.approx(0.9)
    assert (out[1] == 0).all()  # missed joint: no target
    capped = surface_thickness_targets(det, depth, K, 5, max_radius_m=0.05)
    assert capped[0, 0] == pytest.approx(3.05, abs=1e-4)


def _records(num: int = 3, frames: int = 8, n: int = 128) -> list[SequenceRecord]:
    recs = []
    for r in range(num):
        poses = np.stack([_pose(r * 100 + t) + np.float32([0.01 * t, 0, 0]) for t in range(frames)])
        rng = np.random.default_rng(r)
        # points scattered around the bones (a crude body surface)
        idx = rng.integers(0, 17, size=(frames, n))
        pts = poses[np.arange(frames)[:, None], idx] + rng.normal(0, 0.04, (frames, n, 3)).astype(np.float32)
        det = np.concatenate([K.project(poses), np.ones((frames, 17, 1))], -1).astype(np.float32)
        recs.append(SequenceRecord(
            name=f"s{r}", frame_indices=np.arange(frames), points=pts.astype(np.float32), det=det,
            depth_crop=np.zeros((frames, 1, 16, 16), np.float32),
            box=np.tile(np.float32([200, 100, 330, 230]), (frames, 1)),
            ref_depth=np.full(frames, 3.0, np.float32), reference=poses.astype(np.float32),
            surface=np.concatenate([poses[..., 2:3] + 0.02, np.ones((frames, 17, 1))], -1).astype(np.float32)))
    return recs


def test_training_items_never_carry_the_3d_reference():
    data = PointClipDataset(_records(), clip_len=4)
    assert len(data) == 3 * 3
    for item in data:
        assert set(item) == {"points", "det", "surface"}
    with pytest.raises(AssertionError):
        assert_no_reference({"points": 0, "reference": 1})
    cfg = _small_cfg()
    batch = {k: torch.stack([data[i][k] for i in range(2)]) for k in ("points", "det", "surface")}
    batch["reference"] = torch.zeros(2, 4, 17, 3)
    from actionfusion.modalities.pose.unipose.train import build_point_net
    with pytest.raises(AssertionError, match="3D reference"):
        point_step(build_point_net(cfg), batch, cfg, limb_prior_lengths(1.7), K)


def _small_cfg(**train) -> UniPoseConfig:
    return unipose_config_from_dict({
        "data": {"num_points": 128, "clip_len": 4, "crop_size": 16},
        "point_net": {"sa_centroids": [32, 8], "sa_neighbors": 8, "widths": [16, 32, 32], "top_k": 8},
        "train": {"batch_clips": 3, "lr_point": 0.003, **train},
    })


def test_point_network_voting_shapes_and_range():
    cfg = _small_cfg()
    net = PointPoseNet(17, (32, 8), 8, (16, 32, 32), 8, 0.2)
    rec = _records(1)[0]
    out = net(torch.from_numpy(rec.points[:2]), torch.from_numpy(rec.det[:2]))
    assert out.shape == (2, 17, 3)
    lo, hi = rec.points[:2].min(axis=(0, 1)) - 0.21, rec.points[:2].max(axis=(0, 1)) + 0.21
    assert (out.detach().numpy() >= lo).all() and (out.detach().numpy() <= hi).all()
    assert cfg.point_net.top_k == 8


def test_short_training_reduces_weak_loss():
    torch.set_num_threads(1)
    cfg = _small_cfg(point_epochs=8)
    recs = _records()
    prior = limb_prior_lengths(cfg.loss.body_height_m)
    torch.manual_seed(cfg.train.seed)
    from actionfusion.modalities.pose.unipose.train import build_point_net
    fresh = build_point_net(cfg)
    batch = {k: torch.stack([PointClipDataset(recs, 4)[i][k] for i in range(9)]) for k in ("points", "det", "surface")}
    before = point_step(fresh, batch, cfg, prior, K).total.item()
    model, history = train_point_network(recs, cfg)
    after = point_step(model, batch, cfg, prior, K).total.item()
    assert after < 0.8 * before
    assert history[-1]["total"] < history[0]["total"]


def test_config_rejects_unknown_keys_and_bad_types():
    with pytest.raises(UniPoseConfigError, match="data.nmu_points"):
        unipose_config_from_dict({"data": {"nmu_points": 3}})
    with pytest.raises(UniPoseConfigError, match="train.point_epochs"):
        unipose_config_from_dict({"train": {"point_epochs": "many"}})
    with pytest.raises(UniPoseConfigError, match="clip_len"):
        unipose_config_from_dict({"data": {"clip_len": 2}})


def test_shipped_config_loads():
    from pathlib import Path
    from actionfusion.modalities.pose.unipose import load_unipose_config
    cfg = load_unipose_config(Path(__file__).resolve().parents[1] / "configs" / "pose3d" / "synthetic_unipose.yaml")
    assert cfg.loss.w_ws == 10.0 and cfg.loss.w_sym == 0.002 and cfg.a2j.beta == 3.0
