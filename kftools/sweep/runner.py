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

from ..errors import KftoolsError, StrategyError
from .grid import RunSpec


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


@dataclass(slots=True)
class RunResult:
    """A finished run: its summary and files (name -> bytes), or the one-line error that stopped it."""

    run_id: str
    summary: dict | None
    files: dict[str, bytes] = field(default_factory=dict)
    error: str | None = None


def strategy_class(path: str, class_name: str = "") -> type:
    """The strategy class in ``path`` (the named one, or the file's one strategy class)."""
    from ..replay import load_strategy

    spec = f"{path}:{class_name}" if class_name else path
    inst = load_strategy(spec)  # finds and checks the class the way replay --strategy does
    return type(inst)


def make_strategy(cls: type, params: dict[str, Any], file: str) -> object:
    """An instance of ``cls`` with ``params`` as keyword arguments to its constructor."""
    try:
        return cls(**params)
    except TypeError as e:
        raise StrategyError(f"{file}: {cls.__name__}({_kw(params)}) failed: {e}") from None
    except Exception as e:  # noqa: BLE001 - user code: one line that says where
        raise StrategyError(f"{file}: {cls.__name__}({_kw(params)}) failed: {type(e).__name__}: {e}") from None


def _kw(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in params.items())


def backtest_folder(job: Job, recording: str, scratch: str) -> tuple[dict, str]:
    """Backtest ``job`` on ``recording``; returns (summary, result folder) inside ``scratch``."""
    from ..backtest.options import exchange_config
    from ..replay import Replay

    src = os.path.join(scratch, job.strategy_file)
    with open(src, "w") as fh:
        fh.write(job.strategy_source)
    cls = strategy_class(src, job.strategy_class)
    strategy = make_strategy(cls, job.spec.param_dict, job.strategy_file)
    exchange = exchange_config(job.spec.fill_model, job.spec.latency_ns, job.response_latency_ns, job.fees,
                               job.cap_volume, job.cash)
    folder = os.path.join(scratch, "result")
    rep = Replay(recording, os.path.join(scratch, "out.dat"), speed=None, strategy=strategy, exchange=exchange,
                 results=folder, chart=False, force=True)
    st = rep.run()
    if st.damage is not None:
        raise KftoolsError(f"{recording}: {st.damage}")
    assert st.backtest is not None
    summary = dict(st.backtest.summary)
    summary["strategy"] = f"{cls.__name__} ({job.strategy_file})"
    return summary, folder


def run_job(job: Job) -> RunResult:
    """Run one backtest; a KftoolsError (bad parameter, strategy bug) becomes the result's error, not a raise."""
    import json

    from ..backtest.chart import draw_folder
    from ..backtest.report import write_report

    run_id = job.spec.run_id
    scratch = tempfile.mkdtemp(prefix=f"kftools-run-{run_id}-")
    try:
        recording = job.spec.recording  # a path every worker reads (a shared one on a cluster)
        summary, folder = backtest_folder(job, recording, scratch)
        with open(os.path.join(folder, "summary.json"), "w") as fh:
            json.dump(summary, fh, indent=2, sort_keys=True)
            fh.write("\n")
        if job.chart:
            draw_folder(folder, recordings=[recording])
        write_report(folder, recordings=[recording], plotlyjs=job.plotlyjs)
        files = {}
        for name in sorted(os.listdir(folder)):
            with open(os.path.join(folder, name), "rb") as fh:
                files[name] = fh.read()
        return RunResult(run_id, summary, files)
    except KftoolsError as e:
        return RunResult(run_id, None, error=str(e))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
