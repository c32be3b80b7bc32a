"""Run a model over a split on every rank, gather the scores, and score them once.

Scores are softmax probabilities [N, C], averaged over clips when the dataset gives
K > 1 clips per sample (pyskl's ``average_clips="prob"``); they are what late fusion adds.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Dict, Iterator, Tuple

import numpy as np
import torch
from einops import rearrange
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from .distributed import DistContext, broadcast_buffers, gather_predictions, unwrap_ddp
from .metrics import classification_metrics
from .numeric_guards import check_inputs
from .model_inputs import ModelInput, batch_inputs, flatten_clips, model_input_keys


def autocast_context(ctx: DistContext, enabled: bool) -> contextlib.AbstractContextManager:
    """float16 autocast on CUDA when ``enabled``; a no-op elsewhere (AMP is CUDA-only here)."""
    if enabled and ctx.device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def logits_of(model: nn.Module, x: ModelInput) -> torch.Tensor:
    """Logits [N, C] of a model wrapped by :class:`~actionfusion.pipeline.train_loop.FeaturesAndLogits`
    (returns (logits, aux, streams)) or of a plain model."""
    out = model(x)
    return out[0] if isinstance(out, tuple) else out


@torch.no_grad()
def per_sample_outputs(model: nn.Module, loader: DataLoader, ctx: DistContext,
                       output: Callable[[nn.Module, ModelInput], torch.Tensor], width: int, amp: bool = False,
                       progress: bool = False, desc: str = "eval") -> Tuple[np.ndarray, np.ndarray]:
    """(dataset indices int64 [N], outputs float32 [N, width]) of the whole split, on every rank.

    ``output(model, x)`` gives [B * K, width] for a batch of B samples with K clips each (``x`` has
    the clips folded into the batch); a sample's K rows are averaged. The model runs in eval mode,
    outside DDP (shards may hold different numbers of batches, and a DDP forward can run
    collectives that would then wait forever); rank 0's buffers are broadcast first.
    """
    broadcast_buffers(model, ctx)
    model = unwrap_ddp(model)
    keys = model_input_keys(model)
    was_training = model.training
    model.eval()
    indices, values = [], []
    batches: Iterator[Dict[str, Any]] = iter(loader)
    if progress and ctx.is_main:
        batches = tqdm(batches, total=len(loader), desc=desc, leave=False, dynamic_ncols=True,
                       disable=None)  # None: only on a terminal
    for batch in batches:
        x, clips = flatten_clips(batch_inputs(batch, keys, ctx.device), keys)
        check_inputs(x, loader, batch, clips)
        with autocast_context(ctx, amp):
            rows = output(model, x).float()
        values.append(rearrange(rows, "(b k) c -> b k c", k=clips).mean(dim=1))
        indices.append(torch.as_tensor(batch["index"], dtype=torch.int64))
    model.train(was_training)
    local_indices = torch.cat(indices) if indices else torch.zeros(0, dtype=torch.int64)
    # A rank with no samples (more ranks than samples) still sends a [0, width] block to the gather.
    local_values = torch.cat(values) if values else torch.zeros((0, width), device=ctx.device)
    return gather_predictions(local_indices, local_values, ctx)


def predict(model: nn.Module, loader: DataLoader, ctx: DistContext, num_classes: int, amp: bool = False,
            progress: bool = False, desc: str = "eval") -> Tuple[np.ndarray, np.ndarray]:
    """(dataset indices int64 [N], probabilities float32 [N, C]) of the whole split, every rank.

    Batches hold the model's input keys, e.g. "skeleton" [B, M, T, V, C] or, multi-clip,
    [B, K, M, T, V, C] (see :data:`~actionfusion.pipeline.model_inputs.SINGLE_CLIP_RANK`); the
    probabilities of a sample's clips are averaged.
    """
    return per_sample_outputs(model, loader, ctx, lambda m, x: torch.softmax(logits_of(m, x).float(), dim=-1),
                              num_classes, amp=amp, progress=progress, desc=desc)


def nll_of_probabilities(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the true class under the probabilities [N, C]."""
    if len(labels) == 0:
        return float("nan")
    picked = scores[np.arange(len(labels)), labels]
    return float(np.mean(-np.log(np.clip(picked, 1e-12, None))))


def evaluate_dataset(model: nn.Module, loader: DataLoader, ctx: DistContext, num_classes: int, amp: bool = False,
                     progress: bool = False, desc: str = "eval") -> Tuple[Dict[str, float], np.ndarray, np.ndarray]:
    """(metrics, probabilities [N, C] in dataset order, labels int64 [N]) of the loader's dataset.

    Metrics: top1, top5, mean_class_accuracy, loss (NLL of the averaged probabilities),
    num_samples, num_classes_present. Every sample is counted exactly once.
    """
    dataset = loader.dataset
    base = getattr(dataset, "dataset", dataset)
    indices, scores = predict(model, loader, ctx, num_classes, amp=amp, progress=progress, desc=desc)
    if len(indices) != len(base) or not np.array_equal(indices, np.arange(len(base))):
        raise RuntimeError(f"evaluation covered {len(indices)} of {len(base)} samples")
    labels = np.asarray(base.labels, dtype=np.int64)
    metrics: Dict[str, float] = dict(classification_metrics(scores, labels))
    metrics["loss"] = nll_of_probabilities(scores, labels)
    for key in ("missing_samples", "skipped_samples"):  # absent from the store / incomplete: not scored
        left_out = getattr(base, key, None)
        if left_out is not None:
            metrics[key] = len(left_out)
    return metrics, scores, labels
