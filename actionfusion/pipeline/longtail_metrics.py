"""Long-tail metrics of a test evaluation: accuracy on the head, medium and tail classes, ranked by
how many training samples each class had, and a bar chart of per-class accuracy in that order.

Definitions (:func:`longtail_metrics`):

- the classes ranked are those with at least one test sample (accuracy is undefined elsewhere); a
  class absent from training counts 0 training samples;
- rank: training samples descending, ties by the lower label first;
- thirds: ``numpy.array_split`` of the ranking into 3, so with C = 3q + r the first r groups get one
  class more (C = 16: 6 / 5 / 5 head / medium / tail; C = 17: 6 / 6 / 5); with fewer than 3 classes
  the later groups are empty and their accuracy is None;
- a group's accuracy is the mean of its classes' accuracies (each class weighs the same, as in
  mean-class accuracy); ``top1`` is over samples.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from ..io import atomic_write_bytes

PathLike = Union[str, Path]

GROUPS: tuple[str, ...] = ("head", "medium", "tail")
PLOT_FILE = "per_class_accuracy{suffix}.png"


def training_counts(train_labels: Sequence[int]) -> Dict[int, int]:
    """{label: training samples} of a training set's labels."""
    labels, counts = np.unique(np.asarray(train_labels, dtype=np.int64), return_counts=True)
    return {int(label): int(count) for label, count in zip(labels, counts)}


def longtail_metrics(scores: np.ndarray, labels: np.ndarray, train_counts: Mapping[int, int]) -> Dict[str, Any]:
    """Top-1, mean-class accuracy, head / medium / tail accuracy and per-class accuracy (fractions).

    Args:
        scores: float [N, C] scores, or int [N] predicted labels.
        labels: int [N] true labels.
        train_counts: {label: training samples} (:func:`training_counts`).
    Returns:
        ``{"top1", "mean_class_accuracy", "head", "medium", "tail", "per_class"}``: each group is
        ``{"accuracy", "num_classes", "classes", "train_samples": [min, max]}``; ``per_class`` lists
        ``{"label", "train_samples", "test_samples", "accuracy"}`` in rank order.
    """
    scores, labels = np.asarray(scores), np.asarray(labels, dtype=np.int64)
    predictions = np.argmax(scores, axis=1) if scores.ndim == 2 else scores.astype(np.int64)
    if predictions.shape != labels.shape or labels.ndim != 1:
        raise ValueError(f"expected scores [N, C] or predictions [N] and labels [N], got {scores.shape} and "
                         f"{labels.shape}")
    present = np.unique(labels)
    ranked = sorted((int(c) for c in present), key=lambda c: (-int(train_counts.get(c, 0)), c))
    per_class: List[Dict[str, Any]] = []
    for label in ranked:
        mask = labels == label
        per_class.append({"label": label, "train_samples": int(train_counts.get(label, 0)),
                          "test_samples": int(mask.sum()), "accuracy": float(np.mean(predictions[mask] == label))})
    result: Dict[str, Any] = {
        "top1": float(np.mean(predictions == labels)) if len(labels) else None,
        "mean_class_accuracy": float(np.mean([row["accuracy"] for row in per_class])) if per_class else None,
    }
    for name, rows in zip(GROUPS, np.array_split(np.arange(len(per_class)), len(GROUPS))):
        group = [per_class[i] for i in rows]
        result[name] = {
            "accuracy": float(np.mean([row["accuracy"] for row in group])) if group else None,
            "num_classes": len(group),
            "classes": [row["label"] for row in group],
            "train_samples": [min(r["train_samples"] for r in group), max(r["train_samples"] for r in group)]
            if group else [],
        }
    result["per_class"] = per_class
    return result


def per_class_accuracy_png_bytes(metrics: Mapping[str, Any], title: str = "") -> bytes:
    """A bar chart (PNG) of per-class accuracy, classes in rank order (most training samples first),
    bars coloured by group, the training samples as a line on a second axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(metrics["per_class"])
    colours = {"head": "#1f77b4", "medium": "#ff7f0e", "tail": "#d62728"}
    group_of = {label: name for name in GROUPS for label in metrics[name]["classes"]}
    x = np.arange(len(rows))
    figure, axes = plt.subplots(figsize=(float(np.clip(0.12 * len(rows) + 4.0, 6.0, 24.0)), 4.0))
    axes.bar(x, [100 * r["accuracy"] for r in rows], color=[colours[group_of[r["label"]]] for r in rows], width=0.8)
    axes.set_ylim(0, 100)
    axes.set_ylabel("test accuracy (%)")
    axes.set_xlabel("classes, most training samples first")
    step = max(1, len(rows) // 40)
    axes.set_xticks(x[::step], [str(r["label"]) for r in rows][::step], fontsize=7, rotation=90)
    counts = axes.twinx()
    counts.plot(x, [r["train_samples"] for r in rows], color="black", linewidth=1.0)
    counts.set_ylabel("training samples")
    counts.set_ylim(bottom=0)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[name]) for name in GROUPS]
    labels = [f"{name} {100 * metrics[name]['accuracy']:.1f}%" if metrics[name]["accuracy"] is not None else name
              for name in GROUPS]
    axes.legend(handles, labels, loc="upper right", fontsize=8)
    axes.set_title(title or f"per-class accuracy, {len(rows)} classes")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()


def longtail_report(out_dir: Optional[PathLike], scores: np.ndarray, labels: np.ndarray,
                    train_set: Any, suffix: str = "") -> Optional[Dict[str, Any]]:
    """:func:`longtail_metrics` of an evaluation against ``train_set.labels``, and with ``out_dir``
    its ``per_class_accuracy<suffix>.png`` there (atomic). None, and nothing written, when the training
    set has no ``labels`` or nothing was scored."""
    train_labels = getattr(train_set, "labels", None)
    if train_labels is None or len(labels) == 0:
        return None
    metrics = longtail_metrics(scores, labels, training_counts(train_labels))
    if out_dir is not None:
        atomic_write_bytes(Path(out_dir) / PLOT_FILE.format(suffix=suffix), per_class_accuracy_png_bytes(metrics))
    return metrics
