"""Import EPAM-Net's official model (ahmed-nady/Multimodal-Action-Recognition) without mmcv / mmaction.

The snapshot (``git archive HEAD``, commit 32267f1) lies under ``<official-root>/epam``; nothing of
it is copied here. Its model (``actionModels/rgb_pose_action_recognition_model.py``,
``RGBPoseAttentionActionRecognizer``) imports mmcv and mmaction, which are not installed. Like the
pyskl stand-in of ``bench_skeleton_train_step.py``, this module writes a minimal mmcv tree under
``<official-root>/_stubs_epam`` holding only the names those files import, built as mmcv 1.x
builds them:

* ``mmcv.cnn.ConvModule``: ``conv`` (``conv_cfg`` type Conv3d/Conv2d, bias ``"auto"`` = no bias
  under a norm), ``bn`` (``norm_cfg`` BN3d/BN), ``activate`` (ReLU or Swish), order conv -> norm
  -> act; ``Swish`` is x * sigmoid(x); the ``*_init`` functions initialise as mmcv's do.
* ``mmcv.utils._BatchNorm`` is torch's; ``mmcv.runner.load_checkpoint`` raises (no weights loaded).

and enters the packages ``mmaction``, ``mmaction.models``, ``.backbones`` and ``.heads`` without
running their ``__init__``: ``mmaction.models.builder`` gets registries that keep classes and a
``build_loss`` returning a parameter-free module (the heads' loss is not used by ``forward``),
``mmaction.core`` the two accuracy names (they raise), ``mmaction.utils`` ``get_root_logger``.
``mmaction.models.backbones`` / ``.heads`` expose the real ``X3DTemporalShift``,
``X3DTemporalShiftPose`` and ``I3DHead``; the backbones the recognizer file imports but the
EPAM-Net configuration does not build (X3D, C3D, X3DPose, ResNet3dSlowOnly, X3DHead) are
placeholders that raise if built.
"""

from __future__ import annotations

import importlib
import logging
import sys
import types
from pathlib import Path

from torch import nn

EPAM_FOLDER = "epam"

_MMCV: dict = {
    "__init__.py": '"""Parity stand-in for mmcv: only what EPAM-Net\'s model files import."""\n',
    "utils/__init__.py": '"""Stand-in for mmcv.utils."""\nfrom torch.nn.modules.batchnorm import _BatchNorm  # noqa: F401\n',
    "runner/__init__.py": '''"""Stand-in for mmcv.runner: no checkpoint loading."""


def load_checkpoint(*args, **kwargs):
    raise RuntimeError("the parity stand-in for mmcv loads no checkpoints")
''',
    "cnn/__init__.py": '''"""Stand-in for mmcv.cnn: ConvModule, Swish, builders and initialisers as mmcv 1.x has them."""
import torch
import torch.nn as nn

_CONVS = {None: nn.Conv2d, "Conv": nn.Conv2d, "Conv1d": nn.Conv1d, "Conv2d": nn.Conv2d, "Conv3d": nn.Conv3d}
_NORMS = {"BN": nn.BatchNorm2d, "BN1d": nn.BatchNorm1d, "BN2d": nn.BatchNorm2d, "BN3d": nn.BatchNorm3d}


class Swish(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(x)


def build_activation_layer(cfg):
    args = dict(cfg)
    kind = args.pop("type")
    if kind == "Swish":
        return Swish()
    return getattr(nn, kind)(**args)


def build_norm_layer(cfg, num_features, postfix=""):
    args = dict(cfg)
    kind = args.pop("type")
    requires_grad = args.pop("requires_grad", True)
    layer = _NORMS[kind](num_features, **args)
    for param in layer.parameters():
        param.requires_grad = requires_grad
    return "bn" + str(postfix), layer


def constant_init(module, val, bias=0):
    if getattr(module, "weight", None) is not None:
        nn.init.constant_(module.weight, val)
    if getattr(module, "bias", None) is not None:
        nn.init.constant_(module.bias, bias)


def kaiming_init(module, a=0, mode="fan_out", nonlinearity="relu", bias=0, distribution="normal"):
    if distribution == "uniform":
        nn.init.kaiming_uniform_(module.weight, a=a, mode=mode, nonlinearity=nonlinearity)
    else:
        nn.init.kaiming_normal_(module.weight, a=a, mode=mode, nonlinearity=nonlinearity)
    if getattr(module, "bias", None) is not None:
        nn.init.constant_(module.bias, bias)


def normal_init(module, mean=0, std=1, bias=0):
    if getattr(module, "weight", None) is not None:
        nn.init.normal_(module.weight, mean, std)
    if getattr(module, "bias", None) is not None:
        nn.init.constant_(module.bias, bias)


class ConvModule(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias="auto", conv_cfg=None, norm_cfg=None, act_cfg=dict(type="ReLU"), inplace=True,
                 with_spectral_norm=False, padding_mode="zeros", order=("conv", "norm", "act")):
        super().__init__()
        if with_spectral_norm or padding_mode != "zeros" or tuple(order) != ("conv", "norm", "act"):
            raise NotImplementedError("the parity stand-in builds plain conv -> norm -> act modules only")
        self.with_norm, self.with_activation = norm_cfg is not None, act_cfg is not None
        if bias == "auto":
            bias = not self.with_norm
        kind = None if conv_cfg is None else conv_cfg["type"]
        self.conv = _CONVS[kind](in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                                 dilation=dilation, groups=groups, bias=bias)
        if self.with_norm:
            self.norm_name, norm = build_norm_layer(norm_cfg, out_channels)
            self.add_module(self.norm_name, norm)
        if self.with_activation:
            act = dict(act_cfg)
            if act["type"] in ("ReLU", "LeakyReLU", "ReLU6", "ELU"):
                act.setdefault("inplace", inplace)
            self.activate = build_activation_layer(act)
        kaiming_init(self.conv, nonlinearity="relu")
        if self.with_norm:
            constant_init(getattr(self, self.norm_name), 1, bias=0)

    def forward(self, x, activate=True, norm=True):
        x = self.conv(x)
        if norm and self.with_norm:
            x = getattr(self, self.norm_name)(x)
        if activate and self.with_activation:
            x = self.activate(x)
        return x
''',
}


