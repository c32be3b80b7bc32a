"""One training epoch: forward through features and head, loss with aux terms, AMP, clipping.

The model is called as ``forward_features`` then ``forward_head`` (inside one ``forward`` of
:class:`FeaturesAndLogits`, so DistributedDataParallel sees a single forward call); every entry
of ``feats.aux`` whose key starts with ``loss_`` is added to the classification loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from .distributed import DistContext, all_reduce_sum
from .evaluation import autocast_context
from .model_inputs import ModelInput, batch_inputs, model_attribute, model_input_keys

AUX_LOSS_PREFIX = "loss_"


class FeaturesAndLogits(nn.Module):
    """``forward(x) -> (logits [N, classes], {aux loss name: scalar tensor}, {stream: logits [N, classes]})``.

    ``x`` is what the model reads (:func:`~actionfusion.pipeline.model_inputs.batch_inputs`).
    Models without ``forward_features``/``forward_head`` are called directly (no aux losses).
    The stream dict is empty unless the model has ``forward_stream_logits``; the prediction is then
    ``model.combine_stream_logits(feats, streams)`` when the model has it, else the streams' sum,
    and the loss sums each stream's CE weighted by ``model.stream_loss_weights`` (default 1).
    The wrapped model is ``.module`` so checkpoints hold the model's own parameter names.
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        self.input_keys = model_input_keys(module)

    def forward(self, x: ModelInput) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], Dict[str, torch.Tensor]]:
        if not (hasattr(self.module, "forward_features") and hasattr(self.module, "forward_head")):
            return self.module(x), {}, {}
        feats = self.module.forward_features(x)
        streams: Dict[str, torch.Tensor] = {}
        if hasattr(self.module, "forward_stream_logits"):
            streams = dict(self.module.forward_stream_logits(feats))
            if hasattr(self.module, "combine_stream_logits"):
                logits = self.module.combine_stream_logits(feats, streams)
            else:
                logits = torch.stack(list(streams.values())).sum(dim=0)
        else:
            logits = self.module.forward_head(feats)
        aux = getattr(feats, "aux", None) or {}
        losses = {k: v for k, v in aux.items() if k.startswith(AUX_LOSS_PREFIX) and isinstance(v, torch.Tensor)}
        return logits, losses, streams


@dataclass
class EpochStats:
    """Sums over one epoch on all ranks: loss, aux losses, correct predictions, samples."""

    loss_sum: float = 0.0
    correct: float = 0.0
    samples: float = 0.0
    aux_sums: Dict[str, float] = field(default_factory=dict)

    def summary(self, ctx: DistContext) -> Dict[str, float]:
        """Epoch means over every rank's samples: loss, top1 and each aux loss."""
        keys = sorted(self.aux_sums)
        totals = all_reduce_sum([self.loss_sum, self.correct, self.samples] + [self.aux_sums[k] for k in keys], ctx)
        samples = max(totals[2], 1.0)
        out = {"loss": totals[0] / samples, "top1": totals[1] / samples}
        out.update({k: v / samples for k, v in zip(keys, totals[3:])})
        return out


@dataclass
class LoopSettings:
    """What one epoch needs from the config."""

    amp: bool = False
    grad_clip: Optional[float] = None
    log_every: int = 20
    progress: bool = True


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: torch.amp.GradScaler,
    criterion: nn.Module,
    ctx: DistContext,
    epoch: int,
    global_step: int,
    settings: LoopSettings,
    log_scalar: Optional[Callable[[str, float, int], None]] = None,
) -> Tuple[Dict[str, float], int]:
    """Train ``model`` (a :class:`FeaturesAndLogits`, maybe in DDP) for one epoch.

    The scheduler steps after every optimizer step. Returns (epoch means over all ranks, new
    global step). Raises FloatingPointError on a non-finite loss without AMP.
    """
    model.train()
    keys = model_input_keys(model)
    stream_weights = model_attribute(model, "stream_loss_weights") or {}
    stats = EpochStats()
    batches: Iterator[Dict[str, Any]] = iter(loader)
    bar = None
    if settings.progress and ctx.is_main:
        bar = tqdm(batches, total=len(loader), desc=f"epoch {epoch + 1}", leave=False, dynamic_ncols=True)
        batches = bar
    for batch in batches:
        x = batch_inputs(batch, keys, ctx.device)
        y = batch["label"].to(ctx.device, non_blocking=True)
        with autocast_context(ctx, settings.amp):
            logits, aux, streams = model(x)
            if streams:
                classification = sum(stream_weights.get(name, 1.0) * criterion(value.float(), y)
                                     for name, value in streams.items())
            else:
                classification = criterion(logits.float(), y)
            loss = classification + sum((value.float() for value in aux.values()), torch.zeros((), device=ctx.device))
        if not scaler.is_enabled() and not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss {loss.item()} at epoch {epoch + 1}, step {global_step}")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if settings.grad_clip is not None:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        global_step += 1

        count = float(y.shape[0])
        loss_value = float(loss.detach())
        stats.loss_sum += loss_value * count
        stats.correct += float((logits.detach().argmax(dim=1) == y).sum())
        stats.samples += count
        for key, value in aux.items():
            stats.aux_sums[key] = stats.aux_sums.get(key, 0.0) + float(value.detach()) * count
        if ctx.is_main and log_scalar is not None and global_step % settings.log_every == 0:
            log_scalar("train/loss", loss_value, global_step)
            log_scalar("train/lr", float(optimizer.param_groups[0]["lr"]), global_step)
            for key, value in aux.items():
                log_scalar(f"train/{key}", float(value.detach()), global_step)
        if bar is not None:
            bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{optimizer.param_groups[0]['lr']:.3g}")
    if bar is not None:
        bar.close()
    summary = stats.summary(ctx)
    if not math.isfinite(summary["loss"]) and not scaler.is_enabled():
        raise FloatingPointError(f"non-finite mean loss in epoch {epoch + 1}")
    return summary, global_step
