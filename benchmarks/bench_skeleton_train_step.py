"""Benchmark: CPU training-step throughput and peak memory of the registered skeleton encoders.

For each model, one fresh worker process builds it, runs a warm-up step and ``--steps`` timed
steps (forward + cross-entropy on the logits + backward + SGD) on a random clip batch of the
official size (``--batch`` 16, M = 2, T = 64, V = 25, C = 3; models built for other inputs get
theirs, see ``INPUT_OVERRIDES``) and reports the fastest and median step time, clips/s (from the
fastest step: the least disturbed by other processes on a shared machine) and the process's peak
RSS. Where a copy of the official implementation lies under ``--official-root`` (never inside this
repository; e.g. ``git archive <commit> | tar -x -C /tmp/official/<folder>``), the official model
runs the same way in its own worker and the line gives ours/official ratios of step time, peak
RSS and parameter count; otherwise it says why the official side was skipped. One JSON line per
model. Official copies (folder: repository@snapshot, model as built):

* ``ctrgcn/``: Uason-Chen/CTR-GCN@e13d758, ``model.ctrgcn.Model`` (spatial graph).
* ``stgcn/``: yysijie/st-gcn@221c0e1, ``net.st_gcn.Model`` (ntu-xsub config, edge importance on).
* ``pyskl/``: kennymckormick/pyskl@3f6795f, backbone ``STGCN`` as in the stgcn++ configs
  (``gcn_adaptive='init'``, ``gcn_with_res=True``, ``tcn_type='mstcn'``, nturgb+d spatial graph)
  plus a classifier equal to pyskl's ``GCNHead`` (dropout 0: mean over T, V, then persons ->
  Linear(256, classes), weights N(0, 0.01)), written here because pyskl's head module pulls in
  its whole training stack.
* ``hypergcn/``: 6UOOON9/Hyper-GCN@cefe70b, ``model.hypergcn_base.Model`` (``hypergcn_large``:
  ``model.hypergcn_large.Model``), config hyper_joint: ``hyper_joints: 3``, ``labeling_mode:
  virtual_ensemble``. It returns (logits, virtual joints); the step uses the logits (neither side
  adds the divergence loss to the step's loss). Its 56,448 frozen prior-graph entries are
  parameters there and a buffer in ours: compare ``trainable_params``.
* ``psumnet/``: skelemoa/psumnet@8097774 (``git archive 8097774 -- model graph ...``: the data
  folder holds LFS objects), ``model.psumnet.Model`` per stream on the unified 12-channel input;
  the hand (13 joints) and leg (9 joints) streams take the joints their feeder selects, ours
  selects them inside. The fused ``psumnet`` has no single official model.
* ``mamp/``: maoyunyao/MAMP (model/transformer.py), ``Transformer`` with the fine-tune head and
  the finetune_t120 config (drop path 0.3, which ours gets too), 120-frame input.

Runtime patches of the official side (in its worker process only; no file is edited):

* pyskl imports mmcv, which is not installed. The worker writes a minimal stand-in tree
  ``<official-root>/_stubs/mmcv`` holding only the names pyskl's GCN modules import:
  ``mmcv.cnn.build_activation_layer`` / ``build_norm_layer`` build the same torch layers as
  mmcv (``ReLU`` -> ``nn.ReLU``, ``BN`` -> ``nn.BatchNorm2d`` ...), ``mmcv.utils._BatchNorm`` is
  torch's, ``Registry`` / ``MODELS`` keep registered classes in a dict; ``load_checkpoint`` (used
  only for pretrained weights) raises. The packages ``pyskl``, ``pyskl.utils``, ``pyskl.models``
  and ``pyskl.models.gcns`` are entered without running their ``__init__`` (which would import
  mmcv's training stack, fvcore and every other backbone); ``pyskl.utils`` gets the real ``Graph``
  and a ``cache_checkpoint`` that raises (pretrained weights only).
* Hyper-GCN moves its prior graph with ``.cuda(x.get_device())``, which fails for a CPU tensor
  (device -1). The worker wraps ``torch.Tensor.cuda`` so that a negative device index returns the
  tensor where it is (what the code means: "the device of x"); any other call goes to torch.

    .venv/bin/python benchmarks/bench_skeleton_train_step.py [--official-root /tmp/official]
        [--models stgcn ctrgcn stgcnpp hypergcn psumnet_body mamp | all] [--steps 2]
        [--threads 2] [--batch 16] [--rounds 3] [--compile]

Step times on a shared machine move by up to 40% between runs; ``--rounds R`` runs R worker pairs
per model, ours and the official code alternating, and reports the fastest step of each side over
all rounds with each round's own ratio.
"""

