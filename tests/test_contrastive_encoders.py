"""The encoders of the contrastive skeleton methods: ST-GCN as HiCLR/AimCLR configure it (``stgcn_clr``),
HaLP's bidirectional GRU (``bigru``) and MS-CLR's unified multi-convention ST-GCN (``stgcn_unified``).

Sizes are asserted exactly, with the count worked out in a comment; the behaviour tests check what only
a correct implementation does (graph augmentations keep the adjacency's sum and vanish in eval mode,
padded joints never reach a real one, the GRU is bidirectional)."""

from __future__ import annotations

import copy
from typing import Dict, List

import pytest
import torch
from torch import nn

from actionfusion.modalities.encoder_contract import check_encoder
from actionfusion.modalities.skeleton.bigru import BiGRU
from actionfusion.modalities.skeleton.graphs import stgcn_spatial_partition
from actionfusion.modalities.skeleton.layouts import layout_graph
from actionfusion.modalities.skeleton.stgcn import (
    STGCN,
    STGCN_STAGES,
    add_adjacency_entries,
    drop_adjacency_entries,
    stgcn_stages,
)
from actionfusion.modalities.skeleton.stgcn_unified import DEFAULT_CONVENTIONS, UnifiedSTGCN, padded_partition
from actionfusion.registry import create_model, list_models

pytestmark = pytest.mark.usefixtures("one_thread")

JOINTS = {"ntu25": 25, "coco17": 17, "blazepose33": 33}


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def build(name: str, **kwargs: object) -> nn.Module:
    torch.manual_seed(0)
    return create_model(name, **kwargs)


# ---------------------------------------------------------------- sizes


def stgcn_block_params(c_in: int, c_out: int, stride: int, residual: bool, k: int = 3) -> int:
    """One st_gcn block: graph conv (1x1, C_in -> K C_out, bias) + BN + 9x1 conv (bias) + BN
    [+ residual 1x1 conv + BN when the shape changes]."""
    count = (c_in * k * c_out + k * c_out) + 2 * c_out + (9 * c_out * c_out + c_out) + 2 * c_out
    if residual and (c_in != c_out or stride != 1):
        count += c_in * c_out + c_out + 2 * c_out
    return count


