"""DataLoaders for training and evaluation whose content depends only on (seed, epoch, index).

Worker processes hold their own copy of the dataset, so a ``set_epoch`` in the main process
never reaches persistent workers. The training sampler therefore yields ``(epoch, index)``
pairs and :class:`EpochIndexedDataset` sets the epoch inside whichever process loads the item:
the batches are the same with 0 or 8 workers, persistent or not, resumed or not.

With ``streaming`` (``data.shard_streaming``) the training loader streams a sharded store shard
by shard instead (:class:`~actionfusion.datasets.shard_stream.PaddedShardStream`): every rank
gets ``ceil(N / W)`` items and ``len(loader)`` batches each epoch, in an order fixed by
``(seed, epoch)`` (and the number of workers). Its workers are started afresh each epoch, so that
they copy the epoch set by :func:`set_loader_epoch`.
"""

from __future__ import annotations

from typing import Any, Iterator, Tuple

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler

from ..datasets.shard_stream import PaddedShardStream

from .distributed import DistContext, ShardedSampler


class EpochIndexedDataset(Dataset):
    """Wraps a dataset with ``set_epoch``; items are requested as ``(epoch, index)``."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: Tuple[int, int]) -> Any:
        epoch, index = key
        if getattr(self.dataset, "epoch", None) != epoch and hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        return self.dataset[index]


class EpochTaggedSampler(Sampler[Tuple[int, int]]):
    """A :class:`ShardedSampler` whose indices come tagged with the epoch: ``(epoch, index)``."""

    def __init__(self, sampler: ShardedSampler) -> None:
        self.sampler = sampler

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's permutation (and tag)."""
        self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        epoch = self.sampler.epoch
        return iter([(epoch, index) for index in self.sampler.indices().tolist()])

    def __len__(self) -> int:
        return len(self.sampler)


def _loader_generator(seed: int) -> torch.Generator:
    # The loader draws its workers' base seed from this generator, not from the global RNG,
    # so creating an iterator never shifts the model's random stream (dropout, drop-path).
    generator = torch.Generator()
    generator.manual_seed(int(seed))
    return generator


def _sharded_loader(dataset: Dataset, ctx: DistContext, batch_size: int, num_workers: int, seed: int,
                    train: bool) -> DataLoader:
    """Batches from a :class:`ShardedSampler`: shuffled and padded for training, in order otherwise."""
    sampler = EpochTaggedSampler(
        ShardedSampler(len(dataset), ctx.world_size, ctx.rank, shuffle=train, seed=seed, pad=train)  # type: ignore[arg-type]
    )
    return DataLoader(
        EpochIndexedDataset(dataset),
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=ctx.device.type == "cuda",
        persistent_workers=num_workers > 0,
        drop_last=False,
        generator=_loader_generator(seed),
    )


def _streaming_loader(dataset: Dataset, ctx: DistContext, batch_size: int, num_workers: int, seed: int) -> DataLoader:
    """Batches of a :class:`PaddedShardStream` over ``dataset``'s sharded store."""
    stream = PaddedShardStream(dataset, seed=seed, rank=ctx.rank, world_size=ctx.world_size, batch_size=batch_size)
    return DataLoader(
        stream,
        batch_size=batch_size,
        num_workers=num_workers,
        pin_memory=ctx.device.type == "cuda",
        persistent_workers=False,  # workers copy the stream's epoch when an epoch's iterator starts
        drop_last=False,
        generator=_loader_generator(seed),
    )


def build_train_loader(dataset: Dataset, ctx: DistContext, batch_size: int, num_workers: int, seed: int,
                       streaming: bool = False) -> DataLoader:
    """Shuffled, sharded (padded to equal length per rank) training batches of ``batch_size`` per process.

    ``streaming``: stream ``dataset``'s sharded store shard by shard (:class:`PaddedShardStream`)
    instead of random access; ``ceil(N / world_size)`` items per rank all the same.
    Call :func:`set_loader_epoch` before each epoch; ``len(loader)`` is the same every epoch.
    """
    if streaming:
        return _streaming_loader(dataset, ctx, batch_size, num_workers, seed)
    return _sharded_loader(dataset, ctx, batch_size, num_workers, seed, train=True)


def set_loader_epoch(loader: DataLoader, epoch: int) -> None:
    """Select ``epoch`` of a loader of :func:`build_train_loader`: its stream's, or its sampler's."""
    target = loader.dataset if isinstance(loader.dataset, IterableDataset) else loader.sampler
    target.set_epoch(epoch)  # type: ignore[union-attr]


def build_eval_loader(dataset: Dataset, ctx: DistContext, batch_size: int, num_workers: int, seed: int = 0) -> DataLoader:
    """In-order, unpadded evaluation batches: rank ``r`` loads samples ``r, r + W, ...`` of epoch 0."""
    return _sharded_loader(dataset, ctx, batch_size, num_workers, seed, train=False)
