"""Converters for the official graph-convolution models: CTR-GCN, ST-GCN, ST-GCN++, Hyper-GCN, PSUMNet.

Official layouts (the repository and commit each was read from; checkpoints these codebases save):

* ``ctrgcn``: Uason-Chen/CTR-GCN@e13d758 ``model.ctrgcn.Model``: ``l1..l10`` blocks, ``fc``.
* ``stgcn``: yysijie/st-gcn@221c0e1 ``net.st_gcn.Model``: ``st_gcn_networks.*``, ``edge_importance.*``
  and a 1x1-conv classifier ``fcn`` ([K, 256, 1, 1], a Linear [K, 256] in ours).
* ``stgcnpp``: kennymckormick/pyskl@3f6795f, the mmaction-style recognizer of the stgcn++ configs:
  ``backbone.*`` (``STGCN``) and ``cls_head.fc_cls.*`` (``GCNHead``).
* ``hypergcn`` / ``hypergcn_large``: 6UOOON9/Hyper-GCN@cefe70b ``model.hypergcn_base`` /
  ``model.hypergcn_large``: ``l1..l9``, ``pos_embedding`` [1, V, D] ([V, D] in ours).
* ``psumnet_body`` / ``_hand`` / ``_leg``: skelemoa/psumnet@8097774 ``model.psumnet.Model`` per stream,
  ``layers.0..``. Our fused ``psumnet`` takes the three converted files through
  ``model.init: {streams.body: ..., streams.hand: ..., streams.leg: ...}``.

``model_kwargs`` are the flags under which our model computes the official function.
"""

from __future__ import annotations

from typing import Dict, Tuple

import torch

from .key_rules import KeyRule, StateDictConverter


def conv1x1_to_linear(weight: torch.Tensor) -> torch.Tensor:
    """[K, C, 1, 1] -> [K, C]."""
    return weight[:, :, 0, 0]


def linear_to_conv1x1(weight: torch.Tensor) -> torch.Tensor:
    """[K, C] -> [K, C, 1, 1]."""
    return weight[:, :, None, None]


def drop_leading_unit(tensor: torch.Tensor) -> torch.Tensor:
    """[1, ...] -> [...]."""
    return tensor[0]


def add_leading_unit(tensor: torch.Tensor) -> torch.Tensor:
    """[...] -> [1, ...]."""
    return tensor[None]


# Multi-scale TCN of the CTR-GCN family: official branch ``k`` ends in a ``TemporalConv`` module
# (``.3.conv`` / ``.3.bn``); Hyper-GCN's and PSUMNet's ports in ours flatten it to ``.3`` / ``.4``.
# Only the two dilated-conv branches (0, 1): branch 2 (max-pool) has a ``.4`` BatchNorm of its own.
_FLAT_TCN_RULES: Tuple[KeyRule, ...] = tuple(
    rule for k in (0, 1) for rule in (
        KeyRule(f"tcn1.branches.{k}.3.conv.{{rest}}", f"tcn.branches.{k}.3.{{rest}}"),
        KeyRule(f"tcn1.branches.{k}.3.bn.{{rest}}", f"tcn.branches.{k}.4.{{rest}}"),
    )
)


def _in_block(prefix_official: str, prefix_ours: str, rules: Tuple[KeyRule, ...], offset: int) -> Tuple[KeyRule, ...]:
    """Prefix block-local rules with the block paths (e.g. ``l{b}.`` <-> ``blocks.{b}.``)."""
    return tuple(KeyRule(prefix_official + r.official, prefix_ours + r.ours, offset, r.to_ours, r.to_official)
                 for r in rules)


CTRGCN = StateDictConverter(
    name="ctrgcn",
    source="Uason-Chen/CTR-GCN@e13d758 model.ctrgcn.Model (graph.ntu_rgb_d, labeling_mode spatial)",
    model="ctrgcn",
    classifier_key="head.fc.weight",
    rules=(
        KeyRule("data_bn.{rest}", "data_bn.bn.{rest}"),
        *_in_block("l{b}.", "blocks.{b}.", (
            KeyRule("gcn1.PA", "gcn.A"),
            KeyRule("gcn1.{rest}", "gcn.{rest}"),
            KeyRule("tcn1.{rest}", "tcn.{rest}"),
            KeyRule("residual.{rest}", "residual.{rest}"),
        ), offset=1),
        KeyRule("fc.{rest}", "head.fc.{rest}"),
    ),
)