def test_stgcn_clr_has_the_hiclr_size() -> None:
    # h = 16, hidden_dim 256, K = 3, V = 25, C = 3:
    #   blocks 3->16 (no residual) 2,576; 3 x 16->16 3 x 3,200; 16->32 /2 11,616; 2 x 32->32 2 x 12,544;
    #   32->64 /2 45,760; 64->64 49,664; 64->256 658,176  -> 802,480
    #   data BN 2 * 25 * 3 = 150; edge importance 10 * 3 * 25 * 25 = 18,750
    #   -> 821,380 without a classifier; + 256 * 60 + 60 = 15,420 -> 836,800 at 60 classes
    expected_blocks = [2_576, 3_200, 3_200, 3_200, 11_616, 12_544, 12_544, 45_760, 49_664, 658_176]
    stages = stgcn_stages(16, 256)
    widths = [3] + [c for c, _ in stages]
    assert [stgcn_block_params(widths[i], c, s, i > 0) for i, (c, s) in enumerate(stages)] == expected_blocks
    assert sum(expected_blocks) + 150 + 18_750 == 821_380

    bare = build("stgcn_clr", num_classes=0)
    assert n_params(bare) == 821_380 and bare.num_features == 256 and bare.head is None
    assert [n_params(block) for block in bare.blocks] == expected_blocks
    assert n_params(build("stgcn_clr", num_classes=60)) == 836_800
    assert [(b.gcn.conv.out_channels // 3, b.tcn[2].conv.stride[0]) for b in bare.blocks] == list(stages)
    assert bare.blocks[0].residual is None and not bare.data_bn.per_person  # HiCLR: BatchNorm1d(V * C), shared


def test_stgcn_defaults_are_unchanged() -> None:
    assert STGCN_STAGES == ((64, 1), (64, 1), (64, 1), (64, 1), (128, 2), (128, 1), (128, 1), (256, 2),
                            (256, 1), (256, 1))
    default = build("stgcn")
    assert n_params(default) == 3_098_832 and default.edge_drop == 0.0 and default.edge_add == 0.0
    explicit = build("stgcn", hidden_channels=64, hidden_dim=256)
    assert list(default.state_dict()) == list(explicit.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(default.state_dict().values(), explicit.state_dict().values()))


def test_bigru_has_the_halp_size() -> None:
    # F = V * C * M = 150 inputs, H = 1024, 3 layers, bidirectional. A GRU direction of input I has
    # weight_ih 3H x I, weight_hh 3H x H and two biases of 3H: 3H (I + H + 2).
    #   layer 0: 2 * 3072 * (150 + 1024 + 2) = 7,225,344; layers 1, 2 (I = 2H): 2 * 3072 * 3074 = 18,886,656 each
    #   input BN 2 * 150 = 300 -> 44,998,956; + 2048 * 60 + 60 = 122,940 -> 45,121,896 at 60 classes
    h, f = 1024, 150
    assert 300 + 2 * 3 * h * (f + h + 2) + 2 * (2 * 3 * h * (2 * h + h + 2)) == 44_998_956
    model = build("bigru", num_classes=0)
    assert model.in_features == 150 and model.num_features == 2048
    assert model.gru.bidirectional and model.gru.num_layers == 3 and model.gru.hidden_size == 1024
    assert n_params(model) == 44_998_956
    assert model.head is None
    model.reset_classifier(60)
    assert n_params(model) == 45_121_896


def test_stgcn_unified_size() -> None:
    # the stgcn_clr blocks (802,480) + per-convention data BN 2 * 3 * (25 + 17 + 33) = 450
    # + edge importance 10 * 3 * 33 * 33 = 32,670 -> 835,600; + 15,420 at 60 classes -> 851,020
    model = build("stgcn_unified", num_classes=0)
    assert model.conventions == DEFAULT_CONVENTIONS and model.num_joints == 33
    assert n_params(model) == 835_600
    assert n_params(build("stgcn_unified", num_classes=60)) == 851_020


# ---------------------------------------------------------------- contract and shapes

SMALL: Dict[str, Dict[str, object]] = {
    "stgcn_clr": {"hidden_channels": 4, "hidden_dim": 8},
    "bigru": {"hidden_size": 6, "num_layers": 2},
    "stgcn_unified": {"hidden_channels": 4, "hidden_dim": 8},
}


@pytest.mark.parametrize("name", sorted(SMALL))
@torch.no_grad()
def test_contract_and_shapes(name: str) -> None:
    assert name in list_models(modality="skeleton")
    x = randn(2, 2, 12, 25, 3)
    bare = build(name, num_classes=0, **SMALL[name]).eval()
    full = build(name, num_classes=5, **SMALL[name]).eval()
    for model in (bare, full):
        check_encoder(model)
        assert model.input_keys == ("skeleton",)
    assert bare.get_classifier() is None and not any(k.startswith("head.") for k in bare.state_dict())
    feats = bare.forward_features(x)
    d = bare.num_features
    t_out = 12 if name == "bigru" else 3  # the GCNs stride twice
    assert feats.pooled.shape == (2, d) and feats.sequence.shape == (2, t_out, d)
    torch.testing.assert_close(bare(x), feats.pooled)
    assert full(x).shape == (2, 5)
    full_feats = full.forward_features(x)
    torch.testing.assert_close(full.forward_head(full_feats, pre_logits=True), full_feats.pooled)
    if name != "bigru":
        assert feats.spatial.shape == (2, d, 3, 25)
    bare.reset_classifier(5)
    assert n_params(bare) == n_params(full) and bare(x).shape == (2, 5)


def test_unified_shapes_per_convention() -> None:
    model = build("stgcn_unified", num_classes=0, **SMALL["stgcn_unified"]).eval()
    for convention, v in JOINTS.items():
        feats = model.forward_features(randn(2, 1, 8, v, 3), convention=convention)
        assert feats.spatial.shape == (2, 8, 2, v) and feats.pooled.shape == (2, 8)
    assert model(randn(1, 1, 8, 17, 3), convention="coco17").shape == (1, 8)
    with pytest.raises(ValueError, match="17 joints"):
        model(randn(1, 1, 8, 25, 3), convention="coco17")
    with pytest.raises(ValueError, match="unknown convention"):
        model(randn(1, 1, 8, 20, 3), convention="nw_ucla20")


def test_bigru_rejects_a_wrong_layout() -> None:
    model = build("bigru", num_classes=0, **SMALL["bigru"])
    with pytest.raises(ValueError, match="M, V, C"):
        model(randn(2, 1, 8, 25, 3))


# ---------------------------------------------------------------- graph augmentations


def test_edge_drop_keeps_the_sum_and_only_removes_entries() -> None:
    torch.manual_seed(0)
    a = torch.from_numpy(stgcn_spatial_partition(layout_graph("ntu25")))
    dropped_any = False
    for _ in range(20):
        out = drop_adjacency_entries(a, 0.9)
        torch.testing.assert_close(out.sum(), a.sum())
        assert torch.all(out[a == 0] == 0)
        dropped_any |= bool(((out == 0) & (a != 0)).any())
    assert dropped_any
    assert drop_adjacency_entries(a, 0.0) is a
    one = torch.zeros(3, 3)
    one[1, 2] = 0.5
    for _ in range(20):  # dropping the only entry would divide by zero upstream; the input comes back
        assert torch.equal(drop_adjacency_entries(one, 0.99), one)


def test_edge_add_keeps_the_sum_and_only_adds_allowed_unit_entries() -> None:
    torch.manual_seed(0)
    a = torch.from_numpy(stgcn_spatial_partition(layout_graph("coco17")))
    allowed = torch.zeros(17, 17, dtype=torch.bool)
    allowed[:10, :10] = True
    added_any = False
    for _ in range(20):
        out = add_adjacency_entries(a, 0.5, allowed)
        torch.testing.assert_close(out.sum(), a.sum())
        scale = a.sum() / (a.sum() + ((out != 0) & (a == 0)).sum())
        torch.testing.assert_close(out[a != 0], a[a != 0] * scale)  # old entries only rescaled
        new = (out != 0) & (a == 0)
        assert not new[:, ~allowed].any()
        torch.testing.assert_close(out[new], torch.full_like(out[new], float(scale)))
        added_any |= bool(new.any())
    assert added_any


@pytest.mark.parametrize("name", ("stgcn_clr", "stgcn_unified"))
def test_edge_augmentation_acts_in_training_only(name: str) -> None:
    model = build(name, num_classes=0, edge_drop=0.5, edge_add=0.2, **SMALL[name])
    conv = {} if name == "stgcn_clr" else {"convention": "coco17"}
    base = model.A if name == "stgcn_clr" else model.adjacency("coco17")
    model.eval()
    for i in range(len(model.blocks)):
        assert torch.equal(model.block_adjacency(i, **conv), base * model.edge_importance[i])
    model.train()
    torch.manual_seed(1)
    augmented = [model.block_adjacency(i, **conv) for i in range(len(model.blocks))]
    assert not torch.equal(augmented[0], base) and not torch.equal(augmented[0], augmented[1])  # per block
    for a in augmented:  # edge importance starts at one, so the sum is the partition's
        torch.testing.assert_close(a.sum(), base.sum())
        if name == "stgcn_unified":
            assert not a[:, 17:].any() and not a[:, :, 17:].any()  # no edge reaches a padded slot
    x = randn(2, 2, 8, 25 if name == "stgcn_clr" else 17, 3)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x, **conv), model(x, **conv))  # deterministic in eval


