"""Converters for maoyunyao/MAMP checkpoints (``model/transformer.py``, ``model_mamp/transformer.py``).

* ``mamp``: the fine-tune model (``Transformer(protocol="finetune")``, ``ActionHeadFinetune``)
  -> our ``mamp`` (``head="finetune"``). ``main_finetune.py`` saves ``{"model": state_dict, ...}``.
* ``mamp_linprobe``: the linear-probe model of ``main_linprobe.py``, whose ``head.fc`` becomes
  ``Sequential(BatchNorm1d(affine=False), Linear)`` -> our ``mamp`` with ``head="linear"``.
* ``mamp_pretrain``: the masked-motion-prediction pretraining model (encoder + decoder) -> our
  ``MAMPEncoder`` (``mamp``'s ``encoder`` sub-module). This library has no MAMP decoder: the
  decoder's keys (``decoder_*``, ``mask_token``) are dropped by name and listed in the report;
  the way back writes the encoder's keys only. Fine-tune or linear-probe from it with
  ``model.init: {encoder: mamp_pretrain.safetensors}``.
"""

from __future__ import annotations

from typing import Dict, Tuple

from .key_rules import KeyRule, StateDictConverter

_SOURCE = "maoyunyao/MAMP (snapshot of /tmp/official/mamp)"

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
    discard=(r"mask_token", r"decoder_.*"),
    note="the pretraining decoder (decoder_*, mask_token) has no counterpart here and is dropped by name",
)

MAMP_CONVERTERS: Dict[str, StateDictConverter] = {c.name: c for c in (MAMP_FINETUNE, MAMP_LINPROBE, MAMP_PRETRAIN)}
