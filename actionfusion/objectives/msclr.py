"""MS-CLR: contrastive learning across skeleton conventions (3Dwe-ai/ms-clr; spec in
shared/specs/self-supervised.md), on the AimCLR MoCo base of :mod:`.moco`.

Every clip arrives in several joint conventions (``data.conventions``, e.g. ``[ntu25, coco17,
blazepose33]``: the Kinect sensor's skeleton and two skeletons from this library's pose
extraction), each view of a clip holding all of them with the same temporal crop and augmentation
draws (:mod:`actionfusion.datasets.skeleton_conventions`). Per batch, a query convention ``a`` and
a different key convention ``b`` are drawn; the query is view 0 in convention ``a`` through the
model (``stgcn_unified``: one ST-GCN for every convention, zero-padded to 33 joints, a
per-convention adjacency and data BN) and the projector; the key is view 1 in convention ``b``
through the momentum copies. InfoNCE against the shared queue of keys (32,768, tau 0.07), with
AimCLR's nearest-neighbour mining from ``mining_start_epoch`` (150 of 300 upstream)::

    objective = create_objective("msclr", queue_size=32768, mining_start_epoch=150)
    objective.attach(model)           # model: stgcn_unified
    out = objective(model, batch)     # batch["views"][v]["conventions"][name]: [B, M, T, V_name, C]

The draw uses torch's global random stream, which the engine reseeds every epoch, so a resumed
run draws the same pairs. Deviation from upstream: upstream extracts its conventions with other
pose estimators (e.g. MeTRAbs' SMPL-X 42); here the two extracted ones are BlazePose-33 and the
COCO-17 derived from the same BlazePose run, so they are not independent detections.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import ObjectiveOutput, register_objective
from .moco import MoCoPretraining
from .contrastive import momentum_update

CONVENTIONS_KEY = "conventions"  # as actionfusion.datasets.skeleton_conventions.CONVENTIONS_KEY


@register_objective("msclr")
class MSCLRPretraining(MoCoPretraining):
    """MS-CLR on the MoCo base (module docstring).

    Args (beyond :class:`MoCoPretraining`'s):
        conventions: the conventions pairs are drawn from; None = every convention the batch holds
            (``data.conventions``). At least two.

    Each step uses the data BatchNorm of two conventions only (the query's in the model, the key's
    in the momentum copy), so under DistributedDataParallel the others have no gradient:
    ``ddp_find_unused_parameters`` tells the engine.
    """

    ddp_find_unused_parameters = True

    def __init__(self, encoder_dim: int = 256, feature_dim: int = 128, queue_size: int = 32768,
                 momentum: float = 0.999, tau: float = 0.07, mlp: bool = True,
                 mining_start_epoch: Optional[int] = None, mining_topk: int = 1,
                 conventions: Optional[Sequence[str]] = None) -> None:
        super().__init__(encoder_dim, feature_dim, queue_size, momentum, tau, mlp, mining_start_epoch, mining_topk)
        if conventions is not None and (len(conventions) < 2 or len(set(conventions)) != len(conventions)):
            raise ValueError(f"msclr: conventions must name at least two distinct conventions, got {list(conventions)}")
        self.conventions = tuple(conventions) if conventions is not None else None
        self.last_pair: Optional[tuple[str, str]] = None

    def attach(self, model: nn.Module) -> None:
        """Check that the model reads several conventions, then build the momentum encoder."""
        names = getattr(model, "conventions", None)
        if not names:
            raise ValueError(f"msclr needs an encoder that takes a skeleton convention (model stgcn_unified); "
                             f"{type(model).__name__} has no conventions")
        lacking = [c for c in (self.conventions or ()) if c not in names]
        if lacking:
            raise ValueError(f"msclr: objective.kwargs.conventions lists {lacking}, which the model does not take "
                             f"(model.kwargs.conventions: {list(names)})")
        super().attach(model)

    @staticmethod
    def draw_pair(conventions: Sequence[str], generator: Optional[torch.Generator] = None) -> tuple[str, str]:
        """(query convention, key convention), uniform over the ordered pairs of different conventions,
        from torch's global random stream (or ``generator``)."""
        n = len(conventions)
        if n < 2:
            raise ValueError(f"msclr draws two different conventions but has {list(conventions)}; "
                             "list at least two in data.conventions")
        draws = torch.randint(0, n * (n - 1), (1,), generator=generator).item()
        query, offset = divmod(int(draws), n - 1)
        key = offset + 1 if offset >= query else offset  # skip the query's own index
        return conventions[query], conventions[key]

    def available(self, batch: Mapping[str, Any]) -> tuple[str, ...]:
        """The conventions to draw from: the objective's own list, else every one the batch holds."""
        views = batch.get("views")
        held = views[0].get(CONVENTIONS_KEY) if views else None
        if not held:
            raise KeyError("msclr reads batch['views'][v]['conventions'] but the batch has none: set "
                           "data.conventions (e.g. [ntu25, coco17, blazepose33]) and data.views: 2")
        if self.conventions is None:
            return tuple(held)
        lacking = [c for c in self.conventions if c not in held]
        if lacking:
            raise KeyError(f"msclr: objective.kwargs.conventions names {lacking} but the batch holds {list(held)}; "
                           "add them to data.conventions")
        return self.conventions

    def convention_input(self, model: nn.Module, batch: Mapping[str, Any], view: int, convention: str) -> torch.Tensor:
        """View ``view`` of the batch in ``convention`` [B, M, T, V_c, C], on the model's device."""
        return batch["views"][view][CONVENTIONS_KEY][convention].to(self.device_of(model), non_blocking=True)

    def embed(self, model: nn.Module, x: Any, convention: Optional[str] = None) -> torch.Tensor:
        """Query branch: x in ``convention`` (the model's default when None) -> unit vectors [B, feature_dim]."""
        return F.normalize(self.projector(model.forward_features(x, convention).pooled), dim=1)

    @torch.no_grad()
    def embed_key(self, model: nn.Module, x: Any, convention: Optional[str] = None) -> torch.Tensor:
        """Key branch in ``convention`` (momentum encoder and projector, updated first in training)."""
        if self.key_encoder is None:
            raise RuntimeError(f"{type(self).__name__} is not attached to a model: call objective.attach(model)")
        if self.training:
            momentum_update(model, self.key_encoder, self.momentum)
            momentum_update(self.projector, self.key_projector, self.momentum)
        return F.normalize(self.key_projector(self.key_encoder.forward_features(x, convention).pooled), dim=1)

    def forward(self, model: nn.Module, batch: Mapping[str, Any]) -> ObjectiveOutput:
        """batch["views"] = [query view, key view], each with ``"conventions"`` -> loss ``info_nce``
        (multi-positive with mining); metrics ``contrast_top1`` (the key outscores every queue entry)."""
        query_convention, key_convention = self.draw_pair(self.available(batch))
        self.last_pair = (query_convention, key_convention)
        q = self.embed(model, self.convention_input(model, batch, 0, query_convention), query_convention)
        k = self.embed_key(model, self.convention_input(model, batch, 1, key_convention), key_convention)
        return self.contrast_and_enqueue(q, k, batch)
