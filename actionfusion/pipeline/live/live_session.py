"""The loop of ``recognize`` and ``stream``: frames through the recognizer into the outputs.

Outputs, each optional: the labelled video (poses and top-k labels drawn, streamed to an MP4
through the atomic :class:`~actionfusion.modalities.rgb.video_writer.VideoWriter`), JSON lines (one
record per classified window, flushed as it comes), and a window on the screen. At the end a
:class:`LiveSummary` gives throughput, per-window latency and the drop rate; it is logged.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Optional, TextIO, Union

import numpy as np

from ...modalities.rgb.video_writer import VideoWriter
from .frame_source import LiveFrame
from .live_recognizer import LiveRecognizer
from .overlay import draw_labelled_frame

log = logging.getLogger(__name__)
PathLike = Union[str, "os.PathLike[str]"]
WINDOW_TITLE = "actionfusion"


@dataclass
class LiveSummary:
    """What a run measured.

    Attributes:
        frames: frames processed (pose model + tracker).
        windows: person windows classified.
        seconds: wall time from the first frame to the last.
        fps: frames processed per second of wall time.
        latency_ms_mean, latency_ms_p50, latency_ms_p95: per window, from the frame's arrival to its scores.
        pose_ms_mean: pose model + tracker per frame.
        decoded, dropped: frames the source gave, and those replaced before they were processed.
        drop_rate: dropped / decoded.
        stalled: the source stopped sending (the run ended on the stall timeout).
    """

    frames: int
    windows: int
    seconds: float
    fps: float
    latency_ms_mean: Optional[float]
    latency_ms_p50: Optional[float]
    latency_ms_p95: Optional[float]
    pose_ms_mean: Optional[float]
    decoded: int
    dropped: int
    drop_rate: float
    stalled: bool

    def to_json(self) -> dict:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def display_available() -> bool:
    """Whether a window can be opened (a desktop session, and OpenCV built with a GUI)."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        import cv2

        return "NO" not in cv2.getBuildInformation().split("GUI:")[1].split("\n")[1]
    except (ImportError, IndexError):
        return False


def _percentile(values: list[float], q: float) -> Optional[float]:
    return float(np.percentile(values, q)) if values else None


def run_live(frames: Iterable[LiveFrame], recognizer: LiveRecognizer, *, out_video: Optional[PathLike] = None,
             jsonl: Optional[TextIO] = None, show: bool = False, fps: float = 30.0,
             source_stats: Optional[object] = None, progress: bool = False,
             total: Optional[int] = None, all_scores: bool = False) -> LiveSummary:
    """Process ``frames`` with ``recognizer`` and write the outputs (module docstring).

    Args:
        frames: the frames, e.g. a :class:`~.frame_source.LiveFrameSource`.
        recognizer: the per-frame step (reset first).
        out_video: the labelled video (.mp4/.mkv/.avi), written atomically; None: none.
        jsonl: a text stream for the window records; None: none.
        show: draw into a window ('q' or Esc stops).
        fps: frame rate of the written video (its size is the frames').
        source_stats: an object with a ``stats`` dict (decoded, dropped, stalled), e.g. the source.
        progress: a tqdm bar of processed frames (on a terminal), out of ``total`` when known.
        all_scores: JSON records carry every class's probability, not only the top k.
    """
    recognizer.reset()
    writer: Optional[VideoWriter] = None
    latencies: list[float] = []
    pose_ms: list[float] = []
    windows = 0
    first = last = None
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total or None, desc="recognize", unit="frame", disable=None)
    if show:
        import cv2
    try:
        for frame in frames:
            first = time.perf_counter() if first is None else first
            result = recognizer.process(frame.index, frame.image, frame.arrived, frame.scale)
            pose_ms.append(result.pose_ms)
            for window in result.windows:
                latencies.append(window.latency_ms)
                if jsonl is not None:
                    jsonl.write(json.dumps(window.to_json(all_scores)) + "\n")
                    jsonl.flush()
            windows += len(result.windows)
            if out_video is not None or show:
                drawn = draw_labelled_frame(frame.image, result.people, recognizer.latest, recognizer.estimator.layout)
                if out_video is not None:
                    if writer is None:  # even sizes for 4:2:0
                        height, width = (v // 2 * 2 for v in drawn.shape[:2])
                        writer = VideoWriter(out_video, width, height, fps=max(1, round(fps)))
                    drawn = drawn[:height, :width]
                    writer.write(drawn)
                if show:
                    cv2.imshow(WINDOW_TITLE, cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
                    if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                        break
            last = time.perf_counter()
            if bar is not None:
                bar.update(1)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        if bar is not None:
            bar.close()
        if show:
            cv2.destroyAllWindows()
    if writer is not None:
        writer.close()
    stats = dict(getattr(source_stats, "stats", {}) or {})
    seconds = (last - first) if first is not None and last is not None else 0.0
    processed = len(pose_ms)
    decoded = int(stats.get("decoded", processed))
    dropped = int(stats.get("dropped", 0))
    summary = LiveSummary(
        frames=processed, windows=windows, seconds=seconds,
        fps=(processed - 1) / seconds if seconds > 0 and processed > 1 else 0.0,
        latency_ms_mean=float(np.mean(latencies)) if latencies else None,
        latency_ms_p50=_percentile(latencies, 50), latency_ms_p95=_percentile(latencies, 95),
        pose_ms_mean=float(np.mean(pose_ms)) if pose_ms else None,
        decoded=decoded, dropped=dropped, drop_rate=dropped / decoded if decoded else 0.0,
        stalled=bool(stats.get("stalled", False)))
    log.info("processed %d frames in %.1f s (%.1f fps), %d windows, latency per window mean %s ms / p95 %s ms, "
             "dropped %d of %d frames (%.1f%%)%s", summary.frames, summary.seconds, summary.fps, summary.windows,
             _ms(summary.latency_ms_mean), _ms(summary.latency_ms_p95), summary.dropped, summary.decoded,
             100 * summary.drop_rate, "; the source stalled" if summary.stalled else "")
    return summary


def _ms(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.1f}"


def open_jsonl(path: Optional[PathLike]) -> tuple[Optional[TextIO], bool]:
    """(stream, owned): ``-`` is stdout; a path is opened for writing (its folder created)."""
    if path is None:
        return None, False
    if str(path) == "-":
        return sys.stdout, False
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return open(path, "w", encoding="utf-8"), True
