"""``prepare_store``: an NTU-format root -> a sample store, per sample, in parallel, resumable, atomic.

- Each sample is written into a hidden staging directory and renamed into place
  (:func:`actionfusion.io.atomic_publish_dir`), so a reader never sees a partial sample.
- A rerun (also after ``kill -9``) removes stale staging directories and skips every sample
  whose directory exists; what it writes equals an uninterrupted run (all randomness is seeded
  per sample, from its name).
- A bad sample never stops the run: every stage's error is recorded (:mod:`.prepare_sample`),
  listed in the report and in ``failures.json``.
- ``manifest.json`` is rewritten atomically at start, every ``manifest_interval_s`` seconds and
  at the end. A store is only resumed with the config it was started with.
- ``workers >= 2`` runs samples in worker processes (``forkserver``, else ``spawn``; one decoder
  thread, one OpenCV thread each); ``workers`` 0 or 1 runs them inline (for debugging).
- ``ray_address`` runs the same per-sample function as Ray tasks on a cluster (:mod:`.prepare_ray`);
  this process still keeps the manifest and the report, so the store's bytes are the same.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Callable, Optional, Union

from ...errors import StoreError
from ...io import atomic_write_json, load_json, remove_stale_staging
from ...ray_pool import import_ray
from ...worker_lifetime import end_with_main_process
from ..ntu.index import SamplePaths, scan_ntu_root
from ..ntu.missing_skeletons import MISSING_SKELETONS_NTU120
from .layout import FAILURES_FILE, MANIFEST_FILE, META_FILE, is_published_sample, samples_dir
from .manifest import build_manifest, check_resumable_config, read_manifest, utc_now_iso, write_manifest
from .prepare_config import PrepareConfig, complete_stored_config
from .prepare_report import PrepareReport, estimate_sizes
from .prepare_sample import SampleResult, error_text, peak_rss_mb, prepare_sample, wanted_modalities

__all__ = ["PrepareConfig", "PrepareReport", "prepare_store"]

PathLike = Union[str, "os.PathLike[str]"]


def prepare_store(
    root: PathLike,
    out: PathLike,
    config: PrepareConfig = PrepareConfig(),
    workers: int = 2,
    progress: bool = True,
    limit: Optional[int] = None,
    *,
    overwrite: bool = False,
    manifest_interval_s: float = 5.0,
    ray_address: Optional[str] = None,
) -> PrepareReport:
    """Prepare every sample of the NTU-format ``root`` into the store ``out``.

    Args:
        root: NTU-format root (any subset of skeletons, RGB videos, masked depth).
        out: store directory: new, empty, or a store started with the same ``config``.
        config: what to write (frozen; recorded in the manifest).
        workers: worker processes; 0 or 1 prepares inline. With ``ray_address="local"``, the CPUs
            of the one-machine Ray cluster; with another address the cluster's CPUs decide.
        progress: show a tqdm progress bar.
        limit: prepare at most the first ``limit`` selected samples (sorted by name).
        overwrite: discard an existing store's samples (also one with another config).
        manifest_interval_s: how often the manifest is rewritten during the run.
        ray_address: run the samples as Ray tasks on this cluster (``"auto"``, ``"HOST:PORT"`` or
            ``"local"``; see :mod:`.prepare_ray`); None uses the local process pool.
    Returns:
        the :class:`PrepareReport` (also summarised in ``manifest.json`` and ``failures.json``).
    Raises:
        StoreError: ``root`` is not a directory; ``out`` holds something that is not a store;
            or ``out`` is a store prepared with a different config (the message names the keys).
        MissingDependencyError: ``ray_address`` is given and Ray is not installed.
        RayClusterError: the Ray cluster cannot be reached.
    """
    start = time.perf_counter()
    if ray_address is not None:
        import_ray()  # a missing Ray fails before the store is touched
    root, out = Path(root), Path(out)
    try:
        index = scan_ntu_root(root)
    except NotADirectoryError as err:
        raise StoreError(str(err)) from err
    selected, num_excluded = _select_samples(list(index.samples.values()), config, limit)
    created, statuses = _open_store(out, root, config, overwrite)
    remove_stale_staging(out)  # a manifest or failures.json temp file of a killed run
    remove_stale_staging(samples_dir(out))
    samples_dir(out).mkdir(parents=True, exist_ok=True)
    done_before = {p.name for p in samples_dir(out).iterdir() if is_published_sample(p)}
    todo = [s for s in selected if s.name not in done_before]
    report = PrepareReport(root=str(root), out=str(out), num_selected=len(selected),
                           num_skipped=len(selected) - len(todo), num_excluded=num_excluded)

    def write_progress_manifest() -> None:
        write_manifest(out, build_manifest(config=config.to_dict(), source_root=str(root), created=created,
                                           samples=statuses))

    results: list[SampleResult] = []
    bar = _progress_bar(len(selected), report.num_skipped, progress)
    last_manifest = time.monotonic()
    num_failed = 0

    def on_result(result: SampleResult) -> None:
        nonlocal last_manifest, num_failed
        results.append(result)
        num_failed += result.status == "failed"
        entry: dict[str, Any] = {"status": result.status}
        if result.failures:
            entry["reason"] = "; ".join(f"[{stage}] {error}" for stage, error in result.failures)
        statuses[result.name] = entry
        if bar is not None:
            bar.update(1)
            bar.set_postfix(failed=num_failed, refresh=False)
        if time.monotonic() - last_manifest >= manifest_interval_s:
            write_progress_manifest()
            last_manifest = time.monotonic()

    try:
        if ray_address is not None and todo:
            from .prepare_ray import prepare_on_ray

            prepare_on_ray(todo, out, config, root, ray_address, on_result, local_cpus=max(int(workers), 1))
        elif workers <= 1:
            for paths in todo:
                on_result(prepare_sample(paths, out, config, root=root))
        else:
            _run_parallel(todo, out, config, root, workers, on_result)
    finally:
        if bar is not None:
            bar.close()
        write_progress_manifest()

    report.elapsed_s = time.perf_counter() - start
    _fill_counts(report, results, selected, out)
    _measure_store(report, out)
    atomic_write_json(out / FAILURES_FILE, [{"sample": n, "stage": s, "error": e} for n, s, e in report.failures])
    write_manifest(out, build_manifest(config=config.to_dict(), source_root=str(root), created=created,
                                       samples=statuses, size_estimate=report.size_estimate()))
    return report


def _select_samples(samples: list[SamplePaths], config: PrepareConfig,
                    limit: Optional[int]) -> tuple[list[SamplePaths], int]:
    """Samples with a source for some requested modality (minus missing skeletons if asked), first ``limit``."""
    selected = []
    for paths in samples:
        if config.exclude_missing_skeletons and (paths.skeleton is None or paths.name in MISSING_SKELETONS_NTU120):
            continue
        if wanted_modalities(paths, config):
            selected.append(paths)
    excluded = len(samples) - len(selected)
    if limit is not None:
        selected = selected[: max(int(limit), 0)]
    return selected, excluded


def _open_store(out: Path, root: Path, config: PrepareConfig, overwrite: bool) -> tuple[str, dict[str, dict[str, Any]]]:
    """Create ``out`` or check it for resuming; returns (creation time, per-sample statuses known so far)."""
    wanted = config.to_dict()
    if (out / MANIFEST_FILE).exists():
        manifest = read_manifest(out)
        if overwrite:
            shutil.rmtree(samples_dir(out), ignore_errors=True)
            for name in (FAILURES_FILE, MANIFEST_FILE):
                (out / name).unlink(missing_ok=True)
        else:
            # a key added to PrepareConfig since the store was made reads as its historical value
            check_resumable_config(out, complete_stored_config(manifest.get("config") or {}), wanted)
            statuses = _published_statuses(out)
            for name, entry in (manifest.get("samples") or {}).items():
                if entry.get("status") == "failed" and name not in statuses:
                    statuses[name] = dict(entry)
            return str(manifest.get("created") or utc_now_iso()), statuses
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise StoreError(f"{out}: exists and is not a sample store (no {MANIFEST_FILE}); "
                         "choose an empty or new directory")
    created = utc_now_iso()
    out.mkdir(parents=True, exist_ok=True)
    write_manifest(out, build_manifest(config=wanted, source_root=str(root), created=created, samples={}))
    return created, {}


def _published_statuses(out: Path) -> dict[str, dict[str, Any]]:
    """Status entries read from the ``meta.json`` of every published sample."""
    statuses: dict[str, dict[str, Any]] = {}
    directory = samples_dir(out)
    if not directory.is_dir():
        return statuses
    for path in sorted(directory.iterdir()):
        if is_published_sample(path):
            meta = load_json(path / META_FILE)
            entry: dict[str, Any] = {"status": meta.get("status", "ok")}
            if meta.get("failures"):
                entry["reason"] = "; ".join(f"[{f['stage']}] {f['error']}" for f in meta["failures"])
            statuses[path.name] = entry
    return statuses


def init_worker(main_pid: int | None = None) -> None:
    """Keep each worker process to one thread per library (workers run side by side); with
    ``main_pid``, end the worker when that process dies (:mod:`actionfusion.worker_lifetime`)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ[var] = "1"
    import cv2

    cv2.setNumThreads(1)
    if main_pid is not None:
        end_with_main_process(main_pid)


