"""Converters for EPAM-Net (ahmed-nady/Multimodal-Action-Recognition@32267f1) and its X-ShiftNets.

Official layouts (mmcv ``ConvModule``: ``<name>.conv.weight`` + ``<name>.bn.*``; ours: ``<name>.0``
+ ``<name>.1``; the squeeze-excitation ``se_module`` is ``se`` in ours):

* ``epam_net``: ``actionModels/rgb_pose_action_recognition_model.RGBPoseAttentionActionRecognizer``
  (``attention="CBAM_spatial_efficient_temporal"``, as ``train/ddp_train_...py`` builds it):
  ``rgb_backbone`` (``X3DTemporalShift``), ``pose_backbone`` (``X3DTemporalShiftPose``),
  ``rgb_cls_head`` / ``pose_cls_head`` (``I3DHead``), ``attention_module`` (CBAM spatial +
  efficient temporal attention) -> our ``epam_net`` (``rgb``, ``pose``, ``sta``).
* ``xshiftnet_pose``: ``PoseActionRecognition(backbone_type="poseX3dTShiftSE")`` (stage 1 of the
  pose stream): ``backbone`` + ``cls_head.fc_cls`` -> our ``xshiftnet_pose``.
* ``xshiftnet_rgb``: an mmaction recognizer of ``X3DTemporalShift`` + ``I3DHead`` (``backbone`` +
  ``cls_head.fc_cls``, the layout mmaction's ``Recognizer3D`` saves) -> our ``xshiftnet_rgb``.

No trained EPAM-Net weights were published with the code (``pretrained_EPAM_models/`` is empty).
"""

from __future__ import annotations

from typing import Dict, Tuple

from .key_rules import KeyRule, StateDictConverter

_SOURCE = "ahmed-nady/Multimodal-Action-Recognition@32267f1"
_BN_ENTRIES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _backbone_rules(official: str, ours: str) -> Tuple[KeyRule, ...]:
    """``ConvModule`` and SE names of one X-ShiftNet backbone (prefixes end in ".")."""
    se = tuple(KeyRule(f"{official}{{rest}}.se_module.{fc}.{entry}", f"{ours}{{rest}}.se.{fc}.{entry}")
               for fc in ("fc1", "fc2") for entry in ("weight", "bias"))
    conv = (KeyRule(f"{official}{{rest}}.conv.weight", f"{ours}{{rest}}.0.weight"),)
    bn = tuple(KeyRule(f"{official}{{rest}}.bn.{entry}", f"{ours}{{rest}}.1.{entry}") for entry in _BN_ENTRIES)
    return se + conv + bn


def _head_rules(official: str, ours: str) -> Tuple[KeyRule, ...]:
    return tuple(KeyRule(f"{official}fc_cls.{entry}", f"{ours}fc.{entry}") for entry in ("weight", "bias"))


EPAM_NET = StateDictConverter(
    name="epam_net",
    source=f"{_SOURCE} RGBPoseAttentionActionRecognizer(attention='CBAM_spatial_efficient_temporal')",
    model="epam_net",
    classifier_key="rgb.head.fc.weight",
    rules=(
        *_backbone_rules("rgb_backbone.", "rgb.backbone."),
        *_backbone_rules("pose_backbone.", "pose.backbone."),
        *_head_rules("rgb_cls_head.", "rgb.head."),
        *_head_rules("pose_cls_head.", "pose.head."),
        KeyRule("attention_module.spatial.conv.weight", "sta.spatial_conv.weight"),
        *(KeyRule(f"attention_module.spatial.bn.{e}", f"sta.spatial_bn.{e}") for e in _BN_ENTRIES),
        KeyRule("attention_module.conv_temporal_attention.weight", "sta.temporal_conv.weight"),
    ),
)


def _stream(name: str, source: str) -> StateDictConverter:
    return StateDictConverter(
        name=name, source=f"{_SOURCE} {source}", model=name, classifier_key="head.fc.weight",
        rules=(*_backbone_rules("backbone.", "backbone."), *_head_rules("cls_head.", "head.")),
    )


EPAM_CONVERTERS: Dict[str, StateDictConverter] = {c.name: c for c in (
    EPAM_NET,
    _stream("xshiftnet_pose", "PoseActionRecognition(backbone_type='poseX3dTShiftSE')"),
    _stream("xshiftnet_rgb", "recognizer of X3DTemporalShift(gamma_b=2.25, gamma_d=2.2, se_style='half') + I3DHead"),
)}
