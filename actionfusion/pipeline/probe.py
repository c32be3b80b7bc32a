"""``probe``: the representation protocols of self-supervised skeleton papers, on any encoder.

``actionfusion probe CONFIG --pretrained encoder.safetensors --protocol P`` where CONFIG is the
downstream config (model, data, fine-tune recipe) and ``encoder.safetensors`` what
``actionfusion pretrain`` wrote (omit ``--pretrained`` for the random-initialisation baseline under
the same protocol and budget):

* ``linear``: the encoder frozen (eval mode), BatchNorm1d(affine=False) + Linear on its pooled
  feature (``linear_probe`` model, ``bn_linear`` head); MAMP's recipe: SGD momentum 0.9, lr 0.1 at
  batch 256 (scaled linearly to the config's batch), no weight decay, 100 epochs, cosine, no label
  smoothing (:data:`LINEAR_RECIPE`).
* ``knn``: cosine kNN of the test split's L2-normalised pooled features against the training
  clips' (no augmentation), k in 1, 2, 5, 10. No training.
* ``finetune``: the whole model from the pretrained encoder with the config's recipe and
  layer-wise lr decay 0.8 (AdamW) where the model defines layers (``layer_id``).
* ``semi``: ``finetune`` on a ``--percent`` labelled subset of the training split, stratified so
  every class is represented, drawn anew for every seed (:func:`~.protocols.label_subsets.labelled_subset`);
  mean and standard deviation over ``--seeds``.
* ``transfer``: pretrain on one benchmark and fine-tune on another (MAMP's NTU-60 -> PKU-MMD II):
  ``--source-config`` is the pretraining config (its store and benchmark), CONFIG the downstream
  one; the source run goes to ``WORK_DIR/pretrain`` (resumed, or reused once its encoder is
  written), then ``finetune`` runs on CONFIG from that encoder. ``--pretrained`` instead of
  ``--source-config`` fine-tunes an encoder pretrained elsewhere. ``metrics.json`` records both sides.
* ``fewshot``: N-way K-shot episodes (5-way 1- and 5-shot, 15 queries, 1,000 episodes) with a
  nearest-prototype classifier on frozen features of the test split's novel classes: NTU120's
  one-shot classes for NTU120 benchmarks (plus the official 20-way one-shot episode with its
  exemplars), otherwise every test class, reported as not held out of pretraining.

Every protocol writes ``metrics.json`` and ``embedding_test.png`` (t-SNE of the test features,
coloured by class) into the work dir; trained protocols keep each run in ``seed_<s>/``.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
import torch

from ..io import atomic_write_json
from .config import ConfigError, ExperimentConfig, load_config
from .distributed import barrier, init_distributed, shutdown_distributed
from .engine import limit_cpu_threads, seed_everything
from .feature_bank import pooled_features
from .loaders import build_eval_loader
from .pretrain import class_names_of, knn_scores
from .resume_config import check_finished_run, with_recorded_num_classes
from .trainer import build_model, default_work_dir, train

PathLike = Union[str, Path]

PROTOCOLS = ("linear", "knn", "finetune", "semi", "fewshot", "transfer")
FROZEN_PROTOCOLS = ("linear", "knn", "fewshot")
"""The protocols that read a frozen encoder in eval mode (its BatchNorm statistics as they are)."""
LINEAR_RECIPE: Dict[str, Any] = {
    "optim": {"name": "sgd", "momentum": 0.9, "nesterov": False, "weight_decay": 0.0, "layer_decay": None,
              "lr_mult": {}},
    "schedule": {"name": "cosine", "epochs": 100, "warmup_epochs": 0, "milestones": [], "min_lr": 0.0},
    "train": {"label_smoothing": 0.0},
}
"""MAMP's ``main_linprobe.py`` recipe: SGD momentum 0.9, no weight decay, 100 epochs, cosine, no
label smoothing; the learning rate is :data:`LINEAR_BASE_LR` at batch 256, scaled linearly to the
config's batch (``--epochs`` replaces the 100)."""
LINEAR_BASE_LR = 0.1
LINEAR_BASE_BATCH = 256
FINETUNE_LAYER_DECAY = 0.8
FEWSHOT_SETTINGS = ((5, 1), (5, 5))
FEWSHOT_QUERIES = 15
FEWSHOT_EPISODES = 1000


def _merge(base: Dict[str, Any], update: Mapping[str, Any]) -> Dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        out[key] = _merge(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), dict) else value
    return out


