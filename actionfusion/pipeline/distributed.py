"""Distributed data parallel set-up through ``torchrun``'s environment.

``torchrun --nproc_per_node N`` (or ``--nnodes``/``--node_rank``/``--rdzv_endpoint`` for several
machines) sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
:func:`init_distributed` reads them (``env://``). Without them the run is one process and no
process group is created. NCCL is used on CUDA, gloo on CPU.

Sharding: :class:`ShardedSampler` gives rank ``r`` the positions ``r, r + W, r + 2W, ...``
of the epoch's permutation, so with a per-process batch of ``B / W`` the union of the ranks'
k-th batches is exactly the k-th batch of ``B`` of a single process. Evaluation shards are
never padded and :func:`gather_predictions` reassembles every sample exactly once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Sampler

from .model_inputs import model_attribute

_LAUNCH_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: rank, world size, local rank, device, backend (None alone)."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: Optional[str]

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only rank that writes files and logs."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        """True when a process group with more than one rank is running."""
        return self.backend is not None and self.world_size > 1


def launch_environment(env: Optional[Mapping[str, str]] = None) -> Tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's variables; (0, 1, 0) when not launched.

    A partial set (e.g. ``WORLD_SIZE`` without ``RANK``) raises RuntimeError naming what is missing.
    """
    env = os.environ if env is None else env
    present = [k for k in _LAUNCH_KEYS if k in env]
    if not present:
        return 0, 1, 0
    if "WORLD_SIZE" in env and int(env["WORLD_SIZE"]) == 1 and "RANK" not in env:
        return 0, 1, int(env.get("LOCAL_RANK", 0))
    missing = [k for k in ("RANK", "WORLD_SIZE") if k not in env]
    if missing:
        raise RuntimeError(
            f"incomplete distributed launch environment: {', '.join(missing)} not set "
            f"(found {', '.join(present)}); launch with torchrun or unset these variables"
        )
    rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
    local_rank = int(env.get("LOCAL_RANK", rank))
    if not 0 <= rank < world:
        raise RuntimeError(f"RANK={rank} is outside 0..WORLD_SIZE-1 (WORLD_SIZE={world})")
    return rank, world, local_rank


def init_distributed(device: Optional[str] = None) -> DistContext:
    """Start the process group when launched by torchrun; pick the device.

    ``device``: None (CUDA ``LOCAL_RANK`` when available, else CPU), "cpu" or "cuda".
    """
    rank, world, local_rank = launch_environment()
    use_cuda = torch.cuda.is_available() if device is None else str(device).startswith("cuda")
    if use_cuda:
        torch.cuda.set_device(local_rank % max(torch.cuda.device_count(), 1))
        torch_device = torch.device("cuda", torch.cuda.current_device())
    else:
        torch_device = torch.device("cpu")
    if world == 1:
        return DistContext(rank, 1, local_rank, torch_device, None)
    for key in ("MASTER_ADDR", "MASTER_PORT"):
        if key not in os.environ:
            raise RuntimeError(f"distributed launch without {key}: use torchrun (it sets MASTER_ADDR/MASTER_PORT)")
    backend = "nccl" if use_cuda else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world)
    return DistContext(rank, world, local_rank, torch_device, backend)


def shutdown_distributed(ctx: DistContext) -> None:
    """Destroy the process group started by :func:`init_distributed` (no-op alone)."""
    if ctx.is_distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (no-op alone)."""
    if ctx.is_distributed:
        if ctx.backend == "nccl":
            dist.barrier(device_ids=[ctx.device.index])
        else:
            dist.barrier()


def same_on_every_rank(value: object, ctx: DistContext) -> list[object]:
    """``value`` of every rank, in rank order (``[value]`` alone); a small picklable object."""
    if not ctx.is_distributed:
        return [value]
    values: list[object] = [None] * ctx.world_size
    dist.all_gather_object(values, value)
    return values


def wrap_model(model: nn.Module, ctx: DistContext) -> nn.Module:
    """``model`` on the context's device, in DistributedDataParallel when distributed."""
    model = model.to(ctx.device)
    if not ctx.is_distributed:
        return model
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    # A model whose forward may leave parameters without gradient (e.g. a Recognizer's unused encoder
    # heads) says so with `ddp_find_unused_parameters`.
    find_unused = bool(model_attribute(model, "ddp_find_unused_parameters"))
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=find_unused)


