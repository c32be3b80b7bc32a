"""Converters for maoyunyao/MAMP checkpoints (``model/transformer.py``, ``model_mamp/transformer.py``).

* ``mamp``: the fine-tune model (``Transformer(protocol="finetune")``, ``ActionHeadFinetune``)
  -> our ``mamp`` (``head="finetune"``). ``main_finetune.py`` saves ``{"model": state_dict, ...}``.
* ``mamp_linprobe``: the linear-probe model of ``main_linprobe.py``, whose ``head.fc`` becomes
  ``Sequential(BatchNorm1d(affine=False), Linear)`` -> our ``mamp`` with ``head="linear"``.
* ``mamp_pretrain``: the masked-motion-prediction pretraining model (encoder + decoder). The
  encoder goes to our ``MAMPEncoder`` (``mamp``'s ``encoder`` sub-module); this converter drops
  the decoder's keys (``decoder_*``, ``mask_token``) by name, because the decoder is not part of
  the model but of the ``mamp`` objective (:class:`~actionfusion.objectives.mamp.MAMPPretraining`,
  whose ``decoder`` holds them under upstream's names). :func:`split_mamp_pretrain` and
  :func:`join_mamp_pretrain` convert the whole checkpoint, decoder included, both ways;
  ``convert-checkpoint --from mamp_pretrain IN OUT.safetensors`` writes the objective's part to
  ``OUT.objective.safetensors``. Fine-tune or linear-probe from the encoder with
  ``model.init: {encoder: mamp_pretrain.safetensors}``.
"""

from __future__ import annotations

import re
from typing import Dict, Mapping, Tuple

import torch

from .key_rules import CheckpointConversionError, KeyRule, ObjectivePart, StateDictConverter

_SOURCE = "maoyunyao/MAMP (snapshot of /tmp/official/mamp)"

# official keys of the pretraining decoder (the objective's part of a pretraining checkpoint)
_DECODER_KEYS: Tuple[str, ...] = (r"mask_token", r"decoder_.*")

_ENCODER_RULES: Tuple[Tuple[str, str], ...] = (
    ("joints_embed.proj.{rest}", "patch_embed.{rest}"),
    ("temp_embed", "temporal_embed"),
    ("pos_embed", "spatial_embed"),
    ("blocks.{rest}", "blocks.{rest}"),
    ("norm.{rest}", "norm.{rest}"),
)


def _encoder_rules(prefix: str) -> Tuple[KeyRule, ...]:
    return tuple(KeyRule(official, prefix + ours) for official, ours in _ENCODER_RULES)


MAMP_FINETUNE = StateDictConverter(
    name="mamp",
    source=f"{_SOURCE} model.transformer.Transformer(protocol='finetune'), finetune_t120 configs",
    model="mamp",
    classifier_key="head.fc2.weight",
    rules=(*_encoder_rules("encoder."), KeyRule("head.{rest}", "head.{rest}")),
)

MAMP_LINPROBE = StateDictConverter(
    name="mamp_linprobe",
    source=f"{_SOURCE} main_linprobe.py: head.fc = Sequential(BatchNorm1d(affine=False, eps=1e-6), Linear)",
    model="mamp",
    model_kwargs={"head": "linear"},
    classifier_key="head.fc.weight",
    rules=(
        *_encoder_rules("encoder."),
        KeyRule("head.fc.0.{rest}", "head.norm.{rest}"),
        KeyRule("head.fc.1.{rest}", "head.fc.{rest}"),
    ),
)

MAMP_PRETRAIN = StateDictConverter(
    name="mamp_pretrain",
    source=f"{_SOURCE} model_mamp.transformer.Transformer (pretrain_mamp_t120 configs)",
    model="mamp",
    submodule="encoder",
    rules=_encoder_rules(""),
    discard=_DECODER_KEYS,
    note="the pretraining decoder (decoder_*, mask_token) belongs to the mamp objective, not the model: "
         "split_mamp_pretrain converts it, convert-checkpoint writes it to OUT.objective.safetensors",
)

