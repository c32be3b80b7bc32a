"""Training loops: stage 1 (point network, weak losses) and stage 2 (A2J lifting on pseudo-labels).

Stage 1 sees only points and 2D detections (:class:`.dataset.PointClipDataset`); stage 2 only
crops and the point network's outputs (:class:`.dataset.LiftFrameDataset`). Every batch goes
through :func:`.dataset.assert_no_reference`, so the held-out 3D reference cannot enter training.
"""

from __future__ import annotations

import time
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from einops import rearrange
from torch.utils.data import DataLoader

from ....geometry import CameraIntrinsics, KINECT_V2_DEPTH_3DV
from .a2j import A2JNet, a2j_loss
from .config import UniPoseConfig
from .dataset import (LiftFrameDataset, PointClipDataset, SequenceRecord, assert_no_reference, crop_to_pose,
                      pose_to_crop)
from .point_network import PointPoseNet
from .weak_losses import limb_prior_lengths, weak_loss

Logger = Callable[[str], None]


def build_point_net(cfg: UniPoseConfig, intrinsics: CameraIntrinsics = KINECT_V2_DEPTH_3DV) -> PointPoseNet:
    """The stage-1 network from ``cfg.point_net``."""
    p = cfg.point_net
    return PointPoseNet(17, p.sa_centroids, p.sa_neighbors, p.widths, p.top_k, p.offset_scale_m,
                        p.detection_channels, p.detection_sigma_px, intrinsics,
                        p.detection_prior_gain)


def build_lifting_net(cfg: UniPoseConfig, modality: str) -> A2JNet:
    """A stage-2 A2J network for ``modality`` "depth" (1 channel) or "rgb" (3 channels)."""
    a = cfg.a2j
    return A2JNet(1 if modality == "depth" else 3, 17, cfg.data.crop_size, a.stride, a.anchor_offsets, a.width)


def point_step(model: PointPoseNet, batch: dict[str, torch.Tensor], cfg: UniPoseConfig,
               prior: torch.Tensor, intrinsics: CameraIntrinsics):
    """Weak loss (:class:`WeakLossTerms`) of one batch.

    The batch is {"points": [B, T, N, 3], "det": [B, T, 17, 3], "surface": [B, T, 17, 2]}.
    """
    assert_no_reference(batch)
    b = batch["points"].shape[0]
    pts = rearrange(batch["points"], "b t n c -> (b t) n c")
    det = rearrange(batch["det"], "b t j c -> (b t) j c")
    pose = rearrange(model(pts, det), "(b t) j c -> b t j c", b=b)
    w = cfg.loss
    return weak_loss(pose, batch["det"], intrinsics, prior, w.w_ss, w.w_ws, w.w_sym, w.w_motion, w.w_ratio,
                     batch.get("surface"), w.w_surf)


def train_point_network(records: Sequence[SequenceRecord], cfg: UniPoseConfig,
                        intrinsics: CameraIntrinsics = KINECT_V2_DEPTH_3DV,
                        log: Optional[Logger] = None) -> tuple[PointPoseNet, list[dict[str, float]]]:
    """Stage 1: train the point network with the weak losses only.

    Returns:
        The model (eval mode) and per-epoch mean loss terms (``{"total": ..., "ws": ..., ...}``).
    """
    torch.manual_seed(cfg.train.seed)
    model = build_point_net(cfg, intrinsics)
    data = PointClipDataset(records, cfg.data.clip_len)
    if len(data) == 0:
        raise ValueError(f"no training clips of {cfg.data.clip_len} frames: use more frames or a shorter clip_len")
    loader = DataLoader(data, batch_size=cfg.train.batch_clips, shuffle=True,
                        generator=torch.Generator().manual_seed(cfg.train.seed))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr_point)
    epochs = cfg.train.point_epochs
    # C3P divides the lr by 10 at epochs 90 and 110 of 140: the same fractions here
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [int(epochs * 0.65), int(epochs * 0.8)], 0.1)
    prior = limb_prior_lengths(cfg.loss.body_height_m)
    history: list[dict[str, float]] = []
    model.train()
    for epoch in range(epochs):
        t0, sums, n = time.perf_counter(), {}, 0
        for batch in loader:
            terms = point_step(model, batch, cfg, prior, intrinsics)
            opt.zero_grad()
            terms.total.backward()
            opt.step()
            for k, v in terms.as_floats().items():
                sums[k] = sums.get(k, 0.0) + v
            n += 1
        sched.step()
        history.append({k: v / n for k, v in sums.items()})
        if log:
            log(f"point net epoch {epoch + 1}/{epochs}: loss {history[-1]['total']:.5f} "
                f"(ws {history[-1]['ws']:.5f}, ss {history[-1]['ss']:.5f}) {time.perf_counter() - t0:.1f}s")
    return model.eval(), history


