"""Pooled encoder features of a whole split, on every rank: the input of kNN, probes and plots.

A model's ``forward_features(x).pooled`` [B, D] (the encoder contract) is taken in eval mode;
samples with K > 1 clips get the mean over their clips.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np
from torch import nn
from torch.utils.data import DataLoader

from .distributed import DistContext, unwrap_ddp
from .evaluation import per_sample_outputs


def pooled_features(model: nn.Module, loader: DataLoader, ctx: DistContext, amp: bool = False,
                    progress: bool = False, desc: str = "features") -> Tuple[np.ndarray, np.ndarray]:
    """(features float32 [N, D], labels int64 [N]) of the loader's dataset, in dataset order.

    ``model`` is a bare model with ``forward_features`` (DDP wrappers are removed). Every rank gets
    the whole split (a collective: every rank must call it).

    Raises:
        RuntimeError: the gathered features do not cover every sample exactly once.
    """
    width = int(getattr(unwrap_ddp(model), "num_features", 0) or 0)
    order, features = per_sample_outputs(model, loader, ctx, lambda m, x: m.forward_features(x).pooled, width,
                                         amp=amp, progress=progress, desc=desc)
    base = getattr(loader.dataset, "dataset", loader.dataset)
    if len(order) != len(base) or not np.array_equal(order, np.arange(len(base))):
        raise RuntimeError(f"feature extraction covered {len(order)} of {len(base)} samples")
    return features, np.asarray(base.labels, dtype=np.int64)
