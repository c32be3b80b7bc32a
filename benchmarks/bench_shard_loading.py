"""Clips/s of training clips read from shards (local folder, moto S3 on loopback; random access and
streaming) against the folder store, and against a training step's consumption.

The clips are the synthetic ST-GCN/CTR-GCN training clips (``configs/synthetic/ctrgcn.yaml``:
crop-resize + rotation, 64 frames) of the synthetic multimodal store, read in the loader's process
(0 workers, 1 thread) over several epochs; the shard reader's file cache is off, so every random-access
item makes its range read (the small store would otherwise sit in the cache). Baselines measured in the same run: the folder store's
clips/s, and CTR-GCN's forward + backward + SGD step on a batch of 16 of those clips (1 thread).
One JSON line per case: ``ratio_over_folder`` (shard reader / folder store) and
``ratio_over_model`` (loader clips/s / model clips/s; above 1 the loader is not the bottleneck,
and 2 workers double it).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_shard_loading.py [--store STORE] [--epochs 8]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Iterable

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_shard_formats import make_store, s3_endpoint  # noqa: E402

BATCH = 16
MODEL_STEPS = 3


def clips_per_s(items_of_epoch: Any, epochs: int) -> tuple[float, int]:
    """(clips/s, clips) of iterating ``items_of_epoch(epoch)`` for ``epochs`` epochs (epoch 0 warms up)."""
    for _ in items_of_epoch(0):
        pass
    count, start = 0, time.perf_counter()
    for epoch in range(1, epochs + 1):
        for item in items_of_epoch(epoch):
            count += 1
            assert item["skeleton"].ndim == 4
    return count / (time.perf_counter() - start), count


def random_access(dataset: Any) -> Any:
    def items(epoch: int) -> Iterable[Any]:
        dataset.set_epoch(epoch)
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(epoch)).tolist()
        return (dataset[i] for i in order)
    return items


def streaming(dataset: Any) -> Any:
    from actionfusion.datasets.shard_stream import ShardStreamDataset

    stream = ShardStreamDataset(dataset, seed=0)

    def items(epoch: int) -> Iterable[Any]:
        stream.set_epoch(epoch)
        return iter(stream)
    return items


def model_rate(example: torch.Tensor) -> float:
    """Clips/s of CTR-GCN training steps on ``example`` [N, M, T, V, C] (best of MODEL_STEPS after a warm-up)."""
    from actionfusion.modalities.skeleton.ctrgcn import ctrgcn

    model = ctrgcn(num_classes=60)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    labels = torch.zeros(example.shape[0], dtype=torch.int64)
    times = []
    for _ in range(MODEL_STEPS + 1):
        start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(example), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return example.shape[0] / min(times[1:])


def train_dataset(store: str, options: dict[str, Any]) -> Any:
    from actionfusion.pipeline.config import load_config
    from actionfusion.pipeline.data_builder import build_datasets

    overrides = [f"data.store={store}", "data.num_workers=0", "data.validation_fraction=0"]
    if options:
        overrides.append(f"data.storage_options={json.dumps(options)}")
    cfg = load_config(REPO / "configs" / "synthetic" / "ctrgcn.yaml", overrides)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_datasets(cfg)["train"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", default=None, help="a prepared store (default: the synthetic multimodal one)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--shard-size", type=int, default=400_000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from actionfusion.datasets.store.shard_pack import pack_store

    with tempfile.TemporaryDirectory(prefix="bench_shard_loading_") as tmp:
        store = str(args.store or make_store(Path(tmp)))
        pack_store(store, os.path.join(tmp, "shards"), shard_size=args.shard_size)
        folder = train_dataset(store, {})
        example = torch.stack([folder[i]["skeleton"] for i in range(min(BATCH, len(folder)))])
        model = model_rate(example)
        baseline, clips = clips_per_s(random_access(folder), args.epochs)
        common = {"bench": "shard_loading", "train_clips_per_epoch": len(folder), "epochs": args.epochs,
                  "clip": list(example.shape[1:]), "folder_clips_per_s": round(baseline, 1),
                  "model": "ctrgcn forward+backward+SGD, batch 16, 1 thread", "model_clips_per_s": round(model, 2)}
        print(json.dumps({**common, "case": "folder_store", "clips_per_s": round(baseline, 1), "clips": clips,
                          "ratio_over_folder": 1.0, "ratio_over_model": round(baseline / model, 1)}), flush=True)
        sources = [("local", os.path.join(tmp, "shards"), {})]
        endpoint = s3_endpoint()
        if endpoint is not None:
            server, options = endpoint
            pack_store(store, "s3://bench/shards", shard_size=args.shard_size, storage_options=options)
            sources.append(("s3_loopback", "s3://bench/shards", options))
        for where, url, options in sources:
            dataset = train_dataset(url, options)
            assert type(dataset.store).__name__ == "ShardedStore"
            dataset.store.cache_bytes = 0  # every item fetches its file (the store would fit the 64 MiB cache)
            for mode, items in (("random_access", random_access(dataset)), ("streaming", streaming(dataset))):
                rate, clips = clips_per_s(items, args.epochs)
                print(json.dumps({**common, "case": f"shards_{where}_{mode}", "clips_per_s": round(rate, 1),
                                  "clips": clips, "ratio_over_folder": round(rate / baseline, 3),
                                  "ratio_over_model": round(rate / model, 1)}), flush=True)
        if endpoint is not None:
            endpoint[0].stop()


if __name__ == "__main__":
    main()