@torch.no_grad()
def predict_points(model: PointPoseNet, records: Sequence[SequenceRecord], batch_frames: int = 64) -> list[np.ndarray]:
    """Point-network poses, per record float32 [T, 17, 3] metres."""
    model.eval()
    out = []
    for rec in records:
        preds = []
        for s in range(0, rec.num_frames, batch_frames):
            pts = torch.from_numpy(rec.points[s:s + batch_frames])
            det = torch.from_numpy(rec.det[s:s + batch_frames])
            preds.append(model(pts, det).numpy())
        out.append(np.concatenate(preds).astype(np.float32))
    return out


def pseudo_targets(records: Sequence[SequenceRecord], poses: Sequence[np.ndarray], cfg: UniPoseConfig,
                   intrinsics: CameraIntrinsics = KINECT_V2_DEPTH_3DV) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Crop-space A2J targets (xy [T, 17, 2], z [T, 17]) per record from point-network poses."""
    xy, z = [], []
    for rec, pose in zip(records, poses):
        a, b = pose_to_crop(pose, rec.box, rec.ref_depth, cfg.data.crop_size, cfg.a2j.depth_scale, intrinsics)
        xy.append(a)
        z.append(b)
    return xy, z


def train_lifting_network(records: Sequence[SequenceRecord], pseudo_poses: Sequence[np.ndarray], modality: str,
                          cfg: UniPoseConfig, intrinsics: CameraIntrinsics = KINECT_V2_DEPTH_3DV,
                          log: Optional[Logger] = None) -> tuple[A2JNet, list[float]]:
    """Stage 2: train an A2J network on ``modality`` crops against the point network's poses.

    Returns:
        The model (eval mode) and per-epoch mean A2J losses.
    """
    torch.manual_seed(cfg.train.seed + 1)
    xy, z = pseudo_targets(records, pseudo_poses, cfg, intrinsics)
    data = LiftFrameDataset(records, xy, z, modality)
    loader = DataLoader(data, batch_size=cfg.train.batch_frames, shuffle=True,
                        generator=torch.Generator().manual_seed(cfg.train.seed + 1))
    model = build_lifting_net(cfg, modality)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr_lift)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(cfg.train.lift_epochs * len(loader), 1))
    a = cfg.a2j
    history: list[float] = []
    model.train()
    for epoch in range(cfg.train.lift_epochs):
        t0, total, n = time.perf_counter(), 0.0, 0
        for batch in loader:
            assert_no_reference(batch)
            loss = a2j_loss(model(batch["crop"]), batch["xy"], batch["z"], a.w_anchor, a.w_offset, a.w_depth, a.beta)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
            n += 1
        history.append(total / max(n, 1))
        if log:
            log(f"{modality} lifting epoch {epoch + 1}/{cfg.train.lift_epochs}: loss {history[-1]:.4f} "
                f"{time.perf_counter() - t0:.1f}s")
    return model.eval(), history


@torch.no_grad()
def predict_lifting(model: A2JNet, records: Sequence[SequenceRecord], modality: str, cfg: UniPoseConfig,
                    intrinsics: CameraIntrinsics = KINECT_V2_DEPTH_3DV, batch_frames: int = 64) -> list[np.ndarray]:
    """Lifting-network poses, per record float32 [T, 17, 3] metres."""
    model.eval()
    out = []
    for rec in records:
        crops = rec.depth_crop if modality == "depth" else rec.rgb_crop
        xy, z = [], []
        for s in range(0, rec.num_frames, batch_frames):
            o = model(torch.from_numpy(crops[s:s + batch_frames]))
            xy.append(o.xy.numpy())
            z.append(o.z.numpy())
        out.append(crop_to_pose(np.concatenate(xy), np.concatenate(z), rec.box, rec.ref_depth,
                                cfg.data.crop_size, cfg.a2j.depth_scale, intrinsics))
    return out