from __future__ import annotations

import argparse
import importlib
import json
import resource
import statistics
import subprocess
import sys
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BATCH, PERSONS, FRAMES, JOINTS, CHANNELS, NUM_CLASSES = 16, 2, 64, 25, 3, 60
DEFAULT_MODELS = ("stgcn", "ctrgcn", "stgcnpp", "hypergcn", "psumnet_body", "mamp")
# Registered models whose official input differs from [16, 2, 64, 25, 3]:
# PSUMNet's unified 12-channel input (joint, bone, and their velocities); MAMP's 120-frame clips.
INPUT_OVERRIDES: Dict[str, Dict[str, int]] = {
    "psumnet": {"channels": 12}, "psumnet_body": {"channels": 12},
    "psumnet_hand": {"channels": 12}, "psumnet_leg": {"channels": 12},
    "mamp": {"frames": 120},
}
# Our constructor kwargs where the official recipe's model differs from our default
# (MAMP fine-tune config finetune_t120_layer8_decay.yaml: drop_path_rate 0.3).
OURS_KWARGS: Dict[str, dict] = {"mamp": {"drop_path_rate": 0.3}}


@dataclass(frozen=True)
class OfficialModel:
    """How to build one official model: ``module.cls(**kwargs)`` from ``--official-root/folder``."""

    folder: str
    module: str
    cls: str
    kwargs: dict = field(default_factory=dict)
    layout: str = "NCTVM"  # input layout: "NCTVM" = [N, C, T, V, M]; "NMTVC" = ours, [N, M, T, V, C]
    returns_tuple: bool = False  # forward returns (logits, extras)
    patch: Optional[str] = None  # runtime patch applied before import: "pyskl" or "cuda_on_cpu"
    pyskl_head_channels: int = 0  # > 0: wrap the backbone with the GCNHead-equivalent classifier
    # "hand" / "leg": the model takes only PSUMNet's joints of that stream (its feeder selects them)
    joint_subset: str = ""


