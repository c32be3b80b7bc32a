"""ACLNet's objective: the confusion bank's rules, superclasses, temperatures, both contrastive
losses against hand computations, the epoch schedule, its state, and a short training run."""

from __future__ import annotations

import json
import logging
import math
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import actionfusion.objectives.aclnet  # noqa: F401  (registers "aclnet")
from actionfusion.errors import UsageError
from actionfusion.modalities.skeleton.aclnet import ACLNet
from actionfusion.objectives import create_objective
from actionfusion.objectives.aclnet import ACLNetObjective, index_ranges
from actionfusion.objectives.aclnet_affinity import (
    class_affinity,
    confusion_increment,
    dynamic_temperature,
    inter_class_affinity_loss,
    intra_class_margin_loss,
    nearest_classes,
)

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[1]


def reference_bank_counts(labels: list, predictions: list, num_classes: int) -> torch.Tensor:
    """Upstream's double loop over the batch, literally."""
    bank = torch.zeros(num_classes, num_classes, dtype=torch.long)
    for i in range(len(labels)):
        if predictions[i] != labels[i]:
            bank[labels[i], predictions[i]] += 1
        for j in range(len(labels)):
            if predictions[j] == labels[i] and labels[j] != labels[i]:
                bank[labels[i], labels[j]] += 1
    return bank


def test_confusion_bank_counts_a_hand_made_batch() -> None:
    labels = torch.tensor([0, 0, 1, 2, 3])
    predictions = torch.tensor([0, 1, 0, 0, 3])
    # rule 1 (misclassified i: B[y_i, y_hat_i]): (0, 1), (1, 0), (2, 0)
    # rule 2 (pairs with y_hat_j = y_i != y_j): i in {0, 1} (class 0) with j = 2 (class 1) and j = 3
    #   (class 2), twice each; i = 2 (class 1) with j = 1 (class 0)
    expected = torch.zeros(4, 4, dtype=torch.long)
    expected[0, 1] = 1 + 2
    expected[0, 2] = 2
    expected[1, 0] = 1 + 1
    expected[2, 0] = 1
    assert torch.equal(confusion_increment(labels, predictions, 4), expected)
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        y, p = torch.randint(0, 6, (16,), generator=gen), torch.randint(0, 6, (16,), generator=gen)
        assert torch.equal(confusion_increment(y, p, 6), reference_bank_counts(y.tolist(), p.tolist(), 6))


HAND_BANK = torch.tensor([
    [0, 9, 8, 7, 0, 0],   # N = {1, 2, 3}
    [1, 0, 9, 8, 0, 0],   # N = {2, 3, 0}
    [0, 0, 0, 0, 5, 4],   # N = {4, 5} + the first zero: {0, 4, 5}
    [0, 0, 0, 0, 0, 0],   # all ties: {0, 1, 2}
    [0, 3, 3, 3, 0, 3],   # ties at 3 go to the lower indices: {1, 2, 3}
    [2, 0, 0, 0, 2, 0],   # {0, 4} + the first zero: {0, 1, 4}
])


def test_superclasses_affinities_and_temperatures_of_a_hand_made_bank() -> None:
    near = nearest_classes(HAND_BANK, neighbours=3)
    assert [set(torch.nonzero(row).flatten().tolist()) for row in near] == [
        {1, 2, 3}, {0, 2, 3}, {0, 4, 5}, {0, 1, 2}, {1, 2, 3}, {0, 1, 4}]
    # overlaps of 2 or more count (threshold 1): s_ij = 0.5 [j in N_i] + |N_i & N_j| / 3
    a, b, c = 0.5, 2 / 3, 1.0
    expected = torch.tensor([
        [0, a + b, a, a + b, c, 0],
        [a + b, 0, a, a + b, b, 0],
        [a, 0, 0, 0, a, a + b],
        [a + b, a + b, a, 0, b, b],
        [c, a + b, a, a + b, 0, 0],
        [a, a, b, b, a, 0],
    ])
    affinity = class_affinity(HAND_BANK, neighbours=3, overlap_threshold=1, neighbour_affinity=0.5)
    torch.testing.assert_close(affinity, expected)
    sizes = (affinity > 0).sum(dim=1)
    assert sizes.tolist() == [4, 4, 3, 5, 4, 5]
    tau = dynamic_temperature(sizes, (0.1, 0.5, 1.0), (3, 4))
    assert tau.tolist() == pytest.approx([0.5, 0.5, 0.1, 1.0, 0.5, 1.0])
    # the published bounds: <= 10 -> 0.1, <= 20 -> 0.5, more -> 1.0
    published = dynamic_temperature(torch.tensor([1, 10, 11, 20, 21, 60]))
    assert published.tolist() == pytest.approx([0.1, 0.1, 0.5, 0.5, 1.0, 1.0])
    # a row with fewer counts than neighbours keeps the first zero-count classes, itself included
    assert nearest_classes(torch.zeros(4, 4, dtype=torch.long), 2)[1].tolist() == [True, True, False, False]


