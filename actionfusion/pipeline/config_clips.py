"""Per-modality clip settings of ``data`` in an experiment config (RGB, pose heatmaps, depth, points).

Each non-skeleton modality a config lists in ``data.modalities`` reads its block here, e.g.::

    data:
      modalities: [rgb, pose_heatmap]
      rgb: {num_frames: 16, size: 224}
      pose_heatmap: {num_frames: 48, size: 56, sigma: 0.6, keypoints: sensor}

The clip dataset samples all of them at shared normalised times, so frames of different
modalities line up (EPAM's 16 RGB frames are every 3rd of its 48 pose frames).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

KEYPOINT_SOURCES: tuple[str, ...] = ("sensor", "pose2d")
"""Where heatmap keypoints come from: ``sensor`` (the skeleton's colorX/Y, ``pose2d_sensor`` in the
store) or ``pose2d`` (imported pyskl keypoints, or the output of ``extract-poses``)."""


@dataclass(frozen=True)
class RGBClipConfig:
    """RGB person-crop clips ``"rgb"`` float32 [3, T, size, size] (ImageNet-normalised).

    Attributes:
        num_frames: T, sampled as uniform segments (a random frame per segment when training,
            the centre when testing).
        size: output side in pixels (EPAM: 224).
        scale_range: random-resized-crop area fraction range when training ([1, 1]: none).
    """

    num_frames: int = 16
    size: int = 224
    scale_range: list[float] = field(default_factory=lambda: [0.6, 1.0])


@dataclass(frozen=True)
class HandGlimpseClipConfig:
    """Hand glimpses ``"rgb_hands"`` float32 [3, T, size, 2 * size] (ImageNet-normalised): a window on
    the right and one on the left hand of the first actor, cut from the stored RGB person crop
    (:mod:`actionfusion.modalities.rgb.hand_glimpses`, which gives the measurements behind them).

    Attributes:
        num_frames: T, at the clip times shared with the other modalities.
        size: side of each hand's window in the clip, pixels.
        window: window side as a fraction of the stored person crop (0.33 of 192 px: 63 px).
        jitter: training shift of each window, one per clip and hand, uniform in +- jitter x window.
        keypoints: one of :data:`KEYPOINT_SOURCES` (where the hands are found).
        layout: joint layout of those keypoints (``ntu25``, ``coco17`` or ``blazepose33``).
    """

    num_frames: int = 8
    size: int = 32
    window: float = 0.33
    jitter: float = 0.1
    keypoints: str = "sensor"
    layout: str = "ntu25"


@dataclass(frozen=True)
class HeatmapClipConfig:
    """Pose heatmap volumes ``"pose_heatmap"`` float32 [K, T, size, size] (EPAM / PoseC3D).

    Attributes:
        num_frames: T (EPAM: 48).
        size: heatmap side (EPAM: 56), one square box around all keypoints of the clip.
        sigma: Gaussian sigma in heatmap pixels (EPAM: 0.6).
        padding: relative enlargement of the keypoint box (EPAM: 0.25).
        keypoints: one of :data:`KEYPOINT_SOURCES`.
        layout: joint layout of those keypoints (``ntu25`` for the sensor, ``coco17`` for HRNet).
        with_limbs: add one channel per limb (line Gaussians), as PoseC3D can.
    """

    num_frames: int = 48
    size: int = 56
    sigma: float = 0.6
    padding: float = 0.25
    keypoints: str = "sensor"
    layout: str = "ntu25"
    with_limbs: bool = False


@dataclass(frozen=True)
class DepthClipConfig:
    """Depth clips ``"depth"`` float32 [1, T, size, size] (normalised, see ``depth_clip_pipeline``).

    ``scale_range``: random-resized-crop area fraction range when training ([1, 1]: none).
    """

    num_frames: int = 16
    size: int = 56
    scale_range: list[float] = field(default_factory=lambda: [0.6, 1.0])


@dataclass(frozen=True)
class PointClipConfig:
    """Point-cloud clips ``"points"`` float32 [T, num_points, 3] (metres, centred on the clip)."""

    num_frames: int = 16
    num_points: int = 256


POSE_SOURCES: tuple[str, ...] = ("sensor", "extracted")
"""``source.pose_source``: 2D poses from the Kinect skeleton (``sensor``) or from the pose model
run over the raw videos (``extracted``: ``actionfusion run`` calls ``extract-poses``)."""


@dataclass(frozen=True)
class SourceConfig:
    """Where ``actionfusion run`` makes ``data.store`` from (raw data -> prepare -> [extract poses]).

    Attributes:
        raw_root: an NTU-format root (skeletons, videos, masked depth); null = ``data.store`` is
            already prepared and ``run`` only trains and evaluates.
        pose_source: one of :data:`POSE_SOURCES`. ``extracted`` runs the 2D pose model over every
            video into the store, and heatmaps must then read ``keypoints: pose2d``.
        pose_backend: the pose model (``default``: the embedded BlazePose; ``mmpose`` if installed).
        pose_layout: store extracted keypoints in this layout (e.g. ``coco17``); null = the backend's.
        workers: processes for prepare and pose extraction.
        rgb_size, depth_size, num_points: prepare's crop sizes and points per frame (null: its defaults).
    """

    raw_root: Optional[str] = None
    pose_source: str = "sensor"
    pose_backend: str = "default"
    pose_layout: Optional[str] = None
    workers: int = 2
    rgb_size: Optional[int] = None
    depth_size: Optional[int] = None
    num_points: Optional[int] = None
