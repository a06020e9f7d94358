"""Backtests: one strategy on a recording (backtest), and a grid of them (sweep)."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Annotated

import typer

from ..errors import KftoolsError, UsageError
from ..extras import require
from .app import command
from .common import EndOpt, JournalsArg, JsonOpt, StartOpt, SymbolOpt, TypeOpt


@command(name="sweep")
def sweep_cmd(
    journals: Annotated[list[str], typer.Argument(
        help="Recordings: journals (path of the first page) or folders of journals, each backtested on its own.",
        show_default=False)],
    strategy: Annotated[str, typer.Option(
        "--strategy", help="path.py[:Class]; each run builds it with the grid's values as keyword arguments. This "
                           "executes arbitrary Python code with your permissions: only pass files you trust.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="The sweep's results folder (re-run with the same folder: "
                                                          "only the runs not yet finished).")],
    grid: Annotated[list[str] | None, typer.Option("--grid", help="NAME=V1,V2,... (repeatable): a strategy parameter's values.")] = None,
    grid_file: Annotated[Path | None, typer.Option("--grid-file", help="TOML: [grid] NAME = [values], fill_model = [...], latency = [...].")] = None,
    fill_model: Annotated[str | None, typer.Option("--fill-model", help="Fill models to sweep, comma list (touch, through, queue).")] = None,
    latency: Annotated[str | None, typer.Option("--latency", help="Latencies to sweep, comma list (0,200us,1ms).")] = None,
    response_latency: Annotated[str, typer.Option("--response-latency", help="Exchange-to-strategy latency of every run.")] = "0",
    fees: Annotated[str | None, typer.Option("--fees", help="maker=<bp>,taker=<bp>,order=<cash per order> for every run.")] = None,
    cap_volume: Annotated[bool, typer.Option("--cap-volume", help="Cap taker and quote-crossing fills by each event's volume.")] = False,
    cash: Annotated[float, typer.Option("--cash", help="Starting cash of every run.")] = 0.0,
    scheduler: Annotated[str | None, typer.Option("--scheduler", help="Run on this Dask cluster (tcp://HOST:8786) instead of local processes.")] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Local processes (default one per core).")] = None,
    chart: Annotated[bool, typer.Option("--chart/--no-chart", help="Each run also draws chart.png (report.html always).")] = True,
    force: Annotated[bool, typer.Option("--force", help="Start the folder's sweep over (its runs are deleted).")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Backtest a strategy over every combination of parameters, fill models, latencies and recordings."""
    require("backtest", "kftools sweep")  # every run's report.html
    if scheduler:
        require("cluster", "kftools sweep --scheduler")
    from ..sweep import sweep
    from ..sweep.ui import closing_lines, progress_bar

    def interrupt(signum, frame):  # SIGTERM stops a sweep as Ctrl-C does: finished runs kept, exit 130
        raise KeyboardInterrupt

    # SIGINT too, explicitly: a process started with SIGINT ignored (by a parent that ignores it, as a test
    # runner's worker may) gets no KeyboardInterrupt from Python, and the sweep went on to its next run
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)

    with progress_bar(quiet=json_out) as on_progress:
        res = sweep([str(j) for j in journals], strategy, str(out), grid=grid or [],
                    grid_file=None if grid_file is None else str(grid_file),
                    fill_models=fill_model.split(",") if fill_model else None,
                    latencies=latency.split(",") if latency else None, response_latency=response_latency,
                    fees=fees, cash=cash, cap_volume=cap_volume, scheduler=scheduler, workers=workers, chart=chart,
                    force=force, on_progress=on_progress)
    if json_out:
        typer.echo(json.dumps({"out": res.out, "ran": res.ran, "skipped": res.skipped, "failed": res.failed,
                               "runs": res.runs.to_pylist()}, default=str))
    else:
        for line in closing_lines(res):
            typer.echo(line)
    if res.failed:
        first = next(iter(res.failed.items()))
        raise KftoolsError(f"{len(res.failed):,} run(s) failed (re-run to retry them); run {first[0]}: {first[1]}")



@command(name="backtest")
def backtest_cmd(
    journals: JournalsArg,
    strategy: Annotated[str, typer.Option(
        "--strategy",
        help="The strategy, path.py[:Class]. This executes arbitrary Python code with your permissions: only pass "
             "files you trust.")],
    param: Annotated[list[str] | None, typer.Option(
        "--param", metavar="NAME=VALUE",
        help="A keyword argument of the strategy class's constructor (repeatable); numbers and true/false are "
             "converted, anything else is text.")] = None,
    fill_model: Annotated[str, typer.Option("--fill-model", help="When resting limit orders fill: touch, through, queue or prob[:n].")] = "touch",
    latency: Annotated[str, typer.Option("--latency", help="Strategy-to-exchange latency (0, 500ns, 200us, 1ms), recording time.")] = "0",
    response_latency: Annotated[str, typer.Option("--response-latency", help="Exchange-to-strategy latency of updates and fills.")] = "0",
    fees: Annotated[str | None, typer.Option("--fees", help="maker=<bp>,taker=<bp>,order=<cash per order>, e.g. maker=-0.2bp,taker=2bp.")] = None,
    cap_volume: Annotated[bool, typer.Option("--cap-volume", help="Top of book: cap fills by each print's volume.")] = False,
    cash: Annotated[float, typer.Option("--cash", help="Starting cash.")] = 0.0,
    results: Annotated[Path | None, typer.Option("--results", help="Result folder (default <stem>.backtest/ beside the recording).")] = None,
    chart: Annotated[bool, typer.Option("--chart/--no-chart", help="Draw chart.png in the result folder.")] = True,
    force: Annotated[bool, typer.Option("--force", help="Replace an earlier result folder.")] = False,
    type_: TypeOpt = None,
    symbol: SymbolOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Backtest a strategy on a recording through the simulated exchange (what replay --max --strategy decides,
    without writing an output journal) and write the result folder."""
    if chart:
        require("backtest", "kftools backtest")  # chart.png and report.html (--no-chart: neither)
    from ..backtest.report import summary_lines as backtest_lines
    from ..backtest.run import backtest
    from ..backtest.session import default_results

    folder = str(results) if results is not None else default_results(str(journals[0]))
    res = backtest([str(j) for j in journals], strategy, params=parse_params(param), fill_model=fill_model,
                   latency=latency, response_latency=response_latency, fees=fees, cash=cash, cap_volume=cap_volume,
                   results=folder, chart=chart, force=force, types=type_, symbols=symbol, start=start, end=end)
    if json_out:
        typer.echo(json.dumps(res.to_dict()))
    else:
        for line in backtest_lines(res.to_dict()):
            typer.echo(line)


def parse_params(items: list[str] | None) -> dict:
    """``--param name=value`` pairs: integers, floats and true/false converted, anything else kept as text."""
    out: dict = {}
    for item in items or ():
        key, eq, text = item.partition("=")
        key = key.strip()
        if not eq or not key.isidentifier():
            raise UsageError(f"--param {item!r}: give NAME=VALUE, NAME a Python identifier")
        if key in out:
            raise UsageError(f"--param {key}: given twice")
        value: object = text
        low = text.strip().lower()
        if low in ("true", "false"):
            value = low == "true"
        else:
            for conv in (int, float):
                try:
                    value = conv(text)
                    break
                except ValueError:
                    continue
        out[key] = value
    return out

