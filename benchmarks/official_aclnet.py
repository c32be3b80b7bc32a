"""Import ACLNet's official model and loss (firework8/ACLNet@0fab868) without mmcv.

The snapshot lies under ``<official-root>/aclnet`` (``git -C <mirror> archive HEAD aclnet | tar -x -C
/tmp/official/aclnet``; never inside this repository, nothing of it is edited or copied here). Its
model files import mmcv 1.x, which is not installed, only as registry and builder glue. This
module writes a minimal mmcv tree under ``<official-root>/_stubs_aclnet`` holding just the names
those files import, built as mmcv builds them:

* ``mmcv.cnn``: ``MODELS`` (a registry), ``build_activation_layer`` (``ReLU`` -> ``nn.ReLU``),
  ``build_norm_layer`` (``BN`` -> ``nn.BatchNorm2d``), ``normal_init`` (weights N(0, std), bias
  constant) as mmcv's;
* ``mmcv.utils``: ``Registry`` (name -> class, ``build(cfg)``) and torch's ``_BatchNorm``;
* ``mmcv.runner``: ``load_checkpoint`` raises (no weights are loaded), ``DistEvalHook`` a bare
  base class (``aclnet/core/evaluation.py`` subclasses it; the benchmark never builds it).

and enters the packages ``aclnet``, ``aclnet.utils``, ``aclnet.core``, ``aclnet.models`` and its
sub-packages without running their ``__init__`` (which would import the training stack).
``aclnet.utils`` gets the real ``Graph`` and a ``cache_checkpoint`` that raises; ``aclnet.core``
the real ``top_k_accuracy`` (``BaseHead.loss`` computes it every step). Everything else is the
official code: ``GCN_Module``, ``SimpleHead`` with ``BaseHead.loss`` (CE + 0.1 inter + 0.1 intra),
the two ``*_Affinitive_Contrastive_Loss`` modules and ``CrossEntropyLoss``.

:class:`OfficialACLNet` holds the backbone and the head under ``RecognizerGCN``'s names
(``backbone.*``, ``cls_head.*``) and runs ``RecognizerGCN.forward_train``'s steps on one clip per
sample (upstream's loader adds a clip axis that ``forward_train`` removes).
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path
from typing import Tuple

import torch
from torch import nn

from bench_skeleton_train_step import _MMCV_STANDIN  # benchmarks/ is on sys.path

ACLNET_FOLDER = "aclnet"
MS_CFG = [(3, 1), (3, 2), (3, 3), (3, 4), ("max", 3), "1x1"]

_MMCV = {
    "__init__.py": '"""Benchmark stand-in for mmcv: only what ACLNet\'s model files import."""\n',
    # The same Registry and _BatchNorm as the pyskl stand-in of bench_skeleton_train_step.py.
    "utils/__init__.py": _MMCV_STANDIN["utils/__init__.py"],
    "cnn/__init__.py": '''"""Stand-in for mmcv.cnn: builders and normal_init as mmcv 1.x has them."""
import torch.nn as nn

from ..utils import Registry

MODELS = Registry("model")
_NORMS = {"BN": nn.BatchNorm2d, "BN1d": nn.BatchNorm1d, "BN2d": nn.BatchNorm2d}


def build_activation_layer(cfg):
    args = dict(cfg)
    return getattr(nn, args.pop("type"))(**args)


def build_norm_layer(cfg, num_features, postfix=""):
    args = dict(cfg)
    layer = _NORMS[args.pop("type")](num_features, **args)
    return "bn" + str(postfix), layer


def normal_init(module, mean=0, std=1, bias=0):
    if hasattr(module, "weight") and module.weight is not None:
        nn.init.normal_(module.weight, mean, std)
    if hasattr(module, "bias") and module.bias is not None:
        nn.init.constant_(module.bias, bias)
''',
    "runner/__init__.py": '''"""Stand-in for mmcv.runner: no checkpoint loading, a bare evaluation hook base."""


def load_checkpoint(*args, **kwargs):
    raise RuntimeError("the benchmark's mmcv stand-in loads no checkpoints")


class DistEvalHook:
    pass
''',
}


def _package(name: str, path: Path) -> types.ModuleType:
    package = types.ModuleType(name)
    package.__path__ = [str(path)]
    sys.modules[name] = package
    return package


def _unavailable(*args: object, **kwargs: object) -> None:
    raise RuntimeError("the benchmark loads no pretrained ACLNet checkpoints")


def official_modules(root: Path) -> Tuple[type, type]:
    """(``GCN_Module``, ``SimpleHead``) imported from ``root / "aclnet"`` (see the module docstring)."""
    if "aclnet.models.gcns.gcn_module" in sys.modules:
        return (sys.modules["aclnet.models.gcns.gcn_module"].GCN_Module,  # type: ignore[attr-defined]
                sys.modules["aclnet.models.heads.base_simple_head"].SimpleHead)  # type: ignore[attr-defined]
    source = Path(root) / ACLNET_FOLDER / "aclnet"
    if not (source / "models" / "gcns" / "gcn_module.py").is_file():
        raise FileNotFoundError(f"no ACLNet snapshot at {source.parent}: git archive it there (see official_aclnet.py)")
    from actionfusion.io import atomic_write_text

    stubs = Path(root) / "_stubs_aclnet"
    for relative, text in _MMCV.items():
        atomic_write_text(stubs / "mmcv" / relative, text)
    sys.path.insert(0, str(stubs))
    _package("aclnet", source)
    utils = _package("aclnet.utils", source / "utils")
    utils.Graph = importlib.import_module("aclnet.utils.graph").Graph  # type: ignore[attr-defined]
    utils.cache_checkpoint = _unavailable  # type: ignore[attr-defined]
    core = _package("aclnet.core", source / "core")
    core.top_k_accuracy = importlib.import_module("aclnet.core.evaluation").top_k_accuracy  # type: ignore[attr-defined]
    _package("aclnet.models", source / "models")
    _package("aclnet.models.gcns", source / "models" / "gcns")
    _package("aclnet.models.losses", source / "models" / "losses")
    _package("aclnet.models.heads", source / "models" / "heads")
    importlib.import_module("aclnet.models.losses.cross_entropy_loss")  # registers CrossEntropyLoss
    backbone = importlib.import_module("aclnet.models.gcns.gcn_module").GCN_Module
    head = importlib.import_module("aclnet.models.heads.base_simple_head").SimpleHead
    return backbone, head


