"""Batch pose extraction: ``actionfusion extract-poses ROOT_OR_VIDEOS... --out STORE``.

Runs :func:`~actionfusion.modalities.pose.extract.extract_poses` (which streams the decoder
and overlaps it with inference) over every video of an NTU-format root or a list of videos,
and writes each video's 2D poses (and world 3D where the backend gives them) into a sample
store (:mod:`actionfusion.datasets.store.sample_update`): into the sample ``prepare`` made for
it, or into a new sample.

* **Workers** are processes (``forkserver``, else ``spawn``); each builds one estimator on its
  first video and calls ``reset()`` between videos. Each worker keeps OpenCV and the BLAS
  libraries to one thread: mediapipe is CPU-bound, one estimator per process scales best.
* **Resumable after kill -9**: every file is written atomically and a sample's ``meta.json``
  lists ``pose2d`` only after ``pose2d.npy`` is in place, so a rerun skips exactly the videos
  that were finished (``overwrite=True`` redoes them).
* **Never fatal per video**: any exception of one video (a corrupt file raises
  :class:`~actionfusion.errors.VideoDecodeError`) is recorded as (sample, error type,
  message), the video is skipped, and the list is printed and written atomically to
  ``<store>/pose_failures.json``. A worker process that dies fails the videos it held and a
  fresh pool takes the rest.
* **On Ray** (``ray_address``): the same per-video function runs on Ray actors that hold the
  estimator, one per CPU (or per ``ray_gpus_per_actor`` of a GPU) of the cluster
  (:mod:`.extract_poses_ray`); this process keeps the report and the manifest.
* Sample names: the NTU name when the file name parses as one (``<name>_rgb.avi``), else the
  file stem. Labels come only from NTU names; any other video gets label None.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing
import os
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence, Union

from ..errors import UsageError, one_line
from ..worker_lifetime import end_with_main_process
from ..datasets.store.layout import MANIFEST_FILE, samples_dir
from ..datasets.store.manifest import config_differences, read_manifest, utc_now_iso, write_manifest
from ..datasets.store.sample_update import (
    POSE_STORE_SOURCE,
    add_pose_to_sample,
    ensure_pose_store,
    sample_has_modality,
)
from ..errors import StoreError
from ..io import atomic_write_json, remove_stale_staging
from ..modalities.skeleton.layouts import get_layout
from .cli_ray import add_ray_arguments
from .cli_types import int_in, workers
from .extract_poses_inputs import VideoJob, collect_video_jobs
from .extract_poses_report import FAILURES_FILE, ExtractionFailure, ExtractionReport

PathLike = Union[str, "os.PathLike[str]"]

MANIFEST_KEY = "pose_extraction"
"""Top-level manifest key recording the settings of the extraction that wrote the store's poses."""

"""How often a worker checks that the main process is still alive."""

EstimatorFactory = Callable[[], Any]
"""A picklable ``() -> PoseEstimator`` used instead of ``create_pose_estimator(backend)``."""


@dataclass(frozen=True)
class ExtractSettings:
    """What every worker needs to extract one video and store it."""

    out: str
    backend: str = "default"
    device: str = "cpu"
    layout: Optional[str] = None
    max_persons: Optional[int] = None
    estimator_kwargs: tuple[tuple[str, Any], ...] = ()
    estimator_factory: Optional[EstimatorFactory] = None


@dataclass
class VideoResult:
    """What a worker reports for one video."""

    name: str
    video: str
    ok: bool
    num_frames: int = 0
    num_tracks: int = 0
    has_world: bool = False
    error_type: str = ""
    message: str = ""
    seconds: float = 0.0


# ---------------------------------------------------------------------------------------- one video

_WORKER_ESTIMATORS: dict[tuple[Any, ...], Any] = {}
"""The estimator of this worker process, built on its first video (keyed by the settings)."""


def _build_estimator(settings: ExtractSettings) -> Any:
    if settings.estimator_factory is not None:
        return settings.estimator_factory()
    from ..modalities.pose.estimator import create_pose_estimator

    return create_pose_estimator(settings.backend, device=settings.device, **dict(settings.estimator_kwargs))


