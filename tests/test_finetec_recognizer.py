"""FineTec's assembled recognizer (``finetec``): contract and shapes for NTU-25 and COCO-17, the
intermediate streams it builds (completion keeps observed joints, views perturbed exactly on their
subgroup, accelerations are those of the positions the backbone reads), gradients and freezing."""

from __future__ import annotations

from typing import Any, Dict, List

import pytest
import torch
from einops import rearrange
from torch import nn

from actionfusion.modalities.encoder_contract import check_encoder
from actionfusion.modalities.skeleton.ctrgcn import CTRGCN
from actionfusion.modalities.skeleton.finetec import FineTec
from actionfusion.modalities.skeleton.finetec_completion import FineTecCompletion, interpolate_observed
from actionfusion.modalities.skeleton.finetec_physics import finite_difference_acceleration
from actionfusion.modalities.skeleton.finetec_regions import dynamic_joints
from actionfusion.registry import create_model

pytestmark = pytest.mark.usefixtures("one_thread")

FRAMES = 8
SMALL_COMPLETION = {"dim": 16, "depth": 1, "temporal_hidden": 8, "spatial_hidden": 8, "channel_hidden": 16,
                    "num_prototypes": 4}
JOINTS = {"ntu25": 25, "coco17": 17}


def small(layout: str = "ntu25", num_classes: int = 5, **kwargs: Any) -> FineTec:
    torch.manual_seed(0)
    options: Dict[str, Any] = {"num_frames": FRAMES, "completion_kwargs": SMALL_COMPLETION,
                               "backbone_kwargs": {"base_channels": 8}}
    options.update(kwargs)
    return create_model("finetec", num_classes=num_classes, layout=layout, **options)


def clip(layout: str = "ntu25", batch: int = 3, absent_second: bool = True) -> torch.Tensor:
    """[N, 2, T, V, 3] smooth random motion (no exact zeros); the second person absent if asked."""
    g = torch.Generator().manual_seed(1)
    v = JOINTS[layout]
    t = torch.linspace(0, 1, FRAMES).view(1, 1, FRAMES, 1, 1)
    speed = torch.randn(batch, 2, 1, v, 3, generator=g)
    x = 0.5 + torch.rand(batch, 2, 1, v, 3, generator=g) + speed * t + 0.3 * speed.abs() * t ** 2
    if absent_second:
        x[:, 1] = 0
    return x


def drop_frames(x: torch.Tensor, frames: List[int]) -> torch.Tensor:
    x = x.clone()
    x[:, :, frames] = 0
    return x


def accel(x: torch.Tensor) -> torch.Tensor:
    """The physics module's finite difference applied independently on the time axis of [N, M, T, V, C]."""
    return rearrange(finite_difference_acceleration(rearrange(x, "n m t v c -> n m v t c")), "n m v t c -> n m t v c")


def randomise_completion_output(model: FineTec) -> None:
    """The completion's output layer is zero-initialised (it starts as interpolation): give it weights."""
    assert model.completion is not None
    with torch.no_grad():
        model.completion.out.weight.normal_(0, 0.5, generator=torch.Generator().manual_seed(3))
        model.completion.out.bias.fill_(0.25)