# ---------------------------------------------------------------- unified: padded joints stay out


@pytest.mark.parametrize("convention", DEFAULT_CONVENTIONS)
def test_unified_adjacency_is_the_layout_partition_zero_padded(convention: str) -> None:
    model = build("stgcn_unified", num_classes=0, **SMALL["stgcn_unified"])
    v = JOINTS[convention]
    a = model.adjacency(convention)
    assert a.shape == (3, 33, 33)
    torch.testing.assert_close(a[:, :v, :v], torch.from_numpy(stgcn_spatial_partition(layout_graph(convention))))
    assert not a[:, v:].any() and not a[:, :, v:].any()
    assert torch.equal(model.joint_mask(convention), (torch.arange(33) < v).float())


@pytest.mark.parametrize("convention", ("ntu25", "coco17"))
def test_unified_ignores_padded_slots_in_training(convention: str) -> None:
    model = build("stgcn_unified", num_classes=0, block_dropout=0.0, **SMALL["stgcn_unified"]).train()
    v = JOINTS[convention]
    x = randn(3, 2, 8, v, 3)
    clean = model.forward_features(x, convention=convention)
    padded = model.pad_joints(x, convention)
    padded[:, :, :, v:] = 1e3 * randn(3, 2, 8, 33 - v, 3, seed=5)
    padded.requires_grad_(True)
    dirty = model.forward_padded(padded, convention)
    torch.testing.assert_close(dirty.pooled, clean.pooled, rtol=0, atol=0)
    torch.testing.assert_close(dirty.spatial, clean.spatial, rtol=0, atol=0)
    dirty.spatial.square().sum().backward()  # no path from a padded slot to any output
    assert torch.all(padded.grad[:, :, :, v:] == 0) and padded.grad[:, :, :, :v].abs().sum() > 0


