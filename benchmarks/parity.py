"""Numerical parity of our models with the official implementations, through the checkpoint converters.

For each model, in a fresh worker process: build the official model with its official config
(imported from a snapshot under ``--official-root``, never from this repository: the skeleton
models as ``bench_skeleton_train_step.py`` imports and patches them, EPAM-Net and its X-ShiftNets
through ``official_models.py``'s mmcv / mmaction stand-in), perturb its random initialisation
(every floating parameter += ``--perturb`` x N(0, 1), so that no zero-initialised branch hides a
difference), copy it into our model through ``actionfusion.pipeline.official_checkpoints``, then compare
in float64 on one random batch:

* eval mode: the logits (EPAM-Net: both streams' logits);
* train mode: the cross-entropy loss (EPAM-Net: CE(rgb) + CE(pose)), the gradient of every
  parameter (official names mapped to ours by the same converter), and every buffer after the
  step (BatchNorm running statistics, which decide later eval-mode outputs).

Every ``nn.Dropout`` gets p = 0 and every drop-path module drop_prob = 0 on both sides for the
comparison (the line says so). Relative difference of a tensor: max |ours - official| /
max(max |official|, 1e-4 x the largest |official| entry of its group: all gradients, all
buffers), the floor keeping gradients that are zero in exact arithmetic (biases feeding a
train-mode BatchNorm, Hyper-GCN's embedding bias, which cancels in pairwise distances) from
dividing rounding noise by rounding noise. A line's ``max_rel`` is the largest over everything
compared; ``pass``: ``max_rel <= 1e-5`` and no two parameters of our float32 model share one
storage (``ours_shared_parameter_storage``: loading per-block checkpoint values into aliased
parameters keeps only the last; ``.double()`` copies tensors, so the float64 run alone would not
see it). One JSON line per model; MAMP always takes 120 frames, EPAM-Net 16 RGB frames of 64 x 64
and 48 heatmap frames of 16 x 16. CascadeFormer's two lines (stage 2, and stage 1's masked
reconstruction with the official mask) come from ``parity_cascadeformer.py``.

``--write-layouts DIR`` also writes each official state dict's layout (key -> shape, dtype, as
built in float32) to ``DIR/<name>.json``: the fixtures of ``tests/test_checkpoint_convert.py``.

    .venv/bin/python benchmarks/parity.py --official-root /tmp/official [--models ctrgcn stgcn ...]
        [--batch 2] [--frames 16] [--threads 1] [--write-layouts tests/data/official_layouts]
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Tuple

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_skeleton_train_step as official_bench  # noqa: E402
import official_models  # noqa: E402

from actionfusion.pipeline.official_checkpoints import build_target, get_converter, layout_of  # noqa: E402

TARGET_REL = 1e-5
NUM_CLASSES = 60
DEFAULT_MODELS = ("ctrgcn", "stgcn", "stgcnpp", "hypergcn", "hypergcn_large", "psumnet_body", "psumnet_hand",
                  "psumnet_leg", "mamp", "mamp_linprobe", "mamp_pretrain", "epam_net", "xshiftnet_rgb",
                  "xshiftnet_pose", "cascadeformer", "cascadeformer_pretrain")
EPAM_MODELS = ("epam_net", "xshiftnet_rgb", "xshiftnet_pose")
# EPAM-Net clips: RGB [N, 3, 16, H, W] and heatmaps [N, 17, 48, H / 4, W / 4] (the official model
# takes pose frames 0, 3, ..., 45); 64 x 64 RGB keeps a CPU float64 run short (maps 2 x 2).
EPAM_RGB_SIZE, EPAM_RGB_FRAMES, EPAM_POSE_FRAMES = 64, 16, 48
# converter name -> the official build of bench_skeleton_train_step.OFFICIAL it uses
OFFICIAL_BUILD = {"mamp_linprobe": "mamp", "mamp_pretrain": "mamp"}
FIXED_FRAMES = {"mamp": 120, "mamp_linprobe": 120, "mamp_pretrain": 120}  # MAMP's embeddings fix T = 120
# Our constructor arguments for the comparison only. PSUMNet's hand / leg feeders compute the
# part-local bones before the model; the official model gets the bench's joint selection of the
# random 12-channel input as it is, so ours takes its bone channels as given too ("input").
PARITY_OVERRIDES: Dict[str, Dict[str, object]] = {"psumnet_hand": {"part_bones": "input"},
                                                  "psumnet_leg": {"part_bones": "input"}}
CHANNELS = {"psumnet_body": 12, "psumnet_hand": 12, "psumnet_leg": 12}


class PysklRecognizer(nn.Module):
    """pyskl's recognizer layout (``backbone.*``, ``cls_head.fc_cls.*``) around the official backbone."""

    def __init__(self, classifier: "official_bench.PysklGCNClassifier") -> None:
        super().__init__()
        self.backbone = classifier.backbone
        self.cls_head = nn.Module()
        self.cls_head.fc_cls = classifier.fc_cls

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, M, T, V, C] -> logits [N, K] (GCNHead: mean over T, V, then persons; dropout 0)."""
        return self.cls_head.fc_cls(self.backbone(x).mean(dim=(3, 4)).mean(dim=1))


def _linprobe_official(root: Path) -> nn.Module:
    """The official Transformer(protocol="linprobe") with ``main_linprobe.py``'s head change:
    ``head.fc`` becomes Sequential(BatchNorm1d(D, affine=False, eps=1e-6), the Linear)."""
    spec = official_bench.OFFICIAL["mamp"]
    sys.path.insert(0, str(root / spec.folder))
    model = getattr(importlib.import_module(spec.module), spec.cls)(**{**spec.kwargs, "protocol": "linprobe"})
    fc = model.head.fc
    model.head.fc = nn.Sequential(nn.BatchNorm1d(fc.in_features, affine=False, eps=1e-6), fc)
    for param_name, param in model.named_parameters():  # main_linprobe.py: freeze all but the head
        param.requires_grad = param_name.startswith("head.")
    return model


def build_official(name: str, root: Path) -> Tuple[nn.Module, Callable, Callable]:  # type: ignore[type-arg]
    """The official model in its checkpoint layout, its input adapter and its logits getter."""
    if name == "mamp_linprobe":
        model, to_input, logits_of = official_bench.build_official("mamp", root)
        return _linprobe_official(root), to_input, logits_of
    model, to_input, logits_of = official_bench.build_official(OFFICIAL_BUILD.get(name, name), root)
    if isinstance(model, official_bench.PysklGCNClassifier):
        model = PysklRecognizer(model)
    return model, to_input, logits_of


class RecognizerLayout(nn.Module):
    """mmaction's recognizer layout (``backbone``, ``cls_head``) around an official backbone and head."""

    def __init__(self, backbone: nn.Module, cls_head: nn.Module) -> None:
        super().__init__()
        self.backbone, self.cls_head = backbone, cls_head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, C, T, H, W] -> logits [N, K]."""
        return self.cls_head(self.backbone(x))


def build_official_epam(name: str, root: Path) -> nn.Module:
    """EPAM-Net or one of its streams, official code (see ``official_models.py``)."""
    model = official_models.build_official_epam(root, NUM_CLASSES)  # also makes the modules importable
    if name == "epam_net":
        return model
    if name == "xshiftnet_pose":
        module = importlib.import_module("actionModels.rgb_pose_action_recognition_model")
        pose = module.PoseActionRecognition(backbone_type="poseX3dTShiftSE", num_classes=NUM_CLASSES)
        pose.backbone.init_weights(), pose.cls_head.init_weights()
        return pose
    return RecognizerLayout(model.rgb_backbone, model.rgb_cls_head)


def epam_batch(name: str, batch: int) -> Dict[str, torch.Tensor]:
    size = EPAM_RGB_SIZE
    x = {"rgb": torch.randn(batch, 3, EPAM_RGB_FRAMES, size, size),
         "pose_heatmap": torch.randn(batch, 17, EPAM_POSE_FRAMES, size // 4, size // 4)}
    return x if name == "epam_net" else {"xshiftnet_rgb": {"rgb": x["rgb"]}, "xshiftnet_pose": {
        "pose_heatmap": x["pose_heatmap"]}}[name]


def epam_logits(name: str, ours: nn.Module, official: nn.Module, x: Dict[str, torch.Tensor]
                ) -> Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor]]:
    """{stream: logits} of ours and of the official model on one batch."""
    if name == "epam_net":
        rgb, pose = official(x["rgb"], x["pose_heatmap"])
        return dict(ours.forward_stream_logits(ours.forward_features(x))), {"rgb": rgb, "pose": pose}
    (value,) = x.values()
    return {"logits": ours(value)}, {"logits": official(value)}


def official_pretrain_model(root: Path) -> nn.Module:
    """MAMP's pretraining model (encoder + decoder), config pretrain_mamp_t120_layer8+5_mask90."""
    sys.path.insert(0, str(root / "mamp"))
    module = importlib.import_module("model_mamp.transformer")
    return module.Transformer(dim_in=3, dim_feat=256, decoder_dim_feat=256, depth=8, decoder_depth=5, num_heads=8,
                              mlp_ratio=4, num_frames=120, num_joints=25, patch_size=1, t_patch_size=4,
                              qkv_bias=True, qk_scale=None, drop_rate=0.0, attn_drop_rate=0.0, drop_path_rate=0.0)