# The decoder part of a pretraining checkpoint <-> the state dict of the "mamp" objective
# (create_objective("mamp", **mamp_objective_kwargs(official))), whose ``decoder`` sub-module
# holds upstream's decoder under upstream's names. ``model`` names the registered objective.
MAMP_PRETRAIN_OBJECTIVE = StateDictConverter(
    name="mamp_pretrain (objective)",
    source=f"{_SOURCE} model_mamp.transformer.Transformer decoder (pretrain_mamp_t120 configs)",
    model="mamp",
    rules=(KeyRule("mask_token", "decoder.mask_token"), KeyRule("decoder_{rest}", "decoder.decoder_{rest}")),
)

MAMP_CONVERTERS: Dict[str, StateDictConverter] = {c.name: c for c in (MAMP_FINETUNE, MAMP_LINPROBE, MAMP_PRETRAIN)}

# Upstream's parameter groups in registration order (module-level parameters first, then the
# sub-modules): join_mamp_pretrain lists its keys group by group, as upstream's state dicts do.
_OFFICIAL_ORDER = ("temp_embed", "pos_embed", "mask_token", "decoder_temp_embed", "decoder_pos_embed",
                   "joints_embed.", "blocks.", "norm.", "decoder_embed.", "decoder_blocks.", "decoder_norm.",
                   "decoder_pred.")


StateDict = Dict[str, torch.Tensor]


def split_mamp_pretrain(official: Mapping[str, torch.Tensor]) -> Tuple[StateDict, StateDict]:
    """An official pretraining state dict -> (encoder state, objective state).

    The encoder state loads into ``create_model("mamp", ...).encoder``, the objective state into
    ``create_objective("mamp", **mamp_objective_kwargs(official))``, both strictly. Raises
    :class:`UnmappedKeysError` on a key that belongs to neither.
    """
    encoder = MAMP_PRETRAIN.to_ours(official)
    decoder = {key: value for key, value in official.items() if MAMP_PRETRAIN.is_discarded(key)}
    return encoder, MAMP_PRETRAIN_OBJECTIVE.to_ours(decoder)


def _official_rank(key: str) -> int:
    for rank, name in enumerate(_OFFICIAL_ORDER):
        if key == name or (name.endswith(".") and key.startswith(name)):
            return rank
    return len(_OFFICIAL_ORDER)


def join_mamp_pretrain(encoder: Mapping[str, torch.Tensor], objective: Mapping[str, torch.Tensor]) -> StateDict:
    """(our ``MAMPEncoder`` state, the ``mamp`` objective's state) -> an official pretraining state
    dict (``model_mamp.transformer.Transformer``), its keys grouped in upstream's order."""
    official = {**MAMP_PRETRAIN.to_official(encoder), **MAMP_PRETRAIN_OBJECTIVE.to_official(objective)}
    return dict(sorted(official.items(), key=lambda item: _official_rank(item[0])))  # stable: blocks stay in order


def mamp_objective_kwargs(official: Mapping[str, torch.Tensor]) -> Dict[str, object]:
    """The ``mamp`` objective's size arguments, read off an official pretraining state dict.

    num_frames, num_joints, in_channels, segment_frames and encoder_dim from the encoder's patch
    embedding and embeddings; decoder_dim and decoder_depth from the decoder's keys.
    """
    required = ("joints_embed.proj.weight", "temp_embed", "pos_embed", "decoder_embed.weight")
    missing = [key for key in required if key not in official]
    if missing:
        raise CheckpointConversionError(f"mamp_pretrain: not a MAMP pretraining checkpoint, it lacks {missing}")
    encoder_dim, in_channels, segment_frames, _ = official["joints_embed.proj.weight"].shape
    depth = 1 + max((int(m.group(1)) for key in official
                     if (m := re.match(r"decoder_blocks\.(\d+)\.", key))), default=-1)
    return {
        "num_frames": int(official["temp_embed"].shape[1]) * int(segment_frames),
        "num_joints": int(official["pos_embed"].shape[2]),
        "in_channels": int(in_channels),
        "segment_frames": int(segment_frames),
        "encoder_dim": int(encoder_dim),
        "decoder_dim": int(official["decoder_embed.weight"].shape[0]),
        "decoder_depth": depth,
    }


# converter name -> the objective that owns the rest of its checkpoint
MAMP_OBJECTIVE_PARTS: Dict[str, ObjectivePart] = {
    "mamp_pretrain": ObjectivePart("mamp", MAMP_PRETRAIN_OBJECTIVE, mamp_objective_kwargs),
}
