"""The preparation cache of feature extraction: raw inputs prepared into small stores, reused.

Raw inputs are prepared with :func:`~actionfusion.datasets.store.prepare_sample.prepare_sample`
into one small store per (sources, prepare config), named ``<name>-<key>`` where the key hashes
the PrepareConfig and each source file's absolute path, size and modification time. A changed
source or config is therefore prepared again; an unchanged one is reused. Preparation runs in a
worker process by default, so that the caller can encode one batch while the next is prepared,
and so that torch's thread settings in the caller's process are never touched
(``prepare_sample`` limits torch to one thread for its workers).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Optional, Union

from ..datasets.ntu.index import SamplePaths
from ..datasets.store.layout import META_FILE, sample_dir
from ..datasets.store.manifest import build_manifest, read_manifest, utc_now_iso, write_manifest
from ..datasets.store.prepare_config import PrepareConfig
from ..datasets.store.prepare_sample import SampleResult, error_text, prepare_sample
from ..errors import StoreError
from .feature_inputs import FeatureInputError, ResolvedInput, SamplePreparationError

PathLike = Union[str, "os.PathLike[str]"]

CACHE_KEY_VERSION = 1
"""Bumped when the cache layout or key changes, so old entries are not reused."""


def _source_fingerprint(path: Optional[Path]) -> Optional[list[Any]]:
    if path is None:
        return None
    stat = path.stat()
    return [str(path.resolve()), int(stat.st_size), int(stat.st_mtime_ns)]


def cache_key(paths: SamplePaths, config: PrepareConfig) -> str:
    """16 hex digits of SHA-256 over the config, the name and each source's path, size and mtime."""
    record = {
        "version": CACHE_KEY_VERSION,
        "config": config.to_dict(),
        "name": paths.name,
        "sources": {key: _source_fingerprint(getattr(paths, key)) for key in ("skeleton", "rgb", "depth_masked")},
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode("utf-8")).hexdigest()[:16]


class PendingPreparation:
    """A raw sample being prepared (in a worker process, or already done); :meth:`wait` gives its store."""

    def __init__(self, cache: "RawSampleCache", resolved: ResolvedInput, store: Path,
                 future: Optional["Future[SampleResult]"] = None, error: Optional[BaseException] = None) -> None:
        self.cache, self.resolved, self.store, self.future, self.error = cache, resolved, store, future, error

    def wait(self) -> Path:
        """The sample's store directory once prepared (may be called again: the outcome is kept).

        Raises:
            SamplePreparationError: a stage failed (nothing is kept in the cache then).
        """
        if self.future is not None:
            future, self.future = self.future, None
            try:
                result = future.result()
                self.cache.pool_worked = True
            except BrokenProcessPool as err:
                self.cache.reset_pool()
                if self.cache.pool_worked:  # a worker died (e.g. killed for memory): a new pool takes the next
                    result = SampleResult(self.resolved.name, "failed", failures=[("worker", error_text(err))])
                else:  # workers cannot start here (e.g. a script read from stdin): prepare in this process
                    self.cache.workers = 0
                    result = self.cache.prepare_here(self.resolved.paths, self.store)
            try:
                self.cache.finish(self.resolved, self.store, result)
            except SamplePreparationError as err:
                self.error = err
            finally:
                self.cache.in_flight.pop(self.store, None)
        if self.error is not None:
            raise self.error
        return self.store