def disable_stochastic_layers(model: nn.Module) -> None:
    """Dropout p = 0 and drop-path drop_prob = 0 everywhere (the comparison is deterministic)."""
    for module in model.modules():
        if isinstance(module, nn.modules.dropout._DropoutNd):
            module.p = 0.0
        if hasattr(module, "drop_prob"):
            module.drop_prob = 0.0


REL_FLOOR = 1e-4  # denominator floor, as a fraction of the group's largest |official| entry


def difference(ours: torch.Tensor, official: torch.Tensor, floor: float = 0.0) -> Tuple[float, float]:
    """(max abs, max abs / max(max |official|, floor)) of two tensors of one shape."""
    if ours.shape != official.shape:
        raise ValueError(f"shapes differ: {tuple(ours.shape)} vs {tuple(official.shape)}")
    abs_diff = (ours.double() - official.double()).abs().max().item() if ours.numel() else 0.0
    scale = max(official.double().abs().max().item() if official.numel() else 0.0, floor)
    return abs_diff, (abs_diff / scale if scale > 0 else abs_diff)


def compare_maps(ours: Mapping[str, torch.Tensor], official: Mapping[str, torch.Tensor]) -> Dict[str, object]:
    """Largest differences over the keys both maps hold (the keys must agree).

    A tensor whose entries are all below ``REL_FLOOR`` x the group's largest |official| entry
    (e.g. the gradient of a bias feeding a train-mode BatchNorm, zero in exact arithmetic) is
    measured relative to that floor instead of its own rounding-level size; ``floored`` counts them.
    """
    if set(ours) != set(official):
        raise ValueError(f"keys differ: {sorted(set(ours) ^ set(official))[:10]}")
    floating = [k for k in ours if ours[k].is_floating_point() and official[k].numel()]
    group_max = max((official[k].double().abs().max().item() for k in floating), default=0.0)
    floor = REL_FLOOR * group_max
    worst_abs, worst_rel, worst, floored = 0.0, 0.0, "", 0
    for key in ours:
        if not ours[key].is_floating_point():
            if not torch.equal(ours[key], official[key]):
                return {"max_abs": float("inf"), "max_rel": float("inf"), "worst": key, "compared": len(ours)}
            continue
        abs_diff, rel = difference(ours[key], official[key], floor)
        floored += int(official[key].numel() > 0 and official[key].double().abs().max().item() < floor)
        worst_abs = max(worst_abs, abs_diff)
        if rel >= worst_rel:
            worst_rel, worst = rel, key
    return {"max_abs": worst_abs, "max_rel": worst_rel, "worst": worst, "compared": len(ours), "floored": floored}


