"""``pretrain``: self-supervised pretraining of an encoder through the one engine.

The config names the encoder (``model``, built with ``num_classes=0``: no head) and a
pretraining objective (``objective: {name: mamp, kwargs: {...}}``). Validation computes
``val/loss`` (the objective on the validation split, with a fixed random stream) after every
``train.eval_every`` epochs, and an online kNN monitor ``val/knn_top1`` (cosine, k = 1, the
training clips without augmentation as the bank) every ``train.knn_every`` epochs; ``train.select_by``
picks the weights from either, or ``last``.

Outputs in ``work_dir`` besides the engine's (checkpoints, ``history.json``, ``log.txt``, ``tb/``):
``encoder.safetensors`` (the selected encoder, what ``model.pretrained`` / ``--pretrained`` loads),
``encoder.json`` (which model and objective wrote it), ``objective.safetensors`` (the objective's
own state, e.g. MAMP's decoder), ``metrics.json`` (kNN top-1 of the test split against the
training bank for k in 1, 2, 5, 10) and ``embedding_test.png`` (t-SNE of the test features).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Union

import torch

from ..io import atomic_write_json
from .checkpoints import BEST_WEIGHTS, load_weights, save_weights
from .config import ConfigError
from .distributed import DistContext, all_reduce_sum, barrier, init_distributed, per_process_batch_size, shutdown_distributed
from ..objectives.base import attach_objective
from .engine import check_selection_metric, check_work_dir, fit, limit_cpu_threads, seed_everything, start_work_dir
from .evaluation import autocast_context
from .feature_bank import pooled_features
from .loaders import build_eval_loader
from .trainer import build_model, build_objective, default_work_dir, initialise_from, load_pretrained

PathLike = Union[str, Path]

ENCODER_WEIGHTS = "encoder.safetensors"
OBJECTIVE_WEIGHTS = "objective.safetensors"
KNN_KS = (1, 2, 5, 10)


@torch.no_grad()
def objective_loss(module: torch.nn.Module, loader: Any, ctx: DistContext, seed: int, amp: bool) -> float:
    """Mean objective loss over a split (eval mode, every rank's samples), with the torch random
    stream forked and seeded from ``seed`` so that masks and views are the same at every epoch."""
    inner = module.module if isinstance(module, torch.nn.parallel.DistributedDataParallel) else module
    was_training = inner.training
    inner.eval()
    total, count = 0.0, 0.0
    with torch.random.fork_rng(devices=[ctx.device] if ctx.device.type == "cuda" else []):
        torch.manual_seed(int(seed))
        for batch in loader:
            with autocast_context(ctx, amp):
                out = inner(batch)
            total += float(out.loss) * out.batch_size
            count += out.batch_size
    inner.train(was_training)
    total, count = all_reduce_sum([total, count], ctx)
    return total / max(count, 1.0)


def knn_scores(model: torch.nn.Module, bank_loader: Any, query_loader: Any, ctx: DistContext, amp: bool,
               ks: Sequence[int] = KNN_KS) -> Dict[int, float]:
    """Cosine kNN top-1 of the query split against the bank split's pooled features, per k."""
    from .protocols.knn import knn_accuracy

    bank, bank_labels = pooled_features(model, bank_loader, ctx, amp=amp)
    queries, query_labels = pooled_features(model, query_loader, ctx, amp=amp)
    usable = tuple(k for k in ks if k <= len(bank))
    return knn_accuracy(torch.from_numpy(bank), torch.from_numpy(bank_labels), torch.from_numpy(queries),
                        torch.from_numpy(query_labels), ks=usable)


def pretrain(cfg: Any, work_dir: PathLike, resume: bool = False, progress: bool = True,
             datasets: Optional[Mapping[str, Any]] = None, allow_config_change: bool = False) -> Dict[str, Any]:
    """Pretrain ``cfg``'s encoder with its objective into ``work_dir``; returns the final metrics.

    Args:
        cfg: an :class:`~actionfusion.pipeline.config.ExperimentConfig` whose objective needs no labels.
        work_dir: output folder; a fresh run refuses one that holds checkpoints.
        resume: continue from the newest checkpoint (bit-identical to an uninterrupted run on CPU).
        progress: progress bars and console lines (rank 0).
        allow_config_change: resume even if the config changed, recording both (see :mod:`.resume_config`).
        datasets: ``{"train", "val", "test"}`` (optionally ``"train_eval"``, ``"val_objective"``) instead of
            ``build_datasets(cfg, train_eval=True)``.
    """
    work_dir = Path(work_dir)
    check_work_dir(work_dir, resume)
    ctx = init_distributed()
    try:
        results = _pretrain(cfg, work_dir, resume, progress, datasets, ctx, allow_config_change)
        barrier(ctx)
        return results
    finally:
        shutdown_distributed(ctx)


def _pretrain(cfg: Any, work_dir: Path, resume: bool, progress: bool, datasets: Optional[Mapping[str, Any]],
              ctx: DistContext, allow_config_change: bool = False) -> Dict[str, Any]:
    seed_everything(cfg.seed, cfg.train.deterministic)
    limit_cpu_threads(cfg, ctx)
    objective = build_objective(cfg)
    if getattr(objective, "needs_labels", True):
        raise ConfigError("objective.name", f"{cfg.objective.name!r} trains on labels: use `actionfusion train`, "
                                            "or name a pretraining objective (e.g. mamp)")
    if cfg.data.views < int(getattr(objective, "num_views", 1)):
        raise ConfigError("data.views", f"objective {cfg.objective.name!r} reads {objective.num_views} views; "
                                        f"set data.views: {objective.num_views}")
    if datasets is None:
        from .data_builder import build_datasets

        datasets = build_datasets(cfg, train_eval=True)
    datasets = dict(datasets)
    datasets.setdefault("train_eval", datasets["train"])
    has_val = len(datasets.get("val") or []) > 0
    knn_every = int(cfg.train.knn_every)
    provided = (["val/loss"] + (["val/knn_top1"] if knn_every > 0 else [])) if has_val else []
    if has_val:
        check_selection_metric(cfg.train.select_by, provided)
    start_work_dir(cfg, work_dir, ctx, resume, allow_config_change)
    batch = per_process_batch_size(cfg.data.batch_size, ctx)
    workers = int(cfg.data.num_workers)
    loaders = {part: build_eval_loader(datasets[part], ctx, batch, workers)
               for part in ("val", "test", "train_eval") if len(datasets.get(part) or [])}
    if has_val:
        # The objective's validation loss reads the validation clips as training does (augmentation and
        # views, drawn once: the evaluation loader always reads epoch 0).
        loaders["val_objective"] = build_eval_loader(datasets.get("val_objective") or datasets["val"], ctx, batch,
                                                     workers)

    torch.manual_seed(cfg.seed)
    model = build_model(cfg, num_classes=0)
    if not resume:
        initialise_from(model, cfg.model.init)
        if cfg.model.pretrained:  # a second pretraining stage (STARS tunes a MAMP encoder)
            load_pretrained(model, cfg.model.pretrained, cfg)
    attach_objective(objective, model)  # a momentum encoder starts from the initialised weights; freezing happens here
    if not resume:
        if cfg.objective.init:
            if not Path(cfg.objective.init).is_file():
                raise ConfigError("objective.init", f"no weights file at {cfg.objective.init!r}")
            load_weights(cfg.objective.init, objective, strict=True)
    use_amp = bool(cfg.train.amp) and ctx.device.type == "cuda"
    epochs = int(cfg.schedule.epochs)

    def validate(epoch: int) -> Dict[str, float]:
        from .train_loop import ObjectiveModule

        metrics: Dict[str, float] = {}
        if epoch % int(cfg.train.eval_every) == 0 or epoch == epochs:
            metrics["val/loss"] = objective_loss(ObjectiveModule(model, objective), loaders["val_objective"], ctx,
                                                 cfg.seed, use_amp)
        if knn_every > 0 and (epoch % knn_every == 0 or epoch == epochs):
            metrics["val/knn_top1"] = knn_scores(model, loaders["train_eval"], loaders["val"], ctx, use_amp, ks=(1,))[1]
        return metrics

    def due(epoch: int) -> bool:
        return epoch % int(cfg.train.eval_every) == 0 or (knn_every > 0 and epoch % knn_every == 0)

    run = fit(cfg, work_dir, ctx, model, objective, datasets["train"], validate if has_val else None, due,
              resume, progress)

    load_weights(work_dir / BEST_WEIGHTS, model)
    results: Dict[str, Any] = {"experiment": str(cfg.experiment), "objective": cfg.objective.name,
                               "best_epoch": run.selection.epoch, "selected_by": run.selection.selected_by,
                               "epochs": epochs, "world_size": ctx.world_size}
    if "test" in loaders:
        knn = knn_scores(model, loaders["train_eval"], loaders["test"], ctx, use_amp)
        results["test_knn_top1"] = {str(k): v for k, v in knn.items()}
    test_features = pooled_features(model, loaders["test"], ctx, amp=use_amp) if "test" in loaders else None
    if ctx.is_main:
        save_weights(work_dir / ENCODER_WEIGHTS, model, {"model": cfg.model.name, "objective": cfg.objective.name})
        if objective.state_dict():
            save_weights(work_dir / OBJECTIVE_WEIGHTS, objective, {"objective": cfg.objective.name})
        atomic_write_json(work_dir / "encoder.json", {
            "model": {"name": cfg.model.name, "kwargs": dict(cfg.model.kwargs or {})},
            "objective": {"name": cfg.objective.name, "kwargs": dict(cfg.objective.kwargs or {})},
            "selected_epoch": run.selection.epoch, "selected_by": run.selection.selected_by,
            "load_with": f"--set model.pretrained={work_dir / ENCODER_WEIGHTS}",
        })
        atomic_write_json(work_dir / "metrics.json", results)
        if test_features is not None:
            from .protocols.embedding_plot import plot_embedding

            features, labels = test_features
            plot_embedding(features, labels, class_names_of(datasets["test"], labels), work_dir / "embedding_test.png",
                           seed=cfg.seed)
    if "test_knn_top1" in results:
        run.log.line("test kNN top-1: " + "  ".join(f"k={k} {100 * v:.2f}" for k, v in results["test_knn_top1"].items()))
    run.log.close()
    barrier(ctx)
    return results


def class_names_of(dataset: Any, labels: Any) -> list:
    """Class names for 0-based ``labels``: the dataset's ``class_names`` when it has them, else NTU's."""
    names = getattr(dataset, "class_names", None)
    if names:
        return list(names)
    from ..datasets.ntu.constants import NTU120_CLASS_NAMES

    count = int(max(labels)) + 1 if len(labels) else 0
    return [NTU120_CLASS_NAMES[i] if i < len(NTU120_CLASS_NAMES) else f"class {i}" for i in range(count)]


def run_pretrain_cli(config_path: PathLike, overrides: Sequence[str] = (), work_dir: Optional[PathLike] = None,
                     resume: bool = False, allow_config_change: bool = False) -> int:
    """``actionfusion pretrain CONFIG [--set k=v ...] [--work-dir DIR] [--resume]``: prints the metrics JSON."""
    from .config import load_config

    cfg = load_config(config_path, list(overrides))
    results = pretrain(cfg, Path(work_dir) if work_dir is not None else default_work_dir(cfg), resume=resume,
                     allow_config_change=allow_config_change)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(results, sort_keys=True))
    return 0