def protocol_config(cfg: ExperimentConfig, protocol: str, pretrained: Optional[str], seed: int,
                    epochs: Optional[int] = None) -> ExperimentConfig:
    """The config one trained run of ``protocol`` uses (``linear``, ``finetune`` or ``semi``)."""
    data = cfg.to_dict()
    data["seed"] = int(seed)
    data["experiment"] = f"{cfg.experiment}_{protocol}"
    if epochs is not None:
        data["schedule"]["epochs"] = int(epochs)
        data["schedule"]["milestones"] = [m for m in data["schedule"]["milestones"] if m < int(epochs)]
        data["schedule"]["warmup_epochs"] = min(data["schedule"]["warmup_epochs"], int(epochs))
    model = data["model"]
    if protocol == "linear":
        data = _merge(data, LINEAR_RECIPE)
        data["optim"]["lr"] = LINEAR_BASE_LR * int(data["data"]["batch_size"]) / LINEAR_BASE_BATCH
        if epochs is not None:
            data["schedule"]["epochs"] = int(epochs)
        data["model"] = {"name": "linear_probe", "num_classes": model["num_classes"],
                         "kwargs": {"encoder": {"name": model["name"], "kwargs": model["kwargs"]}, "head": "bn_linear"},
                         "init": {"encoder": pretrained} if pretrained else {}, "pretrained": None}
    else:
        model["pretrained"] = pretrained
        probe = build_model(cfg, num_classes=0)  # only asks whether the model defines layers
        if hasattr(probe, "layer_id"):
            data["optim"].update({"name": "adamw_layer_decay", "layer_decay": FINETUNE_LAYER_DECAY, "lr_mult": {}})
    return ExperimentConfig.from_dict(data)


def labelled_datasets(cfg: ExperimentConfig, percent: Optional[float], seed: int) -> Dict[str, Any]:
    """The config's datasets; with ``percent`` the training split is cut to a labelled subset drawn with ``seed``."""
    from .data_builder import build_datasets
    from .protocols.label_subsets import labelled_subset

    datasets = dict(build_datasets(cfg))
    if percent is not None:
        train_set = datasets["train"]
        keep = labelled_subset(train_set.labels, float(percent), int(seed))
        subset = copy.copy(train_set)
        subset.names = [train_set.names[i] for i in keep]
        subset.labels = [train_set.labels[i] for i in keep]
        datasets["train"] = subset
    return datasets


def _mean_std(values: Sequence[float]) -> Dict[str, float]:
    array = np.asarray(values, dtype=np.float64)
    return {"mean": float(array.mean()), "std": float(array.std(ddof=1)) if len(array) > 1 else 0.0,
            "runs": len(array)}


def run_trained_protocol(cfg: ExperimentConfig, protocol: str, pretrained: Optional[str], work_dir: Path,
                         seeds: int, percent: Optional[float], epochs: Optional[int], resume: bool,
                         progress: bool = True, allow_config_change: bool = False) -> Dict[str, Any]:
    """``linear``, ``finetune`` or ``semi``: one training run per seed; mean and std of test top-1."""
    runs: List[Dict[str, Any]] = []
    for index in range(int(seeds)):
        seed = int(cfg.seed) + index
        run_cfg = protocol_config(cfg, protocol, pretrained, seed, epochs)
        run_dir = work_dir / f"seed_{seed}"
        done = run_dir / "metrics.json"
        if done.is_file():
            check_finished_run(run_dir, with_recorded_num_classes(run_cfg, run_dir).to_dict())
            metrics = json.loads(done.read_text())
        else:
            datasets = labelled_datasets(run_cfg, percent if protocol == "semi" else None, seed)
            if protocol == "semi":
                run_dir.mkdir(parents=True, exist_ok=True)
                atomic_write_json(run_dir / "labelled_subset.json", list(datasets["train"].names))
            metrics = train(run_cfg, run_dir, resume=resume or (run_dir / "checkpoints").is_dir(), progress=progress,
                            datasets=datasets, allow_config_change=allow_config_change)
            metrics["train_samples"] = len(datasets["train"])
        runs.append({"seed": seed, "top1": metrics["top1"], "top5": metrics["top5"],
                     "mean_class_accuracy": metrics["mean_class_accuracy"], "best_epoch": metrics.get("best_epoch"),
                     "train_samples": metrics.get("train_samples")})
    result: Dict[str, Any] = {"protocol": protocol, "pretrained": pretrained,
                              "percent": percent if protocol == "semi" else None, "runs": runs,
                              "top1": _mean_std([r["top1"] for r in runs]),
                              "mean_class_accuracy": _mean_std([r["mean_class_accuracy"] for r in runs])}
    _plot_trained(run_cfg, work_dir / f"seed_{int(cfg.seed)}", work_dir)
    return result


