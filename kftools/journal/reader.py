"""The Python reader: iterate, batch and follow committed frames, read-only.

:class:`Reader` is a facade: a journal's pages are a :class:`~.pages.PageSet`,
every pass over its frames is a :class:`~.walk.Walk`, filters are one
:class:`~.filter.FrameFilter`.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from ..errors import MissingExtra, UsageError
from .filter import FrameFilter, frame_filter
from .format import FRAME_HEADER, JournalFormat, WriterState
from .frames import HEADER_DTYPE, INDEX_DTYPE, FrameBatch, frame_at, frames_of
from .framestream import Frame
from .page import NotYetWritten, Page
from .pages import PageSet, Position
from .positions import PositionSlot
from .registry import TypeRegistry
from .walk import DEFAULT_BATCH, Damage, WaitPolicy, Walk, frames_of_batches, scan_page, stopped, wait_policy

#: builds an Arrow table of a reader's frames as the Parquet export writes them; the export plugs it in
#: (``kftools/__init__.py``: the core does not import the export, nor pyarrow before it is asked for)
_table_builder: Callable[..., Any] | None = None


def use_table_builder(build: Callable[..., Any]) -> None:
    """Set what :meth:`BatchQueries.to_arrow` calls (``build(reader, **filters)``)."""
    global _table_builder
    _table_builder = build


def _iso(ns: int | None) -> str:
    return "-" if ns is None else f"{np.datetime64(int(ns), 'ns')}Z"


class BatchQueries:
    """What a reader answers from its ``batches()`` alone (``Reader`` and ``MergedReader``)."""

    registry: TypeRegistry
    batches: Callable[..., Iterator]  # each reader's own, with its filters
    _readers: Callable[[], list[Reader]]  # the journals it reads (itself, or a merged reader's)

    # -- data frames -------------------------------------------------------------
    def to_arrow(self, *, types=None, symbols=None, start_time=None, end_time=None, timestamps: str = "ns") -> Any:
        """The frames committed now that match the filters (as :meth:`batches` takes them) as a ``pyarrow.Table``,
        rendered exactly as ``kftools export`` writes them to Parquet (enum names, unset times null; several
        journals: a ``journal`` column). ``timestamps``: "ns" or "us" (then exact ``*_ns`` columns too)."""
        if _table_builder is None:  # pragma: no cover - kftools/__init__.py sets it
            raise UsageError("to_arrow needs kftools.export (import kftools)")
        return _table_builder(self, types=types, symbols=symbols, start_time=start_time, end_time=end_time,
                              timestamps=timestamps)

    def to_pandas(self, **filters) -> Any:
        """:meth:`to_arrow` as a ``pandas.DataFrame`` (needs pandas)."""
        try:
            import pandas  # noqa: F401  # said by name when missing, not deep inside pyarrow
        except ImportError:
            raise MissingExtra("to_pandas needs pandas: pip install pandas") from None
        return self.to_arrow(**filters).to_pandas()

    def to_polars(self, **filters) -> Any:
        """:meth:`to_arrow` as a ``polars.DataFrame`` (needs polars)."""
        try:
            import polars
        except ImportError:
            raise MissingExtra("to_polars needs polars: pip install polars") from None
        import pyarrow as pa

        table = self.to_arrow(**filters)
        for i, f in enumerate(table.schema):
            if pa.types.is_fixed_size_list(f.type):
                # a slice of a fixed-size list keeps its parent's values, which Arrow allows and polars refuses
                # ("validity mask length must be equal..."): those columns as compact copies
                chunks = [c.take(np.arange(len(c))) for c in table.column(i).chunks]
                table = table.set_column(i, f, pa.chunked_array(chunks, f.type))
        return polars.from_arrow(table)

    def _rows(self) -> list[dict]:
        """Per journal: name, format, pages, frames, first and last gen_time, writer state and pid."""
        out = []
        for r in self._readers():
            state, pid = r.writer_state()
            out.append({"journal": r.name, "format": r.fmt.name, "pages": r.page_count(), "frames": r.count(),
                        "first": r.first_time(), "last": r.last_time(), "writer": state, "pid": pid,
                        "damage": r.damage})
        return out

    def _repr_html_(self) -> str:
        """Jupyter's view: a row per journal (pages, frames, time range, writer state) and, merged, a total."""
        import html

        rows = self._rows()
        head = ["journal", "format", "pages", "frames", "first gen_time", "last gen_time", "writer"]
        body = [[r["journal"], r["format"], f"{r['pages']:,}", f"{r['frames']:,}", _iso(r["first"]), _iso(r["last"]),
                 r["writer"] + (f" (pid {r['pid']})" if r["pid"] else "")
                 + (f"; damaged: {r['damage']}" if r["damage"] is not None else "")] for r in rows]
        if len(rows) > 1:
            firsts = [r["first"] for r in rows if r["first"] is not None]
            lasts = [r["last"] for r in rows if r["last"] is not None]
            body.append([f"total: {len(rows)} journals", "", f"{sum(r['pages'] for r in rows):,}",
                         f"{sum(r['frames'] for r in rows):,}", _iso(min(firsts, default=None)),
                         _iso(max(lasts, default=None)), ""])

        def tr(cells, tag="td") -> str:
            return "<tr>" + "".join(f"<{tag}>{html.escape(str(c))}</{tag}>" for c in cells) + "</tr>"

        return (f"<table><caption>kftools.{type(self).__name__}</caption><thead>{tr(head, 'th')}</thead><tbody>"
                + "".join(tr(b) for b in body) + "</tbody></table>")

    def last(self, n: int, **filters) -> list[Frame]:
        """The last ``n`` frames matching ``filters`` (as ``tail -n``), in the reader's order."""
        keep: collections.deque = collections.deque()
        held = 0
        for b in self.batches(**filters):
            keep.append(b)
            held += len(b)
            while keep and held - len(keep[0]) >= n:
                held -= len(keep.popleft())
        frames = [f for b in keep for f in b.frames()]
        return frames[-n:] if n else []

    def count(self) -> int:
        return sum(len(b) for b in self.batches())

    def _filter(self, start_time, end_time, types, symbols) -> FrameFilter:
        """Filters as the CLI takes them, checked: names or ids, comma lists, text times (``+10s`` from the
        first frame, ``-5s`` before the last)."""
        return frame_filter(self.registry, start_time, end_time, types, symbols, first_time=self.first_time,
                            last_time=self.last_time)

    def _follow_filter(self, start, start_time, end_time, types, symbols) -> FrameFilter:
        """:meth:`_filter` for a follower whose ``start`` may be a text time: a word it does not take
        (``'start'``) is named as a bad start, with the words it takes, not as a bad time."""
        try:
            return self._filter(start_time, end_time, types, symbols)
        except UsageError as e:
            if isinstance(start, str) and start is start_time and str(e).startswith("bad time"):
                from .times import TIME_FORMS

                raise UsageError(f"bad follow start {start!r}: 'beginning', 'end', (page, offset) or a time "
                                 f"({TIME_FORMS})") from None
            raise

    def first_time(self) -> int | None:
        """gen_time of the first frame (None while there is none)."""
        return next((int(b.headers["gen_time"][0]) for b in self.batches(batch_size=1)), None)

    def last_time(self) -> int | None:
        """gen_time of the last frame (None while there is none)."""
        frames = self.last(1)
        return frames[0].gen_time if frames else None


