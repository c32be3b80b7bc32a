"""``mmcv.ops`` for ``mmcv-lite``: NMS through torchvision, every other compiled op a clear error.

Full mmcv 2.x has no PyPI wheels (it compiles CUDA/C++ ops at install), so the ``[mmpose]`` extra
installs ``mmcv-lite``, which has the Python package without the compiled ``mmcv._ext``. mmpose
1.3.2 and mmdet 3.3.0 import ``mmcv.ops`` while their packages load (mmpose for the deformable
attention of its EDPose head, mmdet for RoI and deformable layers), so with mmcv-lite ``import
mmpose.apis`` fails with ``No module named 'mmcv._ext'`` before any model is built.

:func:`install_mmcv_ops_shim` registers this replacement as ``mmcv.ops`` when, and only when,
mmcv is importable and its compiled extension is not. It gives:

- ``nms`` and ``batched_nms`` with mmcv's signatures and results, computed by
  ``torchvision.ops.nms`` / ``batched_nms`` (torchvision is a dependency). These are the ops a
  top-down pipeline's detector post-processing calls (RTMDet, YOLOX, Faster R-CNN heads);
- any other name as a placeholder class that raises :class:`MissingDependencyError` when a model
  builds or calls it, naming the op and the fix (full mmcv), so models that need compiled ops fail
  at construction with one line, not deep inside a forward pass.

Top-down pose models (RTMPose, HRNet, SimCC heads) use no compiled op.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from typing import Any, Optional

import torch

from actionfusion.errors import MissingDependencyError

SHIM_MODULE = "mmcv.ops"
FULL_MMCV_HINT = ("full mmcv with compiled ops (pip install mmcv==2.1.0 -f "
                  "https://download.openmmlab.com/mmcv/dist/<cuda>/<torch>/index.html, or build it from source)")


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, offset: int = 0,
        score_threshold: float = 0.0, max_num: int = -1) -> tuple[torch.Tensor, torch.Tensor]:
    """mmcv's ``nms``: (dets float [K, 5] (x0, y0, x1, y1, score) by falling score, keep int64 [K]).

    boxes: float [N, 4]; scores: float [N]. ``offset`` 1 is the legacy ``+1`` box size convention
    (boxes are enlarged by it for the overlap test, as mmcv does); boxes under ``score_threshold``
    are dropped first; ``max_num`` > 0 keeps that many.
    """
    from torchvision.ops import nms as tv_nms

    boxes_t, scores_t = torch.as_tensor(boxes), torch.as_tensor(scores)
    candidates = torch.nonzero(scores_t > score_threshold).flatten() if score_threshold > 0 else \
        torch.arange(scores_t.numel(), device=scores_t.device)
    test_boxes = boxes_t[candidates].float()
    if offset:
        test_boxes = torch.cat([test_boxes[:, :2], test_boxes[:, 2:] + float(offset)], dim=1)
    keep = candidates[tv_nms(test_boxes, scores_t[candidates].float(), float(iou_threshold))]
    if max_num > 0:
        keep = keep[:max_num]
    dets = torch.cat([boxes_t[keep], scores_t[keep, None].to(boxes_t.dtype)], dim=1)
    return dets, keep


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, nms_cfg: Optional[dict],
                class_agnostic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """mmcv's ``batched_nms``: NMS within each ``idxs`` class (across classes with ``class_agnostic``).

    ``nms_cfg``: ``{"type": "nms", "iou_threshold": float, "max_num"?: int}`` (mmcv's keys; ``None``
    keeps every box, sorted). Returns (dets float [K, 5], keep int64 [K]) by falling score.
    """
    boxes_t, scores_t = torch.as_tensor(boxes), torch.as_tensor(scores)
    if nms_cfg is None:
        order = scores_t.sort(descending=True).indices
        return torch.cat([boxes_t[order], scores_t[order, None].to(boxes_t.dtype)], dim=1), order
    cfg = dict(nms_cfg)
    kind = cfg.pop("type", "nms")
    if kind != "nms":
        raise MissingDependencyError(f"mmcv.ops.batched_nms with type {kind!r} needs {FULL_MMCV_HINT}; "
                                     "the mmcv-lite shim of actionfusion computes plain 'nms' only")
    cfg.pop("split_thr", None)
    max_num = int(cfg.pop("max_num", -1))
    iou_threshold = float(cfg.pop("iou_threshold", cfg.pop("iou_thr", 0.5)))
    if class_agnostic or boxes_t.numel() == 0:
        test_boxes = boxes_t
    else:  # mmcv's trick: shift each class's boxes apart so that classes never overlap
        shift = idxs.to(boxes_t) * (boxes_t.max() + 1)
        test_boxes = boxes_t + shift[:, None]
    _, keep = nms(test_boxes, scores_t, iou_threshold, offset=int(cfg.pop("offset", 0)))
    if max_num > 0:
        keep = keep[:max_num]
    return torch.cat([boxes_t[keep], scores_t[keep, None].to(boxes_t.dtype)], dim=1), keep


@functools.lru_cache(maxsize=None)
def _missing_op(name: str) -> type:
    """A class standing for compiled op ``name`` (one per name, so every import sees the same class):
    building or calling it raises one clear line."""
    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise MissingDependencyError(f"mmcv.ops.{name} is a compiled op, and mmcv-lite (the [mmpose] extra) has "
                                     f"none: this model needs {FULL_MMCV_HINT}")

    return type(name, (torch.nn.Module,), {"__init__": refuse, "__call__": refuse, "__module__": SHIM_MODULE})


def _module_getattr(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    return _missing_op(name)


def _new_shim_module(name: str) -> types.ModuleType:
    """A shim module ``name`` (``mmcv.ops`` or one of its submodules, e.g. ``mmcv.ops.roi_align``)."""
    module = types.ModuleType(name, __doc__)
    module.nms = nms  # type: ignore[attr-defined]
    module.batched_nms = batched_nms  # type: ignore[attr-defined]
    module.__getattr__ = _module_getattr  # type: ignore[attr-defined]  # PEP 562: every other op
    module.__path__ = []  # type: ignore[attr-defined]  # a package: its submodules come from _ShimFinder
    module.ACTIONFUSION_SHIM = True  # type: ignore[attr-defined]
    return module


class _ShimFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers imports of ``mmcv.ops.<anything>`` (mmdet imports ``mmcv.ops.roi_align`` and others)."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Optional[importlib.machinery.ModuleSpec]:
        if fullname.startswith(SHIM_MODULE + "."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return _new_shim_module(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        """Nothing to run: the module is complete when created."""


def needs_shim() -> bool:
    """True when mmcv is installed without its compiled extension (mmcv-lite) and ``mmcv.ops`` is not loaded."""
    if SHIM_MODULE in sys.modules or importlib.util.find_spec("mmcv") is None:
        return False
    return importlib.util.find_spec("mmcv._ext") is None


def install_mmcv_ops_shim() -> bool:
    """Register the shim as ``mmcv.ops`` if :func:`needs_shim`; returns whether it did."""
    if not needs_shim():
        return False
    import mmcv

    module = _new_shim_module(SHIM_MODULE)
    sys.modules[SHIM_MODULE] = module
    mmcv.ops = module  # type: ignore[attr-defined]
    sys.meta_path.insert(0, _ShimFinder())
    return True
