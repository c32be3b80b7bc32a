"""Long-tail metrics: head / medium / tail accuracy by training count, the per-class chart, and train's outputs."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from actionfusion.pipeline.longtail_metrics import (
    longtail_metrics, longtail_report, per_class_accuracy_png_bytes, training_counts,
)
from trainer_standins import tiny_config, tiny_datasets

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# Training counts: class 0 most, 1 and 2 tied (1 ranks first), 3 rare, 4 never seen in training.
TRAIN_LABELS = [0] * 10 + [1] * 5 + [2] * 5 + [3]
LABELS = np.array([0, 0, 0, 0, 1, 1, 2, 2, 3, 4])
PREDICTIONS = np.array([0, 0, 0, 1, 1, 0, 0, 3, 3, 0])


def test_groups_against_a_hand_computation() -> None:
    counts = training_counts(TRAIN_LABELS)
    assert counts == {0: 10, 1: 5, 2: 5, 3: 1}
    result = longtail_metrics(PREDICTIONS, LABELS, counts)
    # Per class: 3/4, 1/2, 0/2, 1/1, 0/1. Rank 0, 1, 2, 3, 4; 5 classes split 2 / 2 / 1.
    assert [row["label"] for row in result["per_class"]] == [0, 1, 2, 3, 4]
    assert [row["accuracy"] for row in result["per_class"]] == [0.75, 0.5, 0.0, 1.0, 0.0]
    assert [row["train_samples"] for row in result["per_class"]] == [10, 5, 5, 1, 0]
    assert result["top1"] == pytest.approx(0.5) and result["mean_class_accuracy"] == pytest.approx(0.45)
    assert result["head"] == {"accuracy": pytest.approx(0.625), "num_classes": 2, "classes": [0, 1],
                              "train_samples": [5, 10]}
    assert result["medium"]["classes"] == [2, 3] and result["medium"]["accuracy"] == pytest.approx(0.5)
    assert result["tail"]["classes"] == [4] and result["tail"]["accuracy"] == 0.0
    # Scores give the same as their argmax.
    scores = np.eye(5)[PREDICTIONS] + 0.01
    assert longtail_metrics(scores, LABELS, counts) == result


def test_ranking_uses_training_counts_not_labels() -> None:
    counts = {0: 1, 1: 2, 2: 3, 3: 4, 4: 5, 5: 6}
    labels = np.arange(6)
    result = longtail_metrics(labels, labels, counts)
    assert result["head"]["classes"] == [5, 4] and result["tail"]["classes"] == [1, 0]
    few = longtail_metrics(np.array([0]), np.array([0]), {0: 3})
    assert few["head"]["accuracy"] == 1.0 and few["medium"]["accuracy"] is None and few["tail"]["num_classes"] == 0


def test_chart_and_report_are_written(tmp_path) -> None:
    result = longtail_metrics(PREDICTIONS, LABELS, training_counts(TRAIN_LABELS))
    assert per_class_accuracy_png_bytes(result).startswith(PNG_MAGIC)

    class Train:
        labels = TRAIN_LABELS

    assert longtail_report(tmp_path, PREDICTIONS, LABELS, Train(), "_test") == result
    assert (tmp_path / "per_class_accuracy_test.png").read_bytes().startswith(PNG_MAGIC)
    assert longtail_report(tmp_path, PREDICTIONS, LABELS, object()) is None  # no labels: nothing written
    assert not (tmp_path / "per_class_accuracy.png").exists()


@pytest.mark.usefixtures("one_thread")
def test_train_writes_longtail_metrics_and_chart(tmp_path) -> None:
    from actionfusion.pipeline.trainer import train

    datasets = tiny_datasets(train_size=20)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="TensorBoard logging is off")
        results = train(tiny_config(epochs=1), tmp_path, progress=False, datasets=datasets)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["longtail"] == results["longtail"]
    assert metrics["longtail"]["top1"] == pytest.approx(metrics["top1"])
    assert metrics["longtail"]["mean_class_accuracy"] == pytest.approx(metrics["mean_class_accuracy"])
    assert [row["train_samples"] for row in metrics["longtail"]["per_class"]] == [4] * 5
    assert (tmp_path / "per_class_accuracy.png").read_bytes().startswith(PNG_MAGIC)
