"""Metrics on hand-computed examples, confusion/per-class outputs, clip averaging and late fusion."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from actionfusion.datasets.ntu.constants import NTU120_CLASS_NAMES
from actionfusion.pipeline.metrics import (
    DEFAULT_STREAM_WEIGHTS,
    average_clip_scores,
    classification_metrics,
    confusion_matrix,
    confusion_png_bytes,
    fuse_scores,
    late_fusion,
    mean_class_accuracy,
    per_class_csv,
    per_class_markdown,
    per_class_rows,
    topk_accuracy,
    write_evaluation_outputs,
)

# 6 samples, 7 classes; class 4 never occurs as a label.
SCORES = np.array(
    [
        # rank of the true class given in the comment
        [0.9, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0],  # label 0: rank 1
        [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7],  # label 0: rank 7 (lowest)
        [0.0, 0.5, 0.1, 0.2, 0.3, 0.4, 0.6],  # label 1: rank 2
        [0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1],  # label 2: rank 3
        [0.1, 0.2, 0.3, 0.9, 0.0, 0.0, 0.0],  # label 3: rank 1
        [0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0],  # label 6: rank 7
    ]
)
LABELS = np.array([0, 0, 1, 2, 3, 6])


def test_topk_by_hand():
    assert topk_accuracy(SCORES, LABELS, 1) == pytest.approx(2 / 6)
    assert topk_accuracy(SCORES, LABELS, 2) == pytest.approx(3 / 6)
    assert topk_accuracy(SCORES, LABELS, 3) == pytest.approx(4 / 6)
    assert topk_accuracy(SCORES, LABELS, 5) == pytest.approx(4 / 6)
    assert topk_accuracy(SCORES, LABELS, 7) == 1.0
    assert topk_accuracy(SCORES, LABELS, 50) == 1.0  # k capped at C


def test_mean_class_accuracy_ignores_absent_classes():
    # Present classes 0, 1, 2, 3, 6 with accuracies 1/2, 0, 0, 1, 0 -> 1.5 / 5; class 4 (absent) and
    # class 5 (absent) do not count, although a prediction (sample 1) went to class 6.
    assert mean_class_accuracy(SCORES, LABELS) == pytest.approx(1.5 / 5)
    metrics = classification_metrics(SCORES, LABELS)
    assert metrics["num_classes_present"] == 5 and metrics["num_samples"] == 6
    assert metrics["top5"] == pytest.approx(4 / 6)


def test_topk_breaks_ties_towards_lower_class_id():
    scores = np.array([[1.0, 1.0, 1.0]])
    assert topk_accuracy(scores, np.array([0]), 1) == 1.0
    assert topk_accuracy(scores, np.array([2]), 2) == 0.0


def test_confusion_and_per_class_tables():
    predictions = SCORES.argmax(axis=1)  # [0, 6, 6, 0, 3, 0]
    matrix = confusion_matrix(LABELS, predictions, 7)
    assert matrix.sum() == 6 and matrix[0, 0] == 1 and matrix[0, 6] == 1 and matrix[6, 0] == 1
    rows = per_class_rows(LABELS, predictions)
    assert [r["label"] for r in rows] == [0, 1, 2, 3, 6]
    assert rows[0]["name"] == NTU120_CLASS_NAMES[0] and rows[0]["accuracy"] == 0.5
    parsed = list(csv.DictReader(io.StringIO(per_class_csv(rows))))
    assert [int(r["samples"]) for r in parsed] == [2, 1, 1, 1, 1]
    assert "| 3 | " + NTU120_CLASS_NAMES[3] + " | 1 | 1 | 100.00 |" in per_class_markdown(rows)
    png = confusion_png_bytes(LABELS, predictions)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_clip_averaging_prob_vs_score():
    clips = np.array([[[10.0, 0.0], [0.0, 1.0]]])  # one sample, two clips
    prob = average_clip_scores(clips, "prob")
    assert prob.shape == (1, 2) and prob.sum() == pytest.approx(1.0, abs=1e-6)
    # Probabilities: clip 1 is ~[1, 0], clip 2 is [0.269, 0.731] -> mean [0.634, 0.366].
    assert prob[0, 0] == pytest.approx((1 / (1 + np.exp(-10)) + 1 / (1 + np.e)) / 2, rel=1e-5)
    np.testing.assert_allclose(average_clip_scores(clips, "score"), [[5.0, 0.5]])


def test_late_fusion_weights_change_the_winner():
    joint = np.array([[0.6, 0.4]])
    bone = np.array([[0.3, 0.7]])
    assert late_fusion([joint, bone]).argmax() == 1  # 0.9 vs 1.1
    assert late_fusion([joint, bone], [3, 1]).argmax() == 0  # 2.1 vs 1.9
    assert list(DEFAULT_STREAM_WEIGHTS.values()) == [2.0, 2.0, 1.0, 1.0]
    with pytest.raises(ValueError):
        late_fusion([joint, bone], [1.0])


def test_fuse_scores_reads_saved_streams(tmp_path):
    labels = np.array([0, 1, 1])
    streams = {
        "joint": np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]]),  # 2/3 correct
        "bone": np.array([[0.6, 0.4], [0.1, 0.9], [0.6, 0.4]]),  # 2/3 correct
    }
    files = []
    for name, scores in streams.items():
        write_evaluation_outputs(tmp_path / name, scores, labels, ["a", "b", "c"], "test")
        files.append(tmp_path / name / "scores_test.npy")
    fused = fuse_scores(files, [1.0, 1.0], out_dir=tmp_path / "fused")
    assert fused["top1"] == 1.0  # fused: [1.5, .5], [.7, 1.3], [.8, 1.2]
    assert fused["per_stream_top1"] == [pytest.approx(2 / 3)] * 2
    saved = json.loads((tmp_path / "fused" / "fused_metrics.json").read_text())
    assert saved["top1"] == 1.0
    # Streams scored on different samples are refused.
    write_evaluation_outputs(tmp_path / "other", streams["bone"], np.array([1, 1, 1]), ["a", "b", "c"], "test")
    with pytest.raises(ValueError, match="labels differ"):
        fuse_scores([files[0], tmp_path / "other" / "scores_test.npy"])
