"""Benchmark: one contrastive pretraining step (HiCLR, HaLP, STARS), ours against the official code.

One step = the method's forward on one batch of views + backward + optimizer step, on both sides
with the same sizes, the same initial weights (ours copied into the official model through the
name maps below) and the same batch, in one process; steps interleaved (ours first on even steps,
the official first on odd ones) after one warm-up step each. The line gives per side the fastest
and median step and clips/s (batch / median), ``ratio`` = ours / official of the medians (target
<= 1) and ``ratio_fastest``. Batch ``[B, M=2, T, V=25, C=3]`` ours, ``[B, C, T, V, M]`` official
(laid out outside the timed steps, as each side's loader gives it).

* ``hiclr``: ours ``create_model("stgcn_clr", num_classes=0, partition="official")`` (upstream's
  truncated-hop graph, so both compute the same function) and ``create_objective("hiclr")`` (queue
  32,768, tau 0.07, m 0.999, projector 256 -> 256 -> 128), SGD lr 0.1, momentum 0.9, wd 1e-4 built
  by the engine's ``build_optimizer_for``; four views (query, key, strong, strongest with 10 % of
  the joints NaN). Official: ``net.hiclr.HiCLR`` (base ``net.st_gcn.Model``, the
  ``pretext_hiclr_xsub_joint`` config: hidden 16, 256-d, dropout 0.5, no graph drop/add),
  ``forward_pretrain_wmask`` and the loss of ``processor/pretrain_hiclr.py`` (cross-entropy +
  the two DDM terms), the same SGD. The official step draws its joint mask with its ``Jointmask``
  inside the step, as its training loop does; ours receives view 3 with the masked joints as NaN
  from the loader (the ``joint_mask`` transform) and fills them in the step. Deviation kept on
  purpose: upstream computes ``softmax`` then ``log`` for the DDM terms; ours uses
  ``log_softmax`` (same value, no underflow to log 0). ``--mining`` times the phase after epoch 150
  (nearest-neighbour mining) instead of the first one.
* ``halp``: ours ``create_model("bigru", num_classes=0)`` (``--halp-hidden`` / ``--halp-layers``,
  upstream 1024 x 3) with the default ``final_states`` readout (what our configs train) and
  ``create_objective("halp")`` (queue 16,384, 20 prototypes from the newest 256 keys every 10
  steps, 100 positives per key, mu 2), positives on from the first step; SGD lr 0.01, momentum
  0.9, wd 1e-4. Official: ``moco.builder_single_modality_halp.MoCo`` (``--mlp``, the
  ``scripts/ntu60_xsub_single_modality.sh`` arguments), whose BiGRU reads the frames one GRU call
  at a time (``moco/GRU.py``), and ``criterion(output, target) + pn_loss`` of
  ``pretrain_moco_single_modality.py``. Both refresh the prototypes on the same steps (the
  warm-up step, then every 10th). The line also times ours with ``readout="upstream_stepwise"``
  (the official's function; ``ours_stepwise``, its ``ratio_stepwise``) and the prototype refresh
  alone (``prototype_refresh``: our spherical k-means against upstream's geomstats
  ``RiemannianKMeans``, on the same 256 keys).
* ``stars``: ours ``create_model("mamp", num_classes=0)`` and ``create_objective("stars")``
  (``attach`` freezes the embeddings and blocks 0-3), optimizer ``adamw_layer_decay`` (lr 1e-3,
  layer decay 0.45, wd 0.01, betas 0.9 / 0.95) plus the objective's group, per-parameter gradient
  clipping at 3 over model and objective, as the engine does. Official: ``net.nnclr.SkeletonNNCLR``
  over ``net.transformer.Transformer`` (``clrtuning_xsub_third`` config), its optimizer built by
  ``CLRTuningProcessor.load_optimizer`` and its ``clip_gradients`` at 3. Its ``param.required_grad``
  typo leaves the frozen part computing gradients (outside the optimizer): that extra backward is
  part of the official step. Its ``_batch_unshuffle_ddp`` runs under ``torch.no_grad``, so the key
  view's predictions carry no gradient: only ``CE(nn(z1) P0^T / tau)`` trains upstream and the
  backward never enters the view-1 branch; ours back-propagates both terms of the symmetric loss
  (the spec's). The frames are rounded down to a multiple of 4 (4-frame tokens).

Run-time patches of the official code (none of its files is edited; its stdout prints go to
stderr): ``torch.Tensor.cuda`` returns the tensor itself (CPU only; labels and shuffle indices are
moved with ``.cuda()``); HiCLR's ``_dequeue_and_enqueue`` offsets by ``keys.device.index``, which is
None on the CPU, so the instance gets the same write with index 0 (the single-GPU case); modules
missing here and unused by the step (``h5py``, ``wandb``) are empty stand-ins; STARS runs in a
1-process gloo group (its batch shuffle, gathers and all-reduce need one; no DDP wrapper);
HaLP's ``RiemannianKMeans(metric, k, tol, init_step_size, init)`` / ``.centroids`` (geomstats
2.5's API) is adapted to the installed geomstats (``space``, ``cluster_centers_``; its default
``init_step_size`` is upstream's 1.0), and ``numpy.trapz`` is aliased to ``numpy.trapezoid``
for geomstats' import under NumPy 2. ``--method all`` runs each method in a fresh process (the
official repositories share package names such as ``net`` and ``torchlight``).

``--check`` first compares the two sides in float64 at the same weights with dropout off: the loss
and every trainable parameter's gradient after one forward / backward (HaLP: the MoCo part without
positives, whose draws are random on both sides, against ours with the upstream readout; STARS:
the gradients of ours in full, and of ours restricted to upstream's one live term).

The official copies lie under ``--official-root`` (never inside this repository) as ``hiclr/``,
``halp/`` and ``stars/``: ``git --git-dir=<mirror> archive HEAD | tar -x -C /tmp/official/<name>``.

    .venv/bin/python benchmarks/bench_contrastive_pretrain_step.py --method hiclr|halp|stars|all
        --official-root /tmp/official [--batch 8] [--frames 50] [--steps 5] [--threads 1] [--check]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import random
import re
import socket
import statistics
import subprocess
import sys
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from actionfusion.objectives import create_objective  # noqa: E402
from actionfusion.objectives.stars import nnclr_loss  # noqa: E402
from actionfusion.pipeline.engine import build_optimizer_for  # noqa: E402
from actionfusion.pipeline.train_loop import ObjectiveModule, clip_gradients  # noqa: E402
from actionfusion.registry import create_model  # noqa: E402

PERSONS, JOINTS, CHANNELS = 2, 25, 3
METHODS = ("hiclr", "halp", "stars")
FOLDERS = {"hiclr": "hiclr", "halp": "halp", "stars": "stars"}
PROBES = {"hiclr": "net/hiclr.py", "halp": "moco/builder_single_modality_halp.py", "stars": "net/nnclr.py"}

# HiCLR config/release/gcn_ntu60/pretext/pretext_hiclr_xsub_joint.yaml and our configs/ntu60_xsub/hiclr_pretrain.yaml
HICLR_QUEUE, HICLR_TAU, HICLR_MOMENTUM, HICLR_FEATURE = 32768, 0.07, 0.999, 128
HICLR_SGD = {"lr": 0.1, "momentum": 0.9, "nesterov": False, "weight_decay": 1e-4}
HICLR_MASK_RATIO = 0.1
# HaLP scripts/ntu60_xsub_single_modality.sh, options/options_pretraining.py
HALP_QUEUE, HALP_TAU, HALP_MOMENTUM, HALP_FEATURE = 16384, 0.07, 0.999, 128
HALP_SGD = {"lr": 0.01, "momentum": 0.9, "nesterov": False, "weight_decay": 1e-4}
HALP_PROTOTYPES, HALP_PROTOTYPE_KEYS, HALP_EVERY, HALP_POSITIVES, HALP_CANDIDATES = 20, 256, 10, 100, 20
HALP_LAMBDA, HALP_MU = 0.8, 2.0
# STARS config/ntu60/pretext/clrtuning_xsub_third.yaml
STARS_QUEUE, STARS_TAU, STARS_HIDDEN, STARS_DEPTH, STARS_CLIP = 32768, 0.07, 4096, 8, 3.0
STARS_OPTIM = {"name": "adamw_layer_decay", "lr": 1e-3, "layer_decay": 0.45, "weight_decay": 0.01,
               "betas": [0.9, 0.95]}


# ---------------------------------------------------------------- run-time patches of the official code

def cuda_is_identity() -> None:
    """``tensor.cuda()`` returns the tensor (no GPU here; the official code moves labels with it)."""
    if not torch.cuda.is_available():
        torch.Tensor.cuda = lambda self, *args, **kwargs: self  # type: ignore[method-assign]


def stand_in(*names: str) -> List[str]:
    """Empty modules for imports the official step never uses and this environment lacks."""
    missing = []
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            sys.modules[name] = types.ModuleType(name)
            missing.append(name)
    return missing


def import_official(folder: Path, module: str) -> types.ModuleType:
    """Import ``module`` from the official snapshot ``folder`` (put first on sys.path); prints -> stderr."""
    sys.path.insert(0, str(folder))
    with contextlib.redirect_stdout(sys.stderr):
        return importlib.import_module(module)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    with contextlib.redirect_stdout(sys.stderr):
        yield


# ---------------------------------------------------------------- name maps ours -> official

Rules = Sequence[Tuple[str, str]]


def rename(name: str, rules: Rules) -> Optional[str]:
    """The official name of our ``name`` by the first matching (regex, template) rule, else None."""
    for pattern, template in rules:
        match = re.fullmatch(pattern, name)
        if match:
            groups = {k: v for k, v in match.groupdict().items()}
            if "i" in groups:  # HiCLR numbers its edge-importance parameters from 1
                groups["i1"] = str(int(groups["i"]) + 1)
            return template.format(**groups)
    return None


def mapped_tensors(parts: Dict[str, nn.Module], rules: Dict[str, Rules],
                   tensors: Callable[[nn.Module], Dict[str, torch.Tensor]]) -> Dict[str, Tuple[str, torch.Tensor]]:
    """{official name: (our qualified name, tensor)} over our modules ``parts`` (each with its rules)."""
    out: Dict[str, Tuple[str, torch.Tensor]] = {}
    for part, module in parts.items():
        for name, tensor in tensors(module).items():
            official = rename(name, rules[part])
            if official is not None:
                out[official] = (f"{part}.{name}", tensor)
    return out


def load_ours_into_official(official: nn.Module, pairs: Dict[str, Tuple[str, torch.Tensor]],
                            transforms: Optional[Dict[str, Callable[[torch.Tensor], torch.Tensor]]] = None,
                            allowed_missing: Sequence[str] = ()) -> None:
    """Copy our tensors into the official state dict; every official key must be covered (or allowed)."""
    transforms = transforms or {}
    state = official.state_dict()
    missing = [k for k in state if k not in pairs and not any(re.fullmatch(p, k) for p in allowed_missing)]
    unknown = [k for k in pairs if k not in state]
    if missing or unknown:
        raise KeyError(f"name map incomplete: official keys not covered {missing[:8]}, unknown {unknown[:8]}")
    new = {}
    for key, value in state.items():
        if key in pairs:
            tensor = transforms.get(key, lambda t: t)(pairs[key][1].detach())
            if tensor.shape != value.shape:
                raise ValueError(f"{key}: ours {tuple(tensor.shape)} vs official {tuple(value.shape)}")
            new[key] = tensor.to(value.dtype).clone()
        else:
            new[key] = value
    official.load_state_dict(new, strict=True)


STGCN_RULES: Rules = (
    (r"A", "A"),
    (r"data_bn\.bn\.(?P<r>.+)", "data_bn.{r}"),
    (r"blocks\.(?P<b>\d+)\.gcn\.(?P<r>.+)", "st_gcn_networks.{b}.gcn.{r}"),
    (r"blocks\.(?P<b>\d+)\.tcn\.0\.(?P<r>.+)", "st_gcn_networks.{b}.tcn.0.{r}"),
    (r"blocks\.(?P<b>\d+)\.tcn\.2\.conv\.(?P<r>.+)", "st_gcn_networks.{b}.tcn.2.{r}"),
    (r"blocks\.(?P<b>\d+)\.tcn\.2\.bn\.(?P<r>.+)", "st_gcn_networks.{b}.tcn.3.{r}"),
    (r"blocks\.(?P<b>\d+)\.residual\.conv\.(?P<r>.+)", "st_gcn_networks.{b}.residual.0.{r}"),
    (r"blocks\.(?P<b>\d+)\.residual\.bn\.(?P<r>.+)", "st_gcn_networks.{b}.residual.1.{r}"),
    (r"edge_importance\.(?P<i>\d+)", "edge_importance{i1}"),
)


def prefixed(prefix: str, rules: Rules) -> Rules:
    return tuple((p, prefix + t) for p, t in rules)


def hiclr_rules() -> Dict[str, Rules]:
    return {
        "model": prefixed("encoder_q.", STGCN_RULES),
        "key_encoder": prefixed("encoder_k.", STGCN_RULES),
        "objective": (
            (r"projector\.(?P<r>.+)", "encoder_q.fc.{r}"),
            (r"key_projector\.(?P<r>.+)", "encoder_k.fc.{r}"),
            (r"mask_value", "mask_param"),
            (r"queue\.keys", "queue"),
            (r"queue\.ptr", "queue_ptr"),
        ),
    }


def bigru_rules(prefix: str) -> Rules:
    return ((r"input_norm\.(?P<r>.+)", prefix + "input_norm.{r}"), (r"gru\.(?P<r>.+)", prefix + "encoder.gru.{r}"))


def halp_rules() -> Dict[str, Rules]:
    return {
        "model": bigru_rules("encoder_q."),
        "key_encoder": bigru_rules("encoder_k."),
        "objective": (
            (r"projector\.(?P<r>.+)", "encoder_q.fc.{r}"),
            (r"key_projector\.(?P<r>.+)", "encoder_k.fc.{r}"),
            (r"queue\.keys", "queue"),
            (r"queue\.ptr", "queue_ptr"),
            (r"prototypes", "prototypes"),
        ),
    }


def stars_rules() -> Dict[str, Rules]:
    e = "encoder_student."
    return {
        "model": (
            (r"encoder\.patch_embed\.(?P<r>.+)", e + "joints_embed.proj.{r}"),
            (r"encoder\.temporal_embed", e + "temp_embed"),
            (r"encoder\.spatial_embed", e + "pos_embed"),
            (r"encoder\.blocks\.(?P<r>.+)", e + "blocks.{r}"),
            (r"encoder\.norm\.(?P<r>.+)", e + "norm.{r}"),
        ),
        "objective": (
            (r"projector\.(?P<r>.+)", e + "head.projector.0.{r}"),
            (r"predictor\.(?P<r>.+)", e + "head.predictor.{r}"),
            (r"queue\.keys", "queue"),
            (r"queue\.ids", "queue_id"),
            (r"queue\.ptr", "queue_ptr"),
        ),
    }


def state_of(module: nn.Module) -> Dict[str, torch.Tensor]:
    return dict(module.state_dict(keep_vars=True))


def grads_of(module: nn.Module) -> Dict[str, torch.Tensor]:
    return {k: p.grad for k, p in module.named_parameters() if p.grad is not None}


def transposed_queue(key: str) -> Dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """Our queue is [K, D] (one key a row); upstream's [D, K]."""
    return {key: lambda t: t.t().contiguous()}


