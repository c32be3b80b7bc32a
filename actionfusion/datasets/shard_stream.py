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
"""

from __future__ import annotations

from typing import Any, Iterator, Optional

import numpy as np
from torch.utils.data import IterableDataset, get_worker_info

from .store.sharded_store import ShardedStore


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
        shards = list(self._shards)
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch if epoch is None else int(epoch)]).permutation(len(shards))
            shards = [shards[i] for i in order.tolist()]
        return shards

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
