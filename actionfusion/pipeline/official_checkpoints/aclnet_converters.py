"""Converters for ACLNet (firework8/ACLNet@0fab868): the ``RecognizerGCN`` checkpoints its configs save.

Official layout: ``backbone.*`` (``GCN_Module``: ``data_bn``, ``gcn.{b}.gcn`` / ``.tcn`` /
``.residual``, whose sub-module names ours keeps) and ``cls_head.*`` (``SimpleHead``: ``fc_cls`` and
the two training losses' projection heads ``inter_loss.cl_fc`` / ``intra_loss.cl_fc``).

* ``aclnet`` -> our ``aclnet`` model. The projection heads are not part of the model (they belong
  to the ``aclnet`` objective, training only) and are discarded by name.
* :data:`ACLNET_PROJECTIONS` maps those heads onto the ``aclnet`` objective's
  ``inter_projection`` / ``intra_projection`` (the objective's other state, prototypes, bank and
  queue, is not in upstream's checkpoints: upstream keeps it in plain attributes).
"""

from __future__ import annotations

from typing import Dict

from .key_rules import KeyRule, StateDictConverter

_SOURCE = "firework8/ACLNet@0fab868 RecognizerGCN: backbone GCN_Module (configs/*/j.py) + SimpleHead"

ACLNET = StateDictConverter(
    name="aclnet",
    source=_SOURCE,
    model="aclnet",
    classifier_key="head.fc.weight",
    discard=(r"cls_head\.(inter|intra)_loss\.cl_fc\.(weight|bias)",),
    note="the projection heads cls_head.{inter,intra}_loss.cl_fc belong to the aclnet objective (ACLNET_PROJECTIONS)",
    rules=(
        KeyRule("backbone.data_bn.{rest}", "data_bn.bn.{rest}"),
        KeyRule("backbone.gcn.{b}.{rest}", "blocks.{b}.{rest}"),
        KeyRule("cls_head.fc_cls.{rest}", "head.fc.{rest}"),
    ),
)

ACLNET_PROJECTIONS = StateDictConverter(
    name="aclnet_projections",
    source=_SOURCE,
    model="aclnet",
    note="official keys <-> the aclnet objective's projection heads (a part of its state dict)",
    rules=(
        KeyRule("cls_head.inter_loss.cl_fc.{rest}", "inter_projection.{rest}"),
        KeyRule("cls_head.intra_loss.cl_fc.{rest}", "intra_projection.{rest}"),
    ),
)

ACLNET_CONVERTERS: Dict[str, StateDictConverter] = {ACLNET.name: ACLNET}
