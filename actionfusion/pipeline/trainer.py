"""``train`` and ``evaluate``: the supervised pipeline from a config to metrics and checkpoints.

Outputs of :func:`train` in ``work_dir``: ``config.yaml`` (resolved), ``checkpoints/epoch_NNNN``
(every epoch, atomic, newest ``train.keep_last`` kept), ``best.safetensors`` (highest validation
top-1; the test split is never used for selection), ``history.json``, ``tb/`` (TensorBoard), and
after training the best weights' ``metrics.json`` (val and test), ``confusion.png``,
``per_class.csv``/``.md`` and ``scores_test.npy`` + ``labels_test.npy`` + ``names_test.json``
(for late fusion).

Exact resume: all data randomness is keyed by (seed, epoch, index), the sample order by
(seed, epoch), and the torch RNG is reseeded from (seed, epoch) at each epoch start; the
learning rate is a closed form of the global step. A run killed anywhere restarts its
interrupted epoch from the last checkpoint and ends bit-identical on CPU.

Distributed: launch with ``torchrun --nproc_per_node N -m actionfusion train CONFIG``;
``data.batch_size`` is the global batch.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Union

import numpy as np
import torch
import yaml
from torch import nn

from ..io import atomic_write_json, atomic_write_text, remove_stale_staging
from ..registry import create_model
from .checkpoints import (
    BEST_WEIGHTS,
    MODEL_FILE,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_weights,
    save_best,
    save_checkpoint,
    unwrap_model,
)
from .config import ConfigError
from .distributed import DistContext, barrier, init_distributed, per_process_batch_size, shutdown_distributed, wrap_model
from .evaluation import evaluate_dataset
from .loaders import build_eval_loader, build_train_loader
from .metrics import write_evaluation_outputs
from .optim import build_optimizer, build_scheduler
from .train_loop import FeaturesAndLogits, LoopSettings, train_one_epoch

PathLike = Union[str, Path]


def default_work_dir(cfg: Any) -> Path:
    """``work_dirs/<experiment>`` (relative to the current directory)."""
    return Path("work_dirs") / str(cfg.experiment)


def epoch_seed(seed: int, epoch: int) -> int:
    """The torch seed of ``epoch``: a 63-bit draw of ``SeedSequence([seed, epoch])``."""
    return int(np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1, dtype=np.uint64)[0] >> 1)


def limit_cpu_threads(cfg: Any, ctx: DistContext) -> int:
    """On CPU, give each process ``train.cpu_threads`` torch threads (default: the cores left
    after the loader workers, shared between local processes). Returns the number set (0 on GPU)."""
    if ctx.device.type != "cpu":
        return 0
    threads = getattr(cfg.train, "cpu_threads", None)
    if threads is None:
        cores = os.cpu_count() or 1
        local_processes = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
        threads = max(1, (cores - int(cfg.data.num_workers) * local_processes) // local_processes)
    torch.set_num_threads(int(threads))
    return int(threads)


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed torch (CPU and CUDA); with ``deterministic`` prefer deterministic kernels (warn, don't fail)."""
    torch.manual_seed(int(seed))
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True


def _default_datasets(cfg: Any) -> Dict[str, Any]:
    from .data_builder import build_datasets

    return build_datasets(cfg)


def build_model(cfg: Any) -> nn.Module:
    """``create_model(cfg.model.name, num_classes=cfg.model.num_classes, **cfg.model.kwargs)``."""
    return create_model(cfg.model.name, num_classes=cfg.model.num_classes, **dict(cfg.model.kwargs or {}))


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


