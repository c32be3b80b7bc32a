"""Classification metrics, confusion matrices, per-class tables, multi-clip averaging, late fusion.

Scores are float arrays [N, C] (logits or probabilities; argmax-based metrics do not care),
labels int64 [N] with 0-based class ids (NTU: ``action - 1``).
"""

from __future__ import annotations

import csv
import errno
import io
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from ..datasets.ntu.constants import NTU120_CLASS_NAMES
from ..errors import FileFormatError, UsageError, one_line
from ..io import atomic_save_npy, atomic_write_bytes, atomic_write_json, atomic_write_text, load_json, load_npy

PathLike = Union[str, Path]

# Late-fusion weights of the four skeleton streams, J:B:JM:BM = 2:2:1:1 (pyskl's 4-stream ensemble).
DEFAULT_STREAM_WEIGHTS: Dict[str, float] = {"joint": 2.0, "bone": 2.0, "joint_motion": 1.0, "bone_motion": 1.0}


def _check(scores: np.ndarray, labels: np.ndarray) -> None:
    if scores.ndim != 2 or labels.ndim != 1 or scores.shape[0] != labels.shape[0]:
        raise ValueError(f"expected scores [N, C] and labels [N], got {scores.shape} and {labels.shape}")


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, k: int = 1) -> float:
    """Fraction of samples whose label is among the ``k`` highest scores (k capped at C).

    Ties are broken by the lower class id (a stable sort of -scores).
    """
    scores, labels = np.asarray(scores), np.asarray(labels)
    _check(scores, labels)
    if len(labels) == 0:
        return float("nan")
    k = min(int(k), scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=1)))


def per_class_accuracy(labels: np.ndarray, predictions: np.ndarray) -> Dict[int, float]:
    """{class id: accuracy} over the classes present in ``labels`` (int [N] each)."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    return {int(c): float(np.mean(predictions[labels == c] == c)) for c in np.unique(labels)}


def mean_class_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mean over the classes present in ``labels`` of each class's top-1 accuracy."""
    scores, labels = np.asarray(scores), np.asarray(labels)
    _check(scores, labels)
    if len(labels) == 0:
        return float("nan")
    return float(np.mean(list(per_class_accuracy(labels, np.argmax(scores, axis=1)).values())))


def classification_metrics(scores: np.ndarray, labels: np.ndarray) -> Dict[str, float]:
    """top1, top5, mean_class_accuracy (fractions in [0, 1]), num_samples, num_classes_present."""
    return {
        "top1": topk_accuracy(scores, labels, 1),
        "top5": topk_accuracy(scores, labels, 5),
        "mean_class_accuracy": mean_class_accuracy(scores, labels),
        "num_samples": int(len(labels)),
        "num_classes_present": int(len(np.unique(labels))),
    }


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """int64 [C, C]: entry (i, j) counts samples of true class i predicted as j."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels, dtype=np.int64), np.asarray(predictions, dtype=np.int64)), 1)
    return matrix


def class_name(label: int, class_names: Optional[Sequence[str]] = None) -> str:
    """The name of class ``label`` (NTU-120 names by default; "class <id>" past the list)."""
    names = NTU120_CLASS_NAMES if class_names is None else class_names
    return names[label] if 0 <= label < len(names) else f"class {label}"


def per_class_rows(labels: np.ndarray, predictions: np.ndarray, class_names: Optional[Sequence[str]] = None) -> List[dict]:
    """One row per class present in ``labels``: label, name, samples, correct, accuracy."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    rows = []
    for c in np.unique(labels):
        mask = labels == c
        correct = int(np.sum(predictions[mask] == c))
        rows.append(
            {"label": int(c), "name": class_name(int(c), class_names), "samples": int(mask.sum()), "correct": correct,
             "accuracy": correct / int(mask.sum())}
        )
    return rows


def per_class_csv(rows: Sequence[Mapping[str, object]]) -> str:
    """The per-class rows as CSV text (header label,name,samples,correct,accuracy)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["label", "name", "samples", "correct", "accuracy"], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "accuracy": f"{float(row['accuracy']):.4f}"})
    return buffer.getvalue()


def per_class_markdown(rows: Sequence[Mapping[str, object]]) -> str:
    """The per-class rows as a Markdown table, accuracy in percent."""
    lines = ["| label | class | samples | correct | accuracy (%) |", "|---:|---|---:|---:|---:|"]
    for row in rows:
        lines.append(
            f"| {row['label']} | {row['name']} | {row['samples']} | {row['correct']} | {100 * float(row['accuracy']):.2f} |"
        )
    return "\n".join(lines) + "\n"


CONFUSION_VALUES_UP_TO = 30
"""Classes up to which the confusion image writes each cell's value."""


