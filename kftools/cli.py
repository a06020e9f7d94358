"""The ``kftools`` command line: thin, one library call per command (``replay`` and ``tail`` wire a little more).

Errors from the library (``KftoolsError``) become one line on stderr and an
exit code from ``EXIT_CODES``, the one table where exit codes are decided;
nothing here prints a traceback for bad input.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import sys
import threading
import time
from enum import IntEnum
from pathlib import Path
from typing import Annotated

import typer

from .errors import (
    CorruptJournal,
    FrameTooLarge,
    JournalChanged,
    JournalLocked,
    KftoolsError,
    MissingExtra,
    NotAJournal,
    OutputError,
    SchemaError,
    StrategyError,
    UnknownType,
    UnreadablePage,
    UnsupportedVersion,
    UsageError,
)
from .extras import require

app = typer.Typer(
    name="kftools",
    help="Tools for memory-mapped trading journals: inspect, follow, tail, replay, export.",
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
bench_app = typer.Typer(help="Benchmarks (never part of `make test`).", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


class ExitCode(IntEnum):
    """Every exit status kftools uses (README: Commands)."""

    OK = 0
    FAILED = 1  # the command could not do its job (nothing recoverable, a strategy raised, ...)
    BAD_INPUT = 2  # a bad option, a file that is not a journal, an output that cannot be written
    DAMAGED = 3  # the journal is damaged: the valid frames before the damage were handled
    LOCKED = 4  # another writer holds the journal
    INTERRUPTED = 130  # stopped by SIGINT/SIGTERM (as a shell reports Ctrl-C)


#: The one table mapping library errors to exit codes; a subclass maps as its nearest listed ancestor.
EXIT_CODES: dict[type[KftoolsError], ExitCode] = {
    KftoolsError: ExitCode.FAILED,
    NotAJournal: ExitCode.BAD_INPUT,
    UnsupportedVersion: ExitCode.BAD_INPUT,
    UnknownType: ExitCode.BAD_INPUT,
    SchemaError: ExitCode.BAD_INPUT,
    UsageError: ExitCode.BAD_INPUT,
    OutputError: ExitCode.BAD_INPUT,
    UnreadablePage: ExitCode.BAD_INPUT,  # an error about the file, never damage
    JournalChanged: ExitCode.FAILED,  # a followed journal was replaced, removed or truncated
    CorruptJournal: ExitCode.DAMAGED,
    JournalLocked: ExitCode.LOCKED,
    FrameTooLarge: ExitCode.FAILED,
    StrategyError: ExitCode.FAILED,
    MissingExtra: ExitCode.FAILED,  # an optional package the command needs is not installed: the line names the extra
}


def exit_code(error: KftoolsError) -> ExitCode:
    """The exit code of a library error, from ``EXIT_CODES``."""
    for cls in type(error).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return ExitCode.FAILED


def fail(message: str, code: ExitCode = ExitCode.FAILED) -> typer.Exit:
    """Print one error line (a message from a library that spans lines is folded onto one) and return the
    Exit to raise."""
    one_line = " ".join(part.strip() for part in str(message).splitlines() if part.strip())
    typer.echo(f"kftools: error: {one_line}", err=True)
    return typer.Exit(code)


def warn(message: str) -> None:
    typer.echo(f"kftools: warning: {message}", err=True)


def _guard(fn):
    """Map library errors to one line and an exit code; exit quietly on a closed pipe."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except KftoolsError as e:
            raise fail(str(e), exit_code(e)) from None
        except BrokenPipeError:
            # `kftools cat ... | head`: the reader left; say nothing
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(ExitCode.OK) from None
        except KeyboardInterrupt:
            raise typer.Exit(ExitCode.INTERRUPTED) from None

    return wrapper


