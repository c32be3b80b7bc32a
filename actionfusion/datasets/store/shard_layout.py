"""Where things live in a sharded store, and how it is reached (a local folder or an fsspec URL).

A sharded store is a sample store (:mod:`.layout`) packed by ``actionfusion pack`` into
WebDataset tar shards beside one JSON index per shard and a catalogue written last::

    <url>/shards.json                  format, format_version, the folder store's manifest,
                                       shard_size, and per shard {"tar", "index", "bytes",
                                       "samples", "index_blake2b_128"}
    <url>/shard-000000.tar             POSIX tar, WebDataset convention: members
                                       "<sample>.meta.json", "<sample>.skeleton.npy", ...
                                       (key = sample name, extension = the store's file name)
    <url>/shard-000000.index.json      {"format", "tar", "samples": [{"name", "meta",
                                        "members": {file name: [data offset, size]}}]}
    <url>/splits/<benchmark>.json      the folder store's split files, copied

The index holds each sample's ``meta.json`` (labels, shapes and the per-file sizes and BLAKE2b-128
checksums of :mod:`.file_checksums`) and the byte range of every member, so opening the store is
one read of the catalogue plus one of each index, and a sample's file is one range read. The
catalogue records each index's checksum, so a damaged or replaced index is refused.

``url`` is a local path or any fsspec URL: ``s3://bucket/prefix`` (needs ``s3fs``, the ``scale``
extra), ``gs://...`` (``gcsfs``). Endpoint and credentials come from the standard variables
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``, ...) or from
``storage_options`` (``data.storage_options``: non-secret options such as ``endpoint_url``).
"""

from __future__ import annotations

import os
import re
from typing import Any, Mapping, Optional, Union

from ...errors import MissingDependencyError, StoreError, one_line

CATALOGUE_FILE = "shards.json"
SHARDED_FORMAT = "actionfusion-sharded-store"
SHARDED_FORMAT_VERSION = 1
INDEX_FORMAT = "actionfusion-shard-index"
META_MEMBER = "meta.json"
DEFAULT_SHARD_SIZE = 1 << 30
"""1 GiB: a few seconds of streaming per shard, about 90 shards for full NTU60 (the issue's estimate)."""

PathOrUrl = Union[str, "os.PathLike[str]"]

_PROTOCOL_EXTRAS = {"s3": ("s3fs", "scale"), "gs": ("gcsfs", "gcsfs"), "gcs": ("gcsfs", "gcsfs")}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)b?\s*$", re.IGNORECASE)


def shard_tar_name(index: int) -> str:
    """``shard-000012.tar``."""
    return f"shard-{index:06d}.tar"


def shard_index_name(index: int) -> str:
    """``shard-000012.index.json``."""
    return f"shard-{index:06d}.index.json"


def member_name(sample: str, file_name: str) -> str:
    """The tar member of ``file_name`` of ``sample``: ``<sample>.<file_name>`` (WebDataset key + extension)."""
    return f"{sample}.{file_name}"


def parse_size(text: Union[str, int]) -> int:
    """Bytes of ``"1GB"``, ``"256MiB"``, ``"512M"``, ``"1e6"``-free plain integers (``1000000``).

    Decimal and binary units both mean powers of 1024 (``1GB`` = ``1GiB``), as shard sizes are
    a budget, not a contract.

    Raises:
        ValueError: not a size, or below 1 byte.
    """
    if isinstance(text, int):
        value = text
    else:
        match = _SIZE.match(str(text))
        if match is None:
            raise ValueError(f"{text!r} is not a size (examples: 1GB, 256MB, 64MiB, 1000000)")
        number, unit = float(match.group(1)), match.group(2).lower()
        value = int(number * 1024 ** " kmgt".index(unit or " "))
    if value < 1:
        raise ValueError(f"shard size {text!r} must be at least 1 byte")
    return value


def is_url(path: PathOrUrl) -> bool:
    """True for ``scheme://...`` (``file://`` included), False for a plain local path."""
    return "://" in os.fspath(path)


def open_filesystem(url: PathOrUrl, storage_options: Optional[Mapping[str, Any]] = None) -> tuple[Any, str]:
    """``(fsspec filesystem, root path inside it)`` of a store URL or local path.

    Raises:
        MissingDependencyError: the URL's protocol needs a package that is not installed (says which).
        StoreError: fsspec does not know the protocol or refuses the options.
    """
    import fsspec

    text = os.fspath(url)
    protocol = text.split("://", 1)[0].lower() if is_url(text) else "file"
    try:
        fs, root = fsspec.core.url_to_fs(text, **dict(storage_options or {}))
    except ImportError as err:
        package, extra = _PROTOCOL_EXTRAS.get(protocol, (protocol, None))
        how = f"pip install 'actionfusion[{extra}]'" if extra == "scale" else f"pip install {package}"
        raise MissingDependencyError(f"{text}: reading {protocol}:// needs the package {package} ({how})") from err
    except (ValueError, TypeError) as err:
        raise StoreError(f"{text}: cannot open ({one_line(err, 200)}); check the URL and data.storage_options") from err
    return fs, root.rstrip("/") if protocol != "file" else root


def is_local_filesystem(fs: Any) -> bool:
    """True for fsspec's local filesystem (writes there go through :func:`actionfusion.io.atomic_write`)."""
    from fsspec.implementations.local import LocalFileSystem

    return isinstance(fs, LocalFileSystem)


def join(root: str, *parts: str) -> str:
    """``root/part/...`` with ``/`` (fsspec paths use ``/`` on every protocol)."""
    return "/".join([root.rstrip("/")] + [p.strip("/") for p in parts])


def endpoint_of(storage_options: Optional[Mapping[str, Any]]) -> Optional[str]:
    """The S3 endpoint a store is read from: ``endpoint_url`` of the options, else ``AWS_ENDPOINT_URL_S3``
    or ``AWS_ENDPOINT_URL``, else None (the provider's default)."""
    options = dict(storage_options or {})
    client = options.get("client_kwargs") if isinstance(options.get("client_kwargs"), dict) else {}
    return (options.get("endpoint_url") or client.get("endpoint_url") or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL"))


def access_error(url: str, what: str, err: BaseException,
                 storage_options: Optional[Mapping[str, Any]] = None) -> StoreError:
    """A one-line :class:`StoreError` for a failed read of ``what`` at ``url``: missing object, or an
    unreachable / refusing endpoint (named, with where the endpoint and credentials are configured)."""
    if isinstance(err, FileNotFoundError):
        return StoreError(f"{url}: {what} is missing; the sharded store is incomplete or the URL is wrong: "
                          "run `actionfusion pack STORE --out URL` again")
    if isinstance(err, PermissionError):
        return StoreError(f"{url}: access to {what} denied ({one_line(err, 160)}); check the credentials "
                          "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE)")
    endpoint = endpoint_of(storage_options) if is_url(url) and not url.startswith("file://") else None
    via = f" through the endpoint {endpoint}" if endpoint else ""
    return StoreError(f"{url}: cannot read {what}{via} ({type(err).__name__}: {one_line(err, 200)}); check that the "
                      "endpoint is reachable (AWS_ENDPOINT_URL or data.storage_options.endpoint_url), the options "
                      "and the credentials")
