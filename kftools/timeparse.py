"""Parse the time arguments commands accept (``--start``, ``--end``, ``--tz``) and print times."""

from __future__ import annotations

import datetime as dt

from .journal.times import (  # parsing lives in the journal core (its filters take text times); printing here
    TIME_FORMS,
    TIME_OF_DAY,
    local_zone,
    parse_duration,
    parse_time,
    resolve_tz,
)

__all__ = [
    "TIME_FORMS", "TIME_OF_DAY", "format_clock", "format_optional_time", "format_time", "local_zone", "parse_duration",
    "parse_time", "resolve_tz",
]


def _moment(ns: int, tz: dt.tzinfo | None) -> tuple[dt.datetime, int]:
    sec, frac = divmod(ns, 1_000_000_000)
    return dt.datetime.fromtimestamp(sec, tz or dt.UTC), frac


def _offset(when: dt.datetime, tz: dt.tzinfo | None) -> str:
    if tz is None or tz is dt.UTC:
        return "Z"
    off = when.strftime("%z")  # +0100
    return f"{off[:3]}:{off[3:]}"


def format_time(ns: int, tz: dt.tzinfo | None = None) -> str:
    """ns since the epoch -> ``2026-11-28T09:30:00.123456789Z`` (UTC) or ``...+01:00`` in another zone."""
    when, frac = _moment(ns, tz)
    return when.strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}" + _offset(when, tz)


def format_clock(ns: int, tz: dt.tzinfo | None = None) -> str:
    """Time of day with microseconds, ``13:03:05.123456`` (for columns whose date is shown elsewhere)."""
    when, frac = _moment(ns, tz)
    return when.strftime("%H:%M:%S") + f".{frac // 1000:06d}"


def format_optional_time(ns: int, tz: dt.tzinfo | None = None) -> str:
    """Like :func:`format_time`, but 0 (a time field left unset) reads ``unset``, not 1970."""
    return "unset" if ns == 0 else format_time(ns, tz)