# ---------------------------------------------------------------- timing

@dataclass
class Bench:
    """Both sides of one method, ready to step."""

    step_ours: Callable[[], None]
    step_official: Callable[[], None]
    info: Dict[str, Any] = field(default_factory=dict)
    extra_ours: Dict[str, Callable[[], None]] = field(default_factory=dict)  # variants timed beside
    after: Dict[str, Callable[[], Dict[str, Any]]] = field(default_factory=dict)  # timings run after the steps


def timed(step: Callable[[], None]) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def interleave(steps: Dict[str, Callable[[], None]], count: int) -> Dict[str, List[float]]:
    """One warm-up step each, then ``count`` rounds; the order of the sides reverses every round."""
    for step in steps.values():
        step()
    times: Dict[str, List[float]] = {side: [] for side in steps}
    order = list(steps.items())
    for i in range(count):
        for side, step in (order if i % 2 == 0 else order[::-1]):
            times[side].append(timed(step))
    return times


def summary(times: List[float], batch: int) -> Dict[str, float]:
    median = statistics.median(times)
    return {"fastest_s": round(min(times), 4), "median_s": round(median, 4), "clips_per_s": round(batch / median, 2)}


def trainable(*modules: nn.Module) -> int:
    return sum(p.numel() for m in modules for p in m.parameters() if p.requires_grad)


