"""UniPose inputs from a prepared sample store: real 2D detections, stored depth and points.

Per sample of the benchmark split (first actor only; a sample whose second actor is present in
a kept frame is skipped, since the masked depth then holds two people):

- **detections** (``data.detections``):
  - ``store_pose2d``: track 0 of ``pose2d.npy`` in ``data.pose_store`` (the library's own 2D
    pose extractor on the RGB video, COCO-17 or any layout convertible to it), scaled from the
    video's frame size to the 1920x1080 colour frame (with ``data.repair_left_right``, left/right
    flips repaired over time: :mod:`actionfusion.modalities.pose.left_right_consistency`) and mapped into the depth frame with the
    colour-to-depth map (:mod:`actionfusion.modalities.pose.color_to_depth`; the depth each
    joint needs is read off the depth frame);
  - ``simulated_from_kinect`` (ablation): the stored Kinect skeleton projected with the depth
    intrinsics, plus the ``detector`` section's noise (:func:`~...unipose.dataset.simulate_detections`).
- **depth**: ``depth.pack`` crops pasted back into the 512x424 frame at the stored box
  (``meta["modalities"]["depth"]["box"]``; nearest-neighbour, so at the crop's resolution);
- **points**: ``points.npy`` (already back-projected and sampled by ``prepare``);
- **reference**: the stored skeleton in COCO-17 without face joints
  (:func:`~...unipose.dataset.kinect_reference_coco17`), read only by evaluation.

Frames are matched through the source frame numbers that ``meta.json`` records per modality.
"""

from __future__ import annotations

import time
import zlib
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import cv2
import numpy as np

from ..datasets.ntu.names import parse_sample_name
from ..datasets.ntu.splits import split_samples
from ..datasets.store.sample_store import SampleStore
from ..errors import SampleNameError
from ..geometry import COLOR_SIZE_HW, DEPTH_SIZE_HW, KINECT_V2_DEPTH_3DV, CameraIntrinsics
from ..modalities.pose.left_right_consistency import consistent_left_right
from ..modalities.pose.color_to_depth import ColorToDepthMap, get_color_to_depth
from ..modalities.pose.unipose import dataset as ud
from ..modalities.pose.unipose.config import UniPoseConfig, UniPoseConfigError
from ..modalities.skeleton.layouts import convert_layout

Logger = Callable[[str], None]
INTRINSICS: CameraIntrinsics = KINECT_V2_DEPTH_3DV


def uncrop_depth(crop: np.ndarray, box: "list[int] | tuple[int, int, int, int]",
                 image_hw: tuple[int, int] = DEPTH_SIZE_HW) -> np.ndarray:
    """crop uint16 [D, D] of the box (x0, y0, x1, y1) -> uint16 [H, W] frame, 0 outside the box."""
    x0, y0, x1, y1 = (int(v) for v in box)
    full = cv2.resize(crop, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)
    out = np.zeros(image_hw, np.uint16)
    h, w = image_hw
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0:sy1, sx0:sx1] = full[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0]
    return out


def project_to_depth_pixels(xyz: np.ndarray, intrinsics: CameraIntrinsics) -> np.ndarray:
    """xyz float [..., 3] camera space (metres, y up) -> float32 [..., 2] depth pixels (v down)."""
    z = np.maximum(xyz[..., 2], 1e-3)
    u = intrinsics.fx * xyz[..., 0] / z + intrinsics.cx
    v = intrinsics.cy - intrinsics.fy * xyz[..., 1] / z
    return np.stack([u, v], axis=-1).astype(np.float32)


def detections_in_depth_frame(pose2d: np.ndarray, frame_hw: tuple[int, int], depth_mm: np.ndarray,
                              mapping: ColorToDepthMap, min_score: float) -> np.ndarray:
    """pose2d float [17, 3] (x, y, score) video pixels of a ``frame_hw`` video -> float32 [17, 3] depth pixels.

    Missed joints (score <= ``min_score``, non-finite, or mapped outside the depth image) are all zero.
    """
    h, w = frame_hw
    color = pose2d[:, :2].astype(np.float64) * np.array([COLOR_SIZE_HW[1] / w, COLOR_SIZE_HW[0] / h])
    xy = mapping.apply_on_depth(np.nan_to_num(color), depth_mm)
    out = np.concatenate([xy, pose2d[:, 2:3]], axis=1).astype(np.float32)
    dh, dw = depth_mm.shape
    bad = ~np.isfinite(pose2d).all(1) | (pose2d[:, 2] <= min_score) | (xy[:, 0] < 0) | (xy[:, 1] < 0) \
        | (xy[:, 0] > dw - 1) | (xy[:, 1] > dh - 1)
    out[bad] = 0.0
    return out


