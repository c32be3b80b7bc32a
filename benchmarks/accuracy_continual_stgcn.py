"""Accuracy of a trained ST-GCN run without temporal padding (what continual inference computes).

The continual model (:class:`~actionfusion.modalities.skeleton.stgcn_continual.ContinualSTGCN`)
equals :func:`~actionfusion.modalities.skeleton.stgcn_continual.stgcn_valid_forward`, the trained
weights with "valid" temporal convolutions; this script measures what that costs in accuracy on
the test split of a work dir: for each clip length T (``data.clip_len`` overridden; the test
transforms crop and resample every sample to T frames) top-1 / top-5 of

  padded  ``model(x)``, as trained and evaluated;
  valid   :func:`stgcn_valid_forward` (T >= 153 only: shorter clips have no padding-free output).

One JSON line per T, after the work dir's own clip length. Single process, CPU, ``--threads`` threads.

Run: .venv/bin/python benchmarks/accuracy_continual_stgcn.py /work/runs/live/stgcn_coco17
        [--store /work/runs/store] [--clip-lens 32 153 160 200 300]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Dict, List

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run from a checkout without installing the package

import torch  # noqa: E402
from torch import nn  # noqa: E402

from actionfusion.modalities.skeleton.stgcn import STGCN  # noqa: E402
from actionfusion.modalities.skeleton.stgcn_continual import (  # noqa: E402
    stgcn_receptive_field,
    stgcn_valid_forward,
)
from actionfusion.pipeline.checkpoints import load_weights  # noqa: E402
from actionfusion.pipeline.config import load_config  # noqa: E402
from actionfusion.pipeline.data_builder import build_datasets  # noqa: E402
from actionfusion.pipeline.distributed import init_distributed  # noqa: E402
from actionfusion.pipeline.evaluation import evaluate_dataset  # noqa: E402
from actionfusion.pipeline.loaders import build_eval_loader  # noqa: E402
from actionfusion.pipeline.trainer import build_model, weights_path  # noqa: E402


class ValidForward(nn.Module):
    """An ST-GCN scored by :func:`stgcn_valid_forward`: skeleton [N, M, T, V, C] -> logits [N, classes]."""

    input_keys = ("skeleton",)

    def __init__(self, model: STGCN) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return stgcn_valid_forward(self.model, x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work_dir", type=Path, help="a work dir with config.yaml and best.safetensors")
    parser.add_argument("--store", default=None, help="data.store override (the sample store)")
    parser.add_argument("--clip-lens", type=int, nargs="+", default=[153, 160, 200, 300])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ctx = init_distributed("cpu")
    overrides = [f"data.store={args.store}"] if args.store else []
    base_cfg = load_config(args.work_dir / "config.yaml", overrides)
    model = build_model(base_cfg)
    if not isinstance(model, STGCN):
        raise SystemExit(f"{args.work_dir}: the model is {type(model).__name__}, not an ST-GCN")
    load_weights(weights_path(args.work_dir), model)
    model.eval()
    rf = stgcn_receptive_field(model)
    clip_lens: List[int] = [int(base_cfg.data.clip_len)] + [t for t in args.clip_lens if t != base_cfg.data.clip_len]
    for clip_len in clip_lens:
        cfg = load_config(args.work_dir / "config.yaml", overrides + [f"data.clip_len={clip_len}"])
        test = build_datasets(cfg)["test"]
        line: Dict[str, object] = {"benchmark": "continual_stgcn_accuracy", "work_dir": str(args.work_dir),
                                   "experiment": cfg.experiment, "clip_len": clip_len,
                                   "trained_clip_len": int(base_cfg.data.clip_len), "receptive_field": rf}
        scorers = {"padded": model, "valid": ValidForward(model) if clip_len >= rf else None}
        for name, scorer in scorers.items():
            if scorer is None:
                line[name] = {"skipped": f"T = {clip_len} < receptive field {rf}"}
                continue
            loader = build_eval_loader(test, ctx, int(cfg.data.batch_size), 0)
            start = time.perf_counter()
            with torch.no_grad():
                metrics, _, _ = evaluate_dataset(scorer, loader, ctx, int(cfg.model.num_classes))
            line[name] = {"top1": round(float(metrics["top1"]), 4), "top5": round(float(metrics["top5"]), 4),
                          "num_samples": int(metrics["num_samples"]), "seconds": round(time.perf_counter() - start, 1)}
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
