"""Parse the time arguments commands accept (``--start``, ``--end``)."""

from __future__ import annotations

import datetime as dt
import re

from .errors import UsageError

_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000,
          "h": 3_600_000_000_000}
_DURATION = re.compile(r"^\+?(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)$")


def parse_duration(text: str) -> int:
    """``"1.5s"``, ``"200ms"``, ``"+10m"`` -> nanoseconds."""
    m = _DURATION.match(text.strip())
    if not m:
        raise UsageError(f"bad duration {text!r} (examples: 500ms, 10s, 1.5m)")
    return round(float(m.group(1)) * _UNITS[m.group(2)])


def parse_time(text: str, origin: int | None = None) -> int:
    """An absolute or relative time -> ns since the epoch.

    Accepts integer nanoseconds, ISO-8601 (``2026-11-28T09:30:00.123``, UTC unless
    an offset is given) and ``+<duration>`` relative to ``origin`` (the
    recording's first gen_time).
    """
    t = text.strip()
    if t.startswith("+"):
        if origin is None:
            raise UsageError(f"relative time {text!r} needs a journal with at least one frame")
        return origin + parse_duration(t)
    if t.isdigit():
        return int(t)
    frac_ns = 0
    m = re.match(r"^(.*T?\d{2}:\d{2}:\d{2})\.(\d{1,9})(.*)$", t.replace(" ", "T", 1))
    base = t.replace(" ", "T", 1)
    if m:
        base = m.group(1) + m.group(3)
        frac_ns = int(m.group(2).ljust(9, "0"))
    try:
        when = dt.datetime.fromisoformat(base.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"bad time {text!r} (use ns since the epoch, ISO-8601 or +10s)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    delta = when - epoch
    return (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000 + frac_ns


def format_time(ns: int) -> str:
    """ns since the epoch -> ``2026-11-28T09:30:00.123456789Z``."""
    sec, frac = divmod(ns, 1_000_000_000)
    return dt.datetime.fromtimestamp(sec, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"
