"""``prepare_store(..., ray_address=...)``: the same per-sample work as the local pool, as Ray tasks.

Each task runs :func:`~.prepare_sample.prepare_sample` on one sample, exactly as a local pool
worker does (one decoder thread, one OpenCV and BLAS thread), and publishes the sample
atomically into the store. The driver keeps the queue, the manifest, ``failures.json`` and the
report (:func:`.prepare.prepare_store`), so a Ray run writes the same bytes as a local one.

Every node must see the NTU root and the store at the same paths (a shared file system): a task
on a node that cannot see the store fails its sample with a message saying so, rather than
writing into a local folder that nobody reads.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Callable, Optional

from ...errors import RayClusterError
from ...ray_pool import cluster_slots, limit_worker_threads, ray_session, run_tasks
from ..ntu.index import SamplePaths
from .layout import MANIFEST_FILE
from .prepare_config import PrepareConfig
from .prepare_sample import SampleResult, error_text, prepare_sample

IN_FLIGHT_PER_CPU = 2
"""Samples the driver keeps submitted per CPU of the cluster (the local pool keeps 2 per worker)."""


def prepare_sample_on_node(paths: SamplePaths, out: str, config: PrepareConfig, root: str) -> SampleResult:
    """The Ray task: :func:`prepare_sample` as a local pool worker runs it, after checking that this
    node sees the store and the root."""
    limit_worker_threads()
    for what, path in (("store", Path(out) / MANIFEST_FILE), ("NTU root", Path(root))):
        if not path.exists():
            error = RayClusterError(f"{path}: the {what} is not visible on Ray node {socket.gethostname()}; "
                                    "every node must mount the root and the store at the same paths")
            return SampleResult(paths.name, "failed", [("ray", error_text(error))])
    return prepare_sample(paths, Path(out), config, root=Path(root), video_threads=1)


def prepare_on_ray(todo: list[SamplePaths], out: Path, config: PrepareConfig, root: Path, address: str,
                   on_result: Callable[[SampleResult], None], local_cpus: Optional[int] = None) -> int:
    """Prepare ``todo`` as Ray tasks of one CPU each; hand every result to ``on_result``.

    Args:
        todo: the samples to prepare (the driver has already skipped the published ones).
        out, config, root: as :func:`.prepare.prepare_store`.
        address: the cluster (:data:`actionfusion.ray_pool.ADDRESS_HELP`).
        on_result: called in the driver for each sample, in completion order.
        local_cpus: CPUs of a ``"local"`` cluster.
    Returns:
        the cluster's CPUs when the run started (tasks that ran at once).
    Raises:
        MissingDependencyError: Ray is not installed.
        RayClusterError: the cluster cannot be reached or has no CPU.
    """
    with ray_session(address, local_cpus) as ray:
        slots = cluster_slots(ray, "CPU")
        if slots < 1:
            raise RayClusterError(f"the Ray cluster at {address!r} has no CPU to run tasks on")
        task = ray.remote(num_cpus=1, max_retries=0)(prepare_sample_on_node)

        def lost(paths: SamplePaths, err: BaseException) -> None:
            on_result(SampleResult(paths.name, "failed", [("worker", error_text(err))]))

        run_tasks(ray, lambda paths: task.remote(paths, str(out), config, str(root)), todo,
                  on_result=lambda _paths, result: on_result(result), on_lost=lost,
                  max_in_flight=IN_FLIGHT_PER_CPU * slots)
        return slots