class OfficialACLNet(nn.Module):
    """The official backbone and head of ``configs/ntu60_xsub/j.py`` (``ntu120`` configs: queue 1024).

    ``forward(x [N, M, T, V, C]) -> (logits [N, C], topology [N, V * V])``; ``loss(x, y)`` is
    ``forward_train``'s ``loss_cls`` (CE + 0.1 inter + 0.1 intra, the head's state updated).
    """

    def __init__(self, root: Path, num_classes: int = 60, data_cfg: str = "ntu60") -> None:
        super().__init__()
        backbone, head = official_modules(root)
        self.backbone = backbone(
            graph_cfg=dict(layout="nturgb+d", mode="random", num_filter=8, init_off=0.04, init_std=0.02),
            gcn_ratio=0.125, gcn_ctr="T", gcn_ada="T", tcn_ms_cfg=list(MS_CFG))
        self.cls_head = head(data_cfg=data_cfg, num_classes=num_classes, in_channels=384)
        self.cls_head.init_weights()

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        feats, topology = self.backbone(x)
        return self.cls_head(feats), topology

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits, topology = self(x)
        return self.cls_head.loss(logits, topology, y)["loss_cls"]


def structured_bank(num_classes: int, seed: int = 0) -> torch.Tensor:
    """A confusion bank int64 [C, C] whose superclasses come in three sizes (tau 0.1, 0.5 and 1.0).

    Every entry starts at U{0..3} (frequent ties, which exercise the tie order), the diagonal at 0.
    The first fifth of the rows get +50 on 10 classes drawn for each row alone (superclass = those
    10: tau 0.1); the next fifth, and then the rest, are two groups whose rows all get +50 on the
    first 12 classes of their group's range (itself excluded): rows of one group share most of
    their top-10, so the overlap term joins the whole group (11-20 classes: tau 0.5; more: 1.0).
    """
    gen = torch.Generator().manual_seed(seed)
    bank = torch.randint(0, 4, (num_classes, num_classes), generator=gen)
    fifth = max(num_classes // 5, 1)
    for i in range(fifth):
        bank[i, torch.randperm(num_classes, generator=gen)[:10]] += 50
    for start, stop in ((fifth, 2 * fifth), (2 * fifth, num_classes)):
        attractors = torch.arange(start, min(start + 12, num_classes))
        for i in range(start, stop):
            bank[i, attractors] += 50
    bank.fill_diagonal_(0)
    return bank


def match_official_state(official: OfficialACLNet, prototypes: torch.Tensor, bank: torch.Tensor,
                         queue_features: torch.Tensor, queue_labels: torch.Tensor, count: bool) -> None:
    """Give the official head's losses the state of ours: prototypes [C, D], bank [C, C], a full
    queue ([Q, D] oldest first, [Q]) and the "Affinitive" stage with superclasses due on the next
    call. ``count``: the bank counts the next batches too (epochs >= 30); off, the superclasses come
    from ``bank`` exactly (upstream counts a batch before computing them)."""
    inter, intra = official.cls_head.inter_loss, official.cls_head.intra_loss
    inter.avg_f = prototypes.detach().T.clone()
    for i, row in enumerate(bank.tolist()):
        inter.Neighborhood_Bank[i] = dict(enumerate(row))
    inter.current_epoch = inter.start_epoch + 1 if count else 1
    inter.state, inter.epoch_state, inter.save_state = "Affinitive", True, False
    inter.class_mask_list.clear(), inter.affinitive_list.clear()
    intra.Feature_Bank = [f.detach().clone() for f in queue_features]
    intra.Label_Bank = [label.view(1).clone() for label in queue_labels]


def onehot_in_model_dtype(official: OfficialACLNet) -> None:
    """Runtime patch for float64 comparisons only: upstream's inter-class loss makes its one-hot
    masks with ``.float()``, and ``torch.matmul`` of float64 features with a float32 mask fails;
    here the masks take the dtype of the loss's projection head (the values, 0 and 1, are exact)."""
    inter = official.cls_head.inter_loss
    onehot = type(inter).onehot
    inter.onehot = lambda label: onehot(inter, label).to(inter.cl_fc.weight.dtype)


def official_loss_parts(official: OfficialACLNet, x: torch.Tensor, y: torch.Tensor) -> dict:
    """``BaseHead.loss``'s three terms (top-k accuracy aside), called as it calls them:
    {"logits", "topology", "ce", "inter", "intra", "loss"}."""
    head = official.cls_head
    logits, topology = official(x)
    ce = head.loss_cls(logits, y).mean()
    inter = head.inter_loss(topology, y.detach(), logits.detach()).mean()
    intra = head.intra_loss(topology, y.detach()).mean()
    loss = ce + head.weight[0] * inter + head.weight[1] * intra
    return {"logits": logits, "topology": topology, "ce": ce, "inter": inter, "intra": intra, "loss": loss}
