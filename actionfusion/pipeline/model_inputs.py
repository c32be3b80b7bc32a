"""What a model reads from a batch: its ``input_keys``, moved to the device, multi-clip aware.

Batches are dicts keyed by modality (``skeleton``, ``rgb``, ``rgb_hands``, ``pose_heatmap``, ``depth``,
``points``) plus ``label`` and ``index``. A model names the keys it reads in its class attribute
``input_keys`` (no default: a model without them is refused); a model with one key is called
with that tensor, a model with several with a dict of them.
"""

from __future__ import annotations

from typing import Any, Mapping, Union

import torch
from einops import rearrange
from torch import nn

from ..modalities.encoder_contract import declared_input_keys

ModelInput = Union[torch.Tensor, dict[str, torch.Tensor]]

SINGLE_CLIP_RANK: dict[str, int] = {
    "skeleton": 5,       # [B, M, T, V, C]
    "rgb": 5,            # [B, 3, T, H, W]
    "rgb_hands": 5,      # [B, 3, T, S, 2 S]
    "pose_heatmap": 5,   # [B, K, T, H, W]
    "depth": 5,          # [B, 1, T, H, W]
    "points": 4,         # [B, T, P, 3]
}
"""Rank of each modality's batch tensor with one clip per sample; multi-clip batches have one more
dimension after the batch, ``[B, K, ...]``."""


def model_attribute(model: nn.Module, name: str) -> Any:
    """Attribute ``name`` of ``model`` or of the model inside its DDP / :class:`FeaturesAndLogits`
    wrappers (the outermost that has it); None when none has it."""
    inner = model
    while True:
        value = getattr(inner, name, None)
        if value is not None:
            return value
        child = getattr(inner, "module", None)
        if not isinstance(child, nn.Module):
            return None
        inner = child


def model_input_keys(model: nn.Module) -> tuple[str, ...]:
    """The batch keys ``model`` reads (through DDP and :class:`FeaturesAndLogits` wrappers).

    Raises:
        TypeError: neither the model nor a model it wraps declares ``input_keys`` (names the innermost class).
    """
    keys = model_attribute(model, "input_keys")
    if keys is not None:
        return tuple(keys)
    inner = model
    while isinstance(getattr(inner, "module", None), nn.Module):
        inner = inner.module
    return declared_input_keys(inner)


def batch_inputs(batch: Mapping[str, Any], keys: tuple[str, ...], device: torch.device) -> ModelInput:
    """The model's input: ``batch[key]`` for one key, ``{key: batch[key]}`` for several, on ``device``.

    Raises:
        KeyError: the batch lacks a key the model reads (names the key and what the batch has).
    """
    missing = [key for key in keys if key not in batch]
    if missing:
        raise KeyError(f"the model reads {missing} but the batch holds {sorted(batch)}: "
                       f"add them to data.modalities")
    tensors = {key: batch[key].to(device, non_blocking=True) for key in keys}
    return tensors[keys[0]] if len(keys) == 1 else tensors


def flatten_clips(inputs: ModelInput, keys: tuple[str, ...]) -> tuple[ModelInput, int]:
    """(inputs with clips folded into the batch, K): ``[B, K, ...] -> [(B K), ...]``.

    Single-clip inputs come back unchanged with K = 1. Every key must hold the same K.
    """
    tensors = {keys[0]: inputs} if isinstance(inputs, torch.Tensor) else dict(inputs)
    clips = set()
    out = {}
    for key, x in tensors.items():
        rank = SINGLE_CLIP_RANK.get(key)
        if rank is not None and x.ndim == rank + 1:
            clips.add(int(x.shape[1]))
            out[key] = rearrange(x, "b k ... -> (b k) ...")
        else:
            clips.add(1)
            out[key] = x
    if len(clips) != 1:
        raise ValueError(f"inputs hold different numbers of clips per sample: {sorted(clips)}")
    count = clips.pop()
    return (out[keys[0]] if isinstance(inputs, torch.Tensor) else out), count


def batch_size_of(inputs: ModelInput) -> int:
    """B, the first dimension of the (first) input tensor."""
    first = inputs if isinstance(inputs, torch.Tensor) else next(iter(inputs.values()))
    return int(first.shape[0])
