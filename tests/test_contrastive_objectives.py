"""The contrastive base and the STARS, HiCLR and HaLP objectives: properties only a correct
implementation has (hand-computed InfoNCE, a queue that never returns a sample's own id, frozen
blocks that stay bit-identical, a directional loss without gradient into the weaker view, HaLP's
positives on the sphere and before the bisector)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from actionfusion.objectives import create_objective, list_objectives
from actionfusion.objectives.contrastive import (FeatureQueue, distribution_distillation, info_nce,
                                                 info_nce_logits, momentum_copy, momentum_update, multi_positive_nce,
                                                 nearest_neighbour_positives)
from actionfusion.objectives.halp_positives import hallucinate_positives, spherical_kmeans
from actionfusion.objectives.stars import nnclr_loss
from actionfusion.pipeline.optim import build_optimizer
from actionfusion.pipeline.train_loop import clip_gradients
from actionfusion.registry import create_model


def test_contrastive_objectives_are_registered() -> None:
    assert {"moco", "hiclr", "halp", "stars"} <= set(list_objectives())


def test_info_nce_matches_a_hand_computation() -> None:
    q = F.normalize(torch.tensor([[1.0, 0.0], [0.6, 0.8]]), dim=1)
    k = F.normalize(torch.tensor([[0.8, 0.6], [0.0, 1.0]]), dim=1)
    queue = F.normalize(torch.tensor([[-1.0, 0.0], [0.0, -1.0], [1.0, 1.0]]), dim=1)
    tau = 0.5
    expected = 0.0
    for i in range(2):
        pos = float(q[i] @ k[i]) / tau
        negs = [float(q[i] @ n) / tau for n in queue]
        expected += -(pos - math.log(math.exp(pos) + sum(math.exp(v) for v in negs)))
    expected /= 2
    assert float(info_nce(q, k, queue, tau)) == pytest.approx(expected, rel=1e-6)
    logits = info_nce_logits(q, k, queue, tau)
    mask = torch.zeros_like(logits)
    mask[:, 0] = 1
    assert float(multi_positive_nce(logits, mask)) == pytest.approx(expected, rel=1e-6)


def test_multi_positive_mask_takes_each_views_top_neighbour() -> None:
    negatives = torch.tensor([[0.1, 0.9, 0.2], [0.5, 0.1, 0.3]])
    other_view = torch.tensor([[0.1, 0.0, 0.95], [0.5, 0.1, 0.3]])
    mask = nearest_neighbour_positives([negatives, other_view], topk=1)
    assert mask.tolist() == [[1, 0, 1, 1], [1, 1, 0, 0]]


def test_queue_wraps_around_and_never_returns_a_samples_own_id() -> None:
    torch.manual_seed(0)
    queue = FeatureQueue(size=5, dim=3)
    first = F.normalize(torch.randn(4, 3), dim=1)
    queue.enqueue(first, torch.tensor([10, 11, 12, 13]))
    second = F.normalize(torch.randn(3, 3), dim=1)
    queue.enqueue(second, torch.tensor([14, 15, 16]))       # wraps: positions 4, 0, 1
    assert queue.ids.tolist() == [15, 16, 12, 13, 14]
    assert int(queue.ptr) == 2 and int(queue.filled) == 5
    assert torch.equal(queue.keys[0], second[1])
    # A query identical to sample 12's stored key must not get that entry back.
    query = queue.keys[2:3].clone()
    keys, position = queue.nearest(query, torch.tensor([12]))
    assert int(queue.ids[position]) != 12
    assert float(queue.similarities(query, torch.tensor([12]))[0, 2]) == float("-inf")
    _, position = queue.nearest(query, torch.tensor([99]))
    assert int(queue.ids[position]) == 12


def test_momentum_update_moves_the_target_by_one_minus_m() -> None:
    online = torch.nn.Linear(3, 2)
    target = momentum_copy(online)
    assert not any(p.requires_grad for p in target.parameters())
    before = target.weight.clone()
    with torch.no_grad():
        online.weight.add_(1.0)
    momentum_update(online, target, 0.9)
    assert torch.allclose(target.weight, 0.9 * before + 0.1 * online.weight)


def test_directional_term_sends_no_gradient_into_the_weaker_view() -> None:
    weak = torch.randn(4, 9, requires_grad=True)
    strong = torch.randn(4, 9, requires_grad=True)
    distribution_distillation(strong, weak).backward()
    assert weak.grad is None
    assert strong.grad is not None and float(strong.grad.abs().sum()) > 0
    # Its value: cross-entropy of the strong view against the weak view's distribution.
    expected = -(F.softmax(weak, 1) * F.log_softmax(strong, 1)).sum(1).mean()
    assert float(distribution_distillation(strong, weak).detach()) == pytest.approx(float(expected.detach()), rel=1e-6)


def _views(n: int, batch: int = 4, frames: int = 16, nan_last: bool = False) -> dict:
    torch.manual_seed(1)
    views = [{"skeleton": torch.randn(batch, 2, frames, 25, 3)} for _ in range(n)]
    if nan_last:
        views[-1]["skeleton"][:, :, :, :4] = float("nan")
    return {"views": views, "skeleton": views[0]["skeleton"], "index": torch.arange(batch)}


def test_hiclr_fills_masked_joints_with_its_learnable_value_and_trains_it() -> None:
    model = create_model("stgcn", num_classes=0)
    objective = create_objective("hiclr", queue_size=32)
    objective.attach(model)
    out = objective(model, _views(4, nan_last=True))
    assert torch.isfinite(out.loss)
    assert set(out.losses) == {"info_nce", "ddm_strong", "ddm_strongest"}
    out.loss.backward()
    assert objective.mask_value.grad is not None and float(objective.mask_value.grad.abs()) > 0
    assert all(p.grad is None for p in objective.key_encoder.parameters())


def test_moco_updates_its_queue_in_training_only() -> None:
    model = create_model("stgcn", num_classes=0)
    objective = create_objective("moco", queue_size=16, mining_start_epoch=1)
    objective.attach(model)
    objective.eval()
    before = objective.queue.keys.clone()
    objective(model, _views(2))
    assert torch.equal(objective.queue.keys, before) and int(objective.queue.ptr) == 0
    objective.train()
    assert not objective.mining()
    objective(model, _views(2))
    assert int(objective.queue.ptr) == 4 and objective.queue.ids[:4].tolist() == [0, 1, 2, 3]
    objective.start_epoch(1)
    assert objective.mining()


def _small_mamp() -> torch.nn.Module:
    return create_model("mamp", num_classes=0, num_frames=16, embed_dim=32, depth=4, num_heads=2)


def test_stars_frozen_blocks_keep_bit_identical_weights_after_a_step() -> None:
    torch.manual_seed(0)
    model = _small_mamp()
    objective = create_objective("stars", encoder_dim=32, predictor_hidden=64, queue_size=16, tuned_from_block=2)
    objective.attach(model)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    tuned = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    assert any(n.startswith("encoder.blocks.1.") for n in frozen) and "encoder.temporal_embed" in frozen
    assert any(n.startswith("encoder.blocks.2.") for n in tuned) and not any(".blocks.0." in n for n in tuned)
    optimizer = build_optimizer(model, {"name": "adamw_layer_decay", "lr": 1e-2, "layer_decay": 0.45,
                                        "weight_decay": 0.01, "betas": [0.9, 0.95]})
    lrs = sorted({round(g["lr"], 8) for g in optimizer.param_groups})
    assert lrs == [round(1e-2 * 0.45 ** 2, 8), round(1e-2 * 0.45, 8), 1e-2]   # blocks 2, 3, final norm
    for param in objective.parameters():
        param.grad = None
    batch = _views(2, frames=16)
    for _ in range(2):  # two steps: the queue holds the first step's embeddings at the second
        optimizer.zero_grad()
        out = objective(model, batch)
        out.loss.backward()
        assert all(p.grad is None for n, p in model.named_parameters() if n in frozen)
        clip_gradients(model, 3.0, "per_parameter")
        optimizer.step()
    for name, param in model.named_parameters():
        if name in frozen:
            assert torch.equal(param, frozen[name]), name
    assert any(not torch.equal(p, tuned[n]) for n, p in model.named_parameters() if n in tuned)


def test_nnclr_loss_is_cross_entropy_of_neighbours_against_the_other_views_predictions() -> None:
    torch.manual_seed(0)
    neighbours = F.normalize(torch.randn(3, 4), dim=1)
    predictions = F.normalize(torch.randn(3, 4), dim=1)
    logits = neighbours @ predictions.t() / 0.1
    expected = F.cross_entropy(logits, torch.arange(3))
    assert float(nnclr_loss(neighbours, predictions, 0.1)) == pytest.approx(float(expected), rel=1e-6)


def test_per_parameter_clipping_bounds_each_gradient_on_its_own() -> None:
    layer = torch.nn.Linear(4, 4)
    layer.weight.grad = torch.full((4, 4), 10.0)    # norm 40
    layer.bias.grad = torch.full((4,), 0.1)         # norm 0.2: left alone
    clip_gradients(layer, 3.0, "per_parameter")
    assert float(layer.weight.grad.norm()) == pytest.approx(3.0, rel=1e-4)
    assert torch.allclose(layer.bias.grad, torch.full((4,), 0.1))


def _clustered_keys(n: int = 256, dim: int = 16, clusters: int = 8) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    centres = F.normalize(torch.randn(clusters, dim, generator=g), dim=1)
    return F.normalize(centres.repeat(n // clusters, 1) * 3 + torch.randn(n, dim, generator=g), dim=1)


def test_spherical_kmeans_gives_unit_centroids_that_are_their_members_means() -> None:
    torch.manual_seed(0)
    keys = _clustered_keys()
    centroids = spherical_kmeans(keys, 8, tol=1e-6, max_iter=300)
    assert torch.allclose(centroids.norm(dim=1), torch.ones(8), atol=1e-5)
    assign = (keys @ centroids.t()).argmax(1)
    for c in range(8):
        members = keys[assign == c]
        if len(members):
            assert torch.allclose(F.normalize(members.sum(0), dim=0), centroids[c], atol=1e-4)


def test_halp_positives_lie_on_the_sphere_nearer_p0_than_p_sel_within_t_max() -> None:
    torch.manual_seed(0)
    prototypes = spherical_kmeans(_clustered_keys(), 20)
    anchors = F.normalize(torch.randn(64, 16), dim=1)
    positives = hallucinate_positives(anchors, prototypes, num_positives=100, candidates=20, hardness=0.8)
    keep = positives.keep
    assert 0 < int(keep.sum()) < keep.numel()       # the nearest-prototype filter drops some
    h = positives.points[keep]
    assert torch.allclose(h.norm(dim=-1), torch.ones(len(h)), atol=1e-5)
    p0 = prototypes[positives.nearest].unsqueeze(1).expand_as(positives.points)[keep]
    p_sel = prototypes[positives.selected][keep]
    assert bool(((h * p0).sum(-1) > (h * p_sel).sum(-1)).all())
    assert bool((positives.t <= positives.t_max + 1e-7).all()) and bool((positives.t_max > 0).all())
    assert bool((positives.selected != positives.nearest.unsqueeze(1)).all())
    # t_max is where the geodesic reaches the bisector of p0 and p_sel.
    omega = torch.arccos((anchors.unsqueeze(1) * prototypes[positives.selected]).sum(-1).clamp(-1, 1))
    t = positives.t_max
    at_max = (torch.sin((1 - t) * omega).unsqueeze(-1) * anchors.unsqueeze(1)
              + torch.sin(t * omega).unsqueeze(-1) * prototypes[positives.selected]) / torch.sin(omega).unsqueeze(-1)
    p0_all = prototypes[positives.nearest].unsqueeze(1)
    gap = (at_max * p0_all).sum(-1) - (at_max * prototypes[positives.selected]).sum(-1)
    assert float(gap.abs().max()) < 1e-4


def test_halp_starts_positives_after_the_queue_warms_up() -> None:
    torch.manual_seed(0)
    model = create_model("stgcn", num_classes=0)
    objective = create_objective("halp", encoder_dim=256, queue_size=8, num_prototypes=2, prototype_keys=4,
                                 num_positives=5, candidates=1, warmup_keys=8)
    objective.attach(model)
    out = objective(model, _views(2))
    assert float(out.losses["positives"]) == 0.0 and not bool(objective.prototypes_ready)
    objective(model, _views(2))
    assert int(objective.keys_seen) == 8 and objective.positives_on()
    out = objective(model, _views(2))
    assert bool(objective.prototypes_ready) and float(out.losses["positives"]) != 0.0
    assert torch.allclose(objective.prototypes.norm(dim=1), torch.ones(2), atol=1e-5)


def test_graph_augmentation_perturbs_queries_but_not_the_key_encoder() -> None:
    model = create_model("stgcn_clr", num_classes=0, edge_drop=0.3, edge_add=0.1)
    objective = create_objective("moco", queue_size=16)
    objective.attach(model)
    assert model.edge_drop == 0.3 and model.edge_add == 0.1
    assert objective.key_encoder.edge_drop == 0.0 and objective.key_encoder.edge_add == 0.0


class _TwoViewClips(torch.utils.data.Dataset):
    """The tiny stand-in clips with two views per item (each from its own noise stream)."""

    def __init__(self, size: int, offset: int = 0) -> None:
        from trainer_standins import TinyClipDataset

        self.base = TinyClipDataset(size, offset=offset)
        self.labels, self.names = self.base.labels, self.base.names

    def set_epoch(self, epoch: int) -> None:
        self.base.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict:
        item = self.base[index]
        views = [torch.from_numpy(self.base._clip(index, v)) for v in range(2)]
        return {**item, "skeleton": views[0], "views": [{"skeleton": v} for v in views]}


def test_halp_pretraining_resumes_bit_identically_queue_prototypes_and_key_encoder_included(tmp_path) -> None:
    """Kill after epoch 1 of 2 (the positives are on from epoch 1, 0-based): the resumed run redraws
    the same prototypes and positives, so every weight and buffer of model and objective matches."""
    import shutil

    from safetensors.torch import load_file
    from trainer_standins import tiny_config

    from actionfusion.pipeline.config import ExperimentConfig
    from actionfusion.pipeline.pretrain import pretrain

    data = tiny_config(epochs=2).to_dict()
    data["model"] = {**data["model"], "num_classes": 0, "kwargs": {"aux_weight": 0.0, "drop_rate": 0.0}}
    data["data"]["views"] = 2
    data["objective"] = {"name": "halp", "kwargs": {"encoder_dim": 16, "feature_dim": 8, "queue_size": 16,
                                                    "num_prototypes": 3, "prototype_keys": 8, "prototype_every": 2,
                                                    "num_positives": 4, "candidates": 2, "warmup_keys": 16,
                                                    "positives_start_epoch": 1}}
    data["train"] = {**data["train"], "amp": False, "select_by": "last", "knn_every": 0}
    cfg = ExperimentConfig.from_dict(data)

    def datasets() -> dict:
        return {"train": _TwoViewClips(24), "val": _TwoViewClips(6, offset=1), "test": _TwoViewClips(6, offset=2)}

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    pretrain(cfg, straight, progress=False, datasets=datasets())
    pretrain(cfg, resumed, progress=False, datasets=datasets())
    shutil.rmtree(resumed / "checkpoints" / "epoch_0002")
    pretrain(cfg, resumed, resume=True, progress=False, datasets=datasets())
    objective = load_file(straight / "objective.safetensors")
    assert {"prototypes", "queue.keys", "queue.ids", "keys_seen"} <= set(objective)
    assert any(k.startswith("key_encoder.") for k in objective) and bool(objective["prototypes_ready"])
    for name in ("encoder.safetensors", "objective.safetensors"):
        a, b = load_file(straight / name), load_file(resumed / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
