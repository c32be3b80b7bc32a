"""``actionfusion run CONFIG``: raw data to a trained, evaluated model in one command.

Stages, each resumable (a rerun after a kill continues where it stopped, and skips what is done):

1. **prepare** ``source.raw_root`` (an NTU-format root) into ``data.store``: every modality the
   root has (skeleton, RGB crops, masked depth, points), with ``prepare``'s defaults or the
   ``source`` sizes. Skipped when ``source.raw_root`` is null (the store must exist). A folder of
   your own videos (class sub-folders) is prepared by :mod:`.prepare_videos` instead: extracted
   poses, person crops, and the benchmark file ``data.benchmark`` names (``videos``); a PKU-MMD or
   NW-UCLA root by their importers (trimmed skeleton clips, the official splits as benchmark files).
2. **extract poses** (``source.pose_source: extracted``): the 2D pose model over every video of the
   root, into the same store (``pose2d``), read by heatmap clips with ``keypoints: pose2d``.
3. **train** into the work dir (resumed from its newest checkpoint; skipped once ``metrics.json``
   exists). Training ends with the test evaluation: ``metrics.json``, ``confusion.png``,
   ``per_class.csv``, ``scores_test.npy``.
4. **evaluate by modality** (Recognizers with several encoders): the test split with each
   encoder's modality alone (the all-modality row is training's own test evaluation), into
   ``metrics_by_modality.json``; skipped when the training and this file are both finished.

Bad samples never stop stages 1-2: they are recorded (``failures.json``, ``pose_failures.json``
in the store) and reported at the end.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

from ..io import load_json

PathLike = Union[str, Path]


def prepare_config_of(cfg: Any) -> Any:
    """The :class:`~actionfusion.datasets.store.prepare_config.PrepareConfig` of ``cfg.source``."""
    from ..datasets.store.prepare_config import PrepareConfig

    overrides = {key: getattr(cfg.source, key) for key in ("rgb_size", "depth_size", "num_points")
                 if getattr(cfg.source, key) is not None}
    return PrepareConfig(**overrides)


def _say(text: str, progress: bool) -> None:
    if progress:
        print(text, file=sys.stderr, flush=True)


def run_experiment(cfg: Any, work_dir: PathLike, progress: bool = True, workers: Optional[int] = None,
                   class_kind_report: bool = False) -> Dict[str, Any]:
    """Run the stages of the module docstring; returns {stage: summary} (also ``run_summary.json``).

    Raises:
        ConfigError: ``source.raw_root`` is null and ``data.store`` is not a prepared store, or the
            raw root does not exist.
    """
    from ..io import atomic_write_json
    from .config import ConfigError
    from .modality_ablation import METRICS_FILE as MODALITY_METRICS_FILE, evaluate_modality_subsets
    from .trainer import train

    work_dir = Path(work_dir)
    store = Path(cfg.data.store)
    workers = int(cfg.source.workers if workers is None else workers)
    summary: Dict[str, Any] = {"experiment": str(cfg.experiment), "store": str(store), "work_dir": str(work_dir)}
    timings: Dict[str, float] = {}

    if cfg.source.raw_root is not None:
        from ..datasets.store.prepare import prepare_store
        from ..datasets.store.prepare_nw_ucla import is_nw_ucla_root, prepare_nw_ucla
        from ..datasets.store.prepare_pku_mmd import is_pku_mmd_root, prepare_pku_mmd
        from .video_folder import is_video_folder

        root = Path(cfg.source.raw_root)
        if not root.is_dir():
            raise ConfigError("source.raw_root", f"no directory at {str(root)!r} (relative to {Path.cwd()})")
    if cfg.source.raw_root is not None and (is_pku_mmd_root(root) or is_nw_ucla_root(root)):
        _say(f"[prepare] {root} -> {store} (skeleton clips and the official splits)", progress)
        start = time.perf_counter()
        imported = prepare_pku_mmd(root, store) if is_pku_mmd_root(root) else prepare_nw_ucla(root, store)
        timings["prepare_s"] = time.perf_counter() - start
        summary["prepare"] = {**{k: v for k, v in imported.to_dict().items() if k != "failures"},
                              "failures": len(imported.failures)}
    elif cfg.source.raw_root is not None and is_video_folder(root):
        summary["prepare"] = _prepare_video_folder(cfg, root, store, workers, progress, timings)
    elif cfg.source.raw_root is not None:
        _say(f"[prepare] {root} -> {store}", progress)
        start = time.perf_counter()
        report = prepare_store(root, store, prepare_config_of(cfg), workers=workers, progress=progress)
        timings["prepare_s"] = time.perf_counter() - start
        summary["prepare"] = {"selected": report.num_selected, "done": report.num_done, "skipped": report.num_skipped,
                              "partial": report.num_partial, "failures": len(report.failures)}
        if report.failures:
            _say(f"[prepare] {len(report.failures)} failures (recorded in {store}/failures.json):", progress)
            for failure in report.failures[:20]:
                _say("  " + " | ".join(failure), progress)
        if cfg.source.pose_source == "extracted":
            from .extract_poses import extract_poses_batch

            _say(f"[extract poses] {root} -> {store} (backend {cfg.source.pose_backend})", progress)
            start = time.perf_counter()
            poses = extract_poses_batch(root, store, backend=cfg.source.pose_backend, workers=workers,
                                        progress=progress, layout=cfg.source.pose_layout)
            timings["extract_poses_s"] = time.perf_counter() - start
            summary["extract_poses"] = {"failures": len(poses.failures)}
            if poses.failures:
                _say(f"[extract poses] {len(poses.failures)} videos failed (listed in {store}/pose_failures.json)",
                     progress)
    elif not store.is_dir():
        raise ConfigError("data.store", f"no store at {str(store)!r} and source.raw_root is null: set "
                          "source.raw_root to an NTU-format root (--raw-root) so that run prepares it")

    metrics_file = work_dir / "metrics.json"
    trained_before = metrics_file.is_file()
    if trained_before:
        _say(f"[train] {work_dir} is finished (metrics.json): not training again", progress)
        summary["train"] = load_json(metrics_file)
    else:
        checkpoints = work_dir / "checkpoints"
        resume = checkpoints.is_dir() and any(checkpoints.iterdir())
        _say(f"[train] {cfg.experiment} -> {work_dir}" + (" (resuming)" if resume else ""), progress)
        start = time.perf_counter()
        summary["train"] = train(cfg, work_dir, resume=resume, progress=progress)
        timings["train_s"] = time.perf_counter() - start

    by_modality_file = work_dir / MODALITY_METRICS_FILE
    if trained_before and by_modality_file.is_file():
        by_modality = load_json(by_modality_file)
    else:
        _say("[evaluate] test split by modality", progress)
        start = time.perf_counter()
        by_modality = evaluate_modality_subsets(cfg, work_dir, progress=progress, class_kind_report=class_kind_report)
        timings["evaluate_by_modality_s"] = time.perf_counter() - start
    if by_modality:
        summary["by_modality"] = by_modality
    summary["timings"] = timings
    atomic_write_json(work_dir / "run_summary.json", summary)
    return summary


def _prepare_video_folder(cfg: Any, root: Path, store: Path, workers: int, progress: bool,
                          timings: Dict[str, float]) -> Dict[str, Any]:
    """``run`` of a folder of your own videos: :func:`~.prepare_videos.prepare_videos` writes the
    store and its benchmark file under ``data.benchmark``'s name (``videos`` when it is NTU's or a path)."""
    from ..datasets.benchmarks.resolve import is_list_path
    from ..datasets.ntu.splits import BENCHMARKS
    from .prepare_videos import DEFAULT_BENCHMARK, prepare_videos

    benchmark = cfg.data.benchmark
    if benchmark in BENCHMARKS or is_list_path(benchmark) or benchmark.startswith("ntu"):
        benchmark = DEFAULT_BENCHMARK
    _say(f"[prepare videos] {root} -> {store} (poses, person crops, benchmark {benchmark})", progress)
    start = time.perf_counter()
    sizes = {"rgb_size": int(cfg.source.rgb_size)} if cfg.source.rgb_size is not None else {}
    report = prepare_videos(root, store, benchmark=benchmark, seed=int(cfg.seed), workers=workers, progress=progress,
                            backend=cfg.source.pose_backend, **sizes)
    timings["prepare_s"] = time.perf_counter() - start
    if report.failures:
        _say(f"[prepare videos] {len(report.failures)} videos failed (pose extraction failures are also in "
             f"{store}/pose_failures.json):", progress)
        for failure in report.failures[:20]:
            _say(f"  {failure['sample']}: {failure['error']}", progress)
    return {"videos": report.num_videos, "done": report.num_extracted, "skipped": report.num_skipped,
            "failures": len(report.failures), "classes": len(report.classes), "splits": report.splits}


def run_cli(config_path: PathLike, overrides: Sequence[str] = (), work_dir: Optional[PathLike] = None,
            raw_root: Optional[str] = None, workers: Optional[int] = None) -> int:
    """``actionfusion run CONFIG [--raw-root ROOT] [--set k=v ...] [--work-dir DIR]``: prints a JSON summary."""
    from .config import load_config
    from .trainer import default_work_dir

    overrides = list(overrides) + ([f"source.raw_root={raw_root}"] if raw_root is not None else [])
    cfg = load_config(config_path, overrides)
    summary = run_experiment(cfg, Path(work_dir) if work_dir is not None else default_work_dir(cfg), workers=workers)
    brief = {"experiment": summary["experiment"], "work_dir": summary["work_dir"],
             "test_top1": summary["train"].get("top1"), "timings": summary["timings"]}
    if "by_modality" in summary:
        brief["test_top1_by_modality"] = {k: v["top1"] for k, v in summary["by_modality"].items()}
    for stage in ("prepare", "extract_poses"):
        if stage in summary:
            brief[f"{stage}_failures"] = summary[stage]["failures"]
    print(json.dumps(brief, sort_keys=True))
    return 0
