"""The live view of several journals: one timeline merged by ``gen_time``.

The merge is ``MergedReader.follow_batches`` (its order, ties and hold policy);
this module only remembers where each merged row is. Per row it keeps the
journal's index, the page and the offset in columns of fixed-size chunks
(1 + 2 + 4 bytes a row while there are at most 256 journals and 65,536 pages
per journal; wider types only once a value needs them), and reads frames back
on demand, as :class:`~kftools.tui.index.JournalIndex` does for one journal.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import NotAJournal
from ..journal.merge import DEFAULT_HOLD, MergedBatch, MergedReader
from ..journal.page import NotYetWritten
from ..journal.reader import Frame, Position, Reader, frames_of
from ..journal.registry import TypeRegistry
from ..journal.resolve import resolve_journals
from ..journal.wait import BackoffWait
from .index import RowFilter
from .watcher import _NAP, _SMALL_BATCH, SPARK_POINTS, PriceSampler, _release

_WIDER = {np.dtype(np.uint8): np.uint16, np.dtype(np.uint16): np.uint32}
#: rows per chunk of a column: growing never copies what is stored, and at most one chunk is slack
_CHUNK = 1 << 16
#: histories of fewer frames are priced whole for the sparklines; longer ones only on their last pages
_SAMPLE_ALL = 2_000_000


class _Column:
    """An append-only unsigned column in fixed-size chunks; a chunk takes a wider type only when a value needs it."""

    def __init__(self, dtype: type[np.unsignedinteger]):
        self.dtype = np.dtype(dtype)
        self.chunks: list[np.ndarray] = []
        self.n = 0

    def extend(self, values: np.ndarray) -> None:
        if not len(values):
            return
        top = int(values.max())
        while top > np.iinfo(self.dtype).max:
            self.dtype = np.dtype(_WIDER[self.dtype])
        i = 0
        while i < len(values):
            used = self.n % _CHUNK
            if used == 0 or self.chunks[-1].dtype != self.dtype:
                if used:  # the last chunk is too narrow now: widen it (one chunk, once)
                    self.chunks[-1] = self.chunks[-1].astype(self.dtype)
                else:
                    self.chunks.append(np.empty(_CHUNK, self.dtype))
            take = min(_CHUNK - used, len(values) - i)
            self.chunks[-1][used : used + take] = values[i : i + take]
            i += take
            self.n += take

    def slice(self, start: int, stop: int) -> np.ndarray:
        """A copy of rows ``start`` to ``stop`` (in the widest type of the chunks they span)."""
        stop = min(stop, self.n)
        if start >= stop:
            return np.empty(0, self.dtype)
        first, last = start // _CHUNK, (stop - 1) // _CHUNK
        parts = [self.chunks[k][max(start - k * _CHUNK, 0) : min(stop - k * _CHUNK, _CHUNK)]
                 for k in range(first, last + 1)]
        return np.concatenate(parts) if len(parts) > 1 else parts[0].copy()

    def view(self) -> np.ndarray:
        return self.slice(0, self.n)

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self.chunks)


def short_names(names: Sequence[str]) -> list[str]:
    """Each journal's shortest distinguishing path suffix: its file name, or as many folders more as it takes."""
    parts = [n.split(os.sep) for n in names]
    out = []
    for i, p in enumerate(parts):
        for k in range(1, len(p) + 1):
            mine = p[-k:]
            if all(q[-k:] != mine for j, q in enumerate(parts) if j != i):
                break
        out.append(os.sep.join(mine) or names[i])
    return out


@dataclass
class JournalState:
    """What the index has seen of one journal (every frame, filtered or not)."""

    name: str  # as the merged reader names it (path, or a Kungfu journal's location)
    short: str  # the journal column's text
    total: int = 0
    newest_time: int | None = None
    end: Position | None = None  # just past the last frame indexed
    pages: int = 0  # pages seen


