"""FineTec's completion network, masking types, loss and the robustness command's finetec path."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from actionfusion.errors import UsageError
from actionfusion.modalities.skeleton.completion import complete_interpolate
from actionfusion.modalities.skeleton.corruption import corrupt, lost_frames
from actionfusion.modalities.skeleton.finetec_completion import FineTecCompletion, interpolate_observed
from actionfusion.modalities.skeleton.finetec_masking import MASK_TYPES, sample_frame_masks
from actionfusion.objectives import create_objective
from actionfusion.objectives.finetec import masked_squared_error
from actionfusion.pipeline.checkpoints import save_weights
from actionfusion.pipeline.robustness import CorruptionStep, load_completion_network

T, V, C = 16, 25, 3


def small_network(**kwargs) -> FineTecCompletion:
    options = dict(num_frames=T, num_joints=V, in_channels=C, dim=16, depth=2, temporal_hidden=16,
                   spatial_hidden=16, channel_hidden=32, num_prototypes=4)
    return FineTecCompletion(**(options | kwargs))


def linear_motion(n: int, seed: int = 0) -> torch.Tensor:
    """[n, T, V, C]: every joint moves on a straight line at constant speed (no coordinate is zero)."""
    g = torch.Generator().manual_seed(seed)
    start = torch.rand(n, 1, V, C, generator=g) + 0.5
    velocity = (torch.rand(n, 1, V, C, generator=g) - 0.5) * 0.1
    return start + velocity * torch.arange(T, dtype=torch.float32).view(1, T, 1, 1)


def test_shapes_and_observed_joints_unchanged() -> None:
    torch.manual_seed(0)
    net = small_network()
    with torch.no_grad():  # make the residual non-zero, so that keeping observed entries is a real property
        net.out.weight.normal_()
        net.out.bias.normal_()
    x = torch.randn(3, T, V, C)
    observed = torch.rand(3, T, V) > 0.5
    out = net.complete(x * observed.unsqueeze(-1), observed)
    assert out.completed.shape == out.raw.shape == out.prior.shape == (3, T, V, C)
    assert torch.equal(out.completed[observed], x[observed])
    assert not torch.allclose(out.completed[~observed], out.raw[~observed] * 0)
    assert not torch.allclose(out.raw[observed], x[observed])
    feats = net.forward_features(torch.randn(2, 2, T, V, C))
    assert feats.pooled.shape == (2, 16) and feats.sequence.shape == (2, T, 16)
    with pytest.raises(ValueError, match="completion network takes"):
        net.complete(torch.randn(1, T + 1, V, C), torch.ones(1, T + 1, V, dtype=torch.bool))


def test_untrained_network_is_linear_interpolation() -> None:
    """The zero-initialised residual on the interpolated fill: the numpy ``interpolate`` completion exactly."""
    net = small_network()
    x = np.random.default_rng(0).standard_normal((2, T, V, C)).astype(np.float32) + 3.0
    clip = corrupt(x, "block_drop", "moderate", 0)
    got = net.complete_clip(clip.in_place(), clip.observed)
    np.testing.assert_allclose(got, complete_interpolate(clip), atol=1e-5)
    absent = x.copy()
    absent[1] = 0  # a padding person stays zero
    clip = corrupt(absent, "frame_drop", "severe", 0)
    assert not net.complete_clip(clip.in_place(), clip.observed)[1].any()


def test_interpolate_observed_exact_on_linear_motion() -> None:
    x = linear_motion(2)
    observed = torch.zeros(2, T, V, dtype=torch.bool)
    observed[:, [0, 5, 15]] = True
    torch.testing.assert_close(interpolate_observed(x * observed.unsqueeze(-1), observed), x)


@pytest.mark.parametrize("kind", list(MASK_TYPES))
@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.75])
def test_each_masking_type_hides_its_share(kind: str, ratio: float) -> None:
    for frames in (16, 17, 32):
        masks = sample_frame_masks(20, frames, (kind,), (ratio,), torch.Generator().manual_seed(1))
        assert masks.shape == (20, frames) and masks.dtype == torch.bool
        assert ((~masks).sum(dim=1) == lost_frames(frames, ratio)).all()
        lost = lost_frames(frames, ratio)
        hidden = (~masks[0]).nonzero().flatten()
        if kind == "prefix":
            assert hidden.tolist() == list(range(lost))
        elif kind == "suffix":
            assert hidden.tolist() == list(range(frames - lost, frames))
        elif kind == "in_between":
            assert (hidden.diff() == 1).all() and masks[:, 0].all() and masks[:, -1].all()
        elif kind == "pattern":
            assert torch.equal(masks[0], masks[1])  # deterministic
    with pytest.raises(Exception, match="unknown masking types"):
        sample_frame_masks(2, 16, ("spiral",))


def test_loss_reads_the_right_entries() -> None:
    pred, target = torch.zeros(1, 2, 1, 2), torch.tensor([[[[1.0, 1.0]], [[3.0, 3.0]]]])
    assert float(masked_squared_error(pred, target, torch.tensor([[[True], [False]]]))) == 1.0
    assert float(masked_squared_error(pred, target, torch.tensor([[[False], [True]]]))) == 9.0
    assert float(masked_squared_error(pred, target, torch.zeros(1, 2, 1, dtype=torch.bool))) == 0.0
    objective = create_objective("finetec_completion")
    bodies = linear_motion(4)
    present = torch.ones(4, T, V, dtype=torch.bool)
    observed = present.clone()
    observed[:, 4:8] = False

    class Out:  # a completion exact on hidden entries but off on observed ones
        completed = bodies.clone()
        raw = bodies + 1.0 * observed.unsqueeze(-1)
        prior = None

    terms = objective.losses(Out, bodies, present, observed)
    assert float(terms["reconstruction"]) == 0.0 and float(terms["context"]) == pytest.approx(1.0)
    Out.completed = bodies + 2.0 * observed.unsqueeze(-1)  # off only where observed: the first term ignores it
    assert float(objective.losses(Out, bodies, present, observed)["reconstruction"]) == 0.0


def test_padding_persons_left_out_of_the_pairs() -> None:
    clean = torch.zeros(3, 2, T, V, C)
    clean[:, 0] = linear_motion(3)
    bodies, present, observed = create_objective("finetec_completion").pairs(clean)
    assert bodies.shape == (3, T, V, C) and present.all() and (observed.sum(dim=(1, 2)) < T * V).all()


def test_a_few_steps_reduce_the_loss() -> None:
    torch.manual_seed(0)
    net = small_network(initial_fill="zeros")
    objective = create_objective("finetec_completion", ratios=(0.5,))
    batch = {"skeleton": rearrange_persons(linear_motion(8))}
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        torch.manual_seed(1)  # the same masks at every step
        out = objective(net, batch)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(float(out.loss.detach()))
    assert losses[-1] < 0.5 * losses[0]


def rearrange_persons(bodies: torch.Tensor) -> torch.Tensor:
    """[N, T, V, C] -> [N, 1, T, V, C]."""
    return bodies.unsqueeze(1)


def test_completion_weights_are_validated(tmp_path) -> None:
    net = small_network()
    weights = tmp_path / "encoder.safetensors"
    with pytest.raises(UsageError, match="no such file"):
        load_completion_network(weights, T, V)
    save_weights(weights, net)
    with pytest.raises(UsageError, match="encoder.json"):
        load_completion_network(weights, T, V)
    kwargs = dict(num_frames=T, num_joints=V, in_channels=C, dim=16, depth=2, temporal_hidden=16,
                  spatial_hidden=16, channel_hidden=32, num_prototypes=4)
    (tmp_path / "encoder.json").write_text(json.dumps({"model": {"name": "ctrgcn", "kwargs": {}}}))
    with pytest.raises(UsageError, match="not 'finetec_completion'"):
        load_completion_network(weights, T, V)
    (tmp_path / "encoder.json").write_text(json.dumps({"model": {"name": "finetec_completion", "kwargs": kwargs}}))
    with pytest.raises(UsageError, match="completes clips of 16 frames"):
        load_completion_network(weights, 32, V)
    loaded = load_completion_network(weights, T, V)
    x = np.random.default_rng(0).standard_normal((1, T, V, C)).astype(np.float32) + 3.0
    step = CorruptionStep("frame_drop", "severe", "finetec", "ntu25", 0, loaded)
    out = step(x, np.random.default_rng([0, 1]))
    assert out.shape == x.shape and out.dtype == np.float32
    (tmp_path / "w.pt").write_bytes(b"x")
    with pytest.raises(UsageError, match="safetensors"):
        load_completion_network(tmp_path / "w.pt", T, V)


def test_part_occlusion_masks_hide_whole_parts() -> None:
    from actionfusion.modalities.skeleton.finetec_masking import sample_part_masks
    from actionfusion.modalities.skeleton.occlusion_parts import occlusion_parts

    parts = occlusion_parts("ntu25")
    masks = sample_part_masks(50, V, 1.0, generator=torch.Generator().manual_seed(0))
    for keep in masks:
        hidden = set((~keep).nonzero().flatten().tolist())
        assert hidden and hidden == {j for p in ("left_arm", "right_arm", "legs") if set(parts[p]) <= hidden
                                     for j in parts[p]}
    assert sample_part_masks(10, V, 0.0).all()
    coco = occlusion_parts("coco17")
    for keep in sample_part_masks(20, 17, 1.0, layout="coco17", generator=torch.Generator().manual_seed(0)):
        hidden = set((~keep).nonzero().flatten().tolist())
        assert hidden and all(set(coco[p]) <= hidden or not set(coco[p]) & hidden for p in ("left_arm", "right_arm", "legs"))
    with pytest.raises(UsageError, match="occlusion_layout"):  # the layout's 25 joints against 17-joint clips
        sample_part_masks(4, 17, 1.0)
    clean = linear_motion(4).unsqueeze(1)
    _, present, observed = create_objective("finetec_completion", occlusion_prob=1.0).pairs(clean)
    assert (~observed).all(dim=1).any(dim=1).all()  # every body has joints hidden in every frame


def test_cli_refuses_bad_completion_weights(tmp_path, capsys) -> None:
    from actionfusion.pipeline.cli import main

    common = ["robustness", "configs/synthetic/ctrgcn.yaml", "--checkpoint", str(tmp_path / "none.safetensors"),
              "--levels", "severe", "--out", str(tmp_path / "out")]
    assert main(common + ["--completion", "finetec"]) == 2
    assert "--completion-weights" in capsys.readouterr().err
    assert main(common + ["--completion", "finetec", "--completion-weights", str(tmp_path / "w.safetensors")]) == 2
    err = capsys.readouterr().err
    assert "no such file" in err and len(err.strip().splitlines()) == 1
    assert main(common + ["--completion", "duplicate", "--completion-weights", "w.safetensors"]) == 2
    assert not (tmp_path / "out").exists()
