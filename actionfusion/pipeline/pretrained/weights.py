"""Pretrained weights for ``create_model(name, pretrained=TAG | True, checkpoint_path=FILE)``.

A tag's file is looked for in the cache (:func:`cached_checkpoint_path`:
``$ACTIONFUSION_CACHE/pretrained/MODEL/TAG/FILE`` or ``~/.cache/actionfusion/...``), downloaded
there on first use (written atomically), verified against the tag's hash when one is known (a
mismatch removes the cached file and is refused), read safely (``torch.load(weights_only=True)``
or safetensors), converted from the official layout and loaded strictly: every key and shape
must match our model. Without network the error names the URL and the cache path where a copy
fetched by hand is picked up.

``checkpoint_path`` takes a local file instead; its layout is detected: ours (the model's own
state-dict keys, e.g. a ``convert-checkpoint`` output) or an official one (a converter of this
model maps every key). Given with a tag, the tag's hash (if known) and model arguments apply.

Classes: the model is built with the tag's (or the file's) number of classes; a ``num_classes``
passed by the caller that differs replaces the classifier by a fresh one after loading
(``reset_classifier``, as timm drops the head), 0 removing it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import torch
from torch import nn

from ...errors import CheckpointError, UnknownNameError, UsageError, WeightsUnavailableError, one_line
from ...io import cache_dir, download_url, file_sha256
from ..official_checkpoints import CONVERTERS, get_converter, load_official_checkpoint
from ..official_checkpoints.key_rules import CheckpointConversionError, StateDictConverter, check_layout, layout_of
from .tags import PRETRAINED_TAGS, PretrainedTag

log = logging.getLogger(__name__)


PathLike = Union[str, "os.PathLike[str]"]


# ---- the table ---------------------------------------------------------------------------------------
def get_tag(model: str, tag: "str | bool") -> PretrainedTag:
    """The tag ``tag`` of ``model`` (``True``: its default); :class:`UnknownNameError` listing the tags."""
    tags = PRETRAINED_TAGS.get(model, ())
    if not tags:
        with_tags = ", ".join(sorted(PRETRAINED_TAGS))
        raise UnknownNameError(f"model {model!r} has no pretrained tags (models with tags: {with_tags}); "
                               "pass checkpoint_path=FILE to load a file of your own")
    if tag is True:
        return tags[0]
    for entry in tags:
        if entry.tag == tag:
            return entry
    raise UnknownNameError(f"model {model!r} has no pretrained tag {tag!r}; its tags: "
                           f"{', '.join(t.tag for t in tags)}")


# ---- cache, download, hash ---------------------------------------------------------------------------
def cached_checkpoint_path(tag: PretrainedTag) -> Path:
    """Where ``tag``'s released file is cached: ``<cache>/pretrained/<model>/<tag>/<file name>``."""
    return cache_dir() / "pretrained" / tag.model / tag.tag / tag.file_name


def verify_hash(path: Path, tag: PretrainedTag, remove_on_mismatch: bool) -> None:
    """Refuse ``path`` (one line, :class:`CheckpointError`) if its sha256 does not match the tag's;
    the file is removed first when ``remove_on_mismatch`` (a cached copy). No-op for an unknown hash."""
    expected = tag.sha256 or tag.sha256_prefix
    if not expected:
        return
    got = file_sha256(path)
    if got.startswith(expected.lower()):
        return
    removed = ""
    if remove_on_mismatch:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        removed = "; the file was removed, download it again"
    raise CheckpointError(path, f"sha256 {got} does not match {tag.name}'s {expected} (damaged or not the "
                                f"released file {tag.url}){removed}")


def fetch_checkpoint(tag: PretrainedTag) -> Path:
    """The verified cached file of ``tag``, downloaded first if the cache lacks it."""
    path = cached_checkpoint_path(tag)
    if not path.is_file():
        log.info("downloading %s from %s to %s", tag.name, tag.url, path)
        try:
            download_url(tag.url, path)
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", None) or error
            raise WeightsUnavailableError(
                f"cannot download {tag.name} from {tag.url} ({one_line(reason, 160)}); without network, fetch "
                f"that file elsewhere and put it at {path}") from None
    verify_hash(path, tag, remove_on_mismatch=True)
    return path


