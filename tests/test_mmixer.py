"""M-Mixer fusion: CFEM reads only the other modalities, the MCU is a GRU over [x ; content],
absent modalities never leak, the module learns a cross-modal rule the per-modality baseline cannot."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from actionfusion.fusion.base import FusionOutput
from actionfusion.fusion.mmixer import MMixerFusion
from actionfusion.fusion.mmixer_cell import MCUCell
from actionfusion.modalities.features import EncoderOutput
from actionfusion.registry import create

DIMS = {"a": 6, "b": 10, "c": 4}
LENGTHS = {"a": 8, "b": 5, "c": 12}
SMALL = dict(hidden_dim=12, d_model=8, num_heads=2, num_queries=2)
VARIANTS = list(itertools.product(("global", "per_step", "both"), (True, False)))


pytestmark = pytest.mark.usefixtures("one_thread")


def encoder_output(sequence: torch.Tensor) -> EncoderOutput:
    return EncoderOutput(sequence=sequence, pooled=sequence.mean(dim=1))


def make_feats(batch: int = 4, seed: int = 0, names=tuple(DIMS)) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {m: encoder_output(torch.randn(batch, LENGTHS[m], DIMS[m], generator=g)) for m in names}


def all_present(feats: dict) -> dict:
    return {m: torch.ones(f.sequence.shape[0], dtype=torch.bool) for m, f in feats.items()}


def fusion(seed: int = 0, **options) -> MMixerFusion:
    torch.manual_seed(seed)
    return MMixerFusion(dims=DIMS, **{**SMALL, **options}).eval()


def test_registered_and_shapes():
    import actionfusion.fusion.mmixer  # noqa: F401  (registers "mmixer")

    module = create("fusion", "mmixer", dims=DIMS, **SMALL)
    assert isinstance(module, MMixerFusion)
    feats = make_feats()
    out = module(feats, all_present(feats))
    assert isinstance(out, FusionOutput)
    assert module.out_dim == 3 * 12 and out.pooled.shape == (4, 36)
    assert {m: tuple(b.shape) for m, b in out.branches.items()} == {m: (4, 12) for m in DIMS}
    assert out.aux == {}
    mean = fusion(combine="mean", readout="mean")
    assert mean.out_dim == 12 and mean(feats, all_present(feats)).pooled.shape == (4, 12)


@pytest.mark.parametrize("content,bank", VARIANTS)
def test_cross_modal_path_alive(content, bank):
    module = fusion(content=content, feature_bank=bank)
    feats = make_feats()
    changed = dict(feats, b=encoder_output(feats["b"].sequence + torch.randn_like(feats["b"].sequence)))
    with torch.no_grad():
        before = module(feats, all_present(feats)).branches["a"]
        after = module(changed, all_present(changed)).branches["a"]
    assert (before - after).abs().max() > 1e-4


@pytest.mark.parametrize("switch", [dict(use_cfem=False), dict(cross_modal=False)])
def test_no_cross_modal_switch_makes_branches_independent(switch):
    module = fusion(num_steps=5, **switch)   # a fixed T: the default follows the modalities that ran
    assert module.cfem is None
    feats = make_feats()
    changed = dict(feats, b=encoder_output(torch.randn_like(feats["b"].sequence) * 3.0))
    with torch.no_grad():
        out = module(feats, all_present(feats))
        out_changed = module(changed, all_present(changed))
        alone = module({"a": feats["a"]}, {"a": torch.ones(4, dtype=torch.bool)})
    assert torch.equal(out.branches["a"], out_changed.branches["a"])
    assert torch.equal(out.branches["a"], alone.branches["a"])
    assert not torch.equal(out.branches["b"], out_changed.branches["b"])


@pytest.mark.parametrize("content,bank", VARIANTS)
def test_cfem_queries_never_read_their_own_modality(content, bank):
    module = fusion(content=content, feature_bank=bank)
    feats = make_feats()
    changed = dict(feats, a=encoder_output(torch.randn_like(feats["a"].sequence) * 2.0))
    with torch.no_grad():
        content_before = module.cross_modal_content(feats, all_present(feats))
        content_after = module.cross_modal_content(changed, all_present(changed))
        branch_before = module(feats, all_present(feats)).branches["a"]
        branch_after = module(changed, all_present(changed)).branches["a"]
    assert torch.equal(content_before["a"], content_after["a"])          # c_a ignores a's own tokens
    assert not torch.allclose(content_before["b"], content_after["b"])    # ... while b's content reads a
    assert not torch.allclose(branch_before, branch_after)                # and a's MCU reads a


@pytest.mark.parametrize("content,bank", VARIANTS)
def test_any_subset_is_finite(content, bank):
    module = fusion(content=content, feature_bank=bank)
    feats = make_feats(batch=5)
    with torch.no_grad():
        for size in (1, 2):
            for names in itertools.combinations(DIMS, size):
                subset = {m: feats[m] for m in names}
                out = module(subset, all_present(subset))
                assert torch.isfinite(out.pooled).all() and set(out.branches) == set(names)
        # per-sample absence, features zeroed as the Recognizer does; sample 0 has only "a", sample 4 none of b/c
        present = {"a": torch.tensor([True, False, True, True, True]),
                   "b": torch.tensor([False, True, False, True, False]),
                   "c": torch.tensor([False, False, True, True, False])}
        zeroed = {m: encoder_output(f.sequence * present[m][:, None, None]) for m, f in feats.items()}
        out = module(zeroed, present)
    assert torch.isfinite(out.pooled).all()
    for m, flags in present.items():
        assert torch.equal(out.branches[m][~flags], torch.zeros_like(out.branches[m][~flags]))


@pytest.mark.parametrize("content,bank", VARIANTS)
def test_absent_modality_does_not_leak(content, bank):
    """A modality flagged absent (whatever its features hold) acts exactly like a missing key."""
    module = fusion(content=content, feature_bank=bank, num_steps=5)  # default T follows the keys that ran
    feats = make_feats()
    absent_b = dict(all_present(feats), b=torch.zeros(4, dtype=torch.bool))
    garbage = dict(feats, b=encoder_output(torch.randn_like(feats["b"].sequence) * 100.0))
    with torch.no_grad():
        flagged = module(feats, absent_b)
        flagged_garbage = module(garbage, absent_b)
        missing = module({"a": feats["a"], "c": feats["c"]}, {"a": absent_b["a"], "c": absent_b["c"]})
    torch.testing.assert_close(flagged.pooled, flagged_garbage.pooled, rtol=0, atol=1e-6)
    torch.testing.assert_close(flagged.branches["a"], missing.branches["a"], rtol=0, atol=1e-6)
    torch.testing.assert_close(flagged.pooled, missing.pooled, rtol=0, atol=1e-6)


def test_content_with_nothing_else_is_the_learned_absent_vector():
    module = fusion(content="global")
    feats = make_feats(names=("a",))
    with torch.no_grad():
        content = module.cross_modal_content(feats, all_present(feats))["a"]                # [B, d]
        cfem, d = module.cfem, module.cfem.d_model
        attn = cfem.attention
        value = F.linear(cfem.null_token, attn.in_proj_weight[2 * d:], attn.in_proj_bias[2 * d:])
        expected = cfem.norm(attn.out_proj(value))
    assert torch.isfinite(content).all()
    torch.testing.assert_close(content, expected.expand_as(content))


def test_mcu_reduces_to_gru():
    torch.manual_seed(0)
    cell = MCUCell(input_dim=7, hidden_dim=5, content_dim=3, cross_modal=True).double()
    plain = MCUCell(input_dim=7, hidden_dim=5, cross_modal=False).double()
    plain.load_state_dict({k: v for k, v in cell.state_dict().items() if k != "weight_ch"})
    x = torch.randn(4, 6, 7, dtype=torch.float64)
    zero_content = torch.zeros(4, 3, dtype=torch.float64)

    gru = torch.nn.GRUCell(7, 5).double()
    with torch.no_grad():
        for name in ("weight_ih", "bias_ih", "weight_hh", "bias_hh"):
            getattr(gru, name).copy_(getattr(cell, name))
        hidden, reference = torch.zeros(4, 5, dtype=torch.float64), []
        for t in range(6):
            hidden = gru(x[:, t], hidden)
            reference.append(hidden)
        reference = torch.stack(reference, dim=1)
        with_zero_content = cell(x, zero_content)
        switched_off = plain(x)
        with_content = cell(x, torch.randn(4, 3, dtype=torch.float64))
    torch.testing.assert_close(with_zero_content, reference, rtol=0, atol=1e-12)
    assert torch.equal(with_zero_content, switched_off)
    assert (with_content - reference).abs().max() > 1e-3
    with pytest.raises(ValueError):
        plain(x, zero_content)


def test_mcu_equations_with_content():
    """The MCU is the GRU of the docstring on [x ; c], written out here with F ops."""
    torch.manual_seed(1)
    cell = MCUCell(input_dim=4, hidden_dim=3, content_dim=2).double()
    x = torch.randn(2, 5, 4, dtype=torch.float64)
    c = torch.randn(2, 5, 2, dtype=torch.float64)
    w_i = torch.cat([cell.weight_ih, cell.weight_ch], dim=1)
    h = torch.zeros(2, 3, dtype=torch.float64)
    expected = []
    with torch.no_grad():
        for t in range(5):
            gi = F.linear(torch.cat([x[:, t], c[:, t]], dim=1), w_i, cell.bias_ih)
            gh = F.linear(h, cell.weight_hh, cell.bias_hh)
            r = torch.sigmoid(gi[:, 0:3] + gh[:, 0:3])
            z = torch.sigmoid(gi[:, 3:6] + gh[:, 3:6])
            n = torch.tanh(gi[:, 6:9] + r * gh[:, 6:9])
            h = (1 - z) * n + z * h
            expected.append(h)
        torch.testing.assert_close(cell(x, c), torch.stack(expected, dim=1), rtol=0, atol=1e-12)


def test_feature_bank_paths_and_shapes():
    feats = make_feats(batch=3)
    with_bank, without = fusion(content="both", feature_bank=True), fusion(content="both", feature_bank=False)
    names, flags, sequences, pooled = with_bank.aligned_inputs(feats, all_present(feats))
    steps = min(LENGTHS.values())
    assert all(s.shape[1] == steps for s in sequences.values())
    bank = with_bank.cfem.key_sets(sequences, pooled, flags)
    assert bank["global"].tokens.shape == (3, 3 * steps, 8) and bank["per_step"] is bank["global"]
    sets = without.cfem.key_sets(sequences, pooled, flags)
    assert sets["global"].tokens.shape == (3, 3, 8)                 # one clip token per modality
    assert sets["per_step"].tokens.shape == (3 * steps, 3, 8)       # same-step tokens, one group per step
    contents = with_bank.cross_modal_content(feats, all_present(feats))
    assert contents["a"].shape == (3, steps, 16)
    assert fusion(content="global").cross_modal_content(feats, all_present(feats))["a"].shape == (3, 8)

    # Without the bank, global content reads the clip tokens only: reversing b's sequence in time (its
    # pooled feature unchanged) leaves a's content as it was; the bank sees the order (temporal codes).
    reversed_b = dict(feats, b=EncoderOutput(feats["b"].sequence.flip(1), feats["b"].pooled))
    for bank_on, same in ((False, True), (True, False)):
        module = fusion(content="global", feature_bank=bank_on)
        with torch.no_grad():
            before = module.cross_modal_content(feats, all_present(feats))["a"]
            after = module.cross_modal_content(reversed_b, all_present(reversed_b))["a"]
        assert torch.equal(before, after) == same


def test_num_steps_option():
    module = fusion(num_steps=6, content="per_step")
    feats = make_feats()
    assert module.cross_modal_content(feats, all_present(feats))["b"].shape == (4, 6, 8)
    assert torch.isfinite(module(feats, all_present(feats)).pooled).all()


def test_parameter_count_formula():
    dims = {"a": 6, "b": 10}
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    small = dict(hidden_dim=5, d_model=8, num_heads=2, num_queries=3, temporal_embedding_steps=4)
    # content "both" with the bank: C = 2d = 16
    norms = 2 * 6 + 2 * 10                                           # input LayerNorms
    mcus = 15 * (6 + 5 + 2) + 15 * 16 + 15 * (10 + 5 + 2) + 15 * 16  # 3H(D+H+2) + 3HC per modality
    cfem = ((8 * 6 + 8) + (8 * 10 + 8)                               # projections
            + 2 * 8 + 2 * 3 * 8 + 2 * 8                              # modality emb, global queries, step queries
            + 4 * 8 + 8                                              # temporal embedding, null token
            + 4 * 8 * 8 + 4 * 8 + 2 * 8)                             # attention, content LayerNorm
    assert count(MMixerFusion(dims, content="both", feature_bank=True, **small)) == norms + mcus + cfem == 1530
    # global content without the bank, no input norm: C = d = 8, no step queries, no temporal embedding
    mcus = 15 * (6 + 5 + 2) + 15 * 8 + 15 * (10 + 5 + 2) + 15 * 8
    cfem = (8 * 6 + 8) + (8 * 10 + 8) + 2 * 8 + 2 * 3 * 8 + 8 + 4 * 8 * 8 + 4 * 8 + 2 * 8
    assert count(MMixerFusion(dims, content="global", feature_bank=False, input_norm=False, **small)) == mcus + cfem
    # the GRU baseline: norms and plain GRUs only
    assert count(MMixerFusion(dims, use_cfem=False, **small)) == norms + 15 * (6 + 5 + 2) + 15 * (10 + 5 + 2)


@pytest.mark.parametrize("content,bank", VARIANTS)
def test_gradients_reach_every_parameter(content, bank):
    module = fusion(content=content, feature_bank=bank).train()
    feats = make_feats()
    out = module(feats, all_present(feats))
    (out.pooled ** 2).sum().backward()
    dead = [n for n, p in module.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead


def xor_problem(n: int, seed: int):
    """Label = sign(s_a) XOR sign(s_b); s_a only in modality a's features, s_b only in b's."""
    g = torch.Generator().manual_seed(seed)
    directions = torch.randn(2, 8, generator=torch.Generator().manual_seed(123))
    s = torch.randn(2, n, generator=g)
    seqs = [s[i][:, None, None] * directions[i] + 0.1 * torch.randn(n, 4, 8, generator=g) for i in range(2)]
    feats = {"a": encoder_output(seqs[0]), "b": encoder_output(seqs[1])}
    return feats, ((s[0] > 0) ^ (s[1] > 0)).long()


def test_learns_a_rule_only_the_combination_decodes():
    def train(**options) -> float:
        torch.manual_seed(0)
        module = MMixerFusion({"a": 8, "b": 8}, hidden_dim=16, d_model=16, num_heads=2, num_queries=2, **options)
        head = torch.nn.Linear(module.out_dim, 2)
        optimizer = torch.optim.Adam([*module.parameters(), *head.parameters()], lr=1e-2)
        feats, labels = xor_problem(128, seed=0)
        for _ in range(40):
            loss = F.cross_entropy(head(module(feats, all_present(feats)).pooled), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        test_feats, test_labels = xor_problem(256, seed=1)
        with torch.no_grad():
            predicted = head(module(test_feats, all_present(test_feats)).pooled).argmax(1)
        return (predicted == test_labels).float().mean().item()

    assert train() >= 0.9
    assert train(use_cfem=False) <= 0.8      # separate GRUs + a linear head cannot decode XOR


def test_bad_input():
    module = fusion()
    feats = make_feats()
    with pytest.raises(ValueError):
        module({**feats, "rgb": feats["a"]}, all_present(feats))
    with pytest.raises(ValueError):
        module({}, {})
    for bad in (dict(content="local"), dict(readout="max"), dict(combine="sum"), dict(num_steps=0),
                dict(d_model=10, num_heads=4)):
        with pytest.raises(ValueError):
            MMixerFusion(DIMS, **{**SMALL, **bad})
