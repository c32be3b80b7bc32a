"""Self-supervised pretraining throughput (clips/s) through the engine, and the data-wait share.

Runs the engine's pieces on a pretraining config (``--config``, default
``configs/synthetic/mamp_pretrain.yaml``: MAMP, motion-aware masking, encoder on the visible tokens,
decoder, masked motion MSE; any pretraining objective works, e.g. ``configs/synthetic/hiclr_pretrain.yaml``,
whose loader draws four augmented views per clip): the trainer's loader
(``build_train_loader`` with the config's worker count) feeding :class:`ObjectiveModule` forward +
backward + the config's optimizer (after ``objective.attach(model)``, as the trainer does), for
``--steps`` steps, timing the wait for each batch apart from the step. The baseline, measured in
the same run, is the same steps on one batch held in memory (no loader):
``ratio_end_to_end_over_compute_only`` near 1 means the loader is not the bottleneck.

Usage: ``.venv/bin/python benchmarks/bench_pretrain_throughput.py [--config CONFIG] [--set key=value ...]
[--store STORE] [--steps N] [--threads T]``; the store is ``--set data.store=...``, else ``--store``, else
``demo_output/store`` when it exists, else a tiny skeleton-only synthetic store generated in a temporary
folder first (about 10 s). Prints one JSON line.
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

CONFIG = "configs/synthetic/mamp_pretrain.yaml"


def make_store(root: Path) -> Path:
    from actionfusion.datasets.store.prepare import PrepareConfig, prepare_store
    from actionfusion.datasets.synthetic.generate import SynthConfig, generate_synthetic_ntu

    generate_synthetic_ntu(root / "raw", SynthConfig(scale="tiny", modalities=("skeleton",)), workers=1, progress=False)
    prepare_store(root / "raw", root / "store", PrepareConfig(modalities=("skeleton",)), workers=0, progress=False)
    return root / "store"


def measure(cfg, steps: int) -> dict:
    """End-to-end (loader + step) and compute-only (cached batch) clips/s of the pretraining step."""
    from actionfusion.pipeline.data_builder import build_datasets
    from actionfusion.pipeline.distributed import init_distributed
    from actionfusion.pipeline.engine import build_optimizer_for
    from actionfusion.pipeline.loaders import build_train_loader
    from actionfusion.pipeline.train_loop import ObjectiveModule
    from actionfusion.pipeline.trainer import build_model, build_objective

    ctx = init_distributed()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a tiny store's validation carve-out warns
        train = build_datasets(cfg)["train"]
    loader = build_train_loader(train, ctx, int(cfg.data.batch_size), int(cfg.data.num_workers), cfg.seed)
    torch.manual_seed(0)
    model, objective = build_model(cfg, num_classes=0), build_objective(cfg)
    objective.attach(model)  # a momentum encoder, frozen layers: as the trainer does before its optimizer
    module = ObjectiveModule(model, objective).train()
    optimizer = build_optimizer_for(model, objective, cfg.optim)

    def step(batch) -> None:
        loss = module(batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    result = measure_loader_share(loader, step, steps, lambda batch: int(batch["skeleton"].shape[0]))
    first = result.pop("first_batch")
    return {**result, "batch": int(cfg.data.batch_size), "loader_workers": int(cfg.data.num_workers),
            "clip_shape": list(first["skeleton"].shape[1:])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=CONFIG, help="pretraining config (path relative to the repository)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, repeatable (data.store=... picks the store)")
    parser.add_argument("--store", type=Path, default=None, help="a prepared store with skeletons")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the training process")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from actionfusion.pipeline.config import load_config

    with tempfile.TemporaryDirectory() as tmp:
        given = [s.split("=", 1)[1] for s in args.set if s.startswith("data.store=")]
        store = Path(given[-1]) if given else (args.store or (REPO / "demo_output" / "store"))
        if not (store / "manifest.json").is_file():
            store = make_store(Path(tmp))
        overrides = [s for s in args.set if not s.startswith("data.store=")] + [f"data.store={store}"]
        cfg = load_config(REPO / args.config, overrides)
        result = {"benchmark": "pretrain_throughput", "config": args.config, "objective": cfg.objective.name,
                  "threads": args.threads, "store": str(store), **measure(cfg, args.steps)}
        print(json.dumps(result))


if __name__ == "__main__":
    main()
