"""FineTec's five masking types, which build the completion network's training pairs from clean clips.

Reconstructed: FineTec's README names the types (random, pattern, prefix, suffix, in-between) but
not their form. Here each hides whole frames (every joint of a hidden frame), exactly
``lost_frames(T, ratio)`` of them (:func:`~.corruption.lost_frames`: ``min(T - 1, floor(ratio T + 0.5))``),
so that training masks and the benchmark's frame corruptions count frames the same way:

- ``random``: a uniformly random set of frames;
- ``pattern``: a regular pattern, the complement of T_hat evenly spaced kept frames (the centre of
  each of T_hat equal segments, as ``uniform_subsample``); no randomness;
- ``prefix``: the first frames;
- ``suffix``: the last frames;
- ``in_between``: one contiguous block that leaves at least one observed frame on each side when
  the clip allows it (start uniform in [1, T - lost - 1]).

:func:`sample_frame_masks` draws a type and a ratio per clip (both options of the objective).
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence

import torch

from ...errors import UnknownNameError, UsageError
from .corruption import lost_frames


def _frames(num_frames: int) -> torch.Tensor:
    return torch.ones(num_frames, dtype=torch.bool)


def mask_random(num_frames: int, ratio: float, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """bool [T]: True = observed; ``lost_frames(T, ratio)`` uniformly random frames hidden."""
    keep = _frames(num_frames)
    keep[torch.randperm(num_frames, generator=generator)[: lost_frames(num_frames, ratio)]] = False
    return keep


def mask_pattern(num_frames: int, ratio: float, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """bool [T]: only the centres of T_hat equal segments observed (``generator`` unused)."""
    kept = num_frames - lost_frames(num_frames, ratio)
    bounds = (torch.arange(kept + 1) * num_frames) // kept
    keep = torch.zeros(num_frames, dtype=torch.bool)
    keep[(bounds[:-1] + bounds[1:] - 1) // 2] = True
    return keep


def mask_prefix(num_frames: int, ratio: float, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """bool [T]: the first ``lost_frames(T, ratio)`` frames hidden."""
    keep = _frames(num_frames)
    keep[: lost_frames(num_frames, ratio)] = False
    return keep


def mask_suffix(num_frames: int, ratio: float, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """bool [T]: the last ``lost_frames(T, ratio)`` frames hidden."""
    keep = _frames(num_frames)
    keep[num_frames - lost_frames(num_frames, ratio):] = False
    return keep


def mask_in_between(num_frames: int, ratio: float, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """bool [T]: one contiguous block of ``lost_frames(T, ratio)`` frames hidden, inside the clip."""
    lost = lost_frames(num_frames, ratio)
    low, high = (1, num_frames - lost - 1) if num_frames - lost >= 2 else (0, num_frames - lost)
    start = int(torch.randint(low, high + 1, (1,), generator=generator))
    keep = _frames(num_frames)
    keep[start:start + lost] = False
    return keep


FrameMask = Callable[[int, float, Optional[torch.Generator]], torch.Tensor]
MASK_TYPES: Dict[str, FrameMask] = {
    "random": mask_random,
    "pattern": mask_pattern,
    "prefix": mask_prefix,
    "suffix": mask_suffix,
    "in_between": mask_in_between,
}
"""FineTec's masking types by name (module docstring)."""


def check_mask_types(types: Sequence[str], ratios: Sequence[float]) -> None:
    """Raises UnknownNameError / UsageError for unknown types, no types, or ratios outside [0, 1)."""
    unknown = [t for t in types if t not in MASK_TYPES]
    if unknown or not types:
        raise UnknownNameError(f"unknown masking types {unknown or list(types)}; known: {', '.join(MASK_TYPES)}")
    if not ratios or any(not 0.0 <= float(r) < 1.0 for r in ratios):
        raise UsageError(f"masking ratios must be a non-empty list in [0, 1), got {list(ratios)}")


def sample_frame_masks(batch: int, num_frames: int, types: Sequence[str] = tuple(MASK_TYPES),
                       ratios: Sequence[float] = (0.25, 0.5, 0.75),
                       generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """bool [batch, T]: one mask per clip, its type and ratio drawn uniformly from ``types`` and ``ratios``."""
    check_mask_types(types, ratios)
    kinds = torch.randint(len(types), (batch,), generator=generator)
    shares = torch.randint(len(ratios), (batch,), generator=generator)
    return torch.stack([MASK_TYPES[types[int(k)]](num_frames, float(ratios[int(r)]), generator)
                        for k, r in zip(kinds, shares)]) if batch else torch.ones(0, num_frames, dtype=torch.bool)


def sample_part_masks(batch: int, num_joints: int, prob: float, layout: str = "ntu25",
                      parts: Sequence[str] = ("left_arm", "right_arm", "legs"),
                      generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """bool [batch, V]: True = observed. An extension beyond FineTec's five types (off unless the
    objective's ``occlusion_prob`` > 0): with probability ``prob`` a clip loses, in every frame, the
    joints of a random non-empty subset of ``parts`` (each part kept or hidden with probability 1/2),
    RA-GCN's part lists (:mod:`.occlusion_parts`), the parts the benchmark's ``joint_occlusion`` hides."""
    from .layouts import get_layout
    from .occlusion_parts import occlusion_parts

    if not 0.0 <= float(prob) <= 1.0:
        raise UsageError(f"occlusion probability must lie in [0, 1], got {prob}")
    layout_joints = get_layout(layout).num_joints
    if layout_joints != num_joints:
        raise UsageError(f"part occlusion uses the {layout} layout ({layout_joints} joints), but "
                         f"the clips have {num_joints} joints: set the objective's occlusion_layout to the clips' "
                         "layout (for example objective.kwargs.occlusion_layout=coco17)")
    table = occlusion_parts(layout)
    unknown = [p for p in parts if p not in table]
    if unknown or not parts:
        raise UnknownNameError(f"unknown body parts {unknown or list(parts)} for {layout}; known: {', '.join(table)}")
    keep = torch.ones(batch, num_joints, dtype=torch.bool)
    occluded = torch.rand(batch, generator=generator) < float(prob)
    for i in occluded.nonzero().flatten().tolist():
        chosen = torch.rand(len(parts), generator=generator) < 0.5
        if not chosen.any():
            chosen[int(torch.randint(len(parts), (1,), generator=generator))] = True
        for part, hide in zip(parts, chosen.tolist()):
            if hide:
                keep[i, list(table[part])] = False
    return keep
