"""``actionfusion extract-features``: features of many inputs written to disk, with an index; resumable.

Output folder::

    <out>/<name>.safetensors         format safetensors: tensors fused, modality/<m>, branch/<m>,
                                     logits, probabilities (float32); the index entry as metadata
    <out>/<name>/<key>.npy           format npy: the same keys (modality/skeleton.npy, ...) plus
                                     meta.json (the index entry); the folder is published by rename
    <out>/index.json                 {"checkpoint", "format", "samples": {name: entry}, "failures": [...]}

An index entry: ``file`` (relative to ``<out>``), ``input``, ``modalities_used``, ``top1`` (class
index), ``top1_class`` (NTU RGB+D 120 name, None past 120 classes), ``top1_probability`` and
``dims`` ({key: D}). Every file is written atomically; the index is rebuilt from the outputs'
own metadata, so a run killed at any point loses nothing. A rerun skips inputs whose output
exists. A bad input never stops the run: it is listed under ``failures`` and reported at the
end (exit status 1).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

import numpy as np

from .cli_types import int_in
from ..io import (
    atomic_publish_dir,
    atomic_save_npy,
    atomic_write_bytes,
    atomic_write_json,
    load_json,
    make_staging_dir,
    remove_stale_staging,
)
from .feature_inputs import FeatureInputError, ResolvedInput

if TYPE_CHECKING:  # torch loads only when the command runs, so `actionfusion --help` stays fast
    from .feature_extraction import FeatureExtractor, SampleFeatures

PathLike = Union[str, "os.PathLike[str]"]

FORMATS: tuple[str, ...] = ("safetensors", "npy")
INDEX_FILE = "index.json"
NPY_META_FILE = "meta.json"
INDEX_INTERVAL_S = 30.0
"""The index is rewritten at least this often during a run (and at its end)."""


def feature_arrays(feats: "SampleFeatures") -> dict[str, np.ndarray]:
    """{key: float32 array}: ``fused``, ``modality/<m>``, ``branch/<m>``, ``logits``, ``probabilities``."""
    arrays = {"fused": feats.fused}
    arrays.update({f"modality/{m}": v for m, v in feats.modalities.items()})
    arrays.update({f"branch/{m}": v for m, v in feats.branches.items()})
    arrays.update({"logits": feats.logits, "probabilities": feats.probabilities})
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()}


def index_entry(feats: "SampleFeatures", file: str) -> dict[str, Any]:
    """The index record of one written sample (see the module docstring)."""
    top1 = feats.top1
    return {
        "file": file, "input": feats.input, "modalities_used": list(feats.modalities_used),
        "top1": top1, "top1_class": feats.top1_class, "top1_probability": float(feats.probabilities[top1]),
        "dims": {k: int(v.shape[-1]) for k, v in feature_arrays(feats).items()},
    }


def output_path(out: Path, name: str, fmt: str) -> Path:
    """``<out>/<name>.safetensors`` or the folder ``<out>/<name>``."""
    return out / (f"{name}.safetensors" if fmt == "safetensors" else name)


def write_features(out: PathLike, feats: "SampleFeatures", fmt: str = "safetensors") -> dict[str, Any]:
    """Write one sample's features atomically; returns its index entry."""
    from safetensors.numpy import save as safetensors_save

    out = Path(out)
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, not {fmt!r}")
    target = output_path(out, feats.name, fmt)
    entry = index_entry(feats, target.name)
    arrays = feature_arrays(feats)
    if fmt == "safetensors":
        atomic_write_bytes(target, safetensors_save(arrays, metadata={"actionfusion_index_entry": json.dumps(entry)}))
        return entry
    staging = make_staging_dir(target)
    for key, value in arrays.items():
        atomic_save_npy(staging / f"{key}.npy", value)
    atomic_write_json(staging / NPY_META_FILE, entry)
    atomic_publish_dir(staging, target)
    return entry


