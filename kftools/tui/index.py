"""A compact, lazily built index of a journal's frames for the live view.

The follower worker appends what it sees; the view asks for rows by number.
Per page we keep only counts and a time range; the frame offsets of the live
page grow in a uint32 buffer, and sealed pages are rescanned on demand (pages
never change once sealed) into a small LRU. A few bytes per frame of the
newest page, nothing per frame of older pages.
"""

from __future__ import annotations

import bisect
import collections
import threading
from dataclasses import dataclass

import numpy as np

from ..journal.filter import FrameFilter
from ..journal.format import PAGE_HEADER_SIZE
from ..journal.frames import header_field
from ..journal.pages import PageSet
from ..journal.reader import Frame, FrameBatch, Reader, frame_at
from ..journal.summaries import PageSummary

_CACHE_PAGES = 3


class RowFilter(FrameFilter):
    """The tail's filter: the one :class:`FrameFilter` on types and symbols (time is where the view scrolls);
    ``mask`` is None when it keeps everything."""

    def __init__(self, types=None, symbols=None):
        super().__init__(types=types, symbols=symbols)


@dataclass
class PageEntry:
    index: int
    first_row: int  # row number of this page's first (matching) frame
    count: int = 0  # matching frames
    total: int = 0  # all frames
    end: int = PAGE_HEADER_SIZE  # offset just past the last frame indexed
    first_time: int | None = None
    last_time: int | None = None


class _Growing:
    """An append-only uint32 array with amortised doubling (``reserve``: the rows expected, room made at once)."""

    def __init__(self, reserve: int = 1024):
        self.buf = np.empty(max(1024, reserve), dtype=np.uint32)
        self.n = 0

    def extend(self, values: np.ndarray) -> None:
        need = self.n + len(values)
        if need > len(self.buf):
            new = np.empty(max(need, 2 * len(self.buf)), dtype=np.uint32)
            new[: self.n] = self.buf[: self.n]
            self.buf = new
        self.buf[self.n : need] = values
        self.n = need

    def view(self) -> np.ndarray:
        return self.buf[: self.n]


def _distinct(types: np.ndarray) -> list[int]:
    """The distinct message types of a batch (a count per id when the ids are small: no sort)."""
    if not len(types):
        return []
    if int(types.max()) < 1 << 16:
        return np.flatnonzero(np.bincount(types)).tolist()
    return np.unique(types).tolist()


def _rows_left(batch: FrameBatch) -> int:
    """Rows the rest of ``batch``'s page may hold, from the frames so far (room for its offsets made at once: growing
    a live page's offsets by doubling copied them, 26 ms for a page of 1.6 M frames)."""
    page, n = batch.page, len(batch)
    if not n:
        return 0
    first, last = int(batch.offsets[0]), int(batch.offsets[-1])
    mean = max(1.0, (last - first) / max(1, n - 1))
    return int(min(page.cursor - first, 1 << 27) / mean * 1.05) + n


