"""Dropout whose keep-mask comes from one uniform draw: the same distribution as ``nn.Dropout``,
at a quarter of the mask's cost on CPU.

``nn.Dropout`` draws its mask with ``bernoulli_``, which on CPU cost 44-49 ms for the 3.3 M
activations of one ST-GCN block at batch 16 x 64 frames (2 threads), against 10 ms for
``torch.rand_like(x) >= p`` (``benchmarks/bench_skeleton_train_step.py``'s ST-GCN step spent
11-12% of its time in ``bernoulli_``, eager and compiled). Each activation is kept with probability
``1 - p`` (exactly, up to the uniform draw's 2^-24 resolution) and scaled by ``1 / (1 - p)``, as
``nn.Dropout`` does; only the random stream differs. It is an ``nn.Dropout`` (``p``, ``inplace``,
``isinstance`` checks), so code that switches dropout off by setting ``p = 0`` still does.
"""

from __future__ import annotations

import torch
from torch import nn


class UniformMaskDropout(nn.Dropout):
    """``nn.Dropout(p)`` with the mask ``rand_like(x) >= p``. Any shape; identity in eval mode or at p = 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [...] -> x * keep / (1 - p) in training, keep ~ Bernoulli(1 - p) per element."""
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0:
            return x * 0.0
        keep = torch.rand_like(x) >= self.p
        return (x * keep).mul_(1.0 / (1.0 - self.p))
