"""One training epoch of any objective: forward, loss, AMP, clipping, scheduler step, epoch means.

The engine wraps the model and the objective in one :class:`ObjectiveModule` (wrapped in
DistributedDataParallel when distributed), so a single ``forward`` computes the objective's loss
and DDP synchronises the gradients of both. The loop knows nothing of labels, views or logits:
it optimises ``ObjectiveOutput.loss`` and averages every named loss and metric over the epoch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, Mapping, Optional, Tuple

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..errors import NonFiniteError
from ..objectives.base import Objective, ObjectiveOutput
from ..objectives.supervised import AUX_LOSS_PREFIX, features_and_logits
from .distributed import DistContext, all_reduce_sum
from .evaluation import autocast_context
from .model_inputs import ModelInput, model_input_keys
from .numeric_guards import check_loss, check_norm_statistics, norm_statistics

__all__ = ["AUX_LOSS_PREFIX", "EpochStats", "FeaturesAndLogits", "LoopSettings", "ObjectiveModule", "train_one_epoch"]


class FeaturesAndLogits(nn.Module):
    """``forward(x) -> (logits [N, classes], {aux loss name: scalar tensor}, {stream: logits [N, classes]})``.

    ``x`` is what the model reads (:func:`~actionfusion.pipeline.model_inputs.batch_inputs`); see
    :func:`~actionfusion.objectives.supervised.features_and_logits`. Evaluation and prediction call
    models through it. The wrapped model is ``.module`` so checkpoints hold the model's own names.
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        self.input_keys = model_input_keys(module)

    def forward(self, x: ModelInput) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], Dict[str, torch.Tensor]]:
        return features_and_logits(self.module, x)


class ObjectiveModule(nn.Module):
    """The model and the objective as one module: ``forward(batch) = objective(model, batch)``.

    ``.model`` is the bare model, ``.objective`` the objective (whose parameters, e.g. a decoder,
    are trained and checkpointed beside the model's).
    """

    def __init__(self, model: nn.Module, objective: Objective) -> None:
        super().__init__()
        self.model = model
        self.objective = objective
        self.ddp_find_unused_parameters = bool(getattr(model, "ddp_find_unused_parameters", False)
                                               or getattr(objective, "ddp_find_unused_parameters", False))

    def forward(self, batch: Mapping[str, Any]) -> ObjectiveOutput:
        return self.objective(self.model, batch)


@dataclass
class EpochStats:
    """Sample-weighted sums over one epoch on all ranks: the loss and every named loss and metric."""

    loss_sum: float = 0.0
    samples: float = 0.0
    sums: Dict[str, float] = field(default_factory=dict)

    def add(self, out: ObjectiveOutput, loss_value: float) -> None:
        """Accumulate one batch's output (``loss_value`` = ``float(out.loss)``)."""
        count = float(out.batch_size)
        self.loss_sum += loss_value * count
        self.samples += count
        for key, value in {**out.losses, **out.metrics}.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value.detach()) * count

    def summary(self, ctx: DistContext) -> Dict[str, float]:
        """Epoch means over every rank's samples: ``loss`` and each named loss and metric."""
        keys = sorted(self.sums)
        totals = all_reduce_sum([self.loss_sum, self.samples] + [self.sums[k] for k in keys], ctx)
        samples = max(totals[1], 1.0)
        out = {"loss": totals[0] / samples}
        out.update({k: v / samples for k, v in zip(keys, totals[2:])})
        return out


GRAD_CLIP_MODES = ("global_norm", "per_parameter")


def clip_gradients(module: nn.Module, max_norm: float, mode: str = "global_norm") -> None:
    """Clip gradients in place: ``global_norm`` scales all of them so that their joint L2 norm is
    at most ``max_norm`` (``clip_grad_norm_``); ``per_parameter`` scales each parameter's gradient
    on its own to norm at most ``max_norm`` (DINO / STARS ``clip_gradients``)."""
    if mode == "global_norm":
        torch.nn.utils.clip_grad_norm_(module.parameters(), max_norm)
        return
    if mode != "per_parameter":
        raise ValueError(f"grad clip mode must be one of {GRAD_CLIP_MODES}, not {mode!r}")
    for param in module.parameters():
        if param.grad is not None:
            norm = param.grad.detach().norm(2)
            param.grad.mul_(torch.clamp(max_norm / (norm + 1e-6), max=1.0))


@dataclass
class LoopSettings:
    """What one epoch needs from the config."""

    amp: bool = False
    grad_clip: Optional[float] = None
    grad_clip_mode: str = "global_norm"
    log_every: int = 20
    progress: bool = True


def train_one_epoch(
    module: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: torch.amp.GradScaler,
    ctx: DistContext,
    epoch: int,
    global_step: int,
    settings: LoopSettings,
    log_scalar: Optional[Callable[[str, float, int], None]] = None,
) -> Tuple[Dict[str, float], int]:
    """Train an :class:`ObjectiveModule` (maybe in DDP) for one epoch.

    The scheduler steps after every optimizer step. Returns (epoch means over all ranks: ``loss``
    and the objective's named losses and metrics, new global step). Raises NonFiniteError (naming the
    batch's samples) on a non-finite loss or BatchNorm running statistic, with or without AMP.
    """
    module.train()
    norm_stats = norm_statistics(module)
    stats = EpochStats()
    batches: Iterator[Dict[str, Any]] = iter(loader)
    bar = None
    if settings.progress and ctx.is_main:
        bar = tqdm(batches, total=len(loader), desc=f"epoch {epoch + 1}", leave=False, dynamic_ncols=True,
                   disable=None)  # None: only on a terminal
        batches = bar
    for batch in batches:
        with autocast_context(ctx, settings.amp):
            out: ObjectiveOutput = module(batch)
        loss = out.loss
        where = f"epoch {epoch + 1}, step {global_step + 1}"
        check_loss(loss, loader, batch, where)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if settings.grad_clip is not None:
            scaler.unscale_(optimizer)
            clip_gradients(module, settings.grad_clip, settings.grad_clip_mode)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        check_norm_statistics(norm_stats, loader, batch, where)
        global_step += 1

        loss_value = float(loss.detach())
        stats.add(out, loss_value)
        if ctx.is_main and log_scalar is not None and global_step % settings.log_every == 0:
            log_scalar("train/loss", loss_value, global_step)
            log_scalar("train/lr", float(optimizer.param_groups[0]["lr"]), global_step)
            for key, value in {**out.losses, **out.metrics}.items():
                log_scalar(f"train/{key}", float(value.detach()), global_step)
        if bar is not None:
            bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{optimizer.param_groups[0]['lr']:.3g}")
    if bar is not None:
        bar.close()
    summary = stats.summary(ctx)
    if not math.isfinite(summary["loss"]):
        raise NonFiniteError(f"non-finite mean loss in epoch {epoch + 1}")
    return summary, global_step
