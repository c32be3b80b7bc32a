"""Live recognition speed: the 1080p NTU fixture streamed over loopback, against the pose model alone.

Measures, in one run:
  live          ``actionfusion stream``'s loop on the fixture played ``--repeat`` times as a live
                MPEG-TS stream over TCP on 127.0.0.1 (a child process sends it at the video's 30 fps):
                decode thread (scaled to ``--max-height`` rows while decoding), newest frame only,
                BlazePose (up to 4 people) + tracker + per-person ring buffers + ST-GCN (COCO-17) every
                ``--step`` frames. End-to-end frames/s processed, drop rate, per-window latency
                (from the frame's arrival out of the decoder to its scores).
  file          the same loop on the file, every frame, as fast as it goes (``actionfusion recognize``
                without the video writer): the throughput without the camera's 30 fps cap.
  model_only    the baseline: ``estimator.estimate`` alone on the same frames, decoded and scaled
                beforehand (held in memory: the baseline, not how the library works), one frame per call.
  ratios        file fps / model_only fps (what decoding, tracking, buffering and the action model
                cost on top of the pose model) and live fps / min(model_only fps, source fps).

The action model is ``--checkpoint`` (a work dir) or, by default, a randomly initialised ST-GCN of
configs/synthetic/stgcn_coco17.yaml's size: its speed does not depend on its weights.

Run: .venv/bin/python benchmarks/bench_streaming.py [--checkpoint W] [--repeat 3] [--max-height 540]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run from a checkout without installing the package

import torch  # noqa: E402

from actionfusion.modalities.pose.estimator import create_pose_estimator  # noqa: E402
from actionfusion.modalities.rgb.video import open_video  # noqa: E402
from actionfusion.pipeline.checkpoints import save_weights  # noqa: E402
from actionfusion.pipeline.config import load_config, save_config  # noqa: E402
from actionfusion.pipeline.live.frame_source import LiveFrameSource, decoded_size  # noqa: E402
from actionfusion.pipeline.live.live_recognizer import LiveRecognizer  # noqa: E402
from actionfusion.pipeline.live.live_session import run_live  # noqa: E402
from actionfusion.pipeline.live.replay_server import ReplayServer, encode_mpegts  # noqa: E402
from actionfusion.pipeline.live.window_classifier import WindowClassifier  # noqa: E402
from actionfusion.pipeline.trainer import build_model  # noqa: E402

DEFAULT_VIDEO = REPO_ROOT / ".." / "shared" / "fixtures" / "ntu" / "S001C001P001R001A001_rgb.avi"
CONFIG = REPO_ROOT / "configs" / "synthetic" / "stgcn_coco17.yaml"


def random_checkpoint(folder: Path) -> Path:
    """A work dir with configs/synthetic/stgcn_coco17.yaml and random weights."""
    cfg = load_config(CONFIG)
    folder.mkdir(parents=True, exist_ok=True)
    save_config(cfg, folder / "config.yaml")
    torch.manual_seed(0)
    save_weights(folder / "best.safetensors", build_model(cfg))
    return folder


def model_only_fps(video: Path, max_height: int, max_persons: int, repeat: int) -> tuple[float, int]:
    """(frames/s of the pose model alone, frames) on the decoded, scaled frames."""
    with open_video(video) as reader:
        frames = list(reader.iter_frames(size=decoded_size(*reader.frame_size, max_height)))
    estimator = create_pose_estimator("default", num_poses=max_persons)
    try:
        estimator.reset()
        seconds = 0.0
        for _ in range(repeat):
            for frame in frames:
                begin = time.perf_counter()
                estimator.estimate([frame])
                seconds += time.perf_counter() - begin
    finally:
        estimator.close()
    return len(frames) * repeat / seconds, len(frames) * repeat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=3, help="times the clip is played in a row")
    parser.add_argument("--max-height", type=int, default=540)
    parser.add_argument("--step", type=int, default=8)
    parser.add_argument("--max-persons", type=int, default=4)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)  # as the CLI's --threads default

    with tempfile.TemporaryDirectory(prefix="bench-streaming-") as tmp:
        tmp_path = Path(tmp)
        checkpoint = args.checkpoint or random_checkpoint(tmp_path / "model")
        classifier = WindowClassifier.from_checkpoint(checkpoint)
        with open_video(args.video) as reader:
            fps, frames_per_play = float(reader.fps), reader.num_frames
        ts = encode_mpegts(args.video, tmp_path / "fixture.ts", repeat=args.repeat)

        def recognizer() -> LiveRecognizer:
            return LiveRecognizer(create_pose_estimator("default", num_poses=args.max_persons), classifier,
                                  step=args.step)

        with ReplayServer(ts, fps=fps, frames=frames_per_play * args.repeat) as url:
            source = LiveFrameSource(url, stall_timeout=10.0, max_height=args.max_height)
            live = run_live(source, recognizer(), source_stats=source)
        file_source = LiveFrameSource(str(args.video), realtime=False, max_height=args.max_height)
        file_run = run_live(file_source, recognizer(), source_stats=file_source)
        baseline_fps, baseline_frames = model_only_fps(args.video, args.max_height, args.max_persons, 1)

    capped = min(baseline_fps, fps)
    print(json.dumps({
        "benchmark": "streaming", "video": args.video.name, "frame_size_hw": [1080, 1920],
        "decoded_height": args.max_height, "source_fps": fps, "stream": "MPEG-TS over tcp://127.0.0.1",
        "stream_frames": frames_per_play * args.repeat, "step": args.step, "window": classifier.clip_len,
        "action_model": f"{classifier.cfg.model.name} ({classifier.convention})",
        "checkpoint": str(args.checkpoint) if args.checkpoint else "random weights (speed only)",
        "live": live.to_json(), "file": file_run.to_json(),
        "model_only_fps": round(baseline_fps, 2), "model_only_frames": baseline_frames,
        "ratio_file_over_model_only": round(file_run.fps / baseline_fps, 3),
        "ratio_live_over_capped_model_only": round(live.fps / capped, 3),
        "target_live_fps": 15.0, "cpu_count": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
