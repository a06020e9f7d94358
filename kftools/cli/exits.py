"""The one exit table: every exit status kftools uses, and what decides it.

A command never picks a number: it returns (exit 0), or raises a library error
(one ``kftools: error:`` line), or raises :class:`Reported` (its lines are out
already; the error it amounts to decides), or is interrupted. :func:`exit_code`
looks the exception up here, and only here.
"""

from __future__ import annotations

from enum import IntEnum

import typer

from ..errors import (
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


class ExitCode(IntEnum):
    """Every exit status kftools uses (README: Commands)."""

    OK = 0
    FAILED = 1  # the command could not do its job (nothing recoverable, a strategy raised, ...)
    BAD_INPUT = 2  # a bad option, a file that is not a journal, an output that cannot be written
    DAMAGED = 3  # the journal is damaged: the valid frames before the damage were handled
    LOCKED = 4  # another writer holds the journal
    INTERRUPTED = 130  # stopped by SIGINT/SIGTERM (as a shell reports Ctrl-C)


def _click_class(name: str) -> type[Exception]:
    # Typer's own usage errors are click's (vendored since typer 0.2x): reach them through its
    # public BadParameter instead of importing click or typer's private copy of it
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == name)


CLICK_ERROR, USAGE_ERROR = _click_class("ClickException"), _click_class("UsageError")
#: `kftools bench` alone: its help, as `kftools` alone prints its own
_NO_ARGS_IS_HELP = next(c for c in USAGE_ERROR.__subclasses__() if c.__name__ == "NoArgsIsHelpError")

#: The one table: how a run ended -> its exit code. Every library error is listed; a subclass maps as its nearest
#: listed ancestor. Below them, what ends a run that is not a library error (the command line's parser, Ctrl-C, a
#: reader of our output gone).
EXIT_CODES: dict[type[BaseException], ExitCode] = {
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
    KeyboardInterrupt: ExitCode.INTERRUPTED,  # Ctrl-C, SIGTERM, or a follow that a signal ended
    typer.Abort: ExitCode.INTERRUPTED,
    BrokenPipeError: ExitCode.OK,  # `kftools cat ... | head`: the reader left
    CLICK_ERROR: ExitCode.FAILED,
    USAGE_ERROR: ExitCode.BAD_INPUT,  # a bad option or argument: the parser's own errors
    _NO_ARGS_IS_HELP: ExitCode.OK,
}


class Reported(Exception):
    """A command's end that its own lines have said already (a warning, the alerts that hold, a summary): exit as
    the library error ``error`` maps, without printing it."""

    def __init__(self, error: KftoolsError):
        super().__init__(str(error))
        self.error = error


def exit_code(error: BaseException) -> ExitCode:
    """The exit code of how a command ended, from ``EXIT_CODES``."""
    if isinstance(error, Reported):
        error = error.error
    for cls in type(error).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return ExitCode.FAILED


def one_line(message: str) -> str:
    """A message from a library that spans lines, folded onto one."""
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())


def error_line(message: str) -> None:
    typer.echo(f"kftools: error: {one_line(message)}", err=True)


def warn(message: str) -> None:
    typer.echo(f"kftools: warning: {message}", err=True)