def confusion_png_bytes(labels: np.ndarray, predictions: np.ndarray, class_names: Optional[Sequence[str]] = None) -> bytes:
    """A row-normalised confusion matrix image (PNG) restricted to the classes that occur.

    The axes list the classes present among the labels or the predictions, named. Up to
    :data:`CONFUSION_VALUES_UP_TO` classes, every non-empty cell shows its percentage of the row. The
    title gives the sample count, top-1 and mean class accuracy in percent, wrapped, never clipped.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, predictions = np.asarray(labels, dtype=np.int64), np.asarray(predictions, dtype=np.int64)
    present = np.union1d(np.unique(labels), np.unique(predictions))
    position = {int(c): i for i, c in enumerate(present)}
    matrix = confusion_matrix(
        np.array([position[int(c)] for c in labels]), np.array([position[int(c)] for c in predictions]), len(present)
    ).astype(np.float64)
    totals = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    names = [f"{int(c)}: {class_name(int(c), class_names)[:30]}" for c in present]
    side = float(np.clip(0.28 * len(present) + 3.0, 5.0, 40.0))
    figure, axes = plt.subplots(figsize=(side, side))
    image = axes.imshow(100 * normalised, cmap="Blues", vmin=0.0, vmax=100.0)
    axes.set_xticks(range(len(present)), names, rotation=90, fontsize=7)
    axes.set_yticks(range(len(present)), names, fontsize=7)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    if len(present) <= CONFUSION_VALUES_UP_TO:
        for row, col in zip(*np.nonzero(matrix)):
            value = normalised[row, col]
            axes.text(col, row, f"{100 * value:.0f}", ha="center", va="center", fontsize=7,
                      color="white" if value > 0.5 else "black")
    top1 = float(np.mean(labels == predictions)) if len(labels) else 0.0
    rows = totals[:, 0] > 0
    mean_class = float(np.mean(np.diag(normalised)[rows])) if rows.any() else 0.0
    axes.set_title(f"confusion, % of each true class ({len(labels)} samples)\n"
                   f"top-1 {100 * top1:.1f}%, mean class accuracy {100 * mean_class:.1f}%", fontsize=9, wrap=True)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="% of the true class")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()


def softmax(scores: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax along ``axis``."""
    shifted = scores - np.max(scores, axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / np.sum(exp, axis=axis, keepdims=True)


def average_clip_scores(clip_scores: np.ndarray, mode: str = "prob") -> np.ndarray:
    """[N, K, C] per-clip logits -> [N, C]: mean of softmax probabilities ("prob", pyskl's default)
    or of the raw logits ("score")."""
    clip_scores = np.asarray(clip_scores, dtype=np.float64)
    if clip_scores.ndim != 3:
        raise ValueError(f"expected clip scores [N, K, C], got {clip_scores.shape}")
    if mode == "prob":
        return softmax(clip_scores, axis=-1).mean(axis=1).astype(np.float32)
    if mode == "score":
        return clip_scores.mean(axis=1).astype(np.float32)
    raise ValueError(f"mode must be 'prob' or 'score', not {mode!r}")


def late_fusion(stream_scores: Sequence[np.ndarray], weights: Optional[Sequence[float]] = None) -> np.ndarray:
    """Weighted sum of several streams' scores (each [N, C], same sample order) -> [N, C].

    ``weights`` default to 1 each; with four streams given in J, B, JM, BM order use
    ``DEFAULT_STREAM_WEIGHTS`` (2:2:1:1).
    """
    if not stream_scores:
        raise UsageError("late fusion needs at least one stream")
    weights = [1.0] * len(stream_scores) if weights is None else [float(w) for w in weights]
    if len(weights) != len(stream_scores):
        raise UsageError(f"{len(stream_scores)} score arrays but {len(weights)} weights: give one weight per stream")
    if not all(np.isfinite(w) and w >= 0 for w in weights) or not any(w > 0 for w in weights):
        raise UsageError(f"weights {weights}: each must be finite and non-negative, and one positive")
    shape = np.asarray(stream_scores[0]).shape
    for scores in stream_scores:
        if np.asarray(scores).shape != shape:
            raise UsageError(f"score arrays differ in shape: {shape} vs {np.asarray(scores).shape}: fuse streams "
                             "scored on the same split")
    fused = np.zeros(shape, dtype=np.float64)
    for scores, weight in zip(stream_scores, weights):
        fused += weight * np.asarray(scores, dtype=np.float64)
    return fused.astype(np.float32)


def _companion(score_file: Path, kind: str, suffix: str) -> Path:
    """``scores_test.npy`` -> ``labels_test.npy`` / ``names_test.json`` beside it."""
    stem = score_file.stem
    tail = stem[len("scores"):] if stem.startswith("scores") else ""
    return score_file.with_name(f"{kind}{tail}{suffix}")


def _read_npy(path: Path) -> np.ndarray:
    try:
        return load_npy(path)
    except FileNotFoundError:
        raise
    except (ValueError, OSError, EOFError) as error:  # damaged, or holds pickled objects (refused)
        raise FileFormatError(path, f"not a plain .npy array ({one_line(error, 120)})") from None


def _score_array(path: Path) -> np.ndarray:
    """A ``scores_<split>.npy``: finite float [N, C]."""
    scores = _read_npy(path)
    if scores.ndim != 2 or not np.issubdtype(scores.dtype, np.number):
        raise FileFormatError(path, f"expected scores [N, C], got {scores.dtype} {tuple(scores.shape)}")
    bad = np.flatnonzero(~np.isfinite(scores).all(axis=1))
    if bad.size:
        raise FileFormatError(path, f"{bad.size} rows hold NaN or inf (first: row {int(bad[0])}): score the "
                                    "stream again")
    return scores


def _label_array(path: Path, count: int) -> np.ndarray:
    """A ``labels_<split>.npy`` beside its scores: integer [N]."""
    if not path.is_file():
        raise FileNotFoundError(errno.ENOENT, "the labels file beside the scores is missing "
                                "(`actionfusion evaluate` writes both)", str(path))
    labels = _read_npy(path)
    if labels.shape != (count,) or not np.issubdtype(labels.dtype, np.integer):
        raise FileFormatError(path, f"expected {count} integer labels, got {labels.dtype} {tuple(labels.shape)}")
    return labels


def fuse_scores(score_files: Sequence[PathLike], weights: Optional[Sequence[float]] = None,
                out_dir: Optional[PathLike] = None) -> Dict[str, object]:
    """Late-fuse saved score arrays (``scores_<split>.npy`` from training runs) and score them.

    Each score file needs its ``labels_<split>.npy`` beside it (and ``names_<split>.json`` when
    present): all streams must list the same samples in the same order. Returns the fused
    metrics; with ``out_dir`` also writes ``fused_metrics.json`` and ``fused_scores.npy`` there.
    """
    paths = [Path(p) for p in score_files]
    if weights is not None and len(weights) != len(paths):
        raise UsageError(f"{len(paths)} score files but {len(weights)} weights: give one weight per stream")
    scores = [_score_array(p) for p in paths]
    labels = [_label_array(_companion(p, "labels", ".npy"), len(s)) for p, s in zip(paths, scores)]
    for path, other in zip(paths[1:], labels[1:]):
        if not np.array_equal(other, labels[0]):
            raise FileFormatError(path, f"its labels differ from {paths[0]}'s: the streams were not scored on the "
                                        "same samples")
    names = [_companion(p, "names", ".json") for p in paths]
    if all(n.is_file() for n in names):
        first = load_json(names[0])
        for path in names[1:]:
            if load_json(path) != first:
                raise FileFormatError(path, f"sample order differs from {names[0]}")
    fused = late_fusion(scores, weights)
    result: Dict[str, object] = dict(classification_metrics(fused, labels[0]))
    result["streams"] = [str(p) for p in paths]
    result["weights"] = [1.0] * len(paths) if weights is None else [float(w) for w in weights]
    result["per_stream_top1"] = [topk_accuracy(s, labels[0], 1) for s in scores]
    if out_dir is not None:
        out = Path(out_dir)
        atomic_write_json(out / "fused_metrics.json", result)
        atomic_save_npy(out / "fused_scores.npy", fused)
    return result


def write_evaluation_outputs(out_dir: PathLike, scores: np.ndarray, labels: np.ndarray, names: Sequence[str],
                             split: str, report_suffix: str = "", class_names: Optional[Sequence[str]] = None) -> None:
    """Write the outputs of one evaluation into ``out_dir`` (all atomic).

    For late fusion: ``scores_<split>.npy`` (float32 [N, C]), ``labels_<split>.npy`` (int64 [N]),
    ``names_<split>.json``. Reports: ``confusion<report_suffix>.png``, ``per_class<report_suffix>.csv``
    and ``.md`` (classes present only).
    """
    out = Path(out_dir)
    predictions = np.argmax(scores, axis=1)
    rows = per_class_rows(labels, predictions, class_names)
    atomic_save_npy(out / f"scores_{split}.npy", np.asarray(scores, dtype=np.float32))
    atomic_save_npy(out / f"labels_{split}.npy", np.asarray(labels, dtype=np.int64))
    atomic_write_json(out / f"names_{split}.json", list(names))
    atomic_write_bytes(out / f"confusion{report_suffix}.png", confusion_png_bytes(labels, predictions, class_names))
    atomic_write_text(out / f"per_class{report_suffix}.csv", per_class_csv(rows))
    atomic_write_text(out / f"per_class{report_suffix}.md", per_class_markdown(rows))
