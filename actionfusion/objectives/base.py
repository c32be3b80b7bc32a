"""The contract every training objective keeps, and its registry helpers.

An objective is a registered :class:`torch.nn.Module` that turns one batch into named losses and
metrics. It owns whatever the method needs beside the model (a decoder, a momentum encoder, a
queue, prototypes): those are its own parameters and buffers, checkpointed and resumed with it::

    objective = create_objective("cross_entropy", label_smoothing=0.1)
    out = objective(model, batch)     # model: the bare model (no DDP / wrappers), batch: the loader's dict
    out.loss.backward()               # out.loss: the scalar that is optimised
    out.losses                        # {name: scalar tensor} its named components (logged)
    out.metrics                       # {name: scalar tensor} per-batch means (e.g. "top1"), logged
    out.batch_size                    # B, the number of samples the means are over

Batches are dicts: modality keys (``"skeleton"`` [B, M, T, V, C], ``"rgb"`` ...), ``"label"``
int64 [B], ``"index"`` int64 [B] (dataset indices), and, with ``data.views: N > 1``, ``"views"``:
a list of N dicts of modality tensors, each view drawn with its own transform pipeline and
random stream (view 0 is also what the top-level modality keys hold). Tensors arrive on the CPU;
:meth:`Objective.inputs` moves what the model reads to the device.

The engine calls ``objective(model, batch)`` inside one ``forward`` of a module that holds both,
so DistributedDataParallel synchronises the gradients of the model and of the objective alike.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Optional, TypeVar

import torch
from torch import nn

from ..registry import create, list_registered, register

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class ObjectiveOutput:
    """What an objective returns for one batch.

    Attributes:
        loss: scalar tensor, the value the optimizer minimises.
        losses: {name: scalar tensor} named components of ``loss`` (logged as ``train/<name>``).
        metrics: {name: scalar tensor} per-batch means over the batch's samples (``train/<name>``).
        batch_size: B, the samples the means are over (epoch means weight batches by it).
    """

    loss: torch.Tensor
    losses: Dict[str, torch.Tensor] = field(default_factory=dict)
    metrics: Dict[str, torch.Tensor] = field(default_factory=dict)
    batch_size: int = 0


class Objective(nn.Module, metaclass=ABCMeta):
    """Base class of objectives: ``forward(model, batch) -> ObjectiveOutput``.

    Attributes a subclass may set:
        needs_labels: False for self-supervised objectives (the engine then never reads ``label``).
        num_views: how many views of each sample the objective reads (``data.views`` must be at
            least this).

    An objective that rebalances by class frequency defines ``observe_training_labels(labels)``:
    the engine calls it once with the training split's labels, before training and on resume.
    """

    needs_labels: bool = True
    num_views: int = 1

    @abstractmethod
    def forward(self, model: nn.Module, batch: Mapping[str, Any]) -> ObjectiveOutput:
        """One batch -> the loss to optimise, its named parts and per-batch metrics."""

    epoch: int = 0

    def attach(self, model: nn.Module) -> None:
        """Called with the built, initialised model before the optimizer is made and a checkpoint
        resumed: an objective that keeps parts shaped like the model (a momentum encoder) builds
        them here, and one that trains only part of it freezes the rest (``requires_grad``). Must
        be idempotent (it may be called twice with the same model). Default: nothing."""

    def start_epoch(self, epoch: int) -> None:
        """Called before each training epoch (0-based, resumed epochs too): schedules that switch
        on at an epoch (nearest-neighbour mining, hallucinated positives) read ``self.epoch``."""
        self.epoch = int(epoch)

    @staticmethod
    def device_of(model: nn.Module) -> torch.device:
        """The device of the model's first parameter or buffer (CPU for a model without either)."""
        for tensor in model.parameters():
            return tensor.device
        for tensor in model.buffers():
            return tensor.device
        return torch.device("cpu")

    @staticmethod
    def inputs(model: nn.Module, batch: Mapping[str, Any], view: Optional[int] = None) -> Any:
        """What ``model`` reads (its ``input_keys``) from ``batch`` (or from ``batch["views"][view]``),
        on the model's device: one tensor for one key, a dict for several.

        Raises:
            KeyError: the batch lacks a key the model reads.
            TypeError: the model declares no ``input_keys``.
        """
        keys = getattr(model, "input_keys", None)
        if keys is None:
            raise TypeError(f"{type(model).__name__} declares no input_keys: every encoder names the batch keys it reads")
        source = batch if view is None else batch["views"][view]
        missing = [key for key in keys if key not in source]
        if missing:
            raise KeyError(f"the model reads {missing} but the batch holds {sorted(source)}: add them to data.modalities")
        device = Objective.device_of(model)
        tensors = {key: source[key].to(device, non_blocking=True) for key in keys}
        return tensors[keys[0]] if len(keys) == 1 else tensors


def attach_objective(objective: nn.Module, model: nn.Module) -> None:
    """``objective.attach(model)`` where the objective defines it (an :class:`Objective` always does;
    a plain ``nn.Module`` used as an objective may not)."""
    hook = getattr(objective, "attach", None)
    if callable(hook):
        hook(model)


def observe_training_labels(objective: nn.Module, dataset: Any) -> None:
    """``objective.observe_training_labels(dataset.labels)`` where the objective defines the hook
    (objectives that rebalance by class frequency, e.g. BRL) and the dataset has ``labels``.

    Raises:
        TypeError: the objective asks for the labels but the dataset has none.
    """
    hook = getattr(objective, "observe_training_labels", None)
    if not callable(hook):
        return
    labels = getattr(dataset, "labels", None)
    if labels is None:
        raise TypeError(f"{type(objective).__name__} reads the training labels, but {type(dataset).__name__} "
                        "has no `labels` attribute")
    hook(list(labels))


def start_objective_epoch(objective: nn.Module, epoch: int) -> None:
    """``objective.start_epoch(epoch)`` where the objective defines it."""
    hook = getattr(objective, "start_epoch", None)
    if callable(hook):
        hook(epoch)


def register_objective(name: Optional[str] = None) -> Callable[[F], F]:
    """Register an objective class or builder under ``name`` (``objective: {name: ...}`` in a config)."""
    return register("objective", name)


def create_objective(name: str, **kwargs: Any) -> Objective:
    """Build the objective registered as ``name`` with keyword arguments."""
    import actionfusion.objectives  # noqa: F401  (registers the built-in objectives)

    return create("objective", name, **kwargs)


def list_objectives() -> list:
    """Names of the registered objectives."""
    import actionfusion.objectives  # noqa: F401

    return list_registered("objective")
