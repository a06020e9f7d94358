"""Operations on journals: named readers, recover, simulate, monitor, archive and unarchive."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ..errors import CorruptJournal, KftoolsError, UsageError
from ..extras import require
from .app import command
from .common import JournalArg, JsonOpt, SchemaOpt, frames_progress_bar, reader_line, registry_for, stop_on_signals
from .exits import Reported, warn


@command(name="readers")
def readers_cmd(
    journal: JournalArg,
    clear: Annotated[bool, typer.Option("--clear", help="Forget readers whose process is gone or exited.")] = False,
    names: Annotated[list[str] | None, typer.Option("--name", help="With --clear: only this reader (repeatable).")] = None,
    json_out: JsonOpt = False,
    schema: SchemaOpt = None,
) -> None:
    """Named readers (followers started with --name) and their lag; --clear forgets the stale ones."""
    from ..info import named_readers

    res = named_readers(str(journal), registry_for(schema), clear=clear, names=names)
    if json_out:
        typer.echo(json.dumps(res.to_dict()))
        return
    for name in res.cleared:
        typer.echo(f"cleared {name}")
    for lag in res.readers:
        typer.echo(f"{lag.entry.shown}: {reader_line(lag)}")
    if not res.readers and not res.cleared:
        typer.echo("no named readers")


@command(name="recover")
def recover_cmd(
    journal: JournalArg,
    out: Annotated[Path | None, typer.Option("-o", "--out", help="Write the valid prefix to this new journal.")] = None,
    in_place: Annotated[bool, typer.Option("--in-place", help="Cut the damaged tail off the journal itself.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing output.")] = False,
    schema: SchemaOpt = None,
) -> None:
    """Salvage the valid prefix: exit 0 nothing lost, 3 some data dropped, 1 nothing recoverable."""
    from ..journal.recovery import recover

    res = recover(str(journal), None if out is None else str(out), in_place=in_place, force=force,
                  registry=registry_for(schema))
    kept = f"{res.frames:,} frame(s) in {res.pages} page(s)"
    if in_place:
        typer.echo(f"cut in place: kept {kept}" if res.damage is not None else f"clean, nothing cut: {kept}")
    else:
        typer.echo(f"wrote {res.out}: {kept}")
    if res.damage is not None:
        later = f", and {res.dropped_pages} later page(s) holding {res.dropped_frames:,} readable frame(s)" \
            if res.dropped_pages else ""
        warn(f"dropped {res.dropped_bytes:,} byte(s) from {res.damage}{later}")
    if res.damage is not None:
        # something dropped: damaged if a valid prefix was kept, failed if nothing was
        raise Reported(CorruptJournal(str(res.damage)) if res.frames else KftoolsError(f"{journal}: nothing recoverable"))


@command(name="simulate")
def simulate_cmd(
    journal: JournalArg,
    rate: Annotated[float, typer.Option("--rate", help="Frames per second (0: as fast as possible).")] = 10_000.0,
    duration: Annotated[float | None, typer.Option("--duration", help="Stop after this many seconds.")] = None,
    frames: Annotated[int | None, typer.Option("--frames", help="Stop after this many frames.")] = None,
    symbols: Annotated[str, typer.Option("--symbols", help="Comma-separated symbols.")] = "AAPL,MSFT,NVDA,TSLA,AMZN",
    page_size: Annotated[int | None, typer.Option("--page-size", help="Bytes per new page (default 128 MiB).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    append: Annotated[bool, typer.Option("--append", help="Add frames to an existing journal (its walk restarts from --seed).")] = False,
    tick: Annotated[float, typer.Option("--tick", help="Price grid: every price is a multiple of it.")] = 0.01,
    depth: Annotated[int, typer.Option("--depth", help="Also write Depth frames with N levels a side (0-10; 0: none).")] = 0,
) -> None:
    """Write a simulated market (quotes on a tick grid, prints with their aggressor side, orders and their
    fills; Depth frames with --depth) at a controlled rate, with a bursty clock.

    A new journal is created; an existing one is refused unless --append is given. With --rate 0 the same
    --seed gives the same bytes.
    """
    from ..simulate import simulate

    if duration is None and frames is None:
        raise UsageError("give --duration or --frames")
    with frames_progress_bar("simulate", frames) as progress:
        res = simulate(str(journal), rate=rate, duration=duration, frames=frames, symbols=symbols,
                       page_size=page_size, seed=seed, stop=stop_on_signals(), append=append, tick=tick, depth=depth,
                       progress=progress)
    verb = "appended" if append else "wrote"
    typer.echo(f"{verb} {res.frames:,} frames in {res.seconds:.2f}s ({res.rate:,.0f}/s) to {journal}", err=True)



@command(name="monitor")
def monitor_cmd(
    journals: Annotated[list[Path], typer.Argument(help="Journals (first pages) or folders of journals.", show_default=False)],
    listen: Annotated[str, typer.Option("--listen", help="Serve Prometheus metrics on HOST:PORT (port 0: any free one).")] = "127.0.0.1:9464",
    interval: Annotated[float, typer.Option("--interval", help="Seconds between checks.")] = 1.0,
    alert: Annotated[list[str] | None, typer.Option("--alert", help="An alert rule, as 'lag_seconds > 1' (repeatable; added to the defaults writer_crashed, damaged).")] = None,
    no_defaults: Annotated[bool, typer.Option("--no-default-alerts", help="Leave out the default alerts (writer_crashed, damaged).")] = False,
    alert_command: Annotated[str | None, typer.Option("--alert-command", help="Shell command run when an alert fires or clears (details in KFTOOLS_ALERT_* variables).")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="TOML file of alert rules (\\[\\[alert]] rule = ..., command = ...).")] = None,
    once: Annotated[bool, typer.Option("--once", help="Check once and exit: 0 all well, 1 an alert holds (no server, no commands, nothing written).")] = False,
    idle_timeout: Annotated[float, typer.Option("--idle-timeout", help="Close a metrics connection silent this many seconds.")] = 10.0,
    json_out: JsonOpt = False,
    schema: SchemaOpt = None,
) -> None:
    """Serve Prometheus metrics of journals and their named readers; run alert commands when rules fire and clear.

    Folders are listed again at every check: journals created in them later are monitored too.
    """
    require("monitor", "kftools monitor")
    from ..monitor import Monitor, load_rules, run

    rules = load_rules(alert, alert_command, None if config is None else str(config), defaults=not no_defaults)
    log = (lambda ev: typer.echo(json.dumps(ev.to_dict()), err=True)) if json_out else (lambda ev: warn(ev.message()))
    mon = Monitor(map(str, journals), rules, registry=registry_for(schema), on_event=None if once else log,
                  on_trouble=lambda why: warn(f"monitor: {why}"), run_commands=not once, checksums=not once)
    if once:
        res = mon.check()
        mon.close()
        if json_out:
            typer.echo(json.dumps(res.to_dict()))
        else:
            for ev in res.firing:
                typer.echo(f"ALERT {ev.rule.text}: {ev.subject}")
            if res.ok:
                typer.echo(f"ok: {len(res.samples)} journal(s), no alert holds")
        if not res.ok:
            raise Reported(KftoolsError("an alert holds"))
        return
    run(mon, listen=listen, interval=interval, stop=stop_on_signals(), idle_timeout=idle_timeout,
        on_listening=lambda url: typer.echo(f"kftools: serving metrics on {url}", err=True))


EachJournalArg = Annotated[list[Path], typer.Argument(help="Journals (first pages) or folders of journals, each on its own.", show_default=False)]


@command(name="archive")
def archive_cmd(
    journals: EachJournalArg,
    older_than: Annotated[str | None, typer.Option("--older-than", help="Only pages last written this long ago (10m, 12h, 1d).")] = None,
    level: Annotated[int, typer.Option("--level", help="zstd level, 1 (fast) to 22 (small).")] = 3,
    json_out: JsonOpt = False,
) -> None:
    """Compress sealed pages (not the first, not the writer's) into seekable zstd; every command still reads them."""
    require("archive", "kftools archive")
    from ..journal.archive import archive
    from ..journal.resolve import journal_paths
    from ..timeparse import parse_duration

    age = None if older_than is None else parse_duration(older_than) / 1e9
    res = archive(journal_paths(map(str, journals)), older_than=age, level=level)
    _archive_report(res, "archived", json_out)


@command(name="unarchive")
def unarchive_cmd(journals: EachJournalArg, json_out: JsonOpt = False) -> None:
    """Restore archived pages byte-identical to the originals."""
    require("archive", "kftools unarchive")
    from ..journal.archive import unarchive
    from ..journal.resolve import journal_paths

    _archive_report(unarchive(journal_paths(map(str, journals))), "restored", json_out)


def _archive_report(res, verb: str, json_out: bool) -> None:
    if json_out:
        typer.echo(json.dumps(res.to_dict()))
        return
    for why in res.skipped or []:
        warn(f"skipped {why}")
    typer.echo(f"{verb} {len(res.pages)} page(s): {res.bytes_before:,} -> {res.bytes_after:,} bytes")

