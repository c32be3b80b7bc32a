"""Composable skeleton transform pipelines built from data (a list of step specs).

A spec is a dict ``{"name": <step>, **options}`` (or a ``(name, options)`` pair), e.g.::

    build_skeleton_pipeline([
        {"name": "valid_crop_resize", "out_len": 64, "p_interval": [0.5, 1]},
        {"name": "random_rotation", "max_angle": 0.3},
        {"name": "stream", "stream": "bone"},
    ], layout="ntu25", train=True)

Steps (:data:`STEP_NAMES`) and their options:

- ``center``: ``joint`` (default: the layout's body root, :func:`.layouts.root_joints`: NTU
  SpineMid = 1, the hip midpoint for ``coco17`` / ``blazepose33``; an id or a list of ids).
  ``pre_normalize_3d``: ``align_spine``, ``align_center``.
- ``valid_crop_resize``: ``out_len``, ``p_interval`` (train; default [0.5, 1]),
  ``test_p_interval`` (evaluation; default [0.95], CTR-GCN's test crop), ``min_len`` (64).
- ``random_rotation``: ``max_angle`` (0.3 rad); ``random_scale``: ``scale`` (0.1);
  ``mirror_flip``: ``p`` (0.5, the probability of flipping); ``temporal_flip``: ``p`` (0.5; BRL's
  optional time reversal). These four are augmentations: they run only when ``train`` is true.
- ``stream``: ``stream`` (one of :data:`.streams.STREAM_NAMES`); ``unified_12ch``: no option.
- The contrastive family's augmentations (AimCLR / HiCLR / STARS / MS-CLR), in
  :mod:`.transforms_contrastive`; each runs only when ``train`` is true:
  ``shear``: ``s`` (0.5); ``temporal_crop_pad``: ``padding_ratio`` (6);
  ``spatial_flip``: ``p`` (0.5); ``random_rotate_axis``: ``max_degrees`` (30), ``axis``
  ("main", "x", "y" or "z"), ``minor_degrees`` (0); ``gaussian_noise``: ``std`` (0.01),
  ``p`` (0.5), ``mean`` (0); ``gaussian_blur``: ``kernel`` (15), ``sigma`` ([0.1, 2.0]),
  ``p`` (0.5); ``axis_mask``: ``p`` (0.5); ``joint_mask``: ``ratio`` (0.1), ``fill`` (0.0;
  ``nan`` marks the masked joints for an objective's learnable mask token).
- HaLP's, in :mod:`.transforms_choice`: ``joint_corruption``: ``joints`` (15), ``zero_p`` (0.5);
  ``one_of``: ``choices`` (lists of step specs), ``p`` (uniform): one sub-pipeline per clip.

More steps register with :func:`register_skeleton_step`; :func:`step_names` (and
:data:`STEP_NAMES`, rebound at every registration) lists them. The transforms themselves live in
:mod:`.transforms_geometry`, :mod:`.transforms_contrastive` and :mod:`.streams`; the first and
the last are re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Mapping, Sequence, Union

import numpy as np

from ...errors import UsageError
from .layouts import JointLayout, get_layout, root_joints
from .streams import STREAM_NAMES, make_stream, to_bone, to_motion, to_skip, unified_12ch
from .transforms_geometry import (center, mirror_flip, pre_normalize_3d, random_rotation, random_scale,
                                  resize_time, temporal_flip, valid_crop_resize, valid_length)

__all__ = [
    "STEP_NAMES", "StepBuilder", "StepFn", "register_skeleton_step", "step_names", "SkeletonTransform",
    "build_skeleton_pipeline", "center", "pre_normalize_3d",
    "valid_crop_resize", "valid_length", "resize_time", "random_rotation", "random_scale", "mirror_flip",
    "temporal_flip", "to_bone", "to_motion", "to_skip", "make_stream", "unified_12ch", "STREAM_NAMES",
]

StepFn = Callable[[np.ndarray, np.random.Generator], np.ndarray]
StepBuilder = Callable[..., StepFn]
"""``builder(layout, train, **options) -> step``; the step ``(x [M, T, V, C], rng) -> x'`` must be
picklable (a module-level function or a ``functools.partial`` of one) to reach worker processes."""
StepSpec = Union[Mapping[str, Any], Sequence[Any]]

_STEPS: dict[str, StepBuilder] = {}
STEP_NAMES: tuple[str, ...] = ()
"""Step names accepted by :func:`build_skeleton_pipeline`, in registration order (rebound by
every registration: read it as ``transforms.STEP_NAMES`` or call :func:`step_names` to see
steps that other modules register later)."""


def register_skeleton_step(name: str) -> Callable[[StepBuilder], StepBuilder]:
    """Decorator: register ``builder(layout, train, **options) -> step`` under ``name``.

    Raises:
        ValueError: ``name`` is taken by another builder (re-importing the same module is fine).
    """
    def add(builder: StepBuilder) -> StepBuilder:
        global STEP_NAMES
        known = _STEPS.get(name)
        if known is not None and (known.__module__, known.__qualname__) != (builder.__module__,
                                                                             builder.__qualname__):
            raise ValueError(f"skeleton transform {name!r} is already registered by "
                             f"{known.__module__}.{known.__qualname__}")
        _STEPS[name] = builder
        STEP_NAMES = tuple(_STEPS)
        return builder
    return add


def step_names() -> tuple[str, ...]:
    """Every registered step name, in registration order."""
    return tuple(_STEPS)


def _identity(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return x


def _call_center(x: np.ndarray, rng: np.random.Generator, joint: tuple[int, ...]) -> np.ndarray:
    return center(x, joint=joint[0] if len(joint) == 1 else joint)


def _call_pre_normalize_3d(x: np.ndarray, rng: np.random.Generator, align_spine: bool,
                           align_center: bool) -> np.ndarray:
    return pre_normalize_3d(x, align_spine=align_spine, align_center=align_center)


def _call_mirror_flip(x: np.ndarray, rng: np.random.Generator, layout: JointLayout, p: float) -> np.ndarray:
    return mirror_flip(x, layout) if rng.random() < p else x


def _call_stream(x: np.ndarray, rng: np.random.Generator, stream: str, layout: JointLayout) -> np.ndarray:
    return make_stream(x, stream, layout)


def _call_unified_12ch(x: np.ndarray, rng: np.random.Generator, layout: JointLayout) -> np.ndarray:
    return unified_12ch(x, layout)


# Step factories: (layout, train, **options) -> a picklable step (x, rng) -> x.
@register_skeleton_step("center")
def _center(layout: JointLayout, train: bool, joint: "int | Sequence[int] | None" = None) -> StepFn:
    joints = root_joints(layout) if joint is None else ((int(joint),) if np.isscalar(joint) else
                                                           tuple(int(j) for j in joint))
    return partial(_call_center, joint=joints)


@register_skeleton_step("pre_normalize_3d")
def _pre_normalize_3d(layout: JointLayout, train: bool, align_spine: bool = True,
                      align_center: bool = True) -> StepFn:
    return partial(_call_pre_normalize_3d, align_spine=bool(align_spine), align_center=bool(align_center))


@register_skeleton_step("valid_crop_resize")
def _valid_crop_resize(layout: JointLayout, train: bool, out_len: int, p_interval: Sequence[float] = (0.5, 1.0),
                       test_p_interval: Sequence[float] = (0.95,), min_len: int = 64) -> StepFn:
    interval = tuple(float(p) for p in (p_interval if train else test_p_interval))
    if len(interval) not in (1, 2):
        raise ValueError(f"p_interval must hold 1 or 2 values, not {interval}")
    return partial(_call_valid_crop_resize, out_len=int(out_len), p_interval=interval, min_len=int(min_len))


def _call_valid_crop_resize(x: np.ndarray, rng: np.random.Generator, out_len: int,
                            p_interval: tuple[float, ...], min_len: int) -> np.ndarray:
    return valid_crop_resize(x, out_len, p_interval, rng, min_len=min_len)


@register_skeleton_step("random_rotation")
def _random_rotation(layout: JointLayout, train: bool, max_angle: float = 0.3) -> StepFn:
    return partial(_call_random_rotation, max_angle=float(max_angle)) if train else _identity


def _call_random_rotation(x: np.ndarray, rng: np.random.Generator, max_angle: float) -> np.ndarray:
    return random_rotation(x, max_angle, rng)


@register_skeleton_step("random_scale")
def _random_scale(layout: JointLayout, train: bool, scale: float = 0.1) -> StepFn:
    return partial(_call_random_scale, scale=float(scale)) if train else _identity


def _call_random_scale(x: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    return random_scale(x, scale, rng)


@register_skeleton_step("mirror_flip")
def _mirror_flip(layout: JointLayout, train: bool, p: float = 0.5) -> StepFn:
    return partial(_call_mirror_flip, layout=layout, p=float(p)) if train else _identity


@register_skeleton_step("temporal_flip")
def _temporal_flip(layout: JointLayout, train: bool, p: float = 0.5) -> StepFn:
    if not 0.0 <= float(p) <= 1.0:
        raise UsageError(f"temporal_flip: p must lie in [0, 1], got {p}")
    return partial(_call_temporal_flip, p=float(p)) if train else _identity


def _call_temporal_flip(x: np.ndarray, rng: np.random.Generator, p: float) -> np.ndarray:
    return temporal_flip(x) if rng.random() < p else x


@register_skeleton_step("stream")
def _stream(layout: JointLayout, train: bool, stream: str = "joint") -> StepFn:
    if stream not in STREAM_NAMES:
        raise UsageError(f"unknown stream {stream!r}; known: {', '.join(STREAM_NAMES)}")
    return partial(_call_stream, stream=stream, layout=layout)


@register_skeleton_step("unified_12ch")
def _unified_12ch(layout: JointLayout, train: bool) -> StepFn:
    return partial(_call_unified_12ch, layout=layout)


@dataclass
class SkeletonTransform:
    """A sequence of steps applied in order: ``pipeline(x, rng) -> x``.

    Attributes:
        specs: the step specs it was built from, as ``(name, options)``.
        train: whether augmentations run and training crops are drawn.
        layout: the joint layout that mirror and stream steps use.
    """

    specs: list[tuple[str, dict[str, Any]]]
    train: bool
    layout: JointLayout
    _fns: list[StepFn] = field(repr=False)

    def __call__(self, x: np.ndarray, rng: "np.random.Generator | None" = None) -> np.ndarray:
        """x float [M, T, V, C] -> float32 [M, T', V, C'] (T', C' set by crop and stream steps)."""
        rng = np.random.default_rng() if rng is None else rng
        out = np.asarray(x, dtype=np.float32)
        for fn in self._fns:
            out = fn(out, rng)
        return out


def _parse_spec(spec: StepSpec) -> tuple[str, dict[str, Any]]:
    if isinstance(spec, Mapping):
        options = dict(spec)
        if "name" not in options:
            raise ValueError(f"a pipeline step needs a 'name': {dict(spec)!r}")
        return str(options.pop("name")), options
    if isinstance(spec, Sequence) and len(spec) == 2 and isinstance(spec[0], str) and isinstance(spec[1], Mapping):
        return spec[0], dict(spec[1])
    raise ValueError(f"a pipeline step is a dict with 'name' or a (name, options) pair, not {spec!r}")


def build_skeleton_pipeline(steps: Sequence[StepSpec], layout: "str | JointLayout" = "ntu25",
                            train: bool = True) -> SkeletonTransform:
    """Build a :class:`SkeletonTransform` from step specs (module docstring).

    Raises:
        ValueError: an unknown step name (the message lists the known ones) or an option the
            step does not take.
    """
    lay = get_layout(layout)
    specs, fns = [], []
    for spec in steps:
        name, options = _parse_spec(spec)
        if name not in _STEPS:
            raise UsageError(f"unknown skeleton transform {name!r}; known: {', '.join(step_names())}")
        try:
            fns.append(_STEPS[name](lay, train, **options))
        except TypeError as err:
            raise UsageError(f"bad options for skeleton transform {name!r}: {options!r} ({err})") from None
        specs.append((name, options))
    return SkeletonTransform(specs, train, lay, fns)


# The contrastive steps register themselves on import. At the end of the module, so that a
# first import of transforms_contrastive (which imports this module) finds the registry built.
from . import transforms_contrastive  # noqa: E402,F401
from . import transforms_choice  # noqa: E402,F401