STGCN = StateDictConverter(
    name="stgcn",
    source="yysijie/st-gcn@221c0e1 net.st_gcn.Model (ntu-rgb+d layout, spatial strategy, edge importance)",
    model="stgcn",
    model_kwargs={"partition": "official"},
    classifier_key="head.fc.weight",
    rules=(
        KeyRule("A", "A"),
        KeyRule("edge_importance.{k}", "edge_importance.{k}"),
        KeyRule("data_bn.{rest}", "data_bn.bn.{rest}"),
        *_in_block("st_gcn_networks.{b}.", "blocks.{b}.", (
            KeyRule("gcn.{rest}", "gcn.{rest}"),
            KeyRule("tcn.0.{rest}", "tcn.0.{rest}"),
            KeyRule("tcn.2.{rest}", "tcn.2.conv.{rest}"),
            KeyRule("tcn.3.{rest}", "tcn.2.bn.{rest}"),
            KeyRule("residual.0.{rest}", "residual.conv.{rest}"),
            KeyRule("residual.1.{rest}", "residual.bn.{rest}"),
        ), offset=0),
        KeyRule("fcn.weight", "head.fc.weight", to_ours=conv1x1_to_linear, to_official=linear_to_conv1x1),
        KeyRule("fcn.bias", "head.fc.bias"),
    ),
)

STGCNPP = StateDictConverter(
    name="stgcnpp",
    source="kennymckormick/pyskl@3f6795f RecognizerGCN: backbone STGCN (stgcn++ configs) + GCNHead",
    model="stgcnpp",
    classifier_key="head.fc.weight",
    rules=(
        KeyRule("backbone.data_bn.{rest}", "data_bn.bn.{rest}"),
        KeyRule("backbone.gcn.{b}.{rest}", "blocks.{b}.{rest}"),
        KeyRule("cls_head.fc_cls.{rest}", "head.fc.{rest}"),
    ),
)


def _hypergcn(name: str, module: str) -> StateDictConverter:
    return StateDictConverter(
        name=name,
        source=f"6UOOON9/Hyper-GCN@cefe70b model.{module}.Model (hyper_joints 3, virtual_ensemble graph)",
        model=name,
        model_kwargs={"virtual_init": "upstream"},
        classifier_key="fc.weight",
        note="the official prior graph PA is a frozen parameter; ours holds it as the buffer prior_graph",
        rules=(
            KeyRule("pos_embedding", "pos_embedding", to_ours=drop_leading_unit, to_official=add_leading_unit),
            KeyRule("to_joint_embedding.{rest}", "joint_embedding.{rest}"),
            KeyRule("data_bn.{rest}", "data_bn.{rest}"),
            *_in_block("l{b}.", "blocks.{b}.", (
                KeyRule("gcn1.PA", "gcn.prior_graph"),
                KeyRule("gcn1.hyper_joint", "gcn.virtual_joints"),
                KeyRule("gcn1.to_V.{rest}", "gcn.hypergraph.to_embedding.{rest}"),
                KeyRule("gcn1.to_W.{rest}", "gcn.hypergraph.to_edge_weight.{rest}"),
                KeyRule("gcn1.conv_d.{rest}", "gcn.head_conv.{rest}"),
                KeyRule("gcn1.{rest}", "gcn.{rest}"),
                *_FLAT_TCN_RULES,
                KeyRule("tcn1.{rest}", "tcn.{rest}"),
                KeyRule("residual.conv.{rest}", "residual.0.{rest}"),
                KeyRule("residual.bn.{rest}", "residual.1.{rest}"),
            ), offset=1),
            KeyRule("fc.{rest}", "fc.{rest}"),
        ),
    )


def _psumnet(stream: str) -> StateDictConverter:
    return StateDictConverter(
        name=f"psumnet_{stream}",
        source=f"skelemoa/psumnet@8097774 model.psumnet.Model(stream={stream!r}, in_channels=12)",
        model=f"psumnet_{stream}",
        model_kwargs={"leg_graph": "official"} if stream == "leg" else {},
        classifier_key="fc.weight",
        rules=(
            KeyRule("data_bn.{rest}", "data_bn.{rest}"),
            *_in_block("layers.{b}.", "blocks.{b}.", (
                KeyRule("gcn1.PA", "gcn.adjacency"),
                KeyRule("gcn1.{rest}", "gcn.{rest}"),
                *_FLAT_TCN_RULES,
                KeyRule("tcn1.{rest}", "tcn.{rest}"),
                KeyRule("residual.conv.{rest}", "residual.0.{rest}"),
                KeyRule("residual.bn.{rest}", "residual.1.{rest}"),
            ), offset=0),
            KeyRule("fc.{rest}", "fc.{rest}"),
        ),
    )


GCN_CONVERTERS: Dict[str, StateDictConverter] = {
    c.name: c for c in (
        CTRGCN, STGCN, STGCNPP,
        _hypergcn("hypergcn", "hypergcn_base"), _hypergcn("hypergcn_large", "hypergcn_large"),
        *(_psumnet(s) for s in ("body", "hand", "leg")),
    )
}
