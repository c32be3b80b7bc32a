"""Config sources: YAML files with ``_base_`` inheritance and dotted ``KEY=VALUE`` overrides.

This module turns them into one raw nested dict; :mod:`.config` checks it and builds the
typed :class:`~actionfusion.pipeline.config.ExperimentConfig`.

- A config is a YAML path or a config name (``synthetic/ctrgcn``), resolved by :mod:`.config_names`.
- ``_base_: ../base/skeleton.yaml`` (or a list of paths, merged in order), relative to the
  file's folder: the file's own values override the bases'. Mappings merge key by key; every
  other value, lists included, is replaced whole. Cycles are an error.
- Overrides ``"data.clip_len=32"``, ``"schedule.milestones=[2, 3]"``,
  ``"model.kwargs.drop_rate=0.1"``: the value is parsed with ``yaml.safe_load``; missing
  intermediate mappings are created (the key check happens when the dataclasses are built).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Union

import yaml

from ..errors import ActionFusionError
from ..io import load_yaml

PathLike = Union[str, "os.PathLike[str]"]

BASE_KEY = "_base_"
"""The key naming the file(s) a config inherits from, relative to the config's folder."""


class ConfigError(ActionFusionError, ValueError):
    """A config key is unknown, mistyped or out of range.

    Attributes:
        key: the full dotted key (``"data.clip_len"``), or the override text for a malformed override.
        message: what was wrong.
    """

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}")


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``update`` over ``base``: mappings merge recursively, every other value replaces."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_with_bases(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    path = path.resolve()
    if path in chain:
        cycle = " -> ".join(str(p) for p in chain + (path,))
        raise ConfigError(BASE_KEY, f"inheritance cycle: {cycle}")
    try:
        raw = load_yaml(path)
    except FileNotFoundError:
        where = f" (named by {chain[-1]})" if chain else ""
        raise ConfigError(BASE_KEY if chain else "config", f"config file {path} not found{where}") from None
    except yaml.YAMLError as err:
        raise ConfigError("config", f"{path} is not valid YAML: {err}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("config", f"{path}: the top level must be a mapping, not {type(raw).__name__}")
    bases = raw.pop(BASE_KEY, None)
    if bases is None:
        return raw
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(BASE_KEY, f"{path}: must be a path or a list of paths")
    merged: dict[str, Any] = {}
    for base in bases:
        merged = _merge(merged, _read_with_bases(path.parent / base, chain + (path,)))
    return _merge(merged, raw)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"data.clip_len=32"`` -> (["data", "clip_len"], 32); the value is parsed with ``yaml.safe_load``.

    Raises:
        ConfigError: no ``=``, an empty key part, or a value that is not valid YAML.
    """
    key, sep, value_text = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(text, "an override must look like KEY=VALUE, e.g. data.clip_len=32")
    parts = key.split(".")
    if any(not part for part in parts):
        raise ConfigError(key, "empty component in the dotted key")
    try:
        value = yaml.safe_load(value_text) if value_text.strip() else None
    except yaml.YAMLError as err:
        raise ConfigError(key, f"value {value_text!r} is not valid YAML: {err}") from None
    return parts, value


def apply_overrides(raw: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """A copy of the nested dict ``raw`` with each ``KEY=VALUE`` override set (keys checked later)."""
    out = _merge({}, raw)
    for text in overrides:
        parts, value = parse_override(text)
        node = out
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = {}
            elif not isinstance(child, dict):
                prefix = ".".join(parts[: depth + 1])
                raise ConfigError(".".join(parts), f"{prefix} holds {child!r}, not a mapping")
            else:
                child = dict(child)
            node[part] = child
            node = child
        node[parts[-1]] = value
    return out


def load_config_dict(path: PathLike, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """The raw nested dict of a config file or name (see :mod:`.config_names`): bases merged, overrides
    applied, nothing checked."""
    from .config_names import resolve_config_path  # it imports ConfigError from here

    path = resolve_config_path(path)
    raw = _read_with_bases(path, ())
    raw.setdefault("experiment", path.stem)
    return apply_overrides(raw, overrides)


