"""The follower worker: reads the journal with the batch API in a thread and feeds a JournalIndex.

It never touches widgets: the view polls the index at its own bounded refresh
rate, and rare events (waiting, opened, stopped) go through ``notify``.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable

import numpy as np

from ..errors import KftoolsError
from ..journal.format import MsgType
from ..journal.pages import PageSet, Position
from ..journal.reader import Damage, FrameBatch, Reader
from ..journal.registry import TypeRegistry
from ..journal.wait import SleepWait
from .index import JournalIndex

#: price series kept per symbol, and how many symbols at most
SPARK_POINTS = 60
MAX_SYMBOLS = 32
_PRICE_FIELDS = ("last_price", "price", "bid_price", "bid", "ask_price", "ask")
#: a live batch smaller than this makes the worker nap, so frames accumulate
#: into bigger batches instead of costing Python overhead per handful of frames
_SMALL_BATCH = 4096
_NAP = 0.004
#: frames a batch holds at most: big, so that the history costs a few round trips for the GIL (the screen starts
#: meanwhile), small enough to keep memory flat (48 bytes a frame)
_HISTORY_BATCH = 1 << 18
#: bytes at the end of the history (what the journal held when the view opened) sampled for the sparklines, some
#: 25,000 frames: a series keeps SPARK_POINTS prices a symbol, so pricing more of the history is pushed out again
_SAMPLE_TAIL = 2 << 20
#: sealed pages holding fewer frames than this are walked (some 20 ms) rather than taken from their summaries
_WALK_WHOLE = 1 << 18


class PriceSampler:
    """Per-symbol last price, sampled into bounded series (for the sparklines)."""

    def __init__(self, registry: TypeRegistry):
        self.series: dict[str, collections.deque] = {}
        self.last: dict[str, float] = {}
        self._fields = {}
        for t in (MsgType.TICKER, MsgType.TRADE):
            mt = registry.get(int(t))
            if mt is not None:
                f = next((n for n in _PRICE_FIELDS if n in mt.layout.names), None)
                if f and "symbol" in mt.layout.names:
                    self._fields[int(t)] = f
        self.lock = threading.Lock()

    def add(self, batch: FrameBatch, points: int) -> None:
        """Keep each symbol's last price (the batch's last frame that has one, whatever its type) and
        record up to ``points`` evenly spaced prices per symbol into its series (0: the last price only)."""
        mts = batch.column("msg_type")
        syms_parts, price_parts, rows_parts = [], [], []
        for t, field in self._fields.items():
            sel = mts == t
            if not sel.any():
                continue
            pay = batch.payload(t, sel)
            syms_parts.append(pay["symbol"])
            price_parts.append(pay[field].astype(float))
            rows_parts.append(np.flatnonzero(sel))
        if not syms_parts:
            return
        order = np.argsort(np.concatenate(rows_parts), kind="stable")  # frame order across types
        syms = np.concatenate(syms_parts)[order]
        prices = np.concatenate(price_parts)[order]
        for s, mask in _by_symbol(syms):
            name = s.split(b"\0", 1)[0].decode("utf-8", "replace")
            series = self.series.get(name)
            if series is None:
                if len(self.series) >= MAX_SYMBOLS:
                    continue
                series = self.series[name] = collections.deque(maxlen=SPARK_POINTS)
            p = prices[mask]
            with self.lock:
                if points:
                    idx = np.unique(np.linspace(0, len(p) - 1, min(points, len(p))).astype(int))
                    series.extend(p[idx].tolist())
                elif not series:
                    series.append(float(p[-1]))
                self.last[name] = float(p[-1])

    def snapshot(self) -> dict[str, tuple[list[float], float]]:
        with self.lock:
            return {k: (list(v), self.last[k]) for k, v in self.series.items() if v}


def _by_symbol(syms: np.ndarray):
    """``(symbol, mask)`` for each distinct symbol, in order: grouped by an integer key of the 16 bytes (sorting
    integers, not byte strings), checked against the symbols themselves."""
    if syms.dtype.itemsize == 16 and len(syms) > 256:
        halves = np.ascontiguousarray(syms).view(np.uint64).reshape(-1, 2)  # a key only: any byte order
        key = halves[:, 0] ^ (halves[:, 1] * np.uint64(0x9E3779B97F4A7C15))
        _keys, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        if np.array_equal(syms[first][inverse], syms):  # no two symbols share a key
            return [(syms[i], inverse == k) for k, i in sorted(enumerate(first.tolist()), key=lambda x: syms[x[1]])]
    return [(s, syms == s) for s in np.unique(syms).tolist()]


class Watcher(threading.Thread):
    """Follow ``path`` from its beginning into ``index`` until ``stop``."""

    def __init__(
        self,
        path: str,
        registry: TypeRegistry,
        index: JournalIndex,
        prices: PriceSampler,
        notify: Callable[[str, object], None],
        *,
        sample_every: float = 0.25,
    ):
        super().__init__(name="kftools-tail-watcher", daemon=True)
        self.path = path
        self.registry = registry
        self.index = index
        self.prices = prices
        self.notify = notify
        self.sample_every = sample_every
        self.stop_event = threading.Event()
        self.caught_up = False
        #: set once the sealed pages' summaries are read (or there are none to read): a check of every page file,
        #: a few system calls each, that the view waits for rather than competing with it for the GIL
        self.summaries_read = threading.Event()
        #: set once the history (what the journal held when it was opened) is in the view's index, or the follower
        #: waits, stops or fails first
        self.history_read = threading.Event()
        self.damage: Damage | None = None
        self.error: str | None = None

    def _at_end(self, reader: Reader) -> bool:
        page, cursor = reader.end_position()
        return _reached(self.index, reader, page, cursor)

    def stop(self) -> None:
        self.stop_event.set()

    def _waiting(self, message: str) -> None:
        self.summaries_read.set()  # nothing to read yet: the view starts and says what it waits for
        self.history_read.set()
        self.notify("waiting", message)

    def run(self) -> None:
        stop = self.stop_event
        try:
            reader = Reader.wait_open(self.path, registry=self.registry, stop=stop,
                                      on_wait=self._waiting)
            if reader is None:
                return
            with reader:
                self.notify("opened", None)
                last_sample = 0.0
                # sampling prices of a multi-GB history would cost seconds: only its last page
                history_page, history_end = reader.end_position()
                current_page = -1
                policy = SleepWait(0.002)
                start, staged = self._summarised(reader, history_page)
                self.summaries_read.set()
                sample_from = _back(reader, (history_page, history_end), _SAMPLE_TAIL)
                for batch in reader.follow_batches(start, policy, stop=stop, batch_size=_HISTORY_BATCH):
                    n = len(batch)
                    if not n and staged is not None:  # the end of a page: of the history, or a damaged one
                        self._publish(staged)
                        self.history_read.set()
                        staged = None
                    if not n:
                        # follow_batches also yields an empty batch at each page's end: check the cursor
                        if not self.caught_up and self._at_end(reader):
                            self.caught_up = True
                            self.history_read.set()
                            self.notify("caught_up", None)
                        continue
                    if batch.page_index != current_page:
                        if current_page >= 0:
                            _release(reader, current_page)
                        current_page = batch.page_index
                    if staged is None:
                        self.index.add(batch)
                    else:
                        staged.add(batch)
                        if _reached(staged, reader, history_page, history_end):
                            self._publish(staged)
                            self.history_read.set()
                            staged = None
                    if not self.caught_up:  # the history: drop what was indexed from our resident set
                        PageSet.release(batch.page, 0, int(batch.offsets[-1]))
                    now = time.monotonic()
                    if not self.caught_up:
                        if (batch.page_index, int(batch.offsets[-1])) >= sample_from:
                            self.prices.add(_frames_from(batch, sample_from), SPARK_POINTS)
                    elif now - last_sample >= self.sample_every:
                        last_sample = now
                        self.prices.add(batch, 1)
                    else:
                        self.prices.add(batch, 0)  # between samples: the last prices stay fresh
                    if self.caught_up and n < _SMALL_BATCH:
                        if stop.wait(_NAP):
                            break
                if staged is not None:  # stopped, or damage in the last page: what was read is shown
                    self._publish(staged)
                self.damage = reader.damage
            if self.damage is not None:
                self.notify("damaged", self.damage)
        except Exception as e:  # noqa: BLE001 - reported on screen, not a traceback over the TUI
            self.error = str(e)
            self.notify("error", str(e))
        finally:
            self.summaries_read.set()
            self.history_read.set()


    def _summarised(self, reader: Reader, history_page: int) -> tuple[Position, JournalIndex | None]:
        """Index the sealed pages whose summary holds without walking them; where the walk starts, and the index
        the walk fills until it has read the history's last page (None: the view's own).

        Only when they hold :data:`_WALK_WHOLE` frames or more (fewer are walked), and never its last page; a
        page's rows are located by a rescan when shown. When only the
        last page is left to walk, the summaries and that page go to the view together: its first screen is the
        bottom, the true last frames with their row numbers, not the end of the page before (a rescan of a whole
        sealed page, then a jump)."""
        from ..journal.summaries import Summaries

        sums = Summaries(reader.pages)
        found = []
        for i in reader.page_indices()[:-1]:  # a next page exists: the walk's rollover rule is kept
            if i >= history_page:
                break
            try:
                s = sums.of(reader.page(i))
            except KftoolsError:
                break  # the walk reports it
            if s is None:
                break
            found.append(s)
        start = (reader.first_page, reader.fmt.frame_start)
        if sum(s.frames for s in found) < _WALK_WHOLE:
            return start, None
        added = JournalIndex(self.index.filter)
        for s in found:
            if not added.add_summary(s):
                break
            start = (s.index + 1, reader.fmt.frame_start)
        if start[0] == history_page:
            return start, added
        self._publish(added)  # pages without a summary before the last: the walk shows its progress
        return start, None

    def _publish(self, staged: JournalIndex) -> None:
        """The view's index takes what ``staged`` holds; the app is told at once (not at its next refresh)."""
        self.index.adopt(staged)
        self.notify("indexed", None)