class Reader(BatchQueries):
    """Read-only access to a journal given its first page's path.

    Iterate for every committed frame; ``follow()`` to wait for new ones;
    ``batches()`` for numpy arrays. After iteration, ``damage`` says where the
    valid data ended if the journal is damaged (iteration stops there).
    """

    def __init__(self, path: str | os.PathLike, *, registry: TypeRegistry | None = None, name: str | None = None):
        self.pages = PageSet(path, registry=registry, name=name)
        self.path = self.pages.path
        #: how commands show the journal: its path, or a Kungfu journal's location and dest
        self.name = self.pages.name
        self.fmt: JournalFormat = self.pages.fmt
        self.registry = self.pages.registry
        self.kungfu = self.pages.kungfu
        self.first_page = self.pages.first
        self.damage: Damage | None = None
        self.page(self.first_page)

    @classmethod
    def wait_open(
        cls, path: str | os.PathLike, *, registry: TypeRegistry | None = None,
        stop: Callable[[], bool] | threading.Event | None = None, poll: float = 0.05,
        on_wait: Callable[[str], None] | None = None, name: str | None = None,
    ) -> Reader | None:
        """Open ``path``, waiting while it does not exist or its header is unwritten (as ``tail -F``).

        Returns None if ``stop`` fires first.
        """
        told = False
        while True:
            try:
                return cls(path, registry=registry, name=name)
            except NotYetWritten as e:
                if on_wait and not told:
                    on_wait(str(e))
                    told = True
            if stopped(stop):
                return None
            time.sleep(poll)

    # -- pages (the page set's) -------------------------------------------------
    def page(self, index: int) -> Page:
        """Page ``index``, mapped read-only (raises NotYetWritten if it is not there)."""
        return self.pages.page(index)

    def page_path(self, index: int) -> str:
        """The file of page ``index`` (kftools: ``<path>.<n>`` from 0; Kungfu: ``{dest:08x}.{id}.journal`` from 1)."""
        return self.pages.path_of(index)

    def page_count(self) -> int:
        """Number of page files present."""
        return self.pages.count()

    def page_indices(self) -> range:
        """Indices of the page files present, in order (at least the first)."""
        return self.pages.indices()

    def end_position(self) -> Position:
        """(page, cursor) just after the last committed frame, right now."""
        return self.pages.end_position()

    def writer_state(self) -> tuple[WriterState, int]:
        """``(state, pid)``; state is ALIVE, EXITED, CRASHED or UNKNOWN (an engine that leaves no trace)."""
        return self.pages.writer_state()

    # -- reading ---------------------------------------------------------------
    def _record(self, damage: Damage | None) -> None:
        if damage is None or self.damage is None:
            self.damage = damage

    def walk(self, filt: FrameFilter | None = None) -> Walk:
        """A new pass over this journal's frames through ``filt``; its damage becomes ``damage``."""
        return Walk(self.pages, filt, on_damage=self._record)

    def batches(
        self,
        batch_size: int = DEFAULT_BATCH,
        *,
        start: Position | None = None,
        until: Position | None = None,
        start_time: int | None = None,
        end_time: int | None = None,
        types: Iterable[int] | None = None,
        symbols: Iterable[str] | None = None,
        skip: Callable[[Page], bool] | None = None,
    ) -> Iterator[FrameBatch]:
        """Committed frames as :class:`FrameBatch` (one page each, at most ``batch_size`` frames), filtered.

        Filters take what the CLI takes: ``types`` names or ids, ``symbols`` a
        list or a comma list, ``start_time``/``end_time`` ns, ISO-8601 or ``+10s``
        from the first frame. ``start``/``until`` are (page, offset) positions;
        a time given as ``start`` is a ``start_time``.
        """
        if start is not None and not isinstance(start, tuple):
            if start_time is not None:
                raise UsageError("give start (a time) or start_time, not both")
            start, start_time = None, start
        filt = self._filter(start_time, end_time, types, symbols)
        yield from self.walk(filt).batches(start, until, batch_size, skip)

    def last(self, n: int, **filters) -> list[Frame]:
        """The last ``n`` frames matching ``filters`` (as ``tail -n``), in order.

        Sealed pages whose summary holds are not walked unless their frames are among the last ``n``: the
        cost is the last page's, not the journal's; damage is found where the full walk finds it.
        """
        from .summaries import Summaries

        skipped: list[int] = []
        keep: collections.deque = collections.deque()
        held = 0
        for b in self.batches(skip=Summaries(self.pages).skipper(lambda s: skipped.append(s.index)), **filters):
            keep.append(b)
            held += len(b)
            while keep and held - len(keep[0]) >= n:
                held -= len(keep.popleft())
            PageSet.release(b.page, 0, int(b.offsets[-1]))  # what is kept is read again when printed
        if held < n and skipped:
            # nothing was dropped: every batch walked is held; the summarised pages before them fill up to n
            damage = self.damage
            for k in ("start", "until"):
                filters.pop(k, None)
            by_page: dict[int, list] = {}
            for b in keep:
                by_page.setdefault(b.page.index, []).append(b)
            out: list = []
            for i in sorted(set(by_page) | set(skipped), reverse=True):
                if i in skipped:
                    start = (i, self.pages.fmt.frame_start)
                    part = list(self.batches(start=start, until=(i, self.page(i).cursor), **filters))
                else:
                    part = by_page[i]
                out[:0] = part
                held = sum(len(b) for b in out)
                if held >= n:
                    break
            keep = collections.deque(out)
            self.damage = damage
        if not n:
            return []
        # frames are made for the last n rows only: a kept batch holds up to 65,536 (25 ms of frame objects)
        tail: list[FrameBatch] = []
        for b in reversed(keep):
            if n <= 0:
                break
            tail.append(b if len(b) <= n else b.select(slice(len(b) - n, None)))
            n -= len(tail[-1])
        return [f for b in reversed(tail) for f in b.frames()]

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()

    def frames(self, **filters) -> Iterator[Frame]:
        """Every committed frame, filtered as in :meth:`batches`."""
        batches = self.batches(**filters)
        return frames_of_batches(batches, self.fmt)

    def read_batch(self, **filters) -> np.ndarray:
        """All committed frame headers as one structured array (with ``page`` and ``offset`` columns)."""
        parts = []
        for b in self.batches(**filters):
            a = np.empty(len(b), dtype=INDEX_DTYPE)
            a["page"] = b.page.index
            a["offset"] = b.offsets
            for n in FRAME_HEADER.names:
                a[n] = b.headers[n]
            parts.append(a)
        return np.concatenate(parts) if parts else np.empty(0, dtype=INDEX_DTYPE)

    # -- following -------------------------------------------------------------
    def follow(
        self,
        start: str | int | Position = "beginning",
        wait: str | WaitPolicy = "backoff",
        *,
        stop: Callable[[], bool] | threading.Event | None = None,
        idle_timeout: float | None = None,
        types: Iterable[int] | None = None,
        symbols: Iterable[str] | None = None,
        name: str | None = None,
    ) -> Iterator[Frame]:
        """Yield frames as they are committed, forever (or until ``stop`` / ``idle_timeout``).

        ``start`` is "beginning", "end", a gen_time in ns (frames before it are
        skipped) or a (page, offset) position. Page rollover is followed
        without missing or repeating a frame. Stops at damage (see ``damage``).
        ``name`` publishes this follower's position in ``<journal>.readers``
        (one 8-byte store per frame, after the frame was consumed) for
        ``info``, ``tail`` and ``monitor``.
        """
        time_start = start if not isinstance(start, tuple) and start not in ("beginning", "end") else None
        filt = self._follow_filter(start, time_start, None, types, symbols)
        if time_start is not None:
            start = "beginning"  # the filter skips the frames before the time
        policy = wait_policy(wait)
        position = self._start_position(start)  # fixed now, not at the generator's first step
        slot = None if name is None else self._claim(name, position)
        return self.walk(filt).follow_frames(position, policy, stop, idle_timeout, slot)

    def _claim(self, name: str, start: Position) -> PositionSlot:
        """Claim ``name``; a follower starting past the beginning has consumed up to its start."""
        slot = PositionSlot(self.path, name)
        if start > (self.first_page, self.fmt.frame_start):
            last = None
            for b in self.batches(start=(max(self.first_page, start[0] - 1), self.fmt.frame_start), until=start,
                                  batch_size=1 << 20):
                if len(b):
                    last = (b.page.index, int(b.offsets[-1]))
            if last is not None:
                slot.store(*last)
        return slot

    def follow_batches(
        self,
        start: str | int | Position = "beginning",
        wait: str | WaitPolicy = "sleep",
        *,
        stop: Callable[[], bool] | threading.Event | None = None,
        idle_timeout: float | None = None,
        batch_size: int = DEFAULT_BATCH,
        start_time: int | None = None,
        end_time: int | None = None,
        types: Iterable[int] | None = None,
        symbols: Iterable[str] | None = None,
        name: str | None = None,
    ) -> Iterator[FrameBatch]:
        """Like :meth:`follow` but yields :class:`FrameBatch` (for export, tail and relays).

        Yields an empty batch each time it catches up, so a consumer can flush.
        ``name`` publishes the position as in :meth:`follow`, once per batch.
        """
        start_is_time = not isinstance(start, tuple) and start not in ("beginning", "end")
        filt = self._follow_filter(start, start if start_time is None and start_is_time else start_time, end_time,
                                   types, symbols)
        if start_is_time:
            start = filt.start_time if filt.start_time is not None else "beginning"
        policy = wait_policy(wait)
        position = self._start_position(start)
        slot = None if name is None else self._claim(name, position)
        return self.walk(filt).follow_batches(position, policy, stop, idle_timeout, batch_size, slot)


    def _start_position(self, start) -> Position:
        if start == "end":
            return self.end_position()
        if start == "beginning" or isinstance(start, int):
            return self.first_page, self.fmt.frame_start
        if isinstance(start, tuple):
            return start
        raise UsageError(f"bad follow start {start!r}: beginning, end, a time in ns or (page, offset)")

    def close(self) -> None:
        # drop our references only: frames still held keep their page mapped (and valid)
        self.pages.close()

    def _readers(self) -> list[Reader]:
        return [self]

    def __repr__(self) -> str:
        state, pid = self.writer_state()
        return (f"<kftools.Reader {self.name!r} ({self.fmt.name}): {self.page_count()} page(s), writer {state}"
                + (f" pid {pid}" if pid else "") + ">")

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["DEFAULT_BATCH", "HEADER_DTYPE", "INDEX_DTYPE", "Damage", "Frame", "FrameBatch", "Position", "Reader",
           "WaitPolicy", "frame_at", "frames_of", "scan_page", "stopped"]
