"""``kftools info``: a journal's summary."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import UsageError
from .journal.format import WriterState
from .journal.positions import ReaderLag, clear_positions, reader_lags
from .journal.reader import Reader
from .journal.registry import TypeRegistry
from .timeparse import format_time


@dataclass
class JournalInfo:
    path: str
    pages: int
    capacity: int = 0
    used_bytes: int = 0
    frames: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    first_gen_time: int | None = None
    last_gen_time: int | None = None
    writer_state: WriterState = WriterState.UNKNOWN
    writer_pid: int = 0
    damage: str | None = None
    readers: list[ReaderLag] = field(default_factory=list)

    @property
    def rate(self) -> float:
        if self.frames < 2 or self.last_gen_time == self.first_gen_time:
            return 0.0
        if self.first_gen_time is None or self.last_gen_time is None:
            raise ValueError(f"{self.path}: {self.frames} frames but no gen_time range")
        return (self.frames - 1) / ((self.last_gen_time - self.first_gen_time) / 1e9)

    @property
    def health(self) -> str:
        return "ok" if self.damage is None else "damaged"

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["readers"] = [r.to_dict() for r in self.readers]
        d.update(rate_per_s=round(self.rate, 3), health=self.health, fill=self.fill)
        return d

    @property
    def fill(self) -> float:
        return self.used_bytes / self.capacity if self.capacity else 0.0

    def lines(self) -> list[tuple[str, str]]:
        def t(ns):
            return "-" if ns is None else format_time(ns)

        rows = [
            ("path", self.path),
            ("pages", f"{self.pages} ({self.capacity:,} bytes, {self.fill:.1%} used)"),
            ("frames", f"{self.frames:,}"),
        ]
        rows += [(f"  {k}", f"{v:,}") for k, v in self.by_type.items()]
        rows += [
            ("first gen_time", t(self.first_gen_time)),
            ("last gen_time", t(self.last_gen_time)),
            ("mean rate", f"{self.rate:,.1f} frames/s"),
            ("writer", f"{self.writer_state}" + (f" (pid {self.writer_pid})" if self.writer_pid else "")),
            ("health", "ok" if self.damage is None else f"damaged: {self.damage}"),
        ]
        rows += [("readers", "-" if not self.readers else "")]
        rows += [(f"  {r.entry.shown}", reader_line(r)) for r in self.readers]
        return rows


def journal_info(path: str, registry: TypeRegistry | None = None, *, count: bool = False) -> JournalInfo:
    """Pages, fill, frames by type, time range, rate, writer state and health; read-only.

    Sealed pages are taken from their summaries (``<journal>.summaries``, recomputed in memory where missing
    or stale), so the cost does not grow with the journal; ``count`` walks every frame instead.
    """
    from .journal.pages import PageSet
    from .journal.summaries import PageSummary, Summaries

    with Reader(path, registry=registry) as r:
        counts: dict[int, int] = {}
        info = JournalInfo(r.name, r.page_count())

        def times(lo: int, hi: int) -> None:
            info.first_gen_time = lo if info.first_gen_time is None else min(lo, info.first_gen_time)
            info.last_gen_time = hi if info.last_gen_time is None else max(hi, info.last_gen_time)

        def summarised(s: PageSummary) -> None:
            for t, c in s.by_type.items():
                counts[t] = counts.get(t, 0) + c
            if s.frames:
                times(s.min_time, s.max_time)  # type: ignore[arg-type]
            info.frames += s.frames

        skip = None if count else Summaries(r.pages).skipper(summarised)
        for b in r.walk().batches(batch_size=1 << 16, skip=skip):
            types, n = np.unique(b.headers["msg_type"], return_counts=True)
            for t, c in zip(types.tolist(), n.tolist(), strict=False):
                counts[t] = counts.get(t, 0) + c
            g = b.headers["gen_time"]
            times(int(g.min()), int(g.max()))
            info.frames += len(b)
            PageSet.release(b.page, 0, int(b.offsets[-1]))
        info.damage = None if r.damage is None else str(r.damage)
        info.capacity, info.used_bytes = r.pages.usage()
        info.by_type = {r.registry.name(t): c for t, c in sorted(counts.items())}
        info.writer_state, info.writer_pid = r.writer_state()
        info.readers = reader_lags(r, end=r.end_position(), newest=info.last_gen_time)
        return info


@dataclass
class NamedReaders:
    """What ``kftools readers`` reports: the readers left and the names it cleared."""

    readers: list[ReaderLag]
    cleared: list[str]

    def to_dict(self) -> dict:
        return {"readers": [r.to_dict() for r in self.readers], "cleared": self.cleared}


def named_readers(path: str, registry: TypeRegistry | None = None, *, clear: bool = False,
                  names: list[str] | None = None) -> NamedReaders:
    """The named readers of a journal with their lag; ``clear`` first forgets stale ones (or ``names``)."""
    if names and not clear:
        raise UsageError("--name selects readers to --clear")
    cleared = clear_positions(path, names or None) if clear else []
    with Reader(path, registry=registry) as r:
        return NamedReaders(reader_lags(r), cleared)


def reader_line(lag: ReaderLag) -> str:
    """One named reader as info and the tail show it."""
    e = lag.entry
    where = "nothing read yet" if e.position is None else f"page {e.position[0]} offset {e.position[1]}"
    return (f"{e.state} (pid {e.pid}), {where}, lag {lag.frames:,} frames, {lag.bytes:,} bytes, "
            f"{lag.seconds!r} s")