def _plot_trained(run_cfg: ExperimentConfig, run_dir: Path, work_dir: Path) -> None:
    from .checkpoints import BEST_WEIGHTS, load_weights

    run_cfg = with_recorded_num_classes(run_cfg, run_dir)  # num_classes: auto, as the run resolved it
    model = build_model(run_cfg)
    load_weights(run_dir / BEST_WEIGHTS, model)
    _plot_features(run_cfg, model, work_dir)


def _plot_features(cfg: ExperimentConfig, model: torch.nn.Module, work_dir: Path) -> None:
    from .data_builder import build_datasets
    from .protocols.embedding_plot import plot_embedding

    ctx = init_distributed()
    try:
        test = build_datasets(cfg)["test"]
        loader = build_eval_loader(test, ctx, int(cfg.data.batch_size), int(cfg.data.num_workers))
        features, labels = pooled_features(model.to(ctx.device), loader, ctx)  # a collective: every rank
        if ctx.is_main:
            plot_embedding(features, labels, class_names_of(test, labels), work_dir / "embedding_test.png", seed=cfg.seed)
        barrier(ctx)
    finally:
        shutdown_distributed(ctx)


def encoder_with_weights(cfg: ExperimentConfig, pretrained: Optional[str]) -> torch.nn.Module:
    """The config's model without its head (``num_classes=0``), with the pretrained weights loaded strictly."""
    from .checkpoints import load_weights

    torch.manual_seed(cfg.seed)
    model = build_model(cfg, num_classes=0)
    if pretrained:
        if not Path(pretrained).is_file():
            raise ConfigError("--pretrained", f"no weights file at {pretrained!r}; run `actionfusion pretrain` first")
        load_weights(pretrained, model, strict=True)
    return model


RANDOM_ENCODER_FILE = "random_encoder_bn_calibrated.safetensors"


def calibrated_random_encoder(cfg: ExperimentConfig, work_dir: Path) -> Optional[str]:
    """The random-initialisation baseline of the frozen-encoder protocols: the config's encoder
    (seeded as :func:`encoder_with_weights`) with its BatchNorm statistics re-estimated over the
    training clips (:mod:`.protocols.bn_calibration`), saved to ``work_dir``; None when the encoder
    has no BatchNorm (its eval-mode features need no calibration)."""
    from .checkpoints import save_weights
    from .data_builder import build_datasets
    from .model_inputs import batch_inputs, model_input_keys
    from .protocols.bn_calibration import batchnorm_layers, calibrate_batchnorm

    model = encoder_with_weights(cfg, None)
    if not batchnorm_layers(model):
        return None
    datasets = build_datasets(cfg, train_eval=True)
    ctx = init_distributed()
    try:
        limit_cpu_threads(cfg, ctx)
        model.to(ctx.device)
        keys = model_input_keys(model)
        # Every rank reads the whole training split (the eval loader of one process), so the
        # statistics are identical everywhere; rank 0 writes them.
        loader = torch.utils.data.DataLoader(datasets["train_eval"], batch_size=int(cfg.data.batch_size),
                                             num_workers=int(cfg.data.num_workers))
        calibrate_batchnorm(model, loader, lambda m, batch: m.forward_features(batch_inputs(batch, keys, ctx.device)))
        path = work_dir / RANDOM_ENCODER_FILE
        if ctx.is_main:
            save_weights(path, model.cpu(), {"model": cfg.model.name, "note": "random init, BatchNorm statistics "
                                                                             "of the training clips"})
        barrier(ctx)
        return str(path)
    finally:
        shutdown_distributed(ctx)


def run_knn_protocol(cfg: ExperimentConfig, pretrained: Optional[str], work_dir: Path) -> Dict[str, Any]:
    """Cosine kNN top-1 of the test split against the training clips, k in 1, 2, 5, 10."""
    from .data_builder import build_datasets

    model = encoder_with_weights(cfg, pretrained)
    datasets = build_datasets(cfg, train_eval=True)
    ctx = init_distributed()
    try:
        seed_everything(cfg.seed, cfg.train.deterministic)
        limit_cpu_threads(cfg, ctx)
        model.to(ctx.device)
        batch, workers = int(cfg.data.batch_size), int(cfg.data.num_workers)
        bank = build_eval_loader(datasets["train_eval"], ctx, batch, workers)
        test = build_eval_loader(datasets["test"], ctx, batch, workers)
        scores = knn_scores(model, bank, test, ctx, amp=False)
        result = {"protocol": "knn", "pretrained": pretrained, "top1": {str(k): v for k, v in scores.items()},
                  "bank_samples": len(datasets["train_eval"]), "test_samples": len(datasets["test"])}
        features, labels = pooled_features(model, test, ctx)  # a collective: every rank
        if ctx.is_main:
            from .protocols.embedding_plot import plot_embedding

            plot_embedding(features, labels, class_names_of(datasets["test"], labels), work_dir / "embedding_test.png",
                           seed=cfg.seed)
        barrier(ctx)
        return result
    finally:
        shutdown_distributed(ctx)


