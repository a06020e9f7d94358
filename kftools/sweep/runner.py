"""One run of a sweep, as a worker executes it: a plain function of picklable values.

The worker backtests in a scratch folder of its own and returns the result folder's files as bytes, so the
results come back to the machine that runs the sweep whether the worker is a local process or a Dask worker
on another host. Nothing here reads the sweep's folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Any

from ..errors import KftoolsError
from .grid import RunSpec
from .trace import mark


@dataclass(frozen=True, slots=True)
class Job:
    """What a worker needs: the run, and the strategy as source text (workers need not see the file)."""

    spec: RunSpec
    strategy_source: str
    strategy_file: str  # the file's base name (error messages and the module name say it)
    strategy_class: str  # "" when the file holds one strategy class
    response_latency_ns: int = 0
    fees: str | None = None
    cash: float = 0.0
    cap_volume: bool = False
    plotlyjs: str = "inline"  # how each run's report.html gets plotly.js (see kftools.backtest.report)
    chart: bool = True  # also chart.png (report.html is always written)
    dataset_key: str | None = None  # the recording is a dataset in object storage, as it was when the sweep began


@dataclass(slots=True)
class RunResult:
    """A finished run: its summary and files (name -> bytes), or the one-line error that stopped it."""

    run_id: str
    summary: dict | None
    files: dict[str, bytes] = field(default_factory=dict)
    error: str | None = None


def check_strategy(path: str, class_name: str, params: dict[str, Any]) -> str:
    """Load ``path[:class_name]`` and build it with ``params`` once, here (a broken file or a parameter the
    class does not take fails before any run starts); returns the class's name."""
    from ..replay.strategy import load_strategy

    return type(load_strategy(f"{path}:{class_name}" if class_name else path, params or None)).__name__


def backtest_folder(job: Job, recording: str | list[str], scratch: str) -> tuple[dict, str]:
    """``kftools.backtest`` of ``job`` on ``recording`` (several journals: their merged timeline); returns (summary, result folder) inside ``scratch``."""
    from ..backtest.run import backtest

    src = os.path.join(scratch, job.strategy_file)  # the same base name: the same strategy name in the summary
    with open(src, "w") as fh:
        fh.write(job.strategy_source)
    folder = os.path.join(scratch, "result")
    res = backtest(recording, f"{src}:{job.strategy_class}", params=job.spec.param_dict or None,
                   fill_model=job.spec.fill_model, latency=job.spec.latency_ns, response_latency=job.response_latency_ns,
                   fees=job.fees, cash=job.cash, cap_volume=job.cap_volume, results=folder, chart=False)
    return res.summary, folder


def run_job(job: Job) -> RunResult:
    """Run one backtest; a KftoolsError (bad parameter, strategy bug) becomes the result's error, not a raise."""
    from ..backtest.chart import draw_folder
    from ..backtest.report import write_report

    run_id = job.spec.run_id
    mark("run.start", run=run_id)
    scratch = tempfile.mkdtemp(prefix=f"kftools-run-{run_id}-")
    try:
        recordings = [job.spec.recording]  # a path every worker reads (a shared one on a cluster)
        if job.dataset_key is not None:  # or a dataset in object storage: its journals, this host's copy of them
            from .datasets import local_recordings

            recordings = local_recordings(job.spec.recording, job.dataset_key)
        summary, folder = backtest_folder(job, recordings[0] if len(recordings) == 1 else recordings, scratch)
        mark("run.backtest", run=run_id)
        if job.chart:
            draw_folder(folder, recordings=recordings)
            mark("run.chart", run=run_id)
        write_report(folder, recordings=recordings, plotlyjs=job.plotlyjs)
        mark("run.report", run=run_id)
        files = {}
        for name in sorted(os.listdir(folder)):
            with open(os.path.join(folder, name), "rb") as fh:
                files[name] = fh.read()
        mark("run.end", run=run_id)
        return RunResult(run_id, summary, files)
    except KftoolsError as e:
        return RunResult(run_id, None, error=str(e))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