def _reached(index: JournalIndex, reader: Reader, page: int, cursor: int) -> bool:
    """``index`` holds every frame before ``(page, cursor)``."""
    with index.lock:
        if not index.pages:
            return cursor <= reader.page(page).frame_start
        last = index.pages[-1]
        return (page, cursor) <= (last.index, last.end)


def _back(reader: Reader, end: Position, nbytes: int) -> Position:
    """The position ``nbytes`` of frames before ``end`` (not a frame's start: batches are cut at it), from the
    pages' cursors; the journal's start if it holds fewer."""
    page, off = end
    first = reader.first_page
    while True:
        start = reader.page(page).frame_start
        if off - nbytes >= start or page <= first:
            return (page, max(start, off - nbytes))
        nbytes -= off - start
        page -= 1
        try:
            off = reader.page(page).cursor
        except KftoolsError:
            return (page + 1, reader.fmt.frame_start)


def _frames_from(batch: FrameBatch, position: Position) -> FrameBatch:
    """The frames of ``batch`` at or after ``position`` (a history's sampled end starts inside a batch)."""
    if batch.page_index != position[0]:
        return batch
    return batch.select(slice(int(np.searchsorted(batch.offsets, position[1])), None))


def _release(reader: Reader, page_index: int) -> None:
    """Drop a finished page's mapped memory from our resident set (the OS page cache keeps it).

    Otherwise following a fast writer for minutes shows every page it passed as
    resident memory of the tail; readers refault what they touch again.
    """
    try:
        PageSet.release(reader.page(page_index))
    except KftoolsError:
        pass
