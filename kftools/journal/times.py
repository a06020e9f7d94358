"""Parse the time arguments readers take (``--start``, ``--end``, ``--tz``): texts to ns since the epoch.

Printing times is :mod:`kftools.timeparse`'s; it re-exports these.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import zoneinfo

from ..errors import UsageError

_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000,
          "h": 3_600_000_000_000, "d": 86_400_000_000_000}
_DURATION = re.compile(r"^\+?(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)$")
TIME_OF_DAY = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?$")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
TIME_FORMS = "ns since the epoch, ISO-8601, 13:03:05 (on the first day), +10s (after the first frame), -5s (before the last)"


def resolve_tz(name: str | None) -> dt.tzinfo:
    """``"UTC"`` (the default), ``"local"`` (this machine's zone) or an IANA zone name such as ``Europe/Paris``."""
    if name is None or name.upper() in ("UTC", "Z"):
        return dt.UTC
    if name == "local":
        return local_zone()
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"unknown time zone {name!r} (UTC, local or a zone name such as Europe/Paris)") from None


def local_zone() -> dt.tzinfo:
    """This machine's zone ($TZ, else /etc/localtime) with its DST rules, not today's fixed offset."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            pass
    try:
        with open("/etc/localtime", "rb") as f:
            return zoneinfo.ZoneInfo.from_file(f, key="local")
    except (OSError, ValueError):
        return dt.UTC


def parse_duration(text: str) -> int:
    """``"1.5s"``, ``"200ms"``, ``"+10m"`` -> nanoseconds."""
    m = _DURATION.match(text.strip())
    if not m:
        raise UsageError(f"bad duration {text!r} (examples: 500ms, 10s, 1.5m, 1d)")
    return round(float(m.group(1)) * _UNITS[m.group(2)])


def _to_ns(when: dt.datetime, frac_ns: int = 0) -> int:
    delta = when - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000 + frac_ns


def parse_time(text: str, origin: int | None = None, *, last: int | None = None, tz: dt.tzinfo | None = None) -> int:
    """An absolute or relative time -> ns since the epoch.

    Accepts integer nanoseconds; ISO-8601 (``2026-11-28T09:30:00.123``, in ``tz``
    (default UTC) unless an offset is given); a time of day ``13:03:05[.123]``
    on the day (in ``tz``) of ``origin``; ``+<duration>`` after ``origin`` (the
    recording's first gen_time) and ``-<duration>`` before ``last`` (its last).
    """
    tz = tz or dt.UTC
    t = text.strip()
    if t.startswith("+"):
        if origin is None:
            raise UsageError(f"relative time {text!r} needs a journal with at least one frame")
        return origin + parse_duration(t)
    if t.startswith("-"):
        if last is None:
            raise UsageError(f"relative time {text!r} needs a journal with at least one frame")
        return last - parse_duration(t[1:])
    if t.isdigit():
        return int(t)
    m = TIME_OF_DAY.match(t)
    if m:
        if origin is None:
            raise UsageError(f"time of day {text!r} needs a journal with at least one frame (its first day)")
        hh, mm, ss = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
        if hh > 23 or mm > 59 or ss > 59:
            raise UsageError(f"bad time of day {text!r} (HH:MM[:SS[.fraction]])")
        day = dt.datetime.fromtimestamp(origin // 1_000_000_000, tz).date()
        when = dt.datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=tz)
        return _to_ns(when, int((m.group(4) or "").ljust(9, "0")))
    frac_ns = 0
    base = t.replace(" ", "T", 1)
    m = re.match(r"^(.*T?\d{2}:\d{2}:\d{2})\.(\d{1,9})(.*)$", base)
    if m:
        base = m.group(1) + m.group(3)
        frac_ns = int(m.group(2).ljust(9, "0"))
    try:
        when = dt.datetime.fromisoformat(base.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"bad time {text!r} (use {TIME_FORMS})") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=tz)
    return _to_ns(when, frac_ns)