#: one example per command, the last thing its --help shows (a test fails when a command has none)
EXAMPLES = {
    "info": "kftools info runtime/  # a folder: a line per journal and a total",
    "cat": "kftools cat md.dat orders.dat -s AAPL --start 13:03:05 --end -5s -F jsonl",
    "verify": "kftools verify runtime/ && echo clean",
    "recover": "kftools recover feed.dat -o salvaged.dat",
    "simulate": "kftools simulate feed.dat --rate 5000 --duration 10",
    "export": "kftools export feed.dat feed.parquet -t Ticker --start +1m   (a dataset, incremental: kftools export "
              "runtime/ s3://bucket/kf)",
    "import": "kftools import feed.parquet copy.dat",
    "replay": "kftools replay feed.dat --speed 10 -o fast.dat   (backtest: --max --strategy s.py --fill-model queue)",
    "backtest": "kftools backtest rec.dat --strategy examples/strategy_maker.py --param size=2 --fill-model queue --latency 200us",
    "tail": "kftools tail feed.dat -s AAPL,MSFT --tz local   (several: kftools tail md.dat orders.dat)",
    "bench export": "kftools bench export --frames 1000000",
    "bench text": "kftools bench text --frames 1000000 --follow 2000000",
    "bench replay": "kftools bench replay --json",
    "bench backtest": "kftools bench backtest --json",
    "bench latency": "kftools bench latency --cpp --contended",
    "bench throughput": "kftools bench throughput --frames 500000",
    "bench merge": "kftools bench merge --json",
    "bench kungfu": "kftools bench kungfu --frames 1000000 --json",
    "bench all": "kftools bench all --quick --out results.json",
    "bench size": "kftools bench size --sizes 10000000 --repeat 3",
    "readers": "kftools readers feed.dat --clear   # forget readers whose process is gone",
    "monitor": "kftools monitor runtime/ --alert 'lag_seconds > 1' --alert-command 'notify-send \"$KFTOOLS_ALERT_MESSAGE\"'",
    "archive": "kftools archive runtime/ --older-than 1d",
    "unarchive": "kftools unarchive feed.dat",
    "bench archive": "kftools bench archive --json",
    "bench import": "kftools bench import --frames 500000",
    "sweep": "kftools sweep rec.dat --strategy s.py:Maker --grid spread=0.01,0.02 --grid size=1,5 --fill-model "
             "touch,queue --latency 0,200us -o maker.sweep",
    "bench sweep": "kftools bench sweep --json",
}
#: placeholders of arguments by name, and of option values by type (never Typer's {journal} or <bool>)
_ARG_METAVARS = {"journal": "JOURNAL", "journals": "JOURNAL", "out": "PATH", "src": "PATH"}
_TYPE_METAVARS = {"Path": "PATH", "int": "N", "float": "NUM", "str": "TEXT", "bool": ""}


def _tidy_placeholders(params) -> None:
    for p in params:
        if p.param_type_name == "argument":
            p.metavar = p.metavar or _ARG_METAVARS.get(p.name, p.name.upper())
            p.display_type_rich = lambda ctx: None  # the placeholder says it; no "<path>" beside it
            if p.required:  # usage reads `kftools cat [OPTIONS] JOURNAL...`, as man pages write it, not {JOURNAL}
                many = p.nargs != 1 and not p.metavar.endswith("...")  # several journals: say so
                p._usage_display_name = lambda p=p, many=many: p.metavar + ("..." if many else "")
        elif p.param_type_name == "option" and p.metavar is None:
            bare = p.bare_type() if hasattr(p, "bare_type") else "bool"
            if bare.startswith("list[") and bare.endswith("]"):
                bare = bare[5:-1]
            # a switch takes no value: no <bool>
            p.metavar = "" if getattr(p, "is_bool_flag", False) else _TYPE_METAVARS.get(bare, bare.upper())


class _Command(typer.core.TyperCommand):
    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        _tidy_placeholders(self.params)

    def get_params(self, ctx):
        params = super().get_params(ctx)
        _tidy_placeholders(params)  # the help option is added here, after __init__
        return params


class _Group(typer.core.TyperGroup):
    def get_params(self, ctx):
        params = super().get_params(ctx)
        _tidy_placeholders(params)
        return params


app.info.cls = _Group
bench_app.info.cls = _Group


