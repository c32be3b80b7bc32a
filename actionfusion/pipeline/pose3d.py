"""``actionfusion pose3d train|evaluate``: UniPose (weakly supervised 3D pose).

With ``data.store`` (the default path), inputs come from a prepared sample store and the
library's own 2D detections (:mod:`.pose3d_store`). Without it, ``data.root`` is read raw and
only the ablation ``data.detections: simulated_from_kinect`` is possible, as follows.

Raw root (per sample of the benchmark split, first actor only; samples where a second body appears
in a kept frame are skipped, since the masked depth then holds two people):

- skeleton file (``read_skeleton_file``): the rendered skeleton's depthX/depthY make the simulated
  2D detections (:func:`actionfusion.modalities.pose.unipose.dataset.simulate_detections`); its
  x, y, z, converted to COCO-17, is the held-out 3D reference, used only by evaluation;
- masked depth PNGs (``iter_depth_frames``), back-projected with ``KINECT_V2_DEPTH_3DV``
  (``depth_to_points``) and sampled to N points (``sample_points``, random);
- RGB video (``open_video``, streamed): crops mapped from the depth-pixel box through the
  synthetic colour camera, which sits at the depth camera's optical centre (true of the
  synthetic generator; real NTU colour and depth cameras are offset, so ``data.use_rgb`` should
  stay false there until a registration is added).

Frames are subsampled by ``data.frame_stride`` / ``max_frames_per_sample`` (CPU budget).
Outputs under ``work_dir``: ``point_net.safetensors``, ``depth_a2j.safetensors``,
``rgb_a2j.safetensors``, ``config.json``, ``metrics.json``, ``skeletons.png``.
"""

from __future__ import annotations

import json
import time
import zlib
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np
import torch

from ..datasets.ntu.depth import iter_depth_frames
from ..datasets.ntu.index import SamplePaths, scan_ntu_root
from ..datasets.ntu.skeleton_file import read_skeleton_file
from ..datasets.ntu.splits import split_samples
from ..datasets.synthetic.cameras import scaled_color_intrinsics
from ..geometry import KINECT_V2_COLOR_APPROX, KINECT_V2_DEPTH_3DV, DEPTH_SIZE_HW, CameraIntrinsics
from ..io import atomic_write_json, load_yaml
from ..modalities.pointcloud.backproject import depth_to_points
from ..modalities.pointcloud.sampling import sample_points
from ..modalities.pose.unipose import dataset as ud
from ..modalities.pose.unipose.config import UniPoseConfig, UniPoseConfigError, unipose_config_from_dict
from ..modalities.pose.unipose.metrics import per_joint_metrics, pose_metrics
from ..modalities.skeleton.layouts import get_layout
from ..modalities.pose.unipose.train import (build_lifting_net, build_point_net, predict_lifting, predict_points,
                                              train_lifting_network, train_point_network)
from ..modalities.rgb.video import open_video
from .checkpoints import load_weights, save_weights
from .config import apply_overrides
from .pose3d_store import collect_split, load_store_split

Logger = Callable[[str], None]
INTRINSICS: CameraIntrinsics = KINECT_V2_DEPTH_3DV
WEIGHT_FILES = {"point": "point_net.safetensors", "depth": "depth_a2j.safetensors", "rgb": "rgb_a2j.safetensors"}


def load_pose3d_config(config_path: "str | Path", overrides: Iterable[str] = ()) -> UniPoseConfig:
    """The YAML config (a path or a name such as ``pose3d/synthetic_unipose``) with ``KEY=VALUE`` overrides
    applied (unknown keys raise :class:`UniPoseConfigError`)."""
    from .config_names import resolve_config_path

    raw = load_yaml(resolve_config_path(config_path)) or {}
    if not isinstance(raw, dict):
        raise UniPoseConfigError("<root>", f"{config_path} does not hold a mapping")
    return unipose_config_from_dict(apply_overrides(raw, list(overrides)))


def _sample_seed(name: str, seed: int) -> int:
    return (zlib.crc32(name.encode()) + 1_000_003 * seed) % (2**32)


def _single_actor(joints: np.ndarray, kept: Sequence[int]) -> bool:
    """joints float [B, T, 25, 12]: no body other than the first is present in a kept frame."""
    if joints.shape[0] < 2:
        return True
    others = np.isfinite(joints[1:, kept, :, 0]).any()
    return not bool(others)


