"""Per-file sizes and checksums of a sample's files, recorded in its ``meta.json``.

Every writer of a sample (``prepare``, pose extraction, pyskl import) records, just before it
writes ``meta.json``, the size and a BLAKE2b-128 digest of each file the sample publishes::

    meta["files"] = {"skeleton.npy": {"size": 1234, "blake2b_128": "<32 hex digits>"}, ...}

``store-info --verify`` recomputes them (:func:`check_file_record`). Samples of stores written
before checksums existed have no ``files`` entry; they keep loading, and verify notes them.

Why BLAKE2b (hashlib, digest_size 16) and not xxhash: on a 5 MiB buffer BLAKE2b takes about
5.5 ms (900 MiB/s) against 0.1 ms for xxh3-128, but a prepared sample holds a few MiB and
prepare spends seconds decoding its video, so the faster hash would not change prepare's time
and is not worth a dependency. ``benchmarks/bench_file_checksums.py`` measures both.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Iterable, MutableMapping, Optional, Union

PathLike = Union[str, "os.PathLike[str]"]

FILES_KEY = "files"
"""The ``meta.json`` key holding ``{file name: record}``."""

CHECKSUM_KEY = "blake2b_128"
"""A record's checksum field: ``hashlib.blake2b(digest_size=16)`` of the whole file, hex."""

DIGEST_SIZE = 16
_CHUNK = 1 << 20


def file_checksum(path: PathLike) -> str:
    """Hex BLAKE2b-128 digest of the file at ``path``, read in 1 MiB chunks."""
    digest = hashlib.blake2b(digest_size=DIGEST_SIZE)
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_record(path: PathLike) -> dict[str, Any]:
    """``{"size": bytes, "blake2b_128": hex digest}`` of the file at ``path``."""
    return {"size": os.stat(path).st_size, CHECKSUM_KEY: file_checksum(path)}


def record_files(meta: MutableMapping[str, Any], directory: Path, file_names: Iterable[str]) -> None:
    """Set ``meta["files"][name]`` to the record of ``directory / name`` for each name (others kept).

    Call it after the files are written and before ``meta.json`` is: inside a staging directory
    for a new sample, or after the atomic writes of an update in place.
    """
    records = meta.get(FILES_KEY)
    records = dict(records) if isinstance(records, dict) else {}
    for name in file_names:
        records[name] = file_record(Path(directory) / name)
    meta[FILES_KEY] = dict(sorted(records.items()))


def check_file_record(path: Path, record: Any) -> Optional[str]:
    """What is wrong with ``path`` against its ``meta.json`` record, or None when it matches.

    The size is compared first (no read); the checksum only when the size matches.
    """
    if not isinstance(record, dict) or not isinstance(record.get("size"), int) or not isinstance(
            record.get(CHECKSUM_KEY), str):
        return f"{path.name}: malformed record in meta.json ({record!r:.80})"
    try:
        size = path.stat().st_size
    except OSError as err:
        return f"{path.name}: recorded in meta.json but unreadable ({err.strerror or err})"
    if size != record["size"]:
        return f"{path.name}: {size} bytes on disk, meta.json records {record['size']}"
    actual = file_checksum(path)
    if actual != record[CHECKSUM_KEY]:
        return (f"{path.name}: checksum mismatch (blake2b-128 {actual} on disk, meta.json records "
                f"{record[CHECKSUM_KEY]}); the file is damaged")
    return None