def read_index_entry(path: Path) -> Optional[dict[str, Any]]:
    """The index entry stored with a written output (None when unreadable)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="numpy") as handle:
                return json.loads((handle.metadata() or {})["actionfusion_index_entry"])
        return load_json(path / NPY_META_FILE)
    except (OSError, ValueError, KeyError):
        return None


def _unique_names(items: list[ResolvedInput]) -> list[str]:
    """Sample names made unique in input order (a repeated name gets ``__2``, ``__3``...)."""
    seen: dict[str, int] = {}
    names = []
    for item in items:
        count = seen.get(item.name, 0) + 1
        seen[item.name] = count
        names.append(item.name if count == 1 else f"{item.name}__{count}")
    return names


def extract_features_to(fx: "FeatureExtractor", inputs: list[Any], out: PathLike, fmt: str = "safetensors",
                        checkpoint: str = "") -> dict[str, Any]:
    """Extract and write every input's features into ``out``; returns the run summary.

    Returns:
        {"written", "skipped", "failed": [{"input", "name", "error"}], "index": path}.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(out)
    resolved = fx.resolve(inputs)
    good = [r for r in resolved if isinstance(r, ResolvedInput)]
    for item, name in zip(good, _unique_names(good)):
        item.output_name = name  # the store / cache sample keeps its own name
    samples: dict[str, dict[str, Any]] = {}
    failures: list[dict[str, Any]] = [{"input": r.input, "name": None, "error": str(r)}
                                      for r in resolved if isinstance(r, FeatureInputError)]
    todo = []
    for item in good:
        existing = output_path(out, item.out_name, fmt)
        entry = read_index_entry(existing) if existing.exists() else None
        if entry is not None:
            samples[item.out_name] = entry
        else:
            todo.append(item)
    skipped = len(samples)

    def write_index() -> None:
        atomic_write_json(out / INDEX_FILE, {"checkpoint": checkpoint, "format": fmt,
                                             "samples": dict(sorted(samples.items())), "failures": failures})

    last = time.monotonic()
    for outcome in fx.iter_extract(todo, errors="yield"):
        if outcome.features is not None:
            samples[outcome.name] = write_features(out, outcome.features, fmt)
        else:
            failures.append({"input": outcome.input, "name": outcome.name, "error": str(outcome.error)})
        if time.monotonic() - last >= INDEX_INTERVAL_S:
            write_index()
            last = time.monotonic()
    write_index()
    return {"written": len(samples) - skipped, "skipped": skipped, "failed": failures, "index": str(out / INDEX_FILE)}


def add_extract_features_parser(subparsers: "argparse._SubParsersAction") -> argparse.ArgumentParser:
    """Add the ``extract-features`` subcommand (its handler is :func:`run_extract_features_cli`)."""
    p = subparsers.add_parser(
        "extract-features",
        help="write per-modality and fused features of videos, .skeleton files or store samples (resumable)",
    )
    p.add_argument("checkpoint", help="training work dir, epoch checkpoint dir or weights file (config.yaml beside)")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="video files (NTU names also pick up their .skeleton and masked depth), .skeleton files, "
                        "masked-depth folders, or STORE_DIR::NAME (STORE_DIR::* for a whole store)")
    p.add_argument("--out", required=True, help="output folder (gets <name>.safetensors or <name>/ and index.json)")
    p.add_argument("--format", default="safetensors", choices=FORMATS)
    p.add_argument("--batch-size", type=int_in(1, 4096), default=8)
    p.add_argument("--device", default="cpu")
    p.add_argument("--cache-dir", default=None,
                   help="keep raw inputs prepared here and reuse them (default: a temporary folder)")
    p.add_argument("--config", default=None, help="the training YAML, when no config.yaml lies beside the weights")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_extract_features_cli)
    return p


def run_extract_features_cli(args: argparse.Namespace) -> int:
    """Run ``extract-features``; exit status 0, or 1 when any input failed (2: the checkpoint cannot be loaded)."""
    from .feature_extraction import FeatureExtractor

    try:
        fx = FeatureExtractor.from_checkpoint(args.checkpoint, device=args.device, batch_size=args.batch_size,
                                              cache_dir=args.cache_dir, progress=not args.quiet,
                                              config=getattr(args, "config", None))
    except FileNotFoundError as err:
        print(f"actionfusion extract-features: error: {err}", file=sys.stderr)
        return 2
    with fx:
        summary = extract_features_to(fx, list(args.inputs), args.out, args.format, checkpoint=str(args.checkpoint))
    print(f"extract-features: {summary['written']} written, {summary['skipped']} already there, "
          f"{len(summary['failed'])} failed -> {summary['index']}")
    for failure in summary["failed"]:
        print(f"  FAILED {failure['input']}: {failure['error']}", file=sys.stderr)
    return 1 if summary["failed"] else 0
