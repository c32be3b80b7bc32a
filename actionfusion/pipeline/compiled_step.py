"""``torch.compile`` for the training step (``train.compile: true``), with the inductor options
this library measured.

``layout_optimization`` is off. With it on (inductor's default), inductor turns the graph
convolutions' tensors channels-last and the channel-wise aggregations of CTR-GCN and PSUMNet
(batched matmuls over ``[N' * C, T, V]``) then run on strides BLAS cannot take: PyTorch falls back
to one small matmul per batch entry, and CTR-GCN's compiled step took 6.3-7.9 s against 2.9 s
eager (2 CPU threads, batch 16 x 64 frames). With it off the same step took 2.46 s. Measured with
``benchmarks/bench_skeleton_train_step.py --compile``.
"""

from __future__ import annotations

from typing import Callable, Dict

import torch
from torch import nn

INDUCTOR_OPTIONS: Dict[str, object] = {"layout_optimization": False}


def compile_training_module(module: nn.Module) -> Callable[..., object]:
    """``module`` through ``torch.compile`` (inductor, default mode, :data:`INDUCTOR_OPTIONS`).

    The compiled module shares ``module``'s parameters; compilation happens on the first call and
    is cached on disk by torch (``TORCHINDUCTOR_CACHE_DIR``) for later runs.
    """
    return torch.compile(module, options=dict(INDUCTOR_OPTIONS))
