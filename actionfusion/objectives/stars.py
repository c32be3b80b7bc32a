"""STARS stage 2: nearest-neighbour contrastive tuning of a MAMP encoder (Mehraban et al., 2024;
TaatiTeam/STARS ``net/nnclr.py``, ``processor/pretrain_clrtuning.py``).

The MAMP encoder (no masking) embeds both views; its tokens mean-pooled over bodies, segments and
joints give h [B, 256]. The projector is a BatchNorm1d, z = BN(h); the predictor Linear(256 ->
4096, no bias) -> BN -> ReLU -> Linear(4096 -> 256) gives p; z and p are L2-normalised. A queue
of 32,768 projector outputs keeps the dataset index of each sample, and ``nn(z)`` is the most
cosine-similar entry whose index is not the sample's own (its embedding from an earlier epoch).
With P the predictor outputs across the batch,

    L = 1/2 [CE(nn(z1) P0^T / tau, diag) + CE(nn(z0) P1^T / tau, diag)],

and only z0 is enqueued. Under torch.distributed, P is gathered from every rank with its
gradient, so each row's negatives are the whole global batch, as upstream.

What is tuned: blocks of index >= ``tuned_from_block`` (4 of 8), the final norm and the
objective's heads. :meth:`attach` really freezes the rest (``requires_grad=False``: the
embeddings and blocks 0-3 receive no gradient; upstream's ``param.required_grad = False`` typo
leaves them receiving gradients, merely outside the optimizer). The per-block learning rates
``lr * gamma ** (8 - idx)`` come from the optimizer ``adamw_layer_decay`` with
``layer_decay: gamma`` (0.45 NTU60, 0.40 NTU120); per-parameter clipping from
``train.grad_clip_mode: per_parameter`` with ``train.grad_clip: 3``.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ..modalities.skeleton.layer_decay import mamp_layer_id
from .base import Objective, ObjectiveOutput, register_objective
from .contrastive import FeatureQueue, pooled_embedding, prediction_mlp


def gather_with_grad(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(every rank's ``x`` [B, D] concatenated, with gradient flowing back to each rank's own part;
    the offset of this rank's rows). Without torch.distributed: (x, 0)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x, 0
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x), dim=0), dist.get_rank() * x.shape[0]


def nnclr_loss(neighbours: torch.Tensor, predictions: torch.Tensor, tau: float) -> torch.Tensor:
    """Cross-entropy of ``neighbours @ predictions^T / tau`` [B, B_all] against this rank's diagonal.

    neighbours: [B, D] unit vectors nn(z) (no gradient); predictions: [B, D] unit vectors p of the
    other view (gathered across ranks inside).
    """
    gathered, offset = gather_with_grad(predictions)
    logits = neighbours @ gathered.t() / tau
    target = torch.arange(offset, offset + neighbours.shape[0], device=logits.device)
    return F.cross_entropy(logits, target)


@register_objective("stars")
class STARSTuning(Objective):
    """STARS nearest-neighbour contrastive tuning (see the module docstring).

    Args:
        encoder_dim: width of the MAMP encoder (256).
        predictor_hidden: predictor's hidden width (4096).
        queue_size: projector outputs kept (32,768).
        tau: temperature (0.07).
        tuned_from_block: first transformer block that is tuned (4 = depth // 2); the embeddings
            and the blocks before it are frozen.
        topk: 0 = the nearest neighbour; k > 0 = one of the k nearest at random (upstream option).
    """

    needs_labels = False
    num_views = 2

    def __init__(self, encoder_dim: int = 256, predictor_hidden: int = 4096, queue_size: int = 32768,
                 tau: float = 0.07, tuned_from_block: int = 4, topk: int = 0) -> None:
        super().__init__()
        if tau <= 0:
            raise ValueError(f"tau must be positive, got {tau}")
        self.encoder_dim = int(encoder_dim)
        self.tau = float(tau)
        self.tuned_from_block = int(tuned_from_block)
        self.topk = int(topk)
        self.projector = nn.BatchNorm1d(encoder_dim)
        self.predictor = prediction_mlp(encoder_dim, predictor_hidden)
        self.queue = FeatureQueue(queue_size, encoder_dim)

    def frozen_parameter(self, name: str, num_blocks: int) -> bool:
        """Whether model parameter ``name`` stays frozen: embeddings (layer id 0) and blocks below
        ``tuned_from_block`` (layer id <= tuned_from_block)."""
        return mamp_layer_id(name, num_blocks) <= self.tuned_from_block

    def attach(self, model: nn.Module) -> None:
        """Freeze the embeddings and blocks ``< tuned_from_block`` of the MAMP ``model``."""
        encoder = getattr(model, "encoder", None)
        if encoder is None or not hasattr(encoder, "blocks"):
            raise TypeError(f"the stars objective tunes a MAMP model (create_model('mamp')), got {type(model).__name__}")
        if getattr(model, "num_features", self.encoder_dim) != self.encoder_dim:
            raise ValueError(f"stars: encoder_dim is {self.encoder_dim} but the model's is {model.num_features}")
        num_blocks = len(encoder.blocks)
        if not 0 <= self.tuned_from_block <= num_blocks:
            raise ValueError(f"stars: tuned_from_block must be in [0, {num_blocks}], got {self.tuned_from_block}")
        for name, param in model.named_parameters():
            if self.frozen_parameter(name, num_blocks):
                param.requires_grad_(False)

    def branch(self, model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One view -> (z [B, D] projector output, p [B, D] predictor output), both unit vectors."""
        z = self.projector(pooled_embedding(model, x))
        p = self.predictor(z)
        return F.normalize(z, dim=1), F.normalize(p, dim=1)

    @torch.no_grad()
    def neighbour(self, z: torch.Tensor, ids: Any) -> torch.Tensor:
        """nn(z) [B, D]: the nearest queue entry that is not the sample's own (or one of the topk)."""
        sim = self.queue.similarities(z.detach(), ids)
        if self.topk > 0:
            candidates = sim.topk(self.topk, dim=1).indices
            pick = torch.randint(self.topk, (len(sim),), device=sim.device)
            position = candidates[torch.arange(len(sim), device=sim.device), pick]
        else:
            position = sim.argmax(dim=1)
        return self.queue.keys[position].to(z.dtype)

    def forward(self, model: nn.Module, batch: Mapping[str, Any]) -> ObjectiveOutput:
        """batch["views"] = [view 0, view 1], batch["index"] (sample ids) -> loss ``nnclr``."""
        ids = batch.get("index")
        if ids is not None:
            ids = torch.as_tensor(ids).to(self.queue.ids.device)
        z0, p0 = self.branch(model, self.inputs(model, batch, 0))
        z1, p1 = self.branch(model, self.inputs(model, batch, 1))
        nn0, nn1 = self.neighbour(z0, ids), self.neighbour(z1, ids)
        loss = 0.5 * (nnclr_loss(nn1, p0, self.tau) + nnclr_loss(nn0, p1, self.tau))
        if self.training:
            self.queue.enqueue(z0.detach(), ids)
        return ObjectiveOutput(loss=loss, losses={"nnclr": loss.detach()}, metrics={}, batch_size=int(z0.shape[0]))
