"""The frame selection shared by commands: types, symbols, time range."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from .errors import UnknownType, UsageError
from .journal.filter import frame_filter, journal_types
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
    #: the types as asked (names or ids): each journal read resolves a name in its own registry
    asked: list[str] | None = None

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
            registry, start or None, end or None, None, _split(symbols) or None,
            first_time=None if reader is None else reader.first_time,
            last_time=None if reader is None else reader.last_time, tz=tz,
        )
        asked = _split(types) or None
        registries = [registry]
        if isinstance(reader, MergedReader):
            # each journal resolves a name in its own generation's types when read (see journal_types); here a
            # name must be known to one of them, and ``types`` says it in the first registry that knows it
            registries += [r.registry for r in reader.readers if r.registry is not registry]
        journal_types(registries, asked)  # a name none of them knows: the error, now
        ids = None if asked is None else [_resolve(registries, t) for t in asked]
        sel = cls(ids, _split(symbols) or None, filt.start_time, filt.end_time, asked)
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
        return {"types": self.asked if self.asked is not None else self.types, "symbols": self.symbols, "start_time": self.start_time, "end_time": self.end_time}


def _resolve(registries: list[TypeRegistry], name_or_id: str) -> int:
    """The id of a type name in the first registry that knows it."""
    for reg in registries[:-1]:
        try:
            return reg.resolve(name_or_id)
        except UnknownType:
            pass
    return registries[-1].resolve(name_or_id)


def _split(values) -> list[str]:
    out: list[str] = []
    for v in values or ():
        out.extend(x.strip() for x in str(v).split(",") if x.strip())
    return out