def test_confused_only_neighbours_leave_empty_rows_out_of_every_superclass() -> None:
    bank = torch.zeros(6, 6)
    bank[0, 1], bank[1, 0], bank[1, 2] = 3.0, 2.0, 1.0  # classes 3-5 never confused (or absent)
    upstream = nearest_classes(bank, neighbours=3)
    assert upstream[3].tolist() == [True, True, True, False, False, False]  # filled with zero-count classes
    near = nearest_classes(bank, neighbours=3, confused_only=True)
    assert near.nonzero().tolist() == [[0, 1], [1, 0], [1, 2]]
    affinity = class_affinity(bank, neighbours=3, overlap_threshold=0, confused_only=True)
    superclass = affinity > 0
    assert superclass[3:].sum() == 0 and superclass[:, 3:].sum() == 0
    assert superclass[0].nonzero().flatten().tolist() == [1]
    # 0 and 1 share nothing (N_0 = {1}, N_1 = {0, 2}); upstream's fill makes 3, 4, 5 share everything.
    assert (class_affinity(bank, neighbours=3, overlap_threshold=0)[3:, 3:] > 0).sum() == 6


def test_inter_class_loss_equals_a_hand_computation() -> None:
    features = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    prototypes = torch.tensor([[1.0, 1.0], [0.0, 1.0], [-1.0, 0.0], [3.0, 0.0]])
    labels = torch.tensor([0, 3])
    superclass = torch.zeros(4, 4, dtype=torch.bool)
    superclass[0, [1, 2]] = True   # S_0 = {1, 2}
    superclass[3, [0, 3]] = True   # S_3 holds 3 itself: listed once among the candidates
    temperature = torch.tensor([0.1, 1.0, 1.0, 0.5])
    r = 1 / math.sqrt(2)
    # sample 0 (class 0, tau 0.1): cos to mu_0, mu_1, mu_2 = r, 0, -1
    loss0 = -math.log(math.exp(r / 0.1) / (math.exp(r / 0.1) + math.exp(0.0) + math.exp(-1 / 0.1)))
    # sample 1 (class 3, tau 0.5): candidates {3, 0}: cos = 0, r
    loss1 = -math.log(math.exp(0.0) / (math.exp(0.0) + math.exp(r / 0.5)))
    got = inter_class_affinity_loss(features, prototypes, labels, superclass, temperature)
    assert got.item() == pytest.approx((loss0 + loss1) / 2, rel=1e-6)


def test_intra_class_margin_loss_equals_a_hand_computation() -> None:
    angles = [0.0, 0.3, 1.2, 2.0, 2.5]
    contrast = torch.tensor([[math.cos(t), math.sin(t)] for t in angles])
    contrast_labels = torch.tensor([1, 1, 2, 1, 2])
    anchors, anchor_labels, self_index = contrast[[3, 4]], contrast_labels[[3, 4]], torch.tensor([3, 4])
    tau, eps = 0.1, 0.1

    def s(a: int, k: int) -> float:
        return math.cos(angles[a] - angles[k]) / tau

    def anchor_loss(a: int) -> float:
        positives = [k for k in range(5) if contrast_labels[k] == contrast_labels[a] and k != a]
        negatives = [k for k in range(5) if contrast_labels[k] != contrast_labels[a]]
        terms = [s(a, p) - math.log(math.exp(-eps) * math.exp(s(a, p)) + sum(math.exp(s(a, n)) for n in negatives))
                 for p in positives]
        return -sum(terms) / len(terms)

    expected = (anchor_loss(3) + anchor_loss(4)) / 2
    got = intra_class_margin_loss(anchors, anchor_labels, contrast, contrast_labels, self_index, tau, eps)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    # an anchor without a positive contributes 0; with positives only, each term is s - (s - eps) = eps
    lonely = intra_class_margin_loss(contrast[[2]], torch.tensor([7]), contrast, contrast_labels, torch.tensor([2]))
    assert lonely.item() == 0.0
    one_class = contrast.clone().requires_grad_(True)
    value = intra_class_margin_loss(one_class[:2], torch.tensor([1, 1]), one_class, torch.ones(5, dtype=torch.long),
                                    torch.tensor([0, 1]), tau, eps)
    assert value.item() == pytest.approx(-eps)  # log(e^-eps e^s) alone: s - (s - eps)
    value.backward()
    assert torch.isfinite(one_class.grad).all()