class RawSampleCache:
    """Raw samples prepared into one-sample stores under ``root`` (see the module docstring).

    Args:
        root: the cache directory (created on first use).
        config: the PrepareConfig of every sample.
        workers: worker processes that prepare samples (started on first use; the caller goes on
            meanwhile, e.g. encoding the previous batch); 0 prepares in this process.
    """

    def __init__(self, root: PathLike, config: PrepareConfig, workers: int = 1) -> None:
        self.root = Path(root)
        self.config = config
        self.workers = max(int(workers), 0)
        self._pool: Optional[ProcessPoolExecutor] = None
        self.pool_worked = False
        self.in_flight: dict[Path, PendingPreparation] = {}
        """Preparations under way by store: an input given twice is prepared once."""

    def store_path(self, paths: SamplePaths) -> Path:
        """``<root>/<name>-<cache key>``."""
        return self.root / f"{paths.name}-{cache_key(paths, self.config)}"

    def start(self, resolved: ResolvedInput) -> PendingPreparation:
        """Begin preparing ``resolved`` (a raw input) unless it is cached."""
        if resolved.paths is None:
            raise ValueError(f"{resolved.label}: not a raw input")
        paths = resolved.paths
        try:
            store = self.store_path(paths)
        except OSError as err:  # a source vanished or became unreadable since the input was resolved
            return PendingPreparation(self, resolved, self.root, error=FeatureInputError(
                resolved.label, f"cannot read its source files ({err})"))
        if store in self.in_flight:
            return self.in_flight[store]
        if (sample_dir(store, paths.name) / META_FILE).is_file():
            return PendingPreparation(self, resolved, store)
        self._ensure_manifest(store, paths)
        if self.workers == 0:
            result = self.prepare_here(paths, store)
            try:
                return PendingPreparation(self, resolved, self.finish(resolved, store, result))
            except SamplePreparationError as err:
                return PendingPreparation(self, resolved, store, error=err)
        if self._pool is None:
            # The workers of `prepare`: forkserver (else spawn), one thread per library each.
            from ..datasets.store.prepare import init_worker, worker_context

            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=worker_context(),
                                             initializer=init_worker, initargs=(os.getpid(),))
        try:
            future = self._pool.submit(prepare_sample, paths, store, self.config)
        except BrokenProcessPool:  # the pool broke earlier: this sample goes to a fresh one
            self.reset_pool()
            return self.start(resolved)
        pending = PendingPreparation(self, resolved, store, future=future)
        self.in_flight[store] = pending
        return pending

    def prepare_here(self, paths: SamplePaths, store: Path) -> SampleResult:
        """Run ``prepare_sample`` in this process, keeping torch's thread count."""
        threads = _torch_threads()
        try:
            return prepare_sample(paths, store, self.config)
        finally:
            _restore_torch_threads(threads)  # prepare_sample limits torch to 1 thread (for its workers)

    def prepare(self, resolved: ResolvedInput) -> Path:
        """Prepare ``resolved`` unless cached and wait for it; returns its store directory.

        Raises:
            SamplePreparationError: a stage failed (nothing is kept in the cache then).
        """
        return self.start(resolved).wait()

    def finish(self, resolved: ResolvedInput, store: Path, result: SampleResult) -> Path:
        """Record a finished preparation: the store, or (any stage failed) remove it and raise."""
        if result.status not in ("ok", "skipped"):
            shutil.rmtree(store, ignore_errors=True)
            raise SamplePreparationError(resolved.label, result.failures, resolved.paths)
        write_manifest(store, build_manifest(config=self.config.to_dict(), source_root=_source_root(resolved.paths),
                                             created=utc_now_iso(), samples={resolved.name: {"status": "ok"}}))
        return store

    def reset_pool(self) -> None:
        """Drop the worker pool (a new one starts on the next sample)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        """Stop the worker processes."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _ensure_manifest(self, store: Path, paths: SamplePaths) -> None:
        if (store / "manifest.json").is_file():
            with contextlib.suppress(StoreError):
                read_manifest(store)
                return
        store.mkdir(parents=True, exist_ok=True)
        write_manifest(store, build_manifest(config=self.config.to_dict(), source_root=_source_root(paths),
                                             created=utc_now_iso(), samples={}))


def _source_root(paths: SamplePaths) -> str:
    first = next(p for p in (paths.rgb, paths.skeleton, paths.depth_masked) if p is not None)
    return str(Path(first).resolve().parent)


def _torch_threads() -> Optional[int]:
    import sys

    torch = sys.modules.get("torch")
    return None if torch is None else int(torch.get_num_threads())


def _restore_torch_threads(threads: Optional[int]) -> None:
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
