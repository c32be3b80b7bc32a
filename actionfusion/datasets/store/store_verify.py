"""Store integrity: which samples the manifest lists but the disk lacks, and a full check of every
sample's files (``actionfusion store-info --verify``).

The check opens each stored modality of each sample the way training does and compares it with
the sample's ``meta.json``: arrays load (no pickles), hold the recorded shape and only finite
values; frame packs open, hold the recorded number of frames, and every frame decodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, List, Tuple

import numpy as np

from ...errors import ActionFusionError
from .layout import MODALITY_FILES
from .sample_store import SampleStore

FRAME_PACK_MODALITIES = ("rgb", "depth")
USABLE_STATUSES = ("ok", "partial")


def missing_samples(store: SampleStore) -> List[str]:
    """Samples the manifest records as ``ok`` or ``partial`` whose folders are gone (sorted)."""
    listed = store.manifest.get("samples") or {}
    if not isinstance(listed, dict):
        return []
    usable = [name for name, entry in listed.items()
              if isinstance(entry, dict) and entry.get("status", "ok") in USABLE_STATUSES]
    return sorted(name for name in usable if name not in store)


@dataclass
class VerifyReport:
    """What :func:`verify_store` found."""

    checked: int = 0
    missing: List[str] = field(default_factory=list)
    bad: List[Tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.bad

    def to_dict(self) -> dict[str, Any]:
        return {"checked": self.checked, "ok": self.ok, "missing": self.missing,
                "bad": [{"sample": name, "problem": problem} for name, problem in self.bad]}


def _check_array(store: SampleStore, name: str, modality: str, info: Any) -> None:
    array = store._load_array(name, modality)  # typed StoreError when unreadable
    expected = info.get("shape") if isinstance(info, dict) else None
    if expected is not None and list(array.shape) != list(expected):
        raise ValueError(f"{modality}: shape {list(array.shape)}, meta.json records {list(expected)}")
    if array.dtype.kind == "f":
        finite = np.isfinite(np.asarray(array))
        if not finite.all():
            raise ValueError(f"{modality}: {int((~finite).sum())} values are NaN or inf")


def _check_pack(store: SampleStore, name: str, modality: str, info: Any) -> None:
    with store.frame_pack(name, modality) as pack:
        expected = info.get("num_frames") if isinstance(info, dict) else None
        if expected is not None and len(pack) != int(expected):
            raise ValueError(f"{modality}: {len(pack)} frames, meta.json records {expected}")
        for index in range(len(pack)):
            frame = pack[index]
            if frame.shape != pack.shape:
                raise ValueError(f"{modality}: frame {index} decodes to {frame.shape}, not {pack.shape}")


def verify_sample(store: SampleStore, name: str) -> None:
    """Raise (StoreError or ValueError, naming the file or modality) if a file of ``name`` is damaged."""
    meta = store.meta(name)
    for modality, info in meta["modalities"].items():
        if modality not in MODALITY_FILES:
            raise ValueError(f"meta.json lists an unknown modality {modality!r}")
        if modality in FRAME_PACK_MODALITIES:
            _check_pack(store, name, modality, info)
        else:
            _check_array(store, name, modality, info)


def verify_store(store: SampleStore, names: Iterable[str] | None = None, progress: bool = False) -> VerifyReport:
    """Check every sample of ``store`` (or ``names``); records each bad sample and goes on."""
    report = VerifyReport(missing=missing_samples(store))
    todo = list(store.names if names is None else names)
    if progress:
        from tqdm import tqdm

        todo = tqdm(todo, desc="verify", unit="sample", dynamic_ncols=True)  # type: ignore[assignment]
    for name in todo:
        report.checked += 1
        try:
            verify_sample(store, name)
        except (ActionFusionError, ValueError, OSError, EOFError) as error:
            report.bad.append((name, " ".join(str(error).split())[:300]))
    return report