def sgd(params: Any, cfg: Dict[str, Any]) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=cfg["lr"], momentum=cfg["momentum"], nesterov=cfg["nesterov"],
                           weight_decay=cfg["weight_decay"])


def ours_step(module: ObjectiveModule, optimizer: torch.optim.Optimizer, batch: Dict[str, Any],
              clip: Optional[float] = None) -> Callable[[], None]:
    """The engine's step: forward through ObjectiveModule, backward, optional clipping, optimizer step."""
    def step() -> None:
        loss = module(batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip is not None:
            clip_gradients(module, clip, "per_parameter")
        optimizer.step()
    return step


def to_official_layout(x: torch.Tensor) -> torch.Tensor:
    """[B, M, T, V, C] -> [B, C, T, V, M]."""
    return x.permute(0, 4, 2, 3, 1).contiguous()


def no_dropout(*modules: nn.Module) -> None:
    for module in modules:
        for m in module.modules():
            if isinstance(m, nn.Dropout):
                m.p = 0.0


def compare_grads(ours: Dict[str, Tuple[str, torch.Tensor]], official: nn.Module) -> Dict[str, Any]:
    """Largest |our grad - official grad| over the mapped parameters with a gradient on our side."""
    official_grads = grads_of(official)
    diffs, scale, compared = [], 0.0, 0
    for key, (_, grad) in ours.items():
        if grad is None or key not in official_grads:
            continue
        diffs.append((grad.double() - official_grads[key].double()).abs().max().item())
        scale = max(scale, official_grads[key].abs().max().item())
        compared += 1
    return {"grads_compared": compared, "grad_max_abs_diff": max(diffs) if diffs else None, "grad_max_abs": scale}


# ---------------------------------------------------------------- HiCLR

def hiclr_batch(batch: int, frames: int, seed: int = 0) -> Tuple[List[torch.Tensor], torch.Tensor]:
    """Four views [B, M, T, V, C] and a joint mask [B, T, M, V, C] (0 = masked, as upstream's Jointmask)."""
    gen = torch.Generator().manual_seed(seed)
    views = [torch.randn(batch, PERSONS, frames, JOINTS, CHANNELS, generator=gen) for _ in range(4)]
    rng = random.Random(seed)
    frame_mask = torch.ones(frames, JOINTS)
    for t in range(frames):
        frame_mask[t, rng.sample(range(JOINTS), int(JOINTS * HICLR_MASK_RATIO))] = 0.0
    mask = frame_mask.reshape(1, frames, 1, JOINTS, 1).repeat(batch, 1, PERSONS, 1, CHANNELS)
    return views, mask


def build_hiclr(root: Path, mining: bool, dtype: torch.dtype = torch.float32):
    torch.manual_seed(0)
    model = create_model("stgcn_clr", num_classes=0, partition="official")
    objective = create_objective("hiclr", encoder_dim=256, feature_dim=HICLR_FEATURE, queue_size=HICLR_QUEUE,
                                 momentum=HICLR_MOMENTUM, tau=HICLR_TAU, mining_start_epoch=150 if mining else None)
    objective.attach(model)
    if mining:
        objective.start_epoch(150)
    stand_in("h5py")
    module = import_official(root / "hiclr", "net.hiclr")
    with quiet():
        official = module.HiCLR(base_encoder="net.st_gcn.Model", pretrain=True, feature_dim=HICLR_FEATURE,
                                queue_size=HICLR_QUEUE, momentum=HICLR_MOMENTUM, Temperature=HICLR_TAU, mlp=True,
                                in_channels=3, hidden_channels=16, hidden_dim=256, num_class=60, dropout=0.5,
                                dropout_graph=0.0, add_graph=0.0,
                                graph_args={"layout": "ntu-rgb+d", "strategy": "spatial"},
                                edge_importance_weighting=True)

    def dequeue_and_enqueue(keys: torch.Tensor) -> None:  # upstream's write with keys.device.index = 0
        ptr = int(official.queue_ptr)
        official.queue[:, ptr:ptr + keys.shape[0]] = keys.T

    official._dequeue_and_enqueue = dequeue_and_enqueue
    model.to(dtype), objective.to(dtype), official.to(dtype)
    pairs = mapped_tensors({"model": model, "key_encoder": objective.key_encoder, "objective": objective},
                           hiclr_rules(), state_of)
    load_ours_into_official(official, pairs, transposed_queue("queue"))
    utils = import_official(root / "hiclr", "processor.utils")
    mask_gen = utils.Jointmask(mask_ratio=HICLR_MASK_RATIO, person_num=PERSONS, joint_num=JOINTS, channel_num=CHANNELS)
    return model, objective, official, mask_gen


def hiclr_official_loss(official: nn.Module, data: List[torch.Tensor], mask: torch.Tensor,
                        mining: bool) -> torch.Tensor:
    """processor/pretrain_hiclr.py's loss for one batch (data1..4 = query, key, strong, strongest)."""
    data1, data2, data3, data4 = data
    if not mining:
        output1, target1, output2, output3, target2, target3 = official.forward_pretrain_wmask(
            im_q_1=data3, im_q_2=data4, im_q=data1, im_k=data2, mask=mask)
        official.update_ptr(output1.size(0))
        loss1 = nn.functional.cross_entropy(output1, target1)
    else:
        output1, pos_mask, output2, output3, target2, target3 = official.forward_pretrain_wmask(
            im_q_1=data3, im_q_2=data4, im_q=data1, im_k=data2, nnm=True, topk=1, mask=mask)
        official.update_ptr(output1.size(0))
        loss1 = (-(torch.log_softmax(output1, dim=1) * pos_mask).sum(1) / pos_mask.sum(1)).mean()
    loss2 = -torch.mean(torch.sum(torch.log(output2) * target2, dim=1))
    loss3 = -torch.mean(torch.sum(torch.log(output3) * target3, dim=1))
    return loss1 + (loss2 + loss3) / 2.0


def hiclr_ours_batch(views: List[torch.Tensor], mask: torch.Tensor) -> Dict[str, Any]:
    strongest = views[3].masked_fill(mask.permute(0, 2, 1, 3, 4) == 0, float("nan"))  # [B, M, T, V, C]
    ours_views = [views[0], views[1], views[2], strongest]
    return {"views": [{"skeleton": v} for v in ours_views], "skeleton": views[0],
            "index": torch.arange(views[0].shape[0])}


def bench_hiclr(args: argparse.Namespace) -> Bench:
    model, objective, official, mask_gen = build_hiclr(args.official_root, args.mining)
    views, mask = hiclr_batch(args.batch, args.frames)
    batch = hiclr_ours_batch(views, mask)
    data = [to_official_layout(v) for v in views]
    module = ObjectiveModule(model, objective).train()
    official.train()
    opt_ours = build_optimizer_for(model, objective, types.SimpleNamespace(name="sgd", **HICLR_SGD))
    opt_official = sgd(official.parameters(), HICLR_SGD)

    def step_official() -> None:
        m = mask_gen(data[0], data[0].shape[2]).to(data[0])  # inside the step, as upstream's loop
        loss = hiclr_official_loss(official, data, m, args.mining)
        opt_official.zero_grad(set_to_none=True)
        loss.backward()
        opt_official.step()

    info = {"params_ours": trainable(model, objective), "params_official": trainable(official),
            "weights": "shared init (ours copied into the official model)",
            "phase": "mining (epoch >= 150)" if args.mining else "before mining (epochs < 150)",
            "views": 4, "queue": HICLR_QUEUE}
    return Bench(ours_step(module, opt_ours, batch), step_official, info)


def check_hiclr(args: argparse.Namespace) -> Dict[str, Any]:
    model, objective, official, _ = build_hiclr(args.official_root, args.mining, torch.float64)
    no_dropout(model, objective, official)
    views, mask = hiclr_batch(2, args.frames, seed=1)
    views = [v.double() for v in views]
    ours = objective(model, hiclr_ours_batch(views, mask)).loss
    theirs = hiclr_official_loss(official, [to_official_layout(v) for v in views], mask.double(), args.mining)
    ours.backward()
    theirs.backward()
    pairs = mapped_tensors({"model": model, "objective": objective}, hiclr_rules(), grads_of)
    return {"dtype": "float64", "dropout": 0.0, "loss_ours": ours.item(), "loss_official": theirs.item(),
            "loss_abs_diff": abs(ours.item() - theirs.item()), **compare_grads(pairs, official)}


# ---------------------------------------------------------------- HaLP

class RiemannianKMeansOldAPI:
    """geomstats 2.5's ``RiemannianKMeans(metric, n_clusters, tol, init_step_size, init)`` and
    ``.centroids`` (what HaLP calls) on the installed geomstats (``space``, ``cluster_centers_``)."""

    def __init__(self, metric: Any, n_clusters: int, tol: float = 1e-2, init_step_size: float = 1.0,
                 init: str = "random") -> None:
        from geomstats.learning.kmeans import RiemannianKMeans

        self.kmeans = RiemannianKMeans(metric._space, n_clusters, init=init, tol=tol)
        self.kmeans.mean_estimator.set(init_step_size=init_step_size)
        self.centroids = None

    def fit(self, x: np.ndarray) -> "RiemannianKMeansOldAPI":
        self.kmeans.fit(x)
        self.centroids = self.kmeans.cluster_centers_
        return self


def import_halp(root: Path) -> types.ModuleType:
    if not hasattr(np, "trapz"):
        np.trapz = np.trapezoid  # geomstats 2.8 imports numpy.trapz, gone in NumPy 2.4
    module = import_official(root / "halp", "moco.builder_single_modality_halp")
    module.RiemannianKMeans = RiemannianKMeansOldAPI
    return module


def halp_args() -> types.SimpleNamespace:
    """The pretraining script's arguments the HaLP builder reads (ntu60_xsub_single_modality.sh)."""
    return types.SimpleNamespace(queue_els_for_prototypes=HALP_PROTOTYPE_KEYS, num_prototypes=HALP_PROTOTYPES,
                                 num_closest_to_ignore_positives=HALP_CANDIDATES, skip_closest_positives=1,
                                 num_positives=HALP_POSITIVES, lambda_pos=str(HALP_LAMBDA), mu=HALP_MU)


def build_halp_ours(hidden: int, layers: int, readout: str, positives: bool, dtype: torch.dtype = torch.float32):
    torch.manual_seed(0)
    model = create_model("bigru", num_classes=0, hidden_size=hidden, num_layers=layers, readout=readout)
    objective = create_objective("halp", encoder_dim=2 * hidden, feature_dim=HALP_FEATURE, queue_size=HALP_QUEUE,
                                 momentum=HALP_MOMENTUM, tau=HALP_TAU, num_prototypes=HALP_PROTOTYPES,
                                 prototype_keys=HALP_PROTOTYPE_KEYS, prototype_every=HALP_EVERY,
                                 num_positives=HALP_POSITIVES, candidates=HALP_CANDIDATES, hardness=HALP_LAMBDA,
                                 mu=HALP_MU, positives_start_epoch=0, warmup_keys=0 if positives else 10 ** 12)
    objective.attach(model)
    return model.to(dtype), objective.to(dtype)


def build_halp_official(root: Path, hidden: int, layers: int, model: nn.Module, objective: nn.Module) -> nn.Module:
    module = import_halp(root)
    gru_args = {"en_input_size": JOINTS * CHANNELS * PERSONS, "en_hidden_size": hidden, "en_num_layers": layers,
                "num_class": HALP_FEATURE}
    with quiet():
        official = module.MoCo("graph-based", gru_args, dim=HALP_FEATURE, K=HALP_QUEUE, m=HALP_MOMENTUM, T=HALP_TAU,
                               teacher_T=0.05, student_T=0.1, cmd_weight=1.0, topk=8192, mlp=True,
                               modality_to_use="joint", args=halp_args())
    official.to(next(model.parameters()).dtype)
    pairs = mapped_tensors({"model": model, "key_encoder": objective.key_encoder, "objective": objective},
                           halp_rules(), state_of)
    load_ours_into_official(official, pairs, transposed_queue("queue"))
    return official


def halp_official_step(official: nn.Module, optimizer: torch.optim.Optimizer, x_q: torch.Tensor, x_k: torch.Tensor):
    counter = {"i": 0}

    def step() -> None:  # pretrain_moco_single_modality.py train(): prototypes every 10 iterations
        i = counter["i"]
        counter["i"] += 1
        if i == 0:
            official.update_prototypes(True)  # the first refresh when the queue has warmed up
        output, target, pn_loss = official(x_q, x_k, update_prototypes=i % HALP_EVERY == 0, generate_this_step=True)
        loss = nn.functional.cross_entropy(output, target) + pn_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def bench_halp(args: argparse.Namespace) -> Bench:
    hidden, layers = args.halp_hidden, args.halp_layers
    model, objective = build_halp_ours(hidden, layers, "final_states", positives=True)
    official = build_halp_official(args.official_root, hidden, layers, model, objective)
    gen = torch.Generator().manual_seed(0)
    x_q, x_k = (torch.randn(args.batch, PERSONS, args.frames, JOINTS, CHANNELS, generator=gen) for _ in range(2))
    batch = {"views": [{"skeleton": x_q}, {"skeleton": x_k}], "skeleton": x_q, "index": torch.arange(args.batch)}
    module = ObjectiveModule(model, objective).train()
    official.train()
    cfg = types.SimpleNamespace(name="sgd", **HALP_SGD)
    opt_ours = build_optimizer_for(model, objective, cfg)
    opt_official = sgd(official.parameters(), HALP_SGD)
    step_official = halp_official_step(official, opt_official, to_official_layout(x_q), to_official_layout(x_k))

    stepwise_model, stepwise_objective = build_halp_ours(hidden, layers, "upstream_stepwise", positives=True)
    stepwise_module = ObjectiveModule(stepwise_model, stepwise_objective).train()
    opt_stepwise = build_optimizer_for(stepwise_model, stepwise_objective, cfg)
    info = {"params_ours": trainable(model, objective), "params_official": trainable(official),
            "weights": "shared init (ours copied into the official model)", "gru_hidden": hidden, "gru_layers": layers,
            "queue": HALP_QUEUE, "positives": f"on from the first step; prototypes refreshed every {HALP_EVERY} steps "
                                               "(warm-up step included) on both sides",
            "readout_ours": "final_states", "readout_official": "stepwise (one GRU call per frame)"}
    return Bench(ours_step(module, opt_ours, batch), step_official, info,
                 extra_ours={"ours_stepwise": ours_step(stepwise_module, opt_stepwise, batch)},
                 after={"prototype_refresh": prototype_refresh_timer(objective, official)})


def prototype_refresh_timer(objective: nn.Module, official: nn.Module,
                            repeats: int = 3) -> Callable[[], Dict[str, Any]]:
    """Our spherical k-means vs upstream's update_prototypes on the same newest 256 queue keys
    (written into both queues first), ``repeats`` interleaved rounds after a warm-up."""
    def run() -> Dict[str, Any]:
        gen = torch.Generator().manual_seed(3)
        keys = nn.functional.normalize(torch.randn(HALP_PROTOTYPE_KEYS, HALP_FEATURE, generator=gen), dim=1)
        objective.queue.enqueue(keys)
        official._dequeue_and_enqueue(keys)
        with torch.no_grad():
            times = interleave({"ours": objective.refresh_prototypes,
                                "official": lambda: official.update_prototypes(True)}, repeats)
        ours, theirs = statistics.median(times["ours"]), statistics.median(times["official"])
        return {"ours_median_s": round(ours, 4), "official_median_s": round(theirs, 4),
                "ratio": round(ours / theirs, 3), "repeats": repeats, "keys": HALP_PROTOTYPE_KEYS,
                "prototypes": HALP_PROTOTYPES}
    return run


def check_halp(args: argparse.Namespace) -> Dict[str, Any]:
    hidden, layers = min(args.halp_hidden, 64), min(args.halp_layers, 2)
    model, objective = build_halp_ours(hidden, layers, "upstream_stepwise", positives=False, dtype=torch.float64)
    official = build_halp_official(args.official_root, hidden, layers, model, objective)
    gen = torch.Generator().manual_seed(1)
    x_q, x_k = (torch.randn(2, PERSONS, args.frames, JOINTS, CHANNELS, generator=gen, dtype=torch.float64)
                for _ in range(2))
    ours = objective(model, {"views": [{"skeleton": x_q}, {"skeleton": x_k}], "index": torch.arange(2)}).loss
    output, target, pn_loss = official(to_official_layout(x_q), to_official_layout(x_k), generate_this_step=False)
    theirs = nn.functional.cross_entropy(output, target) + pn_loss.sum()
    ours.backward()
    theirs.backward()
    pairs = mapped_tensors({"model": model, "objective": objective}, halp_rules(), grads_of)
    return {"dtype": "float64", "part": "MoCo InfoNCE without positives", "readout_ours": "upstream_stepwise",
            "gru_hidden": hidden, "gru_layers": layers, "loss_ours": ours.item(), "loss_official": theirs.item(),
            "loss_abs_diff": abs(ours.item() - theirs.item()), **compare_grads(pairs, official)}


# ---------------------------------------------------------------- STARS

def init_single_process_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)


