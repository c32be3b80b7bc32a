"""Run per-sample work on a Ray cluster, with the local process pool's guarantees.

The driver (the command's process) keeps the queue, the manifest and the report; Ray runs the
per-sample function as tasks (:func:`run_tasks`) or as calls on long-lived actors that hold a
model (:func:`run_on_actors`). Each sample is written by the worker, atomically, into a store on
a file system that every node mounts at the same path. The driver keeps at most a bounded number
of samples in flight, so results arrive as they finish and the manifest follows the run.

Failures, as in the local pool:

- the per-sample function records a bad sample itself and returns normally;
- a worker, actor or node that dies (``WorkerCrashedError``, ``ActorDiedError``,
  ``NodeDiedError``, out of memory, ...) fails the samples it held (``on_lost``): a rerun retries
  them. Tasks are never retried by Ray (``max_retries=0``), so a sample that crashes its worker
  is reported once rather than crashing three more;
- an exception raised by the function itself (a setup error, such as a model that cannot be
  built) is re-raised in the driver when the caller asks (``reraise``), else reported as lost.

When the driver dies, Ray ends the job's tasks and actors; what they had staged stays invisible
and the next run removes it.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
from collections import deque
from types import ModuleType
from typing import Any, Callable, Iterator, Optional, Sequence, TypeVar

from .errors import MissingDependencyError, RayClusterError, one_line

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

INSTALL_HINT = "pip install 'actionfusion[scale]' (or pip install ray)"
"""How to get Ray, for the one-line error."""

LOCAL_OBJECT_STORE_BYTES = 200 * 1024**2
"""Object store of a ``--ray local`` cluster: the tasks pass small records, never frames."""

ADDRESS_HELP = ("'auto' (the cluster `ray start` runs on this machine, or RAY_ADDRESS), HOST:PORT of a head "
                "node, or 'local' (a one-machine Ray in this process with --workers CPUs)")


def import_ray() -> ModuleType:
    """The ``ray`` module, or a one-line :class:`MissingDependencyError` naming the pip command."""
    try:
        return importlib.import_module("ray")
    except ImportError as err:
        raise MissingDependencyError(f"--ray needs Ray, which is not installed ({one_line(err)}): "
                                     f"{INSTALL_HINT}") from err


@contextlib.contextmanager
def ray_session(address: str, local_cpus: Optional[int] = None) -> Iterator[ModuleType]:
    """Connect to the Ray cluster at ``address`` for the duration of the block.

    Args:
        address: ``"auto"``, ``"HOST:PORT"`` or ``"local"`` (see :data:`ADDRESS_HELP`).
        local_cpus: CPUs of a ``"local"`` cluster (None: every CPU of the machine).
    Yields:
        the ``ray`` module, connected. A connection made by the caller beforehand is used as it is
        and left open; one made here is closed at the end.
    Raises:
        MissingDependencyError: Ray is not installed.
        RayClusterError: no cluster answers at ``address``.
    """
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING}
    if address == "local":
        kwargs.update(num_cpus=local_cpus, include_dashboard=False, object_store_memory=LOCAL_OBJECT_STORE_BYTES)
    else:
        kwargs["address"] = address
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise RayClusterError(
            f"cannot connect to a Ray cluster at {address!r} ({one_line(err, 300)}): start one with "
            "`ray start --head --port 6379` on the head node and `ray start --address HEAD:6379` on the others, "
            "then pass --ray auto (on a node of it) or --ray HEAD:6379; --ray local runs on this machine alone"
        ) from err
    try:
        yield ray
    finally:
        ray.shutdown()


def cluster_slots(ray: ModuleType, resource: str = "CPU", per_slot: float = 1.0) -> int:
    """How many ``per_slot`` units of ``resource`` the cluster holds now (0 when it has none)."""
    total = float(ray.cluster_resources().get(resource, 0.0))
    return int(total // per_slot + 1e-9) if per_slot > 0 else 0


def limit_worker_threads() -> None:
    """One thread per library in a Ray worker (tasks run side by side, one CPU each), as the
    local pool's workers do. Idempotent; call at the start of each task or actor."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ[var] = "1"
    import cv2

    if cv2.getNumThreads() != 1:
        cv2.setNumThreads(1)


