"""The frame selection shared by commands: types, symbols, time range."""

from __future__ import annotations

from dataclasses import dataclass

from .journal.reader import Reader
from .journal.registry import TypeRegistry
from .timeparse import parse_time


@dataclass
class Selection:
    """Filters in the form ``Reader.batches`` / ``Reader.follow`` take."""

    types: list[int] | None = None
    symbols: list[str] | None = None
    start_time: int | None = None
    end_time: int | None = None

    @classmethod
    def parse(
        cls, reader: Reader | None, registry: TypeRegistry, types=None, symbols=None, start=None, end=None
    ) -> Selection:
        """Resolve type names, comma lists and times (``+10s`` is relative to the first frame)."""
        tids = [registry.resolve(t) for t in _split(types)] or None
        syms = _split(symbols) or None
        origin = None
        if (start and start.strip().startswith("+")) or (end and end.strip().startswith("+")):
            origin = first_gen_time(reader) if reader is not None else None
        return cls(
            tids, syms,
            parse_time(start, origin) if start else None,
            parse_time(end, origin) if end else None,
        )

    def filters(self) -> dict:
        return {"types": self.types, "symbols": self.symbols, "start_time": self.start_time, "end_time": self.end_time}


def first_gen_time(reader: Reader) -> int | None:
    for b in reader.batches(batch_size=1):
        return int(b.headers["gen_time"][0])
    return None


def _split(values) -> list[str]:
    out: list[str] = []
    for v in values or ():
        out.extend(x.strip() for x in str(v).split(",") if x.strip())
    return out
