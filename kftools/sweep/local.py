"""The sweep's default executor: a pool of local processes, one per core."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

from .runner import Job, RunResult, run_job
from .trace import mark

#: what the fork server imports (and draws once) before it forks the first worker
WARM = "kftools.sweep.warm"


def pool_size(workers: int | None, runs: int) -> int:
    """How many processes run ``runs`` runs: ``workers``, by default the cores this process may use."""
    n = workers or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
    return max(1, min(n, runs))


def _context() -> multiprocessing.context.ForkServerContext:
    # forkserver: workers are forked from a clean process (no threads forked) that imported and warmed up
    # once what a run uses (kftools.sweep.warm), so no worker pays for it again
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([WARM])
    return ctx


def start_server() -> None:
    """Start the pool's fork server now, in the background: its imports (about a second of CPU) then overlap
    the sweep's own preparation instead of delaying the first run. Once started it serves every later pool
    of this process (multiprocessing keeps one fork server per process)."""
    from multiprocessing import forkserver

    _context()
    forkserver.ensure_running()


def run_local(jobs: list[Job], finished: Callable[[RunResult], None], workers: int | None = None) -> None:
    """Run ``jobs`` on ``workers`` processes (default: the cores this process may use), calling ``finished``
    in this thread as each one ends. Interrupted (KeyboardInterrupt), the worker processes are stopped at once
    (their runs are lost, the next sweep does them); runs that finished were already handed to ``finished``."""
    n = pool_size(workers, len(jobs))
    if n == 1:  # one process: no pool to start, the same code path as a worker's
        for j in jobs:
            finished(run_job(j))
        return
    ctx = _context()
    mark("pool.create", workers=n)
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
                mark("pool.result")
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
        mark("pool.shutdown")
        pool.shutdown(wait=True, cancel_futures=True)
        mark("pool.down")
