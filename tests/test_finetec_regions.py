"""FineTec's region decomposition and targeted perturbation (modalities/skeleton/finetec_regions.py)."""

from __future__ import annotations

import pytest
import torch

from actionfusion.modalities.skeleton.finetec_regions import (dynamic_joints, dynamic_static_views, finetec_regions,
                                                              motion_variance)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("layout,joints,sizes", [("ntu25", 25, [9, 5, 5, 3, 3]), ("coco17", 17, [9, 2, 2, 2, 2])])
def test_regions_partition_the_joints(layout: str, joints: int, sizes: list) -> None:
    regions = finetec_regions(layout)
    assert [len(ids) for _, ids in regions] == sizes
    assert sorted(j for _, ids in regions for j in ids) == list(range(joints))


def clip_with_speeds(speeds: torch.Tensor, frames: int = 12) -> torch.Tensor:
    """[1, 2, T, V, 3]: joint v oscillates with amplitude speeds[v]; the second person is absent."""
    t = torch.arange(frames, dtype=torch.float64)
    wave = torch.sin(t)[:, None, None] * speeds[None, :, None] * torch.tensor([1.0, 0.5, 0.2])
    x = torch.zeros(1, 2, frames, len(speeds), 3, dtype=torch.float64)
    x[0, 0] = wave + torch.arange(len(speeds), dtype=torch.float64)[None, :, None] + 1.0
    return x


def test_dynamic_joints_are_the_faster_half_of_each_region() -> None:
    speeds = torch.rand(25, generator=torch.Generator().manual_seed(0), dtype=torch.float64) + 0.1
    x = clip_with_speeds(speeds)
    variance = motion_variance(x)[0]
    assert torch.all(variance[1:] > 0)  # the absent person does not dilute the variance
    torch.testing.assert_close(variance / variance[0], speeds ** 2 / speeds[0] ** 2)
    dynamic = dynamic_joints(x)[0]
    for _, ids in finetec_regions("ntu25"):
        ids = list(ids)
        order = sorted(ids, key=lambda j: float(speeds[j]))
        assert dynamic[ids].sum() == len(ids) // 2  # above the median
        assert all(dynamic[j] for j in order[len(ids) - len(ids) // 2:])
    mean_split = dynamic_joints(x, threshold="mean")[0]
    assert mean_split.any() and not mean_split.all()


def test_perturbation_touches_only_its_subgroup() -> None:
    x = clip_with_speeds(torch.linspace(0.1, 2.0, 25, dtype=torch.float64))
    dynamic = dynamic_joints(x)[0]
    s_dyna, s_stat = dynamic_static_views(x, sigma=0.1, generator=torch.Generator().manual_seed(1))
    changed_dyna = (s_dyna != x).any(-1).any(2)[0, 0]  # [V] of person 0
    changed_stat = (s_stat != x).any(-1).any(2)[0, 0]
    assert torch.equal(changed_dyna, dynamic) and torch.equal(changed_stat, ~dynamic)
    assert torch.equal(s_dyna[0, 1], x[0, 1]) and torch.equal(s_stat[0, 1], x[0, 1])  # absent person untouched
    again, _ = dynamic_static_views(x, sigma=0.1, generator=torch.Generator().manual_seed(1))
    assert torch.equal(again, s_dyna)