def build_stars(root: Path, frames: int, dtype: torch.dtype = torch.float32):
    torch.manual_seed(0)
    model = create_model("mamp", num_classes=0, num_frames=frames, drop_path_rate=0.0)
    objective = create_objective("stars", encoder_dim=256, predictor_hidden=STARS_HIDDEN, queue_size=STARS_QUEUE,
                                 tau=STARS_TAU, tuned_from_block=STARS_DEPTH // 2)
    objective.attach(model)
    stand_in("h5py", "wandb")
    init_single_process_group()
    nnclr = import_official(root / "stars", "net.nnclr")
    processor = import_official(root / "stars", "processor.pretrain_clrtuning")
    with quiet():
        official = nnclr.SkeletonNNCLR(
            base_encoder="net.transformer.Transformer", pretrain=True, topk=0, queue_size=STARS_QUEUE,
            momentum=0.999, Temperature=STARS_TAU, dim_in=3, dim_feat=256, predictor_hidden_dim=STARS_HIDDEN,
            feature_dim=256, num_class=60, cls_token=False, depth=STARS_DEPTH, num_heads=8, mlp_ratio=4,
            num_frames=frames, num_joints=JOINTS, patch_size=1, t_patch_size=4, qkv_bias=True, qk_scale=None,
            drop_rate=0.0, attn_drop_rate=0.0, drop_path_rate=0.0, norm_skes_loss=True, motion_aware_tau=0.0,
            mask_ratio=0.0)
    model.to(dtype), objective.to(dtype), official.to(dtype)
    pairs = mapped_tensors({"model": model, "objective": objective}, stars_rules(), state_of)
    load_ours_into_official(official, pairs, transposed_queue("queue"))
    return model, objective, official, processor


def stars_official_optimizer(processor: types.ModuleType, official: nn.Module) -> torch.optim.Optimizer:
    """CLRTuningProcessor.load_optimizer on a stand-in processor holding the config's arguments."""
    arg = types.SimpleNamespace(third_stage=True, fully_tune=False, model_args={"depth": STARS_DEPTH},
                                base_lr=STARS_OPTIM["lr"], layer_decay=STARS_OPTIM["layer_decay"],
                                optimizer="AdamW", nesterov=False, weight_decay=0.05)
    holder = types.SimpleNamespace(arg=arg, model=official, io=types.SimpleNamespace(print_log=lambda *a, **k: None))
    processor.CLRTuningProcessor.load_optimizer(holder)
    return holder.optimizer


def stars_views(batch: int, frames: int, seed: int = 0, dtype: torch.dtype = torch.float32):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, PERSONS, frames, JOINTS, CHANNELS, generator=gen, dtype=dtype) for _ in range(2)]


