"""HaLP's view augmentations: ``joint_corruption`` and the ``one_of`` step that draws one of
several sub-pipelines per clip (anshulbshah/HaLP ``feeder/augmentations.py``, written anew).

HaLP's views are a temporal crop-resize followed by, with equal odds, either a strong shear
("pose augmentation": ``shear`` with ``s: 1``) or a joint corruption::

    - {name: one_of, choices: [[{name: shear, s: 1.0}], [{name: joint_corruption, joints: 15}]]}
"""

from __future__ import annotations

from functools import partial
from typing import Any, Optional, Sequence

import numpy as np

from .layouts import JointLayout
from .transforms import StepFn, build_skeleton_pipeline, register_skeleton_step
from .transforms_geometry import _check


def joint_corruption(x: np.ndarray, joints: int = 15, zero_p: float = 0.5,
                     rng: "np.random.Generator | None" = None) -> np.ndarray:
    """Corrupt ``joints`` distinct joints of every body and frame: with probability ``zero_p`` they
    are zeroed, otherwise multiplied by one random matrix with entries U(-1, 1) (HaLP).

    The same joints are corrupted in every body and frame, as upstream. Missing (all-zero) joints
    stay zero either way.

    Args:
        x: float [M, T, V, 3].

    Returns:
        float32 [M, T, V, 3].
    """
    x = _check(x, 3)
    rng = np.random.default_rng() if rng is None else rng
    count = min(int(joints), x.shape[2])
    chosen = rng.choice(x.shape[2], size=count, replace=False)
    out = np.array(x, dtype=np.float32, copy=True)
    if rng.random() < zero_p:
        out[:, :, chosen] = 0.0
    else:
        matrix = rng.uniform(-1.0, 1.0, size=(3, 3))
        out[:, :, chosen, :3] = np.einsum("mtvd,dk->mtvk", out[:, :, chosen, :3], matrix)
    return out


def _call_joint_corruption(x: np.ndarray, rng: np.random.Generator, joints: int, zero_p: float) -> np.ndarray:
    return joint_corruption(x, joints, zero_p, rng)


def _identity(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return x


@register_skeleton_step("joint_corruption")
def _joint_corruption(layout: JointLayout, train: bool, joints: int = 15, zero_p: float = 0.5) -> StepFn:
    if int(joints) < 1 or not 0.0 <= float(zero_p) <= 1.0:
        raise ValueError(f"joint_corruption: joints must be >= 1 and zero_p in [0, 1], got {joints}, {zero_p}")
    return partial(_call_joint_corruption, joints=int(joints), zero_p=float(zero_p)) if train else _identity


def _call_one_of(x: np.ndarray, rng: np.random.Generator, pipelines: Sequence[Any], p: np.ndarray) -> np.ndarray:
    return pipelines[int(rng.choice(len(pipelines), p=p))](x, rng)


@register_skeleton_step("one_of")
def _one_of(layout: JointLayout, train: bool, choices: Sequence[Sequence[Any]] = (),
            p: Optional[Sequence[float]] = None) -> StepFn:
    """Apply one of ``choices`` (each a list of step specs), drawn per clip with probabilities ``p``
    (default uniform). Outside training the steps are built with ``train=False`` and the first
    choice runs, so evaluation stays deterministic."""
    if len(choices) < 1:
        raise ValueError("one_of needs at least one choice (a list of step specs)")
    probabilities = np.full(len(choices), 1.0 / len(choices)) if p is None else np.asarray(p, dtype=np.float64)
    if probabilities.shape != (len(choices),) or (probabilities < 0).any() or not np.isclose(probabilities.sum(), 1):
        raise ValueError(f"one_of: p must give one probability per choice, summing to 1; got {p!r}")
    pipelines = [build_skeleton_pipeline(list(choice), layout, train) for choice in choices]
    if not train:
        return pipelines[0]
    return partial(_call_one_of, pipelines=pipelines, p=probabilities)