def command(typer_app: typer.Typer = app, **kw):
    key = ("bench " if typer_app is bench_app else "") + kw["name"]

    def deco(fn):
        return typer_app.command(cls=_Command, epilog=f"Example: {EXAMPLES[key]}", **kw)(_guard(fn))

    return deco


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"kftools {version('kftools')}")
        raise typer.Exit(0)


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Tools for memory-mapped trading journals: inspect, follow, tail, replay, export."""
    if ctx.invoked_subcommand is None:  # `kftools` alone: the help, on stdout, exit 0
        typer.echo(ctx.get_help())
        raise typer.Exit(0)


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
DEFAULT_HOLD = 0.05  # kftools.journal.merge.DEFAULT_HOLD, without importing numpy for --help
HoldOpt = Annotated[
    float,
    typer.Option("--hold", help="Following several journals: seconds a silent journal may hold back the others' "
                                "frames to keep them in time order (then they go out; 0: arrival order)."),
]
def _reader_name(value: str | None) -> str | None:
    """Refuse a bad --name while parsing, before any command writes or prints anything."""
    if value is not None:
        from .journal.positions import check_reader_name

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
    from .info import reader_line as line

    return line(lag)


def registry_for(schema: list[Path] | None):
    from .journal.schemas import load_registry

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


# -- core commands -----------------------------------------------------------------
def _one_file(journals: list[Path]) -> bool:
    return len(journals) == 1 and not journals[0].is_dir()


def _summary(kind: str, journals: list[Path], json_out: bool, schema) -> None:
    """info / verify of several journals: a line per journal, a total, the exit code of the worst."""
    from .many import summarize

    summary = summarize(kind, [str(j) for j in journals], registry_for(schema))

    def status_of(row) -> int:
        if row.error is not None:
            return exit_code(row.error)
        return ExitCode.DAMAGED if row.damaged else ExitCode.OK

    if json_out:
        typer.echo(json.dumps(summary.to_dict(status_of)))
    else:
        for line in summary.lines():
            typer.echo(line)
    for row in summary.rows:  # like ls: the others are listed, each one that could not be read is an error line
        if row.error is not None:
            typer.echo(f"kftools: error: {row.error}", err=True)
    raise typer.Exit(summary.status(status_of))


@command(name="info")
def info_cmd(
    journals: JournalsArg,
    count: Annotated[bool, typer.Option("--count", help="Walk every frame instead of taking sealed pages from their summaries (slower on a big journal; the count verify makes).")] = False,
    json_out: JsonOpt = False,
    schema: SchemaOpt = None,
) -> None:
    """Pages, fill, frames by type, time range, mean rate, writer state and health (several: a line each and a total)."""
    from .info import journal_info

    if not _one_file(journals):
        _summary("info", journals, json_out, schema)
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
        raise typer.Exit(ExitCode.DAMAGED)


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
    from .cat import cat
    from .render import FORMATS
    from .timeparse import resolve_tz

    if fmt not in FORMATS:
        raise UsageError(f"unknown --format {fmt!r} (text, jsonl, csv)")
    if lines is not None and lines < 0:
        raise UsageError("-n must be >= 0")
    if hold < 0:
        raise UsageError("--hold must be >= 0")
    with frames_progress_bar("cat", None, draw=not sys.stdout.isatty()) as progress:
        res = cat(
            [str(j) for j in journals], registry=registry_for(schema), fmt=fmt, types=type_, symbols=symbol,
            start=start, end=end, last=lines, follow=follow, wait=wait, hold=hold, stop=stop, tz=resolve_tz(tz),
            on_wait=lambda msg: warn(f"{msg}; waiting for it"), on_skip=lambda why: warn(f"skipped {why}"), name=name,
            progress=progress,
        )
    _cat_done(res)


def _cat_done(res) -> None:
    sys.stdout.flush()
    if res.unmatched is not None:
        warn(f"no frame matched {res.unmatched}")
    if res.damage is not None:
        warn(f"{res.damage}; printed the valid frames before it")
        raise typer.Exit(ExitCode.DAMAGED)
    if getattr(res, "interrupted", False):
        raise typer.Exit(ExitCode.INTERRUPTED)  # Ctrl-C ends a follow as it ends a plain cat


@command(name="verify")
def verify_cmd(
    journals: JournalsArg,
    quick: Annotated[bool, typer.Option("--quick", help="Trust sealed pages whose summary still holds (walked clean when sealed, file unchanged since): check the rest in full.")] = False,
    json_out: JsonOpt = False,
    schema: SchemaOpt = None,
) -> None:
    """Validate every page and frame; exit 0 when clean, 3 when damaged (several: a line each, the worst exit)."""
    from .journal.recovery import verify
    from .timeparse import format_time

    if not _one_file(journals):
        _summary("verify", journals, json_out, schema)
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
        raise fail(f"damaged: first invalid frame at {rep.damage}", ExitCode.DAMAGED)


@command(name="readers")
def readers_cmd(
    journal: JournalArg,
    clear: Annotated[bool, typer.Option("--clear", help="Forget readers whose process is gone or exited.")] = False,
    names: Annotated[list[str] | None, typer.Option("--name", help="With --clear: only this reader (repeatable).")] = None,
    json_out: JsonOpt = False,
    schema: SchemaOpt = None,
) -> None:
    """Named readers (followers started with --name) and their lag; --clear forgets the stale ones."""
    from .info import named_readers

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
    from .journal.recovery import recover

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
        raise typer.Exit(ExitCode.DAMAGED if res.frames else ExitCode.FAILED)


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
    from .simulate import simulate

    if duration is None and frames is None:
        raise UsageError("give --duration or --frames")
    with frames_progress_bar("simulate", frames) as progress:
        res = simulate(str(journal), rate=rate, duration=duration, frames=frames, symbols=symbols,
                       page_size=page_size, seed=seed, stop=stop_on_signals(), append=append, tick=tick, depth=depth,
                       progress=progress)
    verb = "appended" if append else "wrote"
    typer.echo(f"{verb} {res.frames:,} frames in {res.seconds:.2f}s ({res.rate:,.0f}/s) to {journal}", err=True)


# -- export commands (issue 3) -----------------------------------------------------
def arrow_allocator() -> None:
    """Use Arrow's jemalloc pool in this process unless the user chose one (``ARROW_DEFAULT_MEMORY_POOL``).

    Arrow reads the variable when pyarrow is imported. Its default pool, mimalloc, kept about four times an
    export's live Arrow memory resident (17-20 MB of peak RSS); jemalloc returns it and is as fast
    (docs/export.md, "Speed and memory"). Only where pyarrow's build says it has jemalloc (its wheels do):
    naming a pool Arrow lacks prints a warning on every run.
    """
    import importlib.util

    if "pyarrow" in sys.modules or "ARROW_DEFAULT_MEMORY_POOL" in os.environ:
        return
    spec = importlib.util.find_spec("pyarrow")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        try:
            with open(os.path.join(folder, "include", "arrow", "util", "config.h"), encoding="utf-8") as fh:
                has_jemalloc = "#define ARROW_JEMALLOC\n" in fh.read()
        except OSError:
            continue
        if has_jemalloc:
            os.environ["ARROW_DEFAULT_MEMORY_POOL"] = "jemalloc"
        return


@command(name="export")
def export_cmd(
    journals: Annotated[list[Path], typer.Argument(
        help="A journal (first page); several journals or a folder of them make a dataset (or one file merged by "
             "gen_time when OUT ends in .parquet or .pq).", show_default=False, metavar="JOURNAL...")],
    out: Annotated[str, typer.Argument(
        help="Output .parquet file (- for standard output); a folder with --split; for a dataset a folder, "
             "s3://bucket/prefix or gs://bucket/prefix.", show_default=False, metavar="PATH")],
    type_: TypeOpt = None,
    symbol: SymbolOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    compression: Annotated[str, typer.Option("--compression", help="zstd, snappy or none.")] = "zstd",
    row_group_size: Annotated[int, typer.Option("--row-group-size", help="Rows per Parquet row group.")] = 100_000,
    split: Annotated[bool, typer.Option("--split", help="One Parquet file per message type, in folder OUT.")] = False,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep exporting new frames until interrupted (every frame committed by then is exported).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing output.")] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No progress bar.")] = False,
    name: NameOpt = None,
    timestamps: Annotated[str | None, typer.Option(
        "--timestamps", metavar="us|ns",
        help="gen_time/trigger_time as timestamp[us] (Spark reads it) beside exact int64 gen_time_ns/trigger_time_ns, "
             "or as exact timestamp[ns]. Default: us for a dataset, ns for a file.", show_default=False)] = None,
    schema: SchemaOpt = None,
) -> None:
    """Export frames to Parquet (typed columns, lossless); several journals or a folder to a hive-partitioned
    dataset (exporting again adds only what is new)."""
    stop = stop_on_signals() if follow else None  # before the imports: a signal during them still stops cleanly
    arrow_allocator()
    from .export import export

    with export_progress_bar(quiet, follow) as (on_total, on_progress):
        res = export([str(j) for j in journals], out, registry=registry_for(schema), types=type_, symbols=symbol, start=start,
                     end=end, compression=compression, row_group_size=row_group_size, split=split, follow=follow,
                     stop=stop, force=force, progress=on_progress, total=on_total, name=name, timestamps=timestamps)
    if not quiet:
        typer.echo(f"wrote {res.rows:,} rows to {res.out}" + (f" ({res.files} files)" if res.files > 1 else ""),
                   err=True)
    for c in res.crashed:
        warn(f"{c}: the writer died without closing; exported every committed frame")
    for why in res.skipped:
        warn(f"skipped {why}")
    for d in res.damage:
        warn(f"{d}; exported the valid frames before it and dropped the rest")
    if res.damage:
        raise typer.Exit(ExitCode.DAMAGED)


@command(name="import")
def import_cmd(
    src: Annotated[str, typer.Argument(help="A kftools Parquet export, a --split folder, or a dataset (a folder, "
                                       "s3://bucket/prefix or gs://bucket/prefix).", show_default=False,
                                       metavar="PARQUET")],
    out: Annotated[Path, typer.Argument(help="The new journal (first page path).", show_default=False,
                                        metavar="JOURNAL")],
    page_size: Annotated[int | None, typer.Option("--page-size", help="Bytes per page (default: the exported one).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing journal.")] = False,
    journal: Annotated[str | None, typer.Option("--journal", help="The journal to rebuild from a dataset that holds "
                                                                  "several (its journal column).")] = None,
    schema: SchemaOpt = None,
) -> None:
    """Rebuild a journal from a Parquet export, frames byte-identical to the original."""
    from .export import import_parquet

    res = import_parquet(src, str(out), registry=registry_for(schema), page_size=page_size, force=force,
                         journal=journal)
    typer.echo(f"wrote {res.frames:,} frames in {res.pages} page(s) to {res.out}", err=True)


@command(bench_app, name="text")
def bench_text_cmd(
    json_out: JsonOpt = False,
    frames: Annotated[int, typer.Option("--frames", help="Frames in the journal cat prints.")] = 1_000_000,
    follow: Annotated[int, typer.Option("--follow", help="Also follow a C++ writer of N frames with cat -f (0: no).")] = 0,
    rate: Annotated[float, typer.Option("--rate", help="The followed writer's frames per second.")] = 1e6,
) -> None:
    """cat -F text|jsonl|csv lines/s to /dev/null against pyarrow's write_csv of the same rows."""
    from .bench import report
    from .bench.text import run

    report(run(frames=frames, follow_frames=follow, follow_rate=rate), json_out)