def load_sequence(paths: SamplePaths, cfg: UniPoseConfig) -> Optional[tuple[ud.SequenceRecord, np.ndarray]]:
    """Read one sample into a :class:`SequenceRecord` and its naive-baseline poses float32 [T, 17, 3].

    Returns None when the sample lacks skeleton or masked depth, has no kept frame, or has a second actor.
    """
    if paths.skeleton is None or paths.depth_masked is None or (cfg.data.use_rgb and paths.rgb is None):
        return None
    d = cfg.data
    sk = read_skeleton_file(paths.skeleton)
    joints = sk.joints[0]  # [T, 25, 12], first actor
    present = np.isfinite(joints[:, :, 0]).all(axis=1)
    kept = [t for t in range(0, sk.num_frames, d.frame_stride) if present[t]]
    if d.max_frames_per_sample:
        kept = kept[: d.max_frames_per_sample]
    if not kept or not _single_actor(sk.joints, kept):
        return None
    rng = np.random.default_rng(_sample_seed(paths.name, cfg.detector.seed))
    n = cfg.detector
    det_all = ud.simulate_detections(np.nan_to_num(joints[:, :, 3:5]), rng, n.pixel_sigma, n.miss_prob, n.swap_prob,
                                     n.outlier_prob, n.outlier_pixels, n.score_range)
    reference_all = ud.kinect_reference_coco17(joints[:, :, :3])
    wanted = {t: i for i, t in enumerate(kept)}
    pts, boxes, refs, crops, base, surf = {}, {}, {}, {}, {}, {}
    for index, depth in iter_depth_frames(paths.depth_masked):
        t = index - 1
        if t not in wanted:
            continue
        det = det_all[t]
        cloud = depth_to_points(depth, INTRINSICS)
        pts[t] = sample_points(cloud, d.num_points, "random", rng=_sample_seed(paths.name, t))
        boxes[t] = ud.detection_box(det, d.crop_padding, DEPTH_SIZE_HW)
        refs[t] = ud.crop_reference_depth(depth, boxes[t])
        crops[t] = ud.depth_crop(depth, boxes[t], d.crop_size, refs[t])
        base[t] = ud.naive_lift(det, depth, INTRINSICS, d.depth_window)
        surf[t] = ud.surface_thickness_targets(det, depth, INTRINSICS, d.depth_window, cfg.loss.surface_max_radius_m)
    kept = [t for t in kept if t in pts]
    if not kept:
        return None
    rgb = None
    if d.use_rgb:
        rgb_by_t = {}
        with open_video(paths.rgb) as video:
            h, w = video.frame_size
            color = scaled_color_intrinsics(KINECT_V2_COLOR_APPROX, w, h)
            for t, frame in enumerate(video.iter_frames()):
                if t in pts:
                    box_c = ud.depth_box_to_color(boxes[t], INTRINSICS, color)
                    rgb_by_t[t] = ud.rgb_crop(frame, box_c, d.crop_size)
                if t >= kept[-1]:
                    break
        kept = [t for t in kept if t in rgb_by_t]
        if not kept:
            return None
        rgb = np.stack([rgb_by_t[t] for t in kept])
    record = ud.SequenceRecord(
        name=paths.name, frame_indices=np.array(kept), points=np.stack([pts[t] for t in kept]),
        det=det_all[kept], depth_crop=np.stack([crops[t] for t in kept]),
        box=np.stack([boxes[t] for t in kept]), ref_depth=np.array([refs[t] for t in kept], np.float32),
        reference=reference_all[kept].astype(np.float32), surface=np.stack([surf[t] for t in kept]), rgb_crop=rgb)
    return record, np.stack([base[t] for t in kept])


def load_split(cfg: UniPoseConfig, split: str, log: Optional[Logger] = None
               ) -> tuple[list[ud.SequenceRecord], list[np.ndarray]]:
    """Records and naive-baseline poses of ``split`` ("train" or "test") of ``cfg.data.benchmark``."""
    if cfg.data.store:
        return load_store_split(cfg, split, log)
    if not cfg.data.root:
        raise UniPoseConfigError("data.root", "set it to an NTU-format root (e.g. --set data.root=DIR)")
    index = scan_ntu_root(cfg.data.root)
    names = split_samples(index.names(), cfg.data.benchmark, exclude_missing=False)[split]
    return collect_split(cfg, split, names, lambda name: load_sequence(index.samples[name], cfg),
                         "", "missing modality or two actors", "data.root", f"under {cfg.data.root}", log)


def _metrics(poses: Sequence[np.ndarray], records: Sequence[ud.SequenceRecord]) -> dict[str, Any]:
    """Overall MPJPE / mAP@10cm and the same per joint, on the joints the reference has (no face joints)."""
    pred, ref = np.concatenate(list(poses)), np.concatenate([r.reference for r in records])
    out: dict[str, Any] = pose_metrics(pred, ref)
    out["per_joint"] = per_joint_metrics(pred, ref, get_layout(ud.LAYOUT).joint_names)
    return out


