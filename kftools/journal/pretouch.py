"""Faulting memory in ahead of use, off the thread that must not wait for it (see ``_pretouch.c``)."""

from __future__ import annotations

from typing import Any

try:  # optional, like the other C modules: without it nothing is pretouched
    from . import _pretouch  # type: ignore[attr-defined]  # the C extension setup.py builds; no stub
except ImportError:  # pragma: no cover - a build without a C compiler
    _pretouch = None  # type: ignore[assignment]

#: how far past its position a pretoucher keeps a mapping faulted in (topped up when half is left): at
#: 200 MB/s, 10 ms of frames in the half, as long as the thread sleeps at most
AHEAD = 4 << 20


def pretoucher(mapping: Any, end: int, ahead: int = AHEAD, *, cursor_offset: int = -1, write: bool = True):
    """A running pretoucher on ``mapping`` (``stop()`` it before closing the mapping), or None without the C
    module or a thread.

    Writing with a cursor: it follows the page's write cursor at ``cursor_offset``. Otherwise it follows
    what ``advance(position)`` says; a reader's is bounded by the cursor (nothing unwritten is faulted in).
    """
    if _pretouch is None:
        return None
    try:
        return _pretouch.Pretoucher(mapping, end, ahead, cursor_offset=cursor_offset, write=write)
    except OSError:  # no thread to be had (a process or memory limit): only an optimisation is lost
        return None