@command(bench_app, name="export")
def bench_export_cmd(
    json_out: JsonOpt = False,
    frames: Annotated[int, typer.Option("--frames", help="Frames in the exported journal.")] = 10_000_000,
    compression: Annotated[str, typer.Option("--compression", help="zstd, snappy or none.")] = "zstd",
    baseline: Annotated[int, typer.Option("--baseline-frames", help="Frames for the struct.unpack baseline.")] = 300_000,
) -> None:
    """Export throughput and peak RSS against pyarrow writing the same table from memory."""
    from .bench import report
    from .bench.export import run

    report(run(frames=frames, compression=compression, baseline_frames=baseline), json_out)

# -- replay command (issue 4) ------------------------------------------------------
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
    if (strategy or order_journal) and chart:
        require("backtest", "kftools replay --strategy")  # its chart.png and report.html
    from .backtest.options import exchange_config
    from .backtest.report import summary_lines as backtest_lines
    from .replay import Controller, Replay
    from .replay.ui import KeyReader, Progress, summary_lines

    if paused and not sys.stdin.isatty():
        raise UsageError("--paused needs a terminal on stdin (space resumes, right arrow steps)")
    if max_speed and speed is not None:
        raise UsageError("--speed and --max cannot be combined (--max emits as fast as possible)")
    ctl = Controller(paused=paused)
    backtest = bool(strategy or order_journal)
    exchange = exchange_config(fill_model, latency, response_latency, fees, cap_volume, cash) if backtest else None
    rep = Replay(
        [str(j) for j in journals] if not _one_file(journals) else str(journals[0]), None if out is None else str(out),
        speed=None if max_speed else (1.0 if speed is None else speed), on_long_wait=warn,
        registry=registry_for(schema), types=type_, symbols=symbol, start=start, end=end, loops=loop,
        follow=follow, controller=ctl, strategy=strategy, orders=None if orders is None else str(orders),
        exchange=exchange, results=None if results is None else str(results), chart=chart,
        order_journals=[str(p) for p in order_journal or ()], lockstep=lockstep,
        force=force, stop=stop, wait=wait, name=name, format=fmt, kf_home=kf_home, location=location,
    )
    st = rep.stats
    if st.writer_state == "crashed":
        warn(f"{rep.path}: its writer (pid {st.writer_pid}) crashed; replaying the frames it committed")
    elif st.writer_state == "alive" and not follow:
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
        raise typer.Exit(ExitCode.DAMAGED)
    if st.interrupted and not follow:
        raise typer.Exit(ExitCode.INTERRUPTED)


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
    from .sweep import sweep
    from .sweep.ui import closing_lines, progress_bar

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
        raise fail(f"{len(res.failed):,} run(s) failed (re-run to retry them); run {first[0]}: {first[1]}")


