"""One registry from names to builders: encoders, fusions, heads and objectives.

Like timm's ``@register_model`` / ``create_model``: a builder registers under a name and a
kind, a config names it, and :func:`create_model` builds it with keyword arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, TypeVar

KINDS = ("model", "fusion", "head", "objective")

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class RegistryEntry:
    """A registered builder."""

    name: str
    kind: str
    builder: Callable[..., Any]
    modality: Optional[str]
    doc: str


_REGISTRY: Dict[str, Dict[str, RegistryEntry]] = {kind: {} for kind in KINDS}


def register(kind: str, name: Optional[str] = None, *, modality: Optional[str] = None) -> Callable[[F], F]:
    """Decorator: register a class or function under ``name`` (default: its ``__name__``)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")

    def decorate(builder: F) -> F:
        key = name or builder.__name__
        if key in _REGISTRY[kind]:
            raise ValueError(f"a {kind} named {key!r} is already registered")
        doc = (builder.__doc__ or "").strip().split("\n", 1)[0]
        _REGISTRY[kind][key] = RegistryEntry(key, kind, builder, modality, doc)
        return builder

    return decorate


def register_model(name: Optional[str] = None, *, modality: Optional[str] = None) -> Callable[[F], F]:
    """Register an encoder/recognition model (``create_model`` builds it)."""
    return register("model", name, modality=modality)


BUILTIN_MODEL_MODULES: tuple[str, ...] = (
    "actionfusion.modalities.skeleton.models",
    "actionfusion.modalities.rgb.xshiftnet",
    "actionfusion.modalities.rgb.frame_encoder",
    "actionfusion.modalities.depth.depth_encoder",
    "actionfusion.modalities.pointcloud.point_encoder",
    "actionfusion.fusion.epam_net",
    "actionfusion.fusion.recognizer",
)
"""Modules whose import registers the built-in models (imported on the first registry lookup,
so torch and the model code load only when a model is asked for)."""


def _ensure_builtin_models_imported() -> None:
    # Importing the model modules runs their @register_model decorators.
    import importlib

    for module in BUILTIN_MODEL_MODULES:
        importlib.import_module(module)


def get_entry(kind: str, name: str) -> RegistryEntry:
    """The entry registered as ``name``; KeyError listing what exists otherwise."""
    if kind == "model":
        _ensure_builtin_models_imported()
    try:
        return _REGISTRY[kind][name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY[kind])) or "none"
        raise KeyError(f"no {kind} named {name!r}; registered: {known}") from None


def create(kind: str, name: str, **kwargs: Any) -> Any:
    """Build a registered ``kind`` by name with keyword arguments."""
    return get_entry(kind, name).builder(**kwargs)


def create_model(name: str, **kwargs: Any) -> Any:
    """Build a registered model, e.g. ``create_model("ctrgcn", num_classes=60)``."""
    return create("model", name, **kwargs)


def list_models(modality: Optional[str] = None) -> List[str]:
    """Names of the registered models, optionally only those of one modality."""
    _ensure_builtin_models_imported()
    return sorted(n for n, e in _REGISTRY["model"].items() if modality is None or e.modality == modality)


def list_registered(kind: str) -> List[str]:
    """Names registered under ``kind``."""
    if kind == "model":
        _ensure_builtin_models_imported()
    return sorted(_REGISTRY[kind])
