"""Optimizers and learning-rate schedules built from a config's ``optim`` and ``schedule``.

The schedule is a closed form of the global iteration: ``lr(step) = base_lr * factor(step)``
(linear warm-up per iteration, then step decay or cosine). Nothing about it has to be
saved in a checkpoint: :func:`set_schedule_step` puts any optimizer at the learning rate
of any step, which is what makes a resumed run identical to an uninterrupted one.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Sequence

import torch
from torch import nn

from .config_access import config_value

OPTIMIZERS = ("sgd", "adamw", "adamw_layer_decay")
SCHEDULES = ("step", "cosine", "constant")


def _no_decay_parameter(name: str, param: torch.Tensor) -> bool:
    """True for biases and normalisation scales/shifts (every 1-D parameter), the usual exemption."""
    return param.ndim <= 1 or name.endswith(".bias")


def lr_multiplier(name: str, lr_mult: Mapping[str, float]) -> float:
    """The multiplier of the longest prefix of ``lr_mult`` (module paths) that owns parameter ``name``; 1 otherwise."""
    best, value = -1, 1.0
    for prefix, mult in lr_mult.items():
        if (name == prefix or name.startswith(prefix + ".") or prefix == "") and len(prefix) > best:
            best, value = len(prefix), float(mult)
    return value


def parameter_groups(model: nn.Module, weight_decay: float, decay_norm_and_bias: bool = True,
                     lr: float | None = None, lr_mult: Mapping[str, float] | None = None) -> List[Dict[str, Any]]:
    """Trainable parameters as optimizer groups.

    With ``decay_norm_and_bias=False`` the 1-D parameters (biases, BatchNorm/LayerNorm
    affine, learnable scalars) get weight decay 0 in their own groups. ``lr_mult`` {module path:
    multiplier} (e.g. ``{"fusion": 0.1}``) gives the parameters under each path the learning rate
    ``lr * multiplier`` (the longest matching path wins); the schedule scales every group alike.
    """
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    lr_mult = dict(lr_mult or {})
    unknown = [prefix for prefix in lr_mult
               if prefix and not any(n == prefix or n.startswith(prefix + ".") for n, _ in params)]
    if unknown:
        raise ValueError(f"optim.lr_mult names {unknown}, which own no trainable parameter of the model")
    groups: Dict[tuple, Dict[str, Any]] = {}
    for name, param in params:
        decay = weight_decay if decay_norm_and_bias or not _no_decay_parameter(name, param) else 0.0
        mult = lr_multiplier(name, lr_mult)
        group = groups.setdefault((mult, decay), {"params": [], "weight_decay": decay})
        if lr is not None and lr_mult:
            group["lr"] = lr * mult
        group["params"].append(param)
    return list(groups.values())


def build_optimizer(model: nn.Module, optim_cfg: Any) -> torch.optim.Optimizer:
    """Build the optimizer named by ``optim_cfg.name``.

    ``optim_cfg`` (a dataclass or mapping) has ``name`` ("sgd" | "adamw" | "adamw_layer_decay"),
    ``lr``, ``momentum``, ``nesterov``, ``weight_decay``, ``layer_decay``, ``betas`` and
    optionally ``decay_norm_and_bias`` (default True: decay every parameter, as CTR-GCN does)
    and ``lr_mult`` ({module path: lr multiplier}, see :func:`parameter_groups`).
    """
    name = str(config_value(optim_cfg, "name", "sgd")).lower()
    lr = float(config_value(optim_cfg, "lr"))
    weight_decay = float(config_value(optim_cfg, "weight_decay", 0.0) or 0.0)
    decay_norm_and_bias = bool(config_value(optim_cfg, "decay_norm_and_bias", True))
    betas = tuple(float(b) for b in (config_value(optim_cfg, "betas", None) or (0.9, 0.999)))
    lr_mult = dict(config_value(optim_cfg, "lr_mult", None) or {})
    if lr_mult and name == "adamw_layer_decay":
        raise ValueError("optim.lr_mult and optim.layer_decay do not combine; use one of them")
    if name == "sgd":
        momentum = float(config_value(optim_cfg, "momentum", 0.0) or 0.0)
        nesterov = bool(config_value(optim_cfg, "nesterov", False))
        groups = parameter_groups(model, weight_decay, decay_norm_and_bias, lr, lr_mult)
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0)
    if name == "adamw":
        groups = parameter_groups(model, weight_decay, decay_norm_and_bias, lr, lr_mult)
        return torch.optim.AdamW(groups, lr=lr, betas=betas)  # type: ignore[arg-type]
    if name == "adamw_layer_decay":
        layer_decay = config_value(optim_cfg, "layer_decay", None)
        if layer_decay is None:
            raise ValueError("optim.name 'adamw_layer_decay' needs optim.layer_decay (e.g. 0.8)")
        # Imported here: the helper lives with the skeleton transformer (MAMP) that defines the layers.
        from ..modalities.skeleton.layer_decay import layer_decay_param_groups

        # Each group's lr is base lr * its layer's scale; the schedule multiplies every group alike.
        groups = layer_decay_param_groups(model, base_lr=lr, weight_decay=weight_decay, layer_decay=float(layer_decay))
        return torch.optim.AdamW(groups, lr=lr, betas=betas)  # type: ignore[arg-type]
    raise ValueError(f"optim.name must be one of {OPTIMIZERS}, not {name!r}")


def lr_factor(
    step: int,
    iters_per_epoch: int,
    *,
    name: str = "step",
    epochs: int,
    warmup_epochs: float = 0,
    milestones: Sequence[int] = (),
    gamma: float = 0.1,
    min_lr_ratio: float = 0.0,
) -> float:
    """Multiplier of the base learning rate at global iteration ``step`` (0-based).

    Warm-up: ``(step + 1) / warmup_iters`` for the first ``warmup_epochs * iters_per_epoch``
    iterations. Then "step": ``gamma ** (number of milestones <= epoch)`` with
    ``epoch = step // iters_per_epoch``; "cosine": from 1 down to ``min_lr_ratio`` over the
    remaining iterations (half a cosine period); "constant": 1.
    """
    warmup_iters = int(round(warmup_epochs * iters_per_epoch))
    if step < warmup_iters:
        return (step + 1) / warmup_iters
    if name == "step":
        epoch = step // iters_per_epoch
        return float(gamma ** sum(1 for m in milestones if epoch >= int(m)))
    if name == "cosine":
        total = max(epochs * iters_per_epoch - warmup_iters, 1)
        progress = min((step - warmup_iters) / total, 1.0)
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if name == "constant":
        return 1.0
    raise ValueError(f"schedule.name must be one of {SCHEDULES}, not {name!r}")


class ClosedFormLR(torch.optim.lr_scheduler.LambdaLR):
    """A ``LambdaLR`` over iterations whose multiplier is :func:`lr_factor`.

    Call ``step()`` after every optimizer step. ``set_step(n)`` jumps to iteration ``n``
    (used on resume instead of a saved scheduler state).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, iters_per_epoch: int, schedule: Mapping[str, Any]) -> None:
        self.iters_per_epoch = int(iters_per_epoch)
        self.schedule = dict(schedule)
        super().__init__(optimizer, lambda step: lr_factor(step, self.iters_per_epoch, **self.schedule))

    def set_step(self, step: int) -> None:
        """Put every group at the learning rate of global iteration ``step``."""
        self.last_epoch = int(step)
        for group, base_lr, factor in zip(self.optimizer.param_groups, self.base_lrs, self.lr_lambdas):
            group["lr"] = base_lr * factor(self.last_epoch)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]


