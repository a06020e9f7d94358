"""What several commands share: options declared once, the schema, signals, progress bars, follow checks."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Annotated

import typer

from ..errors import CorruptJournal, UsageError
from .exits import Reported, warn

# -- shared options (defined once, reused by every command) -----------------------
JournalArg = Annotated[Path, typer.Argument(help="The journal: path of its first page.", show_default=False)]
JournalsArg = Annotated[
    list[Path],
    typer.Argument(help="Journals (path of the first page) or folders of journals; several read as one timeline "
                        "merged by gen_time.", show_default=False),
]
SchemaOpt = Annotated[
    list[Path] | None,
    typer.Option("--schema", help="TOML/JSON file declaring user message types (repeatable; also $KFTOOLS_SCHEMA);"
                 " `kungfu`: Kungfu's longfist types, for a Kungfu journal replayed into a kftools one."),
]
TypeOpt = Annotated[
    list[str] | None, typer.Option("--type", "-t", help="Only these message types (name or id; repeatable, comma list).")
]
SymbolOpt = Annotated[list[str] | None, typer.Option("--symbol", "-s", help="Only these symbols (repeatable, comma list).")]
StartOpt = Annotated[
    str | None,
    typer.Option("--start", metavar="TIME", help="From this gen_time: ns since the epoch, ISO-8601, 13:03:05 (time of "
                 "day on the first frame's day), +10s (after the first frame) or -5s (before the last)."),
]
EndOpt = Annotated[str | None, typer.Option("--end", metavar="TIME",
                                            help="Up to this gen_time (inclusive), same forms as --start.")]
TzOpt = Annotated[str, typer.Option("--tz", metavar="ZONE",
                                    help="Show and read times in this zone: UTC, local or a name like Europe/Paris.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
WaitOpt = Annotated[str, typer.Option("--wait", help="How a follower waits: busy, backoff, sleep or park (spin briefly, then sleep until the writer wakes it: for shared hosts).")]
HoldOpt = Annotated[
    float,
    typer.Option("--hold", help="Following several journals: seconds a silent journal may hold back the others' "
                                "frames to keep them in time order (then they go out; 0: arrival order)."),
]
def _reader_name(value: str | None) -> str | None:
    """Refuse a bad --name while parsing, before any command writes or prints anything."""
    if value is not None:
        from ..journal.positions import check_reader_name

        try:
            check_reader_name(value)
        except UsageError as e:
            raise typer.BadParameter(str(e)) from None
    return value


NameOpt = Annotated[
    str | None,
    typer.Option("--name", callback=_reader_name,
                 help="With --follow: publish this follower's position under NAME (info, tail, monitor)."),
]


def reader_line(lag) -> str:
    from ..info import reader_line as line

    return line(lag)


def registry_for(schema: list[Path] | None):
    from ..journal.schemas import load_registry

    return load_registry(schema or ())


def stop_on_signals() -> threading.Event:
    """An Event set by SIGINT/SIGTERM, so followers end cleanly instead of raising mid-write."""
    stop = threading.Event()

    def handler(signum, frame):
        # Not stop.set() here: the handler runs between two bytecodes of the main thread, which may be
        # inside stop.wait() holding the Event's lock (not re-entrant), and set() would wait for it
        # forever (seen as `kftools monitor` ignoring SIGTERM on a loaded machine). Another thread sets it.
        threading.Thread(target=stop.set, name="kftools-stop", daemon=True).start()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


@contextlib.contextmanager
def export_progress_bar(quiet: bool = False, follow: bool = False):
    """``(on_total, on_progress)`` callbacks drawing a rich bar on stderr; no-ops off a terminal or if quiet."""
    if quiet or not sys.stderr.isatty():
        yield None, None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = [TextColumn("[bold]export"), BarColumn(), TextColumn("{task.fields[rows]:,} frames"),
               TransferSpeedColumn(), TimeRemainingColumn() if not follow else TimeElapsedColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=False) as prog:
        task = prog.add_task("export", total=None, rows=0)

        def on_total(nbytes: int) -> None:
            if not follow:
                prog.update(task, total=max(nbytes, 1))

        def on_progress(rows: int, nbytes: int) -> None:
            prog.update(task, completed=nbytes, rows=rows)

        yield on_total, on_progress


@contextlib.contextmanager
def frames_progress_bar(label: str, total: int | None, *, draw: bool = True):
    """A progress callback ``(frames, total)`` that draws a rich bar on stderr once the run has taken a second;
    None off a terminal (or unless ``draw``: cat draws none over its own output on the terminal)."""
    if not (draw and sys.stderr.isatty()):
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = [TextColumn(f"[bold]{label}"), BarColumn(), TextColumn("{task.completed:,} frames"),
               TimeRemainingColumn() if total else TimeElapsedColumn()]
    prog = Progress(*columns, console=Console(stderr=True), transient=True)
    t0 = time.monotonic()
    task = None

    def on_progress(frames: int, _total: int | None) -> None:
        nonlocal task
        if task is None:
            if time.monotonic() - t0 < 1.0:
                return
            prog.start()
            task = prog.add_task(label, total=total)
        prog.update(task, completed=frames)

    try:
        yield on_progress
    finally:
        if task is not None:
            prog.stop()



def one_file(journals: list[Path]) -> bool:
    return len(journals) == 1 and not journals[0].is_dir()


def check_follow_options(lines: int | None, hold: float) -> None:
    """``-n`` and ``--hold`` of the commands that print frames (cat, tail)."""
    if lines is not None and lines < 0:
        raise UsageError("-n must be >= 0")
    if hold < 0:
        raise UsageError("--hold must be >= 0")


def cat_done(res) -> None:
    """After frames were printed: damage and an interruption said, and they decide the exit."""
    sys.stdout.flush()
    if res.unmatched is not None:
        warn(f"no frame matched {res.unmatched}")
    if res.damage is not None:
        warn(f"{res.damage}; printed the valid frames before it")
        raise Reported(CorruptJournal(str(res.damage)))
    if getattr(res, "interrupted", False):
        raise KeyboardInterrupt  # Ctrl-C ends a follow as it ends a plain cat
