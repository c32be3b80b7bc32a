"""Released official checkpoints as pretrained tags: ``create_model("stgcnpp", pretrained="ntu60_xsub_joint")``.

:mod:`.tags` holds the table (URL, converter, hash status, published top-1 per tag; plain data);
:mod:`.weights` the cache, the download, the hash check and the layout-detecting loader (torch,
the converters), imported only when weights are asked for. The registry reaches both through the
hook :func:`register` installs (``pipeline``'s ``register_parts``), so the core module ``registry``
imports nothing of the pipeline.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from .tags import PRETRAINED_TAGS, STREAMS, PretrainedTag, model_tags

__all__ = ["PRETRAINED_TAGS", "STREAMS", "PretrainedTag", "load_pretrained_model", "model_tags", "register"]


def load_pretrained_model(name: str, pretrained: "str | bool | None", checkpoint_path: Optional[object],
                          kwargs: Mapping[str, Any]) -> Any:
    """:func:`.weights.load_pretrained_model`, imported on first use."""
    from .weights import load_pretrained_model as load

    return load(name, pretrained, checkpoint_path, kwargs)  # type: ignore[arg-type]


def register() -> None:
    """Give the registry the tag table and the loader (``create_model(pretrained=...)``,
    ``list_models(pretrained=True)``, ``list_pretrained()``)."""
    from ...registry import register_pretrained_weights

    register_pretrained_weights(model_tags, load_pretrained_model)
