"""Several journals read as one timeline, merged by ``gen_time`` (:func:`open_many`).

Order: frames come out by ``gen_time``; ties go to the journal given first, then
to the earlier frame of that journal. Each journal's own order is always kept:
a frame whose ``gen_time`` is earlier than one before it in its own journal comes
right after that one (the order a heap merge of the journals gives, and what a
reader of each journal saw). The merge works on whole batches with numpy: a
stable sort of the buffered frames of every journal up to the point where no
journal can still deliver an earlier frame.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Literal

import numpy as np

from ..errors import NotAJournal, UsageError
from .filter import FrameFilter, journal_types
from .format import FRAME_HEADER_SIZE, PageFlag, WriterState
from .frames import HEADER_DTYPE, INDEX_DTYPE, Frame, FrameBatch, frames_of
from .framestream import stream as _frame_stream
from .layout import Field
from .page import Page
from .pages import Position
from .reader import BatchQueries, Reader
from .registry import TypeRegistry
from .resolve import JournalRef, resolve_journals
from .scan import gather_var
from .walk import DEFAULT_BATCH, Damage, WaitPolicy, stopped, wait_policy

try:
    from . import _merge as _merge_c  # type: ignore[attr-defined]  # the C extension setup.py builds; no stub
except ImportError:  # pragma: no cover - the extension is built by pip install
    _merge_c = None

_NO_KEY = np.iinfo(np.int64).min
#: ``read_batch`` rows of a merged reader: the frame index plus the journal's position in ``journals``
MERGED_INDEX_DTYPE = np.dtype([("journal", Field("journal", "u16").numpy_code), *[(n, INDEX_DTYPE[n]) for n in INDEX_DTYPE.names or ()]])
#: how long a merged follower waits for a silent journal before releasing frames without it (seconds)
DEFAULT_HOLD = 0.05


class MergedBatch:
    """Frames of several journals in merged order, as numpy arrays.

    ``headers`` (frame header dtype) and ``journal`` (index into ``journals``) are
    in merged order; ``parts`` are the per-journal :class:`FrameBatch` slices the
    frames come from, and ``order`` maps merged row i to row ``order[i]`` of
    those parts concatenated (None: already in order).
    """

    __slots__ = ("journals", "parts", "part_journal", "order", "_headers", "_journal", "_len")

    def __init__(self, journals: Sequence[str], parts: list[FrameBatch], part_journal: list[int],
                 order: np.ndarray | None, headers: np.ndarray | None = None):
        self.journals = journals
        self.parts = parts
        self.part_journal = part_journal
        self.order = order
        self._len = sum(len(p) for p in parts)
        self._headers: np.ndarray | None = headers
        self._journal: np.ndarray | None = None

    @property
    def headers(self) -> np.ndarray:
        """Frame headers in merged order (frame header dtype)."""
        if self._headers is None:
            parts, order = self.parts, self.order
            if len(parts) == 1:
                self._headers = parts[0].headers
            elif parts:
                # as plain 8-byte words: numpy copies those far faster than structured records
                words = np.concatenate([_words(p.headers) for p in parts])
                if order is not None:
                    words = words.take(order, axis=0)
                self._headers = words.view(HEADER_DTYPE).reshape(-1)
            else:
                self._headers = np.empty(0, HEADER_DTYPE)
        return self._headers

    @property
    def journal(self) -> np.ndarray:
        """Index into ``journals`` of each frame's journal (uint16)."""
        if self._journal is None:
            self._journal = self._merged([np.full(len(p), j, np.uint16)
                                          for j, p in zip(self.part_journal, self.parts, strict=True)])
        return self._journal

    def __len__(self) -> int:
        return self._len

    def _merged(self, per_part: list) -> np.ndarray:
        a = np.concatenate(per_part) if per_part else np.empty(0)
        return a if self.order is None else a[self.order]

    @property
    def offsets(self) -> np.ndarray:
        """Offset of each frame in its page."""
        return self._merged([p.offsets for p in self.parts])

    @property
    def page_index(self) -> np.ndarray:
        """Page index of each frame in its journal."""
        return self._merged([np.full(len(p), p.page.index, np.uint32) for p in self.parts])

    def frames(self) -> list[Frame]:
        return list(self.iter_frames())

    def iter_frames(self) -> Iterator[Frame]:
        """The frames in merged order, made as they are asked for."""
        return _stream(self.runs(), foreign=any(not p.page.fmt.native for p in self.parts))

    def runs(self) -> Iterator[tuple[Page, np.ndarray]]:
        """(page, offsets) of each run of consecutive merged frames from one page."""
        if self.order is None:
            for p in self.parts:
                yield p.page, p.offsets
            return
        parts = self.parts
        part = np.repeat(np.arange(len(parts), dtype=np.intp), [len(p) for p in parts])[self.order]
        offsets = self.offsets
        bounds = [0, *(np.flatnonzero(part[1:] != part[:-1]) + 1).tolist(), len(part)]
        first = part[bounds[:-1]].tolist()
        for j, lo, hi in zip(first, bounds[:-1], bounds[1:], strict=False):
            yield parts[j].page, offsets[lo:hi]

    def row_pages(self) -> list[Page]:
        """The page of each frame, in merged order."""
        out: list[Page] = []
        for page, offsets in self.runs():
            out += [page] * len(offsets)
        return out

    def raw_frames(self) -> tuple[np.ndarray, np.ndarray]:
        """A writable copy of the whole frames concatenated in merged order, and their start offsets plus the end
        (as ``FrameBatch.raw_frames``)."""
        lens = self.headers["length"].astype(np.int64) + FRAME_HEADER_SIZE
        starts = np.zeros(len(lens) + 1, np.int64)
        np.cumsum(lens, out=starts[1:])
        data = np.empty(int(starts[-1]), np.uint8)
        i = 0
        for page, offsets in self.runs():
            k = len(offsets)
            if page.fmt.native:
                gather_var(page.mm, np.ascontiguousarray(offsets), lens[i : i + k], 0, data[starts[i] : starts[i + k]])
            else:  # a Kungfu journal's frames, re-headed in kftools' layout
                data[starts[i] : starts[i + k]] = FrameBatch(page, offsets, self.headers[i : i + k]).raw_frames()[0]
            i += k
        return data, starts

    def _by_type(self, msg_type: int, get) -> np.ndarray:
        per_part = [get(p) for p in self.parts]
        out = np.concatenate(per_part)
        if self.order is None:
            return out
        # the rows of this type in concatenated order, put in the order their merged positions give
        rank = np.empty(len(self.order), np.int64)
        rank[self.order] = np.arange(len(self.order))
        mt = np.concatenate([p.headers["msg_type"] for p in self.parts])
        return out[np.argsort(rank[mt == msg_type], kind="stable")]

    def payload(self, msg_type: int) -> np.ndarray:
        """The typed payloads of this batch's frames of ``msg_type``, in merged order."""
        return self._by_type(msg_type, lambda p: p.payload(msg_type))

    def symbols(self) -> np.ndarray:
        """The ``symbol`` field (``S16``) of each frame in merged order, b"" where the type has none."""
        return self._merged([p.symbols() for p in self.parts]) if self.parts else np.empty(0, "S16")

    def by_journal(self) -> Iterator[tuple[str, FrameBatch]]:
        """The frames of each journal in this batch, as (journal, FrameBatch) in journal order."""
        for j, p in zip(self.part_journal, self.parts, strict=True):
            yield self.journals[j], p


