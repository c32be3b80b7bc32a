"""``UniPoseConfig``: every setting of a UniPose run (data, detector noise, networks, losses, training).

Loaded from YAML with :func:`load_unipose_config` (``actionfusion.io.load_yaml``); an unknown key
anywhere, or a value of the wrong type, raises :class:`UniPoseConfigError` naming the dotted key.
Defaults reproduce ``configs/pose3d/synthetic_unipose.yaml`` (a run of a few minutes on 2 CPU cores).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Union, get_type_hints

from ....errors import ActionFusionError
from ....io import load_yaml


class UniPoseConfigError(ActionFusionError, ValueError):
    """A UniPose config key is unknown or holds a value of the wrong type or range."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"config key {key!r}: {reason}")
        self.key = key


@dataclass
class DataSection:
    """Which frames are read and how they become network inputs.

    Attributes:
        store: a prepared sample store (``actionfusion prepare ROOT --out STORE --modalities
            skeleton,depth,points``): points and depth come from it, and its skeleton serves only
            as the evaluation reference. Empty: read the raw ``root`` instead (simulated detector only).
        pose_store: the store holding ``pose2d`` (``actionfusion extract-poses ROOT --out STORE``);
            empty = ``store``.
        detections: ``store_pose2d`` (the library's own 2D detections from the RGB video, mapped
            into the depth frame by ``color_to_depth``) or ``simulated_from_kinect`` (ablation:
            the Kinect skeleton's projections plus the ``detector`` section's noise).
        color_to_depth: the colour-to-depth pixel map
            (:func:`actionfusion.modalities.pose.color_to_depth.get_color_to_depth`): ``synthetic``,
            ``ntu_kinect_c001``, ``ntu_kinect_c003``, ``ntu_by_camera``.
        min_score: a detected joint with a lower score counts as missed.
        repair_left_right: make the detections' left/right labels temporally consistent
            (``store_pose2d`` only; uses the detections alone).
        root: NTU-format root (``nturgb+d_skeletons``, ``nturgb+d_depth_masked``, ``nturgb+d_rgb``).
        benchmark: split whose ``train`` part trains and whose ``test`` part evaluates (xsub).
        frame_stride: keep every ``frame_stride``-th frame of a sample (subsampling for CPU runs).
        max_frames_per_sample: at most this many kept frames per sample (0 = all).
        max_train_samples, max_test_samples: at most this many samples per split (0 = all; the
            first ones in sorted name order).
        num_points: N, points per frame (random sampling of the back-projected masked depth).
        clip_len: T, consecutive kept frames per training clip (the motion loss needs T >= 3).
        crop_size: side S of the square depth / RGB crops of the lifting networks, pixels.
        crop_padding: relative enlargement of the detection box before cropping.
        depth_window: side of the window whose median valid depth lifts a detection in the
            naive baseline and gives the crop reference depth.
        use_rgb: read the RGB video and train the RGB lifting network.
    """

    store: str = ""
    pose_store: str = ""
    detections: str = "store_pose2d"
    color_to_depth: str = "synthetic"
    min_score: float = 0.0
    repair_left_right: bool = True
    root: str = ""
    benchmark: str = "ntu60_xsub"
    frame_stride: int = 1
    max_frames_per_sample: int = 0
    max_train_samples: int = 0
    max_test_samples: int = 0
    num_points: int = 512
    clip_len: int = 4
    crop_size: int = 64
    crop_padding: float = 0.2
    depth_window: int = 5
    use_rgb: bool = True


@dataclass
class DetectorNoiseSection:
    """The simulated 2D detector applied to the rendered skeleton's depth-image projections.

    Attributes:
        pixel_sigma: std of the Gaussian pixel noise on every detected joint.
        miss_prob: probability that a joint is missed (x = y = score = 0).
        swap_prob: probability that a frame's left/right COCO pairs are swapped (all of them).
        outlier_prob: probability that a joint is displaced by a uniform offset of up to
            ``outlier_pixels`` in x and y (a false detection).
        outlier_pixels: the largest outlier offset, pixels.
        score_range: scores of detected joints are uniform in this range.
        seed: base seed; a sample's noise is seeded by it and the sample name.
    """

    pixel_sigma: float = 2.0
    miss_prob: float = 0.05
    swap_prob: float = 0.03
    outlier_prob: float = 0.04
    outlier_pixels: float = 25.0
    score_range: tuple[float, float] = (0.5, 1.0)
    seed: int = 0


