"""Pose extraction speed: end to end against the model alone, and the batch path.

Measures, in one run:
  model_only    the default estimator (BlazePose) on the fixture video's frames decoded
                beforehand (all 103 1080p frames held in memory: the benchmark's baseline,
                not how the library works); only ``estimator.estimate`` is timed, batches of 8.
  end_to_end    ``extract_poses(video, backend=estimator)`` on the same file: open, stream-decode
                in a background thread, estimate, track, assemble [M, T, K, 3].
  ratio         end_to_end frames/s / model_only frames/s (target >= 0.9: decoding hides
                behind inference).
  serial_fps    frames / (decode_s + model_only seconds): what decoding then inferring one
                after the other would give (decode_s: decoding the video to RGB once).
  batch         ``extract_poses_batch`` over a few synthetic videos (480x270, 30-40 frames) with
                ``workers=2`` against ``workers=1`` (videos/s; model loading and worker
                start-up included), each into a fresh store.

model_only and end_to_end are interleaved ``--repeats`` times and the best of each is kept
(the machine is shared). ``reset_s`` is the estimator's per-video reset (a fresh mediapipe
graph), paid by end_to_end and not by model_only.

Run: .venv/bin/python benchmarks/bench_pose_extraction.py [--video PATH] [--repeats 3] [--videos 6]
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

from actionfusion.datasets.synthetic.generate import SynthConfig, generate_synthetic_ntu  # noqa: E402
from actionfusion.modalities.pose.estimator import create_pose_estimator  # noqa: E402
from actionfusion.modalities.pose.extract import extract_poses  # noqa: E402
from actionfusion.modalities.rgb.video import open_video  # noqa: E402
from actionfusion.pipeline.extract_poses import extract_poses_batch  # noqa: E402

DEFAULT_VIDEO = REPO_ROOT / ".." / "shared" / "fixtures" / "ntu" / "S001C001P001R001A001_rgb.avi"
BATCH_SIZE = 8  # extract_poses' default batch
BATCH_FRAMES = (30, 40)  # frames per synthetic video: long enough that model loading does not dominate


def model_only(estimator, frames) -> float:
    """Seconds spent in ``estimator.estimate`` over pre-decoded ``frames`` (reset untimed)."""
    estimator.reset()
    seconds = 0.0
    for start in range(0, len(frames), BATCH_SIZE):
        batch = frames[start: start + BATCH_SIZE]
        begin = time.perf_counter()
        estimator.estimate(batch)
        seconds += time.perf_counter() - begin
    return seconds


def end_to_end(estimator, video: Path) -> tuple[float, int, int]:
    """(seconds, frames, people found in the most frames) of ``extract_poses`` on ``video``."""
    begin = time.perf_counter()
    sequence = extract_poses(video, backend=estimator)
    seconds = time.perf_counter() - begin
    return seconds, sequence.num_frames, int(sequence.present().sum(axis=1).max(initial=0))


def batch_run(root: Path, workers: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-pose-store-") as store:
        report = extract_poses_batch(root, Path(store) / "store", workers=workers, progress=False)
    if report.num_failed:
        raise RuntimeError(report.summary_text())
    return {"videos": report.num_extracted, "frames": report.num_frames, "seconds": round(report.elapsed_s, 3),
            "videos_per_s": round(report.videos_per_s, 3), "frames_per_s": round(report.frames_per_s, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--videos", type=int, default=6, help="synthetic videos for the batch path")
    args = parser.parse_args()
    if not args.video.is_file():
        sys.exit(f"fixture video not found at {args.video}: it lives in ../shared beside the repo")
    warnings.filterwarnings("ignore", category=UserWarning)

    begin = time.perf_counter()
    with open_video(args.video) as reader:
        frames = list(reader.iter_frames())
        fps, size_hw = reader.fps, reader.frame_size
    decode_s = time.perf_counter() - begin
    estimator = create_pose_estimator("default")
    estimator.estimate(frames[:BATCH_SIZE])  # warm-up (XNNPACK delegate, caches)
    begin = time.perf_counter()
    estimator.reset()
    reset_s = time.perf_counter() - begin

    model_s, e2e_s, e2e_frames, people = [], [], 0, 0
    for repeat in range(max(args.repeats, 1)):
        if repeat % 2:  # alternate which goes first: the load of a shared machine drifts
            e2e = end_to_end(estimator, args.video)
            model_s.append(model_only(estimator, frames))
        else:
            model_s.append(model_only(estimator, frames))
            e2e = end_to_end(estimator, args.video)
        e2e_s.append(e2e[0])
        e2e_frames, people = e2e[1], e2e[2]
    model_fps = len(frames) / min(model_s)
    e2e_fps = e2e_frames / min(e2e_s)
    frames_seen = range(len(frames))
    del frames

    with tempfile.TemporaryDirectory(prefix="bench-pose-synth-") as tmp:
        root = Path(tmp) / "synth"
        cameras = (1, 2, 3)
        performers = (1, 3)
        actions = (1, 3, 23, 28, 58)[: max(1, -(-args.videos // (len(cameras) * len(performers))))]
        generate_synthetic_ntu(root, SynthConfig(scale="tiny", actions=actions, performers=performers,
                                                 cameras=cameras, modalities=("rgb",), num_frames=BATCH_FRAMES),
                              workers=2, progress=False)
        videos = sorted((root / "nturgb+d_rgb").iterdir())[: args.videos]
        for extra in sorted((root / "nturgb+d_rgb").iterdir())[args.videos:]:
            os.unlink(extra)
        one = batch_run(root, workers=1)
        two = batch_run(root, workers=2)

    print(json.dumps({
        "benchmark": "pose_extraction",
        "video": args.video.name, "frames": e2e_frames, "video_fps": round(fps, 2), "frame_size_hw": list(size_hw),
        "backend": "default", "people_max_frames": people,
        "model_only_fps": round(model_fps, 2), "end_to_end_fps": round(e2e_fps, 2),
        "ratio_end_to_end_over_model_only": round(e2e_fps / model_fps, 3), "target_ratio": 0.9,
        "model_only_s": [round(s, 3) for s in model_s], "end_to_end_s": [round(s, 3) for s in e2e_s],
        "reset_s": round(reset_s, 3), "decode_s": round(decode_s, 3),
        "serial_fps": round(len(frames_seen) / (decode_s + min(model_s)), 2),
        "batch_videos": len(videos), "batch_workers_1": one, "batch_workers_2": two,
        "batch_speedup_2_over_1": round(two["videos_per_s"] / one["videos_per_s"], 3) if one["videos_per_s"] else None,
        "cpu_count": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