def shared_parameter_storage(model: nn.Module) -> List[List[str]]:
    """Groups of state-dict entries, at least one a parameter, that share one storage.

    Loading a checkpoint whose entries differ (e.g. per-block learned adjacencies) into such a
    model leaves every entry of a group equal to the last one loaded. Checked on the float32
    build: ``.double()`` copies every tensor and would hide it.
    """
    parameters = {k for k, _ in model.named_parameters()}
    groups: Dict[int, List[str]] = {}
    for key, tensor in model.state_dict().items():
        if tensor.numel():
            groups.setdefault(tensor.untyped_storage().data_ptr(), []).append(key)
    return [keys for keys in groups.values() if len(keys) > 1 and parameters & set(keys)]


def perturb_parameters(model: nn.Module, scale: float) -> None:
    with torch.no_grad():
        for param in model.parameters():
            if param.is_floating_point():
                param.add_(scale * torch.randn_like(param))


def _summary(result: Dict[str, object]) -> Dict[str, object]:
    return {"max_abs": float(f"{result['max_abs']:.3e}"), "max_rel": float(f"{result['max_rel']:.3e}"),
            **{k: v for k, v in result.items() if k not in ("max_abs", "max_rel")}}


def write_layout(path: Path, name: str, source: str, state: Mapping[str, torch.Tensor]) -> None:
    """The fixture: {"converter", "source", "keys": {key: [shape, dtype]}}, one key a line, in state-dict order."""
    from actionfusion.io import atomic_write_text

    lines = [f"  {json.dumps(k)}: {json.dumps([list(shape), dtype])}" for k, (shape, dtype) in layout_of(state).items()]
    head = f'{{"converter": {json.dumps(name)}, "source": {json.dumps(source)}, "keys": {{\n'
    atomic_write_text(path, head + ",\n".join(lines) + "\n}}\n")