@command(bench_app, name="sweep")
def bench_sweep_cmd(
    json_out: JsonOpt = False,
    frames: Annotated[int, typer.Option("--frames", help="Frames in the (bursty, simulated) recording.")] = 100_000,
    dask: Annotated[bool, typer.Option("--dask/--no-dask", help="Also measure the overhead per run on a local Dask cluster.")] = True,
) -> None:
    """Sweep speed: 16 runs one after another, on 2 local processes, and on a one-worker Dask cluster."""
    from .bench import report
    from .bench.sweep import run

    report(run(frames=frames, dask=dask), json_out)


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
    from .backtest.report import summary_lines as backtest_lines
    from .backtest.run import backtest
    from .backtest.session import default_results

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


@command(bench_app, name="replay")
def bench_replay_cmd(
    json_out: JsonOpt = False,
    frames: Annotated[int, typer.Option("--frames", help="Frames in the recording (at --rate frames/s).")] = 200_000,
    rate: Annotated[float, typer.Option("--rate", help="Frames per second of the recording.")] = 100_000.0,
) -> None:
    """Replay lateness (p50/p99/max at speeds 1 and 10) on a uniform and a bursty recording, and --max throughput."""
    from .bench import report
    from .bench.replay import run

    report(run(frames=frames, rate=rate), json_out)


