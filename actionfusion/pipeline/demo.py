"""``make demo`` / ``actionfusion demo``: the main job on the embedded synthetic dataset.

1. generate the synthetic NTU-format set (skeletons, RGB videos, masked depth);
2. prepare it into a sample store;
3. ``actionfusion run synthetic/mmixer``: train the multimodal model (skeleton + RGB hand glimpses +
   depth, fused by M-Mixer) end to end, evaluate it on the held-out cross-subject test split
   (metrics, confusion PNG, per-class table), and evaluate the same model given one modality only;
4. extract features of held-out raw videos (with their skeleton files and depth folders) with
   :class:`~actionfusion.pipeline.feature_extraction.FeatureExtractor`, into ``features/``.

It prints the held-out accuracy of the fused model and per single modality, split by what tells
the synthetic classes apart, and where every output is. Every step resumes: running the demo
again reuses what is already on disk.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any, Dict, Mapping, Sequence

from ..datasets.ntu.constants import NTU120_CLASS_NAMES

DEMO_TRAIN_CONFIG = "synthetic/mmixer"
"""The config ``make demo`` trains, by name: the checkout's ``configs/`` or the wheel's copy, from any CWD."""
DEMO_FEATURE_VIDEOS = 6
"""Held-out raw samples whose features the demo extracts."""


def _class_table(per_class: Mapping[str, Mapping[str, int]]) -> str:
    """Render {label: {split: count}} as a fixed-width table."""
    splits = sorted({split for counts in per_class.values() for split in counts})
    header = f"{'label':>5}  {'class':<40}" + "".join(f"{s:>8}" for s in splits)
    lines = [header, "-" * len(header)]
    for label in sorted(per_class, key=int):
        name = NTU120_CLASS_NAMES[int(label)]
        counts = per_class[label]
        lines.append(f"{int(label):>5}  {name[:40]:<40}" + "".join(f"{counts.get(s, 0):>8}" for s in splits))
    return "\n".join(lines)


def _pct(value: object) -> str:
    return "  n/a" if value is None else f"{100 * float(value):5.1f}%"


def accuracy_table(by_modality: Mapping[str, Mapping[str, Any]]) -> str:
    """Rows "all modalities" then each single modality: top-1 overall / motion classes / held-object classes."""
    lines = [f"  {'input':<34}{'all classes':>12}{'motion':>9}{'held-object':>13}"]
    for subset, entry in by_modality.items():
        kinds = entry.get("by_class_kind") or {}
        label = ("fused (" + " + ".join(entry["modalities"]) + ")") if subset == "all" else f"only {subset}"
        lines.append(f"  {label:<34}{_pct(entry['top1']):>12}{_pct(kinds.get('motion_told_apart')):>9}"
                     f"{_pct(kinds.get('held_object')):>13}")
    return "\n".join(lines)


def demo_feature_inputs(raw_root: Path, test_names: Sequence[str], count: int = DEMO_FEATURE_VIDEOS) -> list:
    """RawSample inputs (video + skeleton + masked depth) of the first ``count`` test samples of ``raw_root``."""
    from ..datasets.ntu.index import scan_ntu_root
    from .feature_inputs import RawSample

    index = scan_ntu_root(raw_root)
    inputs = []
    for name in test_names:
        paths = index.samples.get(name)
        if paths is None or paths.rgb is None:
            continue
        inputs.append(RawSample(video=paths.rgb, skeleton=paths.skeleton, depth=paths.depth_masked, name=name))
        if len(inputs) == count:
            break
    return inputs


def feature_table(index_path: Path) -> str:
    """A line per extracted video: name, modalities used, feature widths, predicted class."""
    from ..io import load_json

    from ..datasets.ntu.names import parse_sample_name

    lines = []
    for name, entry in (load_json(index_path).get("samples") or {}).items():
        dims = entry.get("dims") or {}
        truth = NTU120_CLASS_NAMES[parse_sample_name(name).label]
        lines.append(f"    {name}  [{' + '.join(entry.get('modalities_used', []))}]  fused {dims.get('fused', '?')}-d  "
                     f"-> predicted {entry.get('top1_class')!r} (true {truth!r})")
    return "\n".join(lines)


def extract_demo_features(work_dir: Path, raw_root: Path, out: Path, test_names: Sequence[str]) -> Dict[str, Any]:
    """Features of held-out raw samples from the trained model, written to ``out`` (resumable)."""
    from .feature_export import extract_features_to
    from .feature_extraction import FeatureExtractor

    inputs = demo_feature_inputs(raw_root, test_names)
    with FeatureExtractor.from_checkpoint(work_dir, progress=True) as extractor:
        return extract_features_to(extractor, inputs, out, checkpoint=str(work_dir))


def run_demo(out: Path, seed: int = 0, workers: int = 2, scale: str = "default",
             train_overrides: tuple[str, ...] = (), config: str = DEMO_TRAIN_CONFIG) -> int:
    """Generate, prepare, train + evaluate the multimodal model, extract features. Returns the exit status."""
    from ..datasets.store.prepare import PrepareConfig, prepare_store
    from ..datasets.store.sample_store import SampleStore
    from ..datasets.synthetic.generate import SynthConfig, generate_synthetic_ntu
    from .config import load_config
    from .data_builder import split_names
    from .run_experiment import run_experiment

    out = Path(out)
    raw_root = out / "synthetic_ntu"
    store_root = out / "store"
    timings: Dict[str, float] = {}
    # checked before anything is generated: a bad name or override fails at once
    cfg = load_config(config, [f"data.store={store_root}", *train_overrides])

    print(f"[1/4] synthetic NTU-format dataset -> {raw_root}")
    start = time.perf_counter()
    synth = generate_synthetic_ntu(raw_root, SynthConfig(seed=seed, scale=scale), workers=workers, progress=True)
    timings["synthesize_s"] = time.perf_counter() - start

    print(f"[2/4] prepare -> {store_root}")
    start = time.perf_counter()
    report = prepare_store(raw_root, store_root, PrepareConfig(), workers=workers, progress=True)
    timings["prepare_s"] = time.perf_counter() - start

    store = SampleStore(store_root)
    summary = store.summary()
    print()
    print(synth.summary_text())
    print()
    print(report.summary_text())
    print()
    for split_name, per_class in summary.get("per_class_split", {}).items():
        print(f"samples per class, {split_name}:")
        print(_class_table(per_class))
        print()
    print("modality shapes (first sample):")
    for modality, shape in summary.get("shapes", {}).items():
        print(f"  {modality:<13} {shape}")
    print()

    work_dir = out / "work_dirs" / str(cfg.experiment)
    print(f"[3/4] train + evaluate the multimodal model ({config}) -> {work_dir}")
    start = time.perf_counter()
    result = run_experiment(cfg, work_dir, class_kind_report=True)
    timings["train_evaluate_s"] = time.perf_counter() - start

    features_dir = out / "features"
    print(f"[4/4] extract features of held-out raw videos -> {features_dir}")
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the validation carve-out warning was already shown by training
        test_names = split_names(cfg, store)["test"]
    features = extract_demo_features(work_dir, raw_root, features_dir, test_names)
    timings["features_s"] = time.perf_counter() - start

    by_modality = result.get("by_modality") or {}
    print()
    print(f"held-out accuracy ({cfg.data.benchmark} test split, {result['train']['test']['num_samples']} clips):")
    print(accuracy_table(by_modality))
    print("  (motion: the 12 classes motion tells apart; held-object: drink / brush teeth / phone call, "
          "which a skeleton cannot see)")
    print()
    print("outputs:")
    print(f"  {work_dir}/metrics.json, metrics_by_modality.json, confusion.png, per_class.csv, best.safetensors, tb/")
    print(f"  {features_dir}/index.json and one .safetensors per video "
          f"({features.get('written', 0)} written, {features.get('skipped', 0)} already there, "
          f"{len(features.get('failed', []))} failed)")
    print(feature_table(Path(features["index"])))
    print("  features from Python:  from actionfusion import FeatureExtractor; "
          f"fx = FeatureExtractor.from_checkpoint('{work_dir}'); fx('<video.avi>')")
    print()
    print("time taken: " + ", ".join(f"{k[:-2]} {v:.1f} s" for k, v in timings.items()))
    fused = by_modality.get("all", {})
    print(json.dumps({"demo": "multimodal", **timings, "samples": len(store.names), "failed": len(report.failures),
                      "test_top1": result["train"].get("top1"),
                      "test_top1_by_modality": {k: v["top1"] for k, v in by_modality.items()},
                      "test_top1_motion": (fused.get("by_class_kind") or {}).get("motion_told_apart"),
                      "test_top1_object": (fused.get("by_class_kind") or {}).get("held_object"),
                      "features": features.get("written", 0) + features.get("skipped", 0)}))
    return 0
