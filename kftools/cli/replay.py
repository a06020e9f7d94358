"""``kftools replay``: a recording played back into an output journal, paced, with an optional backtest."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..errors import CorruptJournal, UsageError
from ..extras import require
from ..journal.format import WriterState
from .app import command
from .common import (
    EndOpt,
    JournalsArg,
    JsonOpt,
    NameOpt,
    SchemaOpt,
    StartOpt,
    SymbolOpt,
    TypeOpt,
    WaitOpt,
    one_file,
    registry_for,
    stop_on_signals,
)
from .exits import Reported, warn


@command(name="replay")
def replay_cmd(
    journals: JournalsArg,
    out: Annotated[Path | None, typer.Option("-o", "--out", help="Output journal (default <stem>.replay.dat beside the input).")] = None,
    speed: Annotated[float | None, typer.Option("--speed", help="Playback speed factor (1 original, 10 ten times faster; default 1).")] = None,
    max_speed: Annotated[bool, typer.Option("--max", help="Emit as fast as possible, no pacing.")] = False,
    loop: Annotated[int, typer.Option("--loop", help="Play the selection N times (0: until stopped).")] = 1,
    follow: Annotated[bool, typer.Option("--follow", help="Then keep relaying frames as they are committed.")] = False,
    paused: Annotated[bool, typer.Option("--paused", help="Start paused (terminal: space resumes, right arrow steps).")] = False,
    strategy: Annotated[str | None, typer.Option(
        "--strategy",
        help="Run path.py[:Class] in-process on the replayed stream. This executes arbitrary Python code with your "
             "permissions: only pass files you trust.")] = None,
    orders: Annotated[Path | None, typer.Option("--orders", help="Orders journal of --strategy (default <stem>.orders.dat).")] = None,
    order_journal: Annotated[list[Path] | None, typer.Option(
        "--order-journal",
        help="Backtest a strategy running in its own process: follow the Order/CancelRequest/Ack frames it writes "
             "into this journal and answer in the output (repeat for several strategies).")] = None,
    lockstep: Annotated[bool, typer.Option(
        "--lockstep/--free-running",
        help="--order-journal: wait for the strategies' Ack frames so results are deterministic (lockstep), or "
             "never wait (free-running, as in production).")] = True,
    fill_model: Annotated[str, typer.Option("--fill-model", help="Backtest: when resting limit orders fill: touch, through or queue.")] = "touch",
    latency: Annotated[str, typer.Option("--latency", help="Backtest: strategy-to-exchange latency (0, 500ns, 200us, 1ms), recording time.")] = "0",
    response_latency: Annotated[str, typer.Option("--response-latency", help="Backtest: exchange-to-strategy latency of updates and fills.")] = "0",
    fees: Annotated[str | None, typer.Option("--fees", help="Backtest: maker=<bp>,taker=<bp>,order=<cash per order>, e.g. maker=-0.2bp,taker=2bp.")] = None,
    cap_volume: Annotated[bool, typer.Option("--cap-volume", help="Backtest: cap taker and quote-crossing fills by each event's volume.")] = False,
    cash: Annotated[float, typer.Option("--cash", help="Backtest: starting cash.")] = 0.0,
    results: Annotated[Path | None, typer.Option("--results", help="Backtest result folder (default <stem>.backtest/ beside the output).")] = None,
    chart: Annotated[bool, typer.Option("--chart/--no-chart", help="Backtest: draw chart.png and report.html in the result folder.")] = True,
    force: Annotated[bool, typer.Option("--force", help="Replace existing output journals.")] = False,
    type_: TypeOpt = None,
    symbol: SymbolOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    json_out: JsonOpt = False,
    wait: WaitOpt = "busy",
    name: NameOpt = None,
    schema: SchemaOpt = None,
    fmt: Annotated[str, typer.Option(
        "--format", help="Output format: kftools, or a Kungfu journal a Kungfu strategy reads (kungfu-2.4, "
                         "kungfu-2.x-57, kungfu-2.x-65, kungfu-wire-v1; needs --kf-home and --location).")] = "kftools",
    kf_home: Annotated[Path | None, typer.Option("--kf-home", help="--format kungfu-*: the KF_HOME to write into.")] = None,
    location: Annotated[str | None, typer.Option(
        "--location", help="--format kungfu-*: the Kungfu location written, category/group/name/mode "
                           "(md/sim/feed/replay).")] = None,
) -> None:
    """Play a recording back into an output journal as if live, paced, with an optional in-process strategy.

    Several journals (or a folder) play as one timeline merged by gen_time into the one output (-o needed).
    """
    stop = stop_on_signals()  # before the imports: a signal during them still stops cleanly
    backtest = bool(strategy or order_journal)
    if backtest and chart:
        require("backtest", "kftools replay --strategy")  # its chart.png and report.html
    from ..backtest.options import exchange_config
    from ..replay import (
        BacktestOptions,
        Controller,
        FilterOptions,
        OutputOptions,
        PacingOptions,
        Replay,
        ReplayOptions,
    )

    if paused and not sys.stdin.isatty():
        raise UsageError("--paused needs a terminal on stdin (space resumes, right arrow steps)")
    if max_speed and speed is not None:
        raise UsageError("--speed and --max cannot be combined (--max emits as fast as possible)")
    options = ReplayOptions(
        pacing=PacingOptions(speed=None if max_speed else (1.0 if speed is None else speed), loops=loop,
                             follow=follow, wait=wait, name=name),
        output=OutputOptions(out=None if out is None else str(out), force=force, format=fmt, kf_home=kf_home,
                             location=location),
        filters=FilterOptions(types=type_, symbols=symbol, start=start, end=end),
        backtest=BacktestOptions(
            strategy=strategy, orders=None if orders is None else str(orders),
            exchange=exchange_config(fill_model, latency, response_latency, fees, cap_volume, cash) if backtest else None,
            results=None if results is None else str(results), chart=chart,
            order_journals=[str(p) for p in order_journal or ()], lockstep=lockstep),
    )
    ctl = Controller(paused=paused)
    rep = Replay([str(j) for j in journals] if not one_file(journals) else str(journals[0]), options=options,
                 registry=registry_for(schema), controller=ctl, stop=stop, on_long_wait=warn)
    _play(rep, ctl, json_out)


def _play(rep, ctl, json_out: bool) -> None:
    """Run the replay with its keys and progress display (on a terminal), then its summary and exit."""
    from ..backtest.report import summary_lines as backtest_lines
    from ..replay.ui import KeyReader, Progress, summary_lines

    st = rep.stats
    if st.writer_state == WriterState.CRASHED:
        warn(f"{rep.path}: its writer (pid {st.writer_pid}) crashed; replaying the frames it committed")
    elif st.writer_state == WriterState.ALIVE and not rep.follow:
        warn(f"{rep.path}: still being written; replaying the frames committed now (--follow to keep relaying)")
    keys = KeyReader(ctl).start() if sys.stdin.isatty() else None
    show = sys.stderr.isatty() and not json_out
    try:
        if show:
            with Progress(rep):
                st = rep.run()
        else:
            st = rep.run()
    finally:
        if keys is not None:
            keys.stop()
    if json_out:
        typer.echo(json.dumps(st.to_dict()))
    else:
        for line in summary_lines(st):
            typer.echo(line)
        if st.backtest is not None:
            for line in backtest_lines(st.backtest.to_dict()):
                typer.echo(line)
    if st.damage is not None:
        warn(f"{st.damage}; replayed the {st.frames:,} valid frame(s) before it")
        raise Reported(CorruptJournal(str(st.damage)))
    if st.interrupted and not rep.follow:
        raise KeyboardInterrupt  # stopped before the end (a follow ends only so: it exits 0)
