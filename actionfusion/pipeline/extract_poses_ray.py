"""``extract_poses_batch(..., ray_address=...)``: pose extraction on Ray actors that hold the model.

Each actor is a long-lived Ray worker that builds one estimator on its first video and reuses
it, calling ``reset()`` between videos (through :func:`.extract_poses.extract_one_video`), as
a local pool worker does. The driver keeps the queue, ``pose_failures.json``, the manifest and
the report; each actor writes its videos' poses atomically into the store, which every node
must mount at the same path.

Actors: one per CPU of the cluster (``cpus_per_actor`` each), or with ``gpus_per_actor`` > 0
one per that share of a GPU (0.5: two actors on each GPU); Ray sets ``CUDA_VISIBLE_DEVICES``
for each actor, so ``device="cuda"`` is the actor's own GPU. A video that fails is recorded and
the run goes on; an actor that dies fails the videos it held and a fresh actor takes its place;
an estimator that cannot be built stops the run, as it does locally.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, Callable, Optional

from ..datasets.store.layout import MANIFEST_FILE
from ..errors import RayClusterError, UsageError, one_line
from ..ray_pool import cluster_slots, limit_worker_threads, ray_session, run_on_actors
from .extract_poses_inputs import VideoJob

CALLS_PER_ACTOR = 2
"""Videos queued on each actor (one running, one waiting), as the local pool keeps 2 per worker."""


class PoseExtractionActor:
    """A Ray actor: one pose estimator, built on the first video and reused for every other."""

    def __init__(self, settings: Any) -> None:
        limit_worker_threads()
        self.settings = settings
        self.estimator: Any = None

    def extract(self, job: VideoJob) -> Any:
        """The :class:`~.extract_poses.VideoResult` of one video (never raises for a bad video;
        an estimator that cannot be built raises, and the driver stops the run)."""
        from .extract_poses import VideoResult, _build_estimator, extract_one_video

        manifest = Path(self.settings.out) / MANIFEST_FILE
        if not manifest.exists():
            return VideoResult(job.name, job.video, False, error_type="RayClusterError",
                               message=f"{manifest}: the store is not visible on Ray node {socket.gethostname()}; "
                                       "every node must mount the store at the same path")
        if self.estimator is None:
            self.estimator = _build_estimator(self.settings)
        return extract_one_video(job, self.settings, self.estimator)


def extract_on_ray(todo: list[VideoJob], settings: Any, address: str, on_result: Callable[[Any], None],
                   local_cpus: Optional[int] = None, cpus_per_actor: float = 1.0, gpus_per_actor: float = 0.0) -> int:
    """Extract ``todo`` on Ray actors; hand every :class:`~.extract_poses.VideoResult` to ``on_result``.

    Args:
        todo: the videos to extract (the driver has already skipped the finished ones).
        settings: the :class:`~.extract_poses.ExtractSettings` every actor uses.
        address: the cluster (:data:`actionfusion.ray_pool.ADDRESS_HELP`).
        on_result: called in the driver for each video, in completion order.
        local_cpus: CPUs of a ``"local"`` cluster.
        cpus_per_actor: CPUs each actor reserves.
        gpus_per_actor: GPUs (or a fraction) each actor reserves; > 0 needs ``settings.device``
            "cuda" and a cluster with GPUs.
    Returns:
        the number of actors.
    Raises:
        UsageError: ``gpus_per_actor`` > 0 with a CPU device, or a resource below 0.
        RayClusterError: the cluster cannot be reached, or lacks the CPUs or GPUs asked for.
    """
    if cpus_per_actor <= 0 or gpus_per_actor < 0:
        raise UsageError(f"cpus per actor must be > 0 and GPUs per actor >= 0 (got {cpus_per_actor}, {gpus_per_actor})")
    if gpus_per_actor > 0 and not str(settings.device).startswith("cuda"):
        raise UsageError(f"--ray-gpus-per-actor {gpus_per_actor:g} needs --device cuda (got {settings.device!r})")
    with ray_session(address, local_cpus) as ray:
        slots = cluster_slots(ray, "CPU", cpus_per_actor)
        if gpus_per_actor > 0:
            slots = min(slots, cluster_slots(ray, "GPU", gpus_per_actor))
        if slots < 1:
            what = f"{gpus_per_actor:g} GPU and " if gpus_per_actor > 0 else ""
            raise RayClusterError(f"the Ray cluster at {address!r} has no room for one pose actor ({what}"
                                  f"{cpus_per_actor:g} CPU; it holds {one_line(ray.cluster_resources(), 200)})")
        num_actors = min(slots, len(todo))
        actor_class = ray.remote(num_cpus=cpus_per_actor, num_gpus=gpus_per_actor, max_restarts=0,
                                 max_task_retries=0)(PoseExtractionActor)

        def lost(job: VideoJob, err: BaseException) -> None:
            from .extract_poses import VideoResult

            on_result(VideoResult(job.name, job.video, False, error_type=type(err).__name__,
                                  message=f"Ray worker lost ({one_line(err, 300)})"))

        run_on_actors(ray, lambda: actor_class.remote(settings), num_actors,
                      lambda actor, job: actor.extract.remote(job), todo,
                      on_result=lambda _job, result: on_result(result), on_lost=lost, per_actor=CALLS_PER_ACTOR)
        return num_actors
