"""Runs of a sweep on a Dask distributed cluster (``kftools sweep --scheduler tcp://host:8786``).

Each run is one task (its key names the run). The recordings are read where the workers are: a path they all
reach, or a dataset in object storage each worker host imports once (:mod:`.datasets`). Results come back to this
process and are written here.
A worker that dies mid-run loses only that run: the scheduler gives its task to another worker.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import UsageError, needs_extra
from .runner import Job, RunResult, run_job


def run_on_dask(scheduler: str, jobs: list[Job], finished: Callable[[RunResult], None]) -> None:
    """Submit ``jobs`` to the cluster at ``scheduler``; call ``finished`` here as each result arrives."""
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise needs_extra("kftools sweep --scheduler", "cluster") from None
    try:
        client = Client(scheduler, timeout="20s", set_as_default=False)
    except (OSError, TimeoutError) as e:
        raise UsageError(f"--scheduler {scheduler}: cannot reach the Dask scheduler: {e}") from None
    futures = []
    try:
        futures = [client.submit(run_job, j, key=f"kftools-run-{j.spec.run_id}", pure=False, retries=2)
                   for j in jobs]
        for fut in as_completed(futures, loop=client.loop):
            finished(fut.result())
    finally:
        if futures:
            client.cancel(futures)
        client.close()
