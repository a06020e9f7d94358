"""Reading commands: info, cat, verify, tail."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..errors import CorruptJournal, KftoolsError, UsageError
from ..journal.merge import DEFAULT_HOLD
from .app import command
from .common import (
    EndOpt,
    HoldOpt,
    JournalsArg,
    JsonOpt,
    NameOpt,
    SchemaOpt,
    StartOpt,
    SymbolOpt,
    TypeOpt,
    TzOpt,
    WaitOpt,
    cat_done,
    check_follow_options,
    frames_progress_bar,
    one_file,
    registry_for,
    stop_on_signals,
)
from .exits import ExitCode, Reported, exit_code, warn


def _summary(kind: str, journals: list[Path], json_out: bool, schema) -> None:
    """info / verify of several journals: a line per journal, a total, the exit of the worst."""
    from ..many import summarize

    summary = summarize(kind, [str(j) for j in journals], registry_for(schema))

    def outcome(row) -> KftoolsError | None:
        if row.error is not None:
            return row.error
        return CorruptJournal(f"{row.path}: damaged") if row.damaged else None

    def status_of(row) -> int:
        o = outcome(row)
        return ExitCode.OK if o is None else exit_code(o)

    if json_out:
        typer.echo(json.dumps(summary.to_dict(status_of)))
    else:
        for line in summary.lines():
            typer.echo(line)
    for row in summary.rows:  # like ls: the others are listed, each one that could not be read is an error line
        if row.error is not None:
            typer.echo(f"kftools: error: {row.error}", err=True)
    worst = max((o for o in map(outcome, summary.rows) if o is not None), key=exit_code, default=None)
    if worst is not None:
        raise Reported(worst)


@command(name="info")
def info_cmd(
    journals: JournalsArg,
    count: Annotated[bool, typer.Option("--count", help="Walk every frame instead of taking sealed pages from their summaries (slower on a big journal; the count verify makes).")] = False,
    json_out: JsonOpt = False,
    schema: SchemaOpt = None,
) -> None:
    """Pages, fill, frames by type, time range, mean rate, writer state and health (several: a line each and a total)."""
    from ..info import journal_info

    if not one_file(journals):
        return _summary("info", journals, json_out, schema)
    journal = journals[0]
    info = journal_info(str(journal), registry_for(schema), count=count)
    if json_out:
        typer.echo(json.dumps(info.to_dict()))
    else:
        from rich.console import Console
        from rich.table import Table

        t = Table(show_header=False, box=None, pad_edge=False)
        for k, v in info.lines():
            t.add_row(f"[bold]{k}[/]", v)
        Console().print(t)
    if info.damage:
        warn(f"{info.damage}; counted the valid frames before it")
        raise Reported(CorruptJournal(str(info.damage)))


@command(name="cat")
def cat_cmd(
    journals: JournalsArg,
    type_: TypeOpt = None,
    symbol: SymbolOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    lines: Annotated[int | None, typer.Option("-n", "--lines", help="Only the last N frames (as tail -n).")] = None,
    fmt: Annotated[str, typer.Option("--format", "-F", help="text, jsonl or csv.")] = "text",
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing frames as they are committed.")] = False,
    wait: WaitOpt = "backoff",
    hold: HoldOpt = DEFAULT_HOLD,
    tz: TzOpt = "UTC",
    name: NameOpt = None,
    schema: SchemaOpt = None,
) -> None:
    """Print frames as text, JSON lines or CSV (-f to follow, as tail -F does); several journals merged by time."""
    stop = stop_on_signals() if follow else None  # before the imports: a signal during them still stops cleanly
    from ..cat import cat
    from ..render import FORMATS
    from ..timeparse import resolve_tz

    if fmt not in FORMATS:
        raise UsageError(f"unknown --format {fmt!r} (text, jsonl, csv)")
    check_follow_options(lines, hold)
    with frames_progress_bar("cat", None, draw=not sys.stdout.isatty()) as progress:
        res = cat(
            [str(j) for j in journals], registry=registry_for(schema), fmt=fmt, types=type_, symbols=symbol,
            start=start, end=end, last=lines, follow=follow, wait=wait, hold=hold, stop=stop, tz=resolve_tz(tz),
            on_wait=lambda msg: warn(f"{msg}; waiting for it"), on_skip=lambda why: warn(f"skipped {why}"), name=name,
            progress=progress,
        )
    cat_done(res)



@command(name="verify")
def verify_cmd(
    journals: JournalsArg,
    quick: Annotated[bool, typer.Option("--quick", help="Trust sealed pages whose summary still holds (walked clean when sealed, file unchanged since): check the rest in full.")] = False,
    json_out: JsonOpt = False,
    schema: SchemaOpt = None,
) -> None:
    """Validate every page and frame; exit 0 when clean, 3 when damaged (several: a line each, the worst exit)."""
    from ..journal.recovery import verify
    from ..timeparse import format_time

    if not one_file(journals):
        return _summary("verify", journals, json_out, schema)
    journal = journals[0]
    label = "verify --quick" if quick else "verify: every frame (--quick trusts sealed pages)"
    with frames_progress_bar(label, None) as progress:
        rep = verify(str(journal), registry_for(schema), quick=quick, progress=progress)
    if json_out:
        typer.echo(json.dumps(rep.to_dict()))
    else:
        for p in rep.pages:
            typer.echo(f"page {p.index}  {p.path}  cursor {p.cursor:,}/{p.capacity:,}  frames {p.frames:,}  {p.flags}")
        span = ""
        if rep.first_time is not None and rep.last_time is not None:
            span = f", {format_time(rep.first_time)} .. {format_time(rep.last_time)}"
        typer.echo(f"{len(rep.pages)} page(s), {rep.frames:,} valid frame(s){span}")
        if rep.clean:
            typer.echo("clean")
    if not rep.clean:
        raise CorruptJournal(f"damaged: first invalid frame at {rep.damage}")



# -- tail command (issue 5) --------------------------------------------------------
@command(name="tail")
def tail_cmd(
    journals: JournalsArg,
    type_: TypeOpt = None,
    symbol: SymbolOpt = None,
    plain: Annotated[bool, typer.Option("--plain", help="Print lines (as cat --follow) instead of the live view.")] = False,
    lines: Annotated[int, typer.Option("-n", "--lines", help="--plain: start with the last N frames.")] = 10,
    refresh: Annotated[float, typer.Option("--refresh", help="Screen refreshes per second.")] = 10.0,
    hold: HoldOpt = DEFAULT_HOLD,
    tz: TzOpt = "UTC",
    schema: SchemaOpt = None,
) -> None:
    """Live view of a journal: newest frames, rate, lag, writer state, details, sparklines (q quits).

    Several journals (or a folder): one timeline merged by gen_time, a journal column, a header line per journal.
    """
    from ..timeparse import resolve_tz

    registry = registry_for(schema)
    check_follow_options(lines, hold)
    if not 0.5 <= refresh <= 60:
        raise UsageError("--refresh must be between 0.5 and 60")
    zone = resolve_tz(tz)
    tty = sys.stdout.isatty() and sys.stdin.isatty()
    if plain or not tty:
        stop = stop_on_signals()
        from ..cat import cat

        cat_done(cat([str(j) for j in journals], registry=registry, types=type_, symbols=symbol, last=lines,
                      follow=True, wait="sleep", hold=hold, stop=stop, tz=zone,
                      on_wait=lambda msg: warn(f"{msg}; waiting for it"), on_skip=lambda why: warn(f"skipped {why}")))
        return
    from ..selection import Selection
    from ..tui.app import TailApp, probe, tail_types
    from ..tui.merged import probe_many

    sel = Selection.parse(None, registry, None, symbol)
    paths = [str(j) for j in journals]
    types = tail_types(paths, registry, type_)
    if one_file(journals):
        probe(paths[0], registry)
        TailApp(paths[0], registry, types=types, symbols=sel.symbols, refresh_hz=refresh, tz=zone).run()
        return
    probe_many(paths, registry)
    TailApp(paths, registry, types=types, symbols=sel.symbols, refresh_hz=refresh, tz=zone, hold=hold).run()