def predict_all(cfg: UniPoseConfig, records: Sequence[ud.SequenceRecord], baselines: Sequence[np.ndarray],
                models: dict[str, torch.nn.Module]) -> dict[str, list[np.ndarray]]:
    """Per method, the poses float32 [T, 17, 3] of each record: the naive lift and each model."""
    out = {"naive_baseline": list(baselines)}
    if "point" in models:
        out["point_network"] = list(predict_points(models["point"], records))
    for modality in ("depth", "rgb"):
        if modality in models:
            out[f"{modality}_lifting"] = list(predict_lifting(models[modality], records, modality, cfg))
    return out


def evaluate_models(cfg: UniPoseConfig, records: Sequence[ud.SequenceRecord], baselines: Sequence[np.ndarray],
                    models: dict[str, torch.nn.Module], figure: "Path | None" = None) -> dict[str, dict[str, Any]]:
    """MPJPE (m) and mAP@10cm, overall and per joint, of the baseline and of each model against the held-out
    reference; with ``figure``, also a PNG of predicted against reference skeletons on a few frames."""
    poses = predict_all(cfg, records, baselines, models)
    if figure is not None:
        from .pose3d_figure import save_pose3d_figure

        save_pose3d_figure(figure, records, poses)
    return {method: _metrics(p, records) for method, p in poses.items()}


def run_pose3d_train(config_path: "str | Path", overrides: Iterable[str] = (), work_dir: "str | Path | None" = None,
                     log: Logger = print) -> dict[str, Any]:
    """Train the point network (stage 1) and the lifting networks (stage 2), then evaluate on the test split.

    Returns the metrics dict written to ``work_dir/metrics.json``.
    """
    cfg = load_pose3d_config(config_path, overrides)
    torch.set_num_threads(cfg.train.threads)
    work = Path(work_dir) if work_dir else Path("work_dirs") / Path(config_path).stem
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    train_records, _ = load_split(cfg, "train", log)
    test_records, test_base = load_split(cfg, "test", log)
    point, point_hist = train_point_network(train_records, cfg, INTRINSICS, log)
    save_weights(work / WEIGHT_FILES["point"], point)
    pseudo = predict_points(point, train_records)
    models: dict[str, torch.nn.Module] = {"point": point}
    lift_hist = {}
    for modality in (("depth", "rgb") if cfg.data.use_rgb else ("depth",)):
        models[modality], lift_hist[modality] = train_lifting_network(
            train_records, pseudo, modality, cfg, INTRINSICS, log)
        save_weights(work / WEIGHT_FILES[modality], models[modality])
    results = evaluate_models(cfg, test_records, test_base, models, figure=work / "skeletons.png")
    report = {"test": results, "train_pseudo_labels": _metrics(pseudo, train_records),
              "point_loss_history": point_hist, "lift_loss_history": lift_hist,
              "train_frames": sum(r.num_frames for r in train_records),
              "test_frames": sum(r.num_frames for r in test_records), "seconds": time.perf_counter() - t0}
    atomic_write_json(work / "config.json", cfg.to_dict())
    atomic_write_json(work / "metrics.json", report)
    log(json.dumps({"test": _overall(results), "seconds": round(report["seconds"], 1)}))
    return report


def run_pose3d_evaluate(config_path: "str | Path", checkpoint: "str | Path", overrides: Iterable[str] = (),
                        log: Logger = print) -> dict[str, dict[str, float]]:
    """Evaluate the weights in the ``checkpoint`` directory (a train run's work_dir) on the test split."""
    cfg = load_pose3d_config(config_path, overrides)
    torch.set_num_threads(cfg.train.threads)
    ckpt = Path(checkpoint)
    if not (ckpt / WEIGHT_FILES["point"]).is_file():
        raise FileNotFoundError(f"{ckpt}: no {WEIGHT_FILES['point']} (pass the train run's work_dir)")
    models: dict[str, torch.nn.Module] = {"point": build_point_net(cfg, INTRINSICS)}
    load_weights(ckpt / WEIGHT_FILES["point"], models["point"])
    for modality in ("depth", "rgb"):
        path = ckpt / WEIGHT_FILES[modality]
        if path.is_file() and (modality == "depth" or cfg.data.use_rgb):
            models[modality] = build_lifting_net(cfg, modality)
            load_weights(path, models[modality])
    for m in models.values():
        m.eval()
    records, baselines = load_split(cfg, "test", log)
    results = evaluate_models(cfg, records, baselines, models, figure=ckpt / "skeletons_evaluate.png")
    log(json.dumps({"test": _overall(results)}))
    return results


def _overall(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    return {m: {k: v for k, v in r.items() if k != "per_joint"} for m, r in results.items()}
