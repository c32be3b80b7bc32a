"""Move skeleton annotations between a sample store and pyskl/mmaction2 pickles.

Import (``actionfusion import-pyskl FILE --out STORE --trust-pickle``) turns each annotation
into one store sample:

- NTU 3D pickles (V = 25, C = 3): ``skeleton.npy`` float32 [M, T, 25, 3] (metres);
- 2D pickles (e.g. ``ntu60_hrnet.pkl``, COCO-17): ``pose2d.npy`` float32 [M, T, K, 3]
  holding (x, y, score) in pixels of ``img_shape`` (h, w).

The pickle's named splits go into the manifest (``splits``). Loading the pickle can run code,
so the import refuses unless ``trust_pickle=True``. Export writes the reverse, from a store's
skeletons (3D) or 2D poses, with the official NTU splits computed from the sample names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np

from ...errors import StoreError
from ...io import remove_stale_staging
from ..ntu.names import parse_sample_name
from ..ntu.splits import BENCHMARKS, is_in_benchmark, split_of
from ..pyskl_pickle import PysklSample, load_pyskl_annotations, save_pyskl_annotations
from .layout import is_published_sample, sample_dir, samples_dir
from .manifest import build_manifest, read_manifest, utc_now_iso, write_manifest
from .sample_store import SampleStore
from .skeleton_import import publish_skeleton_sample

IMPORT_CONFIG_SOURCE = "pyskl-pickle"

# pyskl's split names for the NTU benchmarks (kennymckormick/pyskl@3f6795f tools/data/README.md).
_PYSKL_SPLIT_NAMES = {
    "ntu60_xsub": ("xsub_train", "xsub_val"),
    "ntu60_xview": ("xview_train", "xview_val"),
    "ntu120_xsub": ("xsub_train", "xsub_val"),
    "ntu120_xset": ("xset_train", "xset_val"),
}


def _sample_arrays(sample: PysklSample) -> tuple[str, np.ndarray]:
    """(modality, float32 array) for one annotation: 3D -> skeleton, 2D -> pose2d (x, y, score)."""
    keypoint = np.asarray(sample.keypoint, dtype=np.float32)
    if keypoint.shape[-1] == 3 and sample.keypoint_score is None:
        return "skeleton", keypoint
    if keypoint.shape[-1] == 2:
        if sample.keypoint_score is None:
            score = np.ones(keypoint.shape[:-1], dtype=np.float32)
        else:
            score = np.asarray(sample.keypoint_score, dtype=np.float32)
        return "pose2d", np.concatenate([keypoint, score[..., None]], axis=-1)
    raise StoreError(
        f"{sample.frame_dir}: keypoint of shape {tuple(keypoint.shape)} is neither 3D (C = 3) nor 2D (C = 2)"
    )


def import_pyskl_pickle(pickle_path: Path, store: Path, *, trust_pickle: bool = False) -> dict[str, Any]:
    """Import a pyskl/mmaction2 annotation pickle into a (new or imported) store.

    Resumable: samples already in the store are skipped; each sample is published atomically.

    Returns:
        {"imported", "skipped", "store", "splits": {name: count}}.
    Raises:
        UnsafeLoadError: ``trust_pickle`` is not True.
        AnnotationFormatError: the pickle does not follow the format.
        StoreError: ``store`` holds a store prepared from raw data, not an import.
    """
    annotations = load_pyskl_annotations(pickle_path, trust_pickle=trust_pickle)
    store = Path(store)
    config = {"source": IMPORT_CONFIG_SOURCE, "pickle": Path(pickle_path).name}
    created = utc_now_iso()
    if (store / "manifest.json").exists():
        manifest = read_manifest(store)
        if manifest.get("config", {}).get("source") != IMPORT_CONFIG_SOURCE:
            raise StoreError(f"{store}: holds a prepared store, not a pyskl import; use another --out")
        created = manifest.get("created", created)
    samples_dir(store).mkdir(parents=True, exist_ok=True)
    remove_stale_staging(samples_dir(store))

    statuses: dict[str, dict[str, Any]] = {}
    imported = skipped = 0
    for sample in annotations.samples:
        final = sample_dir(store, sample.frame_dir)
        statuses[sample.frame_dir] = {"status": "ok"}
        if is_published_sample(final):
            skipped += 1
            continue
        modality, array = _sample_arrays(sample)
        extra: dict[str, Any] = {"source": IMPORT_CONFIG_SOURCE}
        if sample.img_shape is not None:
            extra["img_shape_hw"] = list(sample.img_shape)
        publish_skeleton_sample(store, sample.frame_dir, array, int(sample.label), extra, modality=modality)
        imported += 1

    manifest = build_manifest(config=config, source_root=str(pickle_path), created=created, samples=statuses)
    manifest["splits"] = {name: list(members) for name, members in annotations.splits.items()}
    write_manifest(store, manifest)
    return {
        "imported": imported,
        "skipped": skipped,
        "store": str(store),
        "splits": {name: len(members) for name, members in annotations.splits.items()},
    }


def export_pyskl_pickle(
    store: Path,
    out: Path,
    *,
    modality: Literal["skeleton", "pose2d"] = "skeleton",
    benchmarks: Optional[tuple[str, ...]] = None,
) -> int:
    """Write a store's skeletons (or 2D poses) as a pyskl annotation pickle.

    Splits: the store's own ``splits`` when it was imported, else the official NTU splits of
    ``benchmarks`` (default: NTU60 xsub and xview), computed from the sample names.

    Returns:
        The number of samples written.
    """
    source = SampleStore(store)
    samples: list[PysklSample] = []
    for name in source.names:
        if modality not in source.modalities(name):
            continue
        array = source.load_skeleton(name) if modality == "skeleton" else source.load_pose2d(name)
        if modality == "skeleton":
            samples.append(PysklSample(name, source.label(name), int(array.shape[1]), array.astype(np.float16)))
        else:
            shape = source.meta(name).get("img_shape_hw")
            samples.append(PysklSample(
                name, source.label(name), int(array.shape[1]), array[..., :2].copy(), array[..., 2].copy(),
                img_shape=tuple(shape) if shape else None, original_shape=tuple(shape) if shape else None,
            ))
    splits = source.manifest.get("splits")
    if not splits:
        splits = {}
        for benchmark in benchmarks or ("ntu60_xsub", "ntu60_xview"):
            if benchmark not in BENCHMARKS:
                raise StoreError(f"unknown benchmark {benchmark!r}")
            train_name, test_name = _PYSKL_SPLIT_NAMES[benchmark]
            members: dict[str, list[str]] = {train_name: [], test_name: []}
            for sample in samples:
                parsed = parse_sample_name(sample.frame_dir)
                if is_in_benchmark(parsed, benchmark):
                    key = train_name if split_of(parsed, benchmark) == "train" else test_name
                    members[key].append(sample.frame_dir)
            splits.update(members)
    save_pyskl_annotations(out, samples, splits)
    return len(samples)
