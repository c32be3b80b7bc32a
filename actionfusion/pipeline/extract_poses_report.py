"""``ExtractionReport``: what a batch pose extraction did, how fast, and what failed."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Optional

FAILURES_FILE = "pose_failures.json"
"""Written atomically at the top of the store after every batch extraction run."""


@dataclass
class ExtractionFailure:
    """One video that could not be extracted (skipped; a rerun retries it).

    Attributes:
        sample: the sample name the video maps to.
        video: the video path.
        error_type: the exception class name (e.g. ``"VideoDecodeError"``).
        message: the exception message (one line).
    """

    sample: str
    video: str
    error_type: str
    message: str


@dataclass
class ExtractionReport:
    """The outcome of :func:`actionfusion.pipeline.extract_poses.extract_poses_batch`.

    Attributes:
        out: the store directory.
        backend: the pose backend.
        layout: the layout poses were stored in (None: each backend's own).
        workers: worker processes used (1: inline).
        num_videos: videos selected.
        num_extracted: videos extracted and written in this run.
        num_skipped: videos whose sample already had ``pose2d`` (not touched).
        num_failed: videos that failed in this run (listed in ``failures``).
        num_frames: frames extracted in this run.
        num_with_world: of the extracted videos, those stored with world 3D keypoints.
        num_without_person: of the extracted videos, those where nobody was found (stored
            with M = 0 tracks: ``pose2d`` [0, T, K, 3]).
        elapsed_s: wall time of the run (worker start-up and model loading included).
        failures: this run's failures.
    """

    out: str
    backend: str
    layout: Optional[str]
    workers: int
    num_videos: int = 0
    num_extracted: int = 0
    num_skipped: int = 0
    num_failed: int = 0
    num_frames: int = 0
    num_with_world: int = 0
    num_without_person: int = 0
    elapsed_s: float = 0.0
    failures: list[ExtractionFailure] = field(default_factory=list)

    @property
    def frames_per_s(self) -> float:
        """Frames extracted per wall-clock second in this run."""
        return self.num_frames / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def videos_per_s(self) -> float:
        """Videos extracted per wall-clock second in this run."""
        return self.num_extracted / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def failures_dicts(self) -> list[dict[str, str]]:
        """The failures as ``[{"sample", "video", "error_type", "message"}]`` (pose_failures.json)."""
        return [asdict(f) for f in self.failures]

    def to_dict(self) -> dict[str, Any]:
        """Every field plus ``frames_per_s`` and ``videos_per_s`` (JSON-ready)."""
        out = asdict(self)
        out["failures"] = self.failures_dicts()
        out["elapsed_s"] = round(self.elapsed_s, 3)
        out["frames_per_s"] = round(self.frames_per_s, 2)
        out["videos_per_s"] = round(self.videos_per_s, 3)
        return out

    def summary_text(self) -> str:
        """A few human-readable lines, the failures listed one a line."""
        lines = [
            f"pose extraction ({self.backend}, layout {self.layout or 'native'}, {self.workers} worker(s)) -> {self.out}",
            f"  videos: {self.num_videos} selected, {self.num_extracted} extracted, "
            f"{self.num_skipped} already done, {self.num_failed} failed",
            f"  {self.num_frames} frames in {self.elapsed_s:.1f} s: {self.frames_per_s:.1f} frames/s, "
            f"{self.videos_per_s:.2f} videos/s; world 3D for {self.num_with_world}, "
            f"nobody found in {self.num_without_person}",
        ]
        if self.failures:
            lines.append(f"  failures (also in {FAILURES_FILE}; a rerun retries them):")
            lines.extend(f"    {f.sample}: {f.error_type}: {f.message}" for f in self.failures)
        return "\n".join(lines)