OFFICIAL: Dict[str, OfficialModel] = {
    "ctrgcn": OfficialModel(
        "ctrgcn", "model.ctrgcn", "Model",
        {"num_class": NUM_CLASSES, "graph": "graph.ntu_rgb_d.Graph", "graph_args": {"labeling_mode": "spatial"}},
    ),
    "stgcn": OfficialModel(
        "stgcn", "net.st_gcn", "Model",
        {"in_channels": 3, "num_class": NUM_CLASSES, "dropout": 0.5, "edge_importance_weighting": True,
         "graph_args": {"layout": "ntu-rgb+d", "strategy": "spatial"}},
    ),
    "stgcnpp": OfficialModel(
        "pyskl", "pyskl.models.gcns.stgcn", "STGCN",
        {"gcn_adaptive": "init", "gcn_with_res": True, "tcn_type": "mstcn",
         "graph_cfg": {"layout": "nturgb+d", "mode": "spatial"}},
        layout="NMTVC", patch="pyskl", pyskl_head_channels=256,
    ),
    **{
        name: OfficialModel(
            "hypergcn", f"model.{module}", "Model",
            {"num_class": NUM_CLASSES, "num_point": 25, "num_person": 2, "hyper_joints": 3,
             "graph": "graph.ntu_rgb_d.Graph", "graph_args": {"labeling_mode": "virtual_ensemble"}},
            returns_tuple=True, patch="cuda_on_cpu",
        )
        for name, module in (("hypergcn", "hypergcn_base"), ("hypergcn_large", "hypergcn_large"))
    },
    **{
        f"psumnet_{stream}": OfficialModel(
            "psumnet", "model.psumnet", "Model",
            {"num_class": NUM_CLASSES, "num_point": num_point, "num_person": 2, "graph": "graph.ntu_rgb_d.Graph",
             "graph_args": {"labeling_mode": "spatial"}, "in_channels": 12, "stream": stream},
            joint_subset="" if stream == "body" else stream,
        )
        for stream, num_point in (("body", 25), ("hand", 13), ("leg", 9))
    },
    "mamp": OfficialModel(
        "mamp", "model.transformer", "Transformer",
        {"dim_in": 3, "num_classes": NUM_CLASSES, "dim_feat": 256, "depth": 8, "num_heads": 8, "mlp_ratio": 4,
         "num_frames": 120, "num_joints": 25, "patch_size": 1, "t_patch_size": 4, "qkv_bias": True,
         "qk_scale": None, "drop_rate": 0.0, "attn_drop_rate": 0.0, "drop_path_rate": 0.3,
         "protocol": "finetune"},
    ),
}

# Stand-in for the few mmcv names pyskl's GCN modules import (see the module docstring).
_MMCV_STANDIN: Dict[str, str] = {
    "__init__.py": '"""Benchmark stand-in for mmcv: only what pyskl\'s GCN modules import."""\n',
    "utils/__init__.py": '''"""Stand-in for mmcv.utils: Registry and torch's _BatchNorm."""
from torch.nn.modules.batchnorm import _BatchNorm  # noqa: F401  (what mmcv re-exports)


class Registry:
    """name -> class; build(cfg) calls the class registered as cfg["type"] with the other keys."""

    def __init__(self, name, parent=None, **kwargs):
        self.name, self._modules = name, {}

    def __contains__(self, key):
        return key in self._modules

    def register_module(self, name=None, force=False, module=None):
        def register(cls):
            self._modules[name or cls.__name__] = cls
            return cls
        return register(module) if module is not None else register

    def build(self, cfg):
        args = dict(cfg)
        return self._modules[args.pop("type")](**args)
''',
    "cnn/__init__.py": '''"""Stand-in for mmcv.cnn: the activation and norm builders, as mmcv builds these layers."""
import torch.nn as nn

from ..utils import Registry

MODELS = Registry("model")
_ACTIVATIONS = ("ReLU", "LeakyReLU", "PReLU", "RReLU", "ReLU6", "ELU", "Sigmoid", "Tanh", "GELU", "SiLU")
_NORMS = {"BN": nn.BatchNorm2d, "BN1d": nn.BatchNorm1d, "BN2d": nn.BatchNorm2d, "BN3d": nn.BatchNorm3d}


def build_activation_layer(cfg):
    args = dict(cfg)
    kind = args.pop("type")
    if kind not in _ACTIVATIONS:
        raise KeyError(f"activation {kind!r} is not in the benchmark's mmcv stand-in")
    return getattr(nn, kind)(**args)


def build_norm_layer(cfg, num_features, postfix=""):
    args = dict(cfg)
    kind = args.pop("type")
    if kind not in _NORMS:
        raise KeyError(f"norm {kind!r} is not in the benchmark's mmcv stand-in")
    requires_grad = args.pop("requires_grad", True)
    layer = _NORMS[kind](num_features, **args)
    for param in layer.parameters():
        param.requires_grad = requires_grad
    return "bn" + str(postfix), layer
''',
    "runner/__init__.py": '''"""Stand-in for mmcv.runner: checkpoint loading is not part of the benchmark."""


def load_checkpoint(*args, **kwargs):
    raise RuntimeError("the benchmark's mmcv stand-in loads no checkpoints")
''',
}


