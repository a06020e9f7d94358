"""The sweep's default executor: a pool of local processes, one per core."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

from .runner import Job, RunResult, run_job


def run_local(jobs: list[Job], finished: Callable[[RunResult], None], workers: int | None = None) -> None:
    """Run ``jobs`` on ``workers`` processes (default: the cores this process may use), calling ``finished``
    in this thread as each one ends. Interrupted (KeyboardInterrupt), the worker processes are stopped at once
    (their runs are lost, the next sweep does them); runs that finished were already handed to ``finished``."""
    n = workers or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
    n = max(1, min(n, len(jobs)))
    if n == 1:  # one process: no pool to start, the same code path as a worker's
        for j in jobs:
            finished(run_job(j))
        return
    # forkserver: workers start from a clean process that imported kftools once (no threads forked)
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["kftools.sweep.warm"])
    pool = ProcessPoolExecutor(max_workers=n, mp_context=ctx)
    pending: set[Future] = set()
    try:
        it = iter(jobs)
        for j in it:  # keep at most 2 runs a worker queued, so an interrupt drops little work
            pending.add(pool.submit(run_job, j))
            if len(pending) >= 2 * n:
                break
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                finished(f.result())
                nxt = next(it, None)
                if nxt is not None:
                    pending.add(pool.submit(run_job, nxt))
    except BaseException:
        # a run in flight may take long (or wait on something): stop the workers rather than wait for them
        for p in list(getattr(pool, "_processes", {}).values()):
            p.terminate()
        raise
    finally:
        for f in pending:
            f.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
