"""Rename rules between an official implementation's state-dict keys and ours, both ways.

A :class:`KeyRule` pairs two key templates, e.g. ``"l{b}.gcn1.PA"`` (official) and
``"blocks.{b}.gcn.A"`` (ours). Placeholders: ``{b}`` a block index (official = ours +
``block_offset``), ``{k}`` / ``{j}`` other integers kept as they are, ``{rest}`` any non-empty
suffix. A rule may also reshape the tensor (e.g. a 1x1 conv classifier ``[K, C, 1, 1]`` that is a
Linear ``[K, C]`` in ours), with the inverse reshape for the way back.

A :class:`StateDictConverter` tries its rules in order (the first match wins) in either direction.
A key that no rule matches raises :class:`UnmappedKeysError`; two keys landing on one name, or a
converted dict that misses or adds keys relative to the target model, raise
:class:`LayoutMismatchError`. Official keys with no counterpart in the model are listed in
``discard`` and dropped by name, never silently; where they belong to a training objective
instead (MAMP's pretraining decoder), an :class:`ObjectivePart` converts them to its state dict.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from ...errors import ActionFusionError

TensorMap = Callable[[torch.Tensor], torch.Tensor]
# key -> (shape, dtype name), the form of the committed layout fixtures
Layout = Mapping[str, Tuple[Tuple[int, ...], str]]

_PLACEHOLDER = re.compile(r"\{(b|k|j|rest)\}")
_LIST_LIMIT = 40


def _list_keys(keys: Sequence[str]) -> str:
    shown = ", ".join(keys[:_LIST_LIMIT])
    more = f" ... and {len(keys) - _LIST_LIMIT} more" if len(keys) > _LIST_LIMIT else ""
    return f"[{shown}{more}]"


class CheckpointConversionError(ActionFusionError, ValueError):
    """A state dict does not have the layout a converter expects."""


class UnmappedKeysError(CheckpointConversionError):
    """Keys that no rule of the converter maps (``keys``: every one of them)."""

    def __init__(self, converter: str, direction: str, keys: Sequence[str]) -> None:
        self.converter, self.direction, self.keys = converter, direction, list(keys)
        super().__init__(
            f"{converter} ({direction}): {len(self.keys)} key(s) match no rule: {_list_keys(self.keys)}"
        )


class LayoutMismatchError(CheckpointConversionError):
    """A converted state dict differs from the target layout: keys missing, left over or reshaped."""

    def __init__(self, converter: str, direction: str, missing: Sequence[str] = (),
                 leftover: Sequence[str] = (), wrong_shape: Sequence[str] = (),
                 duplicates: Sequence[str] = ()) -> None:
        self.converter, self.direction = converter, direction
        self.missing, self.leftover = list(missing), list(leftover)
        self.wrong_shape, self.duplicates = list(wrong_shape), list(duplicates)
        parts = [f"{label} {_list_keys(keys)}" for label, keys in (
            ("missing", self.missing), ("left over", self.leftover),
            ("wrong shape", self.wrong_shape), ("mapped twice", self.duplicates)) if keys]
        super().__init__(f"{converter} ({direction}): " + "; ".join(parts))


def _template_regex(template: str) -> "re.Pattern[str]":
    pattern, last = "", 0
    for match in _PLACEHOLDER.finditer(template):
        pattern += re.escape(template[last:match.start()])
        name = match.group(1)
        pattern += f"(?P<{name}>.+)" if name == "rest" else f"(?P<{name}>\\d+)"
        last = match.end()
    return re.compile(pattern + re.escape(template[last:]) + r"\Z")


@dataclass(frozen=True)
class KeyRule:
    """``official`` <-> ``ours`` key templates (see the module docstring).

    ``to_ours`` / ``to_official``: tensor maps applied on the way (they must invert each other).
    """

    official: str
    ours: str
    block_offset: int = 0
    to_ours: Optional[TensorMap] = None
    to_official: Optional[TensorMap] = None

    def __post_init__(self) -> None:
        if set(_PLACEHOLDER.findall(self.official)) != set(_PLACEHOLDER.findall(self.ours)):
            raise ValueError(f"templates {self.official!r} and {self.ours!r} use different placeholders")
        if (self.to_ours is None) != (self.to_official is None):
            raise ValueError(f"rule {self.official!r}: give both tensor maps or neither")

    def apply(self, key: str, tensor: torch.Tensor, to_ours: bool) -> Optional[Tuple[str, torch.Tensor]]:
        """(new key, new tensor) if this rule matches ``key`` in that direction, else None."""
        source, target = (self.official, self.ours) if to_ours else (self.ours, self.official)
        match = _template_regex(source).match(key)
        if match is None:
            return None
        values = match.groupdict()
        if "b" in values:
            block = int(values["b"]) + (-self.block_offset if to_ours else self.block_offset)
            if block < 0:
                return None
            values["b"] = str(block)
        fn = self.to_ours if to_ours else self.to_official
        return target.format(**values), (fn(tensor) if fn is not None else tensor)


@dataclass(frozen=True)
class StateDictConverter:
    """One official layout and how it maps onto one of our models (or a sub-module of it).

    ``model`` / ``model_kwargs``: the registry name and the flags that restore the official
    behaviour; ``submodule``: the part of that model the official state dict fills ("" = all);
    ``classifier_key``: our key whose first dimension is the number of classes (None: no head).
    """

    name: str
    source: str
    model: str
    rules: Tuple[KeyRule, ...]
    model_kwargs: Mapping[str, object] = field(default_factory=dict)
    submodule: str = ""
    classifier_key: Optional[str] = None
    discard: Tuple[str, ...] = ()  # official key regexes with no counterpart in ours
    note: str = ""

    def is_discarded(self, key: str) -> bool:
        return any(re.match(pattern + r"\Z", key) for pattern in self.discard)

    def _convert(self, state: Mapping[str, torch.Tensor], to_ours: bool) -> Dict[str, torch.Tensor]:
        direction = "official -> ours" if to_ours else "ours -> official"
        out: Dict[str, torch.Tensor] = {}
        unmapped: List[str] = []
        duplicates: List[str] = []
        for key, tensor in state.items():
            if to_ours and self.is_discarded(key):
                continue
            for rule in self.rules:
                mapped = rule.apply(key, tensor, to_ours)
                if mapped is not None:
                    break
            else:
                unmapped.append(key)
                continue
            if mapped[0] in out:
                duplicates.append(mapped[0])
            out[mapped[0]] = mapped[1]
        if unmapped:
            raise UnmappedKeysError(self.name, direction, unmapped)
        if duplicates:
            raise LayoutMismatchError(self.name, direction, duplicates=duplicates)
        return out

    def to_ours(self, official: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Official state dict -> our names (``discard`` keys dropped). Raises on unmapped keys."""
        return self._convert(official, to_ours=True)

    def to_official(self, ours: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Our state dict -> the official names. Raises on unmapped keys."""
        return self._convert(ours, to_ours=False)

    def discarded_keys(self, official: Mapping[str, object]) -> List[str]:
        """The official keys :meth:`to_ours` drops by name (no counterpart in our model)."""
        return [key for key in official if self.is_discarded(key)]


@dataclass(frozen=True)
class ObjectivePart:
    """The part of an official checkpoint that belongs to a training objective, not to the model
    (MAMP's pretraining decoder): the keys the model's converter discards by name.

    ``objective``: the registered objective (``create_objective``); ``converter``: official keys
    <-> the objective's state-dict keys; ``objective_kwargs``: the objective's size arguments read
    off the official state dict.
    """

    objective: str
    converter: StateDictConverter
    objective_kwargs: Callable[[Mapping[str, torch.Tensor]], Dict[str, object]]


def layout_of(state: Mapping[str, torch.Tensor]) -> Dict[str, Tuple[Tuple[int, ...], str]]:
    """{key: (shape, dtype name)} of a state dict, e.g. ``((64, 3, 1, 1), "float32")``."""
    return {key: (tuple(t.shape), str(t.dtype).replace("torch.", "")) for key, t in state.items()}


def check_layout(converter: str, direction: str, state: Mapping[str, torch.Tensor], expected: Layout,
                 check_dtype: bool = False) -> None:
    """Raise :class:`LayoutMismatchError` unless ``state`` has exactly ``expected``'s keys and shapes."""
    got = layout_of(state)
    missing = [k for k in expected if k not in got]
    leftover = [k for k in got if k not in expected]
    wrong = [f"{k}: {got[k][0]} != {tuple(expected[k][0])}" for k in expected
             if k in got and tuple(got[k][0]) != tuple(expected[k][0])]
    if check_dtype:
        wrong += [f"{k}: {got[k][1]} != {expected[k][1]}" for k in expected
                  if k in got and got[k][1] != expected[k][1]]
    if missing or leftover or wrong:
        raise LayoutMismatchError(converter, direction, missing, leftover, wrong)
