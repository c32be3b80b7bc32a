"""BatchNorm statistics of a randomly initialised encoder, estimated on the training clips.

A frozen encoder is probed in eval mode, where every BatchNorm normalises with its running
statistics. A pretrained encoder's statistics come from pretraining; a freshly initialised one
still holds the initial mean 0 and variance 1, which do not describe its activations: with
ST-GCN's N(0, 0.02) weights the activations shrink block after block, and the pooled feature of
a random ``stgcn_clr`` comes out near 1e-7, far below ``bn_linear``'s eps of 1e-6, so a linear
probe on it stays at chance. The random-initialisation baseline of the frozen-encoder protocols
(linear, kNN, few-shot) therefore first re-estimates those statistics over the training clips
("precise BN"): one pass, cumulative averages, no gradient, weights untouched.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional

import torch
from torch import nn

_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def batchnorm_layers(model: nn.Module) -> list:
    """The model's BatchNorm layers that track running statistics."""
    return [m for m in model.modules() if isinstance(m, _BATCHNORMS) and m.track_running_stats]


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, batches: Iterable[Any], forward: Any,
                        max_batches: Optional[int] = None) -> int:
    """Reset every BatchNorm's running statistics and re-estimate them as plain averages over
    ``batches`` (BatchNorms in training mode, every other module in eval mode: no dropout).

    Args:
        model: the encoder; its weights are not changed.
        batches: what ``forward`` takes, one item per batch.
        forward: ``forward(model, batch)`` runs the model on one batch.
        max_batches: stop after this many batches (None: all).

    Returns:
        The number of batches seen (0 when the model has no BatchNorm: nothing to do).
    """
    layers = batchnorm_layers(model)
    if not layers:
        return 0
    was_training = model.training
    momenta = [layer.momentum for layer in layers]
    model.eval()
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # cumulative moving average: every batch weighs the same
        layer.train()
    seen = 0
    try:
        for batch in batches:
            if max_batches is not None and seen >= max_batches:
                break
            forward(model, batch)
            seen += 1
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
        model.train(was_training)
    return seen