# ---- layout detection and loading --------------------------------------------------------------------
def _safetensors_metadata(path: Path) -> Dict[str, str]:
    if path.suffix != ".safetensors":
        return {}
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return dict(handle.metadata() or {})


def _model_converters(model: str) -> List[StateDictConverter]:
    """The converters that fill the whole of ``model`` (not a sub-module of it)."""
    return [c for c in CONVERTERS.values() if c.model == model and not c.submodule]


def _classes_in(state: Mapping[str, torch.Tensor], classifier_keys: List[str]) -> Optional[int]:
    for key in classifier_keys:
        if key in state:
            return int(state[key].shape[0])
    return None


def _candidates(model: str, state: Mapping[str, torch.Tensor], tag: Optional[PretrainedTag],
                metadata: Mapping[str, str]) -> List[Tuple[str, Dict[str, torch.Tensor], Dict[str, object]]]:
    """(layout name, state dict in our names, model arguments it needs), ours first, then the
    official layouts (the tag's converter, or every converter of ``model``) that map every key."""
    ours_kwargs: Dict[str, object] = {}
    if metadata.get("model") == model and metadata.get("model_kwargs"):
        ours_kwargs = dict(json.loads(metadata["model_kwargs"]))  # written by convert-checkpoint
    out = [("ours", dict(state), ours_kwargs)]
    converters = [get_converter(tag.converter)] if tag is not None else _model_converters(model)
    for converter in converters:
        try:
            out.append((converter.name, converter.to_ours(state), dict(converter.model_kwargs)))
        except CheckpointConversionError:
            continue
    return out


def load_pretrained_model(
    name: str, pretrained: "str | bool | None", checkpoint_path: Optional[PathLike], kwargs: Mapping[str, Any]
) -> nn.Module:
    """Build model ``name`` with ``kwargs`` and load the weights of tag ``pretrained`` (``True``: the
    default tag; None/False: no tag) from ``checkpoint_path`` or the cache (see the module docstring)."""
    from ...registry import create_model

    tag = get_tag(name, pretrained) if pretrained else None
    if checkpoint_path is not None:
        path = Path(checkpoint_path)
        if tag is not None:
            verify_hash(path, tag, remove_on_mismatch=False)
    elif tag is not None:
        path = fetch_checkpoint(tag)
    else:
        raise UsageError(f"create_model({name!r}): give pretrained=TAG/True or checkpoint_path=FILE")
    checkpoint = load_official_checkpoint(path)
    metadata = _safetensors_metadata(path)
    user_kwargs = dict(kwargs)
    requested_classes = user_kwargs.pop("num_classes", None)
    classifier_keys = sorted({c.classifier_key for c in _model_converters(name) if c.classifier_key}
                             | {"head.fc.weight"})

    tried: List[str] = []
    for layout, state, layout_kwargs in _candidates(name, checkpoint.state_dict, tag, metadata):
        classes = tag.num_classes if tag is not None else _classes_in(state, classifier_keys)
        if classes is None:
            classes = int(metadata.get("num_classes", requested_classes if requested_classes is not None else 60))
        model_kwargs = {**layout_kwargs, **(dict(tag.model_kwargs) if tag else {}), **user_kwargs}
        model = create_model(name, num_classes=classes, **model_kwargs)
        try:
            check_layout(layout, "checkpoint -> model", state, layout_of(model.state_dict()))
        except CheckpointConversionError as error:
            tried.append(f"{layout}: {one_line(error, 300)}")
            continue
        model.load_state_dict(state, strict=True)
        if requested_classes is not None and int(requested_classes) != classes:
            model.reset_classifier(int(requested_classes))  # timm: a head of other classes starts afresh
        model.pretrained_cfg = {  # type: ignore[assignment]
            "name": tag.name if tag else name, "file": str(path), "layout": layout, "num_classes": classes,
            **({"url": tag.url, "top1": tag.top1, "benchmark": tag.benchmark, "input": tag.input,
                "source": tag.source} if tag else {}),
        }
        log.info("loaded %s (%s layout) into %s", path, layout, name)
        return model
    raise CheckpointError(path, f"fits neither our {name} nor an official layout converting to it ("
                                + " | ".join(tried) + ")")
