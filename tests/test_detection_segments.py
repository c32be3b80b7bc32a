"""Detection: smoothing, segments from score curves, temporal NMS, and mAP on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from actionfusion.pipeline.detection import (GroundTruth, Segment, average_precision, detection_map,
                                             extract_segments, smooth_scores, temporal_iou, temporal_nms)
from actionfusion.pipeline.detection.frame_scores import FrameScores, window_argmax_segments, window_starts


def test_temporal_iou_half_open_frames():
    assert temporal_iou(0, 10, 5, 15) == pytest.approx(5 / 15)
    assert temporal_iou(0, 10, 10, 20) == 0.0  # [0, 10) and [10, 20) share no frame
    assert temporal_iou(20, 28, 20, 30) == pytest.approx(0.8)


def test_smoothing_keeps_constants_and_spreads_an_impulse():
    const = np.full((30, 3), 0.25, np.float32)
    for method in ("mean", "gaussian"):
        np.testing.assert_allclose(smooth_scores(const, method, 5), const, atol=1e-6)  # ends renormalised
    impulse = np.zeros((11, 1), np.float32)
    impulse[5] = 1.0
    mean3 = smooth_scores(impulse, "mean", 3)[:, 0]
    np.testing.assert_allclose(mean3[4:7], [1 / 3] * 3, atol=1e-6)
    assert mean3[3] == 0 and mean3[7] == 0
    gauss = smooth_scores(impulse, "gaussian", 1.5)[:, 0]
    assert gauss.argmax() == 5 and gauss[4] == pytest.approx(gauss[6]) and gauss[4] < gauss[5]
    np.testing.assert_array_equal(smooth_scores(impulse, "none", 3), impulse)


def _curves() -> np.ndarray:
    """T=20, C=2: class 0 at 0.9 on frames 2..7; class 1 at 0.6 on 10..15 with a dip to 0.45 at 12."""
    s = np.zeros((20, 2), np.float32)
    s[:, 0], s[:, 1] = 0.1, 0.05
    s[2:8, 0] = 0.9
    s[10:16, 1] = 0.6
    s[12, 1] = 0.45
    return s


def test_extract_segments_by_threshold_runs():
    s = _curves()
    high = extract_segments(s, thresholds=(0.5,), min_length=1)
    assert [(g.label, g.start, g.end) for g in high] == [(0, 2, 8), (1, 10, 12), (1, 13, 16)]
    assert high[0].score == pytest.approx(0.9)
    low = extract_segments(s, thresholds=(0.4,), min_length=1)  # the lower level joins across the dip
    assert [(g.label, g.start, g.end) for g in low] == [(0, 2, 8), (1, 10, 16)]
    assert low[1].score == pytest.approx((5 * 0.6 + 0.45) / 6)
    both = extract_segments(s, thresholds=(0.4, 0.5), min_length=3)  # [10, 12) is too short
    assert [(g.label, g.start, g.end) for g in both] == [(0, 2, 8), (1, 10, 16), (1, 13, 16)]


def test_extract_segments_require_top_drops_frames_another_class_wins():
    s = _curves()
    s[14:16, 0] = 0.7  # class 0 beats class 1 on frames 14, 15
    top = extract_segments(s, thresholds=(0.4,), require_top=True)
    assert (1, 10, 14) in [(g.label, g.start, g.end) for g in top]
    anyclass = extract_segments(s, thresholds=(0.4,), require_top=False)
    assert (1, 10, 16) in [(g.label, g.start, g.end) for g in anyclass]
    assert extract_segments(s, thresholds=(0.4,), classes=[1], require_top=False)[0].label == 1


def test_temporal_nms_per_class():
    segs = [Segment(0, 1, 10, 0.8), Segment(0, 0, 10, 0.9), Segment(0, 20, 30, 0.7), Segment(1, 0, 10, 0.5),
            Segment(0, 5, 15, 0.6)]  # IoU([0,10), [5,15)) = 1/3
    kept = temporal_nms(segs, iou_threshold=0.5)
    assert kept == [Segment(0, 0, 10, 0.9), Segment(0, 20, 30, 0.7), Segment(0, 5, 15, 0.6), Segment(1, 0, 10, 0.5)]
    assert Segment(0, 5, 15, 0.6) not in temporal_nms(segs, iou_threshold=0.3)


def test_average_precision_interpolations():
    # Ranked FP, TP, TP with 2 ground truths: precision at the TPs 1/2 and 2/3.
    tp = np.array([False, True, True])
    assert average_precision(tp, 2, "none") == pytest.approx((1 / 2 + 2 / 3) / 2)
    # all-point: the precision at recall 1/2 is raised to the best later one, 2/3: (2/3 + 2/3) / 2.
    assert average_precision(tp, 2, "all_point") == pytest.approx(2 / 3)
    # The official PKU-MMD loop never evaluates precision at a TP's own rank: [TP, FP] for one
    # ground truth gives the full list's precision 1/2 where all-point gives 1.
    assert average_precision(np.array([True, False]), 1, "all_point") == pytest.approx(1.0)
    assert average_precision(np.array([True, False]), 1, "pku_official") == pytest.approx(0.5)
    assert average_precision(np.array([True, True]), 2, "pku_official") == pytest.approx(1.0)
    assert average_precision(np.zeros(0, bool), 3) == 0.0


def _hand_case() -> tuple[dict, dict]:
    truths = {"A": [GroundTruth(0, 0, 10), GroundTruth(0, 20, 30), GroundTruth(1, 40, 60)],
              "B": [GroundTruth(0, 0, 10)]}
    detections = {
        "A": [Segment(0, 0, 10, 0.9),    # IoU 1 with A[0,10): TP
              Segment(0, 1, 10, 0.8),    # IoU 0.9 with the same, already matched: FP
              Segment(0, 20, 28, 0.6),   # IoU 8/10 with A[20,30): TP
              Segment(1, 0, 10, 0.95),   # class 1, nothing there: FP
              Segment(1, 40, 60, 0.5),   # TP
              Segment(2, 0, 10, 0.99)],  # class 2 has no ground truth: not averaged
        "B": [Segment(0, 5, 15, 0.7)]}   # IoU 5/15 = 1/3 with B[0,10): TP only at theta <= 1/3
    return detections, truths


def test_detection_map_hand_computed():
    detections, truths = _hand_case()
    result = detection_map(detections, truths, iou_thresholds=(0.3, 0.5))
    assert result["classes"] == [0, 1] and result["num_truths"] == 4 and result["num_detections"] == 7
    # theta 0.5, class 0 (3 truths), ranked by score 0.9 TP, 0.8 FP, 0.7 FP, 0.6 TP:
    #   precision 1, 1/2, 1/3, 2/4; recall steps of 1/3 at ranks 1 and 4;
    #   all-point AP = 1 * 1/3 + max(1/2, 1/3, 2/4) * 1/3 = 1/3 + 1/6 = 0.5.
    # class 1 (1 truth): 0.95 FP, 0.5 TP: precision 1/2 at recall 1 -> AP 0.5.  mAP = 0.5.
    assert result["ap"]["0.5"] == {0: pytest.approx(0.5), 1: pytest.approx(0.5)}
    assert result["map"]["0.5"] == pytest.approx(0.5)
    # theta 0.3: B's detection becomes a TP: class 0 ranks TP, FP, TP, TP, precision 1, 1/2, 2/3, 3/4;
    #   AP = 1 * 1/3 + 3/4 * 1/3 + 3/4 * 1/3 = 5/6; mAP = (5/6 + 1/2) / 2 = 2/3.
    assert result["ap"]["0.3"][0] == pytest.approx(5 / 6)
    assert result["map"]["0.3"] == pytest.approx(2 / 3)


def test_greedy_and_coverage_matching_differ_on_a_duplicate():
    # Two truths side by side; the best detection overlaps both, the second only the right one.
    truths = {"A": [GroundTruth(0, 0, 10), GroundTruth(0, 8, 18)]}
    detections = {"A": [Segment(0, 1, 11, 0.9), Segment(0, 2, 12, 0.8)]}
    # [1,11) vs [0,10): 9/11; vs [8,18): 3/17. [2,12) vs [0,10): 8/12; vs [8,18): 4/16.
    greedy = detection_map(detections, truths, (0.2,), matching="greedy")
    coverage = detection_map(detections, truths, (0.2,), matching="coverage")
    # greedy: 0.9 takes [0,10) (best IoU); 0.8's best unmatched is [8,18) (IoU 1/4 >= 0.2): TP, TP -> AP 1.
    assert greedy["map"]["0.2"] == pytest.approx(1.0)
    # coverage: 0.8 is tied to its best truth [0,10), already covered: recall stays 1/2, AP = 1/2.
    assert coverage["map"]["0.2"] == pytest.approx(0.5)


def test_window_starts_cover_the_tail_and_baseline_merges_windows():
    np.testing.assert_array_equal(window_starts(10, 4, 3), [0, 3, 6])
    np.testing.assert_array_equal(window_starts(11, 4, 3), [0, 3, 6, 7])
    np.testing.assert_array_equal(window_starts(3, 4, 3), [0])
    windows = np.array([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8]], np.float32)
    scores = FrameScores(frames=np.zeros((10, 2), np.float32), windows=windows, starts=np.array([0, 3, 6]), window=4)
    assert window_argmax_segments(scores) == [Segment(0, 0, 7, pytest.approx(0.8)), Segment(1, 6, 10, pytest.approx(0.8))]
