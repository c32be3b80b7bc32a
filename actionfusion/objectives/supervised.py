"""Supervised cross-entropy: the objective of ``actionfusion train``.

The model is called as ``forward_features`` then ``forward_head`` (one call of the objective, so
DistributedDataParallel sees one forward); every entry of ``feats.aux`` whose key starts with
``loss_`` is added to the classification loss. Models with per-stream logits (PSUMNet) get each
stream's cross-entropy, weighted by ``model.stream_loss_weights`` (default 1).
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Tuple

import torch
from torch import nn

from .base import Objective, ObjectiveOutput, register_objective

AUX_LOSS_PREFIX = "loss_"


def features_and_logits(model: nn.Module, x: Any) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], Dict[str, torch.Tensor]]:
    """``(logits [N, classes], {aux loss name: scalar tensor}, {stream: logits [N, classes]})`` of ``model(x)``.

    Models without ``forward_features``/``forward_head`` are called directly (no aux losses).
    The stream dict is empty unless the model has ``forward_stream_logits``; the prediction is then
    ``model.combine_stream_logits(feats, streams)`` when the model has it, else the streams' sum.
    """
    if not (hasattr(model, "forward_features") and hasattr(model, "forward_head")):
        return model(x), {}, {}
    feats = model.forward_features(x)
    streams: Dict[str, torch.Tensor] = {}
    if hasattr(model, "forward_stream_logits"):
        streams = dict(model.forward_stream_logits(feats))
        if hasattr(model, "combine_stream_logits"):
            logits = model.combine_stream_logits(feats, streams)
        else:
            logits = torch.stack(list(streams.values())).sum(dim=0)
    else:
        logits = model.forward_head(feats)
    aux = getattr(feats, "aux", None) or {}
    losses = {k: v for k, v in aux.items() if k.startswith(AUX_LOSS_PREFIX) and isinstance(v, torch.Tensor)}
    return logits, losses, streams


@register_objective("cross_entropy")
class CrossEntropy(Objective):
    """Cross-entropy on ``batch["label"]`` (with label smoothing), plus the model's ``loss_*`` terms.

    Returns losses ``{aux name: value}`` (the model's own terms) and metrics ``{"top1"}``
    (accuracy of the batch's predictions).
    """

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.criterion = nn.CrossEntropyLoss(label_smoothing=float(label_smoothing))

    def forward(self, model: nn.Module, batch: Mapping[str, Any]) -> ObjectiveOutput:
        """batch: model inputs + ``label`` int64 [B] -> loss, aux losses, top1."""
        x = self.inputs(model, batch)
        device = self.device_of(model)
        y = batch["label"].to(device, non_blocking=True)
        logits, aux, streams = features_and_logits(model, x)
        if streams:
            weights = getattr(model, "stream_loss_weights", None) or {}
            classification = sum(weights.get(name, 1.0) * self.criterion(value.float(), y)
                                 for name, value in streams.items())
        else:
            classification = self.criterion(logits.float(), y)
        loss = classification + sum((value.float() for value in aux.values()), torch.zeros((), device=device))
        top1 = (logits.detach().argmax(dim=1) == y).float().mean()
        return ObjectiveOutput(loss=loss, losses=dict(aux), metrics={"top1": top1}, batch_size=int(y.shape[0]))
