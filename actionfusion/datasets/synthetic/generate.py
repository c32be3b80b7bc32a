"""Generate the synthetic NTU-format dataset: plan the samples, run workers, summarise.

    from actionfusion.datasets.synthetic.generate import generate_synthetic_ntu, SynthConfig
    summary = generate_synthetic_ntu(Path("data/synthetic"), SynthConfig(scale="tiny"), workers=2)

The result is laid out exactly like NTU RGB+D (see :mod:`.render_sample`), with names
``SsssCcccPpppRrrrAaaa`` whose performers come from both sides of the NTU60 cross-subject
split and whose cameras 1-3 view the stage from -45, 0 and +45 degrees, so the real
xsub / xview / xset splits apply unchanged. Every output is deterministic from
``config.seed`` and the sample name; existing outputs are skipped (resumable).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Optional

from ...io import atomic_write_json, remove_stale_staging
from ...worker_lifetime import end_with_main_process
from ..ntu.names import SampleName, format_sample_name, parse_sample_name
from ..ntu.splits import split_of
from .action_library import synthetic_class, synthetic_classes
from .render_sample import DEPTH_DIR, MODALITIES, RGB_DIR, SKELETON_DIR, SampleJob, SampleResult, generate_sample
from .seeding import keyed_rng

SUMMARY_FILE = "synthetic_summary.json"
"""Written at the top of the output folder after a run."""

BENCHMARKS = ("ntu60_xsub", "ntu60_xview", "ntu120_xsub", "ntu120_xset")


@dataclass(frozen=True)
class ScalePreset:
    """A named dataset size.

    Attributes:
        actions: NTU action numbers to generate.
        performers: NTU performer IDs (some from the NTU60 xsub training subjects, some not).
        num_setups: setups used; performer P records in setup ``1 + (P - 1) % num_setups``.
        both_replications: R001 and R002 for every (performer, action); otherwise one of
            them, drawn per (performer, action).
        num_frames: (min, max) frames per event, inclusive.
    """

    actions: tuple[int, ...]
    performers: tuple[int, ...]
    num_setups: int
    both_replications: bool
    num_frames: tuple[int, int]


_ALL_ACTIONS = tuple(c.action for c in synthetic_classes())

SCALES: dict[str, ScalePreset] = {
    # Tests: motion, object and two-person classes; one train (P001) and one test (P003) subject.
    "tiny": ScalePreset(actions=(1, 3, 23, 28, 58), performers=(1, 3), num_setups=1,
                        both_replications=False, num_frames=(12, 16)),
    # `make demo`: 15 classes x 8 performers (5 xsub-train, 3 xsub-test) x 3 cameras = 360 samples.
    "default": ScalePreset(actions=_ALL_ACTIONS, performers=(1, 2, 4, 5, 8, 3, 6, 7), num_setups=2,
                           both_replications=False, num_frames=(36, 48)),
    # 15 classes x 20 performers x 2 replications x 3 cameras = 1800 samples.
    "large": ScalePreset(actions=_ALL_ACTIONS,
                         performers=(1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 3, 6, 7, 10, 11, 12, 20, 21),
                         num_setups=4, both_replications=True, num_frames=(64, 96)),
}


@dataclass(frozen=True)
class SynthConfig:
    """What to generate.

    Attributes:
        seed: the dataset seed; outputs are a pure function of it and the sample name.
        scale: ``"tiny"``, ``"default"`` or ``"large"`` (see :data:`SCALES`).
        rgb_size: (W, H) of the RGB videos, both even; the colour camera is the 1920x1080
            Kinect colour model scaled by (W/1920, H/1080).
        num_frames: (min, max) frames per event; None takes the scale's.
        modalities: any of ``"skeleton"``, ``"rgb"``, ``"depth_masked"``.
        actions: NTU action numbers; None takes the scale's.
        performers: NTU performer IDs; None takes the scale's.
        cameras: NTU camera numbers (1-3).
        video_crf: x264 constant rate factor.
        png_compression: zlib level of the depth PNGs.
    """

    seed: int = 0
    scale: str = "default"
    rgb_size: tuple[int, int] = (480, 270)
    num_frames: Optional[tuple[int, int]] = None
    modalities: tuple[str, ...] = MODALITIES
    actions: Optional[tuple[int, ...]] = None
    performers: Optional[tuple[int, ...]] = None
    cameras: tuple[int, ...] = (1, 2, 3)
    video_crf: int = 23
    png_compression: int = 1

    def preset(self) -> ScalePreset:
        """The scale preset; ValueError for an unknown scale."""
        if self.scale not in SCALES:
            raise ValueError(f"unknown scale {self.scale!r}; choose one of {', '.join(SCALES)}")
        return SCALES[self.scale]

    def frame_range(self) -> tuple[int, int]:
        """(min, max) frames per event."""
        lo, hi = self.num_frames if self.num_frames is not None else self.preset().num_frames
        if not 1 <= lo <= hi:
            raise ValueError(f"num_frames must satisfy 1 <= min <= max, got {(lo, hi)}")
        return int(lo), int(hi)

    def validate(self) -> None:
        """Raise ValueError on an inconsistent configuration."""
        self.frame_range()
        width, height = self.rgb_size
        if width <= 0 or height <= 0 or width % 2 or height % 2:
            raise ValueError(f"rgb_size must be positive and even (yuv420p), got {self.rgb_size}")
        unknown = set(self.modalities) - set(MODALITIES)
        if unknown or not self.modalities:
            raise ValueError(f"modalities must be a non-empty subset of {MODALITIES}, got {self.modalities}")
        if not set(self.cameras) <= {1, 2, 3} or not self.cameras:
            raise ValueError(f"cameras must be a non-empty subset of (1, 2, 3), got {self.cameras}")
        for action in self.actions or ():
            synthetic_class(action)


@dataclass
class SynthSummary:
    """What a run produced (counts cover every planned sample, generated now or before).

    Attributes:
        out: the output folder.
        seed, scale: the configuration's.
        num_samples: planned samples; ``generated`` written now, ``skipped`` already complete.
        num_frames: frames over all samples.
        per_class: NTU action number -> samples.
        per_split: benchmark -> {"train": n, "test": n}.
        bytes_per_modality: modality -> bytes on disk; total_bytes their sum.
        seconds: wall time of the run.
        workers: worker processes used.
        classes: one dict per class (action, label, name, kind, held_object).
    """

    out: str
    seed: int
    scale: str
    num_samples: int
    generated: int
    skipped: int
    num_frames: int
    per_class: dict[int, int]
    per_split: dict[str, dict[str, int]]
    bytes_per_modality: dict[str, int]
    total_bytes: int
    seconds: float
    workers: int
    classes: list[dict] = field(default_factory=list)

    def summary_text(self) -> str:
        """A few human-readable lines."""
        kinds: dict[str, int] = {}
        for cls in self.classes:
            kinds[cls["kind"]] = kinds.get(cls["kind"], 0) + 1
        splits = ", ".join(f"{b} {c.get('train', 0)}/{c.get('test', 0)}" for b, c in self.per_split.items())
        sizes = ", ".join(f"{m} {b / 1e6:.1f} MB" for m, b in self.bytes_per_modality.items())
        return "\n".join([
            f"synthetic NTU ({self.scale}, seed {self.seed}) -> {self.out}",
            f"  samples: {self.num_samples} ({self.generated} generated now, {self.skipped} already there), "
            f"{self.num_frames} frames, {len(self.per_class)} classes ("
            + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) + ")",
            f"  train/test per benchmark: {splits}",
            f"  on disk: {sizes}; time {self.seconds:.1f} s with {self.workers} workers",
        ])

    def to_dict(self) -> dict:
        """JSON-ready dict (class keys as strings)."""
        data = asdict(self)
        data["per_class"] = {f"A{a:03d}": n for a, n in sorted(self.per_class.items())}
        return data


def plan_samples(config: SynthConfig) -> list[str]:
    """The sample names a configuration asks for, sorted."""
    config.validate()
    preset = config.preset()
    actions = config.actions or preset.actions
    performers = config.performers or preset.performers
    names = []
    for performer in performers:
        setup = 1 + (performer - 1) % preset.num_setups
        for action in actions:
            if preset.both_replications:
                replications = (1, 2)
            else:
                replications = (int(keyed_rng(config.seed, "replication", performer, action).integers(1, 3)),)
            for replication in replications:
                for camera in config.cameras:
                    names.append(format_sample_name(SampleName(setup, camera, performer, replication, action)))
    return sorted(names)


def _init_worker(main_pid: int | None = None) -> None:
    import cv2

    cv2.setNumThreads(1)
    if main_pid is not None:
        end_with_main_process(main_pid)


def _run_jobs(jobs: list[SampleJob], workers: int, progress: bool) -> Iterable[SampleResult]:
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc="synthetic NTU", unit="sample", disable=None)
    try:
        if workers <= 1:
            _init_worker()
            for job in jobs:
                yield generate_sample(job)
                if bar is not None:
                    bar.update()
        else:
            context = multiprocessing.get_context("spawn")
            with context.Pool(workers, initializer=_init_worker, initargs=(os.getpid(),)) as pool:
                for result in pool.imap_unordered(generate_sample, jobs, chunksize=1):
                    yield result
                    if bar is not None:
                        bar.update()
    finally:
        if bar is not None:
            bar.close()


def generate_synthetic_ntu(out: Path, config: SynthConfig = SynthConfig(), workers: int = 2,
                           progress: bool = True) -> SynthSummary:
    """Generate (or complete) the synthetic dataset under ``out``.

    Args:
        out: the output folder (created); NTU's sub-folders are made inside it.
        config: what to generate.
        workers: worker processes ('spawn'); 1 runs in this process.
        progress: show a tqdm bar.
    Returns:
        The run's :class:`SynthSummary` (also written to ``out/synthetic_summary.json``).
    """
    start = time.perf_counter()
    out = Path(out)
    names = plan_samples(config)
    out.mkdir(parents=True, exist_ok=True)
    for sub in (SKELETON_DIR, RGB_DIR, DEPTH_DIR):
        remove_stale_staging(out / sub)  # leftovers of an interrupted run (.tmp-*)
    jobs = [SampleJob(out=str(out), name=n, seed=config.seed, frame_range=config.frame_range(),
                      rgb_size=tuple(config.rgb_size), modalities=tuple(config.modalities),
                      video_crf=config.video_crf, png_compression=config.png_compression) for n in names]
    # Two-person samples cost about twice as much: start them first for better load balance.
    jobs.sort(key=lambda j: -synthetic_class(parse_sample_name(j.name).action).num_bodies)
    results = list(_run_jobs(jobs, max(int(workers), 1), progress))

    per_class: dict[int, int] = {}
    per_split = {b: {"train": 0, "test": 0} for b in BENCHMARKS}
    for name in names:
        sample = parse_sample_name(name)
        per_class[sample.action] = per_class.get(sample.action, 0) + 1
        for benchmark in BENCHMARKS:
            per_split[benchmark][split_of(sample, benchmark)] += 1
    sizes = {m: sum(r.bytes.get(m, 0) for r in results) for m in config.modalities}
    generated = sum(1 for r in results if r.written)
    summary = SynthSummary(
        out=str(out), seed=config.seed, scale=config.scale, num_samples=len(names),
        generated=generated, skipped=len(names) - generated,
        num_frames=sum(r.num_frames for r in results), per_class=per_class, per_split=per_split,
        bytes_per_modality=sizes, total_bytes=sum(sizes.values()),
        seconds=round(time.perf_counter() - start, 3), workers=max(int(workers), 1),
        classes=[{"action": c.action, "label": c.label, "name": c.name, "kind": c.kind,
                  "held_object": c.held_object} for c in synthetic_classes()
                 if c.action in per_class],
    )
    atomic_write_json(out / SUMMARY_FILE, summary.to_dict())
    return summary
