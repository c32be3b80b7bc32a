"""MoCo with AimCLR's nearest-neighbour mining: the base of HiCLR, HaLP and MS-CLR.

Two views of each clip: view 0 is the query, encoded by the model and the projector; view 1 the
key, encoded by momentum copies of both (no gradient). The loss is InfoNCE of the query against
its key and a queue of past keys; from ``mining_start_epoch`` on, each query's ``mining_topk``
most similar queue entries count as positives too (AimCLR's multi-positive loss)::

    objective = create_objective("moco", encoder_dim=256, queue_size=32768)
    objective.attach(model)            # builds the momentum encoder (the engine does this)
    out = objective(model, batch)      # batch["views"]: [query view, key view]

The queue stores the keys with the dataset index of their sample (``batch["index"]``).
Shuffled BatchNorm across GPUs (MoCo's trick against BN leakage) is not done: AimCLR and HiCLR
train on one GPU without it.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .base import Objective, ObjectiveOutput, register_objective
from .contrastive import (FeatureQueue, info_nce_logits, momentum_copy, momentum_update, multi_positive_nce,
                          nearest_neighbour_positives, pooled_embedding, projection_mlp)


@register_objective("moco")
class MoCoPretraining(Objective):
    """MoCo v2 (AimCLR configuration) with optional nearest-neighbour mining.

    Args:
        encoder_dim: D, the width of the model's pooled feature (256 for ``stgcn_clr``).
        feature_dim: width of the projected, L2-normalised embedding (128).
        queue_size: negatives kept (32,768).
        momentum: key-encoder momentum m (0.999).
        tau: softmax temperature (0.07).
        mlp: projector Linear(D, D) -> ReLU -> Linear(D, feature_dim) (True, AimCLR) or one Linear.
        mining_start_epoch: first epoch (0-based) of nearest-neighbour mining; None = never.
        mining_topk: queue neighbours taken as extra positives per view (1).
    """

    needs_labels = False
    num_views = 2

    def __init__(self, encoder_dim: int = 256, feature_dim: int = 128, queue_size: int = 32768,
                 momentum: float = 0.999, tau: float = 0.07, mlp: bool = True,
                 mining_start_epoch: Optional[int] = None, mining_topk: int = 1) -> None:
        super().__init__()
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if tau <= 0:
            raise ValueError(f"tau must be positive, got {tau}")
        self.encoder_dim = int(encoder_dim)
        self.feature_dim = int(feature_dim)
        self.momentum = float(momentum)
        self.tau = float(tau)
        self.mining_start_epoch = mining_start_epoch
        self.mining_topk = int(mining_topk)
        self.projector = (projection_mlp(encoder_dim, encoder_dim, feature_dim) if mlp
                          else nn.Linear(encoder_dim, feature_dim))
        self.key_projector = momentum_copy(self.projector)
        self.queue = FeatureQueue(queue_size, feature_dim)
        self.key_encoder: Optional[nn.Module] = None

    def attach(self, model: nn.Module) -> None:
        """Build the key encoder: a copy of ``model`` (its current weights) that takes no gradient."""
        if self.key_encoder is None:
            width = getattr(model, "num_features", self.encoder_dim)
            if width != self.encoder_dim:
                raise ValueError(f"{type(self).__name__}: encoder_dim is {self.encoder_dim} but the model's "
                                 f"pooled feature has {width}; set objective.kwargs.encoder_dim: {width}")
            self.key_encoder = momentum_copy(model).to(self.device_of(model))
            # Graph augmentations (stgcn_clr's edge_drop / edge_add) perturb queries only: keys
            # are the momentum encoder's clean view, as in HiCLR.
            for module in self.key_encoder.modules():
                for option in ("edge_drop", "edge_add"):
                    if isinstance(getattr(module, option, None), float):
                        setattr(module, option, 0.0)

    def mining(self) -> bool:
        """Whether nearest-neighbour mining is on in the current epoch."""
        return self.mining_start_epoch is not None and self.epoch >= int(self.mining_start_epoch)

    def embed(self, model: nn.Module, x: Any) -> torch.Tensor:
        """Query branch: model input -> unit vectors [B, feature_dim]."""
        return F.normalize(self.projector(pooled_embedding(model, x)), dim=1)

    @torch.no_grad()
    def embed_key(self, model: nn.Module, x: Any) -> torch.Tensor:
        """Key branch (momentum encoder and projector; they move towards the online ones first in
        training): model input -> unit vectors [B, feature_dim], no gradient."""
        if self.key_encoder is None:
            raise RuntimeError(f"{type(self).__name__} is not attached to a model: call objective.attach(model)")
        if self.training:
            momentum_update(model, self.key_encoder, self.momentum)
            momentum_update(self.projector, self.key_projector, self.momentum)
        return F.normalize(self.key_projector(pooled_embedding(self.key_encoder, x)), dim=1)

    def contrast(self, q: torch.Tensor, k: torch.Tensor, extra_negatives: tuple = (),
                 queue: Optional[torch.Tensor] = None) -> tuple:
        """(loss, logits [B, 1 + K]) of query ``q`` against key ``k`` and the queue (``queue`` [K, D],
        default a snapshot of the objective's); with mining on, the positives are the key and the
        top-k queue neighbours of ``q`` and, per matrix of ``extra_negatives`` ([B, K] similarities
        of other views of the same clips to the queue), of those views."""
        queue = self.queue.snapshot() if queue is None else queue
        logits = info_nce_logits(q, k, queue, self.tau)
        if self.mining():
            negatives = [logits[:, 1:]] + list(extra_negatives)
            mask = nearest_neighbour_positives(negatives, self.mining_topk)
        else:
            mask = torch.zeros_like(logits)
            mask[:, 0] = 1.0
        return multi_positive_nce(logits, mask), logits

    def forward(self, model: nn.Module, batch: Mapping[str, Any]) -> ObjectiveOutput:
        """batch["views"] = [query, key] -> loss ``info_nce`` (multi-positive with mining);
        metrics["contrast_top1"]: how often the key outscores every queue entry."""
        q = self.embed(model, self.inputs(model, batch, 0))
        k = self.embed_key(model, self.inputs(model, batch, 1))
        return self.contrast_and_enqueue(q, k, batch)

    def contrast_and_enqueue(self, q: torch.Tensor, k: torch.Tensor, batch: Mapping[str, Any]) -> ObjectiveOutput:
        """InfoNCE of queries q against keys k [B, feature_dim] and the queue (:meth:`contrast`), then
        (in training) k enqueued with the batch's sample ids; loss ``info_nce``, metric ``contrast_top1``."""
        loss, logits = self.contrast(q, k)
        if self.training:
            self.queue.enqueue(k, batch.get("index"))
        return ObjectiveOutput(loss=loss, losses={"info_nce": loss.detach()},
                               metrics={"contrast_top1": (logits.argmax(dim=1) == 0).float().mean()},
                               batch_size=int(q.shape[0]))
