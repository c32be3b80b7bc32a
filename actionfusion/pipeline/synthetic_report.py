"""Held-out accuracy on the synthetic set, split by what tells the classes apart.

The synthetic dataset has classes that motion tells apart (single-person motions and
two-person interactions) and classes that differ only by a held object (drink / brush
teeth / phone call), which a skeleton cannot see. Reporting them apart shows what each
modality can and cannot do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Union

import numpy as np

from ..datasets.synthetic.action_library import synthetic_classes
from ..io import load_npy


def accuracy_by_class_kind(scores: np.ndarray, labels: np.ndarray) -> Dict[str, object]:
    """Top-1 accuracy overall and per synthetic class kind.

    Args:
        scores: float [N, num_classes] class scores (e.g. ``scores_test.npy``).
        labels: int [N] 0-based labels.
    Returns:
        {"overall", "motion_told_apart" (motion + interaction classes), "held_object",
         "counts": {subset: N}} with accuracies in [0, 1] (None for an empty subset).
    """
    scores = np.asarray(scores)
    labels = np.asarray(labels, dtype=np.int64)
    if scores.ndim != 2 or scores.shape[0] != labels.shape[0]:
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} do not match")
    correct = scores.argmax(axis=1) == labels
    kind_of_label = {cls.label: cls.kind for cls in synthetic_classes()}
    kinds = np.array([kind_of_label.get(int(label), "other") for label in labels])
    subsets = {
        "overall": np.ones_like(correct),
        "motion_told_apart": np.isin(kinds, ("motion", "interaction")),
        "held_object": kinds == "object",
    }
    report: Dict[str, object] = {
        name: (float(correct[mask].mean()) if mask.any() else None) for name, mask in subsets.items()
    }
    report["counts"] = {name: int(mask.sum()) for name, mask in subsets.items()}
    return report


def work_dir_accuracy_by_class_kind(work_dir: Union[str, Path], split: str = "test") -> Dict[str, object]:
    """:func:`accuracy_by_class_kind` from a training run's ``scores_<split>.npy`` / ``labels_<split>.npy``."""
    work_dir = Path(work_dir)
    return accuracy_by_class_kind(load_npy(work_dir / f"scores_{split}.npy"), load_npy(work_dir / f"labels_{split}.npy"))
