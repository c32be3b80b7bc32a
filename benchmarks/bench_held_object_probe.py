"""Benchmark: how much of the held objects each RGB input keeps (a linear probe on colour histograms).

The synthetic held-object classes (A001 drink / cup, A003 brush teeth / toothbrush, A028 phone call /
phone) share one arm motion: only the object tells them apart. For each RGB input below, every clip
becomes one feature, the per-bin maximum over 8 evenly spaced frames of the log colour histogram
(8 x 8 x 8 bins), and a logistic regression fitted on the benchmark's training clips of the three
classes is scored on its test clips. No network is trained: the probe measures what the input
holds, not what a recipe learns from it.

* ``whole_<S>px``: the stored person crop resized to S x S (area interpolation; the demo trains RGB
  at 64 px). The baseline is the crop as stored (``--stored-size``, 192 px by default).
* ``hands_<S>px``: the two hand glimpses of :mod:`actionfusion.modalities.rgb.hand_glimpses`
  (S x S each, window 0.33 of the crop, no jitter; 32 and 48 px by default), the ``rgb_hands`` input.

Prints ONE JSON line: accuracy per input, the train/test clip counts, the pixels per frame of each
input, and ``ratio_hands_to_whole_64`` (each glimpse size's accuracy over the whole crop's at 64 px).

    python benchmarks/bench_held_object_probe.py --store demo_output/store [--benchmark ntu60_xsub]
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actionfusion.datasets.modality_clips import HandGlimpseClipReader, segment_times  # noqa: E402
from actionfusion.datasets.store.sample_store import SampleStore  # noqa: E402
from actionfusion.datasets.synthetic.action_library import synthetic_classes  # noqa: E402
from actionfusion.modalities.rgb.clip_transforms import IMAGENET_MEAN_255, IMAGENET_STD_255  # noqa: E402
from actionfusion.pipeline.config import ExperimentConfig  # noqa: E402
from actionfusion.pipeline.data_builder import split_names  # noqa: E402

FRAMES = 8


def colour_feature(frames: np.ndarray) -> np.ndarray:
    """float64 [512]: per-bin max over frames of log(1 + count) of an 8 x 8 x 8 RGB histogram; frames uint8 [T, H, W, 3]."""
    bins = (frames // 32).astype(np.int64)
    index = (bins[..., 0] * 64 + bins[..., 1] * 8 + bins[..., 2]).reshape(len(frames), -1)
    counts = np.stack([np.bincount(row, minlength=512) for row in index]).astype(np.float64)
    return np.log1p(counts.max(axis=0))


def whole_frames(store: SampleStore, name: str, size: int) -> np.ndarray:
    """uint8 [8, size, size, 3]: evenly spaced stored crops, resized."""
    count = int(store.meta(name)["modalities"]["rgb"]["num_frames"])
    frames = store.load_rgb(name, np.linspace(0, count - 1, FRAMES).round().astype(int).tolist())
    if size == frames.shape[1]:
        return frames
    return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in frames])


def hand_frames(store: SampleStore, name: str, size: int) -> np.ndarray:
    """uint8 [8, size, 2 size, 3]: the test-time hand glimpses, de-normalised."""
    reader = HandGlimpseClipReader(num_frames=FRAMES, size=size, window=0.33, jitter=0.0)
    rng = np.random.default_rng(0)
    clip = reader.read(store, name, segment_times(FRAMES, False, rng), False, rng, False)
    frames = clip.transpose(1, 2, 3, 0) * np.array(IMAGENET_STD_255) + np.array(IMAGENET_MEAN_255)
    return frames.round().clip(0, 255).astype(np.uint8)


def probe(train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray]) -> float:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(max_iter=5000, C=1.0).fit(*train)
    return float((model.predict(test[0]) == test[1]).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", default="demo_output/store", help="a prepared synthetic store (default %(default)s)")
    parser.add_argument("--benchmark", default="ntu60_xsub", help="its train/test split (default %(default)s)")
    parser.add_argument("--sizes", default="48,64,96,128", help="whole-crop sizes to probe (default %(default)s)")
    parser.add_argument("--hand-sizes", default="32,48", help="sides of the hand glimpses to probe (default %(default)s)")
    args = parser.parse_args()

    store = SampleStore(Path(args.store))
    stored_size = int(store.meta(store.names[0])["modalities"]["rgb"]["shape"][1])
    object_labels = {c.label for c in synthetic_classes() if c.kind == "object"}
    cfg = ExperimentConfig.from_dict({"data": {"store": args.store, "benchmark": args.benchmark}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        splits = split_names(cfg, store)
    parts = {part: [n for n in splits[part] if store.label(n) in object_labels] for part in ("train", "test")}
    parts["train"] += [n for n in splits.get("val", []) if store.label(n) in object_labels]
    inputs = {f"whole_{s}px": (lambda n, s=s: whole_frames(store, n, s)) for s in map(int, args.sizes.split(","))}
    inputs[f"whole_{stored_size}px_stored"] = lambda n: whole_frames(store, n, stored_size)
    hand_sizes = [int(s) for s in args.hand_sizes.split(",")]
    for size in hand_sizes:
        inputs[f"hands_{size}px"] = lambda n, size=size: hand_frames(store, n, size)
    accuracy, pixels = {}, {}
    for key, frames_of in inputs.items():
        data = {}
        for part, names in parts.items():
            feats = [colour_feature(frames_of(n)) for n in names]
            data[part] = (np.stack(feats), np.array([store.label(n) for n in names]))
        accuracy[key] = round(probe(data["train"], data["test"]), 4)
        example = frames_of(parts["test"][0])
        pixels[key] = int(example.shape[1] * example.shape[2])
    whole_64 = accuracy.get("whole_64px")
    print(json.dumps({
        "benchmark": "held_object_probe", "store": args.store, "split": args.benchmark,
        "train_clips": len(parts["train"]), "test_clips": len(parts["test"]), "accuracy": accuracy,
        "pixels_per_frame": pixels, "baseline": f"whole_{stored_size}px_stored",
        "ratio_hands_to_whole_64": {f"hands_{s}px": round(accuracy[f"hands_{s}px"] / whole_64, 3)
                                    for s in hand_sizes} if whole_64 else None,
    }))


if __name__ == "__main__":
    main()