def bench_stars(args: argparse.Namespace) -> Bench:
    frames = args.frames - args.frames % 4
    model, objective, official, processor = build_stars(args.official_root, frames)
    v0, v1 = stars_views(args.batch, frames)
    ids = torch.arange(args.batch)
    batch = {"views": [{"skeleton": v0}, {"skeleton": v1}], "skeleton": v0, "index": ids}
    module = ObjectiveModule(model, objective).train()
    official.train()
    opt_ours = build_optimizer_for(model, objective, types.SimpleNamespace(**STARS_OPTIM))
    opt_official = stars_official_optimizer(processor, official)
    x0, x1 = to_official_layout(v0), to_official_layout(v1)

    def step_official() -> None:  # processor/pretrain_clrtuning.py train()
        loss = official(x0, x1, ids)
        opt_official.zero_grad()
        loss.backward()
        processor.clip_gradients(official.encoder_student, STARS_CLIP)
        opt_official.step()

    info = {"frames_used": frames, "params_ours": trainable(model, objective),
            "params_official_in_optimizer": sum(p.numel() for g in opt_official.param_groups for p in g["params"]),
            "params_official_with_grad": trainable(official),
            "weights": "shared init (ours copied into the official model)", "queue": STARS_QUEUE,
            "official_frozen_part": "computes gradients (required_grad typo), not stepped"}
    return Bench(ours_step(module, opt_ours, batch, clip=STARS_CLIP), step_official, info)


