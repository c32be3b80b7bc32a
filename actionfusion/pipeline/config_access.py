"""Read a config section whether it is a typed dataclass (``ExperimentConfig``) or a mapping."""

from __future__ import annotations

from typing import Any, Mapping

_REQUIRED = object()


def config_value(section: Any, key: str, default: Any = _REQUIRED) -> Any:
    """``section.key`` (attribute) or ``section[key]`` (mapping); ``default`` when absent.

    Raises KeyError naming the key when it is absent and no default was given.
    """
    if isinstance(section, Mapping):
        if key in section:
            return section[key]
    elif hasattr(section, key):
        return getattr(section, key)
    if default is _REQUIRED:
        raise KeyError(f"config key {key!r} is required")
    return default