def _seed(name: str, seed: int) -> int:
    return (zlib.crc32(name.encode()) + 1_000_003 * seed) % (2**32)


def _fixed_points(points: np.ndarray, n: int, seed: int) -> np.ndarray:
    """points float [N0, 3] -> float32 [n, 3]: the first n (prepare samples by farthest points) or, if
    N0 < n, all of them plus random repeats."""
    if len(points) >= n:
        return points[:n].astype(np.float32)
    extra = np.random.default_rng(seed).integers(0, len(points), n - len(points))
    return np.concatenate([points, points[extra]]).astype(np.float32)


def load_store_sequence(store: SampleStore, pose_store: Optional[SampleStore], name: str, cfg: UniPoseConfig
                        ) -> Optional[tuple[ud.SequenceRecord, np.ndarray]]:
    """One stored sample as a :class:`SequenceRecord` and its naive-lift poses float32 [T, 17, 3];
    None when a modality is missing, no frame is kept, or a second actor is present."""
    d = cfg.data
    have = store.modalities(name)
    if not {"skeleton", "depth", "points"} <= have:
        return None
    simulated = d.detections == "simulated_from_kinect"
    if not simulated and not _has_pose2d(pose_store, name):
        return None
    meta = store.meta(name)["modalities"]
    skeleton = store.load_skeleton(name)  # [M, T, 25, 3]
    sk_frames = {int(f): i for i, f in enumerate(meta["skeleton"]["source_frames"])}
    depth_frames = {int(f): i for i, f in enumerate(meta["depth"]["source_frames"])}
    point_frames = {int(f): i for i, f in enumerate(meta["points"]["source_frames"])}
    present = np.any(skeleton[0] != 0, axis=(1, 2))
    candidates = sorted(f for f, i in sk_frames.items() if present[i] and f in depth_frames and f in point_frames)
    if not simulated:
        pose_meta = pose_store.meta(name)["modalities"]["pose2d"]
        pose2d = pose_store.load_pose2d(name)  # [M, T_video, K, 3]
        if pose2d.shape[0] == 0:
            return None
        track = convert_layout(pose2d[0], pose_meta.get("layout", ud.LAYOUT), ud.LAYOUT)  # [T_video, 17, 3]
        track[~(track[..., 2] > d.min_score)] = 0.0
        if d.repair_left_right:
            track = consistent_left_right(track)
        frame_hw = tuple(int(v) for v in pose_meta["frame_size_hw"])
        candidates = [f for f in candidates if f < len(track) and (track[f, :, 2] > d.min_score).sum() >= 4]
    kept = candidates[::d.frame_stride]
    if d.max_frames_per_sample:
        kept = kept[: d.max_frames_per_sample]
    if not kept:
        return None
    if skeleton.shape[0] > 1 and np.any(skeleton[1:, [sk_frames[f] for f in kept]] != 0):
        return None
    xyz = skeleton[0, [sk_frames[f] for f in kept]]  # [T, 25, 3]
    rng = np.random.default_rng(_seed(name, cfg.detector.seed))
    if simulated:
        n = cfg.detector
        det = ud.simulate_detections(project_to_depth_pixels(xyz, INTRINSICS), rng, n.pixel_sigma, n.miss_prob,
                                     n.swap_prob, n.outlier_prob, n.outlier_pixels, n.score_range)
    mapping = get_color_to_depth(d.color_to_depth, camera=_camera(name))
    crops = store.load_depth(name, [depth_frames[f] for f in kept])
    points = store.load_points(name, [point_frames[f] for f in kept])
    box_full = meta["depth"]["box"]
    rec: dict[str, list] = {k: [] for k in ("det", "pts", "box", "ref", "crop", "base", "surf")}
    for i, f in enumerate(kept):
        depth = uncrop_depth(crops[i], box_full)
        det_f = det[i] if simulated else detections_in_depth_frame(track[f], frame_hw, depth, mapping, d.min_score)
        box = ud.detection_box(det_f, d.crop_padding, DEPTH_SIZE_HW)
        ref = ud.crop_reference_depth(depth, box)
        rec["det"].append(det_f)
        rec["pts"].append(_fixed_points(points[i], d.num_points, _seed(name, f)))
        rec["box"].append(box)
        rec["ref"].append(ref)
        rec["crop"].append(ud.depth_crop(depth, box, d.crop_size, ref))
        rec["base"].append(ud.naive_lift(det_f, depth, INTRINSICS, d.depth_window))
        rec["surf"].append(ud.surface_thickness_targets(det_f, depth, INTRINSICS, d.depth_window,
                                                        cfg.loss.surface_max_radius_m))
    record = ud.SequenceRecord(
        name=name, frame_indices=np.array(kept), points=np.stack(rec["pts"]), det=np.stack(rec["det"]),
        depth_crop=np.stack(rec["crop"]), box=np.stack(rec["box"]), ref_depth=np.array(rec["ref"], np.float32),
        reference=ud.kinect_reference_coco17(xyz), surface=np.stack(rec["surf"]))
    return record, np.stack(rec["base"])