@dataclass
class PointNetSection:
    """The point network (see :mod:`.point_network`).

    Attributes:
        sa_centroids: centroids of the two set-abstraction levels.
        sa_neighbors: kNN group size of both levels (C3P: 64 on 2048 points).
        widths: feature widths (level 1, level 2, global).
        top_k: points voted per joint (C3P: 64 of 2048).
        offset_scale_m: metres that a unit offset vector moves a point with h = 0 (C3P: 0.8 in
            its box-normalised units; reconstruction: a length in metres).
        detection_channels: append per-point 2D-detection heatmap channels (the
            cross-modality interaction, reconstruction).
        detection_sigma_px: sigma of those heatmaps, depth pixels.
        detection_prior_gain: initial gain of the detections' prior on the heatmap logits.
    """

    sa_centroids: tuple[int, int] = (128, 32)
    sa_neighbors: int = 16
    widths: tuple[int, int, int] = (64, 128, 128)
    top_k: int = 16
    offset_scale_m: float = 0.2
    detection_channels: bool = True
    detection_sigma_px: float = 6.0
    detection_prior_gain: float = 4.0


@dataclass
class LossSection:
    """Weights of the weak losses (C3P total: L_ss + 10 L_ws + 0.002 L_sym + 0.1 L_v + 0.002 L_vlen).

    Attributes:
        w_ss: bone-length prior (L_ss).
        w_ws: back-projection point-to-ray distance.
        w_sym: left/right limb-length symmetry.
        w_motion: joint-motion smoothness.
        w_ratio: bone-ratio regulariser.
        body_height_m: height that scales the anthropometric bone-length fractions.
        w_surf: body-volume depth term (reconstruction, not in C3P; 0 turns it off).
        surface_max_radius_m: cap of the body half-thickness estimated from the silhouette.
    """

    w_ss: float = 1.0
    w_ws: float = 10.0
    w_sym: float = 0.002
    w_motion: float = 0.1
    w_ratio: float = 0.002
    body_height_m: float = 1.70
    w_surf: float = 1.0
    surface_max_radius_m: float = 0.12


@dataclass
class A2JSection:
    """The anchor-to-joint lifting networks (see :mod:`.a2j`).

    Attributes:
        stride: anchor grid stride, crop pixels (A2J: 8 on 176 px crops).
        anchor_offsets: anchor positions inside a cell (A2J: {2, 6}^2 for stride 8).
        width: backbone channel width.
        depth_scale: network depth units per metre (100: centimetres, so SmoothL1's beta 3 is 3 cm).
        w_anchor, w_offset, w_depth: weights of the informative-anchor, xy and z terms (A2J: 1, 0.1, 1).
        beta: SmoothL1 transition point (A2J: 3).
    """

    stride: int = 8
    anchor_offsets: tuple[float, ...] = (2.0, 6.0)
    width: int = 32
    depth_scale: float = 100.0
    w_anchor: float = 1.0
    w_offset: float = 0.1
    w_depth: float = 1.0
    beta: float = 3.0


@dataclass
class TrainSection:
    """Optimisation of both stages.

    Attributes:
        point_epochs, lift_epochs: epochs of stage 1 (point network) and stage 2 (lifting).
        batch_clips: clips per stage-1 batch (batch = batch_clips x clip_len frames).
        batch_frames: frames per stage-2 batch.
        lr_point, lr_lift: Adam learning rates (C3P: 1e-4 over 140 epochs; higher here for short runs).
        threads: torch CPU threads.
        seed: global seed.
    """

    point_epochs: int = 12
    lift_epochs: int = 10
    batch_clips: int = 8
    batch_frames: int = 32
    lr_point: float = 2e-3
    lr_lift: float = 2e-3
    threads: int = 2
    seed: int = 0


