"""Held-out accuracy of a trained Recognizer with only some of its modalities present.

A Recognizer trained with modality dropout classifies from any subset of its inputs; this
scores the test split once per encoder with only that encoder's batch keys delivered (the
others are not loaded at all), and once with everything (reusing the training run's own test
scores of the same weights when the work dir has them). Writes ``metrics_by_modality.json``::

    {"all": {"modalities": [...], "top1": ..., ...}, "skeleton": {...}, "depth": {...}}
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Union

import torch
from torch import nn

from ..io import atomic_write_json, load_json, load_npy
from .checkpoints import BEST_WEIGHTS, load_weights
from .distributed import init_distributed, per_process_batch_size, shutdown_distributed, wrap_model
from .evaluation import evaluate_dataset
from .loaders import build_eval_loader
from .model_inputs import ModelInput
from .train_loop import FeaturesAndLogits

METRICS_FILE = "metrics_by_modality.json"


def _training_evaluation(work_dir: Path, split: str) -> Optional[tuple]:
    """(metrics, scores [N, C], labels [N]) of ``split`` as :func:`~.trainer.train` wrote them, or None."""
    files = [work_dir / "metrics.json", work_dir / f"scores_{split}.npy", work_dir / f"labels_{split}.npy"]
    if not all(path.is_file() for path in files):
        return None
    metrics = load_json(files[0]).get(split)
    if not isinstance(metrics, dict):
        return None
    return metrics, load_npy(files[1]), load_npy(files[2])


class SubsetInputs(nn.Module):
    """Feeds ``model`` (a :class:`FeaturesAndLogits`) only the batch keys ``keys``, always as a dict."""

    def __init__(self, model: nn.Module, keys: Sequence[str]) -> None:
        super().__init__()
        self.module = model
        self.input_keys = tuple(keys)

    def forward(self, x: ModelInput):
        return self.module(x if isinstance(x, dict) else {self.input_keys[0]: x})


def encoder_subsets(model: nn.Module) -> Dict[str, tuple[str, ...]]:
    """{"all": every key, entry: that encoder's keys} of a Recognizer; {} for other models."""
    keys = getattr(model, "encoder_keys", None)
    if not isinstance(keys, Mapping) or len(keys) < 2:
        return {}
    return {"all": tuple(model.input_keys), **{entry: tuple(k) for entry, k in keys.items()}}


def evaluate_modality_subsets(cfg: Any, work_dir: Union[str, Path], split: str = "test",
                              weights: Optional[Union[str, Path]] = None, progress: bool = True,
                              class_kind_report: bool = False) -> Dict[str, Dict[str, Any]]:
    """Score ``split`` with all modalities and with each encoder's alone; write ``METRICS_FILE``.

    Args:
        cfg: the experiment (a Recognizer config).
        work_dir: the training run (its ``best.safetensors`` unless ``weights`` is given).
        class_kind_report: add the synthetic set's accuracy by class kind (motion / held object).
    Returns:
        {subset: metrics} ({} when the model is not a multi-encoder Recognizer).
    """
    from .data_builder import build_datasets
    from .resume_config import with_recorded_num_classes
    from .synthetic_report import accuracy_by_class_kind
    from .trainer import build_model, limit_cpu_threads

    work_dir = Path(work_dir)
    cfg = with_recorded_num_classes(cfg, work_dir)  # num_classes: auto, as training resolved it
    ctx = init_distributed()
    try:
        limit_cpu_threads(cfg, ctx)
        base = build_model(cfg)
        subsets = encoder_subsets(base)
        if not subsets:
            return {}
        load_weights(Path(weights) if weights is not None else work_dir / BEST_WEIGHTS, base)
        wrapped = wrap_model(FeaturesAndLogits(base), ctx)
        results: Dict[str, Dict[str, Any]] = {}
        if weights is None:  # the training run already scored these weights with every modality
            own = _training_evaluation(work_dir, split)
            if own is not None:
                metrics, scores, labels = own
                results["all"] = {"modalities": list(subsets["all"]), **metrics}
                if class_kind_report:
                    results["all"]["by_class_kind"] = accuracy_by_class_kind(scores, labels)
        for subset, keys in subsets.items():
            if subset in results:
                continue
            data = dataclasses.replace(cfg.data, modalities=[m for m in cfg.data.modalities if m in keys])
            datasets = build_datasets(dataclasses.replace(cfg, data=data))
            loader = build_eval_loader(datasets[split], ctx, per_process_batch_size(cfg.data.batch_size, ctx),
                                       int(cfg.data.num_workers))
            model = SubsetInputs(wrapped, keys)
            with torch.no_grad():
                metrics, scores, labels = evaluate_dataset(model, loader, ctx, int(cfg.model.num_classes),
                                                           progress=progress, desc=f"{split} [{subset}]")
            entry: Dict[str, Any] = {"modalities": list(keys), **metrics}
            if class_kind_report:
                entry["by_class_kind"] = accuracy_by_class_kind(scores, labels)
            results[subset] = entry
        if ctx.is_main:
            atomic_write_json(work_dir / METRICS_FILE, results)
        return results
    finally:
        shutdown_distributed(ctx)