def _task_cause(ray: ModuleType, err: BaseException) -> Optional[BaseException]:
    """The exception the function itself raised, or None when the worker, actor or node was lost."""
    if isinstance(err, ray.exceptions.RayTaskError) and not isinstance(err, ray.exceptions.RayActorError):
        cause = getattr(err, "cause", None)
        return cause if isinstance(cause, BaseException) else err
    return None


def _collect(ray: ModuleType, ref: Any, item: T, on_result: Callable[[T, Any], None],
             on_lost: Callable[[T, BaseException], None], reraise: bool) -> Optional[BaseException]:
    """Fetch one finished ref and hand it on; returns the error when the worker, actor or node was lost."""
    try:
        result = ray.get(ref)
    except ray.exceptions.RayError as err:
        cause = _task_cause(ray, err)
        if cause is not None and reraise:
            raise cause from None
        on_lost(item, cause if cause is not None else err)
        return None if cause is not None else err
    on_result(item, result)
    return None


def run_tasks(ray: ModuleType, submit: Callable[[T], Any], items: Sequence[T], on_result: Callable[[T, Any], None],
              on_lost: Callable[[T, BaseException], None], max_in_flight: int, reraise: bool = False) -> None:
    """Submit ``submit(item)`` (a Ray task, returning its ref) for every item, at most
    ``max_in_flight`` at a time; hand each result to ``on_result`` as it finishes, in completion
    order, and each lost task to ``on_lost``. With ``reraise``, an exception raised by the task's
    own code stops the run (the tasks still in flight are cancelled)."""
    queue = deque(items)
    pending: dict[Any, T] = {}
    try:
        while queue or pending:
            while queue and len(pending) < max(int(max_in_flight), 1):
                item = queue.popleft()
                pending[submit(item)] = item
            finished, _ = ray.wait(list(pending), num_returns=1)
            for ref in finished:
                _collect(ray, ref, pending.pop(ref), on_result, on_lost, reraise)
    finally:
        for ref in pending:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)


def run_on_actors(ray: ModuleType, make_actor: Callable[[], Any], num_actors: int, call: Callable[[Any, T], Any],
                  items: Sequence[T], on_result: Callable[[T, Any], None], on_lost: Callable[[T, BaseException], None],
                  per_actor: int = 2, reraise: bool = True) -> None:
    """Run ``call(actor, item)`` for every item on ``num_actors`` actors from ``make_actor()``,
    at most ``per_actor`` calls queued on each. An actor that dies fails the items it held
    (``on_lost``) and a fresh actor takes its place, up to ``num_actors + 2`` replacements in the
    run; past that a :class:`RayClusterError` stops the run (the actors keep dying: out of memory,
    a model that crashes its process)."""
    queue = deque(items)
    actors = {key: make_actor() for key in range(max(int(num_actors), 1))}  # key: never reused in the run
    next_key = len(actors)
    load = dict.fromkeys(actors, 0)
    pending: dict[Any, tuple[T, int]] = {}
    replacements = 0
    try:
        while queue or pending:
            for key, actor in list(actors.items()):
                while queue and load[key] < per_actor:
                    item = queue.popleft()
                    pending[call(actor, item)] = (item, key)
                    load[key] += 1
            finished, _ = ray.wait(list(pending), num_returns=1)
            for ref in finished:
                item, key = pending.pop(ref)
                load[key] -= 1
                lost = _collect(ray, ref, item, on_result, on_lost, reraise)
                if lost is None or key not in actors:
                    continue
                # The actor is gone: its other calls fail as they come back; replace it once.
                del actors[key]
                replacements += 1
                if replacements > num_actors + 2:
                    raise RayClusterError(f"{replacements} Ray actors died in this run (last: {one_line(lost, 200)}); "
                                          "see the Ray logs (out of memory? a model that crashes its process?)")
                log.warning("a Ray actor died (%s); starting a fresh one", one_line(lost, 200))
                actors[next_key], load[next_key] = make_actor(), 0
                next_key += 1
    finally:
        for ref in pending:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        for actor in actors.values():
            with contextlib.suppress(Exception):
                ray.kill(actor)
