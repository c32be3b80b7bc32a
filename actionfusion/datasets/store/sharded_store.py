"""Read a sharded store (``actionfusion pack``) with the read interface of :class:`.SampleStore`.

Every clip dataset works on it unchanged and gives the same clips: the files are the folder
store's bytes, found through the per-shard index and fetched with one range read each
(``fs.cat_file(tar, start, end)``), then checked against the size and BLAKE2b-128 checksum the
sample's ``meta.json`` records before anything is decoded. A small per-process byte cache
(:data:`CACHE_BYTES`) keeps the files of the last samples, so the several reads of one item (the
skeleton, then the frames of each modality) fetch each file once. Streaming
(:mod:`actionfusion.datasets.shard_stream`) fills the same cache from a sequential read of a
whole shard (:meth:`ShardedStore.iter_shard`), so the datasets read from memory.

The store holds no open connection when pickled: the filesystem is reopened in each process
(and after a fork), so DataLoader workers and DDP ranks each get their own.
"""

from __future__ import annotations

import io
import json
import logging
import os
import tarfile
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Optional

import numpy as np

from ...errors import StoreError
from ...io import safe_component
from .file_checksums import CHECKSUM_KEY, FILES_KEY
from .frame_pack import FramePack
from .layout import MODALITY_FILES, SPLITS_DIR
from .store_reader import StoreReader
from .shard_layout import (
    CATALOGUE_FILE, INDEX_FORMAT, SHARDED_FORMAT, SHARDED_FORMAT_VERSION, PathOrUrl, access_error,
    join, open_filesystem,
)
from .shard_pack import digest

logger = logging.getLogger(__name__)

CACHE_BYTES = 64 << 20
"""Bytes of sample files each process keeps (least recently used first out)."""
STREAM_BLOCK = 8 << 20
"""Read-ahead of a sequential shard read."""


@dataclass(frozen=True)
class Shard:
    """One shard: its tar object, byte size and sample names in tar order."""

    tar: str
    bytes: int
    names: tuple[str, ...]