def load_pair(name: str, root: Path, perturb: float):  # type: ignore[no-untyped-def]
    """(ours, official, converter for names, input adapter, logits getter), float64, ours
    holding the official model's perturbed initialisation copied through the converter."""
    converter = get_converter(name)
    if name in EPAM_MODELS:
        official, to_input, logits_of = build_official_epam(name, root), None, None
    else:
        official, to_input, logits_of = build_official(name, root)
    official.double()  # some official modules build float32 tensors whatever the default dtype
    perturb_parameters(official, perturb)
    if name != "mamp_pretrain":
        ours = build_target(converter, NUM_CLASSES, **PARITY_OVERRIDES.get(name, {})).double()
        ours.load_state_dict(converter.to_ours(official.state_dict()))
        return ours, official, converter, to_input, logits_of
    # The pretraining model's (perturbed) encoder goes through this converter into our encoder and,
    # under the same names, into the official fine-tune model whose logits are compared.
    pretrain = official_pretrain_model(root).double()
    perturb_parameters(pretrain, perturb)
    encoder = {k: v for k, v in pretrain.state_dict().items() if not converter.is_discarded(k)}
    official.load_state_dict({**official.state_dict(), **encoder})
    finetune = get_converter("mamp")
    ours = build_target(finetune, NUM_CLASSES).double()
    ours.encoder.load_state_dict(converter.to_ours(pretrain.state_dict()))
    head = {k[len("head."):]: v for k, v in finetune.to_ours(official.state_dict()).items() if k.startswith("head.")}
    ours.head.load_state_dict(head)
    return ours, official, finetune, to_input, logits_of


