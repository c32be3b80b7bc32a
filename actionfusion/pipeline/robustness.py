"""``actionfusion robustness``: accuracy of a trained skeleton model on the corrupted test split.

For every corruption and level of :mod:`actionfusion.modalities.skeleton.corruption`, each test
clip goes through the config's test transforms (centre, crop to ``data.clip_len`` frames), is
corrupted, completed (``none``, ``interpolate`` or ``duplicate``,
:mod:`actionfusion.modalities.skeleton.completion`; or ``finetec``: FineTec's trained completion network,
:mod:`actionfusion.modalities.skeleton.finetec_completion`, whose weights ``--completion-weights`` names)
and only then turned into the model's stream
(bone, motion, unified 12 channels): the corruption hits the very frames the model reads, and a
bone or motion stream is derived from the completed joints, as it would be from an online pose
estimator's output. The clean test split is scored too (severity 0).

Seeding: clip ``k`` of test sample ``i`` is corrupted by
``default_rng([seed, crc32(corruption), data seed, 0, i, k])``, independent of the model, of the
other steps' draws, of loader workers and of the other corruptions, so a rerun (and every model
with the same ``data.seed``) sees the same corrupted clips.

A multimodal Recognizer's skeleton stream is corrupted the same way (its other modalities are
left clean). Evaluation reuses the evaluate path: ``build_datasets`` (with a pipeline builder that
inserts the corruption), ``build_eval_loader`` and ``evaluate_dataset``.

Outputs (``--out``): ``robustness.json`` and ``robustness.md`` (top-1 per corruption and level)
and ``robustness.png`` (:mod:`.robustness_report`). With ``--models``, each model's report is also
saved as it finishes (``models/<work dir name>-<path hash>.json``, with the weights' size and mtime
and every option): a killed run, rerun, scores only the models not yet scored, and a model added to
the list later costs only its own evaluation.
"""

from __future__ import annotations

import json
import logging
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ..datasets.skeleton_conventions import CONVENTION_LAYOUTS
from ..errors import UsageError, one_line
from ..modalities.skeleton.completion import COMPLETIONS, complete
from ..modalities.skeleton.corruption import CORRUPTIONS, LEVELS, SEVERITIES, corrupt

PathLike = Union[str, Path]
METHODS: Tuple[str, ...] = tuple(COMPLETIONS) + ("finetec",)
"""Values of ``--completion``; ``finetec`` needs ``--completion-weights``."""
MAX_COMPLETION_WEIGHTS_BYTES = 256 * 2**20
"""The largest completion weights file read (the synthetic config's network is about 0.5 MiB)."""
COMPLETION_MODEL = "finetec_completion"

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CorruptionStep:
    """Pipeline step ``(x float32 [M, T, V, 3], rng) -> completed [M, T, V, 3]`` (module docstring)."""

    corruption: str
    level: str
    completion: str
    layout: str
    seed: int = 0
    network: Any = None
    """The completion network (:class:`~actionfusion.modalities.skeleton.finetec_completion.FineTecCompletion`)
    with ``completion == "finetec"``, else None."""

    def generator(self, rng: np.random.Generator) -> np.random.Generator:
        """The corruption's own generator, keyed by the clip's key (the entropy of ``rng``)."""
        seed_seq = getattr(rng.bit_generator, "seed_seq", None)
        entropy = getattr(seed_seq, "entropy", None)
        if entropy is None:  # not a keyed generator: derive from its stream (still deterministic)
            entropy = [int(rng.integers(2**32))]
        key = [int(v) for v in (entropy if isinstance(entropy, (list, tuple)) else [entropy])]
        return np.random.default_rng([self.seed, zlib.crc32(self.corruption.encode())] + key)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        clip = corrupt(x, self.corruption, self.level, self.generator(rng), layout=self.layout)
        if self.completion == "finetec":
            return np.ascontiguousarray(self.network.complete_clip(clip.in_place(), clip.observed), dtype=np.float32)
        return np.ascontiguousarray(complete(clip, self.completion), dtype=np.float32)


