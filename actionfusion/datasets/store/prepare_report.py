"""``PrepareReport``: what a prepare run did, how fast, and how big a full NTU60 store would be.

The size estimate scales the *measured* mean stored bytes per frame of each modality (over
every sample in the store) to NTU RGB+D 60:

    estimate = sum over modalities of (bytes per frame x NTU60_MEAN_FRAMES x NTU60_NUM_SAMPLES)
               + mean meta.json bytes x NTU60_NUM_SAMPLES

so it holds for the sizes and qualities of the config, on frames like the ones measured
(synthetic frames compress differently from real video: measure on real data when you can).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

NTU60_NUM_SAMPLES = 56_880
"""Samples in NTU RGB+D 60 (official README, shahroudy/NTURGB-D)."""

NTU60_MEAN_FRAMES = 100.0
"""Mean frames per NTU60 sample used by the estimate: about 5.7 M depth frames over 56,880
samples (the project's measured-facts note, specs/pose-and-video.md); the CVPR 2016 paper
quotes "over 4 million frames" (about 70 a sample), so 100 errs on the large side."""

STORE_BUDGET_BYTES = 50 * 10**9
"""The size a full NTU60 store at the default config must stay under (the project's requirement)."""


@dataclass
class PrepareReport:
    """The outcome of :func:`actionfusion.datasets.store.prepare.prepare_store`.

    Attributes:
        root, out: source root and store directory.
        num_selected: samples selected (after exclusions and ``limit``).
        num_done: samples prepared in this run and published (``ok`` or ``partial``).
        num_partial: of those, samples where some modality failed.
        num_skipped: selected samples already in the store (not touched).
        num_failed: samples of this run where nothing could be written (not published; a
            rerun retries them).
        num_excluded: samples of the root left out (no source for any requested modality, or
            ``exclude_missing_skeletons``).
        failures: (sample, stage, "ErrorType: message") for this run's failures and the
            recorded failures of the selected ``partial`` samples already in the store.
        elapsed_s: wall time of the run.
        samples_per_s, frames_per_s: this run's throughput (frames: the longest modality of
            each prepared sample).
        sample_cpu_s: CPU time spent inside the samples of this run, summed over workers
            (worker start-up and orchestration excluded).
        peak_rss_main_mb: peak resident memory of the calling process (MiB).
        peak_rss_worker_mb: the largest peak resident memory of the processes that prepared
            samples (the caller's own in inline mode).
        bytes_per_sample, bytes_per_frame, frames_per_sample: measured means per modality over
            every sample in the store that has it.
        meta_bytes_per_sample: mean ``meta.json`` size.
        estimate_full_ntu60_bytes: projected size of a full NTU60 store with this config.
        estimate_per_modality_bytes: the same, per modality.
        estimate_assumptions: how the estimate was made, in words.
    """

    root: str
    out: str
    num_selected: int = 0
    num_done: int = 0
    num_partial: int = 0
    num_skipped: int = 0
    num_failed: int = 0
    num_excluded: int = 0
    failures: list[tuple[str, str, str]] = field(default_factory=list)
    elapsed_s: float = 0.0
    samples_per_s: float = 0.0
    frames_per_s: float = 0.0
    sample_cpu_s: float = 0.0
    peak_rss_main_mb: float = 0.0
    peak_rss_worker_mb: float = 0.0
    bytes_per_sample: dict[str, float] = field(default_factory=dict)
    bytes_per_frame: dict[str, float] = field(default_factory=dict)
    frames_per_sample: dict[str, float] = field(default_factory=dict)
    meta_bytes_per_sample: float = 0.0
    estimate_full_ntu60_bytes: int = 0
    estimate_per_modality_bytes: dict[str, int] = field(default_factory=dict)
    estimate_assumptions: str = ""

    @property
    def fits_budget(self) -> bool:
        """Whether the full-NTU60 estimate is under :data:`STORE_BUDGET_BYTES`."""
        return self.estimate_full_ntu60_bytes <= STORE_BUDGET_BYTES

    def size_estimate(self) -> dict[str, Any]:
        """The measured sizes and the estimate (what the manifest stores)."""
        return {
            "bytes_per_sample": dict(self.bytes_per_sample),
            "bytes_per_frame": dict(self.bytes_per_frame),
            "frames_per_sample": dict(self.frames_per_sample),
            "meta_bytes_per_sample": self.meta_bytes_per_sample,
            "estimate_full_ntu60_bytes": self.estimate_full_ntu60_bytes,
            "estimate_per_modality_bytes": dict(self.estimate_per_modality_bytes),
            "estimate_assumptions": self.estimate_assumptions,
            "budget_bytes": STORE_BUDGET_BYTES,
            "fits_budget": self.fits_budget,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field plus ``fits_budget``."""
        out = asdict(self)
        out["failures"] = [list(f) for f in self.failures]
        out["fits_budget"] = self.fits_budget
        return out

    def summary_text(self) -> str:
        """A few human-readable lines."""
        gb = self.estimate_full_ntu60_bytes / 1e9
        lines = [
            f"prepare {self.root} -> {self.out}",
            f"  samples: {self.num_selected} selected, {self.num_done} prepared now "
            f"({self.num_partial} partial), {self.num_skipped} already done, {self.num_failed} failed, "
            f"{self.num_excluded} excluded",
            f"  time: {self.elapsed_s:.1f} s, {self.samples_per_s:.2f} samples/s, {self.frames_per_s:.1f} frames/s; "
            f"peak memory {self.peak_rss_main_mb:.0f} MiB (main), {self.peak_rss_worker_mb:.0f} MiB (worker)",
        ]
        if self.bytes_per_frame:
            sizes = ", ".join(f"{m} {self.bytes_per_sample[m] / 1e3:.1f} kB/sample ({self.bytes_per_frame[m]:.0f} B/frame)"
                              for m in self.bytes_per_frame)
            lines.append(f"  stored: {sizes}")
            verdict = "fits" if self.fits_budget else "DOES NOT FIT"
            lines.append(f"  full NTU60 estimate: {gb:.1f} GB ({verdict} the {STORE_BUDGET_BYTES / 1e9:.0f} GB budget); "
                         + self.estimate_assumptions)
        if self.failures:
            lines.append(f"  failures ({len(self.failures)}):")
            lines += [f"    {name} [{stage}] {error}" for name, stage, error in self.failures[:50]]
            if len(self.failures) > 50:
                lines.append(f"    ... {len(self.failures) - 50} more in failures.json")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary_text()


def estimate_sizes(report: PrepareReport, modality_bytes: Mapping[str, list[int]],
                   modality_frames: Mapping[str, list[int]], meta_bytes: list[int]) -> None:
    """Fill the measured-size and estimate fields of ``report``.

    Args:
        modality_bytes: modality -> stored bytes of each sample that has it.
        modality_frames: modality -> stored frames of the same samples, same order.
        meta_bytes: ``meta.json`` size of every sample.
    """
    report.bytes_per_sample, report.bytes_per_frame, report.frames_per_sample = {}, {}, {}
    report.estimate_per_modality_bytes = {}
    for modality, sizes in modality_bytes.items():
        frames = modality_frames[modality]
        if not sizes or sum(frames) == 0:
            continue
        report.bytes_per_sample[modality] = sum(sizes) / len(sizes)
        report.bytes_per_frame[modality] = sum(sizes) / sum(frames)
        report.frames_per_sample[modality] = sum(frames) / len(frames)
        report.estimate_per_modality_bytes[modality] = int(
            report.bytes_per_frame[modality] * NTU60_MEAN_FRAMES * NTU60_NUM_SAMPLES)
    report.meta_bytes_per_sample = sum(meta_bytes) / len(meta_bytes) if meta_bytes else 0.0
    report.estimate_full_ntu60_bytes = int(sum(report.estimate_per_modality_bytes.values())
                                           + report.meta_bytes_per_sample * NTU60_NUM_SAMPLES)
    measured = sum(len(v) for v in modality_bytes.values())
    report.estimate_assumptions = (
        f"measured mean bytes per stored frame of each modality over {measured} sample-modalities in this "
        f"store, x {NTU60_MEAN_FRAMES:.0f} frames per sample (about 5.7 M NTU60 depth frames / "
        f"{NTU60_NUM_SAMPLES} samples), x {NTU60_NUM_SAMPLES} samples, plus meta.json; every sample is "
        "assumed to have every modality of the config"
    )