def run_fewshot_protocol(cfg: ExperimentConfig, pretrained: Optional[str], work_dir: Path) -> Dict[str, Any]:
    """N-way K-shot episodes on the test split's novel classes (see the module docstring)."""
    from ..datasets.ntu import one_shot
    from .data_builder import build_datasets
    from .protocols.embedding_plot import plot_embedding
    from .protocols.fewshot import evaluate_episodes, sample_episodes

    model = encoder_with_weights(cfg, pretrained)
    test = build_datasets(cfg)["test"]
    ctx = init_distributed()
    try:
        limit_cpu_threads(cfg, ctx)
        model.to(ctx.device)
        loader = build_eval_loader(test, ctx, int(cfg.data.batch_size), int(cfg.data.num_workers))
        features, labels = pooled_features(model, loader, ctx)
    finally:
        shutdown_distributed(ctx)
    ntu120 = cfg.data.benchmark.startswith("ntu120")
    present = sorted(set(labels.tolist()))
    novel = [c for c in present if c in set(one_shot.NOVEL_LABELS)] if ntu120 else present
    result: Dict[str, Any] = {"protocol": "fewshot", "pretrained": pretrained, "novel_classes": novel,
                              "held_out_of_pretraining": bool(ntu120), "settings": {}}
    counts = np.bincount(labels, minlength=max(present) + 1)
    for n_way, k_shot in FEWSHOT_SETTINGS:
        usable = [c for c in novel if counts[c] >= k_shot + 1]
        queries = int(min(FEWSHOT_QUERIES, min(counts[c] for c in usable) - k_shot)) if usable else 0
        if len(usable) < n_way or queries < 1:
            result["settings"][f"{n_way}way_{k_shot}shot"] = {"skipped": f"fewer than {n_way} classes with "
                                                                         f"{k_shot + 1} test samples"}
            continue
        episodes = sample_episodes(labels, usable, n_way, k_shot, queries, FEWSHOT_EPISODES, seed=int(cfg.seed))
        summary = evaluate_episodes(features, labels, episodes)
        summary.pop("episode_accuracies", None)
        result["settings"][f"{n_way}way_{k_shot}shot"] = {**summary, "queries_per_class": queries}
    if ntu120:
        try:
            episode = one_shot.one_shot_episode(list(test.names), labels)
        except (ValueError, KeyError) as err:
            result["ntu120_one_shot"] = {"skipped": str(err)}
        else:
            summary = evaluate_episodes(features, labels, [episode])
            result["ntu120_one_shot"] = {"accuracy": summary["accuracy_mean"]}
    if int(os.environ.get("RANK", "0")) == 0:
        plot_embedding(features, labels, class_names_of(test, labels), work_dir / "embedding_test.png", seed=cfg.seed)
    return result


def run_transfer_protocol(cfg: ExperimentConfig, source_cfg: Optional[ExperimentConfig], pretrained: Optional[str],
                          work_dir: Path, seeds: int, epochs: Optional[int], resume: bool, progress: bool = True,
                          allow_config_change: bool = False) -> Dict[str, Any]:
    """``transfer``: pretrain ``source_cfg`` into ``work_dir/pretrain`` (unless ``pretrained`` is given),
    then fine-tune ``cfg`` from its encoder (:func:`run_trained_protocol`)."""
    from .pretrain import ENCODER_WEIGHTS, pretrain

    source: Dict[str, Any] = {"pretrained": pretrained}
    if pretrained is None:
        if source_cfg is None:
            raise ConfigError("--source-config", "the transfer protocol pretrains on a source benchmark: give "
                                                 "--source-config PRETRAIN_CONFIG (or --pretrained ENCODER)")
        if getattr(build_objective_of(source_cfg), "needs_labels", True):
            raise ConfigError("--source-config", f"{source_cfg.experiment}: objective {source_cfg.objective.name!r} is "
                                                 "supervised; the source of a transfer is a pretraining config")
        source_dir = work_dir / "pretrain"
        encoder = source_dir / ENCODER_WEIGHTS
        if not encoder.is_file():
            started = (source_dir / "checkpoints").is_dir() and any((source_dir / "checkpoints").iterdir())
            pretrain(source_cfg, source_dir, resume=started, progress=progress, allow_config_change=allow_config_change)
        pretrained = str(encoder)
        source = {"experiment": str(source_cfg.experiment), "store": source_cfg.data.store,
                  "benchmark": source_cfg.data.benchmark, "objective": source_cfg.objective.name,
                  "pretrained": pretrained}
    result = run_trained_protocol(cfg, "finetune", pretrained, work_dir, seeds, None, epochs, resume, progress,
                                  allow_config_change)
    result.update({"protocol": "transfer", "source": source,
                   "target": {"store": cfg.data.store, "benchmark": cfg.data.benchmark}})
    return result


