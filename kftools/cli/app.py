"""The Typer application: the root and ``bench`` groups, how every command is declared, help placeholders."""

from __future__ import annotations

import functools
import os
import sys
from typing import Annotated

import typer

from ..errors import KftoolsError
from .exits import Reported, error_line, exit_code

app = typer.Typer(
    name="kftools",
    help="Tools for memory-mapped trading journals: inspect, follow, tail, replay, export.",
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
bench_app = typer.Typer(help="Benchmarks (never part of `make test`).", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


def guard(fn):
    """Map library errors to one line and, through the exit table, an exit code; exit quietly on a closed pipe."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except KftoolsError as e:
            error_line(str(e))
            raise typer.Exit(exit_code(e)) from None
        except BrokenPipeError as e:
            # `kftools cat ... | head`: the reader left; say nothing
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(exit_code(e)) from None
        except (KeyboardInterrupt, Reported) as e:
            raise typer.Exit(exit_code(e)) from None

    return wrapper


#: every command in the order help lists it, with one example, the last thing its --help shows (a test fails when
#: a command has none)
EXAMPLES = {
    "info": "kftools info runtime/  # a folder: a line per journal and a total",
    "cat": "kftools cat md.dat orders.dat -s AAPL --start 13:03:05 --end -5s -F jsonl",
    "verify": "kftools verify runtime/ && echo clean",
    "readers": "kftools readers feed.dat --clear   # forget readers whose process is gone",
    "recover": "kftools recover feed.dat -o salvaged.dat",
    "simulate": "kftools simulate feed.dat --rate 5000 --duration 10",
    "export": "kftools export feed.dat feed.parquet -t Ticker --start +1m   (a dataset, incremental: kftools export "
              "runtime/ s3://bucket/kf)",
    "import": "kftools import feed.parquet copy.dat",
    "replay": "kftools replay feed.dat --speed 10 -o fast.dat   (backtest: --max --strategy s.py --fill-model queue)",
    "sweep": "kftools sweep rec.dat --strategy s.py:Maker --grid spread=0.01,0.02 --grid size=1,5 --fill-model "
             "touch,queue --latency 0,200us -o maker.sweep",
    "backtest": "kftools backtest rec.dat --strategy examples/strategy_maker.py --param size=2 --fill-model queue --latency 200us",
    "tail": "kftools tail feed.dat -s AAPL,MSFT --tz local   (several: kftools tail md.dat orders.dat)",
    "monitor": "kftools monitor runtime/ --alert 'lag_seconds > 1' --alert-command 'notify-send \"$KFTOOLS_ALERT_MESSAGE\"'",
    "archive": "kftools archive runtime/ --older-than 1d",
    "unarchive": "kftools unarchive feed.dat",
    "bench text": "kftools bench text --frames 1000000 --follow 2000000",
    "bench export": "kftools bench export --frames 1000000",
    "bench sweep": "kftools bench sweep --json",
    "bench replay": "kftools bench replay --json",
    "bench backtest": "kftools bench backtest --json",
    "bench latency": "kftools bench latency --cpp --contended",
    "bench archive": "kftools bench archive --json",
    "bench import": "kftools bench import --frames 500000",
    "bench throughput": "kftools bench throughput --frames 500000",
    "bench kungfu": "kftools bench kungfu --frames 1000000 --json",
    "bench merge": "kftools bench merge --json",
    "bench size": "kftools bench size --sizes 10000000 --repeat 3",
    "bench all": "kftools bench all --quick --out results.json",
}
#: placeholders of arguments by name, and of option values by type (never Typer's {journal} or <bool>)
_ARG_METAVARS = {"journal": "JOURNAL", "journals": "JOURNAL", "out": "PATH", "src": "PATH"}
_TYPE_METAVARS = {"Path": "PATH", "int": "N", "float": "NUM", "str": "TEXT", "bool": ""}


def _tidy_placeholders(params) -> None:
    for p in params:
        if p.param_type_name == "argument":
            p.metavar = p.metavar or _ARG_METAVARS.get(p.name, p.name.upper())
            p.display_type_rich = lambda ctx: None  # the placeholder says it; no "<path>" beside it
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

    def collect_usage_pieces(self, ctx) -> list[str]:
        """Click's usage line, with a required argument as man pages write it (`kftools cat [OPTIONS] JOURNAL...`),
        not Typer's {JOURNAL}."""
        pieces = [self.options_metavar] if self.options_metavar else []
        for p in self.get_params(ctx):
            if p.param_type_name == "argument" and p.required:
                many = p.nargs != 1 and not p.metavar.endswith("...")  # several journals: say so
                pieces.append(p.metavar + ("..." if many else ""))
            else:
                pieces.extend(p.get_usage_pieces(ctx))
        return pieces


class _Group(typer.core.TyperGroup):
    def get_params(self, ctx):
        params = super().get_params(ctx)
        _tidy_placeholders(params)
        return params

    def list_commands(self, ctx) -> list[str]:
        """In the order of ``EXAMPLES`` (groups, such as bench, last)."""
        prefix = "" if ctx.parent is None else ctx.info_name + " "
        order = {name: k for k, name in enumerate(EXAMPLES)}
        return sorted(super().list_commands(ctx), key=lambda name: order.get(prefix + name, len(order)))


app.info.cls = _Group
bench_app.info.cls = _Group


def command(typer_app: typer.Typer = app, **kw):
    key = ("bench " if typer_app is bench_app else "") + kw["name"]

    def deco(fn):
        return typer_app.command(cls=_Command, epilog=f"Example: {EXAMPLES[key]}", **kw)(guard(fn))

    return deco



def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"kftools {version('kftools')}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Tools for memory-mapped trading journals: inspect, follow, tail, replay, export."""
    if ctx.invoked_subcommand is None:  # `kftools` alone: the help, on stdout
        typer.echo(ctx.get_help())
        raise typer.Exit()
