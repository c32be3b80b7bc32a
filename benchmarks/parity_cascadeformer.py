"""CascadeFormer's lines of ``parity.py``: ours against YP4AIresearch/CascadeFormer v1.0 in float64.

* ``cascadeformer`` (stage 2): the official T1 + T2 + cross-attention + MLP head
  (``official_cascadeformer.OfficialStage2``), perturbed, copied into our ``cascadeformer`` through
  the ``cascadeformer`` converter; eval-mode logits, train-mode cross-entropy and every parameter's
  gradient on one batch of two-person clips (person selection included).
* ``cascadeformer_pretrain`` (stage 1): the official ``BaseT1`` copied into our T1 and the
  ``cascadeformer`` objective's reconstruction head (``split_cascadeformer_pretrain``); the mask is
  the official ``mask_random_global_joints``'s, and ours reconstructs and scores the same slots:
  the reconstruction (eval and train mode), the masked MSE and every gradient.

Dropout is 0 on both sides (:func:`disable_dropout`, attention dropout included). Size: the NTU60 cross-view
one (d 512, 8 heads, 12 layers) by default, ``--frames`` frames (at most 64).
"""

from __future__ import annotations

import argparse
from typing import Dict

import torch
from torch import nn

import official_cascadeformer as official_cf
import parity
from actionfusion.objectives import create_objective
from actionfusion.pipeline.official_checkpoints import build_target, get_converter
from actionfusion.pipeline.official_checkpoints.cascadeformer_converters import split_cascadeformer_pretrain

MODELS = ("cascadeformer", "cascadeformer_pretrain")
SIZE = {"embed_dim": 512, "num_heads": 8, "depth": 12}  # NTU60 cross-view, our model's defaults
MASK_RATIO = 0.3


def disable_dropout(model: nn.Module) -> None:
    """``parity.disable_stochastic_layers`` plus nn.MultiheadAttention's attention dropout (a float attribute)."""
    parity.disable_stochastic_layers(model)
    for module in model.modules():
        if isinstance(module, nn.MultiheadAttention):
            module.dropout = 0.0


def official_model(name: str, args: argparse.Namespace) -> nn.Module:
    if name == "cascadeformer":
        return official_cf.OfficialStage2(args.official_root, num_classes=parity.NUM_CLASSES, **SIZE)
    return official_cf.official_stage1(args.official_root, **SIZE)


def _result(name: str, args: argparse.Namespace, frames: int, loss: str, parts: Dict[str, Dict[str, object]],
            aliased: list) -> Dict[str, object]:
    converter = get_converter(name)
    max_rel = max(float(p["max_rel"]) for p in parts.values())  # type: ignore[arg-type]
    return {
        "model": name, "official": converter.source, "ours": converter.model, "ours_kwargs": dict(SIZE),
        "dtype": "float64", "batch": args.batch, "frames": frames, "threads": args.threads, "perturb": args.perturb,
        "dropout": 0.0, "loss": loss, **{k: parity._summary(v) for k, v in parts.items()},
        "max_rel": float(f"{max_rel:.3e}"), "target_rel": parity.TARGET_REL,
        "ours_shared_parameter_storage": [f"{g[0]} .. {g[-1]} ({len(g)})" for g in aliased],
        "pass": bool(max_rel <= parity.TARGET_REL and not aliased),
    }


def stage2_worker(args: argparse.Namespace, frames: int, aliased: list) -> Dict[str, object]:
    converter = get_converter("cascadeformer")
    official = official_model("cascadeformer", args).double()
    parity.perturb_parameters(official, args.perturb)
    ours = build_target(converter, parity.NUM_CLASSES, **SIZE).double()
    ours.load_state_dict(converter.to_ours(official.state_dict()))
    for model in (ours, official):
        disable_dropout(model)
    x = torch.randn(args.batch, 2, frames, 25, 3)  # ours [B, M, T, V, C]; the official loop's [B, C, T, V, M]
    x[0, 1] *= 3.0  # the second body of clip 0 is the most active one
    to_official = x.permute(0, 4, 2, 3, 1)
    y = torch.arange(args.batch) % parity.NUM_CLASSES

    official.eval(), ours.eval()
    with torch.no_grad():
        eval_diff = parity.compare_maps({"logits": ours(x)}, {"logits": official(to_official)})
    official.train(), ours.train()
    loss_ours = nn.functional.cross_entropy(ours(x), y)
    loss_official = nn.functional.cross_entropy(official(to_official), y)
    loss_ours.backward(), loss_official.backward()
    grads_official = {k: p.grad for k, p in official.named_parameters()
                      if p.grad is not None and not converter.is_discarded(k)}
    grads_ours = {k: p.grad for k, p in ours.named_parameters() if p.grad is not None}
    parts = {
        "eval_logits": eval_diff,
        "train_loss": parity.compare_maps({"loss": loss_ours.detach()}, {"loss": loss_official.detach()}),
        "grads": parity.compare_maps(grads_ours, converter.to_ours(grads_official)),
    }
    return _result("cascadeformer", args, frames, "cross_entropy(logits)", parts, aliased)


