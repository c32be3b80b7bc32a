"""Contrastive skeleton augmentations (AimCLR / HiCLR lineage) and SkeleAdaIN: behaviour a
correct implementation has."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from actionfusion.modalities.skeleton import transforms
from actionfusion.modalities.skeleton.layouts import get_layout
from actionfusion.modalities.skeleton.skele_adain import skele_adain, skele_adain_batch
from actionfusion.modalities.skeleton.transforms import build_skeleton_pipeline, register_skeleton_step, step_names
from actionfusion.modalities.skeleton.transforms_contrastive import (gaussian_blur, gaussian_kernel, gaussian_noise,
                                                                     joint_mask, random_rotate_axis, shear,
                                                                     swap_left_right, temporal_crop_pad)

NEW_STEPS = ("shear", "temporal_crop_pad", "spatial_flip", "random_rotate_axis", "gaussian_noise", "gaussian_blur",
             "axis_mask", "joint_mask")
ALWAYS = {"spatial_flip": {"p": 1.0}, "gaussian_noise": {"p": 1.0}, "gaussian_blur": {"p": 1.0},
          "axis_mask": {"p": 1.0}}
"""Options that make every new step act on every call."""
NTU = get_layout("ntu25")


def _clip(t: int = 30, seed: int = 0, absent_body: bool = True) -> np.ndarray:
    """float32 [2, T, 25, 3]; body 2 all zero (absent) unless ``absent_body`` is false."""
    x = np.random.default_rng(seed).normal(size=(2, t, 25, 3)).astype(np.float32)
    if absent_body:
        x[1] = 0.0
    return x


def _step(name: str, x: np.ndarray, seed: int = 0, train: bool = True, **options) -> np.ndarray:
    pipe = build_skeleton_pipeline([{"name": name, **options}], layout="ntu25", train=train)
    return pipe(x, np.random.default_rng(seed))


def _bone_lengths(x: np.ndarray) -> np.ndarray:
    child, parent = np.array(NTU.edges()).T
    return np.linalg.norm(x[:, :, child] - x[:, :, parent], axis=-1)


# ------------------------------------------------------------------------------------------- registry


def test_every_step_is_registered_and_listed_in_step_names() -> None:
    assert set(NEW_STEPS) <= set(step_names())
    assert transforms.STEP_NAMES == step_names()
    with pytest.raises(ValueError) as err:
        build_skeleton_pipeline([{"name": "random_shear"}])
    assert all(name in str(err.value) for name in NEW_STEPS)
    assert "\n" not in str(err.value)


def test_register_skeleton_step_adds_a_builder_and_refuses_a_taken_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transforms, "_STEPS", dict(transforms._STEPS))
    monkeypatch.setattr(transforms, "STEP_NAMES", transforms.STEP_NAMES)

    @register_skeleton_step("times_two_for_test")
    def _times_two(layout, train, factor: float = 2.0):
        return lambda x, rng: x * factor

    assert "times_two_for_test" in transforms.STEP_NAMES and "times_two_for_test" in step_names()
    x = _clip()
    np.testing.assert_array_equal(_step("times_two_for_test", x), 2 * x)
    with pytest.raises(ValueError, match="already registered"):
        register_skeleton_step("shear")(_times_two)


def test_bad_options_are_refused() -> None:
    for spec in ({"name": "random_rotate_axis", "axis": "w"}, {"name": "gaussian_blur", "sigma": [2.0, 0.1]},
                 {"name": "joint_mask", "ratio": 1.5}, {"name": "spatial_flip", "p": 2},
                 {"name": "shear", "r": 0.5}, {"name": "temporal_crop_pad", "padding_ratio": 2.5}):
        with pytest.raises(ValueError, match=spec["name"]):
            build_skeleton_pipeline([spec])


def test_evaluation_pipelines_leave_clips_untouched() -> None:
    x = _clip(absent_body=False)
    for name in NEW_STEPS:
        np.testing.assert_array_equal(_step(name, x, train=False, **ALWAYS.get(name, {})), x, err_msg=name)


def test_the_hiclr_strongest_view_is_reproducible_and_picklable() -> None:
    specs = [{"name": "temporal_crop_pad"}, {"name": "shear", "s": 0.5}, {"name": "spatial_flip"},
             {"name": "random_rotate_axis"}, {"name": "gaussian_noise"}, {"name": "gaussian_blur"},
             {"name": "axis_mask"}, {"name": "joint_mask", "fill": "nan"}]
    pipe = build_skeleton_pipeline(specs, layout="ntu25", train=True)
    x = _clip(t=50)
    a = pipe(x, np.random.default_rng(7))
    np.testing.assert_array_equal(pipe(x, np.random.default_rng(7)), a)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(pipe))(x, np.random.default_rng(7)), a)
    assert not np.allclose(np.nan_to_num(pipe(x, np.random.default_rng(8))), np.nan_to_num(a))
    assert a.shape == x.shape and a.dtype == np.float32
    assert np.isnan(a[0]).any() and not np.nan_to_num(a[1]).any()  # the absent body holds only mask marks


# ------------------------------------------------------------------------------------------- geometry


def test_shear_is_linear_keeps_zeros_and_has_a_unit_diagonal() -> None:
    x, y = _clip(seed=1), _clip(seed=2)
    sx, sy, sxy = (shear(v, 0.5, np.random.default_rng(3)) for v in (x, y, x + y))
    np.testing.assert_allclose(sxy, sx + sy, atol=1e-5)
    assert not sx[1].any()  # the absent body
    assert not np.allclose(sx, x)
    basis = np.eye(3, dtype=np.float32).reshape(1, 1, 3, 3)  # joint j = e_j
    mat = shear(basis, 0.5, np.random.default_rng(3))[0, 0].T  # column j = S e_j
    np.testing.assert_allclose(np.diag(mat), 1.0)
    off = mat[~np.eye(3, dtype=bool)]
    assert np.all(np.abs(off) < 0.5) and np.all(off != 0)
    np.testing.assert_allclose(sx, np.einsum("kd,mtvd->mtvk", mat, x), atol=1e-5)


def test_temporal_crop_pad_is_a_window_of_the_mirror_padded_clip() -> None:
    t, ratio = 30, 6
    pad = t // ratio
    x = np.zeros((2, t, 25, 3), dtype=np.float32)
    x[0] = (np.arange(t, dtype=np.float32) + 1)[:, None, None]  # frame i holds i + 1
    # AimCLR's padding repeats the edge frame: frames 4 3 2 1 0 | 0 .. 29 | 29 28 27 26 25.
    padded_ids = np.concatenate([np.arange(pad)[::-1], np.arange(t), np.arange(t - pad, t)[::-1]]) + 1
    starts = set()
    for seed in range(60):
        out = temporal_crop_pad(x, ratio, np.random.default_rng(seed))
        assert out.shape == x.shape and not out[1].any()
        matches = [s for s in range(2 * pad + 1) if np.array_equal(padded_ids[s:s + t], out[0, :, 0, 0])]
        assert len(matches) == 1, out[0, :, 0, 0]
        starts.add(matches[0])
    assert starts == set(range(2 * pad + 1))  # every offset 0..2P occurs
    np.testing.assert_array_equal(_step("temporal_crop_pad", x, padding_ratio=0), x)
    np.testing.assert_array_equal(temporal_crop_pad(x[:, :5], ratio, np.random.default_rng(0)), x[:, :5])


def test_spatial_flip_swaps_hands_without_mirroring_and_is_an_involution() -> None:
    x = _clip()
    once = _step("spatial_flip", x, p=1.0)
    left, right = NTU.index("HandLeft"), NTU.index("HandRight")
    np.testing.assert_array_equal(once[:, :, right], x[:, :, left])
    np.testing.assert_array_equal(once[:, :, left], x[:, :, right])
    np.testing.assert_array_equal(once[:, :, NTU.index("Head")], x[:, :, NTU.index("Head")])
    np.testing.assert_array_equal(_step("spatial_flip", once, p=1.0), x)
    np.testing.assert_array_equal(swap_left_right(once, NTU), x)
    np.testing.assert_array_equal(_step("spatial_flip", x, p=0.0), x)
    flips = [not np.array_equal(_step("spatial_flip", x, seed=s), x) for s in range(200)]
    assert 0.4 < np.mean(flips) < 0.6


@pytest.mark.parametrize("axis", ["x", "y", "z", "main"])
def test_rotate_axis_keeps_bone_lengths_and_the_axis_coordinate(axis: str) -> None:
    x = _clip(seed=4)
    for seed in range(5):
        out = random_rotate_axis(x, 30.0, axis, np.random.default_rng(seed))
        np.testing.assert_allclose(_bone_lengths(out), _bone_lengths(x), rtol=1e-4, atol=1e-5)
        assert not out[1].any()
        kept = [c for c in range(3) if np.allclose(out[0, ..., c], x[0, ..., c], atol=1e-5)]
        assert len(kept) == 1 and (axis == "main" or kept == ["xyz".index(axis)])
        other = [c for c in range(3) if c != kept[0]]
        a, b = x[0][..., other].reshape(-1, 2), out[0][..., other].reshape(-1, 2)
        cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() <= 30.0 + 1e-3
    angles = []
    for seed in range(100):
        out = random_rotate_axis(x, 30.0, "z", np.random.default_rng(seed))
        angles.append(np.degrees(np.arctan2(out[0, 0, 0, 1], out[0, 0, 0, 0]) - np.arctan2(x[0, 0, 0, 1],
                                                                                           x[0, 0, 0, 0])))
    angles = (np.array(angles) + 180) % 360 - 180
    assert angles.min() < -15 and angles.max() > 15  # both directions


# ------------------------------------------------------------------------------------------- noise and blur


def test_gaussian_noise_has_the_asked_std_and_spares_absent_joints() -> None:
    x = _clip(t=200)
    out = gaussian_noise(x, std=0.05, mean=0.1, rng=np.random.default_rng(0))
    diff = (out - x)[0]
    assert abs(diff.std() - 0.05) < 0.003 and abs(diff.mean() - 0.1) < 0.003
    assert not out[1].any()
    np.testing.assert_array_equal(_step("gaussian_noise", x, p=0.0), x)


def test_gaussian_blur_tiny_sigma_is_identity_large_sigma_smooths() -> None:
    x = _clip(t=60)
    np.testing.assert_allclose(gaussian_blur(x, 0.1), x, atol=1e-6)
    smooth = gaussian_blur(x, 2.0)

    def high_frequency_energy(v: np.ndarray) -> float:
        return float(np.sum(np.diff(v[0], axis=0) ** 2))

    assert high_frequency_energy(smooth) < 0.2 * high_frequency_energy(x)
    assert not smooth[1].any()
    constant = np.ones((1, 40, 25, 3), dtype=np.float32)
    np.testing.assert_allclose(gaussian_blur(constant, 2.0), constant, rtol=1e-6)  # no rescaling, no dark edges
    padded = constant.copy()
    padded[:, 30:] = 0.0  # trailing zero padding stays zero and does not leak into the clip
    np.testing.assert_allclose(gaussian_blur(padded, 2.0), padded, rtol=1e-6)
    np.testing.assert_allclose(gaussian_kernel(15, 2.0).sum(), 1.0)
    assert len(gaussian_kernel(15, 2.0)) == 15


def test_gaussian_blur_step_draws_sigma_in_range() -> None:
    x = _clip(t=60)

    def energy(v: np.ndarray) -> float:  # falls as sigma grows
        return float(np.sum(np.diff(v[0], axis=0) ** 2))

    low, high = energy(gaussian_blur(x, 2.0)), energy(gaussian_blur(x, 0.1))
    energies = [energy(_step("gaussian_blur", x, seed=s, p=1.0, sigma=[0.1, 2.0])) for s in range(20)]
    assert low * (1 - 1e-5) <= min(energies) and max(energies) <= high * (1 + 1e-5)
    assert max(energies) - min(energies) > 0.5 * (high - low)  # sigma varies between clips
    blurred = [not np.array_equal(_step("gaussian_blur", x, seed=s), x) for s in range(200)]
    assert 0.4 < np.mean(blurred) < 0.6  # p = 0.5 by default


# ------------------------------------------------------------------------------------------- masks


def test_axis_mask_zeroes_exactly_one_axis() -> None:
    x = _clip(absent_body=False)
    seen = set()
    for seed in range(30):
        out = _step("axis_mask", x, seed=seed, p=1.0)
        zeroed = [c for c in range(3) if not out[..., c].any()]
        assert len(zeroed) == 1
        kept = [c for c in range(3) if c != zeroed[0]]
        np.testing.assert_array_equal(out[..., kept], x[..., kept])
        seen.add(zeroed[0])
    assert seen == {0, 1, 2}
    np.testing.assert_array_equal(_step("axis_mask", x, p=0.0), x)


@pytest.mark.parametrize("ratio,count", [(0.1, 2), (0.2, 5), (0.0, 0), (1.0, 25)])
def test_joint_mask_masks_int_ratio_v_joints_per_frame_with_nan(ratio: float, count: int) -> None:
    x = _clip(absent_body=False)
    out = joint_mask(x, ratio, float("nan"), np.random.default_rng(0))
    masked = np.isnan(out).all(axis=-1)  # [M, T, V]
    assert np.array_equal(np.isnan(out).any(axis=-1), masked)  # all channels of a masked joint
    assert np.all(masked.sum(axis=-1) == count)
    np.testing.assert_array_equal(masked[0], masked[1])  # the same joints in every body
    np.testing.assert_array_equal(out[~masked], x[~masked])
    if 0 < count < 25:
        assert len({tuple(np.flatnonzero(row)) for row in masked[0]}) > 1  # drawn per frame


def test_joint_mask_step_fills_zero_by_default_and_reads_nan_from_config() -> None:
    x = _clip(absent_body=False)
    zero = _step("joint_mask", x)
    assert np.all((zero == 0).all(axis=-1).sum(axis=-1) == 2)
    nan = _step("joint_mask", x, fill="nan")
    np.testing.assert_array_equal(np.isnan(nan).all(axis=-1), (zero == 0).all(axis=-1))


# ------------------------------------------------------------------------------------------- SkeleAdaIN


def _stats(v: torch.Tensor, dims: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    return v.mean(dim=dims), v.std(dim=dims)


@pytest.mark.parametrize("dims,reduce", [("TV", (2, 3)), ("V", (3,))])
def test_skele_adain_takes_the_style_statistics_and_keeps_the_content_pattern(dims: str,
                                                                               reduce: tuple[int, ...]) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 2, 16, 25, 3, generator=gen) * 0.7 + 0.3
    style = torch.randn(3, 2, 16, 25, 3, generator=gen) * 2.0 - 1.0
    out = skele_adain(x, style, dims=dims)
    for got, want in zip(_stats(out, reduce), _stats(style, reduce)):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)

    def normalised(v: torch.Tensor) -> torch.Tensor:
        return (v - v.mean(dim=reduce, keepdim=True)) / v.std(dim=reduce, keepdim=True)

    torch.testing.assert_close(normalised(out), normalised(x), atol=1e-4, rtol=1e-4)


def test_skele_adain_keeps_absent_bodies_unless_asked() -> None:
    gen = torch.Generator().manual_seed(1)
    x, style = torch.randn(2, 2, 8, 25, 3, generator=gen), torch.randn(2, 2, 8, 25, 3, generator=gen)
    x[0, 1] = 0.0  # content body absent
    style[1, 1] = 0.0  # style body absent
    out = skele_adain(x, style)
    assert not out[0, 1].any()
    torch.testing.assert_close(out[1, 1], x[1, 1])
    upstream = skele_adain(x, style, keep_absent=False)
    torch.testing.assert_close(upstream[0, 1], style[0, 1].mean(dim=(0, 1)).expand(8, 25, 3))
    torch.testing.assert_close(out[:, 0], upstream[:, 0])


def test_skele_adain_batch_restyles_a_random_subset_with_other_samples() -> None:
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(6, 1, 10, 25, 3, generator=gen) * torch.arange(1, 7).view(6, 1, 1, 1, 1)
    torch.testing.assert_close(skele_adain_batch(x, 0.0, torch.Generator().manual_seed(0)), x)
    out = skele_adain_batch(x, 1.0, torch.Generator().manual_seed(0))
    style_std = x.std(dim=(2, 3))  # [N, M, C]
    for i in range(6):
        got = out[i].std(dim=(1, 2))
        partners = [j for j in range(6) if torch.allclose(got, style_std[j], atol=1e-4)]
        assert len(partners) == 1 and partners[0] != i
    chosen = 0
    for seed in range(20):
        half = skele_adain_batch(x, 0.5, torch.Generator().manual_seed(seed))
        torch.testing.assert_close(skele_adain_batch(x, 0.5, torch.Generator().manual_seed(seed)), half)
        for i in range(6):
            if not torch.equal(half[i], x[i]):  # restyled: by another sample
                chosen += 1
                got = half[i].std(dim=(1, 2))
                assert any(torch.allclose(got, style_std[j], atol=1e-4) for j in range(6) if j != i)
    assert 0.35 < chosen / 120 < 0.65
    torch.testing.assert_close(skele_adain_batch(x[:1], 1.0), x[:1])


def test_joint_corruption_touches_exactly_the_chosen_joints() -> None:
    from actionfusion.modalities.skeleton.transforms_choice import joint_corruption

    x = np.random.default_rng(0).normal(size=(2, 6, 25, 3)).astype(np.float32) + 5.0
    zeroed = joint_corruption(x, joints=15, zero_p=1.0, rng=np.random.default_rng(1))
    dead = np.all(zeroed == 0, axis=(0, 1, 3))
    assert dead.sum() == 15 and np.array_equal(zeroed[:, :, ~dead], x[:, :, ~dead])
    mixed = joint_corruption(x, joints=15, zero_p=0.0, rng=np.random.default_rng(1))
    changed = np.any(mixed != x, axis=(0, 1, 3))
    assert changed.sum() == 15
    # The changed joints went through one shared linear map: solve it from a few and check the rest.
    src, dst = x[:, :, changed].reshape(-1, 3), mixed[:, :, changed].reshape(-1, 3)
    matrix, *_ = np.linalg.lstsq(src[:10], dst[:10], rcond=None)
    assert np.allclose(src @ matrix, dst, atol=1e-3)


def test_one_of_draws_each_choice_and_is_the_first_choice_in_evaluation() -> None:
    spec = [{"name": "one_of", "choices": [[{"name": "axis_mask", "p": 1.0}],
                                           [{"name": "joint_corruption", "joints": 25, "zero_p": 1.0}]]}]
    x = np.ones((1, 4, 25, 3), np.float32)
    train = build_skeleton_pipeline(spec, train=True)
    outcomes = {int((train(x, np.random.default_rng(seed)) == 0).all()) for seed in range(20)}
    assert outcomes == {0, 1}                         # both branches ran
    assert np.array_equal(build_skeleton_pipeline(spec, train=False)(x, np.random.default_rng(0)), x)
    with pytest.raises(ValueError, match="one probability per choice"):
        build_skeleton_pipeline([{"name": "one_of", "choices": [[]], "p": [0.3, 0.7]}])
