"""Pooled encoder features of a whole split, on every rank: the input of kNN, probes and plots.

A model's ``forward_features(x).pooled`` [B, D] (the encoder contract) is taken in eval mode;
samples with K > 1 clips get the mean over their clips.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, Tuple

import numpy as np
import torch
from einops import rearrange
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from .distributed import DistContext, broadcast_buffers, gather_predictions, unwrap_ddp
from .evaluation import autocast_context
from .model_inputs import batch_inputs, flatten_clips, model_input_keys


@torch.no_grad()
def pooled_features(model: nn.Module, loader: DataLoader, ctx: DistContext, amp: bool = False,
                    progress: bool = False, desc: str = "features") -> Tuple[np.ndarray, np.ndarray]:
    """(features float32 [N, D], labels int64 [N]) of the loader's dataset, in dataset order.

    ``model`` is a bare model with ``forward_features`` (DDP wrappers are removed). Every rank gets
    the whole split.

    Raises:
        RuntimeError: the gathered features do not cover every sample exactly once.
    """
    broadcast_buffers(model, ctx)
    model = unwrap_ddp(model)
    keys = model_input_keys(model)
    was_training = model.training
    model.eval()
    indices, chunks = [], []
    batches: Iterator[Dict[str, Any]] = iter(loader)
    if progress and ctx.is_main:
        batches = tqdm(batches, total=len(loader), desc=desc, leave=False, dynamic_ncols=True)
    for batch in batches:
        x, clips = flatten_clips(batch_inputs(batch, keys, ctx.device), keys)
        with autocast_context(ctx, amp):
            pooled = model.forward_features(x).pooled.float()
        chunks.append(rearrange(pooled, "(b k) d -> b k d", k=clips).mean(dim=1))
        indices.append(torch.as_tensor(batch["index"], dtype=torch.int64))
    model.train(was_training)
    width = int(chunks[0].shape[1]) if chunks else int(getattr(model, "num_features", 0))
    local = torch.cat(chunks) if chunks else torch.zeros((0, width), device=ctx.device)
    order, features = gather_predictions(torch.cat(indices) if indices else torch.zeros(0, dtype=torch.int64),
                                         local, ctx)
    base = getattr(loader.dataset, "dataset", loader.dataset)
    if len(order) != len(base) or not np.array_equal(order, np.arange(len(base))):
        raise RuntimeError(f"feature extraction covered {len(order)} of {len(base)} samples")
    return features, np.asarray(base.labels, dtype=np.int64)
