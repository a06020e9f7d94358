"""Sweep speed: 16 runs of ``examples/strategy_example.py`` one after another, on the local pool, and on Dask.

One bursty recording (bench/backtest.py's ``record``); the grid is 2 fill models x 8 latencies (the example
strategy takes no constructor parameters). In the same run:

- ``serial``: the 16 runs one after another in this process (the same ``run_job`` a worker calls: backtest,
  chart.png, report.html), after one warm-up run that is not counted (imports);
- ``local``: ``kftools.sweep`` on 2 local processes (pool start, results written, runs.parquet and the sweep's
  report included); ``speedup`` = serial / local;
- ``dask``: the same sweep on a Dask cluster on this machine with one worker process (a scheduler and a worker
  started here); ``overhead_per_run_s`` = (dask - serial) / runs: what Dask adds to a run, to set against a
  1-second backtest (``backtest_s`` is the measured length of one run here).
"""

from __future__ import annotations

import os
import shutil
import time

from . import scratch_dir

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LATENCIES = ["0", "50us", "100us", "200us", "500us", "1ms", "2ms", "5ms"]
FILL_MODELS = ["touch", "queue"]


def run(frames: int = 100_000, runs: int = 16, dask: bool = True) -> dict:
    from kftools.sweep.core import sweep
    from kftools.sweep.grid import expand
    from kftools.sweep.runner import Job, run_job

    from .backtest import record

    example = os.path.join(ROOT, "examples", "strategy_example.py")
    d = scratch_dir()
    res: dict = {"sweep.recording_frames": frames, "sweep.runs": runs, "sweep.cores": len(os.sched_getaffinity(0))}
    try:
        src = os.path.join(d, "rec.dat")
        record(src, frames)
        lats: list[str | int] = list(LATENCIES)
        specs = expand([src], {}, FILL_MODELS, lats)[:runs]
        with open(example) as fh:
            source = fh.read()
        jobs = [Job(s, source, "strategy_example.py", "MeanReversion") for s in specs]
        run_job(jobs[0])  # warm-up: imports, page cache
        t0 = time.perf_counter()
        for j in jobs:
            r = run_job(j)
            assert r.error is None, r.error
        serial = time.perf_counter() - t0
        res["sweep.serial_s"] = round(serial, 3)
        res["sweep.backtest_s"] = round(serial / len(jobs), 3)
        t0 = time.perf_counter()
        out = sweep(src, example, os.path.join(d, "local"), workers=2, fill_models=FILL_MODELS, latencies=lats)
        local = time.perf_counter() - t0
        assert not out.failed and len(out.runs) >= runs
        res["sweep.local_2_processes_s"] = round(local, 3)
        res["sweep.local_speedup"] = round(serial / local * len(out.runs) / len(jobs), 3)
        if dask:
            res.update(_dask(d, src, example, lats, serial / len(jobs), len(out.runs)))
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return res


def _dask(d: str, src: str, example: str, lats: list[str | int], per_run: float, n: int) -> dict:
    try:
        from distributed import LocalCluster
    except ImportError:
        return {"sweep.dask": "not installed (pip install 'kftools[cluster]')"}
    from kftools.sweep.core import sweep

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                      host="127.0.0.1") as cluster:
        sweep(src, example, os.path.join(d, "dask-warm"), scheduler=cluster.scheduler_address,
              fill_models=FILL_MODELS[:1], latencies=lats[:1])  # the worker's imports
        t0 = time.perf_counter()
        out = sweep(src, example, os.path.join(d, "dask"), scheduler=cluster.scheduler_address,
                    fill_models=FILL_MODELS, latencies=lats)
        took = time.perf_counter() - t0
    assert not out.failed
    overhead = took / n - per_run
    return {"sweep.dask_1_worker_s": round(took, 3), "sweep.dask_overhead_per_run_s": round(overhead, 4),
            "sweep.dask_overhead_vs_1s_backtest": round(overhead / 1.0, 4)}
