"""RGB clip loading from a prepared store: decode 16 sampled frames + the clip pipeline, vs decoding alone.

Per clip: 16 frames sampled uniformly (training mode, :func:`uniform_segment_indices`) are
decoded with ``SampleStore.load_rgb(name, frames)`` (uint8 [16, 192, 192, 3] JPEG person
crops), then :func:`rgb_clip_pipeline` in training mode (random-resized crop, flip, ImageNet
normalisation) makes float32 [3, 16, 112, 112] or [3, 16, 224, 224]. Baseline measured in the
same run: ``load_rgb`` alone (the decoder's raw speed). Each path is timed ``--repeats``
times over ``--clips`` clips, interleaved, best run kept (the machine is shared). Prints one
JSON line: clips/s of the three paths and the ratios full / decode-only (1.0 = the transforms
are free).

Usage: ``.venv/bin/python benchmarks/bench_rgb_clip_loading.py [--store STORE]``; without
``--store`` a tiny synthetic store (6 samples of 48-64 frames, RGB 192x192) is generated in a
temporary folder first (a few seconds).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run from a checkout without installing the package

from actionfusion.datasets.store.sample_store import SampleStore  # noqa: E402
from actionfusion.modalities.rgb.clip_transforms import rgb_clip_pipeline  # noqa: E402
from actionfusion.modalities.rgb.frame_sampling import uniform_segment_indices  # noqa: E402

CLIP_FRAMES = 16


def make_store(root: Path) -> Path:
    """A tiny synthetic store with RGB person crops (6 samples, 48-64 frames each)."""
    from actionfusion.datasets.store.prepare import PrepareConfig, prepare_store
    from actionfusion.datasets.synthetic.generate import SynthConfig, generate_synthetic_ntu

    synth = SynthConfig(scale="tiny", modalities=("skeleton", "rgb"), actions=(1, 23, 58), performers=(1,),
                        cameras=(1, 2), num_frames=(48, 64))
    generate_synthetic_ntu(root / "raw", synth, workers=2, progress=False)
    prepare_store(root / "raw", root / "store", PrepareConfig(modalities=("skeleton", "rgb")), workers=2,
                  progress=False)
    return root / "store"


def best_rate(fn: Callable[[int], None], clips: int, repeats: int) -> list[float]:
    """Seconds per run of ``clips`` calls of ``fn(i)``, one entry per repeat."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(clips):
            fn(i)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=None, help="a prepared store with RGB (default: synthetic)")
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_rgb_clip_") as tmp:
        store = SampleStore(args.store if args.store is not None else make_store(Path(tmp)))
        names = [n for n in store.names if "rgb" in store.modalities(n)]
        if not names:
            raise SystemExit(f"{store.path}: no sample with RGB")
        lengths = [int(store.meta(n)["modalities"]["rgb"]["num_frames"]) for n in names]
        frame_side = int(store.meta(names[0])["modalities"]["rgb"]["shape"][1])

        def frames_of(i: int) -> np.ndarray:
            rng = np.random.default_rng(i)
            index = uniform_segment_indices(lengths[i % len(names)], CLIP_FRAMES, train=True, rng=rng)
            return store.load_rgb(names[i % len(names)], index)

        def full(size: int) -> Callable[[int], None]:
            def run(i: int) -> None:
                clip = rgb_clip_pipeline(frames_of(i), size, train=True, rng=np.random.default_rng(1000 + i))
                assert clip.shape == (3, CLIP_FRAMES, size, size)
            return run

        paths = {"decode": lambda i: frames_of(i), "full112": full(112), "full224": full(224)}
        for fn in paths.values():  # warm-up (page cache, cv2 and JPEG decoder start-up)
            fn(0)
        best = {key: math.inf for key in paths}
        for _ in range(args.repeats):  # interleaved, so load changes hit every path alike
            for key, fn in paths.items():
                best[key] = min(best[key], min(best_rate(fn, args.clips, 1)))
        rate = {key: args.clips / seconds for key, seconds in best.items()}
        print(json.dumps({
            "benchmark": "rgb_clip_loading",
            "store": "synthetic tiny" if args.store is None else str(args.store),
            "samples": len(names),
            "stored_frame_side": frame_side,
            "clip_frames": CLIP_FRAMES,
            "decode_only_clips_per_s": round(rate["decode"], 1),
            "full_112_clips_per_s": round(rate["full112"], 1),
            "full_224_clips_per_s": round(rate["full224"], 1),
            "ratio_full112_over_decode": round(rate["full112"] / rate["decode"], 3),
            "ratio_full224_over_decode": round(rate["full224"] / rate["decode"], 3),
            "clips_per_run": args.clips,
            "repeats": args.repeats,
        }))


if __name__ == "__main__":
    main()