def build_objective_of(cfg: ExperimentConfig) -> Any:
    """The config's objective module (to ask whether it needs labels)."""
    from .trainer import build_objective

    return build_objective(cfg)


def probe(cfg: ExperimentConfig, pretrained: Optional[str], protocol: str, work_dir: PathLike,
          percent: float = 10.0, seeds: int = 1, epochs: Optional[int] = None, resume: bool = False,
          progress: bool = True, calibrate_random_bn: bool = True, allow_config_change: bool = False,
          source_cfg: Optional[ExperimentConfig] = None) -> Dict[str, Any]:
    """Run ``protocol`` on ``cfg``'s model from ``pretrained`` (None: random init; ``transfer``:
    pretrained on ``source_cfg``); returns and writes ``work_dir/metrics.json``.

    From random initialisation, the frozen-encoder protocols (linear, kNN, few-shot) first
    re-estimate the encoder's BatchNorm statistics on the training clips
    (:func:`calibrated_random_encoder`; ``calibrate_random_bn=False`` keeps the initial ones)."""
    if protocol not in PROTOCOLS:
        raise ConfigError("--protocol", f"{protocol!r} is not one of {', '.join(PROTOCOLS)}")
    if protocol == "semi" and not 0 < percent <= 100:
        raise ConfigError("--percent", f"{percent} must lie in (0, 100]")
    if seeds < 1:
        raise ConfigError("--seeds", "must be at least 1")
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    calibrated = None
    if pretrained is None and protocol in FROZEN_PROTOCOLS and calibrate_random_bn:
        calibrated = calibrated_random_encoder(cfg, work_dir)
        pretrained = calibrated
    if protocol == "transfer":
        result = run_transfer_protocol(cfg, source_cfg, pretrained, work_dir, seeds, epochs, resume, progress,
                                       allow_config_change)
    elif protocol == "knn":
        result = run_knn_protocol(cfg, pretrained, work_dir)
    elif protocol == "fewshot":
        result = run_fewshot_protocol(cfg, pretrained, work_dir)
    else:
        result = run_trained_protocol(cfg, protocol, pretrained, work_dir, seeds, percent, epochs, resume, progress,
                                      allow_config_change)
    result["experiment"] = str(cfg.experiment)
    if calibrated is not None:
        result["pretrained"] = None
        result["random_init_batchnorm"] = f"statistics of the training clips ({calibrated})"
    if int(os.environ.get("RANK", "0")) == 0:
        atomic_write_json(work_dir / "metrics.json", result)
    return result


def run_probe_cli(config_path: PathLike, pretrained: Optional[str], protocol: str, overrides: Sequence[str] = (),
                  work_dir: Optional[PathLike] = None, percent: float = 10.0, seeds: int = 1,
                  epochs: Optional[int] = None, resume: bool = False, calibrate_random_bn: bool = True,
                  allow_config_change: bool = False, source_config: Optional[PathLike] = None,
                  source_overrides: Sequence[str] = ()) -> int:
    """``actionfusion probe CONFIG --pretrained W --protocol P [...]``: prints the metrics JSON."""
    cfg = load_config(config_path, list(overrides))
    if source_config is not None and protocol != "transfer":
        raise ConfigError("--source-config", f"is for --protocol transfer, not {protocol}")
    source_cfg = load_config(source_config, list(source_overrides)) if source_config is not None else None
    suffix = protocol + (f"{percent:g}pct" if protocol == "semi" else "") + ("" if pretrained else "_scratch")
    out = Path(work_dir) if work_dir is not None else default_work_dir(cfg).with_name(f"{cfg.experiment}_{suffix}")
    result = probe(cfg, pretrained, protocol, out, percent=percent, seeds=seeds, epochs=epochs, resume=resume,
                   calibrate_random_bn=calibrate_random_bn, allow_config_change=allow_config_change,
                   source_cfg=source_cfg)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(result, sort_keys=True))
    return 0