class JournalIndex:
    """Row number -> (page, offset) for the frames matching a filter; thread-safe.

    The worker calls :meth:`add`; the view calls :meth:`frames`, :meth:`row_at_time`
    with its own :class:`Reader` (readers are not shared between threads).
    """

    def __init__(self, filt: RowFilter | None = None):
        self.filter = filt or RowFilter()
        self.lock = threading.Lock()
        self.pages: list[PageEntry] = []
        self._firsts: list[int] = []
        self._live = _Growing()
        self._live_page: int | None = None  # the page whose offsets _live holds (a summarised page has none)
        self._cache: collections.OrderedDict[int, np.ndarray] = collections.OrderedDict()
        self.total = 0  # every frame seen, filtered or not
        self.count = 0  # matching frames: the rows
        self.newest_time: int | None = None  # gen_time of the newest frame seen
        self.types_seen: set[int] = set()  # message types of every frame seen (the `t` key cycles through them)

    # -- worker side -----------------------------------------------------------
    def add(self, batch: FrameBatch) -> np.ndarray | None:
        """Index one batch; returns the filter mask used (None: all rows)."""
        if not len(batch):
            return None
        mask = self.filter.mask(batch)
        offs = batch.offsets if mask is None else batch.offsets[mask]
        seen = _distinct(batch.column("msg_type"))
        # gen_time of the first and last rows kept, then of the batch's last frame: three values, not a column
        n = len(batch)
        if mask is None:
            kept = [0, n - 1]
        else:
            kept = np.flatnonzero(mask)[[0, -1]].tolist() if len(offs) else []
        times = batch.select(np.array([*kept, n - 1], dtype=np.intp)).column("gen_time")
        pi = batch.page_index
        with self.lock:
            if not self.pages or self.pages[-1].index != pi:
                if self.pages and self.pages[-1].index == self._live_page:
                    self._remember(self.pages[-1].index, self._live.view().copy())
                self._live = _Growing(_rows_left(batch))
                self._live_page = pi
                self.pages.append(PageEntry(pi, self.count))
                self._firsts.append(self.count)
            e = self.pages[-1]
            self._live.extend(offs)
            e.count += len(offs)
            e.total += len(batch)
            last = batch.select(slice(-1, None))
            e.end = int(last.offsets[0]) + batch.page.frame_header_size + int(last.column("length")[0])
            if len(offs):
                if e.first_time is None:
                    e.first_time = int(times[0])
                e.last_time = int(times[1])
            self.total += len(batch)
            self.count += len(offs)
            self.newest_time = int(times[-1])
            self.types_seen.update(seen)
        return mask

    def add_summary(self, s: PageSummary) -> bool:
        """Index a sealed page from its summary (its rows are located by a rescan when shown); False when the
        filter needs the frames themselves (symbols)."""
        f = self.filter
        if f.symbols is not None or f.start_time is not None or f.end_time is not None:
            return False
        count = s.frames if f.types is None else sum(s.by_type.get(t, 0) for t in f.types)
        with self.lock:
            e = PageEntry(s.index, self.count, count, s.frames, s.cursor)
            if count:
                e.first_time, e.last_time = s.min_time, s.last_time
            self.pages.append(e)
            self._firsts.append(self.count)
            self.total += s.frames
            self.count += count
            if s.frames:
                self.newest_time = s.last_time
            self.types_seen.update(s.by_type)
        return True

    def adopt(self, other: JournalIndex) -> None:
        """Take what ``other`` (same filter) indexed, at once: the view sees none of it, then all of it."""
        with other.lock:
            state = (list(other.pages), list(other._firsts), other._live, other._live_page,
                     collections.OrderedDict(other._cache), other.total, other.count, other.newest_time,
                     set(other.types_seen))
        with self.lock:
            (self.pages, self._firsts, self._live, self._live_page, self._cache, self.total, self.count,
             self.newest_time, self.types_seen) = state

    def _remember(self, page: int, offsets: np.ndarray) -> None:
        self._cache[page] = offsets
        self._cache.move_to_end(page)
        while len(self._cache) > _CACHE_PAGES:
            self._cache.popitem(last=False)

    # -- view side -------------------------------------------------------------
    @property
    def page_count(self) -> int:
        return len(self.pages)

    def _page_offsets(self, reader: Reader, k: int, need: int | None = None) -> np.ndarray:
        """The matching offsets of the k-th indexed page (live buffer, cache or a rescan); with ``need``, at least
        its first ``need`` (a rescan stops there: the first rows of a big page cost what they hold)."""
        with self.lock:
            e = self.pages[k]
            if k == len(self.pages) - 1 and e.index == self._live_page:
                return self._live.view()[: e.count]
            cached = self._cache.get(e.index)
            if cached is not None:
                self._cache.move_to_end(e.index)
                return cached
            end = e.end
        parts = []
        got, whole = 0, True
        size = 65536 if need is None else min(65536, max(4096, need))
        for b in reader.batches(start=(e.index, reader.page(e.index).frame_start), until=(e.index, end),
                                batch_size=size):
            m = self.filter.mask(b)
            parts.append((b.offsets if m is None else b.offsets[m]).astype(np.uint32))
            PageSet.release(b.page, 0, int(b.offsets[-1]))  # the rows shown are read again: keep RSS flat
            got += len(parts[-1])
            if need is not None and got >= need and got < e.count:
                whole = False
                break
        offs = np.concatenate(parts) if parts else np.empty(0, np.uint32)
        if whole:
            with self.lock:
                self._remember(e.index, offs)
        return offs

    def locate(self, reader: Reader, start: int, stop: int) -> list[tuple[int, int]]:
        """(page, offset) of rows ``start`` to ``stop`` (exclusive)."""
        out: list[tuple[int, int]] = []
        start = max(0, start)
        with self.lock:
            stop = min(stop, self.count)
            firsts = list(self._firsts)
        row = start
        while row < stop:
            k = bisect.bisect_right(firsts, row) - 1
            while k + 1 < len(firsts) and firsts[k + 1] <= row:
                k += 1
            i = row - firsts[k]
            offs = self._page_offsets(reader, k, need=i + (stop - row))
            if i >= len(offs):  # an empty (fully filtered) page
                k_next = k + 1
                if k_next >= len(firsts):
                    break
                row = max(row, firsts[k_next])
                continue
            take = offs[i : i + (stop - row)]
            pi = self.pages[k].index
            out.extend((pi, o) for o in take.tolist())
            row += len(take)
        return out

    def frames(self, reader: Reader, start: int, stop: int) -> list[Frame]:
        """Decoded frames of rows ``start`` to ``stop``: only these are read."""
        return [frame_at(reader.page(pi), off) for pi, off in self.locate(reader, start, stop)]

    def page_of_row(self, row: int) -> int | None:
        with self.lock:
            if not self.pages:
                return None
            k = max(0, bisect.bisect_right(self._firsts, row) - 1)
            return self.pages[k].index

    def row_at_time(self, reader: Reader, t: int) -> int:
        """The first row whose gen_time is at or after ``t`` (``count`` if none)."""
        with self.lock:
            entries = [(k, e.first_row, e.last_time, e.index) for k, e in enumerate(self.pages)]
            count = self.count
        for k, first, last, pi in entries:
            if last is None or last < t:
                continue
            offs = self._page_offsets(reader, k).astype(np.int64)
            times = header_field(reader.page(pi), offs, "gen_time")
            # gen_time is non-decreasing within a writer's journal; searchsorted is enough
            return first + int(np.searchsorted(times, t, side="left"))
        return count
