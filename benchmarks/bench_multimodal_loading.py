"""Does the multimodal clip loader keep up with the models? Clips/s of loader vs training step.

For each case, the training dataset of a config (``configs/synthetic/epam.yaml``,
``depth_tsm.yaml``, ``point_transformer.yaml``, and EPAM-Net at its official clip size: 16 RGB
frames at 224 px + 48 heatmap frames at 56 px) is read in ONE process (no loader workers: a
lower bound, since the trainer adds workers), and the baseline measured in the same run is the
model's training step (forward + backward + SGD, 1 torch thread) on batches of the same shapes.
``loader_over_model`` > 1 means one loader process alone feeds the model faster than it trains.

Usage: ``.venv/bin/python benchmarks/bench_multimodal_loading.py [--store STORE]``; without
``--store`` a tiny synthetic store with every modality is generated in a temporary folder first
(about 20 s). Prints one JSON line.
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
BATCH = 4
LOADER_ITEMS = 24
MODEL_STEPS = 2

CASES = {
    "epam_synthetic": ("configs/synthetic/epam.yaml", []),
    "epam_official_size": ("configs/synthetic/epam.yaml",
                           ["data.rgb.size=224", "data.rgb.num_frames=16", "data.pose_heatmap.size=56",
                            "data.pose_heatmap.num_frames=48"]),
    "depth_tsm_synthetic": ("configs/synthetic/depth_tsm.yaml", []),
    "point_transformer_synthetic": ("configs/synthetic/point_transformer.yaml", []),
}


def make_store(root: Path) -> Path:
    from actionfusion.datasets.store.prepare import PrepareConfig, prepare_store
    from actionfusion.datasets.synthetic.generate import SynthConfig, generate_synthetic_ntu

    generate_synthetic_ntu(root / "raw", SynthConfig(scale="tiny"), workers=2, progress=False)
    prepare_store(root / "raw", root / "store", PrepareConfig(), workers=2, progress=False)
    return root / "store"


def loader_rate(dataset) -> tuple[float, dict]:
    """(items/s reading ``LOADER_ITEMS`` items in this process, {key: shape} of one item)."""
    dataset[0]  # warm the store's caches
    start = time.perf_counter()
    for i in range(LOADER_ITEMS):
        item = dataset[i % len(dataset)]
    elapsed = time.perf_counter() - start
    return LOADER_ITEMS / elapsed, {k: list(v.shape) for k, v in item.items() if hasattr(v, "shape") and v.dim() > 0}


def model_rate(cfg, shapes: dict) -> float:
    """Clips/s of forward + backward + SGD of the config's model on random batches of ``shapes``."""
    from actionfusion.pipeline.model_inputs import model_input_keys
    from actionfusion.pipeline.train_loop import FeaturesAndLogits
    from actionfusion.pipeline.trainer import build_model

    model = FeaturesAndLogits(build_model(cfg))
    keys = model_input_keys(model)
    batch = {k: torch.rand([BATCH] + shapes[k]) for k in keys}
    x = batch[keys[0]] if len(keys) == 1 else batch
    labels = torch.zeros(BATCH, dtype=torch.int64)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step() -> None:
        logits, _, streams = model(x)
        loss = sum(torch.nn.functional.cross_entropy(v, labels) for v in (streams.values() if streams else [logits]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()
    times = []
    for _ in range(MODEL_STEPS):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return BATCH / min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", type=Path, default=None, help="a prepared store with every modality")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from actionfusion.pipeline.config import load_config
    from actionfusion.pipeline.data_builder import build_datasets

    with tempfile.TemporaryDirectory() as tmp:
        store = args.store or make_store(Path(tmp))
        result: dict = {"benchmark": "multimodal_loading", "batch": BATCH, "threads": 1, "loader_workers": 0}
        for name, (config, overrides) in CASES.items():
            cfg = load_config(REPO / config, [*overrides, f"data.store={store}"])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the tiny store's validation carve-out warns
                train = build_datasets(cfg)["train"]
            loader, shapes = loader_rate(train)
            model = model_rate(cfg, shapes)
            result[name] = {"shapes": shapes, "loader_clips_per_s": round(loader, 2),
                            "model_clips_per_s": round(model, 2), "loader_over_model": round(loader / model, 2)}
        print(json.dumps(result))


if __name__ == "__main__":
    main()
