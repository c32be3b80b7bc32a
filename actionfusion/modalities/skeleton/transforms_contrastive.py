"""Augmentations of the contrastive skeleton methods (AimCLR / HiCLR / STARS / MS-CLR lineage).

Semantics follow HiCLR's ``feeder/tools.py`` and ``processor/utils.py`` (JHang2020/HiCLR, which
reuses AimCLR's), written anew; every deviation is stated in the function's docstring.

- :func:`shear`: a random shear of xyz (AimCLR ``shear``).
- :func:`temporal_crop_pad`: mirror-pad both ends, crop a window of the original length
  (AimCLR ``temperal_crop``).
- :func:`swap_left_right`: swap left and right joints, coordinates untouched (AimCLR
  ``random_spatial_flip``; :func:`.transforms_geometry.mirror_flip` also negates camera x).
- :func:`rotate_about_axis`: rotation about one axis (HiCLR ``random_rotate``).
- :func:`gaussian_noise`, :func:`gaussian_blur` (temporal), :func:`zero_axis` (AimCLR
  ``axis_mask``) and :func:`joint_mask` (HiCLR ``Jointmask``).

Each function takes one clip ``x`` float [M, T, V, C] (zero = a missing joint, body or
frame), returns a new float32 array and leaves ``x`` untouched; random ones draw only from
the ``numpy.random.Generator`` they are given, so a seeded pipeline is reproducible. The
registered pipeline steps (module docstring of :mod:`.transforms`) wrap them and run only when
``train`` is true; the probability ``p`` of the optional ones is drawn by the step.

SkeleAdaIN and the graph edge drop/add are batch or model operations, not clip transforms:
see :mod:`.skele_adain` and the encoders.
"""

from __future__ import annotations

from functools import partial
from typing import Sequence, Union

import numpy as np

from .layouts import JointLayout
from .transforms import StepFn, register_skeleton_step
from .transforms_geometry import _check, _present, rotation_xyz, swap_left_right

__all__ = [
    "random_shear_matrix", "shear", "temporal_crop_pad", "swap_left_right", "rotate_about_axis",
    "random_rotate_axis", "gaussian_noise", "gaussian_kernel", "gaussian_blur", "zero_axis", "joint_mask",
    "ROTATION_AXES",
]

ROTATION_AXES = {"x": 0, "y": 1, "z": 2}
"""Axis names of ``random_rotate_axis`` (``"main"``: one of them drawn per clip)."""


def _check_xyz(x: np.ndarray, what: str) -> np.ndarray:
    x = _check(x, 3)
    if x.shape[-1] != 3:
        raise ValueError(f"{what} needs 3D joints [M, T, V, 3], got shape {x.shape}")
    return x


def _check_probability(p: float, what: str) -> float:
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{what}: p must lie in [0, 1], not {p}")
    return p


# ---------------------------------------------------------------------------------------------
# The transforms.


def random_shear_matrix(s: float, rng: np.random.Generator) -> np.ndarray:
    """float64 [3, 3]: unit diagonal, the six off-diagonal entries ~ U(-s, s)."""
    mat = np.eye(3)
    mat[~np.eye(3, dtype=bool)] = rng.uniform(-s, s, size=6)
    return mat


def shear(x: np.ndarray, s: float = 0.5, rng: "np.random.Generator | None" = None) -> np.ndarray:
    """Apply one random shear ``x' = S x`` (:func:`random_shear_matrix`) to every joint.

    The map is linear: the origin and missing (all-zero) joints stay zero.

    Args:
        x: float [M, T, V, 3].
        s: the off-diagonal entries are drawn from U(-s, s) (AimCLR: 0.5).

    Returns:
        float32 [M, T, V, 3].
    """
    x = _check_xyz(x, "shear")
    rng = np.random.default_rng() if rng is None else rng
    return np.einsum("kd,mtvd->mtvk", random_shear_matrix(s, rng), x).astype(np.float32)