def _worker_estimator(settings: ExtractSettings) -> Any:
    key = (settings.backend, settings.device, settings.estimator_kwargs, settings.estimator_factory)
    if key not in _WORKER_ESTIMATORS:
        _WORKER_ESTIMATORS.clear()
        _WORKER_ESTIMATORS[key] = _build_estimator(settings)
    return _WORKER_ESTIMATORS[key]


def extract_one_video(job: VideoJob, settings: ExtractSettings, estimator: Any) -> VideoResult:
    """Extract ``job`` with ``estimator`` (``extract_poses`` resets it) and write it into the store.

    Never raises for a bad video: any exception becomes a failed :class:`VideoResult`.
    """
    from ..modalities.pose.extract import extract_poses

    start = time.perf_counter()
    try:
        # extract_poses resets the estimator, streams the decoder and overlaps it with inference.
        sequence = extract_poses(job.video, backend=estimator, max_persons=settings.max_persons)
        if settings.layout is not None:
            sequence = sequence.to_layout(settings.layout)
        keypoints, world = sequence.keypoints, sequence.world
        add_pose_to_sample(settings.out, job.name, keypoints, layout=sequence.layout, fps=sequence.fps,
                           frame_size_hw=(int(sequence.frame_size[0]), int(sequence.frame_size[1])),
                           backend=settings.backend, world=world, label=job.label, sources={"rgb": job.video})
    except Exception as err:  # one bad video must never stop the batch
        return VideoResult(job.name, job.video, False, error_type=type(err).__name__,
                           message=one_line(err), seconds=time.perf_counter() - start)
    return VideoResult(job.name, job.video, True, num_frames=int(keypoints.shape[1]),
                       num_tracks=int(keypoints.shape[0]), has_world=world is not None,
                       seconds=time.perf_counter() - start)