@command(bench_app, name="backtest")
def bench_backtest_cmd(
    json_out: JsonOpt = False,
    frames: Annotated[int, typer.Option("--frames", help="Frames in the (bursty, simulated) recording.")] = 1_000_000,
    repeat: Annotated[int, typer.Option("--repeat", help="Runs of each case (the median is reported).")] = 3,
    gateway_frames: Annotated[int, typer.Option(
        "--gateway-frames", help="Frames for the out-of-process (--order-journal, lockstep) cases; 0 skips them.")] = 20_000,
    chart: Annotated[Path | None, typer.Option(
        "--chart", help="Also write the example strategy's chart (PNG) from the bursty recording here.")] = None,
) -> None:
    """Backtest frames/s in --max mode: do-nothing and example strategies beside replay --max, same run; the
    example strategy out of process (Python, C++) in lockstep."""
    from .bench import report
    from .bench.backtest import run

    report(run(frames=frames, repeat=repeat, gateway_frames=gateway_frames,
               chart=None if chart is None else str(chart)), json_out)


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
    from .timeparse import resolve_tz

    registry = registry_for(schema)
    if lines < 0:
        raise UsageError("-n must be >= 0")
    if not 0.5 <= refresh <= 60:
        raise UsageError("--refresh must be between 0.5 and 60")
    if hold < 0:
        raise UsageError("--hold must be >= 0")
    zone = resolve_tz(tz)
    tty = sys.stdout.isatty() and sys.stdin.isatty()
    if plain or not tty:
        stop = stop_on_signals()
        from .cat import cat

        _cat_done(cat([str(j) for j in journals], registry=registry, types=type_, symbols=symbol, last=lines,
                      follow=True, wait="sleep", hold=hold, stop=stop, tz=zone,
                      on_wait=lambda msg: warn(f"{msg}; waiting for it"), on_skip=lambda why: warn(f"skipped {why}")))
        return
    from .selection import Selection
    from .tui.app import TailApp, probe, tail_types
    from .tui.merged import probe_many

    sel = Selection.parse(None, registry, None, symbol)
    paths = [str(j) for j in journals]
    types = tail_types(paths, registry, type_)
    if _one_file(journals):
        probe(paths[0], registry)
        TailApp(paths[0], registry, types=types, symbols=sel.symbols, refresh_hz=refresh, tz=zone).run()
        return
    probe_many(paths, registry)
    TailApp(paths, registry, types=types, symbols=sel.symbols, refresh_hz=refresh, tz=zone, hold=hold).run()