def stage1_worker(args: argparse.Namespace, frames: int, aliased: list) -> Dict[str, object]:
    official = official_model("cascadeformer_pretrain", args).double()
    parity.perturb_parameters(official, args.perturb)
    encoder_state, objective_state = split_cascadeformer_pretrain(official.state_dict())
    ours = build_target(get_converter("cascadeformer_pretrain"), 0, **SIZE).double()  # T1
    objective = create_objective("cascadeformer", embed_dim=SIZE["embed_dim"], mask_ratio=MASK_RATIO).double()
    ours.load_state_dict(encoder_state)
    objective.load_state_dict(objective_state)
    for model in (ours, official):
        disable_dropout(model)
    x = torch.randn(args.batch, 2, frames, 25, 3)
    x[0, 1] *= 3.0
    to_official = x.permute(0, 4, 2, 3, 1)

    def step(train: bool):  # type: ignore[no-untyped-def]
        official.train(train), ours.train(train)
        torch.manual_seed(123)
        loss_official, recons_official, mask = official_cf.official_stage1_loss(args.official_root, official,
                                                                                to_official, MASK_RATIO)
        bodies = ours_bodies(x)
        recons_ours = objective.reconstruct(ours, bodies, mask)
        from actionfusion.objectives.cascadeformer import masked_slot_mse

        return masked_slot_mse(recons_ours, bodies, mask), loss_official, recons_ours, recons_official, mask

    with torch.no_grad():
        _, _, eval_ours, eval_official, _ = step(False)
    loss_ours, loss_official, recons_ours, recons_official, mask = step(True)
    loss_ours.backward(), loss_official.backward()
    grads_official = {k: p.grad for k, p in official.named_parameters() if p.grad is not None}
    encoder_grads, head_grads = split_cascadeformer_pretrain(grads_official)
    grads_ours = {**{f"encoder.{k}": p.grad for k, p in ours.named_parameters()},
                  **{f"objective.{k}": p.grad for k, p in objective.named_parameters()}}
    expected = {**{f"encoder.{k}": v for k, v in encoder_grads.items()},
                **{f"objective.{k}": v for k, v in head_grads.items()}}
    count = int(MASK_RATIO * frames * 25)
    parts = {
        "eval_reconstruction": parity.compare_maps({"recons": eval_ours}, {"recons": eval_official}),
        "train_reconstruction": parity.compare_maps({"recons": recons_ours.detach()},
                                                    {"recons": recons_official.detach()}),
        "train_loss": parity.compare_maps({"loss": loss_ours.detach()}, {"loss": loss_official.detach()}),
        "grads": parity.compare_maps(grads_ours, expected),
    }
    result = _result("cascadeformer_pretrain", args, frames, "masked MSE (official mask)", parts, aliased)
    ours_mask = objective.draw_mask(ours_bodies(x))
    result["masked_slots_per_clip"] = {"official": mask.flatten(1).sum(1).tolist(),
                                       "ours": ours_mask.flatten(1).sum(1).tolist(), "expected": count}
    result["pass"] = bool(result["pass"] and set(result["masked_slots_per_clip"]["official"]) == {count}
                          and set(result["masked_slots_per_clip"]["ours"]) == {count})
    return result


def ours_bodies(x: torch.Tensor) -> torch.Tensor:
    from actionfusion.modalities.skeleton.cascadeformer import select_person

    return select_person(x)[0]


def parity_worker(name: str, args: argparse.Namespace) -> Dict[str, object]:
    """One CascadeFormer line (see the module docstring); runs in parity.py's worker process."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    frames = min(int(args.frames), 64)
    if args.write_layouts is not None:
        converter = get_converter(name)
        parity.write_layout(args.write_layouts / f"{name}.json", name, converter.source,
                            official_model(name, args).state_dict())
    aliased = parity.shared_parameter_storage(build_target(get_converter(name), parity.NUM_CLASSES, **SIZE))
    torch.set_default_dtype(torch.float64)
    if name == "cascadeformer":
        return stage2_worker(args, frames, aliased)
    return stage1_worker(args, frames, aliased)
