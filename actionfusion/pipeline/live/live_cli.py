"""The ``recognize`` and ``stream`` subcommands (the work is :mod:`.live_session`'s).

Kept free of torch and mediapipe imports at module level so that ``actionfusion --help`` stays fast.

* ``actionfusion recognize VIDEO --checkpoint W --out labelled.mp4``: every frame of a file; the
  labelled video, per-window JSON lines (``--jsonl``, default beside the video) and one JSON summary
  line on stdout; the log on stderr and in ``OUT.log``.
* ``actionfusion stream SOURCE --checkpoint W``: a webcam index, a stream URL or a file played as a
  live source; the newest frame is processed and late frames are dropped; JSON lines on stdout, a
  window when a display exists, optionally a labelled video (``--out``); the summary (throughput,
  per-window latency, drop rate) in the log on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from pathlib import Path

from ...io import atomic_write
from ..cli_errors import DefaultsHelpFormatter
from ..cli_types import float_in, int_in

LOG_NAME = "actionfusion.pipeline.live"


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True,
                   help="a skeleton model trained on extracted poses (data.skeleton_source coco17 or blazepose33): "
                        "its work dir, epoch checkpoint dir or weights file (config.yaml beside)")
    p.add_argument("--config", default=None, help="the training YAML, when no config.yaml lies beside the weights")
    p.add_argument("--onnx", default=None, metavar="FILE",
                   help="run the action model from this export in ONNX Runtime (`actionfusion export-onnx CHECKPOINT "
                        "--out FILE`) instead of torch")
    p.add_argument("--window", type=int_in(4, 10_000), default=None,
                   help="frames T per window (default: the model's data.clip_len)")
    p.add_argument("--step", type=int_in(1, 10_000), default=8, help="classify every STEP processed frames")
    p.add_argument("--top-k", type=int_in(1, 1000), default=5, help="classes reported per person and window")
    p.add_argument("--max-persons", type=int_in(1, 32), default=4, help="people the pose model looks for per frame")
    p.add_argument("--threads", type=int_in(1, 256), default=1,
                   help="torch threads of the action model (the pose model and the decoder have their own; a "
                        "second torch thread spin-waits against them: 2 s instead of 30 ms per window on 2 cores)")
    p.add_argument("--all-scores", action="store_true",
                   help="JSON records carry every class's probability (\"scores\", by label), not only the top k")
    p.add_argument("--max-height", type=int_in(0, 10_000), default=540,
                   help="frames are scaled down to this height while decoding, for the pose model and the labelled "
                        "video (0: full size)")


def add_live_parsers(subparsers: "argparse._SubParsersAction") -> None:
    """Add ``recognize`` and ``stream``."""
    p = subparsers.add_parser("recognize", help="video in, labelled video out: poses and the top-5 actions per "
                                                "tracked person, per-window scores as JSON lines",
                              formatter_class=DefaultsHelpFormatter)
    p.add_argument("video", help="the video file")
    _common(p)
    p.add_argument("--out", required=True, help="the labelled video to write (.mp4, .mkv or .avi)")
    p.add_argument("--jsonl", default=None, help="per-window records (default: OUT with the suffix .jsonl; - for stdout)")
    p.set_defaults(func=run_recognize_cli)

    p = subparsers.add_parser("stream", help="live recognition from a webcam index, a stream URL (rtsp, http, tcp, "
                                             "udp) or a file played live; per-window JSON lines on stdout",
                              formatter_class=DefaultsHelpFormatter)
    p.add_argument("source", help="webcam index (0), URL (rtsp://..., tcp://host:port, udp://...) or video file")
    _common(p)
    p.add_argument("--out", default=None, help="also write the labelled video here")
    p.add_argument("--jsonl", default="-", help="per-window records (- for stdout)")
    p.add_argument("--show", choices=("auto", "yes", "no"), default="auto",
                   help="draw into a window (auto: when a display exists)")
    p.add_argument("--realtime", action=argparse.BooleanOptionalAction, default=True,
                   help="a file SOURCE is played at its frame rate, late frames dropped (--no-realtime: every frame)")
    p.add_argument("--stall-timeout", type=float_in(0.1, 3600.0), default=10.0,
                   help="seconds without a frame after which the stream is taken as ended")
    p.set_defaults(func=run_stream_cli)


class _Logs:
    """The live logger's handlers for one command: stderr, and ``OUT.log`` beside the labelled video."""

    def __init__(self, out: "str | None") -> None:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
        self.handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
        if out is not None:
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            self.handlers.append(logging.FileHandler(Path(out).with_suffix(".log"), mode="w", encoding="utf-8"))
        self.logger = logging.getLogger(LOG_NAME)
        for handler in self.handlers:
            handler.setFormatter(formatter)
            self.logger.addHandler(handler)
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False

    def close(self) -> None:
        for handler in self.handlers:
            self.logger.removeHandler(handler)
            handler.close()