@dataclass
class UniPoseConfig:
    """A whole UniPose run."""

    data: DataSection = field(default_factory=DataSection)
    detector: DetectorNoiseSection = field(default_factory=DetectorNoiseSection)
    point_net: PointNetSection = field(default_factory=PointNetSection)
    loss: LossSection = field(default_factory=LossSection)
    a2j: A2JSection = field(default_factory=A2JSection)
    train: TrainSection = field(default_factory=TrainSection)

    def to_dict(self) -> dict[str, Any]:
        """Nested plain dict (tuples as lists) for saving next to a checkpoint."""
        return _plain(dataclasses.asdict(self))


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = getattr(tp, "__origin__", None)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise UniPoseConfigError(key, f"expected a list, got {value!r}")
        args = tp.__args__
        item_types = [args[0]] * len(value) if (len(args) == 2 and args[1] is Ellipsis) else list(args)
        if len(item_types) != len(value):
            raise UniPoseConfigError(key, f"expected {len(item_types)} items, got {len(value)}")
        return tuple(_coerce(v, t, f"{key}[{i}]") for i, (v, t) in enumerate(zip(value, item_types)))
    if tp is bool:
        if not isinstance(value, bool):
            raise UniPoseConfigError(key, f"expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UniPoseConfigError(key, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UniPoseConfigError(key, f"expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise UniPoseConfigError(key, f"expected a string, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    raise UniPoseConfigError(key, f"unsupported type {tp!r}")


def _build(cls: Any, data: Any, prefix: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise UniPoseConfigError(prefix or "<root>", f"expected a mapping, got {data!r}")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        where = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise UniPoseConfigError(where, f"unknown key; known here: {sorted(names)}")
    kwargs = {k: _coerce(v, hints[k], f"{prefix}.{k}" if prefix else k) for k, v in data.items()}
    return cls(**kwargs)


def _check(cfg: UniPoseConfig) -> None:
    checks = [
        (cfg.data.detections in ("store_pose2d", "simulated_from_kinect"), "data.detections",
         "must be store_pose2d or simulated_from_kinect"),
        (bool(cfg.data.store) or cfg.data.detections == "simulated_from_kinect" or not cfg.data.root, "data.store",
         "detections: store_pose2d reads a prepared store (set data.store; a raw root only serves "
         "detections: simulated_from_kinect)"),
        (not (cfg.data.store and cfg.data.use_rgb), "data.use_rgb",
         "must be false with data.store (the RGB lifting network reads the raw root's video)"),
        (cfg.data.num_points >= 32, "data.num_points", "must be >= 32"),
        (cfg.data.clip_len >= 3, "data.clip_len", "must be >= 3 (the motion loss needs 3 frames)"),
        (cfg.data.frame_stride >= 1, "data.frame_stride", "must be >= 1"),
        (cfg.data.crop_size % cfg.a2j.stride == 0, "data.crop_size", "must be a multiple of a2j.stride"),
        (cfg.point_net.top_k >= 1, "point_net.top_k", "must be >= 1"),
        (cfg.point_net.sa_centroids[0] <= cfg.data.num_points, "point_net.sa_centroids",
         "level 1 must be <= num_points"),
        (cfg.point_net.sa_centroids[1] <= cfg.point_net.sa_centroids[0], "point_net.sa_centroids", "must decrease"),
        (0.0 <= cfg.detector.miss_prob < 1.0, "detector.miss_prob", "must be in [0, 1)"),
        (all(0 <= o < cfg.a2j.stride for o in cfg.a2j.anchor_offsets), "a2j.anchor_offsets", "must lie in [0, stride)"),
    ]
    for ok, key, message in checks:
        if not ok:
            raise UniPoseConfigError(key, message)


def unipose_config_from_dict(raw: Mapping[str, Any]) -> UniPoseConfig:
    """Build and check a :class:`UniPoseConfig` from a nested mapping.

    Raises:
        UniPoseConfigError: unknown key, wrong type, or value out of range.
    """
    cfg = _build(UniPoseConfig, raw, "")
    _check(cfg)
    return cfg


def load_unipose_config(path: Union[str, Path]) -> UniPoseConfig:
    """Read a YAML file with :func:`actionfusion.io.load_yaml` and build the config."""
    return unipose_config_from_dict(load_yaml(path) or {})