def check_stars(args: argparse.Namespace) -> Dict[str, Any]:
    """Loss and gradients at equal weights. Upstream's ``_batch_unshuffle_ddp`` runs under
    ``torch.no_grad``, so its view-1 predictions carry no gradient and only the term
    ``CE(nn(z1) P0^T / tau)`` trains; ours back-propagates both terms. The gradients are compared
    twice: ours in full (``grad_*_symmetric``, expected to differ) and ours restricted to that term."""
    frames = args.frames - args.frames % 4
    model, objective, official, _ = build_stars(args.official_root, frames, torch.float64)
    v0, v1 = stars_views(2, frames, seed=1, dtype=torch.float64)
    ids = torch.arange(2)
    queue = {k: v.clone() for k, v in objective.queue.state_dict().items()}
    ours = objective(model, {"views": [{"skeleton": v0}, {"skeleton": v1}], "index": ids}).loss
    ours.backward()
    symmetric = mapped_tensors({"model": model, "objective": objective}, stars_rules(),
                               lambda m: {k: g.clone() for k, g in grads_of(m).items()})
    theirs = official(to_official_layout(v0), to_official_layout(v1), ids)
    theirs.backward()
    result = {"dtype": "float64", "loss_ours": ours.item(), "loss_official": theirs.item(),
              "loss_abs_diff": abs(ours.item() - theirs.item())}
    result.update({f"{k}_symmetric": v for k, v in compare_grads(symmetric, official).items() if k != "grads_compared"})
    objective.queue.load_state_dict(queue)  # the forward above enqueued z0
    model.zero_grad(set_to_none=True)
    objective.zero_grad(set_to_none=True)
    z0, p0 = objective.branch(model, v0)
    z1, _ = objective.branch(model, v1)
    (0.5 * nnclr_loss(objective.neighbour(z1, ids), p0, objective.tau)).backward()
    pairs = mapped_tensors({"model": model, "objective": objective}, stars_rules(), grads_of)
    result.update({"grad_terms_ours": "view-0 term only (upstream's effective gradient)",
                   **compare_grads(pairs, official)})
    return result


