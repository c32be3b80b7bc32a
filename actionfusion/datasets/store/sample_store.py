"""Read a prepared sample store: random access by sample name, each modality on demand.

Arrays are memory-mapped (``np.load(mmap_mode="r", allow_pickle=False)``) and frame packs
decode only the frames asked for, so a clip loader that samples 8 frames of 100 decodes 8.
The store layout is described in :mod:`actionfusion.datasets.store.layout`.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from functools import lru_cache
from pathlib import Path
from typing import Any, Union

import numpy as np

from ...errors import SampleNameError, StoreError
from ...io import load_json, load_npy
from ..ntu.names import parse_sample_name
from ..ntu.splits import is_in_benchmark, split_of
from .frame_pack import FramePack
from .layout import META_FILE, MODALITY_FILES, is_published_sample, sample_dir, samples_dir
from .manifest import read_manifest
from .store_reader import StoreReader

SUMMARY_BENCHMARKS = ("ntu60_xsub", "ntu60_xview")
"""Benchmarks whose per-class split counts :meth:`SampleStore.summary` reports."""


class SampleStore(StoreReader):
    """A prepared sample store on disk.

    Args:
        path: the store directory (holds ``manifest.json`` and ``samples/``).
    Raises:
        StoreError: ``path`` is not a sample store.
    """

    def __init__(self, path: Union[str, "os.PathLike[str]"]) -> None:
        self.path = Path(path)
        self.manifest: dict[str, Any] = read_manifest(self.path)
        root = samples_dir(self.path)
        entries = sorted(root.iterdir()) if root.is_dir() else []
        self._names = [p.name for p in entries if is_published_sample(p)]
        self._name_set = frozenset(self._names)
        self._meta = lru_cache(maxsize=4096)(self._read_meta)

    def __contains__(self, name: object) -> bool:
        return name in self._name_set

    def _read_meta(self, name: str) -> dict[str, Any]:
        if name not in self._name_set:
            raise StoreError(f"{self.path}: no sample {name!r} in the store")
        path = sample_dir(self.path, name) / META_FILE
        try:
            meta = load_json(path)
        except (OSError, ValueError) as err:
            raise StoreError(f"{path}: unreadable sample meta ({err})") from err
        if not isinstance(meta, dict) or "modalities" not in meta:
            raise StoreError(f"{path}: sample meta has no 'modalities' entry")
        return meta

    def meta(self, name: str) -> dict[str, Any]:
        """The sample's ``meta.json`` (label, per-modality shapes and frames, denoising report, ...)."""
        return self._meta(name)

    def label(self, name: str) -> int:
        """0-based class label (NTU action - 1).

        Raises:
            StoreError: the sample has no label (its name is not an NTU name).
        """
        label = self.meta(name).get("label")
        if label is None:
            raise StoreError(f"{self.path}: sample {name!r} has no label")
        return int(label)

    def modalities(self, name: str) -> set[str]:
        """The modalities stored for ``name`` (a subset of skeleton, rgb, depth, points, pose2d)."""
        return set(self.meta(name)["modalities"])

    @property
    def location(self) -> str:
        """The store's path, for messages."""
        return str(self.path)

    def _file(self, name: str, modality: str) -> Path:
        if modality not in self.modalities(name):
            raise StoreError(f"{self.path}: sample {name!r} has no {modality} (it has {sorted(self.modalities(name))})")
        return sample_dir(self.path, name) / MODALITY_FILES[modality]

    def frame_pack(self, name: str, modality: str) -> FramePack:
        """The open frame pack of ``rgb`` or ``depth`` for custom access (e.g. raw JPEG bytes)."""
        if modality not in ("rgb", "depth"):
            raise StoreError(f"{modality!r} is not stored as a frame pack")
        return FramePack(self._file(name, modality))

    def _load_array(self, name: str, modality: str) -> np.ndarray:
        path = self._file(name, modality)
        try:
            return load_npy(path, mmap=True)
        except (OSError, ValueError) as err:
            raise StoreError(f"{path}: unreadable array ({err})") from err

    def summary(self) -> dict[str, Any]:
        """Counts and shapes.

        Returns:
            {"path", "num_samples", "status": {status: count}, "modalities": {modality: count},
             "per_class_split": {benchmark: {label: {split: count}}} for NTU60 xsub/xview
             (names that parse as NTU60 samples), "shapes": {modality: shape of the first
             sample that has it}, "config", "size_estimate"}.
        """
        status: Counter[str] = Counter()
        modality_counts: Counter[str] = Counter()
        shapes: dict[str, list[int]] = {}
        per_class_split: dict[str, dict[str, dict[str, int]]] = {b: defaultdict(dict) for b in SUMMARY_BENCHMARKS}
        for name in self._names:
            meta = self.meta(name)
            status[str(meta.get("status", "ok"))] += 1
            for modality, info in meta["modalities"].items():
                modality_counts[modality] += 1
                if modality not in shapes and isinstance(info, dict) and "shape" in info:
                    shapes[modality] = list(info["shape"])
            try:
                sample = parse_sample_name(name)
            except SampleNameError:
                continue
            for benchmark in SUMMARY_BENCHMARKS:
                if is_in_benchmark(sample, benchmark):
                    counts = per_class_split[benchmark][str(sample.label)]
                    split = split_of(sample, benchmark)
                    counts[split] = counts.get(split, 0) + 1
        return {
            "path": str(self.path),
            "num_samples": len(self._names),
            "status": dict(status),
            "modalities": dict(modality_counts),
            "per_class_split": {b: {k: dict(v) for k, v in sorted(d.items(), key=lambda kv: int(kv[0]))}
                                for b, d in per_class_split.items()},
            "shapes": {m: shapes[m] for m in MODALITY_FILES if m in shapes},
            "config": self.config,
            "size_estimate": self.manifest.get("size_estimate"),
            "missing_from_disk": self._missing_summary(),
        }

    def _missing_summary(self) -> dict[str, Any]:
        """{"count", "first"}: samples the manifest records as usable whose folders are gone."""
        from .store_verify import missing_samples

        missing = missing_samples(self)
        return {"count": len(missing), "first": missing[:10]}
