"""The ``kftools`` command line: thin, one library call per command (``replay`` and ``tail`` wire a little more).

One module per group of commands (``read``: info, cat, verify, tail; ``ops``: readers, recover, simulate,
monitor, archive; ``export``; ``replay``; ``backtest``: backtest, sweep; ``bench``), declared on the app in
``app``. Errors from the library (``KftoolsError``) become one line on stderr and an exit code from the one
exit table (``exits.EXIT_CODES``); nothing here prints a traceback for bad input.
"""

from __future__ import annotations

import sys

import typer

from ..errors import JournalChanged
from . import backtest, bench, export, ops, read, replay  # noqa: F401 - each declares its commands on the app
from .app import app, bench_app
from .common import stop_on_signals
from .exits import CLICK_ERROR, EXIT_CODES, USAGE_ERROR, ExitCode, Reported, exit_code

__all__ = ["EXIT_CODES", "ExitCode", "Reported", "app", "bench_app", "exit_code", "main",
           "stop_on_signals"]


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; usage errors are one ``kftools: error:`` line and exit 2, like every other error."""
    from ..journal.scan import exit_on_sigbus

    # a page file truncated under a read (`: > j.dat`, copy-truncate rotation) faults every load from its
    # mapping: one line and an exit code, never a silent death by signal
    exit_on_sigbus(b"kftools: error: a journal page was truncated while it was being read (SIGBUS); stopped\n",
                   exit_code(JournalChanged("a page truncated under a read")))
    sys.exit(_run(argv))


def _run(argv: list[str] | None) -> int:
    """The exit code: a command's (from the exit table), or the table's for what the parser raised."""
    try:
        code = app(args=argv, prog_name="kftools", standalone_mode=False)
    except (CLICK_ERROR, typer.Abort) as e:
        _say(e)
        return exit_code(e)
    return code if isinstance(code, int) else ExitCode.OK


def _say(e: Exception) -> None:
    """The parser's error as one line (a usage error says where to look); a group given no command, its help."""
    if isinstance(e, typer.Abort):
        return
    message = e.format_message()  # type: ignore[attr-defined]
    if exit_code(e) == ExitCode.OK:  # `kftools bench` alone: its help, on stdout
        typer.echo(message)
        return
    ctx = getattr(e, "ctx", None) if isinstance(e, USAGE_ERROR) else None
    where = f" (see '{ctx.command_path} -h')" if ctx is not None else ""
    typer.echo(f"kftools: error: {message}{where}", err=True)