def test_unified_blocks_never_pass_padded_values_to_real_joints() -> None:
    """Garbage in the padded slots before every block (eval mode) changes nothing."""
    model = build("stgcn_unified", num_classes=0, **SMALL["stgcn_unified"]).eval()
    x = randn(2, 2, 8, 17, 3)
    with torch.no_grad():
        clean = model(x, convention="coco17")
    handles: List[torch.utils.hooks.RemovableHandle] = []

    def inject(module: nn.Module, args: tuple) -> tuple:
        h, a = args
        h = h.clone()
        h[..., 17:] = 1e3 * torch.randn_like(h[..., 17:])
        return h, a

    for block in model.blocks:
        handles.append(block.register_forward_pre_hook(inject))
    try:
        with torch.no_grad():
            torch.testing.assert_close(model(x, convention="coco17"), clean, rtol=0, atol=0)
    finally:
        for handle in handles:
            handle.remove()


@pytest.mark.parametrize("convention", DEFAULT_CONVENTIONS)
@torch.no_grad()
def test_unified_in_eval_equals_a_plain_stgcn_on_the_real_joints(convention: str) -> None:
    """With the same weights, the padded network is the convention's own ST-GCN (edge importance sliced)."""
    unified = build("stgcn_unified", num_classes=0, **SMALL["stgcn_unified"]).eval()
    v = JOINTS[convention]
    for p in unified.edge_importance:  # non-trivial importance, different on padded entries too
        p.uniform_(0.5, 1.5)
    plain = STGCN(num_classes=0, hidden_channels=4, hidden_dim=8,
                  adjacency=padded_partition(convention, v)).eval()
    state = {}
    for key in plain.state_dict():
        if key == "A":
            state[key] = plain.A
        elif key.startswith("data_bn."):
            state[key] = unified.state_dict()[f"data_bn.{convention}." + key[len("data_bn."):]]
        elif key.startswith("edge_importance."):
            state[key] = unified.state_dict()[key][:, :v, :v]
        else:
            state[key] = unified.state_dict()[key]
    plain.load_state_dict(state)
    x = randn(2, 2, 12, v, 3)
    expected = plain.forward_features(x)
    got = unified.forward_features(x, convention=convention)
    torch.testing.assert_close(got.pooled, expected.pooled)
    torch.testing.assert_close(got.spatial, expected.spatial)


# ---------------------------------------------------------------- BiGRU


def swap_directions(model: BiGRU) -> BiGRU:
    """The same GRU with its forward and backward weights exchanged (and the halves of each later
    layer's input weights swapped to match)."""
    swapped = copy.deepcopy(model)
    h = model.hidden_size
    with torch.no_grad():
        for layer in range(model.gru.num_layers):
            for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                fwd = getattr(model.gru, f"{kind}_l{layer}")
                bwd = getattr(model.gru, f"{kind}_l{layer}_reverse")
                if kind == "weight_ih" and layer > 0:
                    fwd, bwd = (torch.cat([w[:, h:], w[:, :h]], dim=1) for w in (fwd, bwd))
                getattr(swapped.gru, f"{kind}_l{layer}").copy_(bwd)
                getattr(swapped.gru, f"{kind}_l{layer}_reverse").copy_(fwd)
    return swapped


