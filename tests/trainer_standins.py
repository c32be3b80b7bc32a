"""Tiny stand-ins for the trainer tests: a registered model and an in-memory dataset.

Also a script: ``python tests/trainer_standins.py WORK_DIR [--resume] [--epochs N] [--batch B]
[--pause-epoch E --marker FILE]`` trains the tiny config in a fresh process (used for the
kill -9 resume test and, under ``torchrun``, for the DDP test).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from actionfusion.modalities.encoder_contract import Encoder  # noqa: E402
from actionfusion.modalities.features import EncoderOutput  # noqa: E402
from actionfusion.pipeline.config import ExperimentConfig  # noqa: E402
from actionfusion.registry import register_model  # noqa: E402

TINY_MODEL = "_e2_tiny"
NUM_CLASSES = 5
SHAPE = (2, 8, 25, 3)  # [M, T, V, C]


class TinySkeletonNet(Encoder):
    """x [N, M, T, V, C] -> mean over persons and frames -> MLP (dropout) -> logits [N, classes].

    ``aux_weight`` > 0 adds ``aux["loss_feature_l2"]`` (weight times the mean squared feature);
    ``use_bn`` adds a BatchNorm1d on the hidden layer.
    """

    input_keys = ("skeleton",)

    def __init__(self, num_classes: int = NUM_CLASSES, in_channels: int = 3, hidden: int = 16,
                 drop_rate: float = 0.2, aux_weight: float = 0.0, use_bn: bool = False) -> None:
        super().__init__()
        self.embed = nn.Linear(25 * in_channels, hidden)
        self.norm = nn.BatchNorm1d(hidden) if use_bn else nn.Identity()
        self.drop = nn.Dropout(drop_rate)
        self.num_features = hidden
        self.num_classes = num_classes
        self.head = self.build_classifier(num_classes) if num_classes > 0 else None
        self.aux_weight = aux_weight

    def build_classifier(self, num_classes: int) -> nn.Linear:
        return nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> EncoderOutput:
        """x [N, M, T, V, C] -> EncoderOutput(sequence [N, T, D], pooled [N, D])."""
        per_frame = x.mean(dim=1).flatten(2)  # [N, T, V*C]
        sequence = torch.relu(self.embed(per_frame))
        pooled = self.drop(self.norm(sequence.mean(dim=1)))
        aux = {"loss_feature_l2": self.aux_weight * pooled.pow(2).mean(), "not_a_loss": pooled.sum()}
        return EncoderOutput(sequence=sequence, pooled=pooled, aux=aux if self.aux_weight > 0 else None)

    def forward_head(self, feats: EncoderOutput, pre_logits: bool = False) -> torch.Tensor:
        if pre_logits or self.head is None:
            return feats.pooled
        return self.head(feats.pooled)


try:
    register_model(TINY_MODEL, modality="test")(TinySkeletonNet)
except ValueError:  # this module was imported a second time under another name
    pass


class TinyClipDataset(torch.utils.data.Dataset):
    """Learnable in-memory clips with the contract's item dict and per-(seed, epoch, index) noise.

    Class c has a fixed joint pattern; items add noise from ``default_rng([seed, epoch, index])``.
    ``clips`` > 1 returns "skeleton" [K, M, T, V, C]. ``pause`` = (epoch, seconds, marker): sleep in
    every item of that epoch, touching ``marker`` first (for the kill test).
    """

    def __init__(self, size: int, seed: int = 0, clips: int = 1, offset: int = 0,
                 pause: Optional[tuple] = None) -> None:
        self.seed, self.clips, self.epoch, self.pause = seed, clips, 0, pause
        self.labels = [(i + offset) % NUM_CLASSES for i in range(size)]
        self.names = [f"S001C001P{(i + offset) % 40 + 1:03d}R001A{label + 1:03d}" for i, label in enumerate(self.labels)]
        self.patterns = np.random.default_rng(1234).normal(size=(NUM_CLASSES,) + SHAPE).astype(np.float32)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.labels)

    def _clip(self, index: int, clip: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.epoch, index, clip])
        return self.patterns[self.labels[index]] + rng.normal(scale=1.5, size=SHAPE).astype(np.float32)

    def __getitem__(self, index: int) -> Dict[str, Any]:
        if self.pause is not None and self.epoch == self.pause[0]:
            Path(self.pause[2]).touch()
            time.sleep(self.pause[1])
        if self.clips == 1:
            skeleton = self._clip(index, 0)
        else:
            skeleton = np.stack([self._clip(index, k) for k in range(self.clips)])
        return {"skeleton": torch.from_numpy(skeleton), "label": torch.tensor(self.labels[index]), "index": index}


def tiny_config(epochs: int = 3, batch_size: int = 8, **sections: Dict[str, Any]) -> ExperimentConfig:
    """An ExperimentConfig of the tiny model (SGD, step schedule with warm-up, no AMP on CPU)."""
    raw: Dict[str, Any] = {
        "experiment": "tiny",
        "seed": 0,
        "data": {"batch_size": batch_size, "num_workers": 0, "clip_len": SHAPE[1]},
        "model": {"name": TINY_MODEL, "num_classes": NUM_CLASSES, "kwargs": {"aux_weight": 0.01}},
        "optim": {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.0005},
        "schedule": {"name": "step", "epochs": epochs, "warmup_epochs": 1, "milestones": [2], "gamma": 0.1},
        "train": {"amp": True, "keep_last": 2, "log_every": 2, "label_smoothing": 0.1, "grad_clip": 5.0},
    }
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value}
    return ExperimentConfig.from_dict(raw)


def tiny_datasets(train_size: int = 40, pause: Optional[tuple] = None, test_clips: int = 1) -> Dict[str, Any]:
    """{"train", "val", "test"} tiny datasets (val and test of 12 and 9 samples)."""
    return {
        "train": TinyClipDataset(train_size, pause=pause),
        "val": TinyClipDataset(12, offset=1, clips=test_clips),
        "test": TinyClipDataset(9, offset=2, clips=test_clips),
    }


TINY_OBJECTIVE = "_tiny_mean_pose"


class TinyMeanPoseObjective(torch.nn.Module):
    """Self-supervised stand-in objective: a linear decoder of its own predicts each clip's mean pose
    from the pooled feature (MSE). Deterministic, so a run needs no random stream of its own."""

    needs_labels = False
    num_views = 1

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.decoder = nn.Linear(width, 25 * 3)

    def forward(self, model: nn.Module, batch: Dict[str, Any]) -> Any:
        from actionfusion.objectives import ObjectiveOutput

        device = next(model.parameters()).device
        x = batch["skeleton"].to(device)
        target = x.mean(dim=(1, 2)).flatten(1)
        loss = (self.decoder(model.forward_features(x).pooled) - target).pow(2).mean()
        return ObjectiveOutput(loss=loss, losses={"mse": loss.detach()}, batch_size=int(x.shape[0]))


try:
    from actionfusion.objectives import register_objective

    register_objective(TINY_OBJECTIVE)(TinyMeanPoseObjective)
except ValueError:  # this module was imported a second time under another name
    pass


def tiny_pretrain_config(epochs: int = 2, batch_size: int = 8) -> ExperimentConfig:
    """The tiny config with the stand-in objective and no head (``actionfusion pretrain``)."""
    raw = tiny_config(epochs=epochs, batch_size=batch_size).to_dict()
    raw["objective"] = {"name": TINY_OBJECTIVE, "kwargs": {}}
    raw["model"] = {**raw["model"], "num_classes": 0, "kwargs": {"aux_weight": 0.0, "drop_rate": 0.0}}
    raw["optim"] = {**raw["optim"], "name": "adamw", "lr": 0.01}
    raw["train"] = {**raw["train"], "amp": False, "select_by": "val/knn_top1", "knn_every": 1}
    return ExperimentConfig.from_dict(raw)


def main(argv: Optional[list] = None) -> int:
    from actionfusion.pipeline.trainer import train

    parser = argparse.ArgumentParser()
    parser.add_argument("work_dir")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--drop-rate", type=float, default=0.2)
    parser.add_argument("--use-bn", action="store_true")
    parser.add_argument("--pause-epoch", type=int, default=None)
    parser.add_argument("--marker", default=None)
    parser.add_argument("--pretrain", action="store_true", help="run `pretrain` with the stand-in objective")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    pause = (args.pause_epoch, 0.2, args.marker) if args.pause_epoch is not None else None
    cfg = tiny_config(epochs=args.epochs, batch_size=args.batch,
                      model={"kwargs": {"aux_weight": 0.01, "drop_rate": args.drop_rate, "use_bn": args.use_bn}})
    if args.pretrain:
        from actionfusion.pipeline.pretrain import pretrain

        results = pretrain(tiny_pretrain_config(args.epochs, args.batch), args.work_dir, resume=args.resume,
                           progress=False, datasets=tiny_datasets(pause=pause))
        print(json.dumps(results, sort_keys=True))
        return 0
    results = train(cfg, args.work_dir, resume=args.resume, progress=False, datasets=tiny_datasets(pause=pause))
    print(json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
