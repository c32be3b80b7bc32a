"""The parts the contrastive skeleton objectives share (MoCo / AimCLR / NNCLR lineage).

- :class:`FeatureQueue`: a FIFO of L2-normalised embeddings with the dataset index of the sample
  each came from, so a sample's own past embedding can be left out of its neighbours;
- :func:`momentum_copy` / :func:`momentum_update`: the slowly moving key encoder of MoCo;
- :func:`info_nce_logits`, :func:`info_nce`, :func:`multi_positive_nce`,
  :func:`nearest_neighbour_positives`: the losses, with AimCLR's nearest-neighbour mining;
- :func:`projection_mlp` / :func:`prediction_mlp`: projector and predictor heads;
- :func:`pooled_embedding`: an encoder's pooled feature (the encoder contract's
  ``forward_features(x).pooled``).

Under torch.distributed the queue gathers every rank's keys and ids before enqueueing, so every
rank holds the same queue. State changes (enqueue, momentum updates) happen in training mode only:
an objective evaluated in ``eval()`` (the validation loss) leaves its queue untouched.
"""

from __future__ import annotations

import copy
from typing import Any, Optional, Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def pooled_embedding(model: nn.Module, x: Any) -> torch.Tensor:
    """The encoder's pooled feature [B, D] for its input ``x`` (``model.forward_features(x).pooled``)."""
    return model.forward_features(x).pooled


def projection_mlp(in_dim: int, hidden_dim: int, out_dim: int, batch_norm: bool = False) -> nn.Sequential:
    """Linear -> (BN) -> ReLU -> Linear: AimCLR's projector is ``batch_norm=False`` with
    ``hidden_dim = in_dim`` (256 -> 256 -> 128)."""
    layers: list = [nn.Linear(in_dim, hidden_dim, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm1d(hidden_dim))
    layers += [nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim)]
    return nn.Sequential(*layers)


def prediction_mlp(dim: int, hidden_dim: int = 4096) -> nn.Sequential:
    """NNCLR / STARS predictor: Linear(dim -> hidden, no bias) -> BN -> ReLU -> Linear(hidden -> dim)."""
    return nn.Sequential(nn.Linear(dim, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True),
                         nn.Linear(hidden_dim, dim))


def momentum_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` whose parameters take no gradient (MoCo's key encoder)."""
    target = copy.deepcopy(module)
    for param in target.parameters():
        param.requires_grad_(False)
    return target


@torch.no_grad()
def momentum_update(online: nn.Module, target: nn.Module, momentum: float) -> None:
    """``target <- momentum * target + (1 - momentum) * online`` for every parameter; buffers
    (BatchNorm statistics) are the target's own, as in MoCo."""
    for p_online, p_target in zip(online.parameters(), target.parameters()):
        p_target.mul_(momentum).add_(p_online.detach(), alpha=1.0 - momentum)


def gather_from_all(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` [B, ...] of every rank (rank order); the tensor itself without torch.distributed.
    No gradient flows through the gathered copies."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts, dim=0)


