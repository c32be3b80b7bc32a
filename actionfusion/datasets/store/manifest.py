"""The store manifest (``manifest.json``): what was prepared, from where, with which config.

The manifest is a summary rewritten atomically during and after a prepare run; the truth
about each sample lives in its own ``meta.json``. A store refuses to be resumed with a
config that differs from the one it was started with (:func:`check_resumable_config`).

Keys::

    format, format_version     "actionfusion-sample-store", 1
    actionfusion_version       version of the library that last wrote the store
    created, updated           ISO-8601 UTC times
    source_root                the NTU-format root it was prepared from
    config                     PrepareConfig.to_dict()
    samples                    {name: {"status": "ok" | "partial" | "failed", "reason"?: str}}
    counts                     {"ok", "partial", "failed"} over ``samples``
    size_estimate              the measured sizes and the full-NTU60 estimate (see PrepareReport)
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any, Mapping, Optional

from ... import __version__
from ...errors import StoreError
from ...io import atomic_write_json, load_json
from .layout import MANIFEST_FILE, STORE_FORMAT, STORE_FORMAT_VERSION


def utc_now_iso() -> str:
    """The current UTC time, ISO-8601 with seconds."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def build_manifest(
    *,
    config: Mapping[str, Any],
    source_root: str,
    created: str,
    samples: Mapping[str, Mapping[str, Any]],
    size_estimate: Optional[Mapping[str, Any]] = None,
) -> dict[str, Any]:
    """Assemble the manifest dict (see the module docstring for the keys)."""
    counts = {"ok": 0, "partial": 0, "failed": 0}
    for entry in samples.values():
        status = str(entry.get("status"))
        counts[status] = counts.get(status, 0) + 1
    return {
        "format": STORE_FORMAT,
        "format_version": STORE_FORMAT_VERSION,
        "actionfusion_version": __version__,
        "created": created,
        "updated": utc_now_iso(),
        "source_root": source_root,
        "config": dict(config),
        "samples": {name: dict(samples[name]) for name in sorted(samples)},
        "counts": counts,
        "size_estimate": dict(size_estimate) if size_estimate is not None else None,
    }


def write_manifest(store: Path, manifest: Mapping[str, Any]) -> None:
    """Write ``<store>/manifest.json`` atomically."""
    atomic_write_json(Path(store) / MANIFEST_FILE, manifest)


def read_manifest(store: Path) -> dict[str, Any]:
    """Load and check ``<store>/manifest.json``.

    Raises:
        StoreError: no manifest, unreadable JSON, or not a sample-store manifest of a known version.
    """
    path = Path(store) / MANIFEST_FILE
    if not path.is_file():
        raise StoreError(f"{store}: not a sample store (no {MANIFEST_FILE})")
    try:
        manifest = load_json(path)
    except (OSError, ValueError) as err:
        raise StoreError(f"{path}: unreadable manifest ({err})") from err
    if not isinstance(manifest, dict) or manifest.get("format") != STORE_FORMAT:
        raise StoreError(f"{path}: not a sample-store manifest (format is not {STORE_FORMAT!r})")
    version = manifest.get("format_version")
    if version != STORE_FORMAT_VERSION:
        raise StoreError(f"{path}: store format version {version!r}, this library reads {STORE_FORMAT_VERSION}")
    return manifest


def config_differences(stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """Keys whose values differ between two config dicts (a key missing on one side counts)."""
    keys = sorted(set(stored) | set(wanted))
    return [key for key in keys if _normalise(stored.get(key, "<absent>")) != _normalise(wanted.get(key, "<absent>"))]


def check_resumable_config(store: Path, stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> None:
    """Raise :class:`StoreError` naming the differing keys if ``wanted`` differs from ``stored``."""
    differing = config_differences(stored, wanted)
    if differing:
        detail = ", ".join(f"{k}: stored {stored.get(k, '<absent>')!r}, requested {wanted.get(k, '<absent>')!r}"
                           for k in differing)
        raise StoreError(
            f"{store}: prepared with a different config ({detail}); refusing to resume. "
            "Use another output directory or pass overwrite=True to discard the existing samples."
        )


def _normalise(value: Any) -> Any:
    """Lists and tuples compare equal (JSON turns tuples into lists)."""
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    return value