def unwrap_ddp(model: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel (``model`` itself otherwise)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def broadcast_buffers(model: nn.Module, ctx: DistContext) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank (no-op alone).

    Each rank updates its running statistics with its own last batches; before evaluation
    the replicas are made identical, as in the checkpoint (which rank 0 writes).
    """
    if ctx.is_distributed:
        for buffer in unwrap_ddp(model).buffers():
            dist.broadcast(buffer.data, src=0)


def per_process_batch_size(global_batch: int, ctx: DistContext) -> int:
    """``global_batch / world_size``; raises ValueError when it does not divide."""
    if global_batch % ctx.world_size:
        raise ValueError(f"data.batch_size={global_batch} (global) is not divisible by the world size {ctx.world_size}")
    return global_batch // ctx.world_size


def epoch_permutation(num_samples: int, seed: int, epoch: int) -> np.ndarray:
    """The order of the samples in ``epoch``: a permutation from ``default_rng([seed, epoch])``."""
    return np.random.default_rng([int(seed), int(epoch)]).permutation(num_samples)


class ShardedSampler(Sampler[int]):
    """Deterministic sharding of ``num_samples`` indices over ``num_replicas`` ranks.

    shuffle: the epoch's order is :func:`epoch_permutation` (call ``set_epoch`` each epoch).
    pad: repeat the first indices so every rank gets the same count (training, where DDP needs
    equal step counts); without it (evaluation) rank ``r`` gets positions ``r::W`` only, so no
    sample is seen twice.
    """

    def __init__(
        self, num_samples: int, num_replicas: int = 1, rank: int = 0, shuffle: bool = True, seed: int = 0, pad: bool = True
    ) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} outside 0..{num_replicas - 1}")
        self.num_samples = int(num_samples)
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.pad = pad
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of ``epoch``."""
        self.epoch = int(epoch)

    def indices(self) -> np.ndarray:
        """This rank's indices for the current epoch, int64 [n]."""
        order = epoch_permutation(self.num_samples, self.seed, self.epoch) if self.shuffle else np.arange(self.num_samples)
        if self.pad and self.num_samples % self.num_replicas:
            extra = self.num_replicas - self.num_samples % self.num_replicas
            order = np.concatenate([order, np.resize(order, extra)])
        return order[self.rank :: self.num_replicas].astype(np.int64)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        if self.pad:
            return -(-self.num_samples // self.num_replicas)
        return len(range(self.rank, self.num_samples, self.num_replicas))


def all_reduce_sum(values: Sequence[float], ctx: DistContext) -> list:
    """Sum a few numbers over ranks (float64); returned unchanged alone."""
    if not ctx.is_distributed:
        return [float(v) for v in values]
    tensor = torch.tensor([float(v) for v in values], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.cpu().tolist()


def _all_gather_padded(tensor: torch.Tensor, ctx: DistContext) -> list:
    """Every rank's ``tensor`` (first dimensions may differ) as a list, in rank order."""
    length = torch.tensor([tensor.shape[0]], dtype=torch.int64, device=ctx.device)
    lengths = [torch.zeros_like(length) for _ in range(ctx.world_size)]
    dist.all_gather(lengths, length)
    sizes = [int(n.item()) for n in lengths]
    padded = torch.zeros((max(sizes),) + tuple(tensor.shape[1:]), dtype=tensor.dtype, device=ctx.device)
    padded[: tensor.shape[0]] = tensor.to(ctx.device)
    gathered = [torch.zeros_like(padded) for _ in range(ctx.world_size)]
    dist.all_gather(gathered, padded)
    return [g[:n].cpu() for g, n in zip(gathered, sizes)]


def gather_predictions(indices: torch.Tensor, scores: torch.Tensor, ctx: DistContext) -> Tuple[np.ndarray, np.ndarray]:
    """All ranks' (dataset index int64 [n], scores float32 [n, C]) merged and sorted by index.

    Raises RuntimeError if an index arrives twice (a padded or overlapping shard).
    """
    if ctx.is_distributed:
        indices = torch.cat(_all_gather_padded(indices.to(torch.int64), ctx))
        scores = torch.cat(_all_gather_padded(scores.to(torch.float32), ctx))
    index_array = indices.cpu().numpy().astype(np.int64)
    order = np.argsort(index_array, kind="stable")
    index_array = index_array[order]
    if len(index_array) > 1 and np.any(index_array[1:] == index_array[:-1]):
        raise RuntimeError("evaluation gathered a sample twice: the evaluation sampler must not pad")
    return index_array, scores.cpu().numpy().astype(np.float32)[order]
