"""The contract every registered model keeps, as timm's models do.

An encoder declares

- ``input_keys``: the batch keys it reads (``("skeleton",)``, ``("rgb", "pose_heatmap")``); there is
  no default anywhere: a model without them is refused (:func:`declared_input_keys`);
- ``num_features``: D, the width of ``EncoderOutput.pooled``;
- ``num_classes``: the classifier's outputs, 0 when it has none;

and offers

- ``forward_features(x) -> EncoderOutput`` (:mod:`.features`);
- ``forward_head(feats, pre_logits=False)``: logits ``[B, num_classes]``; with ``pre_logits=True``
  the vector the classifier starts from (the head's input: ``feats.pooled`` [B, num_features]
  for every model whose head reads the pooled feature, i.e. all but MAMP's fine-tune head,
  whose input is its per-joint token vector);
- ``reset_classifier(num_classes)``: a fresh classifier (0 removes it);
- ``forward(x) = forward_head(forward_features(x))``.

``num_classes=0`` builds no classifier at all: no classifier parameters, ``forward`` returns
the pooled features ``[B, num_features]``, and ``reset_classifier(n)`` adds a head later (a probe
or a fine-tune on new classes). "The classifier" is whatever ``reset_classifier`` replaces; for
a plain model it is its head (dropout + Linear), for composite models all their heads (each
PSUMNet stream's, both EPAM-Net streams', and the Recognizer's fused head with every encoder's
own head). Heads any encoder can take are registered parts (:mod:`.heads`).

Unlike timm, the classifier's dropout is part of the classifier: ``pre_logits=True`` and
``num_classes=0`` give the feature before it, in training mode too.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from typing import Any, Optional, Tuple

import torch
from torch import nn

from .features import EncoderOutput

CONTRACT_METHODS: Tuple[str, ...] = ("forward_features", "forward_head", "reset_classifier")


def declared_input_keys(model: nn.Module) -> Tuple[str, ...]:
    """``model.input_keys`` as a tuple.

    Raises:
        TypeError: the model declares none (names its class and what to do).
    """
    keys = getattr(model, "input_keys", None)
    if keys is None or isinstance(keys, str) or not tuple(keys):
        raise TypeError(f"{type(model).__name__} declares no input_keys: give it the batch keys it reads, "
                        "e.g. input_keys = ('skeleton',)")
    return tuple(str(key) for key in keys)


def check_encoder(model: nn.Module) -> None:
    """Raise TypeError, naming the class, where ``model`` breaks the contract's declarations."""
    declared_input_keys(model)
    name = type(model).__name__
    width = getattr(model, "num_features", None)
    if not isinstance(width, int) or width < 1:
        raise TypeError(f"{name} declares no num_features (the width of EncoderOutput.pooled), got {width!r}")
    classes = getattr(model, "num_classes", None)
    if not isinstance(classes, int) or classes < 0:
        raise TypeError(f"{name} declares no num_classes (0 for no classifier), got {classes!r}")
    missing = [method for method in CONTRACT_METHODS if not callable(getattr(model, method, None))]
    if missing:
        raise TypeError(f"{name} lacks the encoder methods {missing}")


def _device_of(module: nn.Module) -> Optional[torch.device]:
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return None


class Encoder(nn.Module, metaclass=ABCMeta):
    """Base class of the registered models (see the module docstring).

    A subclass sets ``input_keys`` (on the class, or per instance in ``__init__``),
    ``num_features`` and ``num_classes``, implements ``forward_features`` and
    :meth:`build_classifier`, and keeps its classifier in the attribute named by
    ``classifier_name`` (``"head"``, or ``"fc"`` for models whose Linear sits on the model
    itself; None when ``num_classes`` is 0). The default :meth:`forward_head` calls that module
    as a registered head, ``head(feats, pre_logits=...)``; models with a bare Linear override it.
    """

    input_keys: Tuple[str, ...]
    num_features: int
    num_classes: int
    classifier_name: str = "head"

    @abstractmethod
    def forward_features(self, x: Any) -> EncoderOutput:
        """The model's input -> EncoderOutput (sequence, pooled [B, num_features], ...)."""

    def build_classifier(self, num_classes: int) -> nn.Module:
        """A freshly initialised classifier for ``num_classes`` (> 0) outputs.

        What :meth:`reset_classifier` installs; a model whose classifiers live in sub-models
        (EPAM-Net's two streams) overrides ``reset_classifier`` instead and never calls this.
        """
        raise TypeError(f"{type(self).__name__} defines no build_classifier: override it, or reset_classifier")

    def get_classifier(self) -> Optional[nn.Module]:
        """The classifier module, None without one (timm's ``get_classifier``)."""
        return getattr(self, self.classifier_name, None)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier by a fresh one for ``num_classes`` outputs (0: remove it).

        The new classifier goes to the device of the model's parameters.
        """
        num_classes = int(num_classes)
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, not {num_classes}")
        self.num_classes = num_classes
        classifier = self.build_classifier(num_classes) if num_classes > 0 else None
        device = _device_of(self)
        if classifier is not None and device is not None:
            classifier = classifier.to(device)
        setattr(self, self.classifier_name, classifier)

    def forward_head(self, feats: EncoderOutput, pre_logits: bool = False) -> torch.Tensor:
        """feats -> logits [B, num_classes]; the head's input (pooled [B, D]) with ``pre_logits`` or no classifier."""
        head = self.get_classifier()
        if head is None:
            return feats.pooled
        return head(feats, pre_logits=pre_logits)

    def forward(self, x: Any) -> torch.Tensor:
        """x (the tensor of ``input_keys[0]``, or a dict of them) -> logits, or pooled features without a classifier."""
        return self.forward_head(self.forward_features(x))
