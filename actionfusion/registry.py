"""One registry from names to builders: encoders, fusions, heads and objectives.

Like timm's ``@register_model`` / ``create_model``: a builder registers under a name and a
kind, a config names it, and :func:`create_model` builds it with keyword arguments.

Registration happens where the parts live. A package that owns registered parts defines
``register_parts()`` in its ``__init__.py``; the function imports the package's own modules, whose
decorators register them (a package may instead import them at its top, as ``objectives`` does).
On its first lookup the registry imports every top-level package of ``actionfusion`` and calls
the hook of those that have one, so core names no module: a new model module is added to its
own package's ``register_parts`` and nowhere else. The imports sit in a function rather than at
package import so that ``import actionfusion`` and the data-preparation workers, which import the
modalities' light helpers, do not load torch.

Pretrained weights (timm's ``pretrained=`` and ``name.tag``) arrive the same way: the pipeline's
hook hands :func:`register_pretrained_weights` its tag table and its loader (download, hash
check, conversion from the official layouts), so core never imports the pipeline.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, TypeVar, Union

from .errors import UnknownNameError, UsageError

KINDS = ("model", "fusion", "head", "objective")

REGISTER_HOOK = "register_parts"
"""Name of the function a package's ``__init__`` defines to import (and so register) its parts."""

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
_packages_registered = False

TagLister = Callable[[str], List[str]]
"""model name -> its pretrained tags, the default first ([] for none)."""
WeightsLoader = Callable[[str, Union[str, bool, None], Optional[Any], Mapping[str, Any]], Any]
"""(model name, pretrained tag / True / None, checkpoint path or None, builder kwargs) -> the loaded model."""
_pretrained_weights: Optional[Tuple[TagLister, WeightsLoader]] = None


def register_pretrained_weights(list_tags: TagLister, load: WeightsLoader) -> None:
    """Install the pretrained-weights provider (the pipeline's ``register_parts`` calls this)."""
    global _pretrained_weights
    _pretrained_weights = (list_tags, load)


def _weights_provider() -> Tuple[TagLister, WeightsLoader]:
    register_packages()
    if _pretrained_weights is None:
        raise UsageError("no pretrained-weights provider is registered (actionfusion.pipeline did not install one)")
    return _pretrained_weights


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


def register_head(name: Optional[str] = None) -> Callable[[F], F]:
    """Register a classifier head, built as ``create_head(name, in_features=D, num_classes=C, **options)``."""
    return register("head", name)


def register_packages() -> None:
    """Import the top-level packages of ``actionfusion`` and call their ``register_parts()`` hooks.

    Runs once (the first lookup calls it); a failed import is raised, and the next lookup tries again.
    """
    global _packages_registered
    if _packages_registered:
        return
    _packages_registered = True  # set first: a hook that looks a name up must not recurse
    try:
        root = importlib.import_module(__package__)
        for info in pkgutil.iter_modules(root.__path__, prefix=f"{__package__}."):
            if info.ispkg:
                hook = getattr(importlib.import_module(info.name), REGISTER_HOOK, None)
                if callable(hook):
                    hook()
    except BaseException:
        _packages_registered = False
        raise


