"""HaLP's geometry: prototypes on the unit hypersphere and positives hallucinated between them
(Shah et al., CVPR 2023; anshulbshah/HaLP ``moco/generator.py``).

Spherical k-means (:func:`spherical_kmeans`) turns the newest queue keys into prototypes. For an
anchor key ``k`` with nearest prototype ``p0``, a positive is a point on the great circle from
``k`` towards another prototype ``p_sel``, stopped before it becomes closer to ``p_sel`` than to
``p0``::

    omega = arccos(k . p_sel),   K = (1 - p_sel . p0) / (k . (p0 - p_sel))
    t_max = atan2(sin omega, K + cos omega) / omega       # where h . p0 = h . p_sel
    h(t)  = [sin((1 - t) omega) k + sin(t omega) p_sel] / sin omega,   t = (1 - u) t_max, u ~ U(0, lambda)

and ``h`` is kept only if its nearest prototype is still ``p0``.

Deviations from upstream, on purpose: ``t_max`` uses ``atan2`` where upstream takes ``atan``,
which returns a negative ``t_max`` (a point extrapolated away from ``p_sel``) whenever
``K + cos omega < 0``; the k-means centroid is the normalised mean of its members (Dhillon and
Modha's spherical k-means) where upstream runs geomstats' Riemannian k-means (Fréchet mean by
gradient steps); both use k-means++ seeding and a 1e-3 tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

EPS = 1e-8


def kmeans_plus_plus(points: torch.Tensor, k: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """k-means++ seeding with the cosine distance ``1 - x . c``: points [N, D] unit -> [k, D] seeds."""
    n = points.shape[0]
    first = int(torch.randint(n, (1,), generator=generator, device="cpu"))
    seeds = [points[first]]
    distance = (1.0 - points @ seeds[0]).clamp_min(0.0)
    for _ in range(1, k):
        weights = distance.double().cpu()
        index = (int(torch.multinomial(weights / weights.sum(), 1, generator=generator))
                 if float(weights.sum()) > 0 else int(torch.randint(n, (1,), generator=generator)))
        seeds.append(points[index])
        distance = torch.minimum(distance, (1.0 - points @ seeds[-1]).clamp_min(0.0))
    return torch.stack(seeds)


@torch.no_grad()
def spherical_kmeans(points: torch.Tensor, k: int, tol: float = 1e-3, max_iter: int = 100,
                     generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Cluster unit vectors points [N, D] (N >= k) into k unit centroids [k, D] by cosine similarity.

    Lloyd iterations: assign each point to its most similar centroid, move each centroid to the
    normalised mean of its points (an empty cluster keeps its centroid), stop when no centroid
    moves by more than ``tol`` (L2) or after ``max_iter`` iterations.
    """
    if points.ndim != 2 or points.shape[0] < k:
        raise ValueError(f"spherical_kmeans needs [N >= k={k}, D] points, got {tuple(points.shape)}")
    points = F.normalize(points.float(), dim=1)
    centroids = kmeans_plus_plus(points, k, generator)
    for _ in range(max_iter):
        assign = (points @ centroids.t()).argmax(dim=1)
        sums = torch.zeros_like(centroids).index_add_(0, assign, points)
        counts = torch.bincount(assign, minlength=k).unsqueeze(1)
        moved = torch.where(counts > 0, F.normalize(sums, dim=1), centroids)
        shift = (moved - centroids).norm(dim=1).max()
        centroids = moved
        if float(shift) <= tol:
            break
    return centroids


@dataclass
class HallucinatedPositives:
    """Positives for B anchors, N draws each.

    Attributes:
        points: [B, N, D] unit vectors h.
        keep: [B, N] bool, h's nearest prototype is the anchor's nearest (p0).
        t: [B, N] the interpolation used; t_max: [B, N] its bound.
        nearest: [B] index of p0; selected: [B, N] index of p_sel.
    """

    points: torch.Tensor
    keep: torch.Tensor
    t: torch.Tensor
    t_max: torch.Tensor
    nearest: torch.Tensor
    selected: torch.Tensor


@torch.no_grad()
def hallucinate_positives(anchors: torch.Tensor, prototypes: torch.Tensor, num_positives: int = 100,
                          candidates: int = 20, skip_closest: int = 1, hardness: float = 0.8,
                          generator: Optional[torch.Generator] = None) -> HallucinatedPositives:
    """HaLP's positives for anchors [B, D] (unit) from prototypes [P, D] (unit).

    ``p_sel`` is drawn uniformly (with replacement, ``num_positives`` times per anchor) among the
    ``candidates`` prototypes that follow the ``skip_closest`` most similar ones (fewer when there
    are fewer prototypes). ``hardness`` is lambda: ``t = (1 - u) t_max``, ``u ~ U(0, lambda)``.
    """
    if prototypes.shape[0] < skip_closest + 1:
        raise ValueError(f"need more than {skip_closest} prototypes, got {prototypes.shape[0]}")
    anchors = anchors.float()
    prototypes = prototypes.float().to(anchors.device)
    similarity = anchors @ prototypes.t()                                  # [B, P]
    order = similarity.argsort(dim=1, descending=True)
    nearest = order[:, 0]
    pool = order[:, skip_closest:skip_closest + candidates]                # [B, C]
    draw = torch.randint(pool.shape[1], (anchors.shape[0], num_positives), generator=generator,
                         device="cpu").to(anchors.device)
    selected = pool.gather(1, draw)                                        # [B, N]
    p_sel = prototypes[selected]                                           # [B, N, D]
    p0 = prototypes[nearest].unsqueeze(1)                                  # [B, 1, D]
    k = anchors.unsqueeze(1)                                               # [B, 1, D]
    cos_omega = (k * p_sel).sum(-1).clamp(-1.0, 1.0)
    omega = torch.arccos(cos_omega).clamp_min(EPS)
    big_k = (1.0 - (p_sel * p0).sum(-1)) / ((k * (p0 - p_sel)).sum(-1)).clamp_min(EPS)
    t_max = torch.atan2(torch.sin(omega), big_k + cos_omega) / omega
    u = torch.rand(t_max.shape, generator=generator, device="cpu").to(anchors.device) * hardness
    t = (1.0 - u) * t_max
    sin_omega = torch.sin(omega).clamp_min(EPS)
    h = (torch.sin((1.0 - t) * omega).unsqueeze(-1) * k + torch.sin(t * omega).unsqueeze(-1) * p_sel) / sin_omega.unsqueeze(-1)
    h = F.normalize(h, dim=-1)  # exact on the sphere already; this removes rounding drift
    keep = (h @ prototypes.t()).argmax(dim=-1) == nearest.unsqueeze(1)
    return HallucinatedPositives(h, keep, t, t_max, nearest, selected)
