"""RGB preparation speed on the NTU fixture video: decode + person crop + resize to 224x224.

Measures, in one run and on the same file (1920x1080 H.264, 103 frames):
  decode_only   PyAV threaded decoding, no colour conversion (the floor for any PyAV path)
  prep          our path: open_video(...).iter_frames(crop=600x600 box, size=(224, 224)), streamed
  naive         PyAV decode + full-frame RGB conversion + cv2 crop/resize (what prep replaces)
  decord        decord get_batch(all frames) + the same crop/resize with cv2

Each is timed ``--repeats`` times, interleaved, and the best run is kept (the machine is shared).
Prints one JSON line with frames/s, seconds, and the ratios prep/decode_only (target <= 1.5),
decord/prep and naive/prep.

Run: .venv/bin/python benchmarks/bench_rgb_prepare.py
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable

import av
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run from a checkout without installing the package

from actionfusion.modalities.rgb.person_crop import crop_and_resize  # noqa: E402
from actionfusion.modalities.rgb.video import open_video  # noqa: E402

DEFAULT_VIDEO = REPO_ROOT / ".." / "shared" / "fixtures" / "ntu" / "S001C001P001R001A001_rgb.avi"
BOX = (660, 240, 1260, 840)  # a fixed central 600x600 box (no skeleton fixture exists for this video)
SIZE = 224


def decode_only(path: Path) -> int:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return sum(1 for _ in container.decode(stream))


def prep(path: Path) -> int:
    count = 0
    with open_video(path, backend="pyav") as reader:
        for frame in reader.iter_frames(size=(SIZE, SIZE), crop=BOX):
            assert frame.shape == (SIZE, SIZE, 3)
            count += 1
    return count


def naive(path: Path) -> int:
    count = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            crop_and_resize(frame.to_ndarray(format="rgb24"), BOX, SIZE)
            count += 1
    return count


def decord_batch(path: Path) -> int:
    import decord

    reader = decord.VideoReader(str(path))
    frames = reader.get_batch(list(range(len(reader)))).asnumpy()
    out = np.stack([crop_and_resize(frame, BOX, SIZE) for frame in frames])
    return len(out)


def best_times(paths: dict[str, Callable[[Path], int]], path: Path, repeats: int) -> tuple[dict[str, float], int]:
    """Best-of-``repeats`` seconds per path, interleaving the paths so that load from other
    processes on the shared machine hits them alike."""
    best = {name: float("inf") for name in paths}
    count = 0
    for _ in range(repeats):
        for name, fn in paths.items():
            start = time.perf_counter()
            count = fn(path)
            best[name] = min(best[name], time.perf_counter() - start)
    return best, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    prep(args.video)  # warm up imports and the page cache
    results: dict[str, object] = {"video": args.video.name, "crop_box": BOX, "size": SIZE}
    paths = {"decode_only": decode_only, "prep": prep, "naive": naive}
    try:
        import decord  # noqa: F401

        paths["decord"] = decord_batch
    except ImportError:
        results["decord"] = "not installed"
    seconds, frames = best_times(paths, args.video, args.repeats)
    for name, value in seconds.items():
        results[f"{name}_s"] = round(value, 4)
        results[f"{name}_fps"] = round(frames / value, 1)
    results["frames"] = frames
    results["prep_over_decode_only_time"] = round(seconds["prep"] / seconds["decode_only"], 3)
    results["prep_within_1.5x_of_decode_only"] = seconds["prep"] <= 1.5 * seconds["decode_only"]
    results["naive_over_prep_time"] = round(seconds["naive"] / seconds["prep"], 3)
    if "decord" in seconds:
        results["decord_over_prep_time"] = round(seconds["decord"] / seconds["prep"], 3)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
