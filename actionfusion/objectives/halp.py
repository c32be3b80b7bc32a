"""HaLP: hallucinated latent positives on the MoCo base (Shah et al., CVPR 2023; anshulbshah/HaLP).

MoCo (query view 0, key view 1, a queue of 16,384 keys) plus positives generated on the unit
hypersphere (:mod:`.halp_positives`): every ``prototype_every`` iterations (10) spherical k-means
over the newest ``prototype_keys`` (256) queue keys gives ``num_prototypes`` (20) prototypes; each
key ``k`` then yields ``num_positives`` (100) slerp points towards other prototypes, kept only where
the nearest prototype is still ``k``'s. The loss is

    InfoNCE(q, k, queue) + mu * L_pn,   L_pn = -mean over kept h of (q . h) / tau,   mu = 2.

The positives start once the queue has warmed up: after ``positives_start_epoch`` (upstream:
epoch 200 of 451, the MoCo checkpoint it resumes from) and once ``2 * queue_size + 1`` keys have
been enqueued (upstream's test). Randomness (k-means++ seeds, draws) comes from torch's global
stream, which the engine reseeds each epoch, so a resumed run draws the same positives.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import torch
from torch import nn

from .base import ObjectiveOutput, register_objective
from .halp_positives import hallucinate_positives, spherical_kmeans
from .moco import MoCoPretraining


@register_objective("halp")
class HaLPPretraining(MoCoPretraining):
    """HaLP (see the module docstring). MoCo arguments as :class:`MoCoPretraining` (HaLP's
    defaults: queue 16,384, feature 128, projector MLP); and:

    Args:
        num_prototypes: k of the spherical k-means (20).
        prototype_keys: newest queue keys clustered (256).
        prototype_every: iterations between prototype refreshes (10).
        num_positives: draws per anchor (100).
        candidates: prototypes p_sel is drawn from, after skipping the closest (20).
        hardness: lambda, t = (1 - u) t_max with u ~ U(0, lambda) (0.8).
        mu: weight of the positives' loss (2).
        positives_start_epoch: first epoch (0-based) with hallucinated positives (0).
        warmup_keys: keys enqueued before the positives start (None = 2 * queue_size + 1).
    """

    def __init__(self, encoder_dim: int = 2048, feature_dim: int = 128, queue_size: int = 16384,
                 momentum: float = 0.999, tau: float = 0.07, mlp: bool = True, num_prototypes: int = 20,
                 prototype_keys: int = 256, prototype_every: int = 10, num_positives: int = 100,
                 candidates: int = 20, hardness: float = 0.8, mu: float = 2.0, positives_start_epoch: int = 0,
                 warmup_keys: Optional[int] = None) -> None:
        super().__init__(encoder_dim, feature_dim, queue_size, momentum, tau, mlp)
        if prototype_keys < num_prototypes or prototype_keys > queue_size:
            raise ValueError(f"prototype_keys must be in [num_prototypes={num_prototypes}, queue_size={queue_size}], "
                             f"got {prototype_keys}")
        self.num_prototypes = int(num_prototypes)
        self.prototype_keys = int(prototype_keys)
        self.prototype_every = int(prototype_every)
        self.num_positives = int(num_positives)
        self.candidates = int(candidates)
        self.hardness = float(hardness)
        self.mu = float(mu)
        self.positives_start_epoch = int(positives_start_epoch)
        self.warmup_keys = 2 * queue_size + 1 if warmup_keys is None else int(warmup_keys)
        self.register_buffer("prototypes", torch.zeros(num_prototypes, feature_dim))
        self.register_buffer("keys_seen", torch.zeros(1, dtype=torch.long))
        self.register_buffer("step", torch.zeros(1, dtype=torch.long))
        self.register_buffer("prototypes_ready", torch.zeros(1, dtype=torch.bool))

    def positives_on(self) -> bool:
        """Whether this step hallucinates positives (epoch and queue warm-up reached)."""
        return self.epoch >= self.positives_start_epoch and int(self.keys_seen) >= self.warmup_keys

    @torch.no_grad()
    def newest_keys(self) -> torch.Tensor:
        """The ``prototype_keys`` most recently enqueued keys [n, feature_dim]."""
        queue = self.queue
        positions = (int(queue.ptr) - 1 - torch.arange(self.prototype_keys, device=queue.keys.device)) % queue.size
        return queue.keys[positions]

    @torch.no_grad()
    def refresh_prototypes(self) -> None:
        """Spherical k-means over the newest keys -> ``self.prototypes`` (rank 0's under DDP, broadcast
        by DDP's buffer sync; every rank holds the same queue, so they agree anyway)."""
        self.prototypes.copy_(spherical_kmeans(self.newest_keys(), self.num_prototypes, tol=1e-3))
        self.prototypes_ready.fill_(True)

    def positive_loss(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(L_pn, fraction of draws kept) for queries q and keys k [B, feature_dim]."""
        positives = hallucinate_positives(k.detach(), self.prototypes, self.num_positives, self.candidates,
                                          skip_closest=1, hardness=self.hardness)
        keep = positives.keep.to(q.dtype)
        similarity = torch.einsum("bd,bnd->bn", q, positives.points.to(q.dtype)) / self.tau
        loss = -(similarity * keep).sum() / keep.sum().clamp_min(1.0)
        return loss, keep.mean()

    def forward(self, model: nn.Module, batch: Mapping[str, Any]) -> ObjectiveOutput:
        """batch["views"] = [query, key] -> loss ``info_nce + mu * positives``."""
        q = self.embed(model, self.inputs(model, batch, 0))
        k = self.embed_key(model, self.inputs(model, batch, 1))
        nce, logits = self.contrast(q, k)
        generate = self.positives_on()
        if generate and self.training and (not bool(self.prototypes_ready)
                                           or int(self.step) % self.prototype_every == 0):
            self.refresh_prototypes()
        if generate and bool(self.prototypes_ready):
            positive, kept = self.positive_loss(q, k)
        else:
            positive, kept = q.new_zeros(()), q.new_zeros(())
        loss = nce + self.mu * positive
        if self.training:
            self.queue.enqueue(k, batch.get("index"))
            self.keys_seen += k.shape[0] * (torch.distributed.get_world_size()
                                            if torch.distributed.is_available() and torch.distributed.is_initialized()
                                            else 1)
            self.step += 1
        return ObjectiveOutput(loss=loss, losses={"info_nce": nce.detach(), "positives": positive.detach()},
                               metrics={"contrast_top1": (logits.argmax(dim=1) == 0).float().mean(),
                                        "positives_kept": kept.detach()},
                               batch_size=int(q.shape[0]))