# ---------------------------------------------------------------- driver

BENCHES = {"hiclr": bench_hiclr, "halp": bench_halp, "stars": bench_stars}
CHECKS = {"hiclr": check_hiclr, "halp": check_halp, "stars": check_stars}


def run_method(args: argparse.Namespace) -> Dict[str, Any]:
    method = args.method
    line: Dict[str, Any] = {"benchmark": "contrastive_pretrain_step", "method": method, "batch": args.batch,
                            "persons": PERSONS, "frames": args.frames, "threads": args.threads, "steps": args.steps,
                            "device": "cpu", "torch": torch.__version__}
    folder = args.official_root / FOLDERS[method]
    if not (folder / PROBES[method]).is_file():
        line["official"] = {"skipped": f"official copy not found at {folder} (git archive the mirror there)"}
        return line
    if method == "halp":
        if not hasattr(np, "trapz"):
            np.trapz = np.trapezoid  # geomstats 2.8 imports numpy.trapz, gone in NumPy 2.4
        try:
            importlib.import_module("geomstats.learning.kmeans")
        except ImportError as error:
            line["official"] = {"skipped": f"HaLP's k-means needs geomstats ({error}): pip install geomstats"}
            return line
    cuda_is_identity()
    if args.check:
        default = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)  # upstream HaLP allocates its GRU outputs in the default dtype
        try:
            line["check"] = CHECKS[method](args)
        finally:
            torch.set_default_dtype(default)
    bench = BENCHES[method](args)
    line.update(bench.info)
    steps = {"ours": bench.step_ours, "official": bench.step_official, **bench.extra_ours}
    with quiet():
        times = interleave(steps, args.steps)
    for side, t in times.items():
        line[side] = summary(t, args.batch)
    official = line["official"]["median_s"]
    line["ratio"] = round(line["ours"]["median_s"] / official, 3)
    line["ratio_fastest"] = round(line["ours"]["fastest_s"] / line["official"]["fastest_s"], 3)
    for side in bench.extra_ours:
        line[f"ratio_{side.removeprefix('ours_')}"] = round(line[side]["median_s"] / official, 3)
    for name, timer in bench.after.items():
        with quiet():
            line[name] = timer()
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=(*METHODS, "all"), default="all")
    parser.add_argument("--official-root", type=Path, default=Path("/tmp/official"),
                        help="folder holding the official snapshots as hiclr/, halp/, stars/")
    parser.add_argument("--batch", type=int, default=8, help="clips per step (2 bodies each)")
    parser.add_argument("--frames", type=int, default=50,
                        help="frames per clip (STARS: rounded down to a multiple of 4)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per side (after one warm-up)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--halp-hidden", type=int, default=512,
                        help="BiGRU hidden size (HaLP: 1024; 512 keeps a run near a minute on one core)")
    parser.add_argument("--halp-layers", type=int, default=3, help="BiGRU layers (HaLP: 3)")
    parser.add_argument("--mining", action="store_true", help="HiCLR: time the nearest-neighbour mining phase")
    parser.add_argument("--check", action="store_true",
                        help="also compare loss and gradients with the official code in float64 at equal weights")
    args = parser.parse_args()
    if args.method == "all":  # one fresh process per method: the official repositories share package names
        passthrough = [a for a in sys.argv[1:] if not a.startswith("--method")]
        if "--method" in sys.argv:
            i = sys.argv.index("--method")
            passthrough = sys.argv[1:i] + sys.argv[i + 2:]
        for method in METHODS:
            subprocess.run([sys.executable, __file__, "--method", method, *passthrough], check=True)
        return
    torch.set_num_threads(args.threads)
    print(json.dumps(run_method(args)), flush=True)


if __name__ == "__main__":
    main()
