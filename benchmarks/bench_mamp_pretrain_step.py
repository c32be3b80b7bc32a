"""Benchmark: one MAMP pretraining step, ours (model + ``mamp`` objective) vs the official code.

One step = forward (motion-aware masking, encoder on the visible tokens, decoder, masked MSE on
the normalised motion target) + backward + AdamW (betas 0.9 / 0.95, wd 0.05, as
``main_pretrain.py``). Ours: ``create_model("mamp", num_classes=0)`` and
``create_objective("mamp", official_floor=True)`` (upstream's 74 visible tokens of 750, so both
sides do the same work). Official: ``model_mamp.transformer.Transformer`` of maoyunyao/MAMP
(pretrain_mamp_t120 configs; ``--decoder-depth`` 3 = NTU60, 5 = NTU120 / PKU), loaded with our
initial weights through ``join_mamp_pretrain``, so both sides start from the same parameters.
Both run in this process, steps interleaved (ours first on even steps, the official first on odd
ones) on the same random batch ``[B, 2, T, 25, 3]``; the line gives the fastest and median step
time of each side and ``ratio`` = ours / official of the medians (``ratio_fastest`` of the
fastest steps).

``--check`` first compares the two in float64 at equal (randomly perturbed) weights: the decoder
alone on the same latents and restore index, then the whole loss, mask and every parameter's
gradient with the same random stream (the same mask); it reports the largest absolute differences.

The official copy lies under ``--official-root`` as ``mamp/`` (never inside this repository):
``git -C <mirror> archive HEAD | tar -x -C /tmp/official/mamp``. Only its stdout prints are
redirected (to stderr); no official file is edited.

    .venv/bin/python benchmarks/bench_mamp_pretrain_step.py --official-root /tmp/official
        [--batch 4] [--frames 120] [--threads 1] [--steps 5] [--decoder-depth 3] [--check]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from actionfusion.objectives import create_objective  # noqa: E402
from actionfusion.pipeline.official_checkpoints.mamp_converters import join_mamp_pretrain  # noqa: E402
from actionfusion.registry import create_model  # noqa: E402

PERSONS, JOINTS, CHANNELS = 2, 25, 3
MASK_RATIO, TAU, MOTION_STRIDE = 0.9, 0.8, 1  # pretrain_mamp_t120 configs (NTU60 tau)
ADAMW = {"lr": 1e-3, "betas": (0.9, 0.95), "weight_decay": 0.05}


def build_ours(frames: int, decoder_depth: int) -> Tuple[nn.Module, nn.Module]:
    """Our MAMP model (its encoder is what pretraining trains) and the mamp objective."""
    model = create_model("mamp", num_classes=0, num_frames=frames)
    objective = create_objective("mamp", num_frames=frames, decoder_depth=decoder_depth, mask_ratio=MASK_RATIO,
                                 tau=TAU, motion_stride=MOTION_STRIDE, norm_target=True, official_floor=True)
    return model, objective


def build_official(root: Path, frames: int, decoder_depth: int) -> nn.Module:
    """The official pretraining model (pretrain_mamp_t120 config but ``decoder_depth`` / ``frames``)."""
    sys.path.insert(0, str(root / "mamp"))
    module = importlib.import_module("model_mamp.transformer")
    with contextlib.redirect_stdout(sys.stderr):  # SkeleEmbed prints its sizes
        return module.Transformer(dim_in=3, dim_feat=256, decoder_dim_feat=256, depth=8, decoder_depth=decoder_depth,
                                  num_heads=8, mlp_ratio=4, num_frames=frames, num_joints=JOINTS, patch_size=1,
                                  t_patch_size=4, qkv_bias=True, qk_scale=None, drop_rate=0.0, attn_drop_rate=0.0,
                                  drop_path_rate=0.0, norm_skes_loss=True)


def ours_loss(model: nn.Module, objective: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return objective(model, {"skeleton": x}).loss


def official_loss(official: nn.Module, x: torch.Tensor) -> torch.Tensor:
    loss, _, _ = official(x.permute(0, 4, 2, 3, 1), mask_ratio=MASK_RATIO, motion_stride=MOTION_STRIDE,
                          motion_aware_tau=TAU)  # [N, C, T, V, M]
    return loss


def perturb(module: nn.Module, scale: float, seed: int) -> None:
    """Add N(0, scale) to every parameter (zero biases and unit norms would hide mistakes)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.add_(scale * torch.randn(param.shape, generator=gen, dtype=param.dtype))


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.double() - b.double()).abs().max().item()