def _prepare_in_worker(paths: SamplePaths, out: Path, config: PrepareConfig, root: Path) -> SampleResult:
    return prepare_sample(paths, out, config, root=root, video_threads=1)


def _run_parallel(todo: list[SamplePaths], out: Path, config: PrepareConfig, root: Path, workers: int,
                  on_result: Callable[[SampleResult], None]) -> None:
    """Run ``todo`` in a process pool, at most ``2 * workers`` samples in flight.

    A worker that dies (e.g. killed for memory) breaks the pool: the samples in flight are
    recorded as failed (a rerun retries them) and a fresh pool takes the rest.
    """
    queue = deque(todo)
    context = worker_context()
    while queue:
        pending: dict[Future[SampleResult], str] = {}
        with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=init_worker,
                                 initargs=(os.getpid(),)) as pool:
            try:
                while queue or pending:
                    while queue and len(pending) < 2 * workers:
                        paths = queue.popleft()
                        pending[pool.submit(_prepare_in_worker, paths, out, config, root)] = paths.name
                    finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in finished:
                        name = pending.pop(future)
                        on_result(_future_result(future, name))
            except BrokenProcessPool as err:
                for future, name in pending.items():
                    on_result(SampleResult(name, "failed", [("worker", error_text(err))]))
                pending.clear()
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise


def worker_context() -> multiprocessing.context.BaseContext:
    """``forkserver`` where available (workers fork from a server that imported the heavy modules
    once, so they start in a fraction of a second), else ``spawn``. Never plain ``fork``: the
    caller may hold threads (tqdm, torch) that a fork would copy mid-state."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["actionfusion.datasets.store.prepare_sample",
                                        "actionfusion.modalities.pointcloud.sampling"])
        return context
    return multiprocessing.get_context("spawn")


def _future_result(future: "Future[SampleResult]", name: str) -> SampleResult:
    try:
        return future.result()
    except BrokenProcessPool:
        raise
    except Exception as err:  # prepare_sample records its own errors; this is e.g. an unpicklable result
        return SampleResult(name, "failed", [("worker", error_text(err))])


def _progress_bar(total: int, initial: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="sample", desc="prepare", dynamic_ncols=True, disable=None)


def _fill_counts(report: PrepareReport, results: list[SampleResult], selected: list[SamplePaths], out: Path) -> None:
    """Counts, throughput and the failure list."""
    report.num_done = sum(r.status in ("ok", "partial") for r in results)
    report.num_partial = sum(r.status == "partial" for r in results)
    report.num_failed = sum(r.status == "failed" for r in results)
    frames = sum(max(r.frames.values(), default=0) for r in results)
    report.sample_cpu_s = sum(r.cpu_s for r in results)
    report.peak_rss_main_mb = peak_rss_mb()
    report.peak_rss_worker_mb = max((r.peak_rss_mb for r in results), default=0.0)
    if report.elapsed_s > 0:
        report.samples_per_s = report.num_done / report.elapsed_s
        report.frames_per_s = frames / report.elapsed_s
    seen = set()
    for result in results:
        seen.add(result.name)
        report.failures += [(result.name, stage, error) for stage, error in result.failures]
    for paths in selected:  # partial samples from an earlier run keep their recorded failures
        if paths.name in seen:
            continue
        meta_path = samples_dir(out) / paths.name / META_FILE
        if meta_path.is_file():
            meta = load_json(meta_path)
            report.failures += [(paths.name, f["stage"], f["error"]) for f in meta.get("failures", [])]


def _measure_store(report: PrepareReport, out: Path) -> None:
    """Measured sizes over every published sample, and the full-NTU60 estimate."""
    modality_bytes: dict[str, list[int]] = {}
    modality_frames: dict[str, list[int]] = {}
    meta_bytes: list[int] = []
    for path in sorted(samples_dir(out).iterdir()):
        if not is_published_sample(path):
            continue
        meta = load_json(path / META_FILE)
        meta_bytes.append((path / META_FILE).stat().st_size)
        for modality, info in meta.get("modalities", {}).items():
            if "bytes" in info:
                modality_bytes.setdefault(modality, []).append(int(info["bytes"]))
                modality_frames.setdefault(modality, []).append(int(info["num_frames"]))
    estimate_sizes(report, modality_bytes, modality_frames, meta_bytes)