@dataclass(frozen=True)
class CorruptedPipeline:
    """``stream(step(test_transforms(x)))``: a test pipeline with the corruption before its stream step."""

    before: Callable[[np.ndarray, np.random.Generator], np.ndarray]
    step: CorruptionStep
    stream: Callable[[np.ndarray, np.random.Generator], np.ndarray]

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.stream(self.step(self.before(x, rng), rng), rng)


@dataclass(frozen=True)
class CorruptingBuilder:
    """A ``pipeline_builder`` for ``build_datasets``: test pipelines get the corruption inserted
    before their last (stream) step; training pipelines are built unchanged (and unused)."""

    corruption: str
    level: str
    completion: str
    seed: int = 0
    network: Any = None

    def __call__(self, specs: List[Dict[str, Any]], layout: Any, train: bool) -> Any:
        from ..modalities.skeleton.transforms import build_skeleton_pipeline

        if train:
            return build_skeleton_pipeline(specs, layout, train)
        name = str(getattr(layout, "name", layout))
        step = CorruptionStep(self.corruption, self.level, self.completion, name, self.seed, self.network)
        return CorruptedPipeline(build_skeleton_pipeline(specs[:-1], layout, False), step,
                                 build_skeleton_pipeline(specs[-1:], layout, False))


def parse_names(text: str, known: Sequence[str], what: str) -> Tuple[str, ...]:
    """``"a,b"`` (or ``"all"``) -> names of ``known``, in ``known``'s order, each once.

    Raises:
        UsageError: an empty list or a name not in ``known``.
    """
    names = [n.strip() for n in str(text).split(",") if n.strip()]
    if names == ["all"]:
        return tuple(known)
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise UsageError(f"unknown {what} {', '.join(map(repr, unknown)) or repr(text)}; known: "
                         f"{', '.join(known)} (or all)")
    return tuple(n for n in known if n in names)


def check_completion(method: str, weights: Optional[PathLike] = None) -> str:
    """``method`` if it is a known completion given the weights it needs.

    Raises:
        UsageError: an unknown name, ``finetec`` without ``weights``, or ``weights`` with another method.
    """
    if method not in METHODS:
        raise UsageError(f"unknown completion {method!r}; known: {', '.join(METHODS)}")
    if method == "finetec" and weights is None:
        raise UsageError("completion 'finetec' needs the completion network's weights: --completion-weights "
                         "WORK_DIR/encoder.safetensors (written by `actionfusion pretrain "
                         "configs/synthetic/finetec_completion.yaml`)")
    if method != "finetec" and weights is not None:
        raise UsageError(f"--completion-weights is read only with --completion finetec, not {method!r}")
    return method