class ShardedStore(StoreReader):
    """A sharded store at a local path or fsspec URL (see :mod:`.shard_layout`).

    Args:
        url: the folder or URL ``actionfusion pack`` wrote (``s3://bucket/prefix``).
        storage_options: fsspec options (``data.storage_options``), e.g. ``{"endpoint_url": ...}``.
        cache_bytes: the per-process file cache (0 disables it).
    Raises:
        StoreError: no catalogue, a missing or damaged index, an unreachable endpoint (one line each).
    """

    def __init__(self, url: PathOrUrl, storage_options: Optional[Mapping[str, Any]] = None,
                 cache_bytes: int = CACHE_BYTES) -> None:
        self.url = os.fspath(url)
        self.path = self.url
        self.storage_options = dict(storage_options or {})
        self.cache_bytes = int(cache_bytes)
        self._fs: Any = None
        self._fs_pid = -1
        self._root = ""
        self._cache: "OrderedDict[tuple[str, str], bytes]" = OrderedDict()
        self._cached = 0
        catalogue = self._read_catalogue()
        self.manifest: dict[str, Any] = dict(catalogue.get("manifest") or {})
        self.shards: list[Shard] = []
        self._samples: dict[str, tuple[int, dict[str, Any], dict[str, tuple[int, int]]]] = {}
        self._read_indexes(catalogue["shards"])
        self._names = sorted(self._samples)

    # -- opening --------------------------------------------------------------------------------------

    @property
    def fs(self) -> Any:
        """The fsspec filesystem, opened in this process (reopened after a fork)."""
        if self._fs is None or self._fs_pid != os.getpid():
            self._fs, self._root = open_filesystem(self.url, self.storage_options)
            self._fs_pid = os.getpid()
        return self._fs

    def _object(self, name: str) -> str:
        self.fs  # noqa: B018 - sets _root
        return join(self._root, name)

    def _read_bytes(self, name: str, what: str, start: Optional[int] = None, end: Optional[int] = None) -> bytes:
        try:
            return self.fs.cat_file(self._object(name), start=start, end=end)
        except Exception as err:  # noqa: BLE001 - botocore/aiohttp errors have no common base
            raise access_error(self.url, what, err, self.storage_options) from err

    def _read_catalogue(self) -> dict[str, Any]:
        raw = self._read_bytes(CATALOGUE_FILE, f"the catalogue {CATALOGUE_FILE}")
        try:
            catalogue = json.loads(raw)
        except ValueError as err:
            raise StoreError(f"{self.url}/{CATALOGUE_FILE}: unreadable JSON ({err}); pack the store again") from err
        if not isinstance(catalogue, dict) or catalogue.get("format") != SHARDED_FORMAT:
            raise StoreError(f"{self.url}/{CATALOGUE_FILE}: not a sharded-store catalogue (format is not "
                             f"{SHARDED_FORMAT!r})")
        if catalogue.get("format_version") != SHARDED_FORMAT_VERSION:
            raise StoreError(f"{self.url}/{CATALOGUE_FILE}: sharded-store version {catalogue.get('format_version')!r}, "
                             f"this library reads {SHARDED_FORMAT_VERSION}")
        if not isinstance(catalogue.get("shards"), list):
            raise StoreError(f"{self.url}/{CATALOGUE_FILE}: no 'shards' list")
        return catalogue

    def _read_indexes(self, entries: list[Any]) -> None:
        paths = []
        for number, entry in enumerate(entries):
            if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) for k in ("tar", "index")):
                raise StoreError(f"{self.url}/{CATALOGUE_FILE}, shard {number}: malformed entry ({entry!r:.80})")
            safe_component(entry["tar"], "shard name")
            paths.append(self._object(safe_component(entry["index"], "shard index name")))
        try:
            blobs = self.fs.cat(paths, on_error="raise") if paths else {}
        except Exception as err:  # noqa: BLE001
            raise access_error(self.url, "a shard index", err, self.storage_options) from err
        for number, (entry, path) in enumerate(zip(entries, paths)):
            raw = blobs[path] if path in blobs else blobs[self.fs._strip_protocol(path)]
            where = f"{self.url}/{entry['index']}"
            if digest(raw) != entry.get("index_blake2b_128"):
                raise StoreError(f"{where}: checksum differs from the one {CATALOGUE_FILE} records; the index is "
                                 "damaged or replaced: pack the store again")
            try:
                index = json.loads(raw)
                samples = index["samples"]
                assert index.get("format") == INDEX_FORMAT and index.get("tar") == entry["tar"]
            except (ValueError, KeyError, TypeError, AssertionError) as err:
                raise StoreError(f"{where}: not a shard index of {entry['tar']} ({err!r:.80})") from err
            names = []
            for sample in samples:
                name = safe_component(sample.get("name"), "sample name")
                members = {str(f): (int(r[0]), int(r[1])) for f, r in dict(sample["members"]).items()}
                if name in self._samples:
                    raise StoreError(f"{where}: sample {name} also appears in an earlier shard")
                self._samples[name] = (number, dict(sample["meta"]), members)
                names.append(name)
            self.shards.append(Shard(entry["tar"], int(entry.get("bytes", 0)), tuple(names)))

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_fs=None, _fs_pid=-1, _cache=OrderedDict(), _cached=0)  # per process
        return state

    # -- the SampleStore interface --------------------------------------------------------------------

    def __contains__(self, name: object) -> bool:
        return name in self._samples

    def _entry(self, name: str) -> tuple[int, dict[str, Any], dict[str, tuple[int, int]]]:
        try:
            return self._samples[name]
        except KeyError:
            raise StoreError(f"{self.url}: no sample {name!r} in the store") from None

    def meta(self, name: str) -> dict[str, Any]:
        """The sample's ``meta.json`` (as the index keeps it)."""
        return self._entry(name)[1]

    def label(self, name: str) -> int:
        """0-based class label. Raises StoreError when the sample has none."""
        label = self.meta(name).get("label")
        if label is None:
            raise StoreError(f"{self.url}: sample {name!r} has no label")
        return int(label)

    def modalities(self, name: str) -> set[str]:
        """The modalities stored for ``name``."""
        return set(self.meta(name)["modalities"])

    def shard_of(self, name: str) -> int:
        """The number of the shard that holds ``name``."""
        return self._entry(name)[0]

    def stored_file_size(self, name: str, file_name: str) -> Optional[int]:
        """Bytes of ``file_name`` of ``name`` in its shard (None when it has no such member)."""
        member = self._entry(name)[2].get(file_name)
        return None if member is None else member[1]

    def file_bytes(self, name: str, file_name: str) -> bytes:
        """The bytes of one of the sample's files, checked against its ``meta.json`` record.

        Raises:
            StoreError: no such member, an unreachable object, or a size or checksum mismatch.
        """
        key = (name, file_name)
        data = self._cache.get(key)
        if data is not None:
            self._cache.move_to_end(key)
            return data
        number, meta, members = self._entry(name)
        if file_name not in members:
            raise StoreError(f"{self.url}: sample {name!r} has no {file_name} in shard {self.shards[number].tar}")
        start, size = members[file_name]
        tar = self.shards[number].tar
        data = self._read_bytes(tar, f"shard {tar}", start, start + size)
        self._verify(name, file_name, data, f"{self.url}/{tar}, member {name}.{file_name} (offset {start})")
        self._remember(key, data)
        return data

    def _verify(self, name: str, file_name: str, data: bytes, where: str) -> None:
        record = (self.meta(name).get(FILES_KEY) or {}).get(file_name)
        if not isinstance(record, dict):
            return  # meta.json itself, or a file the index has no record of
        if len(data) != record.get("size"):
            raise StoreError(f"{where}: {len(data)} bytes, meta.json records {record.get('size')}; the shard is "
                             "truncated or damaged: pack the store again")
        if digest(data) != record.get(CHECKSUM_KEY):
            raise StoreError(f"{where}: checksum mismatch against meta.json; the shard is damaged: pack the store again")

    def _remember(self, key: tuple[str, str], data: bytes) -> None:
        if self.cache_bytes <= 0 or len(data) > self.cache_bytes:
            return
        self._cache[key] = data
        self._cached += len(data)
        while self._cached > self.cache_bytes:
            _, dropped = self._cache.popitem(last=False)
            self._cached -= len(dropped)

    def forget(self, name: str) -> None:
        """Drop ``name``'s files from the cache (streaming, once its item is made)."""
        for key in [k for k in self._cache if k[0] == name]:
            self._cached -= len(self._cache.pop(key))

    @property
    def location(self) -> str:
        """The store's URL, for messages."""
        return self.url

    def _file(self, name: str, modality: str) -> str:
        if modality not in self.modalities(name):
            raise StoreError(f"{self.url}: sample {name!r} has no {modality} (it has {sorted(self.modalities(name))})")
        return MODALITY_FILES[modality]

    def _load_array(self, name: str, modality: str) -> np.ndarray:
        file_name = self._file(name, modality)
        try:
            return np.load(io.BytesIO(self.file_bytes(name, file_name)), allow_pickle=False)
        except (OSError, ValueError) as err:
            raise StoreError(f"{self.url}: {name}/{file_name}: unreadable array ({err})") from err

    def frame_pack(self, name: str, modality: str) -> FramePack:
        """The frame pack of ``rgb`` or ``depth``, over the file's bytes in memory."""
        if modality not in ("rgb", "depth"):
            raise StoreError(f"{modality!r} is not stored as a frame pack")
        file_name = self._file(name, modality)
        return FramePack(f"{self.url}/{name}/{file_name}", data=self.file_bytes(name, file_name))

    def split_file_bytes(self, benchmark: str) -> Optional[bytes]:
        """The copied ``splits/<benchmark>.json``, or None when the store has none."""
        try:
            return self.fs.cat_file(self._object(f"{SPLITS_DIR}/{safe_component(benchmark, 'benchmark name')}.json"))
        except FileNotFoundError:
            return None
        except Exception as err:  # noqa: BLE001
            raise access_error(self.url, f"{SPLITS_DIR}/{benchmark}.json", err, self.storage_options) from err

    # -- streaming ------------------------------------------------------------------------------------

    def iter_shard(self, number: int, skip: int = 0) -> Iterator[str]:
        """Read shard ``number`` front to back in one sequential read, caching each sample's files
        (checked against ``meta.json``); yields each sample's name once its files are cached.
        The caller reads the sample through the usual methods, then calls :meth:`forget`.

        ``skip``: start at the shard's sample ``skip`` (tar order); the read seeks past the samples
        before it (their byte ranges are in the index), so they cost nothing. Closing the iterator
        early stops the read.

        Raises:
            StoreError: a member that the index does not list, or at another offset (a replaced
                shard), or damaged bytes.
        """
        shard = self.shards[number]
        where = f"{self.url}/{shard.tar}"
        if not 0 <= skip <= len(shard.names):
            raise ValueError(f"skip {skip} outside 0..{len(shard.names)} for {where}")
        expected = {name: self._samples[name][2] for name in shard.names[skip:]}
        # the header of the sample's first member follows the 512-byte padded data of the one before
        base = max((start + -(-size // 512) * 512 for start, size in self._samples[shard.names[skip - 1]][2].values()),
                   default=0) if skip else 0
        try:
            with self.fs.open(self._object(shard.tar), "rb", block_size=STREAM_BLOCK) as handle:
                handle.seek(base)
                with tarfile.open(fileobj=handle, mode="r|") as tar:
                    yield from self._stream_members(tar, base, expected, where)
        except StoreError:
            raise
        except tarfile.TarError as err:
            raise StoreError(f"{where}: not a readable tar ({err}); pack the store again") from err
        except Exception as err:  # noqa: BLE001
            raise access_error(self.url, f"shard {shard.tar}", err, self.storage_options) from err

    def _stream_members(self, tar: tarfile.TarFile, base: int, expected: Mapping[str, Mapping[str, tuple[int, int]]],
                        where: str) -> Iterator[str]:
        """The names of the samples of an open tar stream (started at byte ``base``), each once its
        files are checked and cached."""
        current: Optional[str] = None
        for info in tar:
            name, _, file_name = info.name.partition(".")
            member = expected.get(name, {}).get(file_name)
            if member is None or member != (base + info.offset_data, info.size) or not info.isfile():
                raise StoreError(f"{where}, offset {base + info.offset}: member {info.name!r} is not where the "
                                 "index puts it; the shard was replaced or damaged: pack the store again")
            if current is not None and name != current:
                yield current
            current = name
            reader = tar.extractfile(info)
            data = reader.read() if reader is not None else b""
            self._verify(name, file_name, data, f"{where}, member {info.name}")
            self._cache[(name, file_name)] = data  # beyond the budget until forget(): one sample
            self._cached += len(data)
        if current is not None:
            yield current

    def summary(self) -> dict[str, Any]:
        """Counts: {"path", "num_samples", "shards", "bytes", "modalities"}."""
        modalities: dict[str, int] = {}
        for name in self._names:
            for modality in self.meta(name)["modalities"]:
                modalities[modality] = modalities.get(modality, 0) + 1
        return {"path": self.url, "num_samples": len(self), "shards": len(self.shards),
                "bytes": sum(s.bytes for s in self.shards), "modalities": modalities, "config": self.config}


def is_sharded_store(path: PathOrUrl, storage_options: Optional[Mapping[str, Any]] = None) -> bool:
    """True when ``path`` is a URL (any scheme) or a local folder holding ``shards.json``."""
    text = os.fspath(path)
    if "://" in text:
        return True
    return os.path.isfile(os.path.join(text, CATALOGUE_FILE))