def halves_swapped(z: torch.Tensor, h: int) -> torch.Tensor:
    return torch.cat([z[..., h:], z[..., :h]], dim=-1)


@torch.no_grad()
def test_bigru_is_bidirectional() -> None:
    model = build("bigru", num_classes=0, hidden_size=6, num_layers=3).eval()
    x = randn(2, 2, 10, 25, 3)
    flipped = x.flip(2)
    feats = model.forward_features(x)
    assert not torch.allclose(model(flipped), feats.pooled)  # order matters
    # reading the clip backwards with the directions exchanged gives the same two halves, swapped
    mirrored = swap_directions(model).forward_features(flipped)
    torch.testing.assert_close(mirrored.pooled, halves_swapped(feats.pooled, 6))
    torch.testing.assert_close(mirrored.sequence, halves_swapped(feats.sequence.flip(1), 6))


@torch.no_grad()
def test_bigru_frame_vector_is_upstreams_v_c_m_order() -> None:
    model = build("bigru", num_classes=0, **SMALL["bigru"]).eval()
    x = randn(2, 2, 5, 25, 3)
    # HaLP: [N, C, T, V, M].permute(0, 2, 3, 1, 4).reshape(N, T, -1); here x is [N, M, T, V, C]
    upstream = x.permute(0, 4, 2, 3, 1).permute(0, 2, 3, 1, 4).reshape(2, 5, -1)
    eps = model.input_norm.eps
    torch.testing.assert_close(model.frame_vectors(x), upstream / (1 + eps) ** 0.5)  # fresh BN: x / sqrt(1 + eps)


@torch.no_grad()
def test_bigru_upstream_stepwise_readout_is_causal() -> None:
    stepwise = build("bigru", num_classes=0, hidden_size=6, num_layers=2, readout="upstream_stepwise").eval()
    final = build("bigru", num_classes=0, hidden_size=6, num_layers=2).eval()
    x = randn(2, 2, 7, 25, 3)
    y = x.clone()
    y[:, :, -1] += 1.0
    # stepwise: outputs before the last frame ignore it; in the true bidirectional readout they do not
    torch.testing.assert_close(stepwise.forward_features(y).sequence[:, :-1],
                               stepwise.forward_features(x).sequence[:, :-1])
    assert not torch.allclose(final.forward_features(y).sequence[:, :-1], final.forward_features(x).sequence[:, :-1])
    # one layer: the forward halves agree at every step, and upstream's "reverse" half is a plain
    # forward-in-time GRU with the reverse weights
    one = build("bigru", num_classes=0, hidden_size=6, num_layers=1, readout="upstream_stepwise").eval()
    one_final = build("bigru", num_classes=0, hidden_size=6, num_layers=1).eval()
    torch.testing.assert_close(one.forward_features(x).sequence[..., :6],
                               one_final.forward_features(x).sequence[..., :6])
    causal = nn.GRU(150, 6, batch_first=True)
    for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        getattr(causal, f"{kind}_l0").copy_(getattr(one.gru, f"{kind}_l0_reverse"))
    out, _ = causal(one.frame_vectors(x))
    torch.testing.assert_close(one.forward_features(x).pooled[:, 6:], out[:, -1])


# ---------------------------------------------------------------- training reduces a loss


@pytest.mark.parametrize("name", sorted(SMALL))
def test_a_few_steps_reduce_a_classification_loss(name: str) -> None:
    kwargs = dict(SMALL[name])
    if name != "bigru":
        kwargs["block_dropout"] = 0.0
    model = build(name, num_classes=3, **kwargs).train()
    x = randn(6, 2, 8, 25, 3, seed=3)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-2)
    losses = []
    for _ in range(20):
        loss = nn.functional.cross_entropy(model(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
