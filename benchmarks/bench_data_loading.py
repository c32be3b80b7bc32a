"""Is the skeleton clip loader fast enough to feed a model? Clips/s of the loader vs the model.

Loader: the training dataset of ``configs/synthetic/ctrgcn.yaml`` (valid crop-resize + rotation,
joint stream) with 64-frame clips, through a ``torch.utils.data.DataLoader`` with batch 16 and
0 or 2 worker processes. Baseline measured in the same run: forward + backward + SGD step of
``create_model("ctrgcn", num_classes=60)`` (its builder) on batches of the same shape (2 torch threads).
The ratio loader_clips_per_s / model_clips_per_s must exceed 1 for the loader not to be the
bottleneck.

Usage: ``.venv/bin/python benchmarks/bench_data_loading.py [--store STORE]``; without
``--store`` a default-scale synthetic skeleton store (360 samples) is generated in a temporary
folder first (about 10 s). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from torch.utils.data import DataLoader

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
BATCH = 16
CLIP_LEN = 64
LOADER_BATCHES = 8
MODEL_STEPS = 1


def make_store(root: Path) -> Path:
    from actionfusion.datasets.store.prepare import PrepareConfig, prepare_store
    from actionfusion.datasets.synthetic.generate import SynthConfig, generate_synthetic_ntu

    generate_synthetic_ntu(root / "raw", SynthConfig(scale="default", modalities=("skeleton",)), workers=2,
                           progress=False)
    prepare_store(root / "raw", root / "store", PrepareConfig(modalities=("skeleton",)), workers=2, progress=False)
    return root / "store"


def loader_rate(dataset: torch.utils.data.Dataset, workers: int) -> float:
    """Clips/s over LOADER_BATCHES batches, after one warm-up batch (worker start-up excluded)."""
    loader = DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=workers, drop_last=True,
                        generator=torch.Generator().manual_seed(0))
    batches = iter(loader)
    next(batches)
    start = time.perf_counter()
    for _ in range(LOADER_BATCHES):
        batch = next(batches)
        assert batch["skeleton"].shape == (BATCH, 2, CLIP_LEN, 25, 3)
    return LOADER_BATCHES * BATCH / (time.perf_counter() - start)


def model_rate(example: torch.Tensor) -> tuple[float, str]:
    """Clips/s of CTR-GCN training steps on ``example`` [N, M, T, V, C] (MODEL_STEPS timed after one warm-up step)."""
    # The builder the registry names "ctrgcn", called directly so that the benchmark does not
    # depend on every other model module importing cleanly.
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
    return example.shape[0] / min(times[1:]), "ctrgcn"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", type=Path, default=None, help="a prepared store (default: generate one)")
    args = parser.parse_args()
    torch.set_num_threads(2)

    from actionfusion.pipeline.config import load_config
    from actionfusion.pipeline.data_builder import build_datasets

    with tempfile.TemporaryDirectory(prefix="bench_data_loading_") as tmp:
        store = args.store or make_store(Path(tmp))
        cfg = load_config(REPO / "configs" / "synthetic" / "ctrgcn.yaml",
                          [f"data.store={store}", f"data.clip_len={CLIP_LEN}",
                           "data.train_transforms=[{name: valid_crop_resize, p_interval: [0.5, 1.0]}, "
                           "{name: random_rotation, max_angle: 0.3}]"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the synthetic store's per-sample validation fallback
            train = build_datasets(cfg)["train"]
        rates = {workers: loader_rate(train, workers) for workers in (0, 2)}
        example = torch.stack([train[i]["skeleton"] for i in range(BATCH)])
        model_clips_per_s, model_name = model_rate(example)
    print(json.dumps({
        "bench": "data_loading",
        "batch": BATCH,
        "clip_len": CLIP_LEN,
        "train_clips": len(train),
        "loader_clips_per_s_workers0": round(rates[0], 1),
        "loader_clips_per_s_workers2": round(rates[2], 1),
        "baseline": f"{model_name} forward+backward+SGD step, 2 threads",
        "model_clips_per_s": round(model_clips_per_s, 2),
        "ratio_workers0": round(rates[0] / model_clips_per_s, 1),
        "ratio_workers2": round(rates[2] / model_clips_per_s, 1),
    }))


if __name__ == "__main__":
    main()
