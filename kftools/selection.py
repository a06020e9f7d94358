"""The frame selection shared by commands: types, symbols, time range."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from .errors import UsageError
from .journal.filter import frame_filter
from .journal.merge import MergedReader
from .journal.reader import Reader
from .journal.registry import TypeRegistry
from .timeparse import format_time


@dataclass
class Selection:
    """Filters in the form ``Reader.batches`` / ``Reader.follow`` take."""

    types: list[int] | None = None
    symbols: list[str] | None = None
    start_time: int | None = None
    end_time: int | None = None

    @classmethod
    def parse(
        cls, reader: Reader | MergedReader | None, registry: TypeRegistry, types=None, symbols=None, start=None, end=None,
        tz: dt.tzinfo | None = None,
    ) -> Selection:
        """Resolve type names, comma lists and times.

        ``+10s`` is after the first frame, ``-5s`` before the last, ``13:03:05`` a
        time of day on the first frame's day; times without an offset are in ``tz``
        (default UTC). ``--start`` after ``--end`` is a usage error.
        """
        filt = frame_filter(
            registry, start or None, end or None, _split(types) or None, _split(symbols) or None,
            first_time=None if reader is None else reader.first_time,
            last_time=None if reader is None else reader.last_time, tz=tz,
        )
        sel = cls(
            [registry.resolve(t) for t in _split(types)] or None, _split(symbols) or None,
            filt.start_time, filt.end_time,
        )
        if sel.start_time is not None and sel.end_time is not None and sel.start_time > sel.end_time:
            raise UsageError(f"--start {start} ({format_time(sel.start_time, tz)}) is after "
                             f"--end {end} ({format_time(sel.end_time, tz)}): nothing can match")
        return sel

    @property
    def trivial(self) -> bool:
        return self.types is None and self.symbols is None and self.start_time is None and self.end_time is None

    def describe(self, registry: TypeRegistry, tz: dt.tzinfo | None = None) -> str:
        """The selection in words, for "nothing matched" messages."""
        parts = []
        if self.types:
            parts.append("type " + ",".join(registry.name(t) for t in self.types))
        if self.symbols:
            parts.append("symbol " + ",".join(self.symbols))
        if self.start_time is not None:
            parts.append(f"from {format_time(self.start_time, tz)}")
        if self.end_time is not None:
            parts.append(f"up to {format_time(self.end_time, tz)}")
        return " ".join(parts) or "everything"

    def filters(self) -> dict:
        return {"types": self.types, "symbols": self.symbols, "start_time": self.start_time, "end_time": self.end_time}


def _split(values) -> list[str]:
    out: list[str] = []
    for v in values or ():
        out.extend(x.strip() for x in str(v).split(",") if x.strip())
    return out