def build_scheduler(optimizer: torch.optim.Optimizer, schedule_cfg: Any, iters_per_epoch: int) -> ClosedFormLR:
    """The per-iteration schedule of ``schedule_cfg`` (``name``, ``epochs``, ``warmup_epochs``,
    ``milestones``, ``gamma``, ``min_lr``) for an epoch of ``iters_per_epoch`` optimizer steps.

    ``min_lr`` is absolute for the largest group lr (the configured ``optim.lr``); groups with a
    smaller lr (layer decay) keep the same ratio.
    """
    if iters_per_epoch < 1:
        raise ValueError(f"iters_per_epoch must be >= 1, got {iters_per_epoch}")
    name = str(config_value(schedule_cfg, "name", "step")).lower()
    if name not in SCHEDULES:
        raise ValueError(f"schedule.name must be one of {SCHEDULES}, not {name!r}")
    base_lr = max(float(g.get("initial_lr", g["lr"])) for g in optimizer.param_groups)
    min_lr = float(config_value(schedule_cfg, "min_lr", 0.0) or 0.0)
    schedule = {
        "name": name,
        "epochs": int(config_value(schedule_cfg, "epochs")),
        "warmup_epochs": float(config_value(schedule_cfg, "warmup_epochs", 0) or 0),
        "milestones": tuple(int(m) for m in (config_value(schedule_cfg, "milestones", None) or ())),
        "gamma": float(config_value(schedule_cfg, "gamma", 0.1)),
        "min_lr_ratio": min_lr / base_lr if base_lr > 0 else 0.0,
    }
    return ClosedFormLR(optimizer, iters_per_epoch, schedule)