def _init_worker(main_pid: int) -> None:
    """One thread per library in each worker (the workers run side by side), and exit when the
    main process is gone (``kill -9`` of the command must not leave workers behind)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ[var] = "1"
    import cv2

    cv2.setNumThreads(1)
    end_with_main_process(main_pid)


def _extract_in_worker(job: VideoJob, settings: ExtractSettings) -> VideoResult:
    """A video's result; an estimator that cannot be built raises (a setup error stops the run,
    as it does inline)."""
    return extract_one_video(job, settings, _worker_estimator(settings))


# ---------------------------------------------------------------------------------------- batch

def extract_poses_batch(
    inputs: Union[PathLike, Sequence[PathLike]],
    out_store: PathLike,
    backend: str = "default",
    workers: int = 2,
    progress: bool = True,
    max_persons: Optional[int] = None,
    layout: Optional[str] = None,
    overwrite: bool = False,
    *,
    device: str = "cpu",
    limit: Optional[int] = None,
    estimator_kwargs: Optional[dict[str, Any]] = None,
    estimator_factory: Optional[EstimatorFactory] = None,
    ray_address: Optional[str] = None,
    ray_cpus_per_actor: float = 1.0,
    ray_gpus_per_actor: float = 0.0,
    source: Optional[str] = None,
) -> ExtractionReport:
    """Extract the poses of many videos into a sample store (see the module docstring).

    Args:
        inputs: NTU-format root(s), list file(s) and/or video files (:func:`collect_video_jobs`).
        out_store: a store made by ``actionfusion prepare`` (poses are added to its samples), an
            earlier extraction's store (resumed), or a new/empty directory (a store is created).
        backend: pose backend name (:func:`~actionfusion.modalities.pose.estimator.create_pose_estimator`).
        workers: worker processes, one estimator each; 0 or 1 extracts in this process.
        progress: show a tqdm progress bar over videos.
        max_persons: keep at most this many tracks per video (largest summed score, see
            ``extract_poses``); None keeps all.
        layout: convert keypoints to this layout (e.g. ``"coco17"``) before storing; None keeps
            the backend's.
        overwrite: redo videos whose sample already has ``pose2d``, and accept a store whose
            poses were extracted with other settings.
        device: passed to the backend ("cpu", "cuda", ...).
        limit: extract at most the first ``limit`` videos (sorted by sample name).
        estimator_kwargs: backend options.
        estimator_factory: a picklable ``() -> PoseEstimator`` used instead of the backend
            registry (custom estimators; the ``backend`` string is still recorded).
        ray_address: extract on Ray actors on this cluster (``"auto"``, ``"HOST:PORT"`` or
            ``"local"`` with ``workers`` CPUs); None uses the local process pool.
        ray_cpus_per_actor: CPUs each Ray actor reserves.
        ray_gpus_per_actor: GPUs (or a fraction) each Ray actor reserves (GPU backends such as
            mmpose, with ``device="cuda"``); 0 runs on CPUs.
        source: what the manifest records as the store's source (default: the inputs as text).
    Returns:
        the :class:`ExtractionReport` (failures also in ``<store>/pose_failures.json``).
    Raises:
        StoreError: ``out_store`` is not a store and not empty; its poses were extracted with
            different settings (and not ``overwrite``); or the inputs cannot be listed.
        UsageError: an unknown ``layout`` or ``backend``, or ``max_persons`` < 1.
        MissingDependencyError: ``ray_address`` is given and Ray is not installed.
        RayClusterError: the Ray cluster cannot be reached or lacks the resources asked for.
    """
    start = time.perf_counter()
    if ray_address is not None:
        from ..ray_pool import import_ray

        import_ray()  # a missing Ray fails before the store is touched
    if max_persons is not None and max_persons < 1:
        raise UsageError(f"max_persons must be >= 1 (or None for all), got {max_persons}")
    if layout is not None:
        layout = get_layout(layout).name  # an unknown layout fails here, not once per video
    if estimator_factory is None:
        from ..modalities.pose.estimator import list_pose_backends

        if backend not in list_pose_backends():  # fails here, not in every worker
            raise UsageError(f"unknown pose backend {backend!r}; known: {', '.join(list_pose_backends())}")
    out = Path(out_store)
    jobs = collect_video_jobs(inputs)
    if limit is not None:
        jobs = jobs[: max(int(limit), 0)]
    record = {"backend": backend, "layout": layout, "max_persons": max_persons}
    _open_store(out, source if source is not None else inputs, record, overwrite)
    settings = ExtractSettings(out=str(out), backend=backend, device=device, layout=layout, max_persons=max_persons,
                               estimator_kwargs=tuple(sorted((estimator_kwargs or {}).items())),
                               estimator_factory=estimator_factory)
    todo = jobs if overwrite else [j for j in jobs if not sample_has_modality(out, j.name, "pose2d")]
    num_workers = max(int(workers), 1) if len(todo) > 1 else 1
    report = ExtractionReport(out=str(out), backend=backend, layout=layout, workers=num_workers,
                              num_videos=len(jobs), num_skipped=len(jobs) - len(todo))
    bar = _progress_bar(len(jobs), report.num_skipped, progress)

    def on_result(result: VideoResult) -> None:
        if result.ok:
            report.num_extracted += 1
            report.num_frames += result.num_frames
            report.num_with_world += result.has_world
            report.num_without_person += result.num_tracks == 0
        else:
            report.num_failed += 1
            report.failures.append(ExtractionFailure(result.name, result.video, result.error_type, result.message))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(failed=report.num_failed, refresh=False)

    try:
        if ray_address is not None and todo:
            from .extract_poses_ray import extract_on_ray

            report.workers = extract_on_ray(todo, settings, ray_address, on_result, local_cpus=max(int(workers), 1),
                                            cpus_per_actor=ray_cpus_per_actor, gpus_per_actor=ray_gpus_per_actor)
        elif num_workers <= 1:
            estimator = _build_estimator(settings) if todo else None
            for job in todo:
                on_result(extract_one_video(job, settings, estimator))
        else:
            _run_parallel(todo, settings, num_workers, on_result)
    finally:
        if bar is not None:
            bar.close()
    report.elapsed_s = time.perf_counter() - start
    report.failures.sort(key=lambda f: f.sample)
    atomic_write_json(out / FAILURES_FILE, report.failures_dicts())
    _close_store(out, record, report)
    return report


def _open_store(out: Path, inputs: Any, record: dict[str, Any], overwrite: bool) -> None:
    """Create the store if needed, check and record the extraction settings in its manifest."""
    source = str(inputs) if isinstance(inputs, (str, os.PathLike)) else ", ".join(str(i) for i in inputs)
    manifest = ensure_pose_store(out, config=record, source_root=source)
    previous = manifest.get(MANIFEST_KEY)
    if isinstance(previous, dict) and not overwrite and _any_pose_extracted(out):
        differing = config_differences({k: previous.get(k) for k in record}, record)
        if differing:
            detail = ", ".join(f"{k}: stored {previous.get(k)!r}, requested {record[k]!r}" for k in differing)
            raise StoreError(f"{out}: poses were extracted with other settings ({detail}); "
                             "use another --out, or --overwrite to redo them")
    remove_stale_staging(out)
    remove_stale_staging(samples_dir(out))
    manifest[MANIFEST_KEY] = {**record, "started": utc_now_iso()}
    if manifest.get("config", {}).get("source") == POSE_STORE_SOURCE:  # a store this command made
        manifest["config"] = {**record, "source": POSE_STORE_SOURCE}
    write_manifest(out, manifest)


def _any_pose_extracted(out: Path) -> bool:
    """Whether a sample of ``out`` holds extracted poses (a run that extracted none, e.g. one whose
    backend failed to load, leaves settings that need not bind the next run)."""
    folder = samples_dir(out)
    return folder.is_dir() and any(sample_has_modality(out, p.name, "pose2d") for p in folder.iterdir()
                                   if not p.name.startswith("."))


def _close_store(out: Path, record: dict[str, Any], report: ExtractionReport) -> None:
    """Record the run's counts in the manifest (and, in a store extraction created, the samples)."""
    if not (out / MANIFEST_FILE).is_file():
        return
    manifest = read_manifest(out)
    manifest[MANIFEST_KEY] = {**dict(manifest.get(MANIFEST_KEY) or record), "finished": utc_now_iso(),
                              "last_run": {k: v for k, v in report.to_dict().items() if k != "failures"}}
    if manifest.get("config", {}).get("source") == POSE_STORE_SOURCE:
        samples = {p.name: {"status": "ok"} for p in sorted(samples_dir(out).iterdir())
                   if sample_has_modality(out, p.name, "pose2d")}
        for failure in report.failures:
            samples.setdefault(failure.sample, {"status": "failed", "reason": f"{failure.error_type}: {failure.message}"})
        manifest["samples"] = dict(sorted(samples.items()))
        counts: dict[str, int] = {"ok": 0, "partial": 0, "failed": 0}
        for entry in samples.values():
            counts[entry["status"]] += 1
        manifest["counts"] = counts
    manifest["updated"] = utc_now_iso()
    write_manifest(out, manifest)


