"""SkeleAdaIN: restyle skeleton clips with another clip's per-channel statistics (HiCLR).

Adaptive instance normalisation on coordinates, after HiCLR's ``net/skeletonAdaIN.py``
(JHang2020/HiCLR; written anew): every (sample, body, channel) of the content clip is
normalised over T x V (``dims="TV"``) or over V per frame (``dims="V"``) and given the mean
and standard deviation of the same (body, channel[, frame]) of the style clip. The variance is
the unbiased one and ``eps`` is added to it before the square root, as upstream.

It is a batch augmentation on tensors (it needs a second clip), not a pipeline step. HiCLR
defines it but never calls it; :func:`skele_adain_batch` is the option this project offers.
"""

from __future__ import annotations

from typing import Literal, Optional

import torch

__all__ = ["skele_adain", "skele_adain_batch"]

AdaINDims = Literal["TV", "V"]

_REDUCE: dict[str, tuple[int, ...]] = {"TV": (2, 3), "V": (3,)}
"""Axes of [N, M, T, V, C] the statistics run over."""


def _mean_std(x: torch.Tensor, dims: tuple[int, ...], eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    return x.mean(dim=dims, keepdim=True), (x.var(dim=dims, keepdim=True, unbiased=True) + eps).sqrt()


def skele_adain(x: torch.Tensor, style: torch.Tensor, dims: AdaINDims = "TV", eps: float = 1e-5,
                keep_absent: bool = True) -> torch.Tensor:
    """``(x - mean_x) / std_x * std_style + mean_style`` per (sample, body, channel[, frame]).

    Args:
        x: content clips [N, M, T, V, C].
        style: style clips, the same shape.
        dims: ``"TV"``: statistics over all frames and joints of a body; ``"V"``: over the
            joints of each frame.
        eps: added to the variances.
        keep_absent: a body (``"TV"``) or body-frame (``"V"``) that is all zero in ``x``
            stays zero, and one that is all zero in ``style`` is left as in ``x``. Deviation:
            HiCLR restyles them all, which turns an absent content body into a constant one
            at the style's mean and collapses a content body onto its mean when the style's
            body is absent (std sqrt(eps)); ``keep_absent=False`` does the same.

    Returns:
        [N, M, T, V, C], the dtype of ``x`` (computed in float32 at least). Zero-padded joints
        inside a present body are part of its statistics and are restyled, as upstream.
    """
    if x.shape != style.shape or x.dim() != 5:
        raise ValueError(f"skele_adain needs x and style of one shape [N, M, T, V, C], got {tuple(x.shape)} "
                         f"and {tuple(style.shape)}")
    if dims not in _REDUCE:
        raise ValueError(f"skele_adain: dims must be 'TV' or 'V', not {dims!r}")
    reduce = _REDUCE[dims]
    dtype = torch.promote_types(x.dtype, torch.float32)
    content, style = x.to(dtype), style.to(dtype)
    content_mean, content_std = _mean_std(content, reduce, eps)
    style_mean, style_std = _mean_std(style, reduce, eps)
    out = (content - content_mean) / content_std * style_std + style_mean
    if keep_absent:
        groups = reduce + (4,)  # a body (or body-frame) is present if any joint coordinate is non-zero
        both = content.ne(0).any(dim=groups, keepdim=True) & style.ne(0).any(dim=groups, keepdim=True)
        out = torch.where(both, out, content)
    return out.to(x.dtype)


def skele_adain_batch(x: torch.Tensor, p: float, generator: Optional[torch.Generator] = None,
                      dims: AdaINDims = "TV", eps: float = 1e-5, keep_absent: bool = True) -> torch.Tensor:
    """Restyle each sample with probability ``p`` by :func:`skele_adain`, its style a clip
    drawn uniformly from the *other* samples of the batch.

    Args:
        x: [N, M, T, V, C]; with N = 1 there is no other sample and ``x`` comes back unchanged.
        p: the probability, per sample, of being restyled.
        generator: the source of the draws (on its own device, CPU if none; they then move
            to ``x.device``): the same seed gives the same batch.

    Returns:
        [N, M, T, V, C]; unchosen samples are exactly ``x``'s.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"skele_adain_batch: p must lie in [0, 1], not {p}")
    n = x.shape[0]
    if n < 2:
        return x.clone()
    device = generator.device if generator is not None else torch.device("cpu")
    chosen = torch.rand(n, generator=generator, device=device) < p
    partner = (torch.arange(n, device=device) + torch.randint(1, n, (n,), generator=generator, device=device)) % n
    chosen, partner = chosen.to(x.device), partner.to(x.device)
    restyled = skele_adain(x, x[partner], dims=dims, eps=eps, keep_absent=keep_absent)
    return torch.where(chosen.view(n, 1, 1, 1, 1), restyled, x)
