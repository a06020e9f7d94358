"""The one exception hierarchy of kftools.

The library raises these and never prints; the CLI maps them to exit codes
at its edge (see ``EXIT_CODES``) and prints ``str(error)`` on one line.
"""

from __future__ import annotations


class KftoolsError(Exception):
    """Root of every error kftools raises on purpose."""

    exit_code = 1


class NotAJournal(KftoolsError):
    """The path is missing, a directory, empty, or does not hold a journal page."""

    exit_code = 2


class UnsupportedVersion(KftoolsError):
    """The page header names a format version this kftools cannot read."""

    exit_code = 2


class CorruptJournal(KftoolsError):
    """Structural validation failed below the write cursor."""

    exit_code = 3


class JournalLocked(KftoolsError):
    """Another writer holds the journal."""

    exit_code = 4


class FrameTooLarge(KftoolsError):
    """A frame does not fit in an empty page."""


class UnknownType(KftoolsError):
    """A message type name or id that no registry knows."""

    exit_code = 2


class SchemaError(KftoolsError):
    """A schema file or registered dtype is malformed."""

    exit_code = 2


class UsageError(KftoolsError):
    """A bad option value (time, speed, output path...)."""

    exit_code = 2


class OutputError(KftoolsError):
    """The output path cannot be written."""

    exit_code = 2


class StrategyError(KftoolsError):
    """A replay strategy failed to load or raised in a callback."""