class MergedIndex:
    """Row number -> (journal, page, offset) of the merged frames matching a filter; thread-safe.

    The same interface as :class:`~kftools.tui.index.JournalIndex` where the app uses it
    (``count``, ``total``, ``newest_time``, ``page_count``, ``frames``, ``row_at_time``),
    with a :class:`MergedReader` where that takes a :class:`Reader`.
    """

    def __init__(self, filt: RowFilter | None = None):
        self.filter = filt or RowFilter()
        self.lock = threading.Lock()
        self.journals: list[JournalState] = []
        self._journal = _Column(np.uint8)
        self._page = _Column(np.uint16)
        self._offset = _Column(np.uint32)
        self.total = 0
        self.count = 0
        self.newest_time: int | None = None
        self.first_time: int | None = None  # gen_time of the first row
        self.types_seen: set[int] = set()  # message types of every frame seen (the `t` key cycles through them)

    def set_journals(self, names: Sequence[str]) -> None:
        """Name the journals (in the merged reader's order) before the first :meth:`add`."""
        with self.lock:
            self.journals = [JournalState(n, s) for n, s in zip(names, short_names(names), strict=True)]

    # -- worker side -----------------------------------------------------------
    def add(self, batch: MergedBatch) -> np.ndarray | None:
        """Index one merged batch; returns the filter mask used (None: all rows)."""
        n = len(batch)
        if not n:
            return None
        masks = [self.filter.mask(p) for p in batch.parts]
        if all(m is None for m in masks):
            mask = None
        else:
            mask = np.concatenate([np.ones(len(p), bool) if m is None else m
                                   for p, m in zip(batch.parts, masks, strict=True)])
            if batch.order is not None:
                mask = mask[batch.order]
        journal, page, offset = batch.journal, batch.page_index, batch.offsets
        if mask is not None:
            journal, page, offset = journal[mask], page[mask], offset[mask]
        times = batch.headers["gen_time"]
        seen = np.unique(batch.headers["msg_type"]).tolist()
        with self.lock:
            self.types_seen.update(seen)
            self._journal.extend(journal)
            self._page.extend(page)
            self._offset.extend(offset)
            for j, p in zip(batch.part_journal, batch.parts, strict=True):
                if not len(p):
                    continue
                st = self.journals[j]
                st.total += len(p)
                st.newest_time = int(p.headers["gen_time"][-1])
                if st.end is None or st.end[0] != p.page_index:
                    st.pages += 1
                st.end = (p.page_index, int(p.offsets[-1]) + p.page.frame_header_size + int(p.headers["length"][-1]))
            if self.first_time is None and len(offset):
                self.first_time = int(times[0] if mask is None else times[mask][0])
            self.total += n
            self.count += len(offset)
            self.newest_time = int(times.max()) if self.newest_time is None else max(self.newest_time,
                                                                                     int(times.max()))
        return mask

    def reached(self, targets: Sequence[tuple[Position, int] | None]) -> bool:
        """Whether every journal has been indexed up to its target: (position, first frame offset of that page),
        None for nothing to wait for. A position at a page's first frame is reached with the page before it."""
        with self.lock:
            for st, target in zip(self.journals, targets, strict=True):
                if target is None:
                    continue
                (page, off), frame_start = target
                if st.end is None:
                    return False
                if off <= frame_start and st.end[0] >= page - 1:
                    continue
                if st.end < (page, off):
                    return False
            return True

    # -- view side -------------------------------------------------------------
    @property
    def page_count(self) -> int:
        """Pages seen, all journals together (the app renews its reader when this changes)."""
        with self.lock:
            return sum(j.pages for j in self.journals)

    def locate(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(journal, page, offset) arrays of rows ``start`` to ``stop`` (exclusive)."""
        with self.lock:
            start, stop = max(0, start), min(stop, self.count)
            stop = max(start, stop)
            return (self._journal.slice(start, stop), self._page.slice(start, stop),
                    self._offset.slice(start, stop))

    def journal_of(self, start: int, stop: int) -> list[int]:
        """The journal (index into ``journals``) of rows ``start`` to ``stop``."""
        return self.locate(start, stop)[0].tolist()

    def frames(self, reader: MergedReader, start: int, stop: int) -> list[Frame]:
        """Decoded frames of rows ``start`` to ``stop``: only these are read."""
        journal, page, offset = self.locate(start, stop)
        if not len(journal):
            return []
        # runs of rows from one page of one journal decode together
        key = journal.astype(np.int64) << 32 | page
        bounds = [0, *(np.flatnonzero(key[1:] != key[:-1]) + 1).tolist(), len(key)]
        out: list[Frame] = []
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=False):
            pg = reader.readers[int(journal[lo])].page(int(page[lo]))
            out += frames_of(pg, offset[lo:hi].astype(np.int64))
        return out

    def row_at_time(self, reader: MergedReader, t: int) -> int:
        """The first row whose gen_time is at or after ``t`` (``count`` if none): a binary search over rows,
        reading one frame a step (merged rows are in gen_time order)."""
        lo, hi = 0, self.count
        while lo < hi:
            mid = (lo + hi) // 2
            f = self.frames(reader, mid, mid + 1)
            if f and f[0].gen_time < t:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def page_of_row(self, row: int) -> tuple[int, int] | None:
        """(journal, page) of ``row``."""
        journal, page, _ = self.locate(row, row + 1)
        return (int(journal[0]), int(page[0])) if len(journal) else None

    @property
    def nbytes(self) -> int:
        """Memory the per-row arrays hold now (capacity, not only what is used)."""
        return self._journal.nbytes + self._page.nbytes + self._offset.nbytes


class MergedWatcher(threading.Thread):
    """Follow ``paths`` from their beginning, merged by ``MergedReader.follow_batches``, into ``index``.

    ``hold`` is that follower's: a journal silent for ``hold`` seconds stops holding the others back.
    """

    def __init__(
        self,
        paths: Sequence[str],
        registry: TypeRegistry,
        index: MergedIndex,
        prices: PriceSampler,
        notify: Callable[[str, object], None],
        *,
        hold: float = DEFAULT_HOLD,
        sample_every: float = 0.25,
    ):
        super().__init__(name="kftools-tail-merged-watcher", daemon=True)
        self.paths = list(paths)
        self.registry = registry
        self.index = index
        self.prices = prices
        self.notify = notify
        self.hold = hold
        self.sample_every = sample_every
        self.stop_event = threading.Event()
        self.caught_up = False
        # the view waits for neither: no summaries are read before the walk, and the walk shows its progress
        self.summaries_read = threading.Event()
        self.summaries_read.set()
        self.history_read = self.summaries_read
        self.error: str | None = None

    def stop(self) -> None:
        self.stop_event.set()

    def run(self) -> None:
        stop = self.stop_event
        try:
            merged = MergedReader.wait_open(self.paths, registry=self.registry, stop=stop,
                                            on_wait=lambda msg: self.notify("waiting", msg))
            if merged is None:
                return
            with merged:
                self.index.set_journals(merged.journals)
                self.notify("opened", [r.path for r in merged.readers])
                # caught up: every journal read up to where it ended when we opened it (frames keep coming
                # from live writers, so the follower's "nothing new" may never happen)
                history_end = merged.end_position()
                history = [p for p, _ in history_end]
                targets = [None if end == (r.first_page, r.page(r.first_page).frame_start)
                           else (end, r.page(end[0]).frame_start)
                           for r, end in zip(merged.readers, history_end, strict=True)]
                if all(t is None for t in targets):
                    self.caught_up = True
                    self.notify("caught_up", None)
                current = [-1] * len(merged.readers)
                last_sample = 0.0
                damage_told = False
                # each poll reads every journal's cursor: sleeping longer while nothing comes (10 µs doubling up to
                # 10 ms, back to 10 µs at the next frame) halves the idle CPU of polling every 2 ms; a 10 Hz view
                # does not show the difference
                policy = BackoffWait(spins=0, max_sleep=0.01)
                for batch in merged.follow_batches("beginning", policy, stop=stop, hold=self.hold):
                    if merged.damage is not None and not damage_told:
                        damage_told = True  # that journal has dropped out; the others go on
                        self.notify("damaged", merged.damage)
                    n = len(batch)
                    if not n:
                        if not self.caught_up:  # an empty batch: nothing buffered, nothing new
                            self.caught_up = True
                            self.notify("caught_up", None)
                        continue
                    for j, p in zip(batch.part_journal, batch.parts, strict=True):
                        if p.page_index != current[j]:
                            if current[j] >= 0:
                                _release(merged.readers[j], current[j])
                            current[j] = p.page_index
                    self.index.add(batch)
                    if not self.caught_up:
                        self._sample(batch, history, None)
                        if self.index.reached(targets):
                            self.caught_up = True
                            self.notify("caught_up", None)
                    else:
                        now = time.monotonic()
                        points = 0  # between samples: the last prices stay fresh
                        if now - last_sample >= self.sample_every:
                            last_sample, points = now, 1
                        self._sample(batch, history, points)
                    if self.caught_up and n < _SMALL_BATCH and stop.wait(_NAP):
                        break
                if merged.damage is not None and not damage_told:
                    self.notify("damaged", merged.damage)
        except Exception as e:  # noqa: BLE001 - reported on screen, not a traceback over the TUI
            self.error = str(e)
            self.notify("error", str(e))

    def _sample(self, batch: MergedBatch, history: list[int], points: int | None) -> None:
        """Prices for the sparklines, as the one-journal watcher samples them, journal by journal
        (``points`` None: the history, whose last pages are sampled whole).

        Parts go in the order of their last frame's time, so a symbol traded in two journals ends
        with the price of the later frame.
        """
        parts = sorted(zip(batch.part_journal, batch.parts, strict=True),
                       key=lambda jp: int(jp[1].headers["gen_time"][-1]))
        for j, p in parts:
            if points is not None:
                self.prices.add(p, points)
            elif p.page_index >= history[j] - 1 or self.index.total < _SAMPLE_ALL:
                # sampling a multi-GB history would cost seconds: only its last pages
                self.prices.add(p, SPARK_POINTS)


def probe_many(paths: Sequence[str], registry: TypeRegistry) -> None:
    """Raise the error a bad set of journals deserves before the screen opens.

    A journal named that does not exist is an error here (the merged view would
    otherwise wait for a typo forever, showing nothing); one that exists but is
    not written yet is waited for.
    """
    resolve_journals(paths)  # an empty folder, a journal named twice
    for p in paths:
        if not os.path.lexists(p):
            raise NotAJournal(f"{p}: no such journal")
        try:
            if os.path.isdir(p):
                MergedReader([p], registry=registry).close()  # what in a folder is not a journal is left out
            else:
                Reader(p, registry=registry).close()
        except NotYetWritten:
            pass
