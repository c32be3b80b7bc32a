"""``train`` and ``evaluate``: supervised training (the ``cross_entropy`` objective, or any objective
that reads labels) through the one engine (:mod:`.engine`), from a config to metrics and checkpoints.

Outputs of :func:`train` in ``work_dir``: ``config.yaml`` (resolved), ``checkpoints/epoch_NNNN``
(every epoch, atomic, newest ``train.keep_last`` kept), ``best.safetensors`` (the epoch that
``train.select_by`` picks: highest ``val/top1`` by default; the test split is never used for
selection), ``history.json``, ``log.txt``, ``tb/`` (TensorBoard), and after training the selected
weights' ``metrics.json`` (val and test; ``longtail``: head / medium / tail accuracy by training
count, :mod:`.longtail_metrics`), ``confusion.png``, ``per_class.csv``/``.md``, ``per_class_accuracy.png``
and ``scores_test.npy`` + ``labels_test.npy`` + ``names_test.json`` (for late fusion).

``model.pretrained`` (``--pretrained``) starts the model from an encoder written by
``actionfusion pretrain``. Exact resume and DDP are the engine's (see :mod:`.engine`); launch with
``torchrun --nproc_per_node N -m actionfusion train CONFIG``; ``data.batch_size`` is the global batch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import torch
from torch import nn

from ..io import atomic_write_json
from ..errors import UnknownNameError
from ..registry import create_model
from .checkpoints import BEST_WEIGHTS, CLASSES_FILE, MODEL_FILE, load_weights, unwrap_model
from .config import ConfigError
from .distributed import DistContext, barrier, init_distributed, per_process_batch_size, shutdown_distributed, wrap_model
from .engine import (check_selection_metric, check_work_dir, epoch_seed, fit, limit_cpu_threads, seed_everything,
                     start_work_dir)
from .evaluation import evaluate_dataset
from .loaders import build_eval_loader
from .longtail_metrics import longtail_report
from .metrics import write_evaluation_outputs
from .train_loop import FeaturesAndLogits

SUPERVISED_VAL_METRICS = ("val/top1", "val/top5", "val/mean_class_accuracy", "val/loss")
"""What supervised validation computes (``train.select_by`` picks one, or ``last``)."""

PathLike = Union[str, Path]

__all__ = ["build_model", "default_work_dir", "epoch_seed", "evaluate", "initialise_from", "limit_cpu_threads",
           "load_pretrained", "seed_everything", "train", "weights_path"]


def default_work_dir(cfg: Any) -> Path:
    """``work_dirs/<experiment>`` (relative to the current directory)."""
    return Path("work_dirs") / str(cfg.experiment)


def _default_datasets(cfg: Any) -> Dict[str, Any]:
    from .data_builder import build_datasets

    return build_datasets(cfg)


def build_model(cfg: Any, num_classes: Optional[int] = None) -> nn.Module:
    """``create_model(cfg.model.name, num_classes=cfg.model.num_classes, **cfg.model.kwargs)``
    (``num_classes`` replaces the config's, e.g. 0 for the encoder without its head)."""
    classes = cfg.model.num_classes if num_classes is None else num_classes
    if not isinstance(classes, int):
        raise ConfigError("model.num_classes", f"is {classes!r}: the class count is resolved from data.benchmark when "
                                               "the datasets are built (train, evaluate); give a number here")
    try:
        return create_model(cfg.model.name, num_classes=classes, **dict(cfg.model.kwargs or {}))
    except UnknownNameError as err:
        raise ConfigError("model.kwargs" if err.keyword else "model.name", str(err)) from err


def initialise_from(model: nn.Module, init: Mapping[str, str]) -> None:
    """Load ``{module path: weights file}`` (``cfg.model.init``) into the model's sub-modules, strictly.

    Raises:
        ConfigError: a module path the model does not have, or a missing weights file.
    """
    for path, weights in init.items():
        if not Path(weights).is_file():
            raise ConfigError(f"model.init.{path}", f"no weights file at {weights!r} (relative to {Path.cwd()}); "
                              "train the run that writes it first, or fix the path")
        try:
            target = model.get_submodule(path)
        except AttributeError as err:
            raise ConfigError(f"model.init.{path}", f"the model has no sub-module {path!r} ({err})") from err
        load_weights(weights, target, strict=True)


def load_pretrained(model: nn.Module, weights: PathLike, cfg: Any, key: str = "model.pretrained") -> List[str]:
    """Load pretrained encoder weights (``actionfusion pretrain``'s ``encoder.safetensors``) into ``model``.

    Every tensor of the file must be a tensor of the model with the same shape; the model's tensors
    the file lacks must all belong to the head, i.e. be absent from the same model built with
    ``num_classes=0``. Returns the head's keys (left at their initialisation).

    Raises:
        ConfigError: a missing file, a tensor the model does not have or of another shape, or a
            non-head tensor the file lacks (the file is another architecture's).
    """
    from .checkpoints import read_weights

    if not Path(weights).is_file():
        raise ConfigError(key, f"no weights file at {str(weights)!r} (relative to {Path.cwd()}); run "
                               "`actionfusion pretrain CONFIG` first, or fix the path")
    state = read_weights(weights)
    own = model.state_dict()
    unexpected = sorted(k for k in state if k not in own)
    mismatched = sorted(k for k in state if k in own and tuple(state[k].shape) != tuple(own[k].shape))
    backbone = set(build_model(cfg, num_classes=0).state_dict())
    missing = sorted(k for k in own if k not in state and k in backbone)
    problems = []
    if unexpected:
        problems.append(f"tensors the model lacks: {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
    if mismatched:
        problems.append("shapes differ: " + ", ".join(f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
                                                      for k in mismatched[:5]))
    if missing:
        problems.append(f"encoder tensors the file lacks: {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    if problems:
        raise ConfigError(key, f"{weights} does not fit model {cfg.model.name!r} ({'; '.join(problems)}); "
                               "pretrain with the same model.name and model.kwargs")
    model.load_state_dict(state, strict=False)
    return sorted(k for k in own if k not in state)


def build_objective(cfg: Any) -> Any:
    """The config's objective; ``cross_entropy`` takes ``train.label_smoothing`` unless its kwargs set it."""
    from ..objectives import create_objective

    kwargs = dict(cfg.objective.kwargs or {})
    if cfg.objective.name == "cross_entropy":
        kwargs.setdefault("label_smoothing", float(cfg.train.label_smoothing))
    try:
        return create_objective(cfg.objective.name, **kwargs)
    except UnknownNameError as err:
        raise ConfigError("objective.kwargs" if err.keyword else "objective.name", str(err)) from err
    except TypeError as err:
        raise ConfigError("objective.kwargs", f"{cfg.objective.name}: {err}") from err


def _split_metrics_text(split: str, metrics: Mapping[str, float]) -> str:
    return (f"{split}: top1 {100 * metrics['top1']:.2f}  top5 {100 * metrics['top5']:.2f}  "
            f"mean-class {100 * metrics['mean_class_accuracy']:.2f}  ({metrics['num_samples']} samples)")


def train(cfg: Any, work_dir: PathLike, resume: bool = False, progress: bool = True,
          datasets: Optional[Mapping[str, Any]] = None, allow_config_change: bool = False) -> Dict[str, Any]:
    """Train ``cfg`` into ``work_dir``; returns the final metrics (also in ``metrics.json``).

    Args:
        cfg: an :class:`~actionfusion.pipeline.config.ExperimentConfig`.
        work_dir: output folder. A fresh run refuses a folder that already holds checkpoints.
        resume: continue from the newest checkpoint in ``work_dir`` (fresh start when none).
        progress: tqdm bars and console lines (rank 0).
        allow_config_change: resume even if the config changed, recording both (see :mod:`.resume_config`).
        datasets: ``{"train", "val", "test"}`` to use instead of ``build_datasets(cfg)``.
    """
    work_dir = Path(work_dir)
    check_work_dir(work_dir, resume)
    ctx = init_distributed()
    try:
        results = _train(cfg, work_dir, resume, progress, datasets, ctx, allow_config_change)
        # Every rank leaves the process group together: a rank tearing gloo down while another
        # is still in a collective aborted the process ("terminate called without an active exception").
        barrier(ctx)
        return results
    finally:
        shutdown_distributed(ctx)


def _train(cfg: Any, work_dir: Path, resume: bool, progress: bool, datasets: Optional[Mapping[str, Any]],
           ctx: DistContext, allow_config_change: bool = False) -> Dict[str, Any]:
    seed_everything(cfg.seed, cfg.train.deterministic)
    limit_cpu_threads(cfg, ctx)
    objective = build_objective(cfg)
    if not getattr(objective, "needs_labels", True):
        raise ConfigError("objective.name", f"{cfg.objective.name!r} is a pretraining objective: "
                                            "run `actionfusion pretrain CONFIG` instead of train")
    from .data_builder import resolve_num_classes

    datasets = dict(datasets) if datasets is not None else _default_datasets(cfg)
    cfg = resolve_num_classes(cfg, datasets)
    has_val = len(datasets.get("val") or []) > 0
    if has_val:
        check_selection_metric(cfg.train.select_by, SUPERVISED_VAL_METRICS)
    start_work_dir(cfg, work_dir, ctx, resume, allow_config_change)
    batch = per_process_batch_size(cfg.data.batch_size, ctx)
    workers = int(cfg.data.num_workers)
    val_loader = build_eval_loader(datasets["val"], ctx, batch, workers) if has_val else None
    test_loader = build_eval_loader(datasets["test"], ctx, batch, workers)

    torch.manual_seed(cfg.seed)  # the same initial weights on every rank and in every run
    base_model = build_model(cfg)
    if not resume:
        if cfg.model.pretrained:
            load_pretrained(base_model, cfg.model.pretrained, cfg)
        initialise_from(base_model, cfg.model.init)
    scorer = FeaturesAndLogits(base_model)
    num_classes = int(cfg.model.num_classes)
    use_amp = bool(cfg.train.amp) and ctx.device.type == "cuda"

    def validate(epoch: int) -> Dict[str, float]:
        metrics, _, _ = evaluate_dataset(scorer, val_loader, ctx, num_classes, amp=use_amp, desc="val")
        return {f"val/{k}": float(metrics[k]) for k in ("top1", "top5", "mean_class_accuracy", "loss")}

    run = fit(cfg, work_dir, ctx, base_model, objective, datasets["train"], validate if has_val else None,
              lambda epoch: epoch % int(cfg.train.eval_every) == 0, resume, progress)

    # Final evaluation of the selected weights on val and test.
    load_weights(work_dir / BEST_WEIGHTS, base_model)
    results: Dict[str, Any] = {"experiment": str(cfg.experiment), "best_epoch": run.selection.epoch,
                               "selected_by": run.selection.selected_by, "epochs": int(cfg.schedule.epochs),
                               "world_size": ctx.world_size}
    if val_loader is not None:
        results["val"], _, _ = evaluate_dataset(scorer, val_loader, ctx, num_classes, amp=use_amp, desc="val")
    test_metrics, test_scores, test_labels = evaluate_dataset(scorer, test_loader, ctx, num_classes, amp=use_amp,
                                                              progress=progress, desc="test")
    results["test"] = test_metrics
    results.update({k: test_metrics[k] for k in ("top1", "top5", "mean_class_accuracy")})
    longtail = longtail_report(work_dir if ctx.is_main else None, test_scores, test_labels, datasets.get("train"))
    if longtail is not None:
        results["longtail"] = longtail
    if ctx.is_main:
        class_names = getattr(datasets["test"], "class_names", None)
        write_evaluation_outputs(work_dir, test_scores, test_labels, list(datasets["test"].names), "test",
                                 class_names=class_names)
        if class_names is not None:
            atomic_write_json(work_dir / CLASSES_FILE, list(class_names))
        atomic_write_json(work_dir / "metrics.json", results)
    for split in ("val", "test"):
        if split in results:
            run.log.line(_split_metrics_text(split, results[split]))
            for key in ("top1", "top5", "mean_class_accuracy", "loss"):  # the selected weights, at the last epoch
                if isinstance(results[split].get(key), (int, float)):
                    run.log.scalar(f"final_{split}/{key}", float(results[split][key]), int(cfg.schedule.epochs))
    run.log.close()
    barrier(ctx)
    return results


def weights_path(checkpoint: PathLike) -> Path:
    """A weights file from a file path, an epoch checkpoint directory or a work dir (its best)."""
    path = Path(checkpoint)
    if path.is_dir():
        for candidate in (path / MODEL_FILE, path / BEST_WEIGHTS):
            if candidate.is_file():
                return candidate
        raise FileNotFoundError(f"{path}: neither {MODEL_FILE} (epoch checkpoint) nor {BEST_WEIGHTS} (work dir) inside")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    return path


def evaluate(cfg: Any, checkpoint: PathLike, split: str = "test", work_dir: Optional[PathLike] = None,
             progress: bool = True, datasets: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Score ``checkpoint`` (weights file, epoch checkpoint dir or work dir) on ``split``.

    With ``work_dir`` writes ``metrics_<split>.json``, ``confusion_<split>.png``,
    ``per_class_<split>.csv``/``.md``, ``per_class_accuracy_<split>.png`` and ``scores_<split>.npy``
    (+ labels, names) there. The metrics hold ``longtail`` (:mod:`.longtail_metrics`) when the
    datasets have a training set with labels.
    """
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be train, val or test, not {split!r}")
    ctx = init_distributed()
    try:
        seed_everything(cfg.seed, cfg.train.deterministic)
        limit_cpu_threads(cfg, ctx)
        datasets = dict(datasets) if datasets is not None else _default_datasets(cfg)
        if not len(datasets.get(split) or []):
            raise ValueError(f"the {split} split of {cfg.experiment} is empty")
        from .data_builder import resolve_num_classes

        cfg = resolve_num_classes(cfg, datasets)
        model = wrap_model(FeaturesAndLogits(build_model(cfg)), ctx)
        weights = weights_path(checkpoint)
        load_weights(weights, unwrap_model(model))
        loader = build_eval_loader(datasets[split], ctx, per_process_batch_size(cfg.data.batch_size, ctx),
                                   int(cfg.data.num_workers))
        use_amp = bool(cfg.train.amp) and ctx.device.type == "cuda"
        metrics, scores, labels = evaluate_dataset(model, loader, ctx, int(cfg.model.num_classes), amp=use_amp,
                                                   progress=progress, desc=split)
        result: Dict[str, Any] = {"experiment": str(cfg.experiment), "checkpoint": str(weights), "split": split,
                                  **metrics}
        longtail = longtail_report(Path(work_dir) if work_dir is not None and ctx.is_main else None, scores, labels,
                                   datasets.get("train"), f"_{split}")
        if longtail is not None:
            result["longtail"] = longtail
        if work_dir is not None and ctx.is_main:
            out = Path(work_dir)
            write_evaluation_outputs(out, scores, labels, list(datasets[split].names), split, f"_{split}",
                                     class_names=getattr(datasets[split], "class_names", None))
            atomic_write_json(out / f"metrics_{split}.json", result)
        barrier(ctx)
        return result
    finally:
        shutdown_distributed(ctx)


def run_train_cli(config_path: PathLike, overrides: Sequence[str] = (), work_dir: Optional[PathLike] = None,
                  resume: bool = False, allow_config_change: bool = False) -> int:
    """``actionfusion train CONFIG [--set k=v ...] [--work-dir DIR] [--resume]``: prints the metrics JSON."""
    import json

    from .config import load_config

    cfg = load_config(config_path, list(overrides))
    results = train(cfg, Path(work_dir) if work_dir is not None else default_work_dir(cfg), resume=resume,
                    allow_config_change=allow_config_change)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(results, sort_keys=True))
    return 0


def run_evaluate_cli(config_path: PathLike, checkpoint: PathLike, overrides: Sequence[str] = (), split: str = "test",
                     work_dir: Optional[PathLike] = None) -> int:
    """``actionfusion evaluate CONFIG --checkpoint PATH [--split S] [--set k=v ...] [--work-dir DIR]``."""
    import json

    from .config import load_config

    cfg = load_config(config_path, list(overrides))
    result = evaluate(cfg, checkpoint, split=split, work_dir=work_dir)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(result, sort_keys=True))
    return 0