# -- operations (issue 14) ---------------------------------------------------------
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
    from .monitor import Monitor, load_rules, run

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
        raise typer.Exit(0 if res.ok else 1)
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
    from .journal.archive import archive
    from .journal.resolve import journal_paths
    from .timeparse import parse_duration

    age = None if older_than is None else parse_duration(older_than) / 1e9
    res = archive(journal_paths(map(str, journals)), older_than=age, level=level)
    _archive_report(res, "archived", json_out)


@command(name="unarchive")
def unarchive_cmd(journals: EachJournalArg, json_out: JsonOpt = False) -> None:
    """Restore archived pages byte-identical to the originals."""
    require("archive", "kftools unarchive")
    from .journal.archive import unarchive
    from .journal.resolve import journal_paths

    _archive_report(unarchive(journal_paths(map(str, journals))), "restored", json_out)


def _archive_report(res, verb: str, json_out: bool) -> None:
    if json_out:
        typer.echo(json.dumps(res.to_dict()))
        return
    for why in res.skipped or []:
        warn(f"skipped {why}")
    typer.echo(f"{verb} {len(res.pages)} page(s): {res.bytes_before:,} -> {res.bytes_after:,} bytes")


# -- benchmarks --------------------------------------------------------------------
@command(bench_app, name="latency")
def bench_latency_cmd(
    json_out: JsonOpt = False,
    samples: Annotated[int, typer.Option("--samples", help="Frames timed per transport.")] = 100_000,
    cpp: Annotated[bool, typer.Option("--cpp", help="Also C++ writer to Python and C++ followers.")] = False,
    contended: Annotated[bool, typer.Option(
        "--contended", help="Also followers on a shared host: busy and park followers, Pipe and iceoryx2, idle and "
                            "with a third process spinning (shared.* figures).")] = False,
) -> None:
    """Cross-process latency: Python writer to a busy-polling Python follower (unnamed and --name), against multiprocessing.Pipe."""
    from .bench import report
    from .bench.latency import run

    results = run(samples=samples)
    if cpp:
        from .bench.cpp import run as run_cpp

        results.update(run_cpp())
    if contended:
        from .bench.shared_host import run as run_shared

        results.update(run_shared(samples=min(samples, 20_000)))
    report(results, json_out)


@command(bench_app, name="archive")
def bench_archive_cmd(
    json_out: JsonOpt = False,
    frames: Annotated[int, typer.Option("--frames", help="Frames of the simulated feed.")] = 1_000_000,
    level: Annotated[int, typer.Option("--level", help="zstd level.")] = 3,
) -> None:
    """Archive ratio and speed on a simulated feed; batch read of the archived journal against it uncompressed."""
    from .bench import report
    from .bench.archive import run

    report(run(frames=frames, level=level), json_out)


@command(bench_app, name="import")
def bench_import_cmd(
    json_out: JsonOpt = False,
    frames: Annotated[int, typer.Option("--frames", help="Frames of the simulated feed.")] = 500_000,
) -> None:
    """`kftools import` against `kftools export` of the same journal, in pairs in the same run."""
    from .bench import report
    from .bench.importer import run

    report(run(frames=frames), json_out)


@command(bench_app, name="throughput")
def bench_throughput_cmd(
    json_out: JsonOpt = False,
    frames: Annotated[int, typer.Option("--frames", help="Frames per measurement.")] = 2_000_000,
) -> None:
    """Append, per-frame read and batch numpy read throughput."""
    from .bench import report
    from .bench.throughput import run

    report(run(frames=frames), json_out)