def load_completion_network(weights: PathLike, clip_len: int, num_joints: int) -> Any:
    """FineTec's completion network from ``weights`` (a ``.safetensors`` file that ``pretrain`` wrote,
    with its ``encoder.json`` beside it naming the model and its kwargs), in eval mode on the CPU.

    Raises:
        UsageError: no such file, not ``.safetensors``, over :data:`MAX_COMPLETION_WEIGHTS_BYTES`, no
            readable ``encoder.json``, another model, kwargs the model refuses, or a network for other
            clips than the model's (``num_frames`` != data.clip_len, another joint count or channels).
        CheckpointError: the weights do not fit the network the kwargs describe.
    """
    import torch

    from ..modalities.skeleton.finetec_completion import FineTecCompletion
    from .checkpoints import load_weights

    path = Path(weights)
    if not path.is_file():
        raise UsageError(f"--completion-weights {path}: no such file")
    if path.suffix != ".safetensors":
        raise UsageError(f"--completion-weights {path}: expected a .safetensors file (pretrain's encoder.safetensors)")
    size = path.stat().st_size
    if size > MAX_COMPLETION_WEIGHTS_BYTES:
        raise UsageError(f"--completion-weights {path}: {size} bytes, over the {MAX_COMPLETION_WEIGHTS_BYTES} "
                         "a completion network may have")
    info_path = path.parent / "encoder.json"
    try:
        if info_path.stat().st_size > 2**20:
            raise ValueError("over 1 MiB")
        info = json.loads(info_path.read_text(encoding="utf-8"))
        name, kwargs = info["model"]["name"], dict(info["model"].get("kwargs") or {})
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise UsageError(f"--completion-weights {path}: needs the encoder.json pretrain writes beside it, naming "
                         f"the model and its kwargs ({info_path}: {type(error).__name__})") from None
    if name != COMPLETION_MODEL:
        raise UsageError(f"--completion-weights {path}: holds model {name!r}, not {COMPLETION_MODEL!r}")
    try:
        network = FineTecCompletion(num_classes=0, **kwargs)
    except (TypeError, ValueError) as error:
        raise UsageError(f"--completion-weights {path}: encoder.json's kwargs do not build the network "
                         f"({one_line(error, 200)})") from None
    if network.num_frames != int(clip_len) or network.num_joints != int(num_joints) or network.in_channels != 3:
        raise UsageError(f"--completion-weights {path}: the network completes clips of {network.num_frames} frames, "
                         f"{network.num_joints} joints, {network.in_channels} channels; the model reads "
                         f"{clip_len} frames of {num_joints} joints, 3 channels (data.clip_len, data.layout)")
    load_weights(path, network, strict=True)
    return network.to(torch.device("cpu")).eval()


def observed_share(corruption: str, level: str, clip_len: int, layout: str) -> float:
    """Share of (frame, joint) pairs a clip of ``clip_len`` frames keeps observed (seed 0)."""
    from ..modalities.skeleton.layouts import get_layout

    x = np.ones((1, clip_len, get_layout(layout).num_joints, 3), dtype=np.float32)
    return float(corrupt(x, corruption, level, 0, layout=layout).observed.mean())


