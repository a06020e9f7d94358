"""The one exception hierarchy of kftools.

The library raises these and never prints; the CLI maps them to exit codes
in one table at its edge (``EXIT_CODES`` in ``kftools/cli/exits.py``) and prints
``str(error)`` on one line. Nothing in the library decides an exit code.
"""

from __future__ import annotations


class KftoolsError(Exception):
    """Root of every error kftools raises on purpose."""


class NotAJournal(KftoolsError):
    """The path is missing, a directory, empty, or does not hold a journal page."""


class UnsupportedVersion(KftoolsError):
    """The page header names a format version this kftools cannot read."""


class CorruptJournal(KftoolsError):
    """Structural validation failed below the write cursor."""


class JournalLocked(KftoolsError):
    """Another writer holds the journal."""


class FrameTooLarge(KftoolsError):
    """A frame does not fit in an empty page."""


class UnknownType(KftoolsError):
    """A message type name or id that no registry knows."""


class SchemaError(KftoolsError):
    """A schema file or registered dtype is malformed."""


class UnreadablePage(NotAJournal):
    """A page file is there but cannot be read (permission denied, I/O error): an error about
    the file, never damage, and never a reason to modify the journal."""


class JournalChanged(KftoolsError):
    """A followed journal was replaced, removed or truncated under its reader."""


class UsageError(KftoolsError):
    """A bad option value (time, speed, output path...)."""


class OutputError(KftoolsError):
    """The output path cannot be written."""


class StrategyError(KftoolsError):
    """A replay strategy failed to load or raised in a callback."""


class MissingExtra(KftoolsError):
    """A command or call needs an optional package that is not installed (``pip install 'kftools[EXTRA]'``)."""

    def __init__(self, message: str, extra: str | None = None):
        super().__init__(message)
        self.extra = extra


def needs_extra(what: str, extra: str) -> MissingExtra:
    """The error for ``what`` (``kftools backtest``) run without the ``extra`` installed."""
    return MissingExtra(f"{what} needs the '{extra}' extra: pip install 'kftools[{extra}]'", extra)
