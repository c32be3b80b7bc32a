"""Mean average precision of temporal detections at temporal-IoU thresholds (PKU-MMD protocol).

Protocol (Liu et al., "PKU-MMD", 2017, Sec. 5; the official ``evaluate.py`` of ECHO960/PKU-MMD):
detections of all sequences are ranked by score per class; a detection is a true positive when
its temporal IoU with a ground truth of the same class and sequence is ``>= theta``; AP per class
comes from the precision-recall curve of that ranking; mAP is the mean over classes.

What this module does, and where the sources differ:

- **Matching** (``matching``). ``"greedy"`` (default, the brief's rule and ActivityNet's / THUMOS'):
  detections in decreasing score take the best-IoU *unmatched* ground truth with IoU ``>= theta``;
  a second detection of an already matched action is a false positive. ``"coverage"`` is what the
  official script does: each detection is tied to its best-IoU ground truth (matched or not), and
  precision counts the ground truths covered by the top-k detections, so a duplicate counts
  against precision but never steals a neighbour. The two agree when no two detections of a class
  overlap the same action (true after NMS unless a ground truth is split).
- **AP** (``interpolation``). ``"all_point"`` (default): the area under the interpolated curve,
  precision at recall r = the highest precision at any recall ``>= r`` (VOC 2010+, ActivityNet).
  The official script names its measure "Interpolated Average Precision" and keeps such a running
  maximum, so interpolated AP is the protocol's intent. ``"none"``: the mean, over the ground
  truths, of the precision at the rank where each is found (0 if never). ``"pku_official"``:
  the official loop reproduced: it removes detections from the lowest score up and evaluates
  precision only after removing one that matched, so the precision at a true positive's own rank
  is never used (ranked [TP, FP] for one action gives 0.5, where ``"all_point"`` gives 1.0); use
  it, with ``matching="coverage"``, only to compare with numbers from that script.
- **Mean over classes**: over the classes that have ground truth (a class without any has no
  recall). The official script divides by all 51 PKU-MMD classes.
- **IoU** of frames ``[start, end)``: the official script's ``(min(ends) - max(starts)) /
  (max(ends) - min(starts))`` equals intersection over union for overlapping intervals, and is
  below every threshold for disjoint ones, as here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping, Sequence

import numpy as np

from .segments import Segment, temporal_iou

Matching = Literal["greedy", "coverage"]
Interpolation = Literal["all_point", "none", "pku_official"]
PKU_IOU_THRESHOLDS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
"""The temporal-IoU thresholds reported (PKU-MMD paper, Sec. 5, reports 0.1 and 0.5; 0.1..0.7 as THUMOS)."""


@dataclass(frozen=True)
class GroundTruth:
    """One labelled action: 0-based ``label``, frames ``[start, end)``."""

    label: int
    start: int
    end: int


def match_ranked(detections: Sequence[tuple[str, int, int]], truths: Sequence[tuple[str, int, int]],
                 iou_threshold: float, matching: Matching = "greedy") -> tuple[np.ndarray, np.ndarray]:
    """Match one class's detections, already ranked by decreasing score, to its ground truths.

    Args:
        detections: ``(sequence, start, end)`` in rank order.
        truths: ``(sequence, start, end)``.
        iou_threshold: theta.
        matching: ``"greedy"`` or ``"coverage"`` (module docstring).
    Returns:
        (true_positive bool [N], hit bool [N]): ``true_positive`` counts towards recall (a new
        action found); ``hit``: the detection reached some ground truth (only ``"coverage"`` uses it).
    """
    if matching not in ("greedy", "coverage"):
        raise ValueError(f"unknown matching {matching!r}; choose greedy or coverage")
    by_sequence: dict[str, list[int]] = {}
    for index, (sequence, _, _) in enumerate(truths):
        by_sequence.setdefault(sequence, []).append(index)
    taken = np.zeros(len(truths), bool)
    tp = np.zeros(len(detections), bool)
    hit = np.zeros(len(detections), bool)
    for rank, (sequence, start, end) in enumerate(detections):
        best, best_iou = -1, -1.0
        for index in by_sequence.get(sequence, []):
            if matching == "greedy" and taken[index]:
                continue
            iou = temporal_iou(start, end, truths[index][1], truths[index][2])
            if iou >= iou_threshold and iou > best_iou:
                best, best_iou = index, iou
        if best >= 0:
            hit[rank] = True
            tp[rank] = not taken[best]
            taken[best] = True
    return tp, hit


def average_precision(true_positive: np.ndarray, num_truths: int, interpolation: Interpolation = "all_point",
                      hit: np.ndarray | None = None) -> float:
    """AP of a ranking.

    Args:
        true_positive: bool [N], detections by decreasing score: True where a new ground truth is found.
        num_truths: ground truths of the class (recall's denominator).
        interpolation: ``"all_point"``, ``"none"`` or ``"pku_official"`` (module docstring).
        hit: bool [N] for ``"pku_official"``: the detection matched some ground truth (default:
            ``true_positive``).
    Returns:
        AP in [0, 1]; 0 when there are no ground truths or no detections.
    """
    tp = np.asarray(true_positive, dtype=bool)
    if num_truths <= 0 or tp.size == 0:
        return 0.0
    if interpolation == "pku_official":
        return _pku_official_ap(tp, tp if hit is None else np.asarray(hit, bool), num_truths)
    ranks = np.arange(1, tp.size + 1)
    found = np.cumsum(tp)
    precision = found / ranks
    if interpolation == "none":
        return float(precision[tp].sum() / num_truths)
    if interpolation != "all_point":
        raise ValueError(f"unknown interpolation {interpolation!r}; choose all_point, none or pku_official")
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    recall_step = tp / num_truths
    return float((envelope * recall_step).sum())


def _pku_official_ap(tp: np.ndarray, hit: np.ndarray, num_truths: int) -> float:
    """The official ``ap()`` loop (ECHO960/PKU-MMD ``evaluate.py``), re-expressed on a ranking."""
    def pr(positive: int, proposals: int) -> tuple[float, float]:
        return (0.0, 0.0) if proposals == 0 else (positive / proposals, positive / num_truths)

    positive, proposals = int(tp.sum()), int(tp.size)
    best_precision, last_recall = pr(positive, proposals)
    score = 0.0
    for rank in range(tp.size - 1, -1, -1):  # drop the lowest-scored detection first
        proposals -= 1
        if not hit[rank]:
            continue
        positive -= int(tp[rank])
        precision, recall = pr(positive, proposals)
        best_precision = max(best_precision, precision)
        score += best_precision * (last_recall - recall)
        last_recall = recall
    return float(score)


def detection_map(detections: Mapping[str, Sequence[Segment]], truths: Mapping[str, Sequence[GroundTruth]],
                  iou_thresholds: Sequence[float] = PKU_IOU_THRESHOLDS, matching: Matching = "greedy",
                  interpolation: Interpolation = "all_point") -> dict:
    """mAP over sequences at each IoU threshold.

    Args:
        detections: sequence ID -> detected segments.
        truths: sequence ID -> ground truths (sequences absent here have none).
        iou_thresholds: thetas.
        matching, interpolation: see the module docstring.
    Returns:
        ``{"map": {theta: mAP}, "ap": {theta: {label: AP}}, "classes": [labels with ground truth],
        "num_truths": int, "num_detections": int}``; thetas as strings ``"0.5"``.
    """
    classes = sorted({t.label for items in truths.values() for t in items})
    result: dict = {"map": {}, "ap": {}, "classes": classes,
                    "num_truths": sum(len(v) for v in truths.values()),
                    "num_detections": sum(len(v) for v in detections.values())}
    for theta in iou_thresholds:
        key = f"{theta:g}"
        per_class = {}
        for label in classes:
            ranked = sorted(((seq, d) for seq, items in detections.items() for d in items if d.label == label),
                            key=lambda item: -item[1].score)
            gts = [(seq, t.start, t.end) for seq, items in truths.items() for t in items if t.label == label]
            tp, hit = match_ranked([(seq, d.start, d.end) for seq, d in ranked], gts, theta, matching)
            per_class[label] = average_precision(tp, len(gts), interpolation, hit)
        result["ap"][key] = per_class
        result["map"][key] = float(np.mean(list(per_class.values()))) if per_class else 0.0
    return result