def objective_and_model(num_classes: int = 5, **kwargs: object) -> tuple:
    torch.manual_seed(0)
    model = ACLNet(num_classes=num_classes, base_channels=8)
    options = {"queue_size": 12, "bank_start_epoch": 2, **kwargs}
    objective = create_objective("aclnet", **options)
    objective.attach(model)
    return model, objective


def batch(seed: int, size: int = 4, num_classes: int = 5) -> dict:
    gen = torch.Generator().manual_seed(seed)
    return {"skeleton": torch.randn(size, 2, 8, 25, 3, generator=gen),
            "label": torch.randint(0, num_classes, (size,), generator=gen)}


def test_prototypes_move_towards_correct_samples_only() -> None:
    objective = ACLNetObjective(num_classes=3, projection_dim=2)
    before = objective.prototypes.clone()
    features = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 5.0], [7.0, 7.0]], requires_grad=True)
    labels = torch.tensor([0, 0, 1, 2])
    correct = torch.tensor([True, True, False, True])
    new = objective.update_prototypes(features, labels, correct)
    torch.testing.assert_close(new[0], 0.9 * before[0] + 0.1 * torch.tensor([2.0, 0.0]))
    torch.testing.assert_close(new[1], before[1])  # its only sample was misclassified
    torch.testing.assert_close(new[2], 0.9 * before[2] + 0.1 * torch.tensor([7.0, 7.0]))
    torch.testing.assert_close(objective.prototypes, new.detach())
    new[0].sum().backward()  # the batch's mean keeps its gradient in this step (as upstream)
    assert features.grad[0].tolist() == pytest.approx([0.05, 0.05]) and features.grad[2].abs().sum() == 0


