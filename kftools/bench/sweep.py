"""Sweep speed: 16 runs of ``examples/strategy_example.py`` one after another, on the local pool, and on Dask.

One bursty recording (bench/backtest.py's ``record``); the grid is 2 fill models x 8 latencies (the example
strategy takes no constructor parameters). Each case is a whole ``kftools.sweep`` into a fresh folder (every
run's backtest, chart.png and report.html, then runs.parquet and the sweep's report), in the same run:

- ``serial``: ``workers=1``: the runs one after another in this process (after a one-run warm-up sweep that is
  not counted: imports, page cache);
- ``local``: ``workers=2``, two local processes forked for the sweep (their start and first runs included),
  from the pool's fork server as the ``local_first`` sweep left it (as ``serial`` runs in a process its warm-up left
  warm); ``local_speedup`` = serial / local;
- ``local_first``: the same, the first time in this process: the fork server's own start (a fresh
  interpreter importing and warming up what a run uses, about a second of CPU, once per process: what one
  ``kftools sweep`` command pays) included; ``local_first_speedup`` = serial / local_first;
- ``dask``: a Dask cluster on this machine with one worker process (scheduler and worker started here, a
  warm-up run first); ``dask_overhead_per_run_s`` = (dask - serial) / runs: what sending each run to a Dask
  worker and its files back adds, to set against a 1-second backtest (``run_s`` is one run's length here).
"""

from __future__ import annotations

import os
import shutil
import time

from . import scratch_dir

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LATENCIES: list[str | int] = ["0", "50us", "100us", "200us", "500us", "1ms", "2ms", "5ms"]
FILL_MODELS = ["touch", "queue"]


def run(frames: int = 100_000, dask: bool = True) -> dict:
    from kftools.sweep.core import sweep

    from .backtest import record

    example = os.path.join(ROOT, "examples", "strategy_example.py")
    d = scratch_dir()
    runs = len(LATENCIES) * len(FILL_MODELS)
    res: dict = {"sweep.recording_frames": frames, "sweep.runs": runs,
                 "sweep.cores": len(os.sched_getaffinity(0)), "sweep.load_before": round(os.getloadavg()[0], 2)}

    def timed(name: str, **kw) -> float:
        t0 = time.perf_counter()
        out = sweep(src, example, os.path.join(d, name), fill_models=FILL_MODELS, latencies=LATENCIES, **kw)
        took = time.perf_counter() - t0
        assert not out.failed and len(out.runs) == runs, out.failed
        return took

    try:
        src = os.path.join(d, "rec.dat")
        record(src, frames)
        sweep(src, example, os.path.join(d, "warm"), latencies=LATENCIES[:1], workers=1)
        serial = timed("serial", workers=1)
        res["sweep.serial_s"] = round(serial, 3)
        res["sweep.run_s"] = round(serial / runs, 3)
        first = timed("local-first", workers=2)
        res["sweep.local_first_s"] = round(first, 3)
        res["sweep.local_first_speedup"] = round(serial / first, 3)
        local = timed("local", workers=2)
        res["sweep.local_2_processes_s"] = round(local, 3)
        res["sweep.local_speedup"] = round(serial / local, 3)
        if dask:
            try:
                from distributed import LocalCluster
            except ImportError:
                res["sweep.dask"] = "not installed (pip install 'kftools[cluster]')"
            else:
                with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                                  host="127.0.0.1") as cluster:
                    addr = cluster.scheduler_address
                    sweep(src, example, os.path.join(d, "dask-warm"), latencies=LATENCIES[:1], scheduler=addr)
                    took = timed("dask", scheduler=addr)
                overhead = (took - serial) / runs
                res["sweep.dask_1_worker_s"] = round(took, 3)
                res["sweep.dask_overhead_per_run_s"] = round(overhead, 4)
                res["sweep.dask_overhead_vs_1s_backtest"] = round(overhead / 1.0, 4)
        res["sweep.load_after"] = round(os.getloadavg()[0], 2)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return res
