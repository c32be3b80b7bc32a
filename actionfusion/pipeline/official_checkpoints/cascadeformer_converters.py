"""Converters for YP4AIresearch/CascadeFormer v1.0 checkpoints (``cascadeformer_1_0/joint/ntu_60_own``).

* ``cascadeformer_pretrain``: the stage-1 ``NTU_pretraining.BaseT1`` state dict (``NTU_pretrained.pt``)
  -> T1, the ``encoder`` sub-module of our ``cascadeformer``. Its ``reconstruction_head`` is not part
  of the model but of the ``cascadeformer`` objective
  (:class:`~actionfusion.objectives.cascadeformer.CascadeFormerPretraining`, same key name):
  :func:`split_cascadeformer_pretrain` converts both parts, and ``convert-checkpoint --from
  cascadeformer_pretrain IN OUT.safetensors`` writes the objective's part to
  ``OUT.objective.safetensors``.
* ``cascadeformer``: the stage-2 classifier. Upstream saves it as four files (``NTU_finetuned_T1.pt``:
  ``BaseT1``; ``NTU_finetuned_T2.pt``: ``BaseT2``; ``NTU_finetuned_cross_attn.pt``:
  ``CrossAttentionWithFFN``; ``NTU_finetuned_head.pt``: ``GaitRecognitionHeadMLP``);
  :func:`join_cascadeformer_stage2` puts them into one state dict under the prefixes ``t1.``,
  ``t2.``, ``cross_attn.`` and ``gait_head.``, the layout this converter reads. T1's unused
  ``reconstruction_head`` is dropped.

Default sizes: NTU60 cross-view (d 512, 8 heads, 12 layers, 64 frames), our model's defaults;
other sizes convert with ``num_classes`` and the model's kwargs set to match.
"""

from __future__ import annotations

from typing import Dict, Mapping, Tuple

import torch

from .key_rules import CheckpointConversionError, KeyRule, ObjectivePart, StateDictConverter

_SOURCE = "YP4AIresearch/CascadeFormer v1.0 (cascadeformer_1_0/joint/ntu_60_own)"
_RECONSTRUCTION = (r"reconstruction_head\..*",)

_T1_RULES: Tuple[Tuple[str, str], ...] = (
    ("pos_embedding", "temporal_embed"),
    ("joint_embedding.{rest}", "frame_embed.{rest}"),
    ("transformer_encoder.{rest}", "transformer.{rest}"),
)


def _t1_rules(official_prefix: str, our_prefix: str) -> Tuple[KeyRule, ...]:
    return tuple(KeyRule(official_prefix + official, our_prefix + ours) for official, ours in _T1_RULES)


CASCADEFORMER_PRETRAIN = StateDictConverter(
    name="cascadeformer_pretrain",
    source=f"{_SOURCE} NTU_pretraining.BaseT1 (NTU_pretrained.pt)",
    model="cascadeformer",
    submodule="encoder",
    rules=_t1_rules("", ""),
    discard=_RECONSTRUCTION,
    note="the reconstruction head belongs to the cascadeformer objective: split_cascadeformer_pretrain converts it, "
         "convert-checkpoint writes it to OUT.objective.safetensors",
)

CASCADEFORMER_STAGE2 = StateDictConverter(
    name="cascadeformer",
    source=f"{_SOURCE} BaseT1 + finetuning.BaseT2 + CrossAttentionWithFFN + GaitRecognitionHeadMLP "
           "(join_cascadeformer_stage2 of the four NTU_finetuned_*.pt files)",
    model="cascadeformer",
    classifier_key="head.mlp.5.weight",
    rules=(
        *_t1_rules("t1.", "encoder."),
        KeyRule("t2.encoder.{rest}", "head.t2.{rest}"),
        KeyRule("cross_attn.cross_attention.{rest}", "head.cross_attention.attention.{rest}"),
        KeyRule("cross_attn.{rest}", "head.cross_attention.{rest}"),
        KeyRule("gait_head.net.{rest}", "head.mlp.{rest}"),
    ),
    discard=(r"t1\.reconstruction_head\..*",),
    note="T1's reconstruction head is unused in stage 2 and dropped",
)

# The reconstruction head of a stage-1 checkpoint <-> the "cascadeformer" objective's state dict.
CASCADEFORMER_PRETRAIN_OBJECTIVE = StateDictConverter(
    name="cascadeformer_pretrain (objective)",
    source=f"{_SOURCE} NTU_pretraining.BaseT1.reconstruction_head",
    model="cascadeformer",
    rules=(KeyRule("reconstruction_head.{rest}", "reconstruction_head.{rest}"),),
)

CASCADEFORMER_CONVERTERS: Dict[str, StateDictConverter] = {
    c.name: c for c in (CASCADEFORMER_PRETRAIN, CASCADEFORMER_STAGE2)}

StateDict = Dict[str, torch.Tensor]


def split_cascadeformer_pretrain(official: Mapping[str, torch.Tensor]) -> Tuple[StateDict, StateDict]:
    """An official ``BaseT1`` state dict -> (T1 state for ``model.encoder``, the objective's state)."""
    encoder = CASCADEFORMER_PRETRAIN.to_ours(official)
    head = {k: v for k, v in official.items() if CASCADEFORMER_PRETRAIN.is_discarded(k)}
    return encoder, CASCADEFORMER_PRETRAIN_OBJECTIVE.to_ours(head)


def join_cascadeformer_stage2(t1: Mapping[str, torch.Tensor], t2: Mapping[str, torch.Tensor],
                              cross_attn: Mapping[str, torch.Tensor], head: Mapping[str, torch.Tensor]) -> StateDict:
    """Upstream's four stage-2 state dicts -> the one layout the ``cascadeformer`` converter reads."""
    parts = {"t1.": t1, "t2.": t2, "cross_attn.": cross_attn, "gait_head.": head}
    return {prefix + key: value for prefix, state in parts.items() for key, value in state.items()}


def cascadeformer_objective_kwargs(official: Mapping[str, torch.Tensor]) -> Dict[str, object]:
    """The ``cascadeformer`` objective's sizes from a ``BaseT1`` state dict (3-D joints assumed, as NTU's)."""
    if "reconstruction_head.weight" not in official:
        raise CheckpointConversionError("cascadeformer_pretrain: not a BaseT1 checkpoint, it lacks "
                                        "reconstruction_head.weight")
    outputs, width = official["reconstruction_head.weight"].shape
    if outputs % 3:
        raise CheckpointConversionError(f"cascadeformer_pretrain: {outputs} reconstruction outputs are not V x 3")
    return {"embed_dim": int(width), "num_joints": int(outputs) // 3, "in_channels": 3}


CASCADEFORMER_OBJECTIVE_PARTS: Dict[str, ObjectivePart] = {
    "cascadeformer_pretrain": ObjectivePart("cascadeformer", CASCADEFORMER_PRETRAIN_OBJECTIVE,
                                            cascadeformer_objective_kwargs),
}
