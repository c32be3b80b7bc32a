"""FineTec's dynamic/static decomposition (reconstructed) and its targeted perturbation.

FineTec splits the body into five semantic regions (head/torso, two arms, two legs), each into a
dynamic and a static subgroup by motion variance, and perturbs each subgroup to obtain S_dyna and
S_stat. The paper gives neither the joint lists, the threshold nor the perturbation; the choices
here, each an option:

- regions: :func:`~.body_parts.body_parts`' partition with head and torso merged (NTU-25: 9 / 5 /
  5 / 3 / 3 joints; COCO-17: 9 / 2 / 2 / 2 / 2; BlazePose-33: 15 / 5 / 5 / 4 / 4; NW-UCLA-20: 8 / 3 /
  3 / 3 / 3);
- motion variance of a joint: the variance over time of its position, summed over coordinates and
  averaged over the persons present (an absent person, all zeros, is left out);
- threshold (``threshold``): a joint is dynamic when its variance exceeds its region's
  ``"median"`` (default; about half of each region is dynamic) or ``"mean"`` (the few fast joints);
- perturbation: Gaussian noise of standard deviation ``sigma`` times the clip's body scale (RMS
  distance of the joints to their frame centroid) on the chosen subgroup's joints in every frame.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch

from .body_parts import body_parts

RegionList = Tuple[Tuple[str, Tuple[int, ...]], ...]


def finetec_regions(layout: str = "ntu25") -> RegionList:
    """The five regions ``(name, joint ids)``: head_torso, left_arm, right_arm, left_leg, right_leg."""
    parts = dict(body_parts(layout))
    return (("head_torso", tuple(sorted(parts["head"] + parts["torso"]))),) + tuple(
        (name, parts[name]) for name in ("left_arm", "right_arm", "left_leg", "right_leg"))


def motion_variance(x: torch.Tensor) -> torch.Tensor:
    """x [B, M, T, V, C] -> [B, V]: each joint's variance over time, summed over C, averaged over
    the persons present."""
    present = (x != 0).flatten(2).any(-1).to(x.dtype)  # [B, M]
    variance = x.var(dim=2, unbiased=False).sum(-1)  # [B, M, V]
    return (variance * present[..., None]).sum(1) / present.sum(1).clamp(min=1)[:, None]


def dynamic_joints(x: torch.Tensor, layout: str = "ntu25", threshold: str = "median") -> torch.Tensor:
    """bool [B, V]: the dynamic joints of each clip x [B, M, T, V, C] (module docstring); the rest
    are static."""
    if threshold not in ("median", "mean"):
        raise ValueError(f"threshold must be 'median' or 'mean', not {threshold!r}")
    variance = motion_variance(x)
    dynamic = torch.zeros_like(variance, dtype=torch.bool)
    for _, joints in finetec_regions(layout):
        ids = torch.tensor(joints, device=x.device)
        region = variance[:, ids]
        cut = region.median(dim=1, keepdim=True).values if threshold == "median" else region.mean(1, keepdim=True)
        dynamic[:, ids] = region > cut
    return dynamic


def perturb_joints(x: torch.Tensor, joints: torch.Tensor, sigma: float = 0.05,
                   generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """x [B, M, T, V, C] plus N(0, (sigma * body scale)^2) on the joints where ``joints`` [B, V] is
    True (zero joints of absent persons stay zero)."""
    present = (x != 0).any(-1, keepdim=True)  # [B, M, T, V, 1]
    centroid = (x * present).sum(3, keepdim=True) / present.sum(3, keepdim=True).clamp(min=1)
    squared = ((x - centroid) ** 2).sum(-1, keepdim=True) * present
    scale = (squared.flatten(1).sum(1) / present.flatten(1).sum(1).clamp(min=1)).sqrt()  # [B]
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    where = joints[:, None, None, :, None] & present
    return x + noise * (sigma * scale)[:, None, None, None, None] * where


def dynamic_static_views(x: torch.Tensor, layout: str = "ntu25", sigma: float = 0.05, threshold: str = "median",
                         generator: Optional[torch.Generator] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """(S_dyna, S_stat) [B, M, T, V, C]: x with its dynamic, respectively static, joints perturbed."""
    dynamic = dynamic_joints(x, layout, threshold)
    return (perturb_joints(x, dynamic, sigma, generator), perturb_joints(x, ~dynamic, sigma, generator))