def check(root: Path, batch: int, frames: int, decoder_depth: int) -> Dict[str, object]:
    """Float64 equality of ours and the official at equal weights (see the module docstring)."""
    torch.manual_seed(0)
    model, objective = build_ours(frames, decoder_depth)
    official = build_official(root, frames, decoder_depth)
    model.double(), objective.double(), official.double()
    perturb(model.encoder, 0.02, seed=1)
    perturb(objective, 0.02, seed=2)
    official.load_state_dict(join_mamp_pretrain(model.encoder.state_dict(), objective.state_dict()), strict=True)
    x = torch.randn(batch, PERSONS, frames, JOINTS, CHANNELS, dtype=torch.float64)

    # the decoder alone: same latents, same restore index
    bodies = objective.bodies(x)
    mask = objective.draw_mask(bodies)
    latent = torch.randn(bodies.shape[0], mask.num_keep, 256, dtype=torch.float64)
    with torch.no_grad():
        decoder_diff = max_abs(objective.decoder(latent, mask.restore_index),
                               official.forward_decoder(latent, mask.restore_index))

    # the whole step: the same seed gives both the same uniform draws, hence the same mask
    torch.manual_seed(7)
    ours = ours_loss(model, objective, x)
    torch.manual_seed(7)
    ours_mask = objective.draw_mask(bodies).mask
    torch.manual_seed(7)
    theirs, _, official_mask = official(x.permute(0, 4, 2, 3, 1), mask_ratio=MASK_RATIO,
                                        motion_stride=MOTION_STRIDE, motion_aware_tau=TAU)
    ours.backward()
    theirs.backward()
    grads_ours = join_mamp_pretrain({k: p.grad for k, p in model.encoder.named_parameters()},
                                    {k: p.grad for k, p in objective.named_parameters()})
    grads_official = {k: p.grad for k, p in official.named_parameters()}
    grad_diff = max(max_abs(grads_ours[k], grads_official[k]) for k in grads_official)
    grad_scale = max(grads_official[k].abs().max().item() for k in grads_official)
    return {
        "dtype": "float64", "decoder_max_abs_diff": decoder_diff,
        "loss_ours": ours.item(), "loss_official": theirs.item(), "loss_abs_diff": abs(ours.item() - theirs.item()),
        "same_mask": bool(torch.equal(ours_mask, official_mask)),
        "grad_max_abs_diff": grad_diff, "grad_max_abs": grad_scale,
    }


def timed(step: Callable[[], None]) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def benchmark(root: Path, batch: int, frames: int, decoder_depth: int, steps: int) -> Dict[str, object]:
    torch.manual_seed(0)
    model, objective = build_ours(frames, decoder_depth)
    official = build_official(root, frames, decoder_depth)
    official.load_state_dict(join_mamp_pretrain(model.encoder.state_dict(), objective.state_dict()), strict=True)
    ours_params = [*model.encoder.parameters(), *objective.parameters()]
    opt_ours = torch.optim.AdamW(ours_params, **ADAMW)
    opt_official = torch.optim.AdamW(official.parameters(), **ADAMW)
    x = torch.randn(batch, PERSONS, frames, JOINTS, CHANNELS)

    def step_ours() -> None:
        loss = ours_loss(model, objective, x)
        opt_ours.zero_grad(set_to_none=True)
        loss.backward()
        opt_ours.step()

    def step_official() -> None:
        loss = official_loss(official, x)
        opt_official.zero_grad(set_to_none=True)
        loss.backward()
        opt_official.step()

    step_ours(), step_official()  # warm-up
    times: Dict[str, List[float]] = {"ours": [], "official": []}
    for i in range(steps):
        order = (("ours", step_ours), ("official", step_official))
        for side, step in (order if i % 2 == 0 else order[::-1]):
            times[side].append(timed(step))
    summary = {side: {"fastest_s": round(min(t), 4), "median_s": round(statistics.median(t), 4)}
               for side, t in times.items()}
    return {
        **summary,
        "params_ours": sum(p.numel() for p in ours_params),
        "params_official": sum(p.numel() for p in official.parameters()),
        "ratio": round(summary["ours"]["median_s"] / summary["official"]["median_s"], 3),
        "ratio_fastest": round(summary["ours"]["fastest_s"] / summary["official"]["fastest_s"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official-root", type=Path, default=Path("/tmp/official"),
                        help="folder holding the official snapshot as mamp/")
    parser.add_argument("--batch", type=int, default=4, help="clips per step (2 bodies each)")
    parser.add_argument("--frames", type=int, default=120, help="frames per clip (a multiple of 4)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per side (after one warm-up)")
    parser.add_argument("--decoder-depth", type=int, default=3, help="3 (NTU60) or 5 (NTU120 / PKU)")
    parser.add_argument("--check", action="store_true",
                        help="also compare decoder, loss, mask and gradients with the official code in float64")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    line: Dict[str, object] = {
        "benchmark": "mamp_pretrain_step", "batch": args.batch, "persons": PERSONS, "frames": args.frames,
        "decoder_depth": args.decoder_depth, "threads": args.threads, "steps": args.steps,
        "device": "cpu", "torch": torch.__version__,
    }
    folder = args.official_root / "mamp"
    if not (folder / "model_mamp" / "transformer.py").is_file():
        line["official"] = {"skipped": f"official copy not found at {folder} (git archive maoyunyao/MAMP there)"}
        print(json.dumps(line), flush=True)
        return
    if args.check:
        line["check"] = check(args.official_root, 2, args.frames, args.decoder_depth)
    line.update(benchmark(args.official_root, args.batch, args.frames, args.decoder_depth, args.steps))
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