def evaluate_robustness(cfg: Any, checkpoint: PathLike, corruptions: Sequence[str] = tuple(CORRUPTIONS),
                        levels: Sequence[str] = SEVERITIES, completion: str = "none", seed: int = 0,
                        progress: bool = False, completion_weights: Optional[PathLike] = None) -> Dict[str, Any]:
    """Top-1 (and top-5, mean-class) of ``checkpoint`` on the clean and the corrupted test split.

    Returns ``{"experiment", "model", "checkpoint", "completion", "seed", "clip_len", "clean":
    metrics, "results": [{"corruption", "level", "severity", "options", "observed_share", "top1",
    "top5", "mean_class_accuracy", "num_samples"}, ...]}`` (and ``"completion_weights"`` with ``finetec``).
    """
    from .checkpoints import load_weights, unwrap_model
    from .data_builder import build_datasets
    from .distributed import barrier, init_distributed, per_process_batch_size, shutdown_distributed, wrap_model
    from .engine import limit_cpu_threads, seed_everything
    from .evaluation import evaluate_dataset
    from .loaders import build_eval_loader
    from .train_loop import FeaturesAndLogits
    from .trainer import build_model, weights_path

    check_completion(completion, completion_weights)
    if "skeleton" not in cfg.data.modalities:
        raise UsageError(f"{cfg.experiment}: robustness corrupts skeletons, and data.modalities "
                         f"{list(cfg.data.modalities)} has none")
    layout = CONVENTION_LAYOUTS[cfg.data.skeleton_source] if cfg.data.skeleton_source != "ntu25" else cfg.data.layout
    network = None
    if completion == "finetec":
        from ..modalities.skeleton.layouts import get_layout

        network = load_completion_network(completion_weights, int(cfg.data.clip_len), get_layout(layout).num_joints)
    weights = weights_path(checkpoint)
    ctx = init_distributed()
    try:
        seed_everything(cfg.seed, cfg.train.deterministic)
        limit_cpu_threads(cfg, ctx)
        model = wrap_model(FeaturesAndLogits(build_model(cfg)), ctx)
        load_weights(weights, unwrap_model(model))
        batch = per_process_batch_size(cfg.data.batch_size, ctx)
        use_amp = bool(cfg.train.amp) and ctx.device.type == "cuda"

        def score(builder: Optional[CorruptingBuilder], desc: str) -> Dict[str, float]:
            test = build_datasets(cfg, pipeline_builder=builder)["test"]
            loader = build_eval_loader(test, ctx, batch, int(cfg.data.num_workers))
            metrics, _, _ = evaluate_dataset(model, loader, ctx, int(cfg.model.num_classes), amp=use_amp,
                                             progress=progress, desc=desc)
            return {k: float(metrics[k]) for k in ("top1", "top5", "mean_class_accuracy", "num_samples")}

        clean = score(None, "clean")
        _log.info("%s clean: top1 %.2f", cfg.experiment, 100 * clean["top1"])
        results = []
        for name in corruptions:
            for level in levels:
                metrics = score(CorruptingBuilder(name, level, completion, seed, network), f"{name}/{level}")
                _log.info("%s %s/%s (%s): top1 %.2f", cfg.experiment, name, level, completion, 100 * metrics["top1"])
                results.append({"corruption": name, "level": level, "severity": SEVERITIES.index(level) + 1,
                                "options": {k: _jsonable(v) for k, v in LEVELS[name][level].items()},
                                "observed_share": observed_share(name, level, int(cfg.data.clip_len), layout),
                                **metrics})
        barrier(ctx)
    finally:
        shutdown_distributed(ctx)
    report = {"experiment": str(cfg.experiment), "model": str(cfg.model.name), "checkpoint": str(weights),
              "completion": completion, "seed": int(seed), "clip_len": int(cfg.data.clip_len), "clean": clean,
              "results": results}
    if completion_weights is not None:
        report["completion_weights"] = str(completion_weights)
    return report