def _run_parallel(todo: list[VideoJob], settings: ExtractSettings, workers: int,
                  on_result: Callable[[VideoResult], None]) -> None:
    """Run ``todo`` in a process pool, at most ``2 * workers`` videos in flight.

    A worker that dies breaks the pool: the videos in flight are failed (a rerun retries them)
    and a fresh pool takes the rest. An exception out of a worker (the estimator cannot be
    built, the settings cannot be pickled) stops the run, like it does inline.
    """
    queue = deque(todo)
    context = _worker_context()
    while queue:
        pending: dict[Future[VideoResult], VideoJob] = {}
        with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                                 initargs=(os.getpid(),)) as pool:
            try:
                while queue or pending:
                    while queue and len(pending) < 2 * workers:
                        job = queue.popleft()
                        pending[pool.submit(_extract_in_worker, job, settings)] = job
                    finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in finished:
                        result = future.result()  # videos never raise; a setup error does
                        del pending[future]
                        on_result(result)
            except BrokenProcessPool as err:
                for job in pending.values():
                    on_result(VideoResult(job.name, job.video, False, error_type=type(err).__name__,
                                          message=f"worker process died ({err})"))
                pending.clear()
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise


def _worker_context() -> multiprocessing.context.BaseContext:
    """``forkserver`` where available (workers fork from a server that imported the heavy modules
    once), else ``spawn``; never plain ``fork`` (the caller may hold threads)."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["actionfusion.pipeline.extract_poses", "actionfusion.modalities.pose.extract"])
        return context
    return multiprocessing.get_context("spawn")


def _progress_bar(total: int, initial: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="video", desc="extract-poses", dynamic_ncols=True, disable=None)


# ---------------------------------------------------------------------------------------- command line

def add_extract_poses_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``actionfusion extract-poses`` (for the CLI's sub-parser)."""
    parser.add_argument("inputs", nargs="+", metavar="ROOT_OR_VIDEOS",
                        help="an NTU-format root, video files, or .txt lists of videos (one path a line)")
    parser.add_argument("--out", required=True, help="the store: prepared (poses are added), earlier, or new")
    parser.add_argument("--backend", default="default", help="pose backend (default: BlazePose through mediapipe)")
    parser.add_argument("--device", default="cpu", help="device for backends that have a choice (cpu, cuda)")
    parser.add_argument("--workers", type=workers, default=2, help="worker processes, one estimator each (0/1: inline)")
    parser.add_argument("--layout", default=None, help="store keypoints in this layout (e.g. coco17, ntu25)")
    parser.add_argument("--max-persons", type=int_in(1, 64), default=None, help="keep at most N tracks per video")
    parser.add_argument("--limit", type=int_in(0, 10**9), default=None, help="extract at most this many videos")
    parser.add_argument("--overwrite", action="store_true", help="redo videos that already have poses")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON line")
    parser.add_argument("--strict", action="store_true", help="exit with status 3 if any video failed")
    mm = parser.add_argument_group("mmpose backend (--backend mmpose)")
    mm.add_argument("--pose-config", default=None, help="the mmpose model config (.py), e.g. an RTMPose or HRNet config")
    mm.add_argument("--pose-checkpoint", default=None, help="its weights (.pth); without it the model is random")
    mm.add_argument("--det-config", default=None, help="an mmdet person detector's config (with --det-checkpoint); "
                    "without a detector the whole frame is one person box")
    mm.add_argument("--det-checkpoint", default=None, help="the detector's weights")
    add_ray_arguments(parser, actors=True)