def get_entry(kind: str, name: str) -> RegistryEntry:
    """The entry registered as ``name``; KeyError listing what exists otherwise."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    register_packages()
    try:
        return _REGISTRY[kind][name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY[kind])) or "none"
        raise UnknownNameError(f"no {kind} named {name!r}; registered: {known}") from None


_UNEXPECTED_KEYWORD = re.compile(r"unexpected keyword argument '(\w+)'")


def check_keywords(kind: str, name: str, builder: Callable[..., Any], kwargs: Mapping[str, Any]) -> None:
    """Raise :class:`UnknownNameError` listing the accepted keywords if ``builder`` takes none of some."""
    try:
        parameters = inspect.signature(builder).parameters.values()
    except (TypeError, ValueError):  # no signature to read: let the call decide
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return
    accepted = [p.name for p in parameters if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                         inspect.Parameter.KEYWORD_ONLY)]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise UnknownNameError(f"{kind} {name!r} takes no keyword {', '.join(map(repr, unknown))}; "
                               f"it takes: {', '.join(accepted) or 'none'}", keyword=True)


def create(kind: str, name: str, **kwargs: Any) -> Any:
    """Build a registered ``kind`` by name with keyword arguments.

    Raises:
        UnknownNameError (a KeyError): no such name, or a keyword the builder does not take.
    """
    builder = get_entry(kind, name).builder
    check_keywords(kind, name, builder, kwargs)
    try:
        return builder(**kwargs)
    except TypeError as error:  # a builder that forwards **kwargs to a class that does not take one
        match = _UNEXPECTED_KEYWORD.search(str(error))
        if match is None or match.group(1) not in kwargs:
            raise
        raise UnknownNameError(f"{kind} {name!r} takes no keyword {match.group(1)!r} ({error})", keyword=True) \
            from None


def create_model(
    name: str, pretrained: Union[str, bool] = False, checkpoint_path: Optional[Any] = None, **kwargs: Any
) -> Any:
    """Build a registered model, e.g. ``create_model("ctrgcn", num_classes=60)``.

    ``num_classes=0`` builds the encoder without a classifier (``forward`` returns the pooled
    features); see :mod:`actionfusion.modalities.encoder_contract`.

    Pretrained weights, as timm: ``pretrained="ntu60_xsub_joint"`` (a tag of the model,
    ``list_pretrained()``), ``True`` (its first tag) or ``name="stgcnpp.ntu60_xsub_joint",
    pretrained=True``; the released file is downloaded to the cache on first use, verified,
    converted and loaded. ``checkpoint_path``: a local file instead (our layout or an official one,
    detected). The model takes the tag's classes; another ``num_classes`` replaces the classifier
    by a fresh one (0 removes it). The loader is the pipeline's, installed through the registry
    hook (:func:`register_pretrained_weights`) because core imports nothing of the pipeline.

    Raises:
        UnknownNameError: no such model, keyword or tag (the message lists the model's tags).
        TypeError: the built model declares no ``input_keys`` (the batch keys it reads).
    """
    if "." in name:
        name, tag = name.split(".", 1)
        if isinstance(pretrained, str) and pretrained != tag:
            raise UsageError(f"create_model({name}.{tag!r}) names tag {tag!r} but pretrained={pretrained!r}")
        pretrained = tag if pretrained else False
    if pretrained or checkpoint_path is not None:
        get_entry("model", name)  # an unknown model reads as one, before any tag or file is looked at
        return _weights_provider()[1](name, pretrained or None, checkpoint_path, kwargs)
    model = create("model", name, **kwargs)
    if getattr(model, "input_keys", None) is None:
        raise TypeError(f"model {name!r} built a {type(model).__name__}, which declares no input_keys: "
                        "give the class the batch keys it reads, e.g. input_keys = ('skeleton',)")
    return model


def create_head(name: str, **kwargs: Any) -> Any:
    """Build a registered head, e.g. ``create_head("bn_linear", in_features=256, num_classes=60)``."""
    return create("head", name, **kwargs)


def list_models(
    filter: Union[str, Sequence[str]] = "",
    modality: Optional[str] = None,
    pretrained: bool = False,
    include_tags: Optional[bool] = None,
) -> List[str]:
    """Names of the registered models, sorted, like timm's ``list_models``.

    Args:
        filter: a wildcard pattern (``fnmatch``, case-sensitive: ``"*gcn*"``, ``"psumnet_?*"``) or
            several (a name matching any is kept); empty keeps every name. With tags, an entry
            ``name.tag`` is kept when the pattern matches it or its model name.
        modality: keep only the models registered for this modality (``"skeleton"``, ``"rgb"``,
            ``"depth"``, ``"points"``, ``"pose"``, ``"multimodal"``).
        pretrained: keep only the models with at least one pretrained tag.
        include_tags: list ``name.tag`` per tag instead of the names (default: ``pretrained``, as timm).
    """
    register_packages()
    patterns = [filter] if isinstance(filter, str) else list(filter)
    patterns = [p for p in patterns if p]
    include_tags = pretrained if include_tags is None else include_tags
    list_tags = _weights_provider()[0] if (pretrained or include_tags) else None
    out = []
    for name, entry in _REGISTRY["model"].items():
        if modality is not None and entry.modality != modality:
            continue
        tags = list_tags(name) if list_tags is not None else []
        if pretrained and not tags:
            continue
        shown = [f"{name}.{tag}" for tag in tags] if include_tags and tags else [name]
        out += [s for s in shown
                if not patterns or any(fnmatchcase(s, p) or fnmatchcase(name, p) for p in patterns)]
    return sorted(out)


def list_pretrained(filter: Union[str, Sequence[str]] = "") -> List[str]:
    """The pretrained ``name.tag`` entries, sorted (timm's ``list_pretrained``): ``list_models(filter,
    pretrained=True)``; ``create_model(entry, pretrained=True)`` loads one."""
    return list_models(filter, pretrained=True, include_tags=True)


def list_registered(kind: str) -> List[str]:
    """Names registered under ``kind``."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    register_packages()
    return sorted(_REGISTRY[kind])
