"""Atomic writes and safe loading.

Every file the library writes goes through :func:`atomic_write`: the content is written
to a temporary file in the same directory, flushed and fsynced, then renamed over the
target. A reader therefore sees the old file or the new one, never a partial one, even
after ``kill -9``. Directories are published the same way by :func:`atomic_publish_dir`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path
from typing import IO, Any, Iterator, Union

import numpy as np
import yaml

PathLike = Union[str, "os.PathLike[str]"]

TMP_PREFIX = ".tmp-"


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success rename it to ``path``.

    On an exception the temporary file is removed and ``path`` is untouched.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write supports modes 'w' and 'wb', not {mode!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=TMP_PREFIX + target.name + ".", dir=target.parent)
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8", "newline": ""} if mode == "w" else {})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600 files; give the published file the usual permissions.
        os.chmod(tmp_name, 0o666 & ~_current_umask())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_write(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_write(path, "w") as handle:
        handle.write(text)


def atomic_write_json(path: PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def atomic_save_npy(path: PathLike, array: np.ndarray) -> None:
    """Save ``array`` in ``.npy`` format to ``path`` atomically (no pickled objects)."""
    if array.dtype == object:
        raise TypeError("refusing to save an object array: it would need pickle to load")
    with atomic_write(path, "wb") as handle:
        np.save(handle, array, allow_pickle=False)


def make_staging_dir(final: PathLike) -> Path:
    """Create a hidden temporary directory beside ``final`` for :func:`atomic_publish_dir`."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=TMP_PREFIX + final.name + ".", dir=final.parent))
    # mkdtemp creates 0700 directories; a published store must be readable like any other folder.
    os.chmod(staging, 0o777 & ~_current_umask())
    return staging


def atomic_publish_dir(staging: PathLike, final: PathLike) -> None:
    """Rename a fully written staging directory to ``final``.

    ``final`` must not exist (a finished sample is never overwritten in place); the
    rename of a directory within one file system is atomic on POSIX.
    """
    staging, final = Path(staging), Path(final)
    for child in staging.rglob("*"):
        if child.is_file():
            with open(child, "rb") as handle:
                os.fsync(handle.fileno())
    os.rename(staging, final)


def remove_stale_staging(directory: PathLike) -> int:
    """Delete leftovers of interrupted atomic writes (``.tmp-*``) in ``directory``.

    Returns the number of entries removed.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return 0
    removed = 0
    for entry in directory.iterdir():
        if entry.name.startswith(TMP_PREFIX):
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
            removed += 1
    return removed


def load_yaml(path: PathLike) -> Any:
    """Load a YAML file with ``yaml.safe_load`` (no arbitrary Python objects)."""
    with open(path, "r", encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def load_npy(path: PathLike, mmap: bool = False) -> np.ndarray:
    """Load a ``.npy`` file without allowing pickled objects; optionally memory-mapped."""
    return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)


def load_json(path: PathLike) -> Any:
    """Load a JSON file."""
    with open(path, "r", encoding="utf-8") as handle:
        return json.load(handle)


MAX_NAME_BYTES = 255
"""The longest file name most file systems take."""


def read_csv_rows(path: PathLike) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """A CSV file with a header row: the column names (stripped, lower case) and every row that is not
    blank as ``(1-based line number, {column: stripped value})``. A leading UTF-8 BOM is ignored.

    Raises:
        FileNotFoundError: no such file.
        FileFormatError: the file is not UTF-8 text.
    """
    import csv
    import io as text_io

    from .errors import FileFormatError

    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise FileFormatError(path, f"not UTF-8 text ({err.reason} at byte {err.start})") from None
    reader = csv.DictReader(text_io.StringIO(text))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    rows = []
    for row in reader:
        values = {k: (v or "").strip() for k, v in row.items() if isinstance(k, str) and isinstance(v, str)}
        if any(values.values()):
            rows.append((reader.line_num, values))
    return header, rows


def safe_component(name: object, what: str = "name") -> str:
    """``name`` if it is one plain path component, else :class:`~actionfusion.errors.UnsafePathError`.

    Refused: non-strings, empty names, ``.`` and ``..``, separators (``/``, ``\\``), NUL and other
    control characters, a leading ``.`` (staging folders and hidden files), more than 255 bytes.
    """
    from .errors import UnsafePathError

    if not isinstance(name, str):
        raise UnsafePathError(f"{what} must be a string, got {type(name).__name__}")
    shown = repr(name[:64]) + ("..." if len(name) > 64 else "")
    problem = None
    if not name or name in (".", ".."):
        problem = "is empty, '.' or '..'"
    elif "/" in name or "\\" in name:
        problem = "holds a path separator"
    elif any(ord(c) < 32 or ord(c) == 127 for c in name):
        problem = "holds a control character"
    elif name.startswith("."):
        problem = "starts with '.'"
    elif len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        problem = f"is longer than {MAX_NAME_BYTES} bytes"
    if problem is not None:
        raise UnsafePathError(f"{what} {shown} {problem}: it must be one plain file name, so that it cannot "
                              "point outside the output folder")
    return name


def cache_dir() -> Path:
    """The library's download and build cache: ``$ACTIONFUSION_CACHE`` or ``~/.cache/actionfusion``
    (model bundles, pretrained checkpoints)."""
    env = os.environ.get("ACTIONFUSION_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "actionfusion"


DOWNLOAD_TIMEOUT_S = 60.0
"""Seconds a download may wait for the server."""
_CHUNK = 1 << 20


def download_url(url: str, destination: PathLike, timeout: float = DOWNLOAD_TIMEOUT_S) -> None:
    """Copy ``url`` to ``destination`` through :func:`atomic_write` (a reader never sees a partial
    file). Raises ``urllib.error.URLError`` / ``OSError`` on failure."""
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (the callers' fixed http(s) URLs)
        with atomic_write(destination, "wb") as handle:
            shutil.copyfileobj(response, handle, _CHUNK)


def file_sha256(path: PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
