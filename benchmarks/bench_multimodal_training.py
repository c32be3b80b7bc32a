"""Multimodal training throughput (clips/s) and the share of time spent waiting for data.

Runs the real training loop pieces on the demo's multimodal config
(``configs/synthetic/mmixer.yaml``: skeleton + RGB hand glimpses + depth, M-Mixer) and on its late-fusion
variant: the trainer's loader (``build_train_loader`` with the config's worker count) feeding
forward + backward + SGD through :class:`FeaturesAndLogits`, for ``--steps`` steps. It times the
wait for each batch apart from the step itself.

The baseline, measured in the same run, is the same model trained on one batch held in memory (no
loader at all). ``ratio_end_to_end_over_compute_only`` near 1 means the loader is not the
bottleneck; ``data_wait_share`` is the fraction of the end-to-end time spent waiting for batches.

Usage: ``.venv/bin/python benchmarks/bench_multimodal_training.py [--store STORE] [--steps N]``;
without ``--store`` it uses ``demo_output/store`` when it exists, else it first generates a tiny
synthetic store in a temporary folder (about 20 s). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from loader_share import measure_loader_share  # noqa: E402  (benchmarks/, the script's own folder)

CASES = {
    "mmixer_skeleton_hands_depth": ("configs/synthetic/mmixer.yaml", []),
    "late_skeleton_hands_depth": ("configs/synthetic/mmixer.yaml", ["model.kwargs.fusion={name: late}"]),
    # the previous demo model: the 64 px person crop in place of the hand glimpses
    "mmixer_skeleton_rgb_depth": ("configs/synthetic/mmixer.yaml", [
        "data.modalities=[skeleton, rgb, depth]", "data.rgb={num_frames: 8, size: 64, scale_range: [1.0, 1.0]}",
        "model.kwargs.encoders={skeleton: {name: ctrgcn, kwargs: {base_channels: 32}}, rgb: {name: tsm_frames}, "
        "depth: {name: depth_tsm}}"]),
}


def make_store(root: Path) -> Path:
    from actionfusion.datasets.store.prepare import PrepareConfig, prepare_store
    from actionfusion.datasets.synthetic.generate import SynthConfig, generate_synthetic_ntu

    generate_synthetic_ntu(root / "raw", SynthConfig(scale="tiny"), workers=2, progress=False)
    prepare_store(root / "raw", root / "store", PrepareConfig(), workers=2, progress=False)
    return root / "store"


def measure(cfg, steps: int) -> dict:
    """End-to-end (loader + step) and compute-only (cached batch) clips/s of ``cfg``'s model."""
    from actionfusion.pipeline.data_builder import build_datasets
    from actionfusion.pipeline.distributed import init_distributed
    from actionfusion.pipeline.loaders import build_train_loader
    from actionfusion.pipeline.model_inputs import batch_inputs, model_attribute, model_input_keys
    from actionfusion.pipeline.train_loop import FeaturesAndLogits
    from actionfusion.pipeline.trainer import build_model

    ctx = init_distributed()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a tiny store's validation carve-out warns
        train = build_datasets(cfg)["train"]
    loader = build_train_loader(train, ctx, int(cfg.data.batch_size), int(cfg.data.num_workers), cfg.seed)
    torch.manual_seed(0)
    model = FeaturesAndLogits(build_model(cfg)).train()
    keys = model_input_keys(model)
    weights = model_attribute(model, "stream_loss_weights") or {}
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step(batch) -> None:
        x = batch_inputs(batch, keys, ctx.device)
        _, _, streams = model(x)
        loss = sum(weights.get(k, 1.0) * torch.nn.functional.cross_entropy(v, batch["label"]) for k, v in streams.items())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    result = measure_loader_share(loader, step, steps, lambda batch: int(batch["label"].shape[0]))
    first = result.pop("first_batch")
    return {**result, "batch": int(cfg.data.batch_size), "loader_workers": int(cfg.data.num_workers),
            "shapes": {k: list(v.shape) for k, v in first.items() if hasattr(v, "shape") and v.dim() > 1}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", type=Path, default=None, help="a prepared store with every modality")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the training process")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from actionfusion.pipeline.config import load_config

    with tempfile.TemporaryDirectory() as tmp:
        store = args.store or (REPO / "demo_output" / "store")
        if not (store / "manifest.json").is_file():
            store = make_store(Path(tmp))
        result: dict = {"benchmark": "multimodal_training", "threads": args.threads, "store": str(store)}
        for name, (config, overrides) in CASES.items():
            cfg = load_config(REPO / config, [*overrides, f"data.store={store}"])
            result[name] = measure(cfg, args.steps)
        print(json.dumps(result))


if __name__ == "__main__":
    main()