@pytest.mark.parametrize("layout", ["ntu25", "coco17"])
@pytest.mark.parametrize("fusion", ["concat", "late"])
@torch.no_grad()
def test_contract_and_shapes(layout: str, fusion: str) -> None:
    model = small(layout, 5, fusion=fusion).eval()
    check_encoder(model)
    x = clip(layout)
    feats = model.forward_features(x)
    width = 32 if fusion == "concat" else 64  # CTR-GCN at base_channels 8 ends at 32 channels (x2 for late)
    assert model.num_features == width
    assert feats.pooled.shape == (3, width) and feats.sequence.shape == (3, FRAMES // 4, width)
    assert feats.spatial is not None and feats.spatial.shape == (3, width, FRAMES // 4, JOINTS[layout])
    assert model(x).shape == (3, 5)
    torch.testing.assert_close(model.forward_head(feats, pre_logits=True), feats.pooled)
    bare = small(layout, 0, fusion=fusion).eval()
    torch.testing.assert_close(bare(x), bare.forward_features(x).pooled)
    bare.reset_classifier(5)
    assert {k: v.shape for k, v in bare.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}


def test_concat_backbone_reads_six_streams_and_parameters_add_up() -> None:
    model = small("ntu25", 5)
    assert model.backbone.data_bn.bn.num_features == 2 * 25 * 18  # persons x joints x (6 streams x 3 channels)
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    completion = FineTecCompletion(num_classes=0, num_frames=FRAMES, num_joints=25, in_channels=3, **SMALL_COMPLETION)
    backbone = CTRGCN(num_classes=0, in_channels=18, base_channels=8)
    assert n(model) == n(completion) + n(backbone) + (32 * 5 + 5)
    # the shipped config's size (configs/synthetic/finetec.yaml: defaults, 60 classes)
    assert n(create_model("finetec", num_classes=60)) == 1_561_815


def test_wrong_joint_count_or_clip_length_is_refused() -> None:
    model = small("coco17")
    with pytest.raises(ValueError, match="17"):
        model(clip("ntu25"))
    with pytest.raises(ValueError, match="frames"):
        small("ntu25")(torch.ones(1, 2, FRAMES + 1, 25, 3))


@pytest.mark.parametrize("layout", ["ntu25", "coco17"])
@torch.no_grad()
def test_accelerations_are_those_of_the_positions_the_backbone_reads(layout: str) -> None:
    x = drop_frames(clip(layout, absent_second=False), [2, 5])
    for perturb in ("off", "seeded"):
        model = small(layout, perturb=perturb, sigma=0.1).eval()
        s = model.streams(x)
        for pos, acc in ((s.base, s.acc_base), (s.dyna, s.acc_dyna), (s.stat, s.acc_stat)):
            torch.testing.assert_close(acc, accel(pos))
        if perturb == "off":
            assert torch.equal(s.dyna, s.base) and torch.equal(s.stat, s.base)
        else:
            assert not torch.equal(s.dyna, s.base) and not torch.equal(s.stat, s.base)
        seen = {}

        def capture(inputs: torch.Tensor, original: Any = model.backbone.forward_features) -> Any:
            seen["x"] = inputs
            return original(inputs)

        model.backbone.forward_features = capture  # type: ignore[method-assign]
        model(x)
        expected = torch.cat([s.base, s.dyna, s.stat, s.acc_base, s.acc_dyna, s.acc_stat], dim=-1)
        torch.testing.assert_close(seen["x"], expected)  # "seeded" eval noise is the same at every forward


@torch.no_grad()
def test_completion_keeps_observed_joints_and_fills_the_rest() -> None:
    clean = clip("ntu25")
    x = drop_frames(clean, [0, 3, 4])
    x[:, 0, :, 7] = 0  # one joint never observed
    model = small("ntu25").eval()
    randomise_completion_output(model)
    s = model.streams(x)
    observed = x.abs().sum(-1) > 0
    assert torch.equal(s.observed, observed)
    assert torch.equal(s.base[observed], x[observed])  # observed joints unchanged
    hidden = ~observed[:, 0]  # person 0's lost entries are filled by the network, not by interpolation
    assert (s.base[:, 0][hidden].abs().sum(-1) > 0).all()
    flat = interpolate_observed(x[:, 0], observed[:, 0])
    assert not torch.allclose(s.base[:, 0][hidden], flat[hidden])
    assert torch.equal(s.base[:, 1], torch.zeros_like(s.base[:, 1]))  # an absent person stays absent
    interpolating = small("ntu25", completion="interpolate").eval()
    torch.testing.assert_close(interpolating.streams(x).base[:, 0], flat)
    assert torch.equal(small("ntu25", completion="none").eval().streams(x).base, x)


@pytest.mark.parametrize("layout", ["ntu25", "coco17"])
@torch.no_grad()
def test_views_differ_from_base_exactly_on_their_subgroup(layout: str) -> None:
    x = clip(layout)
    model = small(layout, sigma=0.1).train()
    s = model.streams(x)
    assert torch.equal(s.dynamic, dynamic_joints(s.base, layout))
    assert s.dynamic.any(1).all() and (~s.dynamic).any(1).all()
    present = torch.zeros(x.shape[:2], dtype=torch.bool)
    present[:, 0] = True
    expected_dyna = present[:, :, None, None] & s.dynamic[:, None, None, :]  # [N, M, 1, V]
    expected_stat = present[:, :, None, None] & ~s.dynamic[:, None, None, :]
    changed_dyna = (s.dyna != s.base).any(-1)  # [N, M, T, V]
    changed_stat = (s.stat != s.base).any(-1)
    assert torch.equal(changed_dyna, expected_dyna.expand_as(changed_dyna))
    assert torch.equal(changed_stat, expected_stat.expand_as(changed_stat))
    model.eval()  # perturb="train": no noise in evaluation
    s = model.streams(x)
    assert torch.equal(s.dyna, s.base) and torch.equal(s.stat, s.base)


def test_training_frame_drop_hides_whole_frames_of_every_person_in_training_only() -> None:
    x = clip("ntu25", batch=6, absent_second=False)
    model = small("ntu25", train_frame_drop=1.0, train_drop_types=["prefix"], train_drop_ratios=[0.5])
    with torch.no_grad():
        lost = model.train().streams(x).observed
        assert torch.equal(lost[:, :, : FRAMES // 2], torch.zeros_like(lost[:, :, : FRAMES // 2]))
        assert lost[:, :, FRAMES // 2:].all()
        assert model.eval().streams(x).observed.all()


def _grad_norm(module: nn.Module) -> float:
    return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)


@pytest.mark.parametrize("physics", ["finite_difference", "euler_lagrange"])
def test_gradient_reaches_backbone_and_unfrozen_completion(physics: str) -> None:
    model = small("ntu25", physics=physics, physics_kwargs={"hidden": 8} if physics == "euler_lagrange" else None)
    model.train()
    model(drop_frames(clip("ntu25"), [1, 6])).logsumexp(-1).sum().backward()
    assert _grad_norm(model.backbone) > 0 and _grad_norm(model.head) > 0
    assert model.completion is not None and model.completion.out.weight.grad is not None
    assert float(model.completion.out.weight.grad.abs().sum()) > 0
    if model.physics is not None:
        assert _grad_norm(model.physics) > 0


def test_frozen_completion_gets_no_gradient_and_stays_in_eval_mode() -> None:
    model = small("ntu25", freeze_completion=True)
    model.train()
    assert model.completion is not None and not model.completion.training and model.backbone.training
    model(drop_frames(clip("ntu25"), [1, 6])).logsumexp(-1).sum().backward()
    assert all(p.grad is None for p in model.completion.parameters())
    assert _grad_norm(model.backbone) > 0
