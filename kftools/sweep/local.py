"""The sweep's default executor: a pool of local processes, one per core."""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing.sharedctypes import Synchronized

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
    (their runs are lost, the next sweep does them); runs that finished were already handed to ``finished``.

    While the pool's fork server starts (the first pool of a process: about a second of CPU), this process
    runs jobs itself, so that no core idles; once the workers run, they do every job left, each taking the next
    one when it is free (a shared counter), so none waits behind another's queue at the end."""
    n = pool_size(workers, len(jobs))
    if n == 1:  # one process: no pool to start, the same code path as a worker's
        for j in jobs:
            finished(run_job(j))
        return
    ctx = _context()
    counter = ctx.Value("q", 0)  # the index of the next job nobody took yet
    # starting a worker waits for the fork server to be ready (its imports): a thread waits, this one works.
    # But only until then: a process running jobs next to its pool's workers ran them 5-15% slower than the
    # workers did (KFTOOLS_SWEEP_TRACE), so when the server is known ready, this one only hands out results
    helping = not _Pool.server_ready
    pool = _Pool(ctx, n, jobs, counter)
    try:
        while helping and not pool.started.is_set():
            i = _take(counter)
            if i >= len(jobs):
                break
            finished(run_job(jobs[i]))
        pool.collect(finished, block=True)
    except BaseException:
        pool.stop()  # a run in flight may take long (or wait on something): stop the workers, not wait
        raise
    finally:
        pool.close()


class _Pool:
    """``size`` worker processes that each take the next job from ``counter`` as they get free; started by a
    thread, since starting the first one waits for the fork server."""

    #: a pool of this process started: the fork server is running and warm (multiprocessing keeps it)
    server_ready = False

    def __init__(self, ctx: multiprocessing.context.ForkServerContext, size: int, jobs: list[Job],
                 counter: Synchronized) -> None:
        self.executor: ProcessPoolExecutor | None = None
        self.pending: set[Future] = set()
        self.error: BaseException | None = None
        self.size = size
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._start, args=(ctx, jobs, counter), name="kftools-sweep-pool",
                                       daemon=True)
        self.thread.start()

    def _start(self, ctx: multiprocessing.context.ForkServerContext, jobs: list[Job], counter: Synchronized) -> None:
        try:
            mark("pool.create", workers=self.size)
            self.executor = ProcessPoolExecutor(max_workers=self.size, mp_context=ctx, initializer=_attach,
                                                initargs=(jobs, counter))
            # each task takes its job when it starts: two queued per process keep it busy while this process
            # finishes a job of its own before it hands out more; once jobs run out, tasks cost nothing
            self.pending = {self.executor.submit(_run_next) for _ in range(3 * self.size)}
            _Pool.server_ready = True
            mark("pool.started")
        except BaseException as e:  # handed to the sweep's thread
            self.error = e
        finally:
            self.started.set()

    def collect(self, finished: Callable[[RunResult], None], block: bool) -> None:
        """Hand the pool's finished runs to ``finished``; ``block``: until the pool has no job left."""
        if not self.started.is_set() and not block:
            return
        self.started.wait()
        if self.error is not None:
            raise self.error
        assert self.executor is not None
        while self.pending:
            done, self.pending = wait(self.pending, timeout=None if block else 0, return_when=FIRST_COMPLETED)
            for f in done:
                res = f.result()
                if res is not None:  # a job ran: there may be more
                    mark("pool.result")
                    finished(res)
                    self.pending.add(self.executor.submit(_run_next))
            if not block:
                return

    def stop(self) -> None:
        self.started.wait()
        for p in list((getattr(self.executor, "_processes", None) or {}).values()):
            p.terminate()

    def close(self) -> None:
        self.started.wait()
        for f in self.pending:
            f.cancel()
        if self.executor is not None:
            mark("pool.shutdown")
            self.executor.shutdown(wait=True, cancel_futures=True)
            mark("pool.down")


# -- in a pool's worker process ----------------------------------------------------------------------------
_jobs: list[Job] = []
_counter: Synchronized | None = None


def _attach(jobs: list[Job], counter: Synchronized) -> None:
    """The pool's initializer: the sweep's jobs and the shared counter, once per worker process."""
    global _jobs, _counter
    _jobs, _counter = jobs, counter


def _take(counter: Synchronized) -> int:
    with counter.get_lock():
        i = counter.value
        counter.value = i + 1
    return i


def _run_next() -> RunResult | None:
    """A pool task: run the next job nobody took yet; None when none is left."""
    assert _counter is not None
    i = _take(_counter)
    return run_job(_jobs[i]) if i < len(_jobs) else None