def _unavailable_cache_checkpoint(*args: object, **kwargs: object) -> str:
    raise RuntimeError("the benchmark loads no pretrained pyskl checkpoints")


def prepare_pyskl(official_root: Path) -> None:
    """Make ``pyskl.models.gcns.stgcn`` importable without mmcv (see the module docstring)."""
    from actionfusion.io import atomic_write_text

    stubs = official_root / "_stubs"
    for relative, text in _MMCV_STANDIN.items():
        atomic_write_text(stubs / "mmcv" / relative, text)
    sys.path.insert(0, str(stubs))
    package_root = official_root / "pyskl" / "pyskl"
    for name in ("pyskl", "pyskl.utils", "pyskl.models", "pyskl.models.gcns"):
        package = types.ModuleType(name)
        package.__path__ = [str(package_root.joinpath(*name.split(".")[1:]))]
        sys.modules[name] = package
    utils = sys.modules["pyskl.utils"]
    utils.Graph = importlib.import_module("pyskl.utils.graph").Graph  # type: ignore[attr-defined]
    utils.cache_checkpoint = _unavailable_cache_checkpoint  # type: ignore[attr-defined]


def keep_cpu_tensors_on_cpu() -> None:
    """``tensor.cuda(d)`` with ``d < 0`` (``get_device()`` of a CPU tensor) returns the tensor."""
    to_cuda = torch.Tensor.cuda

    def cuda(self, device=None, *args, **kwargs):  # type: ignore[no-untyped-def]
        if isinstance(device, int) and device < 0:
            return self
        return to_cuda(self, device, *args, **kwargs)

    torch.Tensor.cuda = cuda  # type: ignore[method-assign]


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def time_steps(model, x, steps: int, logits_of: Callable) -> List[float]:  # type: ignore[no-untyped-def, type-arg]
    """Seconds per training step: one warm-up, then ``steps`` timed."""
    y = torch.arange(x.shape[0]) % NUM_CLASSES
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=4e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss_fn(logits_of(model(x)), y).backward()
        optimizer.step()
        if i > 0:
            times.append(time.perf_counter() - start)
    return times


# model, input adapter ([N, M, T, V, C] -> the model's layout), model output -> logits
Built = Tuple[nn.Module, Callable, Callable]  # type: ignore[type-arg]


def build_ours(name: str) -> Built:
    from actionfusion.registry import create_model

    model = create_model(name, num_classes=NUM_CLASSES, **OURS_KWARGS.get(name, {}))
    return model, lambda x: x, lambda out: out


def build_official(name: str, official_root: Path) -> Built:
    spec = OFFICIAL[name]
    if spec.patch == "pyskl":
        prepare_pyskl(official_root)
    elif spec.patch == "cuda_on_cpu":
        keep_cpu_tensors_on_cpu()
    sys.path.insert(0, str(official_root / spec.folder))
    model = getattr(importlib.import_module(spec.module), spec.cls)(**spec.kwargs)
    if spec.pyskl_head_channels:
        model = PysklGCNClassifier(model, spec.pyskl_head_channels, NUM_CLASSES)
    joints: List[int] = []
    if spec.joint_subset:
        from actionfusion.modalities.skeleton import psumnet

        subsets = {"hand": psumnet.HAND_JOINTS_1BASED, "leg": psumnet.LEG_JOINTS_1BASED}
        joints = [j - 1 for j in subsets[spec.joint_subset]]

    def to_input(x: torch.Tensor) -> torch.Tensor:
        """x [N, M, T, V, C] -> the official layout, with the official feeder's joint selection."""
        x = x[:, :, :, joints] if joints else x
        return x if spec.layout == "NMTVC" else x.permute(0, 4, 2, 3, 1).contiguous()  # [N, C, T, V', M]

    logits_of: Callable = (lambda out: out[0]) if spec.returns_tuple else (lambda out: out)  # type: ignore[type-arg]
    return model, to_input, logits_of