def _recognizer(args: argparse.Namespace):
    from ...modalities.pose.estimator import create_pose_estimator
    from .live_recognizer import LiveRecognizer
    from .window_classifier import WindowClassifier

    import torch

    torch.set_num_threads(args.threads)
    classifier = WindowClassifier.from_checkpoint(args.checkpoint, config=args.config, onnx=args.onnx)
    if classifier.convention == "ntu25":
        from ...errors import UsageError

        raise UsageError(f"{args.checkpoint}: the model reads sensor skeletons (ntu25); live recognition needs a model "
                         "trained on extracted poses (data.skeleton_source: coco17), e.g. "
                         "configs/synthetic/stgcn_coco17.yaml")
    estimator = create_pose_estimator("default", num_poses=args.max_persons)
    return LiveRecognizer(estimator, classifier, window=args.window, step=args.step, top_k=args.top_k)


def run_recognize_cli(args: argparse.Namespace) -> int:
    """Label every frame of a file; print the summary as one JSON line."""
    from ...modalities.rgb.video import open_video
    from .frame_source import LiveFrameSource
    from .live_session import run_live

    logs = _Logs(args.out)
    out = Path(args.out)
    jsonl_path = args.jsonl if args.jsonl is not None else str(out.with_suffix(".jsonl"))
    try:
        with open_video(args.video) as video:
            fps, total = float(video.fps) or 30.0, video.num_frames
        recognizer = _recognizer(args)
        source = LiveFrameSource(args.video, realtime=False, max_height=args.max_height)
        # the records go to stdout, or to a file written atomically (renamed into place at the end)
        with (contextlib.nullcontext(sys.stdout) if jsonl_path == "-" else atomic_write(jsonl_path, "w")) as stream:
            summary = run_live(source, recognizer, out_video=out, jsonl=stream, fps=fps, source_stats=source,
                               progress=True, total=total, all_scores=args.all_scores)
        record = {"video": str(args.video), "out": str(out), "jsonl": jsonl_path, **summary.to_json()}
        print(json.dumps(record), file=sys.stderr if jsonl_path == "-" else sys.stdout)
        return 0
    finally:
        logs.close()


def run_stream_cli(args: argparse.Namespace) -> int:
    """Recognise a live source until it ends, stalls or the window is closed."""
    from .frame_source import LiveFrameSource
    from .live_session import display_available, open_jsonl, run_live

    logs = _Logs(args.out)
    log = logs.logger
    try:
        recognizer = _recognizer(args)
        source = LiveFrameSource(args.source, realtime=args.realtime, stall_timeout=args.stall_timeout,
                                 max_height=args.max_height)
        show = args.show == "yes" or (args.show == "auto" and display_available())
        stream, owned = open_jsonl(args.jsonl)
        log.info("stream %s (%s): window %d frames, classify every %d frames%s", args.source, source.kind,
                 recognizer.window, recognizer.step, ", showing a window" if show else "")
        try:
            summary = run_live(source, recognizer, out_video=args.out, jsonl=stream, show=show,
                               fps=source.pace_fps or 30.0, source_stats=source,
                               all_scores=args.all_scores)
        except KeyboardInterrupt:
            log.info("interrupted")
            return 130
        finally:
            if owned and stream is not None:
                stream.close()
        if summary.stalled:
            log.warning("no frame for %.1f s from %s: stopped", args.stall_timeout, args.source)
        log.info("summary %s", json.dumps(summary.to_json()))
        return 0
    finally:
        logs.close()