@command(bench_app, name="kungfu")
def bench_kungfu_cmd(
    json_out: JsonOpt = False,
    frames: Annotated[int, typer.Option("--frames", help="Frames in each journal.")] = 1_000_000,
) -> None:
    """Batch read of a Kungfu journal against a kftools journal of the same frames (target ratio >= 0.5)."""
    from .bench import report
    from .bench.kungfu import run

    report(run(frames=frames), json_out)


@command(bench_app, name="merge")
def bench_merge_cmd(
    json_out: JsonOpt = False,
    frames: Annotated[int, typer.Option("--frames", help="Frames in all, over the journals, for the batch merge.")] = 8_000_000,
    journals: Annotated[int, typer.Option("--journals", help="Journals merged.")] = 8,
    per_frame: Annotated[int, typer.Option("--per-frame-frames", help="Frames in all for the per-frame measurements.")] = 1_000_000,
) -> None:
    """Merging several bursty journals by gen_time: batches and per-frame iteration against a single Reader."""
    from .bench import report
    from .bench.merge import run

    report(run(frames=frames, journals=journals, per_frame_frames=per_frame), json_out)


@command(bench_app, name="size")
def bench_size_cmd(
    json_out: JsonOpt = False,
    sizes: Annotated[str, typer.Option("--sizes", help="Comma-separated frame counts of the big journals (each skipped when there is no room).")] = "10000000,100000000",
    repeat: Annotated[int, typer.Option("--repeat", help="Runs of each command on each journal (medians).")] = 5,
    keep: Annotated[Path | None, typer.Option("--keep", help="Make (or reuse) the journals in this folder and keep them.")] = None,
) -> None:
    """cat -n 5, info, verify --quick, monitor --once, a Writer opened to append and tail's screens on a 1-frame
    journal against big ones in the same run: time and peak RSS from outside (target: within 50 ms, under 100 MB)."""
    from .bench import report
    from .bench.size import run

    try:
        big = tuple(int(x) for x in sizes.split(",") if x.strip())
    except ValueError:
        raise UsageError(f"--sizes {sizes!r}: frame counts separated by commas") from None
    if repeat < 1 or any(n < 2 for n in big):
        raise UsageError("--repeat must be >= 1 and every size >= 2")
    report(run(big, repeat=repeat, keep=None if keep is None else str(keep)), json_out)


@command(bench_app, name="all")
def bench_all_cmd(
    json_out: JsonOpt = False,
    out: Annotated[Path | None, typer.Option("--out", help="Also write the JSON object to this file.")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Smaller runs (about a minute) for a first look.")] = False,
) -> None:
    """Every benchmark in one run: latency (Python and C++), throughput, export, replay, merge."""
    from .bench import report, run_all

    results = run_all(quick=quick, progress=lambda name: warn(f"running bench {name} ...") if not json_out else None)
    if out is not None:
        out.write_text(json.dumps(results, indent=1) + "\n")
    report(results, json_out)


def _click_class(name: str) -> type[Exception]:
    # Typer's own usage errors are click's (vendored since typer 0.2x): reach them through its
    # public BadParameter instead of importing click or typer's private copy of it
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == name)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; usage errors are one ``kftools: error:`` line and exit 2, like every other error."""
    from .journal.scan import exit_on_sigbus

    # a page file truncated under a read (`: > j.dat`, copy-truncate rotation) faults every load from its
    # mapping: one line and an exit code, never a silent death by signal
    exit_on_sigbus(b"kftools: error: a journal page was truncated while it was being read (SIGBUS); stopped\n",
                   ExitCode.FAILED)
    usage_error, click_exception = _click_class("UsageError"), _click_class("ClickException")
    try:
        code = app(args=argv, prog_name="kftools", standalone_mode=False)
    except usage_error as e:
        ctx = getattr(e, "ctx", None)
        if type(e).__name__ == "NoArgsIsHelpError":
            typer.echo(e.format_message())  # type: ignore[attr-defined]  # `kftools` alone: its help
            sys.exit(0)
        where = f" (see '{ctx.command_path} -h')" if ctx is not None else ""
        typer.echo(f"kftools: error: {e.format_message()}{where}", err=True)  # type: ignore[attr-defined]
        sys.exit(2)
    except click_exception as e:
        typer.echo(f"kftools: error: {e.format_message()}", err=True)  # type: ignore[attr-defined]
        sys.exit(getattr(e, "exit_code", 1))
    except typer.Abort:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
