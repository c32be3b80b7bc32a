"""The loader-versus-compute measurement the training-throughput benchmarks share.

``measure_loader_share(loader, step, steps, clips_of)`` runs ``steps`` training steps fed by the
loader (end to end, timing how long each ``next(loader)`` waits), then the same number of steps
on the first batch held in memory (compute only), and returns clips/s of both, their ratio and
the share of the end-to-end time spent waiting for data.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, Iterable


def measure_loader_share(loader: Iterable[Any], step: Callable[[Any], None], steps: int,
                         clips_of: Callable[[Any], int]) -> Dict[str, Any]:
    """{"clips_per_s", "compute_only_clips_per_s", "ratio_end_to_end_over_compute_only",
    "data_wait_share", "steps", "first_batch"} of ``step`` fed by ``loader`` (restarted when exhausted)."""
    iterator = iter(loader)
    first = next(iterator)
    step(first)  # warm-up (and loader workers started)
    wait, clips = 0.0, 0
    start = time.perf_counter()
    for _ in range(steps):
        t0 = time.perf_counter()
        try:
            batch = next(iterator)
        except StopIteration:
            iterator = iter(loader)
            batch = next(iterator)
        wait += time.perf_counter() - t0
        step(batch)
        clips += clips_of(batch)
    end_to_end = time.perf_counter() - start
    del iterator

    cached = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step(first)
        cached.append(time.perf_counter() - t0)
    compute_only = clips_of(first) * steps / sum(cached)
    rate = clips / end_to_end
    return {"clips_per_s": round(rate, 2), "compute_only_clips_per_s": round(compute_only, 2),
            "ratio_end_to_end_over_compute_only": round(rate / compute_only, 3),
            "data_wait_share": round(wait / end_to_end, 4), "steps": steps, "first_batch": first}