def _jsonable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def run_robustness_cli(config: Optional[PathLike], checkpoint: Optional[PathLike], models: Sequence[PathLike],
                       overrides: Sequence[str], corruptions: str, levels: str, completion: str, seed: int,
                       out: Optional[PathLike], completion_weights: Optional[PathLike] = None) -> int:
    """``actionfusion robustness``: one model (CONFIG + --checkpoint) or the work dirs of ``--models``;
    writes robustness.json / .md / .png into ``out`` and prints the JSON path.

    Raises:
        UsageError: neither or both of (CONFIG, --checkpoint) and --models, --models without --out,
            an unknown corruption, level or completion, ``finetec`` without usable --completion-weights.
    """
    from ..io import atomic_write_bytes, atomic_write_json, atomic_write_text
    from .config import load_config
    from .robustness_report import markdown_report, plot_png_bytes

    names = parse_names(corruptions, tuple(CORRUPTIONS), "corruption")
    chosen_levels = parse_names(levels, SEVERITIES, "level")
    check_completion(completion, completion_weights)
    if models:
        if config is not None or checkpoint is not None:
            raise UsageError("give either CONFIG with --checkpoint, or --models WORKDIR ... (each work dir's "
                             "config.yaml and best.safetensors), not both")
        if out is None:
            raise UsageError("--models needs --out DIR for the combined table and figure")
        runs = []
        for work_dir in models:
            if not (Path(work_dir) / "config.yaml").is_file():
                raise UsageError(f"{work_dir}: not a training work dir (no config.yaml); give the folders "
                                 "`actionfusion train` wrote")
            runs.append((Path(work_dir) / "config.yaml", Path(work_dir)))
    else:
        if config is None or checkpoint is None:
            raise UsageError("give CONFIG and --checkpoint W (or --models WORKDIR ...)")
        runs = [(Path(config), Path(checkpoint))]
    configs = [load_config(path, list(overrides)) for path, _ in runs]  # every config checked before any work
    if completion == "finetec":  # the completion network must fit every model's clips before any work
        from ..modalities.skeleton.layouts import get_layout

        for cfg in configs:
            layout = CONVENTION_LAYOUTS[cfg.data.skeleton_source] if cfg.data.skeleton_source != "ntu25" else cfg.data.layout
            load_completion_network(completion_weights, int(cfg.data.clip_len), get_layout(layout).num_joints)
    target = Path(out) if out is not None else _default_out(runs[0][1])
    reports = []
    for cfg, (_, ck) in zip(configs, runs):
        if not models:
            reports.append(evaluate_robustness(cfg, ck, names, chosen_levels, completion, seed,
                                               completion_weights=completion_weights) | {"work_dir": str(ck)})
            continue
        key = _model_report_key(ck, names, chosen_levels, completion, seed, overrides, completion_weights)
        path = target / "models" / f"{_file_stem(ck)}.json"
        report = _cached_report(path, key)
        if report is None:
            report = evaluate_robustness(cfg, ck, names, chosen_levels, completion, seed,
                                         completion_weights=completion_weights) | {"work_dir": str(ck)}
            atomic_write_json(path, {"key": key, "report": report})
        else:
            _log.info("%s: reusing %s (same weights and options)", ck, path)
        reports.append(report)
    document: Dict[str, Any] = reports[0] if len(reports) == 1 else {"completion": completion, "seed": seed,
                                                                      "models": reports}
    target.mkdir(parents=True, exist_ok=True)
    atomic_write_json(target / "robustness.json", document)
    atomic_write_text(target / "robustness.md", markdown_report(reports))
    atomic_write_bytes(target / "robustness.png", plot_png_bytes(reports))
    print(json.dumps({"out": str(target), "models": [{"experiment": r["experiment"], "clean_top1": r["clean"]["top1"],
                                                       "top1": {f"{x['corruption']}/{x['level']}": x["top1"]
                                                                for x in r["results"]}} for r in reports]},
                     sort_keys=True))
    return 0


def _model_report_key(checkpoint: Path, corruptions: Sequence[str], levels: Sequence[str], completion: str,
                      seed: int, overrides: Sequence[str], completion_weights: Optional[PathLike]) -> Dict[str, Any]:
    """What a ``--models`` run's per-model report depends on: the weights file (path, size, mtime) and
    every option; a saved report with another key is recomputed."""
    from .trainer import weights_path

    weights = weights_path(checkpoint)
    stat = weights.stat()
    key: Dict[str, Any] = {"weights": str(weights.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                           "corruptions": list(corruptions), "levels": list(levels), "completion": completion,
                           "seed": int(seed), "overrides": list(overrides)}
    if completion_weights is not None:
        cw = Path(completion_weights)
        key["completion_weights"] = [str(cw.resolve()), cw.stat().st_size, cw.stat().st_mtime_ns]
    return key


def _cached_report(path: Path, key: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    """The report saved at ``path`` by an earlier (possibly killed) ``--models`` run, if its key is ``key``."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or saved.get("key") != key or not isinstance(saved.get("report"), dict):
        return None
    return saved["report"]


def _file_stem(work_dir: Path) -> str:
    """``<work dir name>-<crc32 of its absolute path>``, file-name safe (letters, digits, ``-``, ``_``,
    ``.``): one file per work dir, whatever the order of ``--models``."""
    resolved = Path(work_dir).resolve()
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in resolved.name).strip(".") or "model"
    return f"{stem}-{zlib.crc32(str(resolved).encode()):08x}"


def _default_out(checkpoint: Path) -> Path:
    """``<work dir>/robustness`` of a work-dir checkpoint; beside a weights file otherwise."""
    return (checkpoint if checkpoint.is_dir() else checkpoint.parent) / "robustness"
