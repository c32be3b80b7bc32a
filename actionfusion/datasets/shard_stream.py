"""Stream a clip dataset over a sharded store shard by shard: the training mode for object storage.

The order of an epoch is a function of ``(seed, epoch)`` alone:

1. the shards that hold any of the dataset's samples are permuted with
   ``np.random.default_rng([seed, epoch])`` (shard-level shuffling);
2. rank ``r`` of ``W`` takes positions ``r, r + W, ...`` of that permutation (each DDP rank reads
   its own shards: disjoint, and together covering every shard);
3. DataLoader worker ``k`` of ``K`` takes positions ``k, k + K, ...`` of the rank's shards and
   reads each front to back in one sequential read (:meth:`ShardedStore.iter_shard`); items keep
   the tar order inside a shard. With ``K > 1`` the DataLoader interleaves workers in turn.

Each item is the wrapped dataset's own ``dataset[index]`` made from the cached files, so a clip
is bit-identical to the one random access gives (its randomness is ``(seed, epoch, index)``).
Resume: :meth:`ShardStreamDataset.set_epoch` with ``skip`` items already consumed by this
rank skips whole shards by their sample count without reading them, then the consumed items of
the shard it resumes in. Mid-epoch resume is exact with 0 or 1 loader worker (one item
sequence); with K > 1 workers the DataLoader takes whole batches from each worker in turn, so
resume there at an epoch boundary (``skip=0``), which is always exact.

Ranks can receive different sample counts (shards differ in size and there may be fewer shards
than ranks); a DDP training loop over streams must stop every rank at the smallest count
(:meth:`ShardStreamDataset.rank_length`).

Training (``data.shard_streaming: true``) uses :class:`PaddedShardStream` instead: the same epoch
shard order, but every rank streams exactly ``ceil(N / W)`` items (a contiguous block of the
epoch's sample sequence, the last rank cycling over its own items), and loader workers share them
with fixed quotas, so every rank runs the same number of steps in every epoch.
"""

from __future__ import annotations

from typing import Any, Iterator, Optional, Sequence

import numpy as np
from torch.utils.data import IterableDataset, get_worker_info

from .store.sharded_store import ShardedStore


def epoch_shard_order(shards: Sequence[int], seed: int, epoch: int, shuffle: bool = True) -> list[int]:
    """``shards`` in the reading order of ``epoch``: permuted by ``np.random.default_rng([seed, epoch])``
    (kept as given without ``shuffle``)."""
    shards = list(shards)
    if shuffle:
        order = np.random.default_rng([int(seed), int(epoch)]).permutation(len(shards))
        shards = [shards[i] for i in order.tolist()]
    return shards


