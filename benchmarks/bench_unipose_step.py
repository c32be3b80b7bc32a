"""UniPose training-step time on CPU: the point network (stage 1) and the A2J lifting networks (stage 2).

Baselines measured in the same run: each network's forward-only time on the same batch (the
step/forward ratio), and the naive baseline's per-frame cost (lifting detections onto the depth
surface). Synthetic inputs of the config's shapes; prints ONE JSON line.

    .venv/bin/python benchmarks/bench_unipose_step.py [--threads 2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run from a checkout without installing the package

from actionfusion.geometry import KINECT_V2_DEPTH_3DV as K  # noqa: E402
from actionfusion.modalities.pose.unipose.a2j import a2j_loss  # noqa: E402
from actionfusion.modalities.pose.unipose.config import load_unipose_config  # noqa: E402
from actionfusion.modalities.pose.unipose.dataset import naive_lift  # noqa: E402
from actionfusion.modalities.pose.unipose.train import build_lifting_net, build_point_net, point_step  # noqa: E402
from actionfusion.modalities.pose.unipose.weak_losses import limb_prior_lengths  # noqa: E402

CONFIG = REPO_ROOT / "configs" / "pose3d" / "synthetic_unipose.yaml"


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = load_unipose_config(CONFIG)
    b, t, n, s = cfg.train.batch_clips, cfg.data.clip_len, cfg.data.num_points, cfg.data.crop_size
    rng = np.random.default_rng(0)
    # a body-sized cloud 3 m away, detections = projections of random cloud points
    pts = torch.tensor(rng.normal([0, 0, 3.0], [0.25, 0.5, 0.1], (b, t, n, 3)), dtype=torch.float32)
    pick = pts[:, :, :17]
    uv = torch.tensor(K.project(pick.numpy()), dtype=torch.float32)
    det = torch.cat([uv, torch.ones(b, t, 17, 1)], -1)
    batch = {"points": pts, "det": det}
    prior = limb_prior_lengths(cfg.loss.body_height_m)

    point = build_point_net(cfg)
    opt = torch.optim.Adam(point.parameters(), lr=1e-4)

    def point_train() -> None:
        loss = point_step(point, batch, cfg, prior, K).total
        opt.zero_grad()
        loss.backward()
        opt.step()

    def point_fwd() -> None:
        with torch.no_grad():
            point(pts.flatten(0, 1), det.flatten(0, 1))

    result = {"bench": "unipose_step", "threads": args.threads, "point_batch_frames": b * t, "num_points": n,
              "point_train_step_s": _time(point_train, args.repeats), "point_forward_s": _time(point_fwd, args.repeats)}
    result["point_step_over_forward"] = result["point_train_step_s"] / result["point_forward_s"]
    bf = cfg.train.batch_frames
    for modality, ch in (("depth", 1), ("rgb", 3)):
        net = build_lifting_net(cfg, modality)
        o = torch.optim.Adam(net.parameters(), lr=1e-4)
        crops = torch.rand(bf, ch, s, s)
        gxy, gz = torch.rand(bf, 17, 2) * s, torch.randn(bf, 17) * 10

        def lift_train(net=net, o=o, crops=crops, gxy=gxy, gz=gz) -> None:
            loss = a2j_loss(net(crops), gxy, gz)
            o.zero_grad()
            loss.backward()
            o.step()

        def lift_fwd(net=net, crops=crops) -> None:
            with torch.no_grad():
                net.eval()(crops)
            net.train()

        result[f"{modality}_a2j_batch"] = bf
        result[f"{modality}_a2j_train_step_s"] = _time(lift_train, args.repeats)
        result[f"{modality}_a2j_forward_s"] = _time(lift_fwd, args.repeats)
        result[f"{modality}_a2j_step_over_forward"] = result[f"{modality}_a2j_train_step_s"] / result[f"{modality}_a2j_forward_s"]
    depth = np.zeros((424, 512), np.uint16)
    depth[80:360, 200:320] = 3000
    dets = np.concatenate([rng.uniform([200, 80], [320, 360], (64, 17, 2)), np.ones((64, 17, 1))], -1)
    t0 = time.perf_counter()
    for d in dets:
        naive_lift(d, depth, K, cfg.data.depth_window)
    result["naive_baseline_per_frame_s"] = (time.perf_counter() - t0) / len(dets)
    result["point_step_per_frame_over_naive_per_frame"] = (result["point_train_step_s"] / (b * t)) / result["naive_baseline_per_frame_s"]
    print(json.dumps({k: (round(v, 6) if isinstance(v, float) else v) for k, v in result.items()}))


if __name__ == "__main__":
    main()
