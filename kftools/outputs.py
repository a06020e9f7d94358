"""The files commands write: checks before writing, temporary names, removal.

Shared by ``export``, ``import``, ``replay`` and ``recover`` so every command
refuses the same bad outputs with the same words, before writing anything.
"""

from __future__ import annotations

import os

from .errors import OutputError, UsageError
from .journal.page import ARCHIVE_SUFFIX, journal_pages


def check_output(out: str, *, force: bool = False, folder: bool = False, inputs=(), what: str = "output") -> None:
    """Raise if ``out`` cannot be written: a folder where a file is meant (or the reverse), an existing
    output without ``force``, a missing or read-only parent, or any page of an input journal."""
    real = os.path.realpath(out)
    for src in inputs:
        pages = [os.path.realpath(p) for p in journal_pages(src)] or [os.path.realpath(src)]
        tail = pages[0][len(real) + 1:] if pages[0].startswith(real + ".") else ""
        if real in pages or tail.isdigit():
            raise UsageError(f"{out}: the {what} would overwrite {src} (choose another output)")
    if folder:
        if os.path.exists(out) and not os.path.isdir(out):
            raise OutputError(f"{out}: exists and is not a folder")
        if os.path.isdir(out) and os.listdir(out) and not force:
            raise OutputError(f"{out}: folder is not empty (use --force to replace it)")
    else:
        if os.path.isdir(out):
            raise OutputError(f"{out}: is a directory")
        if os.path.exists(out) and not force:
            raise OutputError(f"{out}: already exists (use --force to replace it)")
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise OutputError(f"{out}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"{out}: folder {parent} is not writable")


def temporary_name(path: str) -> str:
    """A hidden name beside ``path`` to write to before renaming: no partial output is ever visible."""
    d = os.path.dirname(os.path.abspath(path))
    return os.path.join(d, f".{os.path.basename(path)}.{os.getpid()}.tmp")


def remove_journal(path: str) -> None:
    """Delete every page of the journal at ``path``."""
    for p in journal_pages(path):
        for f in (p, p + ARCHIVE_SUFFIX):
            if os.path.exists(f):
                os.unlink(f)
    for f in (path + ".checksums", path + ".readers"):
        if os.path.exists(f):
            os.unlink(f)