def test_schedule_bank_superclasses_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    model, objective = objective_and_model()
    caplog.set_level(logging.INFO, logger="actionfusion.engine.aclnet")
    objective.start_epoch(0)  # epoch 1: nothing counts
    out = objective(model, batch(0))
    assert int(objective.confusion_bank.sum()) == 0 and out.losses["inter"].item() == 0.0
    objective.start_epoch(1)  # epoch 2 = bank_start_epoch: the bank counts, no superclasses yet
    assert "starts counting" in caplog.text
    b = batch(1)
    out = objective(model, b)
    with torch.no_grad():
        predictions = model(b["skeleton"]).argmax(dim=1)
    assert torch.equal(objective.confusion_bank, confusion_increment(b["label"], predictions, 5))
    assert out.losses["inter"].item() == 0.0 and out.metrics["superclass_size"].item() == 0.0
    objective.start_epoch(2)  # epoch 3: superclasses from the bank, the inter-class loss on
    torch.testing.assert_close(objective.affinity, class_affinity(objective.confusion_bank))
    out = objective(model, batch(2))
    assert out.losses["inter"].item() > 0.0 and out.metrics["superclass_size"].item() > 0.0
    assert out.metrics["bank_total"].item() == float(objective.confusion_bank.sum())
    assert "aclnet epoch 3: confusion bank total" in caplog.text and "aclnet epoch 3 superclasses: 0: " in caplog.text
    assert index_ranges([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8" and index_ranges([]) == "-"


def test_queue_fills_first_then_the_margin_loss_starts() -> None:
    model, objective = objective_and_model(queue_size=12)
    losses = [objective(model, batch(seed)).losses["intra"].item() for seed in range(4)]
    assert losses[0] == losses[1] == 0.0 and losses[2] != 0.0 and losses[3] != 0.0  # full after 3 batches of 4
    assert int(objective.queue_filled) == 12 and int(objective.queue_ptr) == 4
    with pytest.raises(UsageError, match="does not fit the queue"):
        objective(model, batch(9, size=13))


def test_state_survives_a_state_dict_round_trip(tmp_path: Path) -> None:
    model, objective = objective_and_model(bank_start_epoch=1)
    optimizer = torch.optim.SGD([*model.parameters(), *objective.parameters()], lr=0.01)
    for epoch in range(2):
        objective.start_epoch(epoch)
        for seed in range(3):
            out = objective(model, batch(10 * epoch + seed))
            optimizer.zero_grad()
            out.loss.backward()
            optimizer.step()
    assert int(objective.confusion_bank.sum()) > 0 and int(objective.queue_filled) == 12
    save_file(objective.state_dict(), str(tmp_path / "objective.safetensors"))  # the engine's format
    restored = ACLNetObjective(num_classes=5, queue_size=12, bank_start_epoch=1)
    restored.load_state_dict(load_file(str(tmp_path / "objective.safetensors")))
    for key, value in objective.state_dict().items():
        assert torch.equal(restored.state_dict()[key], value), key
    objective.start_epoch(2), restored.start_epoch(2)
    model.eval()  # the same BatchNorm statistics for both calls
    a, b = objective(model, batch(99)), restored(model, batch(99))
    assert a.loss.item() == b.loss.item() and all(a.losses[k].item() == b.losses[k].item() for k in a.losses)
    assert torch.equal(objective.prototypes, restored.prototypes) and torch.equal(objective.queue_features,
                                                                                 restored.queue_features)


def test_refusals_name_the_fix() -> None:
    model = ACLNet(num_classes=5, base_channels=8)
    with pytest.raises(UsageError, match="built for 4 classes but the model has 5"):
        ACLNetObjective(num_classes=4).attach(model)
    with pytest.raises(UsageError, match="topology_dim: 625"):
        ACLNetObjective(topology_dim=100).attach(model)
    with pytest.raises(UsageError, match="bank_start_epoch is 1-based"):
        ACLNetObjective(bank_start_epoch=0)
    with pytest.raises(UsageError, match="attach"):
        ACLNetObjective()(model, batch(0))
    plain = torch.nn.Module()
    plain.input_keys, plain.num_classes = ("skeleton",), 5  # type: ignore[assignment]
    plain.forward_features = lambda x: type("Out", (), {"aux": None})()  # type: ignore[assignment]
    plain.register_parameter("w", torch.nn.Parameter(torch.zeros(1)))
    with pytest.raises(UsageError, match="no aux\\['topology'\\]"):
        ACLNetObjective(num_classes=5)(plain, batch(0))


def test_cli_trains_the_synthetic_config_end_to_end(tmp_path: Path) -> None:
    """configs/synthetic/aclnet.yaml through `actionfusion train` on a tiny synthetic store: every part
    of the loss runs (bank from epoch 1, superclasses and L_inter from epoch 2, the queue full),
    the losses are finite, the objective's lines reach log.txt, best.safetensors is the model alone."""
    from actionfusion.datasets.store.prepare import PrepareConfig, prepare_store
    from actionfusion.datasets.synthetic.generate import SynthConfig, generate_synthetic_ntu
    from actionfusion.pipeline.cli import main

    generate_synthetic_ntu(tmp_path / "raw", SynthConfig(scale="tiny", modalities=("skeleton",)), workers=1,
                           progress=False)
    prepare_store(tmp_path / "raw", tmp_path / "store", PrepareConfig(modalities=("skeleton",)), workers=0,
                  progress=False)
    sets = [f"--set={o}" for o in (f"data.store={tmp_path / 'store'}", "data.num_workers=0", "data.batch_size=8",
                                   "train.amp=false", "schedule.epochs=3", "train.cpu_threads=1", "data.clip_len=16",
                                   "data.test_clips=1", "model.kwargs.base_channels=16",
                                   "objective.kwargs.bank_start_epoch=1", "objective.kwargs.queue_size=16")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tiny store's validation carve-out, TensorBoard
        assert main(["train", "configs/synthetic/aclnet.yaml", "--work-dir", str(tmp_path / "run"), *sets]) == 0
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert len(history) == 3 and all(math.isfinite(h["train_loss"]) for h in history)
    assert history[0]["train_inter"] == 0.0 and history[-1]["train_inter"] > 0.0 and history[-1]["train_intra"] > 0.0
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "aclnet epoch 1: the confusion bank starts counting" in log
    assert "aclnet epoch 3: confusion bank total" in log and "aclnet epoch 3 superclasses: 0: " in log
    best = load_file(str(tmp_path / "run" / "best.safetensors"))
    assert set(best) == set(ACLNet(num_classes=60, base_channels=16).state_dict())  # no projection heads
    objective_state = load_file(str(tmp_path / "run" / "checkpoints" / "epoch_0003" / "objective.safetensors"))
    assert {"inter_projection.weight", "confusion_bank", "queue_features", "prototypes"} <= set(objective_state)
