"""The one training engine: every objective (supervised, self-supervised, probes) runs through it.

:func:`fit` owns what no method should rewrite: the epoch loop, exact resume after ``kill -9``,
DDP (through ``torchrun``), AMP, per-iteration schedules, checkpoints, TensorBoard and the
history, and model selection by a named validation metric. A method brings an objective
(:mod:`actionfusion.objectives`) and a validation callback; ``train`` (supervised) and
``pretrain`` (self-supervised) are thin layers over it.

Exact resume: all data randomness is keyed by (seed, epoch, index), the sample order by
(seed, epoch), and the torch RNG is reseeded from (seed, epoch) at each epoch start; the
learning rate is a closed form of the global step. Model, objective (a decoder, queues) and
optimizer state are checkpointed every epoch, atomically. A run killed anywhere restarts its
interrupted epoch from the last checkpoint and ends bit-identical on CPU.
"""

from __future__ import annotations

import errno
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import WorkDirError
from ..io import atomic_write_json, remove_stale_staging
from ..objectives.base import Objective, attach_objective, observe_training_labels, start_objective_epoch
from .compiled_step import compile_training_module
from .checkpoints import latest_checkpoint, list_checkpoints, load_checkpoint, save_best, save_checkpoint
from .distributed import DistContext, barrier, per_process_batch_size, same_on_every_rank, wrap_model
from .loaders import build_train_loader, set_loader_epoch
from .resume_config import record_config
from .optim import build_optimizer, build_scheduler, parameter_groups
from .train_loop import LoopSettings, ObjectiveModule, train_one_epoch

LOG = logging.getLogger("actionfusion.engine")

Validator = Callable[[int], Dict[str, float]]
"""``validate(epoch) -> {"val/<name>": value}``: the validation metrics after ``epoch`` (1-based)."""


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