class PysklGCNClassifier(nn.Module):
    """The official pyskl backbone plus a classifier computing what pyskl's GCNHead (dropout 0) does.

    Backbone features [N, M, C, T, V] -> mean over T, V, then persons -> Linear -> logits [N, K].
    """

    def __init__(self, backbone: nn.Module, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.fc_cls = nn.Linear(in_channels, num_classes)
        nn.init.normal_(self.fc_cls.weight, std=0.01)  # GCNHead's init_std
        nn.init.zeros_(self.fc_cls.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, M, T, V, C] -> logits [N, K]."""
        return self.fc_cls(self.backbone(x).mean(dim=(3, 4)).mean(dim=1))


def input_shape(name: str, batch: int) -> Dict[str, int]:
    shape = {"batch": batch, "persons": PERSONS, "frames": FRAMES, "joints": JOINTS, "channels": CHANNELS}
    return {**shape, **INPUT_OVERRIDES.get(name, {})}


def compiled_timings(model, x, steps: int, logits_of: Callable) -> Dict[str, float]:  # type: ignore[no-untyped-def, type-arg]
    """The same steps through ``train.compile``'s ``torch.compile``: the first compiled step (the
    compilation, on top of a step) apart, then ``steps`` timed."""
    from actionfusion.pipeline.compiled_step import compile_training_module

    compiled = compile_training_module(model)
    start = time.perf_counter()
    time_steps(compiled, x, 0, logits_of)  # the warm-up step compiles forward and backward
    compile_s = time.perf_counter() - start
    times = time_steps(compiled, x, steps, logits_of)
    return {"compiled_step_s": round(min(times), 4), "compiled_step_s_median": round(statistics.median(times), 4),
            "compiled_clips_per_s": round(x.shape[0] / min(times), 3), "compile_s": round(compile_s, 1)}


def worker(name: str, side: str, official_root: Path, steps: int, threads: int, batch: int,
           compile_ours: bool = False) -> Dict[str, object]:
    """Measure one model in this process (a fresh one per model and side)."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model, to_input, logits_of = build_official(name, official_root) if side == "official" else build_ours(name)
    s = input_shape(name, batch)
    x = to_input(torch.randn(s["batch"], s["persons"], s["frames"], s["joints"], s["channels"]))
    rss_before = peak_rss_mb()
    times = time_steps(model, x, steps, logits_of)
    params = list(model.parameters())
    line: Dict[str, object] = {
        "params": sum(p.numel() for p in params),
        "trainable_params": sum(p.numel() for p in params if p.requires_grad),
        "input": list(x.shape),
        "step_s": round(min(times), 4),
        "step_s_median": round(statistics.median(times), 4),
        "clips_per_s": round(batch / min(times), 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "rss_before_steps_mb": round(rss_before, 1),
        # what the training steps added on top of the interpreter, imports and model
        "step_peak_rss_mb": round(peak_rss_mb() - rss_before, 1),
    }
    if compile_ours and side == "ours":  # after the eager line, so its memory figures are eager's
        line.update(compiled_timings(model, x, steps, logits_of))
    return line


def run_worker(name: str, side: str, args: argparse.Namespace, compile_ours: bool = False) -> Dict[str, object]:
    """Run :func:`worker` in a fresh interpreter (so peak RSS is this model's alone)."""
    cmd = [sys.executable, __file__, "--worker", name, side, "--official-root", str(args.official_root),
           "--steps", str(args.steps), "--threads", str(args.threads), "--batch", str(args.batch)]
    if compile_ours:
        cmd.append("--compile")
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def merged_rounds(rounds: List[Dict[str, object]]) -> Dict[str, object]:
    """One side's line over ``--rounds`` workers: the first round's line, its step time the fastest
    of all rounds (``step_s_rounds`` lists each), its median the median of the rounds' medians."""
    failed = [r for r in rounds if "error" in r]
    if failed or len(rounds) == 1:
        return (failed or rounds)[0]
    line = dict(rounds[0])
    steps = [float(r["step_s"]) for r in rounds]  # type: ignore[arg-type]
    line["step_s"] = min(steps)
    line["step_s_median"] = round(statistics.median(float(r["step_s_median"]) for r in rounds), 4)  # type: ignore[arg-type]
    line["clips_per_s"] = round(int(line["input"][0]) / min(steps), 3)  # type: ignore[index]
    line["step_s_rounds"] = steps
    return line


def ratios(ours: Dict[str, object], official: Dict[str, object]) -> Dict[str, float]:
    """ours / official for step time, peak RSS, the steps' own share of it, and parameter counts."""
    if "error" in ours or "error" in official:
        return {}
    keys = {"time": "step_s", "peak_rss": "peak_rss_mb", "step_peak_rss": "step_peak_rss_mb",
            "params": "params", "trainable_params": "trainable_params"}
    out = {
        f"{label}_ratio_ours_over_official": round(float(ours[key]) / float(official[key]), 4)  # type: ignore[arg-type]
        for label, key in keys.items()
    }
    if "compiled_step_s" in ours:  # ours compiled against the official code as it ships (eager)
        out["compiled_time_ratio_ours_over_official"] = round(
            float(ours["compiled_step_s"]) / float(official["step_s"]), 4)  # type: ignore[arg-type]
    return out


def official_skip_reason(name: str, official_root: Path) -> Optional[str]:
    if name == "psumnet":
        return "the official code trains body, hand and leg as three models: see psumnet_body, _hand, _leg"
    if name not in OFFICIAL:
        return f"no official implementation wired for {name!r}"
    folder = official_root / OFFICIAL[name].folder
    if not folder.is_dir():
        return f"official copy not found at {folder} (git archive the reference repository there)"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official-root", type=Path, default=Path("/tmp/official"))
    parser.add_argument("--models", nargs="*", default=list(DEFAULT_MODELS),
                        help="registry names, or 'all' for every registered skeleton model")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per model (after one warm-up)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the spec's timings used 2)")
    parser.add_argument("--batch", type=int, default=BATCH, help="clips per step (the spec's timings used 16)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="worker pairs per model, ours and the official code alternating (default 1); "
                             "step times are the fastest over the rounds, and each round's ratio is listed")
    parser.add_argument("--compile", action="store_true",
                        help="also time our step through train.compile's torch.compile (compile time apart)")
    parser.add_argument("--worker", nargs=2, metavar=("NAME", "SIDE"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        name, side = args.worker
        print(json.dumps(worker(name, side, args.official_root, args.steps, args.threads, args.batch, args.compile)))
        return

    if args.models == ["all"]:
        from actionfusion.registry import list_models

        args.models = list_models(modality="skeleton")
    for name in args.models:
        shape = input_shape(name, args.batch)
        line: Dict[str, object] = {
            "benchmark": "skeleton_train_step", "model": name, "batch": args.batch, "persons": PERSONS,
            "frames": shape["frames"], "channels": shape["channels"], "threads": args.threads,
            "steps": args.steps, "rounds": args.rounds,
        }
        reason = official_skip_reason(name, args.official_root)
        ours: List[Dict[str, object]] = []
        official: List[Dict[str, object]] = []
        for i in range(args.rounds):  # the sides alternate, so that both meet the same load
            ours.append(run_worker(name, "ours", args, compile_ours=args.compile and i == 0))
            if reason is None:
                official.append(run_worker(name, "official", args))
        line["ours"] = merged_rounds(ours)
        if reason is not None:
            line["official"] = {"skipped": reason}
        else:
            line["official"] = merged_rounds(official)
            line.update(ratios(line["ours"], line["official"]))  # type: ignore[arg-type]
            if args.rounds > 1 and all("error" not in r for r in ours + official):
                line["time_ratio_per_round"] = [round(float(a["step_s"]) / float(b["step_s"]), 4)  # type: ignore[arg-type]
                                                for a, b in zip(ours, official)]
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