class _Log:
    """Rank-0 console lines and TensorBoard scalars (created lazily, closed at the end)."""

    def __init__(self, ctx: DistContext, tb_dir: Optional[Path], verbose: bool) -> None:
        self.ctx, self.verbose, self.writer = ctx, verbose, None
        if ctx.is_main and tb_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as error:  # tensorboard missing, or a protobuf it cannot use
                warnings.warn(f"TensorBoard logging is off ({error}); epoch metrics are still in history.json",
                              stacklevel=3)
            else:
                self.writer = SummaryWriter(log_dir=str(tb_dir))

    def line(self, text: str) -> None:
        if self.ctx.is_main and self.verbose:
            print(text, file=sys.stderr, flush=True)

    def scalar(self, tag: str, value: float, step: int) -> None:
        if self.writer is not None:
            self.writer.add_scalar(tag, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()


def _split_metrics_text(split: str, metrics: Mapping[str, float]) -> str:
    return (f"{split}: top1 {100 * metrics['top1']:.2f}  top5 {100 * metrics['top5']:.2f}  "
            f"mean-class {100 * metrics['mean_class_accuracy']:.2f}  ({metrics['num_samples']} samples)")


def train(cfg: Any, work_dir: PathLike, resume: bool = False, progress: bool = True,
          datasets: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Train ``cfg`` into ``work_dir``; returns the final metrics (also in ``metrics.json``).

    Args:
        cfg: an :class:`~actionfusion.pipeline.config.ExperimentConfig`.
        work_dir: output folder. A fresh run refuses a folder that already holds checkpoints.
        resume: continue from the newest checkpoint in ``work_dir`` (fresh start when none).
        progress: tqdm bars and console lines (rank 0).
        datasets: ``{"train", "val", "test"}`` to use instead of ``build_datasets(cfg)``.
    """
    work_dir = Path(work_dir)
    ctx = init_distributed()
    try:
        results = _train(cfg, work_dir, resume, progress, datasets, ctx)
        # Every rank leaves the process group together: a rank tearing gloo down while another
        # is still in a collective aborted the process ("terminate called without an active exception").
        barrier(ctx)
        return results
    finally:
        shutdown_distributed(ctx)


def _train(cfg: Any, work_dir: Path, resume: bool, progress: bool, datasets: Optional[Mapping[str, Any]],
           ctx: DistContext) -> Dict[str, Any]:
    if not resume and list_checkpoints(work_dir):
        raise FileExistsError(f"{work_dir} already holds checkpoints: pass resume=True (--resume) or another work dir")
    seed_everything(cfg.seed, cfg.train.deterministic)
    limit_cpu_threads(cfg, ctx)
    datasets = dict(datasets) if datasets is not None else _default_datasets(cfg)
    batch = per_process_batch_size(cfg.data.batch_size, ctx)
    workers = int(cfg.data.num_workers)
    train_loader = build_train_loader(datasets["train"], ctx, batch, workers, cfg.seed)
    val_loader = build_eval_loader(datasets["val"], ctx, batch, workers) if len(datasets.get("val") or []) else None
    test_loader = build_eval_loader(datasets["test"], ctx, batch, workers)

    torch.manual_seed(cfg.seed)  # the same initial weights on every rank and in every run
    base_model = build_model(cfg)
    if not resume:
        initialise_from(base_model, cfg.model.init)
    model = wrap_model(FeaturesAndLogits(base_model), ctx)
    optimizer = build_optimizer(base_model, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.schedule, len(train_loader))
    use_amp = bool(cfg.train.amp) and ctx.device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    criterion = nn.CrossEntropyLoss(label_smoothing=float(cfg.train.label_smoothing))
    epochs = int(cfg.schedule.epochs)

    start_epoch, global_step, best = 0, 0, {"top1": -1.0, "epoch": None}
    history: list = []
    if ctx.is_main:
        work_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(work_dir)
        atomic_write_text(work_dir / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    log = _Log(ctx, work_dir / "tb", progress)
    latest = latest_checkpoint(work_dir) if resume else None
    if latest is not None:
        state = load_checkpoint(latest, base_model, optimizer)
        start_epoch, global_step = int(state["epoch"]), int(state["global_step"])
        best, history = dict(state["best"]), list(state["history"])
        if state.get("scaler") and use_amp:
            scaler.load_state_dict(state["scaler"])
        scheduler.set_step(global_step)
        if ctx.is_main:
            atomic_write_json(work_dir / "history.json", history)
        log.line(f"resumed from {latest} (epoch {start_epoch}, step {global_step})")

    settings = LoopSettings(amp=use_amp, grad_clip=cfg.train.grad_clip, log_every=int(cfg.train.log_every),
                            progress=progress)
    num_classes = int(cfg.model.num_classes)
    for epoch in range(start_epoch, epochs):
        torch.manual_seed(epoch_seed(cfg.seed, epoch))
        train_loader.sampler.set_epoch(epoch)
        train_stats, global_step = train_one_epoch(model, train_loader, optimizer, scheduler, scaler, criterion, ctx,
                                                   epoch, global_step, settings, log.scalar)
        record: Dict[str, Any] = {"epoch": epoch + 1, "global_step": global_step,
                                  **{f"train_{k}": v for k, v in train_stats.items()}}
        for key, value in train_stats.items():
            log.scalar(f"epoch/train_{key}", value, epoch + 1)
        is_last = epoch + 1 == epochs
        if val_loader is not None and ((epoch + 1) % int(cfg.train.eval_every) == 0 or is_last):
            val_metrics, _, _ = evaluate_dataset(model, val_loader, ctx, num_classes, amp=use_amp, desc="val")
            record.update({f"val_{k}": v for k, v in val_metrics.items()})
            for key in ("top1", "top5", "mean_class_accuracy", "loss"):
                log.scalar(f"val/{key}", val_metrics[key], epoch + 1)
            if cfg.train.select_by == "last":
                if is_last:
                    best = {"top1": val_metrics["top1"], "epoch": epoch + 1, "selected_by": "last_epoch"}
                    if ctx.is_main:
                        save_best(work_dir, base_model, {**best, "val": val_metrics})
            elif val_metrics["top1"] > best["top1"]:
                best = {"top1": val_metrics["top1"], "epoch": epoch + 1, "selected_by": "val_top1"}
                if ctx.is_main:
                    save_best(work_dir, base_model, {**best, "val": val_metrics})
        elif val_loader is None:
            # No validation split: the last epoch's weights are the ones evaluated.
            best = {"top1": -1.0, "epoch": epoch + 1, "selected_by": "last_epoch (no validation split)"}
            if ctx.is_main:
                save_best(work_dir, base_model, best)
        history.append(record)
        log.line(f"epoch {epoch + 1}/{epochs}: " + ", ".join(f"{k} {v:.4f}" for k, v in record.items()
                                                              if isinstance(v, float)))
        if ctx.is_main:
            trainer_state = {"global_step": global_step, "best": best, "history": history,
                             "experiment": str(cfg.experiment)}
            save_checkpoint(work_dir, epoch + 1, base_model, optimizer, trainer_state,
                            keep_last=int(cfg.train.keep_last), scaler_state=scaler.state_dict() if use_amp else None)
            atomic_write_json(work_dir / "history.json", history)
        barrier(ctx)

    # Final evaluation of the selected weights on val and test.
    barrier(ctx)
    load_weights(work_dir / BEST_WEIGHTS, base_model)
    results: Dict[str, Any] = {"experiment": str(cfg.experiment), "best_epoch": best["epoch"],
                               "selected_by": best.get("selected_by", "val_top1"), "epochs": epochs,
                               "world_size": ctx.world_size}
    if val_loader is not None:
        results["val"], _, _ = evaluate_dataset(model, val_loader, ctx, num_classes, amp=use_amp, desc="val")
    test_metrics, test_scores, test_labels = evaluate_dataset(model, test_loader, ctx, num_classes, amp=use_amp,
                                                              progress=progress, desc="test")
    results["test"] = test_metrics
    results.update({k: test_metrics[k] for k in ("top1", "top5", "mean_class_accuracy")})
    if ctx.is_main:
        write_evaluation_outputs(work_dir, test_scores, test_labels, list(datasets["test"].names), "test")
        atomic_write_json(work_dir / "metrics.json", results)
    for split in ("val", "test"):
        if split in results:
            log.line(_split_metrics_text(split, results[split]))
    log.close()
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
    ``per_class_<split>.csv``/``.md`` and ``scores_<split>.npy`` (+ labels, names) there.
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
        if work_dir is not None and ctx.is_main:
            out = Path(work_dir)
            write_evaluation_outputs(out, scores, labels, list(datasets[split].names), split, f"_{split}")
            atomic_write_json(out / f"metrics_{split}.json", result)
        barrier(ctx)
        return result
    finally:
        shutdown_distributed(ctx)


def run_train_cli(config_path: PathLike, overrides: Sequence[str] = (), work_dir: Optional[PathLike] = None,
                  resume: bool = False) -> int:
    """``actionfusion train CONFIG [--set k=v ...] [--work-dir DIR] [--resume]``: prints the metrics JSON."""
    import json

    from .config import load_config

    cfg = load_config(config_path, list(overrides))
    results = train(cfg, Path(work_dir) if work_dir is not None else default_work_dir(cfg), resume=resume)
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