class _Registry:
    def __init__(self, name: str) -> None:
        self.name, self.modules = name, {}

    def register_module(self, name=None, force=False, module=None):  # type: ignore[no-untyped-def]
        def register(cls):  # type: ignore[no-untyped-def]
            self.modules[name or cls.__name__] = cls
            return cls
        return register(module) if module is not None else register


def _placeholder(name: str) -> type:
    def build(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"{name} is not part of EPAM-Net's configuration (parity stand-in)")
    return type(name, (), {"__init__": build})


def _unavailable(*args: object, **kwargs: object) -> None:
    raise RuntimeError("not available in the parity stand-in")


def _package(name: str, path: Path) -> types.ModuleType:
    package = types.ModuleType(name)
    package.__path__ = [str(path)]
    sys.modules[name] = package
    return package


def prepare_epam(official_root: Path) -> None:
    """Make EPAM-Net's model file importable (see the module docstring)."""
    from actionfusion.io import atomic_write_text

    stubs = official_root / "_stubs_epam"
    for relative, text in _MMCV.items():
        atomic_write_text(stubs / "mmcv" / relative, text)
    sys.path.insert(0, str(stubs))
    root = official_root / EPAM_FOLDER
    sys.path.insert(0, str(root))
    mmaction = _package("mmaction", root / "mmaction")
    models = _package("mmaction.models", root / "mmaction" / "models")
    builder = types.ModuleType("mmaction.models.builder")
    builder.BACKBONES, builder.HEADS = _Registry("backbone"), _Registry("head")  # type: ignore[attr-defined]
    builder.build_loss = lambda cfg: nn.Identity()  # type: ignore[attr-defined]
    sys.modules["mmaction.models.builder"] = builder
    models.builder = builder  # type: ignore[attr-defined]
    core = types.ModuleType("mmaction.core")
    core.top_k_accuracy = core.mean_class_accuracy = _unavailable  # type: ignore[attr-defined]
    sys.modules["mmaction.core"] = core
    utils = types.ModuleType("mmaction.utils")
    utils.get_root_logger = lambda *a, **k: logging.getLogger("epam")  # type: ignore[attr-defined]
    sys.modules["mmaction.utils"] = utils
    mmaction.core, mmaction.utils, mmaction.models = core, utils, models  # type: ignore[attr-defined]
    backbones = _package("mmaction.models.backbones", root / "mmaction" / "models" / "backbones")
    heads = _package("mmaction.models.heads", root / "mmaction" / "models" / "heads")
    backbones.X3DTemporalShift = importlib.import_module(  # type: ignore[attr-defined]
        "mmaction.models.backbones.x3dTemporalshift").X3DTemporalShift
    backbones.X3DTemporalShiftPose = importlib.import_module(  # type: ignore[attr-defined]
        "mmaction.models.backbones.x3dTShiftPose").X3DTemporalShiftPose
    heads.I3DHead = importlib.import_module("mmaction.models.heads.i3d_head").I3DHead  # type: ignore[attr-defined]
    for name in ("X3D", "C3D", "X3DPose", "ResNet3dSlowOnly"):
        setattr(backbones, name, _placeholder(name))
    heads.X3DHead = _placeholder("X3DHead")  # type: ignore[attr-defined]


def build_official_epam(official_root: Path, num_classes: int = 60) -> nn.Module:
    """``RGBPoseAttentionActionRecognizer`` as the training script builds it (CBAM spatial +
    efficient temporal attention, ``nested``), after ``init_weights``. forward(rgb, heatmaps) ->
    (guided RGB logits, pose logits)."""
    prepare_epam(official_root)
    module = importlib.import_module("actionModels.rgb_pose_action_recognition_model")
    model = module.RGBPoseAttentionActionRecognizer(attention="CBAM_spatial_efficient_temporal",
                                                    num_classes=num_classes)
    model.init_weights()
    return model
