"""``make demo`` / ``actionfusion demo``: the main job on the embedded synthetic dataset.

Today it generates the synthetic NTU-format set, prepares it into a sample store and
prints a summary (samples per class and split, modality shapes, time taken). Both steps
resume: running the demo again reuses what is already on disk.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Dict, Mapping

from ..datasets.ntu.constants import NTU120_CLASS_NAMES


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


def run_demo(out: Path, seed: int = 0, workers: int = 2, scale: str = "default") -> int:
    """Generate, prepare and summarise. Returns the exit status."""
    from ..datasets.store.prepare import PrepareConfig, prepare_store
    from ..datasets.store.sample_store import SampleStore
    from ..datasets.synthetic.generate import SynthConfig, generate_synthetic_ntu

    out = Path(out)
    raw_root = out / "synthetic_ntu"
    store_root = out / "store"
    timings: Dict[str, float] = {}

    print(f"[1/2] synthetic NTU-format dataset -> {raw_root}")
    start = time.perf_counter()
    synth = generate_synthetic_ntu(raw_root, SynthConfig(seed=seed, scale=scale), workers=workers, progress=True)
    timings["synthesize_s"] = time.perf_counter() - start

    print(f"[2/2] prepare -> {store_root}")
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
        print(f"  {modality:<9} {shape}")
    print()
    print("time taken: " + ", ".join(f"{k[:-2]} {v:.1f} s" for k, v in timings.items()))
    print(json.dumps({"demo": "data", **timings, "samples": len(store.names), "failed": len(report.failures)}))
    return 0
