"""Benchmark the feature-extraction API: videos/s from raw files (preparation included) and from a store.

Usage::

    .venv/bin/python benchmarks/bench_feature_extraction.py [--samples 12] [--batch-size 8] [--threads 0]

Data: ``--samples`` synthetic NTU-format samples (480x270 video of 36-48 frames, skeleton, masked
depth; the ``default`` scale's lengths), generated once into a temporary folder. Model: a
late-fusion Recognizer with random weights, shaped like the synthetic recipes: CTR-GCN on
32-frame skeleton clips, a per-frame ResNet-18 on 8 RGB frames of 112 px, the depth TSM on 16
depth frames of 56 px (``data.test_clips`` 1).

Measured, after one warm-up call on one sample (one-time kernel set-up excluded), best of
``--repeats`` runs each:

- ``raw``: ``fx(videos)`` with an empty preparation cache: each video, its ``.skeleton`` and its
  masked depth are prepared (decode, crop, JPEG/PNG encode), read back as test clips and encoded;
- ``store``: the same samples prepared beforehand (``prepare_store``, one worker), ``fx(STORE::NAME)``;
- baseline: decoding every frame of the same videos to RGB with the project's reader
  (``open_video``, the PyAV backend), sequentially, nothing else.

Ratios: extractor videos/s over baseline videos/s (below 1: slower than only decoding). Wall
time and CPU time of this process (less disturbed by other load on a shared machine; the raw
path's preparation runs in the extractor's worker process and is not in it) are both reported.
Prints ONE JSON line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ACTIONS = (1, 3, 8, 9, 10, 22, 23, 24, 27, 28, 31, 50, 52, 55, 58)


def bench_config(store: Path):
    from actionfusion.pipeline.config import ExperimentConfig

    return ExperimentConfig.from_dict({
        "experiment": "bench_features",
        "data": {
            "store": str(store), "modalities": ["skeleton", "rgb", "depth"], "clip_len": 32, "test_clips": 1,
            "rgb": {"num_frames": 8, "size": 112, "scale_range": [1.0, 1.0]},
            "depth": {"num_frames": 16, "size": 56, "scale_range": [1.0, 1.0]},
            "test_transforms": [{"name": "center"}, {"name": "valid_crop_resize", "p_interval": [0.95], "min_len": 16}],
        },
        "model": {"name": "recognizer", "num_classes": 60, "kwargs": {
            "encoders": {"skeleton": {"name": "ctrgcn"},
                         "rgb": {"name": "timm_frames", "kwargs": {"backbone": "resnet18"}},
                         "depth": {"name": "depth_tsm"}},
            "fusion": {"name": "late"}}},
    })


def timed(fn, repeats: int, before=None):
    """(result, best wall seconds, best CPU seconds of this process) over ``repeats`` runs of ``fn``
    (``before()`` runs untimed ahead of each)."""
    walls, cpus, result = [], [], None
    for _ in range(repeats):
        if before is not None:
            before()
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return result, min(walls), min(cpus)


def decode_all(videos: list[Path]) -> int:
    from actionfusion.modalities.rgb.video import open_video

    frames = 0
    for video in videos:
        with open_video(video, backend="pyav") as reader:
            for _ in reader.iter_frames():
                frames += 1
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (0: torch's default). 1 by default: on the shared 2-core machine a "
                             "second torch thread mostly waits for a core (measured 3-10x slower)")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs of each measurement")
    args = parser.parse_args()

    import torch

    from actionfusion.datasets.store.prepare import PrepareConfig, prepare_store
    from actionfusion.datasets.synthetic.generate import SynthConfig, generate_synthetic_ntu
    from actionfusion.pipeline.checkpoints import save_weights
    from actionfusion.pipeline.config import save_config
    from actionfusion.pipeline.feature_extraction import FeatureExtractor
    from actionfusion.pipeline.trainer import build_model

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="bench-features-") as tmp:
        tmp = Path(tmp)
        actions = ACTIONS[: max(1, (args.samples + 2) // 3)]
        generate_synthetic_ntu(tmp / "ntu", SynthConfig(scale="default", actions=actions, performers=(1,)),
                               workers=2, progress=False)
        videos = sorted((tmp / "ntu" / "nturgb+d_rgb").glob("*_rgb.avi"))[: args.samples]
        names = [v.name[: -len("_rgb.avi")] for v in videos]

        cfg = bench_config(tmp / "no_store")
        (tmp / "work").mkdir()
        save_config(cfg, tmp / "work" / "config.yaml")
        torch.manual_seed(0)
        save_weights(tmp / "work" / "best.safetensors", build_model(cfg))
        fx = FeatureExtractor.from_checkpoint(tmp / "work", batch_size=args.batch_size, progress=False,
                                              cache_dir=tmp / "cache", prepare_config=PrepareConfig())
        prepare_config: PrepareConfig = fx.prepare_config
        prepare_store(tmp / "ntu", tmp / "store", prepare_config, workers=1, progress=False)
        torch.set_num_threads(threads)  # preparing in this process limits torch to one thread (for its workers)
        fx(f"{tmp / 'store'}::{names[0]}")  # warm-up: kernel set-up of the first batch shapes
        fx([f"{tmp / 'store'}::{n}" for n in names[: args.batch_size]])

        frames, decode_wall, decode_cpu = timed(lambda: decode_all(videos), args.repeats)
        # an emptied cache before each run: every raw sample is prepared again
        _, raw_wall, raw_cpu = timed(lambda: fx(videos), args.repeats,
                                     before=lambda: shutil.rmtree(tmp / "cache", ignore_errors=True))
        _, store_wall, store_cpu = timed(lambda: fx([f"{tmp / 'store'}::{n}" for n in names]), args.repeats)
        fx.close()

    n = len(videos)
    result = {
        "benchmark": "feature_extraction",
        "samples": n, "video_frames": frames, "batch_size": args.batch_size, "torch_threads": torch.get_num_threads(),
        "timing": f"best of {args.repeats}",
        "model": "recognizer late: ctrgcn (32 f) + resnet18 frames (8 x 112 px) + depth_tsm (16 x 56 px)",
        "raw_videos_per_s": n / raw_wall, "store_videos_per_s": n / store_wall,
        "baseline_decode_videos_per_s": n / decode_wall,
        "ratio_raw_vs_decode": (n / raw_wall) / (n / decode_wall),
        "ratio_store_vs_decode": (n / store_wall) / (n / decode_wall),
        "cpu_s_per_video_main_process": {"raw": raw_cpu / n, "store": store_cpu / n, "decode_baseline": decode_cpu / n},
        # videos per CPU second of this process (raw: preparation runs in a worker process, not counted)
        "ratio_cpu_raw_vs_decode": decode_cpu / raw_cpu if raw_cpu else None,
        "prepare_share_of_raw_wall": max(0.0, (raw_wall - store_wall) / raw_wall),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
