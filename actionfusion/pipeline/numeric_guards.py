"""Stop on NaN and inf where they would otherwise spread silently, naming the samples involved.

A corrupt but finite input (a coordinate of 1e30) trains with finite losses while it turns a
BatchNorm's running variance into inf, which the saved weights then carry. So training checks the
loss before the backward pass and every normalisation statistic after the optimizer step, under AMP
too; evaluation checks its inputs. Each error is a :class:`~actionfusion.errors.NonFiniteError`
naming the batch's samples (from the dataset's ``names``, else their dataset indices).
"""

from __future__ import annotations

from typing import Any, List, Mapping, Sequence

import torch
from torch import nn
from torch.nn.modules.batchnorm import _NormBase

from ..errors import NonFiniteError

MAX_NAMED_SAMPLES = 8
"""An error lists at most this many sample names (then "and N more")."""


def _names_source(loader: Any) -> Sequence[Any] | None:
    dataset = getattr(loader, "dataset", None)
    while dataset is not None and not hasattr(dataset, "names") and hasattr(dataset, "dataset"):
        dataset = dataset.dataset  # Subset and wrappers
    return getattr(dataset, "names", None)


def batch_sample_names(loader: Any, batch: Mapping[str, Any], rows: torch.Tensor | None = None) -> List[str]:
    """The names of a batch's samples (``rows``: bool [B] to pick some), from ``batch["index"]``."""
    index = batch.get("index") if isinstance(batch, Mapping) else None
    if index is None:
        return []
    index = torch.as_tensor(index).reshape(-1)
    if rows is not None:
        index = index[rows.reshape(-1).cpu()]
    names = _names_source(loader)
    return [str(names[i]) if names is not None else f"#{i}" for i in index.tolist()]


def describe_samples(names: Sequence[str]) -> str:
    """``"samples S001..., S002..."`` (at most :data:`MAX_NAMED_SAMPLES`), or ``"an unnamed batch"``."""
    if not names:
        return "an unnamed batch"
    shown = ", ".join(names[:MAX_NAMED_SAMPLES])
    more = f" and {len(names) - MAX_NAMED_SAMPLES} more" if len(names) > MAX_NAMED_SAMPLES else ""
    return f"samples {shown}{more}"


def check_loss(loss: torch.Tensor, loader: Any, batch: Mapping[str, Any], where: str) -> None:
    """Raise :class:`NonFiniteError` if the scalar ``loss`` is NaN or inf."""
    if not bool(torch.isfinite(loss.detach()).all()):
        raise NonFiniteError(
            f"non-finite loss {float(loss.detach().float().reshape(-1)[0])} at {where}, batch of "
            f"{describe_samples(batch_sample_names(loader, batch))}: check these samples' inputs "
            "(`actionfusion store-info --verify`), or lower the learning rate"
        )


def norm_statistics(module: nn.Module) -> List[torch.Tensor]:
    """The running means and variances of every BatchNorm-style layer in ``module``."""
    stats = []
    for layer in module.modules():
        if isinstance(layer, _NormBase) and layer.track_running_stats:
            stats += [t for t in (layer.running_mean, layer.running_var) if t is not None]
    return stats


def check_norm_statistics(stats: Sequence[torch.Tensor], loader: Any, batch: Mapping[str, Any], where: str) -> None:
    """Raise :class:`NonFiniteError` if a running statistic holds NaN or inf.

    One concatenation and one reduction per step (a few kernels and one device sync, however many
    normalisation layers the model has), not a reduction per buffer."""
    if not stats:
        return
    if not bool(torch.isfinite(torch.cat([t.reshape(-1) for t in stats])).all()):
        raise NonFiniteError(
            f"a BatchNorm running statistic became non-finite at {where}, after the batch of "
            f"{describe_samples(batch_sample_names(loader, batch))}: an input holds an absurd value; "
            "check these samples (`actionfusion store-info --verify`)"
        )


def check_inputs(x: torch.Tensor | Mapping[str, torch.Tensor], loader: Any, batch: Mapping[str, Any],
                 clips: int = 1) -> None:
    """Raise :class:`NonFiniteError` naming the samples whose floating input holds NaN or inf.

    Args:
        x: [B * clips, ...] tensor or a dict of them (the model's inputs).
        clips: clips per sample folded into the first dimension.
    """
    named = x.items() if isinstance(x, Mapping) else [("model", x)]
    for key, tensor in named:
        if not torch.is_floating_point(tensor):
            continue
        bad = ~torch.isfinite(tensor.reshape(tensor.shape[0], -1)).all(dim=1)  # [B * clips]
        if bool(bad.any()):
            rows = bad.reshape(-1, clips).any(dim=1)
            raise NonFiniteError(
                f"non-finite {key} input in {describe_samples(batch_sample_names(loader, batch, rows))}: "
                "the store holds a damaged sample; check it with `actionfusion store-info --verify` "
                "or prepare it again"
            )