def temporal_crop_pad(x: np.ndarray, padding_ratio: int = 6, rng: "np.random.Generator | None" = None) -> np.ndarray:
    """Mirror-pad ``P = T // padding_ratio`` frames at both ends, then crop T frames at a
    uniform offset in [0, 2P]: a random temporal shift that keeps the length.

    The padding repeats the edge frame (frames P-1..0 before, T-1..T-P after; numpy's
    ``"symmetric"`` mode), exactly as AimCLR's ``temperal_crop`` concatenates its reversed
    slices; numpy's ``"reflect"`` would skip the edge frame. Frames are only copied, so
    missing joints and bodies stay zero; trailing zero padding counts as frames (AimCLR's
    clips are resized to 50 frames and have none), so use the step after a crop-resize.

    Args:
        x: float [M, T, V, C].
        padding_ratio: 0 (or ``T < padding_ratio``) returns a copy of ``x``.

    Returns:
        float32 [M, T, V, C].
    """
    x = _check(x)
    t = x.shape[1]
    pad = t // int(padding_ratio) if padding_ratio > 0 else 0
    if pad == 0:
        return x.copy()
    rng = np.random.default_rng() if rng is None else rng
    padded = np.pad(x, ((0, 0), (pad, pad), (0, 0), (0, 0)), mode="symmetric")
    start = int(rng.integers(0, 2 * pad + 1))
    return padded[:, start:start + t].copy()


def rotate_about_axis(x: np.ndarray, degrees: Sequence[float]) -> np.ndarray:
    """Rotate by ``degrees`` (d_x, d_y, d_z) about x, then y, then z: ``x' = Rz Ry Rx x`` with
    :func:`.transforms_geometry.rotation_xyz`'s matrices (HiCLR's order and sign convention).

    Args:
        x: float [M, T, V, 3].

    Returns:
        float32 [M, T, V, 3]; missing joints stay zero.
    """
    x = _check_xyz(x, "rotate_about_axis")
    rot = rotation_xyz(np.deg2rad(np.asarray(degrees, dtype=np.float64)))
    return np.einsum("kd,mtvd->mtvk", rot, x).astype(np.float32)


def random_rotate_axis(x: np.ndarray, max_degrees: float = 30.0, axis: str = "main",
                       rng: "np.random.Generator | None" = None, minor_degrees: float = 0.0) -> np.ndarray:
    """Rotate the clip by U(-max_degrees, max_degrees) degrees about one axis.

    ``axis="main"`` draws the axis uniformly from x, y, z per clip (HiCLR's "main axis");
    ``"x"``, ``"y"``, ``"z"`` fix it. The two other axes are turned by U(0, minor_degrees).

    Deviation: HiCLR's ``random_rotate`` draws the main angle from U(0, 30) (one direction
    only) and always tilts the two other axes by U(0, 1) degree; here the main angle is
    symmetric, and ``minor_degrees=1`` restores the small tilts.

    Args:
        x: float [M, T, V, 3].

    Returns:
        float32 [M, T, V, 3]; bone lengths are kept and missing joints stay zero.
    """
    rng = np.random.default_rng() if rng is None else rng
    main = int(rng.integers(3)) if axis == "main" else ROTATION_AXES[axis]
    degrees = rng.uniform(0.0, minor_degrees, size=3)
    degrees[main] = rng.uniform(-max_degrees, max_degrees)
    return rotate_about_axis(x, degrees)


def gaussian_noise(x: np.ndarray, std: float = 0.01, mean: float = 0.0,
                   rng: "np.random.Generator | None" = None) -> np.ndarray:
    """Add independent N(mean, std^2) noise to every coordinate of every present joint.

    Deviation: AimCLR's ``gaus_noise`` also adds noise to missing joints, so an absent body
    becomes a faint cloud around the origin; here they stay zero (the noise is still drawn
    for every entry, so the draws do not depend on which joints are present).

    Args:
        x: float [M, T, V, C].

    Returns:
        float32 [M, T, V, C].
    """
    x = _check(x)
    rng = np.random.default_rng() if rng is None else rng
    noise = rng.normal(mean, std, size=x.shape)
    return np.where(_present(x)[..., None], x + noise, 0.0).astype(np.float32)


