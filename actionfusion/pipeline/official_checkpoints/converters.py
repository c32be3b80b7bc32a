"""The converters by name, and conversion checked against the model it is meant for.

:func:`convert_to_ours` renames an official state dict, builds our model with the flags that
restore the official behaviour (the number of classes read off the classifier), and checks that
the result has exactly that model's keys and shapes: nothing missing, nothing left over.
:func:`convert_objective_part` does the same for the keys that belong to a training objective
rather than to the model (MAMP's pretraining decoder), checked against that objective.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional

import torch
from torch import nn

from .aclnet_converters import ACLNET_CONVERTERS
from .cascadeformer_converters import CASCADEFORMER_CONVERTERS, CASCADEFORMER_OBJECTIVE_PARTS
from .epam_converters import EPAM_CONVERTERS
from .gcn_converters import GCN_CONVERTERS
from .key_rules import CheckpointConversionError, ObjectivePart, StateDictConverter, check_layout, layout_of
from .mamp_converters import MAMP_CONVERTERS, MAMP_OBJECTIVE_PARTS

CONVERTERS: Dict[str, StateDictConverter] = {**GCN_CONVERTERS, **MAMP_CONVERTERS, **EPAM_CONVERTERS,
                                             **CASCADEFORMER_CONVERTERS, **ACLNET_CONVERTERS}
# converter name -> the objective that owns the keys the converter discards (written beside the model's)
OBJECTIVE_PARTS: Dict[str, ObjectivePart] = {**MAMP_OBJECTIVE_PARTS, **CASCADEFORMER_OBJECTIVE_PARTS}


def list_converters() -> List[str]:
    """Names accepted by ``convert-checkpoint --from``."""
    return sorted(CONVERTERS)


def get_converter(name: str) -> StateDictConverter:
    if name not in CONVERTERS:
        raise CheckpointConversionError(f"no converter named {name!r}; known: {', '.join(list_converters())}")
    return CONVERTERS[name]


def infer_num_classes(converter: StateDictConverter, ours: Mapping[str, torch.Tensor], default: int = 60) -> int:
    """Classes of the classifier in a converted state dict (``default`` when it has no classifier)."""
    if converter.classifier_key is None:
        return default
    if converter.classifier_key not in ours:
        raise CheckpointConversionError(f"{converter.name}: no classifier {converter.classifier_key!r} to size the model")
    return int(ours[converter.classifier_key].shape[0])


def build_target(converter: StateDictConverter, num_classes: int = 60, **overrides: object) -> nn.Module:
    """Our model (or its sub-module ``converter.submodule``) that the converted weights fill.

    ``overrides``: constructor arguments beyond ``converter.model_kwargs`` (any that leave the keys alone).
    """
    from ...fusion import epam_net  # noqa: F401  (registers epam_net and the X-ShiftNets)
    from ...modalities.skeleton import models  # noqa: F401  (registers the skeleton models)
    from ...registry import create_model

    model = create_model(converter.model, num_classes=num_classes, **{**dict(converter.model_kwargs), **overrides})
    return model.get_submodule(converter.submodule) if converter.submodule else model


@dataclass
class ConversionReport:
    """What :func:`convert_to_ours` did."""

    converter: str
    model: str
    model_kwargs: Dict[str, object]
    submodule: str
    num_classes: int
    num_tensors: int
    discarded: List[str] = field(default_factory=list)


def convert_to_ours(
    name: str, official: Mapping[str, torch.Tensor], num_classes: Optional[int] = None
) -> "tuple[Dict[str, torch.Tensor], ConversionReport]":
    """Official state dict -> ours, checked key by key and shape by shape against our model."""
    converter = get_converter(name)
    ours = converter.to_ours(official)
    classes = infer_num_classes(converter, ours) if num_classes is None else num_classes
    expected = layout_of(build_target(converter, classes).state_dict())
    check_layout(converter.name, "official -> ours", ours, expected)
    report = ConversionReport(converter.name, converter.model, dict(converter.model_kwargs), converter.submodule,
                              classes, len(ours), converter.discarded_keys(official))
    return ours, report


@dataclass
class ObjectivePartReport:
    """What :func:`convert_objective_part` did."""

    objective: str
    objective_kwargs: Dict[str, object]
    num_tensors: int


def convert_objective_part(
    name: str, official: Mapping[str, torch.Tensor]
) -> "Optional[tuple[Dict[str, torch.Tensor], ObjectivePartReport]]":
    """The keys of an official checkpoint that converter ``name`` discards, as the state dict of the
    objective that owns them, checked key by key and shape by shape against that objective built
    with the sizes read off the checkpoint. None if the converter has no objective part."""
    part = OBJECTIVE_PARTS.get(name)
    if part is None:
        return None
    from ...objectives import create_objective

    converter = get_converter(name)
    ours = part.converter.to_ours({k: v for k, v in official.items() if converter.is_discarded(k)})
    kwargs = part.objective_kwargs(official)
    expected = layout_of(create_objective(part.objective, **kwargs).state_dict())
    check_layout(part.converter.name, "official -> ours", ours, expected)
    return ours, ObjectivePartReport(part.objective, kwargs, len(ours))