def parity_worker(name: str, args: argparse.Namespace) -> Dict[str, object]:
    """Compare one model (see the module docstring); runs in its own process."""
    if name.startswith("cascadeformer"):  # its own worker: upstream has no single stage-2 module (parity_cascadeformer.py)
        import parity_cascadeformer

        return parity_cascadeformer.parity_worker(name, args)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    converter = get_converter(name)
    if args.write_layouts is not None:
        official32 = official_pretrain_model(args.official_root) if name == "mamp_pretrain" \
            else build_official_epam(name, args.official_root) if name in EPAM_MODELS \
            else build_official(name, args.official_root)[0]
        write_layout(Path(args.write_layouts) / f"{name}.json", name, converter.source, official32.state_dict())
    aliased = shared_parameter_storage(build_target(converter, NUM_CLASSES, **PARITY_OVERRIDES.get(name, {})))
    torch.set_default_dtype(torch.float64)
    ours, official, names, to_input, logits_of = load_pair(name, args.official_root, args.perturb)
    for model in (ours, official):
        disable_stochastic_layers(model)
    if name in EPAM_MODELS:
        frames, x_epam = EPAM_RGB_FRAMES, epam_batch(name, args.batch)

        def logits_pair() -> Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor]]:
            return epam_logits(name, ours, official, x_epam)
    else:
        frames = FIXED_FRAMES.get(name, args.frames)
        x = torch.randn(args.batch, 2, frames, 25, CHANNELS.get(name, 3))

        def logits_pair() -> Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor]]:
            return {"logits": ours(x)}, {"logits": logits_of(official(to_input(x)))}
    y = torch.arange(args.batch) % NUM_CLASSES

    official.eval(), ours.eval()
    with torch.no_grad():
        eval_diff = compare_maps(*logits_pair())

    official.train(), ours.train()
    ours_logits, official_logits = logits_pair()
    # summed over streams: EPAM-Net's CE(rgb) + CE(pose); a single term for the other models
    loss_ours = sum(nn.functional.cross_entropy(z, y) for z in ours_logits.values())
    loss_official = sum(nn.functional.cross_entropy(z, y) for z in official_logits.values())
    loss_ours.backward(), loss_official.backward()
    grads_official = {k: p.grad for k, p in official.named_parameters() if p.grad is not None}
    grads_ours = {k: p.grad for k, p in ours.named_parameters() if p.grad is not None}
    parameter_names = {k for k, _ in ours.named_parameters()}
    buffers_ours = {k: b for k, b in ours.state_dict().items() if k not in parameter_names}
    buffers_official = names.to_ours(official.state_dict())
    parts = {
        "eval_logits": eval_diff,
        "train_loss": compare_maps({"loss": loss_ours.detach()}, {"loss": loss_official.detach()}),
        "grads": compare_maps(grads_ours, names.to_ours(grads_official)),
        "buffers_after_step": compare_maps(buffers_ours, {k: buffers_official[k] for k in buffers_ours}),
    }
    max_rel = max(float(p["max_rel"]) for p in parts.values())  # type: ignore[arg-type]
    return {
        "model": name, "official": converter.source, "ours": converter.model,
        "ours_kwargs": {**dict(converter.model_kwargs), **PARITY_OVERRIDES.get(name, {})},
        "dtype": "float64", "batch": args.batch, "frames": frames, "threads": args.threads,
        "perturb": args.perturb, "dropout": 0.0, "drop_path": 0.0,
        "loss": "cross_entropy(rgb) + cross_entropy(pose)" if name == "epam_net" else "cross_entropy(logits)",
        **{k: _summary(v) for k, v in parts.items()},
        "max_rel": float(f"{max_rel:.3e}"), "target_rel": TARGET_REL,
        "ours_shared_parameter_storage": [f"{g[0]} .. {g[-1]} ({len(g)})" for g in aliased],
        "pass": bool(max_rel <= TARGET_REL and not aliased),
    }


def run_worker(name: str, args: argparse.Namespace) -> Dict[str, object]:
    cmd = [sys.executable, __file__, "--worker", name, "--official-root", str(args.official_root),
           "--batch", str(args.batch), "--frames", str(args.frames), "--threads", str(args.threads),
           "--perturb", str(args.perturb)]
    if args.write_layouts is not None:
        cmd += ["--write-layouts", str(args.write_layouts)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.strip().splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"model": name, "error": (done.stderr.strip().splitlines() or ["no output"])[-1], "pass": False}
    return json.loads(lines[-1])


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official-root", type=Path, default=Path("/tmp/official"))
    parser.add_argument("--models", nargs="*", default=list(DEFAULT_MODELS))
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--frames", type=int, default=16, help="clip length (MAMP always takes 120)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--perturb", type=float, default=0.05, help="noise added to the official init")
    parser.add_argument("--write-layouts", type=Path, default=None, help="write the official layouts here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(parity_worker(args.worker, args)))
        return 0
    ok = True
    for name in args.models:
        line = {"benchmark": "parity", **run_worker(name, args)}
        ok = ok and bool(line.get("pass"))
        print(json.dumps(line), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