class EngineLog:
    """Rank-0 log lines through ``logging`` (to ``work_dir/log.txt``, and to the console when
    verbose) and TensorBoard scalars."""

    def __init__(self, ctx: DistContext, work_dir: Optional[Path], verbose: bool) -> None:
        self.ctx, self.writer = ctx, None
        self.handlers: List[logging.Handler] = []
        if not ctx.is_main:
            return
        if work_dir is not None:
            to_file = logging.FileHandler(work_dir / "log.txt")
            to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            self.handlers.append(to_file)
        if verbose:
            self.handlers.append(logging.StreamHandler())  # stderr, the bare message
        for handler in self.handlers:
            LOG.addHandler(handler)
        LOG.setLevel(logging.INFO)
        LOG.propagate = False  # the console line is ours; a configured root logger would repeat it
        if work_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as error:  # tensorboard missing, or a protobuf it cannot use
                warnings.warn(f"TensorBoard logging is off ({error}); epoch metrics are still in history.json",
                              stacklevel=3)
            else:
                self.writer = SummaryWriter(log_dir=str(work_dir / "tb"))

    def line(self, text: str) -> None:
        """One INFO line (rank 0 only)."""
        if self.ctx.is_main:
            LOG.info(text)

    def scalar(self, tag: str, value: float, step: int) -> None:
        if self.writer is not None:
            self.writer.add_scalar(tag, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
        for handler in self.handlers:
            LOG.removeHandler(handler)
            handler.close()
        self.handlers = []


def normalise_select_by(value: str) -> str:
    """``train.select_by`` as ``"last"`` or ``"val/<metric>"`` (``"val_top1"`` is the older spelling)."""
    if value == "last":
        return value
    if value.startswith("val_"):
        return "val/" + value[len("val_"):]
    return value


def lower_is_better(metric: str) -> bool:
    """Losses are minimised; every other selection metric (accuracies) is maximised."""
    return metric.rsplit("/", 1)[-1].endswith("loss")


@dataclass
class Selection:
    """The weights chosen so far: ``metric`` ("val/top1", "val/loss", ... or "last"), its value and epoch."""

    metric: str
    value: Optional[float] = None
    epoch: Optional[int] = None
    selected_by: str = ""

    def as_dict(self) -> Dict[str, Any]:
        return {"metric": self.metric, "value": self.value, "epoch": self.epoch, "selected_by": self.selected_by}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Selection":
        return cls(str(data["metric"]), data.get("value"), data.get("epoch"), str(data.get("selected_by", "")))

    def improves(self, value: float) -> bool:
        if self.value is None:
            return True
        return value < self.value if lower_is_better(self.metric) else value > self.value


def build_optimizer_for(model: nn.Module, objective: nn.Module, optim_cfg: Any) -> torch.optim.Optimizer:
    """The config's optimizer over the model's parameters, plus the objective's own (a decoder,
    a projector) as extra groups at the base learning rate with the same weight-decay rules."""
    optimizer = build_optimizer(model, optim_cfg)
    if any(p.requires_grad for p in objective.parameters()):
        decay_norm_and_bias = bool(getattr(optim_cfg, "decay_norm_and_bias", True))
        for group in parameter_groups(objective, float(optim_cfg.weight_decay or 0.0), decay_norm_and_bias):
            optimizer.add_param_group(group)
    return optimizer


@dataclass
class EngineResult:
    """What :func:`fit` leaves: the selection, the history, and the training parts (for final evaluation)."""

    selection: Selection
    history: List[Dict[str, Any]]
    module: nn.Module
    use_amp: bool
    log: EngineLog
    extra: Dict[str, Any] = field(default_factory=dict)


def check_work_dir(work_dir: Path, resume: bool) -> None:
    """Refuse a work dir that is a file, and a fresh run over checkpoints (before any data is built)."""
    if work_dir.exists() and not work_dir.is_dir():
        raise FileExistsError(errno.ENOTDIR, "the work dir is a file, not a folder", str(work_dir))
    if not resume and list_checkpoints(work_dir):
        raise WorkDirError(f"{work_dir} already holds checkpoints: pass --resume to continue that run, or give "
                           "another --work-dir")


def start_work_dir(cfg: Any, work_dir: Path, ctx: DistContext, resume: bool, allow_config_change: bool = False) -> None:
    """Refuse a fresh run over checkpoints, and a resume whose config changed (:mod:`.resume_config`);
    create the folder and record the resolved config (rank 0)."""
    check_work_dir(work_dir, resume)
    checkpoints = list_checkpoints(work_dir)
    if ctx.is_main:
        work_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(work_dir)
        record_config(work_dir, cfg.to_dict(), resuming=bool(checkpoints), allow_change=allow_config_change)
    barrier(ctx)


def check_ranks_resume_alike(work_dir: Path, latest: Optional[Path], ctx: DistContext) -> None:
    """Every rank must resume from the same checkpoint. Rank 0 alone writes checkpoints, so on
    several nodes the work dir must be one folder that every node sees (shared storage, same
    content): a node with its own copy would start over, or from another epoch, and the ranks
    would train different models or wait for each other for ever.

    Raises:
        WorkDirError: the ranks see different latest checkpoints (the message lists them).
    """
    seen = same_on_every_rank(latest.name if latest is not None else None, ctx)
    if len(set(seen)) > 1:
        detail = ", ".join(f"rank {rank}: {name or 'none'}" for rank, name in enumerate(seen))
        raise WorkDirError(f"{work_dir}: the ranks see different checkpoints to resume from ({detail}); a run on "
                           "several nodes needs its work dir on storage that every node shares (the same folder, "
                           "mounted on each): rank 0 alone writes checkpoints")


def fit(
    cfg: Any,
    work_dir: Path,
    ctx: DistContext,
    model: nn.Module,
    objective: Objective,
    train_dataset: Any,
    validate: Optional[Validator],
    validation_due: Callable[[int], bool],
    resume: bool,
    progress: bool,
) -> EngineResult:
    """Train ``model`` with ``objective`` on ``train_dataset`` for ``cfg.schedule.epochs`` epochs.

    Args:
        cfg: the experiment config (``data``, ``optim``, ``schedule``, ``train`` sections).
        work_dir: the run's folder (created by :func:`start_work_dir`).
        ctx: the distributed context.
        model: the bare model, already initialised (seeded) and on the CPU.
        objective: the objective (its parameters are optimised too).
        train_dataset: items as the objective reads them.
        validate: ``validate(epoch)`` -> {"val/<name>": value}, or None (no validation split: the
            last epoch's weights are selected).
        validation_due: whether to validate after epoch (1-based); the last epoch always is.
        resume: continue from the newest checkpoint in ``work_dir`` (fresh start when none).
        progress: tqdm bars and console lines (rank 0).

    Returns:
        The :class:`EngineResult`; ``best.safetensors`` in ``work_dir`` holds the selected weights.
    """
    batch = per_process_batch_size(cfg.data.batch_size, ctx)
    train_loader = build_train_loader(train_dataset, ctx, batch, int(cfg.data.num_workers), cfg.seed,
                                      streaming=bool(cfg.data.shard_streaming))
    attach_objective(objective, model)
    observe_training_labels(objective, train_dataset)
    model.to(ctx.device)
    objective.to(ctx.device)
    module = wrap_model(ObjectiveModule(model, objective), ctx)
    # The compiled module shares the parameters; only the training step runs through it.
    step_module = compile_training_module(module) if bool(getattr(cfg.train, "compile", False)) else module
    optimizer = build_optimizer_for(model, objective, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.schedule, len(train_loader))
    use_amp = bool(cfg.train.amp) and ctx.device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    epochs = int(cfg.schedule.epochs)
    select_by = normalise_select_by(str(cfg.train.select_by))
    log = EngineLog(ctx, work_dir, progress)

    start_epoch, global_step = 0, 0
    selection = Selection(select_by)
    history: List[Dict[str, Any]] = []
    latest = latest_checkpoint(work_dir) if resume else None
    check_ranks_resume_alike(work_dir, latest, ctx)
    if latest is not None:
        state = load_checkpoint(latest, model, optimizer, objective=objective)
        start_epoch, global_step = int(state["epoch"]), int(state["global_step"])
        selection, history = Selection.from_dict(state["best"]), list(state["history"])
        if state.get("scaler") and use_amp:
            scaler.load_state_dict(state["scaler"])
        scheduler.set_step(global_step)
        if ctx.is_main:
            atomic_write_json(work_dir / "history.json", history)
        log.line(f"resumed from {latest} (epoch {start_epoch}, step {global_step})")

    settings = LoopSettings(amp=use_amp, grad_clip=cfg.train.grad_clip,
                            grad_clip_mode=str(cfg.train.grad_clip_mode), log_every=int(cfg.train.log_every),
                            progress=progress)
    for epoch in range(start_epoch, epochs):
        start_objective_epoch(objective, epoch)
        torch.manual_seed(epoch_seed(cfg.seed, epoch))
        set_loader_epoch(train_loader, epoch)
        train_stats, global_step = train_one_epoch(step_module, train_loader, optimizer, scheduler, scaler, ctx, epoch,
                                                   global_step, settings, log.scalar)
        record: Dict[str, Any] = {"epoch": epoch + 1, "global_step": global_step,
                                  **{f"train_{k}": v for k, v in train_stats.items()}}
        for key, value in train_stats.items():
            log.scalar(f"epoch/train_{key}", value, epoch + 1)
        is_last = epoch + 1 == epochs
        if validate is not None and (validation_due(epoch + 1) or is_last):
            metrics = validate(epoch + 1)
            record.update({name.replace("/", "_"): value for name, value in metrics.items()})
            for name, value in metrics.items():
                log.scalar(name, value, epoch + 1)
            if select_by == "last":
                if is_last:
                    selection = Selection(select_by, None, epoch + 1, "last_epoch")
                    if ctx.is_main:
                        save_best(work_dir, model, {**selection.as_dict(), "val": metrics})
            elif select_by in metrics and selection.improves(metrics[select_by]):
                selection = Selection(select_by, float(metrics[select_by]), epoch + 1, select_by.replace("/", "_"))
                if ctx.is_main:
                    save_best(work_dir, model, {**selection.as_dict(), "val": metrics})
        elif validate is None:
            # No validation split: the last epoch's weights are the ones evaluated.
            selection = Selection("last", None, epoch + 1, "last_epoch (no validation split)")
            if ctx.is_main:
                save_best(work_dir, model, selection.as_dict())
        history.append(record)
        log.line(f"epoch {epoch + 1}/{epochs}: " + ", ".join(f"{k} {v:.4f}" for k, v in record.items()
                                                              if isinstance(v, float)))
        if ctx.is_main:
            trainer_state = {"global_step": global_step, "best": selection.as_dict(), "history": history,
                             "experiment": str(cfg.experiment)}
            save_checkpoint(work_dir, epoch + 1, model, optimizer, trainer_state, keep_last=int(cfg.train.keep_last),
                            scaler_state=scaler.state_dict() if use_amp else None, objective=objective)
            atomic_write_json(work_dir / "history.json", history)
        barrier(ctx)
    barrier(ctx)
    return EngineResult(selection, history, module, use_amp, log)


def check_selection_metric(select_by: str, provided: Sequence[str], where: str = "train.select_by") -> None:
    """Raise ConfigError when ``select_by`` names a metric the run's validation never computes."""
    from .config import ConfigError

    metric = normalise_select_by(select_by)
    if metric != "last" and metric not in provided:
        raise ConfigError(where, f"{select_by!r} is not computed by this run's validation; "
                                 f"choose one of: last, {', '.join(provided)}")