class ShardStreamDataset(IterableDataset):
    """Items of ``dataset`` (a clip dataset over a :class:`ShardedStore`) in shard-streaming order.

    Args:
        dataset: a :class:`~actionfusion.datasets.clip_dataset.SkeletonClipDataset` (or the
            multimodal one) whose ``store`` is a :class:`ShardedStore`; items as it gives them.
        seed: seeds the shard order of every epoch.
        rank, world_size: this process's DDP rank and the number of ranks.
        shuffle: permute the shards each epoch (False: shard number order).
    """

    def __init__(self, dataset: Any, seed: int = 0, rank: int = 0, world_size: int = 1, shuffle: bool = True) -> None:
        if not isinstance(dataset.store, ShardedStore):
            raise TypeError(f"streaming needs a dataset over a ShardedStore, got {type(dataset.store).__name__}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} out of range for world size {world_size}")
        self.dataset = dataset
        self.seed, self.rank, self.world_size, self.shuffle = int(seed), int(rank), int(world_size), bool(shuffle)
        position = {name: i for i, name in enumerate(dataset.names)}
        self._index = position
        store: ShardedStore = dataset.store
        self._shard_counts = {number: sum(name in position for name in shard.names)
                              for number, shard in enumerate(store.shards)}
        self._shards = [number for number, count in self._shard_counts.items() if count]
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Select the epoch (its shard order and the dataset's augmentation), and the number of this
        rank's items already consumed in it (resume)."""
        self.epoch, self.skip = int(epoch), int(skip)
        self.dataset.set_epoch(self.epoch)

    def shard_order(self, epoch: Optional[int] = None) -> list[int]:
        """Shard numbers of the epoch in reading order, for every rank together."""
        return epoch_shard_order(self._shards, self.seed, self.epoch if epoch is None else int(epoch), self.shuffle)

    def rank_shards(self, epoch: Optional[int] = None) -> list[int]:
        """This rank's shards of the epoch, in reading order."""
        return self.shard_order(epoch)[self.rank::self.world_size]

    def rank_length(self, epoch: Optional[int] = None) -> int:
        """Items this rank yields in the epoch (without skipping)."""
        return sum(self._shard_counts[s] for s in self.rank_shards(epoch))

    def remaining(self) -> list[tuple[int, int]]:
        """``[(shard, items of it to skip)]``: this rank's shards of the epoch after ``skip`` consumed items
        (whole consumed shards left out unread)."""
        work, skip = [], self.skip
        for number in self.rank_shards():
            count = self._shard_counts[number]
            if skip >= count:
                skip -= count
                continue
            work.append((number, skip))
            skip = 0
        return work

    def __iter__(self) -> Iterator[Any]:
        worker = get_worker_info()
        workers, worker_id = (worker.num_workers, worker.id) if worker is not None else (1, 0)
        if getattr(self.dataset, "epoch", None) != self.epoch:
            self.dataset.set_epoch(self.epoch)
        store: ShardedStore = self.dataset.store
        for number, skip in self.remaining()[worker_id::workers]:
            for name in store.iter_shard(number):
                index = self._index.get(name)
                try:
                    if index is None:
                        continue
                    if skip:
                        skip -= 1
                        continue
                    yield self.dataset[index]
                finally:
                    store.forget(name)


def worker_quotas(items: int, batch_size: int, workers: int) -> list[int]:
    """Items of each of ``workers`` DataLoader workers that share ``items`` in whole batches.

    The ``ceil(items / batch_size)`` batches are dealt out as evenly as possible (the first workers
    take one more), and only the last worker that has batches ends short: the loader then yields
    exactly ``ceil(items / batch_size)`` batches, whatever the number of workers.
    """
    batches = -(-items // batch_size)
    counts = [batches // workers + (k < batches % workers) for k in range(workers)]
    quotas = [count * batch_size for count in counts]
    if batches:
        quotas[min(batches, workers) - 1] -= batches * batch_size - items
    return quotas


class PaddedShardStream(IterableDataset):
    """Exactly ``ceil(N / W)`` items of ``dataset`` per rank every epoch, streamed shard by shard: the
    training stream under DDP (every rank must run the same number of steps), the streaming analogue
    of the padded :class:`~actionfusion.pipeline.distributed.ShardedSampler`.

    The epoch's sequence is the dataset's N samples of each shard (tar order), the shards in
    :func:`epoch_shard_order` of ``(seed, epoch)``. Rank ``r`` of ``W`` takes the block
    ``[r * P, (r + 1) * P)`` of it (``P = ceil(N / W)``): a run of consecutive shards of the epoch,
    the shards at its two ends shared with its neighbours, each rank reading only its part of them.
    A rank whose block runs past N (the last one, short by ``W * P - N < W`` items) cycles over
    its own items from their start; a rank with no items of its own (``r * P >= N``, only when N
    is tiny against W) cycles over the whole sequence. So the ranks together read every sample
    every epoch, plus ``W * P - N`` (fewer than W) repeats. Ranks do not hold whole shards: a
    shard-granular split could not give every rank P items without dropping samples, since shards
    differ in size.

    DataLoader workers split the rank's P items with fixed quotas (:func:`worker_quotas` in whole
    batches of ``batch_size``): worker ``k`` streams a contiguous stretch of the rank's items, each
    shard of it in one sequential read that seeks past the items before its stretch
    (:meth:`ShardedStore.iter_shard` ``skip``). A loader of ``batch_size`` therefore yields exactly
    ``ceil(P / batch_size)`` batches every epoch with any number of workers, and the DataLoader's
    fixed round-robin over workers makes the order a function of ``(seed, epoch)`` and the number
    of workers alone: resume at an epoch boundary is exact. (There is no mid-epoch skip.)

    Workers copy the stream when they start: call :meth:`set_epoch` before creating each epoch's
    iterator, and use non-persistent workers.

    Args:
        dataset: a clip dataset over a :class:`ShardedStore` (items as it gives them).
        seed: seeds the shard order of every epoch.
        rank, world_size: this process's DDP rank and the number of ranks.
        batch_size: the loader's batch size (worker quotas are whole batches).
        shuffle: permute the shards each epoch (False: shard number order).
    """

    def __init__(self, dataset: Any, seed: int = 0, rank: int = 0, world_size: int = 1, batch_size: int = 1,
                 shuffle: bool = True) -> None:
        if not isinstance(dataset.store, ShardedStore):
            raise TypeError(f"streaming needs a dataset over a ShardedStore, got {type(dataset.store).__name__}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} out of range for world size {world_size}")
        if not dataset.names or batch_size < 1:
            raise ValueError(f"a padded stream needs samples and a positive batch size (got {len(dataset.names)} "
                             f"samples, batch size {batch_size})")
        self.dataset = dataset
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        self.batch_size, self.shuffle = int(batch_size), bool(shuffle)
        self._index = {name: i for i, name in enumerate(dataset.names)}
        store: ShardedStore = dataset.store
        # per shard: the tar positions of the dataset's samples in it
        self._members = {number: [i for i, name in enumerate(shard.names) if name in self._index]
                         for number, shard in enumerate(store.shards)}
        self._shards = [number for number, members in self._members.items() if members]
        self.per_rank = -(-len(dataset.names) // self.world_size)
        self.epoch = 0

    def __len__(self) -> int:
        """Items of this rank per epoch: ``ceil(N / W)``."""
        return self.per_rank

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch: its shard order and the dataset's augmentation."""
        self.epoch = int(epoch)
        self.dataset.set_epoch(self.epoch)

    def shard_order(self, epoch: Optional[int] = None) -> list[int]:
        """Shard numbers of the epoch in reading order, for every rank together."""
        return epoch_shard_order(self._shards, self.seed, self.epoch if epoch is None else int(epoch), self.shuffle)

    def rank_positions(self, epoch: Optional[int] = None) -> list[tuple[int, int]]:
        """This rank's ``per_rank`` items of the epoch in order, as ``(shard, k)``: the shard's k-th
        sample of the dataset (tar order)."""
        sequence = [(number, k) for number in self.shard_order(epoch) for k in range(len(self._members[number]))]
        low = min(self.rank * self.per_rank, len(sequence))
        high = min(low + self.per_rank, len(sequence))
        if high == low:
            low, high = 0, len(sequence)
        return [sequence[low + j % (high - low)] for j in range(self.per_rank)]

    def worker_positions(self, worker: int, workers: int, epoch: Optional[int] = None) -> list[tuple[int, int]]:
        """The stretch of :meth:`rank_positions` that loader worker ``worker`` of ``workers`` streams."""
        quotas = worker_quotas(self.per_rank, self.batch_size, workers)
        start = sum(quotas[:worker])
        return self.rank_positions(epoch)[start:start + quotas[worker]]

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        if getattr(self.dataset, "epoch", None) != self.epoch:
            self.dataset.set_epoch(self.epoch)
        positions = self.worker_positions(worker, workers)
        runs: list[list[int]] = []  # [shard, first k, items]: consecutive samples of one shard, one read
        for number, k in positions:
            if runs and runs[-1][0] == number and runs[-1][1] + runs[-1][2] == k:
                runs[-1][2] += 1
            else:
                runs.append([number, k, 1])
        for number, first, count in runs:
            yield from self._read_run(number, self._members[number][first], count)

    def _read_run(self, number: int, first: int, count: int) -> Iterator[Any]:
        """``count`` of the dataset's items of shard ``number``, from tar position ``first`` on."""
        store: ShardedStore = self.dataset.store
        names = store.iter_shard(number, skip=first)
        try:
            for name in names:
                index = self._index.get(name)
                try:
                    if index is None:
                        continue
                    yield self.dataset[index]
                    count -= 1
                finally:
                    store.forget(name)
                if count == 0:
                    break
        finally:
            names.close()