def _stream(runs: Iterator[tuple[Page, np.ndarray]], foreign: bool = False) -> Iterator[Frame]:
    """Frames at each (page, offsets) run in turn, made by the frame stream (C when built), as Reader.frames.

    ``foreign``: some pages are of another format (Kungfu's), whose headers the stream cannot read in place."""
    if foreign:
        return (f for page, offsets in runs for f in frames_of(page, offsets))
    def refill(stream) -> bool:
        for page, offsets in runs:
            stream.feed(page, page.mm, offsets)
            return True
        return False

    return _frame_stream(refill)


def _words(headers: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(headers).view(np.uint64).reshape(len(headers), HEADER_DTYPE.itemsize // 8)


class _Buffer:
    """Frames of one journal read but not yet released, with their merge keys."""

    __slots__ = ("chunks", "runmax", "count")

    def __init__(self):
        self.chunks: collections.deque[tuple[FrameBatch, np.ndarray]] = collections.deque()
        self.runmax = _NO_KEY
        self.count = 0

    def add(self, b: FrameBatch, filt: FrameFilter) -> None:
        """Buffer the frames of ``b`` that ``filt`` selects (keys come from every frame of the journal)."""
        if not len(b):
            return
        # the key keeps the journal's own order: a gen_time below an earlier one takes that one's key
        keys = np.maximum.accumulate(b.headers["gen_time"].astype(np.int64, copy=False))
        if self.runmax > keys[0]:
            np.maximum(keys, self.runmax, out=keys)
        self.runmax = int(keys[-1])
        chosen = filt(b)
        if len(chosen) < len(b):
            keys = keys[np.searchsorted(b.offsets, chosen.offsets)]
        if len(chosen):
            self.chunks.append((chosen, keys))
            self.count += len(chosen)

    def take(self, key: int, inclusive: bool, out_parts: list, out_keys: list) -> int:
        """Move the frames with merge key below ``key`` (or equal, if ``inclusive``) to the outputs."""
        side: Literal["left", "right"] = "right" if inclusive else "left"
        taken = 0
        while self.chunks:
            b, keys = self.chunks[0]
            if (keys[-1] <= key) if inclusive else (keys[-1] < key):
                self.chunks.popleft()
                out_parts.append(b)
                out_keys.append(keys)
                taken += len(b)
                continue
            k = int(np.searchsorted(keys, key, side))
            if k:
                out_parts.append(FrameBatch(b.page, b.offsets[:k], b.headers[:k]))
                out_keys.append(keys[:k])
                self.chunks[0] = (FrameBatch(b.page, b.offsets[k:], b.headers[k:]), keys[k:])
                taken += k
            break
        self.count -= taken
        return taken


def _release(journals: Sequence[str], bufs: list[_Buffer], bound: tuple[int, int] | None) -> MergedBatch:
    """The buffered frames up to ``bound`` = (key, journal) in merge order (every buffered frame if None)."""
    parts: list[FrameBatch] = []
    keys: list[np.ndarray] = []
    part_journal: list[int] = []
    for i, buf in enumerate(bufs):
        if not buf.count:
            continue
        before = len(parts)
        if bound is None:
            buf.take(np.iinfo(np.int64).max, True, parts, keys)
        else:
            buf.take(bound[0], i <= bound[1], parts, keys)
        part_journal.extend([i] * (len(parts) - before))
    order = headers = None
    if len(set(part_journal)) > 1:
        order, headers = merge_parts(keys, [p.headers for p in parts])
    return MergedBatch(journals, parts, part_journal, order, headers)


def merge_parts(keys: list[np.ndarray], headers: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Parts whose ``keys`` are each non-decreasing, merged: each merged row's index in the parts'
    concatenation, and the headers in merged order. Ties go to the part given first, then to position
    (a stable sort of the concatenated keys); in C one pass copies each run of rows once."""
    if _merge_c is not None:
        total = sum(len(k) for k in keys)
        order: np.ndarray = np.empty(total, np.int64)
        merged = np.empty(total, HEADER_DTYPE)
        _merge_c.merge([np.ascontiguousarray(k, np.int64) for k in keys],
                       [np.ascontiguousarray(h, HEADER_DTYPE) for h in headers], HEADER_DTYPE.itemsize, order, merged)
        return order, merged
    # concatenated in journal order, so a stable sort on the key breaks ties by journal, then position
    order = np.argsort(np.concatenate(keys), kind="stable")
    words = np.concatenate([_words(h) for h in headers]).take(order, axis=0)
    return order, words.view(HEADER_DTYPE).reshape(-1)


class MergedReader(BatchQueries):
    """Several journals read as one, in ``gen_time`` order (see the module docstring for ties).

    The same calls as :class:`Reader`: iterate, ``frames``, ``batches`` (which yield
    :class:`MergedBatch`), ``last``, ``count``, ``read_batch``, ``follow`` and
    ``follow_batches``, with the same filters. ``journals`` are the paths in the
    order given; each :class:`Frame` says which one it came from (``frame.journal``).
    ``damage`` is the first damage met (that journal ends there; the others go on);
    ``late`` counts frames a follower released out of order (see :meth:`follow_batches`).
    Files in a folder that are not journals are left out and listed in ``skipped``.
    """

    def __init__(self, paths: Iterable[str | os.PathLike], *, registry: TypeRegistry | None = None,
                 readers: list[Reader] | None = None, refs: list[JournalRef] | None = None):
        """``refs``: what :func:`~kftools.journal.resolve.resolve_journals` found ``paths`` name, if the caller
        asked already (folders are then not listed twice)."""
        paths = list(paths)
        self.skipped: list[str] = []
        self.readers = readers if readers is not None else []
        try:
            if readers is None:
                for ref in refs if refs is not None else resolve_journals(paths):
                    try:
                        self.readers.append(Reader(ref.path, registry=registry, name=ref.label))
                    except NotAJournal as e:
                        if not ref.in_folder:
                            raise
                        self.skipped.append(str(e))
        except BaseException:
            self.close()
            raise
        if not self.readers:
            raise NotAJournal(f"no journal in {', '.join(os.fspath(p) for p in paths)} ({'; '.join(self.skipped)})")
        self.journals = [r.name for r in self.readers]  # a Kungfu journal by its location
        self.registry = self.readers[0].registry
        self.damage: Damage | None = None
        self.late = 0

    @classmethod
    def wait_open(cls, paths: Iterable[str | os.PathLike], *, registry: TypeRegistry | None = None,
                  stop: Callable[[], bool] | threading.Event | None = None,
                  on_wait: Callable[[str], None] | None = None,
                  refs: list[JournalRef] | None = None) -> MergedReader | None:
        """Open every journal, waiting for those that do not exist yet; None if ``stop`` fires first."""
        readers: list[Reader] = []
        skipped = []
        paths = list(paths)
        for ref in refs if refs is not None else resolve_journals(paths):
            if ref.in_folder:
                try:  # a folder's journals are there already; what is not a journal is left out
                    readers.append(Reader(ref.path, registry=registry, name=ref.label))
                except NotAJournal as e:
                    skipped.append(str(e))
                continue
            r = Reader.wait_open(ref.path, registry=registry, stop=stop, on_wait=on_wait, name=ref.label)
            if r is None:
                for x in readers:
                    x.close()
                return None
            readers.append(r)
        if not readers:
            raise NotAJournal(f"no journal in {', '.join(os.fspath(p) for p in paths)} ({'; '.join(skipped)})")
        merged = cls(paths, readers=readers)
        merged.skipped = skipped
        return merged

    @property
    def path(self) -> str:
        return ", ".join(self.journals)

    def _note(self, reader: Reader) -> bool:
        if reader.damage is not None and self.damage is None:
            self.damage = reader.damage
        return self.damage is not None

    def _per_journal(self, filt: FrameFilter, types) -> list[FrameFilter]:
        """``filt`` (its times and symbols) for each journal, with ``types`` resolved in that journal's own
        registry (Kungfu generations number their types differently; see :func:`~.filter.journal_types`)."""
        per = journal_types([r.registry for r in self.readers], types)
        if per is None:
            return [filt] * len(self.readers)
        return [FrameFilter(filt.start_time, filt.end_time, ids, filt.symbols) for ids in per]

    # -- snapshot --------------------------------------------------------------
    def batches(self, batch_size: int = DEFAULT_BATCH, *, until: Sequence[Position] | None = None,
                start_time: int | None = None, end_time: int | None = None,
                types: Iterable[int] | None = None, symbols: Iterable[str] | None = None) -> Iterator[MergedBatch]:
        """Committed frames of every journal in merged order, as :class:`MergedBatch` (filtered as ``Reader.batches``;
        ``until``: one end position per journal, as :meth:`end_position` gives).

        A damaged journal ends where its damage begins; the others are still read to their end, and
        ``damage`` says where the first damaged journal stopped.
        """
        self.damage = None
        filts = self._per_journal(self._filter(start_time, end_time, None, symbols), types)
        ends = list(until) if until is not None else [None] * len(self.readers)
        streams = [r.batches(batch_size, until=e) for r, e in zip(self.readers, ends, strict=True)]
        bufs = [_Buffer() for _ in streams]
        live = [True] * len(streams)
        while True:
            for i, s in enumerate(streams):
                while live[i] and not bufs[i].count:
                    b = next(s, None)
                    if b is None:
                        live[i] = False
                        self._note(self.readers[i])
                    else:
                        bufs[i].add(b, filts[i])
            if not any(b.count for b in bufs):
                if not any(live):
                    return
                continue
            # no live journal can deliver a frame below the last one it delivered
            bound = min(((bufs[i].runmax, i) for i in range(len(bufs)) if live[i]), default=None)
            out = _release(self.journals, bufs, bound)
            if len(out):
                yield out

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()

    def frames(self, **filters) -> Iterator[Frame]:
        """Every committed frame of every journal in merged order, filtered as in :meth:`batches`."""
        return _stream((run for b in self.batches(**filters) for run in b.runs()),
                       foreign=any(not r.fmt.native for r in self.readers))

    def read_batch(self, **filters) -> np.ndarray:
        """Every committed frame header in merged order as one structured array (``journal``, ``page``, ``offset``...)."""
        out = []
        for b in self.batches(**filters):
            a = np.empty(len(b), MERGED_INDEX_DTYPE)
            a["journal"] = b.journal
            a["page"] = b.page_index
            a["offset"] = b.offsets
            for n in HEADER_DTYPE.names or ():
                a[n] = b.headers[n]
            out.append(a)
        return np.concatenate(out) if out else np.empty(0, MERGED_INDEX_DTYPE)

    def end_position(self) -> list[Position]:
        """Each journal's (page, cursor) just after its last committed frame, right now."""
        return [r.end_position() for r in self.readers]

    # -- following -------------------------------------------------------------
    def follow(self, start: str | int | Sequence[Position] = "beginning", wait: str | WaitPolicy = "backoff", *,
               stop: Callable[[], bool] | threading.Event | None = None, idle_timeout: float | None = None,
               types: Iterable[int] | None = None, symbols: Iterable[str] | None = None,
               hold: float = DEFAULT_HOLD) -> Iterator[Frame]:
        """Frames of every journal as they are committed, in merged order (see :meth:`follow_batches`)."""
        for b in self.follow_batches(start, wait, stop=stop, idle_timeout=idle_timeout, types=types,
                                     symbols=symbols, hold=hold):
            yield from b.iter_frames()

    def follow_batches(self, start: str | int | Sequence[Position] = "beginning", wait: str | WaitPolicy = "sleep", *,
                       stop: Callable[[], bool] | threading.Event | None = None, idle_timeout: float | None = None,
                       batch_size: int = DEFAULT_BATCH, start_time: int | str | None = None,
                       end_time: int | str | None = None,
                       types: Iterable[int] | None = None, symbols: Iterable[str] | None = None,
                       hold: float = DEFAULT_HOLD) -> Iterator[MergedBatch]:
        """Follow every journal at once and release frames in merged order.

        A frame is released once every journal has shown a frame at or after its
        ``gen_time`` (filtered-out frames count: they prove the journal got that
        far), so nothing is released that a slower journal could still precede.
        A journal that shows nothing new for ``hold`` seconds stops holding the
        others back, as does one whose writer closed it; its next frames, if they
        come, are released as they arrive, and those earlier than frames already
        released are counted in ``late`` (the only case of out-of-order output).
        ``hold=0`` releases in arrival order; ``hold=float('inf')`` waits for every
        journal forever. ``start`` is "beginning", "end", a gen_time in ns, or one
        (page, offset) per journal. Yields an empty batch each time it catches up.
        A damaged journal drops out where its damage begins (``damage`` names the
        first); the others are still followed.
        """
        if start_time is None and not isinstance(start, bool) and (
                isinstance(start, int) or (isinstance(start, str) and start not in ("beginning", "end"))):
            filt = self._follow_filter(start, start, end_time, None, symbols)
            start = "beginning"  # a time: frames before it are filtered out
        else:
            filt = self._filter(start_time, end_time, None, symbols)
        filts = self._per_journal(filt, types)
        policy = wait_policy(wait)
        if start == "end":
            positions = self.end_position()
        elif start == "beginning" or isinstance(start, int):
            positions = [(r.first_page, r.fmt.frame_start) for r in self.readers]
        elif isinstance(start, Sequence) and len(start) == len(self.readers):
            positions = [tuple(p) for p in start]  # type: ignore[misc]
        else:
            raise UsageError(f"bad follow start {start!r}: beginning, end, a time in ns or one (page, offset) per journal")
        return self._follow(positions, filts, policy, stop, idle_timeout, batch_size, hold)

    def _poll(self, i: int, pos: Position, batch_size: int) -> tuple[list[FrameBatch], Position]:
        """New frames of journal ``i`` since ``pos`` (unfiltered), and the position after them."""
        r = self.readers[i]
        out = []
        for b in r.batches(batch_size, start=pos):
            out.append(b)
            pos = (b.page.index, int(b.offsets[-1]) + b.page.frame_header_size + int(b.headers["length"][-1]))
            break  # one batch a turn: a long backlog is merged as it is read, not held whole
        return out, pos

    def _closed(self, i: int, pos: Position) -> bool:
        try:
            return bool(self.readers[i].page(pos[0]).flags & PageFlag.CLOSED)
        except Exception:  # noqa: BLE001 - a page not there yet is not closed
            return False

    def _follow(self, positions, filts, policy, stop, idle_timeout, batch_size, hold) -> Iterator[MergedBatch]:
        n = len(self.readers)
        bufs = [_Buffer() for _ in range(n)]
        now = time.monotonic()
        last_news = [now] * n
        idle_since = now
        released = _NO_KEY  # highest merge key released so far
        caught_up = False
        dropped: set[int] = set()
        self.damage = None
        self.late = 0
        while True:
            news = False
            for i in range(n):
                if i in dropped:
                    continue
                if bufs[i].count >= batch_size:
                    last_news[i] = time.monotonic()  # not silent: it has frames waiting for the others
                    news = True
                    continue
                got, positions[i] = self._poll(i, positions[i], batch_size)
                if got:
                    news = True
                    last_news[i] = time.monotonic()
                    for b in got:
                        bufs[i].add(b, filts[i])
                if self.readers[i].damage is not None:
                    self._note(self.readers[i])
                    dropped.add(i)  # it can deliver nothing more: it holds nobody back
            now = time.monotonic()
            holding = [i for i in range(n) if i not in dropped and now - last_news[i] < hold
                       and not self._closed(i, positions[i])]
            if any(b.count for b in bufs):
                # the merge key of the last frame each journal showed, filtered out or not
                bound = min(((bufs[i].runmax, i) for i in holding), default=None)
                out = _release(self.journals, bufs, bound)
                if len(out):
                    keys = out.headers["gen_time"]
                    if released != _NO_KEY:
                        self.late += int(np.count_nonzero(keys < released))
                    released = max(released, int(keys.max()))
                    caught_up = False
                    yield out
                    continue
            if news:
                policy.reset()
                idle_since = time.monotonic()
                continue
            if not caught_up and not any(b.count for b in bufs):
                caught_up = True
                yield MergedBatch(self.journals, [], [], None)
            if stopped(stop) or (idle_timeout is not None and time.monotonic() - idle_since > idle_timeout):
                out = _release(self.journals, bufs, None)  # what was held back still goes out, in order
                if len(out):
                    yield out
                return
            policy.idle(0)

    def writer_state(self) -> list[tuple[WriterState, int]]:
        """``(state, pid)`` of each journal's writer, in the order of ``journals``."""
        return [r.writer_state() for r in self.readers]

    def page_count(self) -> int:
        return sum(r.page_count() for r in self.readers)

    def close(self) -> None:
        for r in self.readers:
            r.close()

    def _readers(self) -> list[Reader]:
        return self.readers

    def __repr__(self) -> str:
        states = collections.Counter(s for s, _pid in self.writer_state())
        return (f"<kftools.MergedReader of {len(self.readers)} journals ({', '.join(self.journals)}): "
                f"{self.page_count()} page(s), writers {', '.join(f'{n} {s}' for s, n in states.items())}>")

    def __enter__(self) -> MergedReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_journals(paths: Sequence[str | os.PathLike], *, registry: TypeRegistry | None = None, wait: bool = False,
                  stop: Callable[[], bool] | threading.Event | None = None,
                  on_wait: Callable[[str], None] | None = None) -> Reader | MergedReader | None:
    """A :class:`Reader` for one journal (a file, or a folder holding one Kungfu journal: see
    :mod:`~kftools.journal.resolve`), a :class:`MergedReader` for several or a folder.

    With ``wait``, journals that do not exist yet are waited for (None if ``stop`` fires first).
    """
    if len(paths) == 1 and not os.path.isdir(paths[0]):  # as given: it may not exist yet
        if wait:
            return Reader.wait_open(paths[0], registry=registry, stop=stop, on_wait=on_wait)
        return Reader(paths[0], registry=registry)
    refs = resolve_journals(paths)  # folders listed once, for the choice and the opening
    if len(paths) == 1 and len(refs) == 1 and not refs[0].in_folder:  # a folder holding one Kungfu journal
        one = refs[0]
        if wait:
            return Reader.wait_open(one.path, registry=registry, stop=stop, on_wait=on_wait, name=one.label)
        return Reader(one.path, registry=registry, name=one.label)
    if wait:
        return MergedReader.wait_open(paths, registry=registry, stop=stop, on_wait=on_wait, refs=refs)
    return MergedReader(paths, registry=registry, refs=refs)


def open_many(paths: Iterable[str | os.PathLike] | str | os.PathLike, *,
              registry: TypeRegistry | None = None) -> MergedReader:
    """Open several journals (and folders of journals) as one timeline merged by ``gen_time``."""
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    return MergedReader(paths, registry=registry)