class FeatureQueue(nn.Module):
    """A FIFO of ``size`` L2-normalised embeddings of width ``dim`` with their sample ids.

    Buffers (checkpointed with the objective): ``keys`` [size, dim] (random unit vectors at first,
    as MoCo), ``ids`` [size] int64 (-1 = not a sample yet), ``ptr`` [1] int64, ``filled`` [1]
    int64 (entries written so far, capped at ``size``).
    """

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        if size < 1 or dim < 1:
            raise ValueError(f"queue size and dim must be positive, got size {size}, dim {dim}")
        self.size = int(size)
        self.dim = int(dim)
        self.register_buffer("keys", F.normalize(torch.randn(size, dim), dim=1))
        self.register_buffer("ids", torch.full((size,), -1, dtype=torch.long))
        self.register_buffer("ptr", torch.zeros(1, dtype=torch.long))
        self.register_buffer("filled", torch.zeros(1, dtype=torch.long))

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor, ids: Optional[torch.Tensor] = None) -> None:
        """Write ``keys`` [B, dim] (gathered from every rank) over the oldest entries, wrapping around
        the end (the official STARS wrap-around indexes an undefined attribute; this one is tested).

        ``ids`` [B] int64 dataset indices (-1 when unknown). More keys than ``size`` keep the newest.
        """
        if ids is None:
            ids = torch.full((keys.shape[0],), -1, dtype=torch.long)
        ids = gather_from_all(ids.detach().to(device=keys.device, dtype=torch.long))
        keys = gather_from_all(keys.detach().to(self.keys.dtype))
        if keys.shape[0] > self.size:
            keys, ids = keys[-self.size:], ids[-self.size:]
        n = keys.shape[0]
        positions = (int(self.ptr) + torch.arange(n, device=self.keys.device)) % self.size
        self.keys[positions] = keys
        self.ids[positions] = ids
        self.ptr[0] = (int(self.ptr) + n) % self.size
        self.filled[0] = min(self.size, int(self.filled) + n)

    def snapshot(self) -> torch.Tensor:
        """A copy of the keys [size, dim] to compute logits with (an enqueue later in the same step
        writes the buffer in place, which autograd would otherwise reject)."""
        return self.keys.detach().clone()

    def similarities(self, z: torch.Tensor, ids: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Cosine similarities [B, size] of unit vectors ``z`` [B, dim] to the queue; entries holding
        the sample's own id (an embedding of the same sample from an earlier step) are set to -inf."""
        sim = z @ self.keys.detach().t().to(z.dtype)
        if ids is not None:
            own = self.ids.unsqueeze(0) == ids.to(self.ids.device).unsqueeze(1)
            sim = sim.masked_fill(own & (self.ids.unsqueeze(0) >= 0), float("-inf"))
        return sim

    @torch.no_grad()
    def nearest(self, z: torch.Tensor, ids: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Each row's nearest queue entry by cosine, never the sample's own: (keys [B, dim], positions [B])."""
        position = self.similarities(z, ids).argmax(dim=1)
        return self.keys[position].to(z.dtype), position


def info_nce_logits(q: torch.Tensor, k: torch.Tensor, queue_keys: torch.Tensor, tau: float) -> torch.Tensor:
    """MoCo logits: ``[q . k, q . queue] / tau`` -> [B, 1 + K] (column 0 the positive).

    q, k: [B, D] unit vectors (k carries no gradient); queue_keys: [K, D] negatives.
    """
    positive = (q * k).sum(dim=1, keepdim=True)
    negative = q @ queue_keys.detach().t().to(q.dtype)
    return torch.cat([positive, negative], dim=1) / tau


def info_nce(q: torch.Tensor, k: torch.Tensor, queue_keys: torch.Tensor, tau: float) -> torch.Tensor:
    """Mean over the batch of ``-log softmax(info_nce_logits)[:, 0]`` (cross-entropy, positive first)."""
    logits = info_nce_logits(q, k, queue_keys, tau)
    return F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device))


def nearest_neighbour_positives(negative_logits: Sequence[torch.Tensor], topk: int = 1) -> torch.Tensor:
    """AimCLR's mining: the positive mask [B, 1 + K] with column 0 (the key) and, for each of the
    given [B, K] similarity matrices (one per view), its ``topk`` most similar queue entries."""
    first = negative_logits[0]
    mask = torch.zeros(first.shape[0], first.shape[1] + 1, dtype=first.dtype, device=first.device)
    mask[:, 0] = 1.0
    for logits in negative_logits:
        index = logits.detach().topk(topk, dim=1).indices + 1
        mask.scatter_(1, index, 1.0)
    return mask


def multi_positive_nce(logits: torch.Tensor, positive_mask: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of the mean ``-log softmax(logits)`` over each row's positives.

    logits, positive_mask: [B, 1 + K] (mask 1 at positives). With only column 0 positive this is
    :func:`info_nce`.
    """
    log_prob = F.log_softmax(logits, dim=1)
    return (-(log_prob * positive_mask).sum(dim=1) / positive_mask.sum(dim=1)).mean()


def distribution_distillation(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """HiCLR's directional term ``-sum sg(softmax(teacher)) log softmax(student)``, batch mean.

    The teacher (the weaker view's logits [B, 1 + K]) is detached: no gradient reaches it.
    """
    target = F.softmax(teacher_logits.detach(), dim=1)
    return -(target * F.log_softmax(student_logits, dim=1)).sum(dim=1).mean()
