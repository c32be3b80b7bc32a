"""Temporal action detection on untrimmed skeleton sequences.

- :mod:`.frame_scores`: sliding windows through a
  :class:`~actionfusion.pipeline.live.window_classifier.WindowClassifier`, averaged into per-frame
  class scores;
- :mod:`.segments`: smoothing, segments from per-frame score curves, per-class temporal NMS;
- :mod:`.detection_map`: mAP at temporal-IoU thresholds (PKU-MMD protocol);
- :mod:`.runner`: :func:`~.runner.detect` on a sequence file, skeleton array or video, and
  :func:`~.runner.evaluate_folder` over PKU-MMD-format sequences and labels.
"""

from .detection_map import GroundTruth, average_precision, detection_map
from .segments import Segment, extract_segments, smooth_scores, temporal_iou, temporal_nms

__all__ = ["GroundTruth", "Segment", "average_precision", "detection_map", "extract_segments", "smooth_scores",
           "temporal_iou", "temporal_nms"]