def gaussian_kernel(kernel: int, sigma: float) -> np.ndarray:
    """float64 [2 * (kernel // 2) + 1]: exp(-k^2 / (2 sigma^2)) for k = -kernel//2..kernel//2,
    normalised to sum 1 (AimCLR's taps; an even ``kernel`` gets one tap more, as there)."""
    taps = np.arange(-(int(kernel) // 2), int(kernel) // 2 + 1, dtype=np.float64)
    weights = np.exp(-taps ** 2 / (2.0 * float(sigma) ** 2))
    return weights / weights.sum()


def gaussian_blur(x: np.ndarray, sigma: float, kernel: int = 15) -> np.ndarray:
    """Blur every joint coordinate along time with a truncated, normalised Gaussian.

    A plain numpy convolution (a banded [T, T] matrix): no SciPy dependency, and it lets the
    average run over present frames only (a normalised convolution): missing joints and
    frames stay zero and do not pull their neighbours towards the origin.

    Deviations from AimCLR's ``GaussianBlurConv``: its kernel is not normalised (its taps sum
    to about sigma * sqrt(2 pi), so the clip is also scaled by up to about 5 for sigma = 2, a
    bug), and it zero-pads the clip ends, which shrinks the first and last 7 frames towards the
    origin; here the weights are renormalised over the present frames in the window.

    Args:
        x: float [M, T, V, C].
        sigma: in frames; 0.1 is the identity up to 1e-20.

    Returns:
        float32 [M, T, V, C].
    """
    x = _check(x)
    weights = gaussian_kernel(kernel, sigma)
    radius = len(weights) // 2
    offsets = np.arange(x.shape[1])[None, :] - np.arange(x.shape[1])[:, None]  # [T, T]: s - t
    band = np.where(np.abs(offsets) <= radius, weights[np.clip(offsets + radius, 0, 2 * radius)], 0.0)
    present = _present(x).astype(np.float64)  # [M, T, V]
    total = np.einsum("ts,msvc->mtvc", band, x * present[..., None])
    norm = np.einsum("ts,msv->mtv", band, present)
    out = np.divide(total, norm[..., None], out=np.zeros_like(total), where=present[..., None] > 0)
    return out.astype(np.float32)


def zero_axis(x: np.ndarray, axis: int) -> np.ndarray:
    """Zero coordinate channel ``axis`` of every joint, body and frame (AimCLR's
    ``Zero_out_axis``).

    Args:
        x: float [M, T, V, C], 0 <= axis < C.

    Returns:
        float32 [M, T, V, C].
    """
    x = _check(x)
    out = x.copy()
    out[..., axis] = 0.0
    return out


def joint_mask(x: np.ndarray, ratio: float = 0.1, fill: float = 0.0,
               rng: "np.random.Generator | None" = None) -> np.ndarray:
    """In every frame, replace ``int(ratio * V)`` joints drawn without replacement (the count
    floors, as HiCLR's ``Jointmask``: 2 of 25 for 0.1) by ``fill`` in all C channels.

    ``fill=nan`` marks the masked joints: an objective with a learnable mask token (HiCLR's
    strongest view) substitutes its token for every NaN before the encoder; do not feed NaN to
    an encoder directly. As in HiCLR, the masked joints are the same for every body of the
    frame, absent bodies included, so a non-zero ``fill`` also lands on absent bodies.
    Deviation: HiCLR draws one mask per batch (the same for every sample); here each clip
    draws its own.

    Args:
        x: float [M, T, V, C].
        ratio: in [0, 1].

    Returns:
        float32 [M, T, V, C].
    """
    x = _check(x)
    rng = np.random.default_rng() if rng is None else rng
    _, t, v, _ = x.shape
    count = int(ratio * v)
    chosen = np.argsort(rng.random((t, v)), axis=1)[:, :count]  # [T, count]
    masked = np.zeros((t, v), dtype=bool)
    np.put_along_axis(masked, chosen, True, axis=1)
    out = x.copy()
    out[:, masked] = np.float32(fill)
    return out


# ---------------------------------------------------------------------------------------------
# Pipeline steps: builder(layout, train, **options) -> a picklable step (x, rng) -> x.


def _identity(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return x


def _call_shear(x: np.ndarray, rng: np.random.Generator, s: float) -> np.ndarray:
    return shear(x, s, rng)


@register_skeleton_step("shear")
def _shear(layout: JointLayout, train: bool, s: float = 0.5) -> StepFn:
    return partial(_call_shear, s=float(s)) if train else _identity


def _call_temporal_crop_pad(x: np.ndarray, rng: np.random.Generator, padding_ratio: int) -> np.ndarray:
    return temporal_crop_pad(x, padding_ratio, rng)


@register_skeleton_step("temporal_crop_pad")
def _temporal_crop_pad(layout: JointLayout, train: bool, padding_ratio: int = 6) -> StepFn:
    if int(padding_ratio) != padding_ratio or padding_ratio < 0:
        raise ValueError(f"temporal_crop_pad: padding_ratio must be an integer >= 0 (0: off), not {padding_ratio!r}")
    return partial(_call_temporal_crop_pad, padding_ratio=int(padding_ratio)) if train else _identity


def _call_spatial_flip(x: np.ndarray, rng: np.random.Generator, layout: JointLayout, p: float) -> np.ndarray:
    return swap_left_right(x, layout) if rng.random() < p else x


@register_skeleton_step("spatial_flip")
def _spatial_flip(layout: JointLayout, train: bool, p: float = 0.5) -> StepFn:
    p = _check_probability(p, "spatial_flip")
    return partial(_call_spatial_flip, layout=layout, p=p) if train else _identity


def _call_random_rotate_axis(x: np.ndarray, rng: np.random.Generator, max_degrees: float, axis: str,
                             minor_degrees: float) -> np.ndarray:
    return random_rotate_axis(x, max_degrees, axis, rng, minor_degrees=minor_degrees)


@register_skeleton_step("random_rotate_axis")
def _random_rotate_axis(layout: JointLayout, train: bool, max_degrees: float = 30.0, axis: str = "main",
                        minor_degrees: float = 0.0) -> StepFn:
    if axis != "main" and axis not in ROTATION_AXES:
        raise ValueError(f"random_rotate_axis: axis must be 'main', 'x', 'y' or 'z', not {axis!r}")
    return (partial(_call_random_rotate_axis, max_degrees=float(max_degrees), axis=str(axis),
                    minor_degrees=float(minor_degrees)) if train else _identity)


def _call_gaussian_noise(x: np.ndarray, rng: np.random.Generator, std: float, p: float, mean: float) -> np.ndarray:
    return gaussian_noise(x, std, mean, rng) if rng.random() < p else x


@register_skeleton_step("gaussian_noise")
def _gaussian_noise(layout: JointLayout, train: bool, std: float = 0.01, p: float = 0.5,
                    mean: float = 0.0) -> StepFn:
    if float(std) < 0:
        raise ValueError(f"gaussian_noise: std must be >= 0, not {std}")
    p = _check_probability(p, "gaussian_noise")
    return partial(_call_gaussian_noise, std=float(std), p=p, mean=float(mean)) if train else _identity


def _call_gaussian_blur(x: np.ndarray, rng: np.random.Generator, kernel: int, sigma: tuple[float, float],
                        p: float) -> np.ndarray:
    if rng.random() >= p:
        return x
    return gaussian_blur(x, rng.uniform(sigma[0], sigma[1]), kernel)


@register_skeleton_step("gaussian_blur")
def _gaussian_blur(layout: JointLayout, train: bool, kernel: int = 15,
                   sigma: Union[float, Sequence[float]] = (0.1, 2.0), p: float = 0.5) -> StepFn:
    bounds = (float(sigma),) * 2 if np.isscalar(sigma) else tuple(float(s) for s in sigma)
    if len(bounds) != 2 or not 0 < bounds[0] <= bounds[1]:
        raise ValueError(f"gaussian_blur: sigma must be a positive number or [low, high], not {sigma!r}")
    if int(kernel) != kernel or kernel < 1:
        raise ValueError(f"gaussian_blur: kernel must be a positive integer, not {kernel!r}")
    p = _check_probability(p, "gaussian_blur")
    return partial(_call_gaussian_blur, kernel=int(kernel), sigma=bounds, p=p) if train else _identity


def _call_axis_mask(x: np.ndarray, rng: np.random.Generator, p: float) -> np.ndarray:
    # One of the C channels: x, y or z of 3D joints, as AimCLR's randint(0, 2).
    return zero_axis(x, int(rng.integers(x.shape[-1]))) if rng.random() < p else x


@register_skeleton_step("axis_mask")
def _axis_mask(layout: JointLayout, train: bool, p: float = 0.5) -> StepFn:
    p = _check_probability(p, "axis_mask")
    return partial(_call_axis_mask, p=p) if train else _identity


def _call_joint_mask(x: np.ndarray, rng: np.random.Generator, ratio: float, fill: float) -> np.ndarray:
    return joint_mask(x, ratio, fill, rng)


@register_skeleton_step("joint_mask")
def _joint_mask(layout: JointLayout, train: bool, ratio: float = 0.1, fill: Union[float, str] = 0.0) -> StepFn:
    if not 0.0 <= float(ratio) <= 1.0:
        raise ValueError(f"joint_mask: ratio must lie in [0, 1], not {ratio}")
    return partial(_call_joint_mask, ratio=float(ratio), fill=float(fill)) if train else _identity
