"""Layer-wise learning-rate decay parameter groups (ELECTRA / BEiT / MAE fine-tuning, used by MAMP).

Every parameter gets a layer id: 0 for the input embeddings, ``i + 1`` for transformer block ``i``,
and the largest id for everything after the blocks (final norm, head). A parameter with id ``l``
trains at ``base_lr * layer_decay ** (max_id - l)``, so the head learns at ``base_lr`` and the
embeddings at ``base_lr * layer_decay ** max_id``. Biases, norm parameters (every parameter with
one dimension or none) and the names the caller lists get no weight decay.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from torch import nn

# maoyunyao/MAMP config/*/finetune_t120_layer8_decay.yaml: layer_decay 0.80.
MAMP_LAYER_DECAY = 0.8

_MAMP_EMBEDDING_NAMES = ("patch_embed.", "temporal_embed", "spatial_embed")


def mamp_layer_id(name: str, num_blocks: int) -> int:
    """Layer id of a MAMP parameter (names of :class:`MAMP`, or of a bare ``MAMPEncoder``).

    Embeddings (patch, temporal, spatial) -> 0; ``blocks.i.*`` -> i + 1; everything else
    (final norm, head) -> num_blocks + 1.
    """
    local = name[len("encoder."):] if name.startswith("encoder.") else name
    if local.startswith(_MAMP_EMBEDDING_NAMES):
        return 0
    if local.startswith("blocks."):
        return int(local.split(".")[1]) + 1
    return num_blocks + 1


def layer_decay_param_groups(
    model: nn.Module,
    base_lr: float,
    weight_decay: float,
    layer_decay: float = MAMP_LAYER_DECAY,
    layer_id_fn: Optional[Callable[[str], int]] = None,
    no_weight_decay: Optional[Iterable[str]] = None,
) -> List[Dict[str, Any]]:
    """AdamW parameter groups with layer-wise lr decay.

    Args:
        model: the model; only parameters with ``requires_grad`` are grouped (a frozen part is left out).
        base_lr: the lr of the top layer (head).
        weight_decay: applied to every grouped parameter except biases, norms (ndim <= 1) and
            ``no_weight_decay``.
        layer_decay: the per-layer factor (0.8 for MAMP fine-tuning).
        layer_id_fn: maps a parameter name to its layer id; default ``model.layer_id``.
        no_weight_decay: parameter names without weight decay; default ``model.no_weight_decay()``
            when the model has it, else none. Pass ``()`` to decay every parameter with two or more
            dimensions, as upstream MAMP does (its position embeddings are decayed).

    Returns:
        A list of dicts for ``torch.optim.AdamW``: ``params``, ``lr`` (= base_lr * lr_scale),
        ``lr_scale`` (for schedulers that rescale per group), ``weight_decay`` and ``layer_id``;
        one group per (layer id, decayed or not), in order of first appearance.
    """
    if layer_id_fn is None:
        layer_id_fn = getattr(model, "layer_id", None)
        if layer_id_fn is None:
            raise TypeError(f"{type(model).__name__} has no layer_id method: pass layer_id_fn")
    if no_weight_decay is None:
        getter = getattr(model, "no_weight_decay", None)
        no_weight_decay = getter() if callable(getter) else ()
    skip_decay = set(no_weight_decay)

    named = list(model.named_parameters())
    layer_ids = {name: int(layer_id_fn(name)) for name, _ in named}
    max_id = max(layer_ids.values(), default=0)
    if min(layer_ids.values(), default=0) < 0:
        raise ValueError("layer ids must be >= 0")

    groups: Dict[Tuple[int, bool], Dict[str, Any]] = {}
    for name, param in named:
        if not param.requires_grad:
            continue
        decayed = param.ndim > 1 and name not in skip_decay
        layer = layer_ids[name]
        key = (layer, decayed)
        if key not in groups:
            scale = layer_decay ** (max_id - layer)
            groups[key] = {
                "params": [],
                "lr": base_lr * scale,
                "lr_scale": scale,
                "weight_decay": weight_decay if decayed else 0.0,
                "layer_id": layer,
            }
        groups[key]["params"].append(param)
    return list(groups.values())