def _has_pose2d(pose_store: Optional[SampleStore], name: str) -> bool:
    return pose_store is not None and name in pose_store and "pose2d" in pose_store.modalities(name)


def _camera(name: str) -> Optional[int]:
    try:
        return parse_sample_name(name).camera
    except SampleNameError:  # not an NTU name: no camera number
        return None


def collect_sequences(names: Sequence[str], load: Callable[[str], Optional[tuple[Any, np.ndarray]]],
                      limit: Optional[int]) -> tuple[list[Any], list[np.ndarray], int]:
    """``(records, naive-lift poses, skipped)``: ``load(name)`` over ``names`` in order, up to ``limit``
    usable samples (0 or None: all); a sample ``load`` returns None for is counted as skipped."""
    records: list[Any] = []
    baselines: list[np.ndarray] = []
    skipped = 0
    for name in names:
        if limit and len(records) >= limit:
            break
        loaded = load(name)
        if loaded is None:
            skipped += 1
            continue
        records.append(loaded[0])
        baselines.append(loaded[1])
    return records, baselines, skipped


def collect_split(cfg: UniPoseConfig, split: str, names: Sequence[str],
                  load: Callable[[str], Optional[tuple[Any, np.ndarray]]], source: str, skip_reasons: str,
                  config_key: str, where: str, log: Optional[Logger] = None
                  ) -> tuple[list[ud.SequenceRecord], list[np.ndarray]]:
    """:func:`collect_sequences` over ``split``'s ``names`` up to its ``max_*_samples``, logged.

    ``source`` (e.g. " from STORE") and ``skip_reasons`` say in the log where the samples came from
    and why some were skipped; no usable sample is a :class:`UniPoseConfigError` on ``config_key``
    (``where``: the place searched)."""
    limit = cfg.data.max_train_samples if split == "train" else cfg.data.max_test_samples
    t0 = time.perf_counter()
    records, baselines, skipped = collect_sequences(names, load, limit)
    if log:
        frames = sum(r.num_frames for r in records)
        log(f"{split}: {len(records)} samples, {frames} frames{source} ({skipped} skipped: {skip_reasons}) "
            f"in {time.perf_counter() - t0:.1f}s")
    if not records:
        raise UniPoseConfigError(config_key, f"no usable {split} samples {where}")
    return records, baselines


def load_store_split(cfg: UniPoseConfig, split: str, log: Optional[Logger] = None
                     ) -> tuple[list[ud.SequenceRecord], list[np.ndarray]]:
    """Records and naive-lift poses of ``split`` ("train" or "test") of ``cfg.data.benchmark``, from
    ``cfg.data.store``."""
    d = cfg.data
    if not Path(d.store).is_dir():
        raise UniPoseConfigError("data.store", f"{d.store}: no such store (actionfusion prepare ROOT --out STORE)")
    store = SampleStore(d.store)
    pose_store = None
    if d.detections == "store_pose2d":
        pose_store = SampleStore(d.pose_store) if d.pose_store else store
    names = split_samples(store.names, d.benchmark, exclude_missing=False)[split]
    return collect_split(cfg, split, names, lambda name: load_store_sequence(store, pose_store, name, cfg),
                         f" from {d.store}, detections {d.detections}", "missing modality or pose2d, or two actors",
                         "data.store", f"in {d.store}", log)