MMPOSE_OPTIONS = ("pose_config", "pose_checkpoint", "det_config", "det_checkpoint")
"""extract-poses options passed to the mmpose backend."""


def backend_options(args: argparse.Namespace) -> dict[str, Any]:
    """The backend keyword arguments of the mmpose options given.

    Raises:
        UsageError: an mmpose option with another backend, ``--backend mmpose`` without
            ``--pose-config`` (once mmpose is installed: before that, its install instructions are
            the error), or one of ``--det-config`` / ``--det-checkpoint`` without the other.
    """
    given = {name: getattr(args, name) for name in MMPOSE_OPTIONS if getattr(args, name, None) is not None}
    flags = ", ".join("--" + name.replace("_", "-") for name in given)
    if args.backend != "mmpose":
        if given:
            raise UsageError(f"{flags}: only for --backend mmpose (the backend is {args.backend!r})")
        return {}
    if "pose_config" not in given and importlib.util.find_spec("mmpose") is not None:
        # (without mmpose the backend's install instructions come first, when it is created)
        raise UsageError("--backend mmpose needs --pose-config CONFIG.py (and --pose-checkpoint WEIGHTS.pth): "
                         "the mmpose model to run")
    if ("det_config" in given) != ("det_checkpoint" in given):
        raise UsageError("--det-config and --det-checkpoint go together (or give neither: whole-frame boxes)")
    return given


def run_extract_poses_cli(args: argparse.Namespace) -> int:
    """Run ``actionfusion extract-poses`` from parsed arguments; prints the report.

    Returns 0, or 3 with ``--strict`` when a video failed.
    """
    estimator_kwargs = backend_options(args)
    report = extract_poses_batch(args.inputs, Path(args.out), backend=args.backend, workers=args.workers,
                                 progress=not args.quiet, max_persons=args.max_persons, layout=args.layout,
                                 overwrite=args.overwrite, device=args.device, limit=args.limit,
                                 ray_address=args.ray, ray_cpus_per_actor=args.ray_cpus_per_actor,
                                 ray_gpus_per_actor=args.ray_gpus_per_actor, estimator_kwargs=estimator_kwargs)
    print(json.dumps(report.to_dict()) if args.json else report.summary_text())
    return 3 if args.strict and report.failures else 0


def main(argv: Optional[Iterable[str]] = None) -> int:
    """Parse ``argv`` (the command's arguments, without the program name) and run the command."""
    parser = argparse.ArgumentParser(prog="actionfusion extract-poses", description=__doc__.split("\n", 1)[0])
    add_extract_poses_arguments(parser)
    return run_extract_poses_cli(parser.parse_args(list(argv) if argv is not None else None))
