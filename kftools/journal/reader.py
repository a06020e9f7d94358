"""The Python reader: iterate, batch and follow committed frames, read-only."""

from __future__ import annotations

import collections
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from ..errors import KftoolsError, NotAJournal, UsageError
from . import framestream, yijinjing
from .format import (
    CURSOR_OFFSET,
    FRAME_HEADER,
    FRAME_HEADER_SIZE,
    KFTOOLS,
    PAGE_HEADER_SIZE,
    JournalFormat,
    PageFlag,
    page_path,
)
from .framestream import STATUS_BACKLOG, STATUS_BAD_CURSOR, STATUS_BAD_FRAME, Frame, frames_at, frames_from_headers
from .lock import is_locked
from .page import U32, ArchivedPage, NotYetWritten, Page, open_page, page_exists
from .positions import PositionSlot
from .registry import DEFAULT_REGISTRY, TypeRegistry
from .scan import (
    HEADER_PAST_END,
    PAYLOAD_PAST_END,
    SCAN_ERRORS,
    SHORT_PAYLOAD,
    WRITTEN_END,
    ZERO_TYPE,
    gather,
    gather_var,
    scan,
)

HEADER_DTYPE = FRAME_HEADER.dtype
_MAX_OPEN_PAGES = 32
_MAX_ARCHIVED_PAGES = 2
_U32_FROM = U32.unpack_from
DEFAULT_BATCH = 65536

Position = tuple[int, int]  # (page index, offset in page)


@dataclass(frozen=True)
class Damage:
    """Where a journal stops being valid, and why."""

    path: str
    page: int
    offset: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: page {self.page} offset {self.offset}: {self.reason}"


class FrameBatch:
    """Frames of one page as numpy arrays: ``offsets`` (int64) and ``headers`` (frame header dtype)."""

    __slots__ = ("page", "offsets", "headers")

    def __init__(self, page: Page, offsets: np.ndarray, headers: np.ndarray):
        self.page = page
        self.offsets = offsets
        self.headers = headers

    def __len__(self) -> int:
        return len(self.offsets)

    @property
    def page_index(self) -> int:
        return self.page.index

    def select(self, mask: np.ndarray) -> FrameBatch:
        return FrameBatch(self.page, self.offsets[mask], self.headers[mask])

    def payload(self, msg_type: int, mask: np.ndarray | None = None) -> np.ndarray:
        """The typed payloads of this batch's frames of ``msg_type`` (or of ``mask``), as a structured array."""
        mt = self.page.registry.get(msg_type)
        if mt is None:
            raise KftoolsError(f"message type {msg_type} is not registered")
        if mask is None:
            mask = self.headers["msg_type"] == msg_type
        offs = np.ascontiguousarray(self.offsets[mask])
        out = np.empty(len(offs), dtype=mt.layout.dtype)
        gather(self.page.mm, offs, self.page.frame_header_size, mt.layout.size, out)
        return out

    def field_bytes(self, rel: int, width: int, mask: np.ndarray | None = None) -> np.ndarray:
        """``width`` payload bytes at payload offset ``rel`` of each (masked) frame, as ``S<width>``."""
        offs = np.ascontiguousarray(self.offsets if mask is None else self.offsets[mask])
        out = np.empty(len(offs), dtype=f"S{width}")
        gather(self.page.mm, offs, self.page.frame_header_size + rel, width, out)
        return out

    def raw_payloads(self, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Payload bytes concatenated (uint8) and their int64 end offsets, as Arrow binary wants."""
        offs = self.offsets if mask is None else self.offsets[mask]
        lens = (self.headers["length"] if mask is None else self.headers["length"][mask]).astype(np.int64)
        data = np.empty(int(lens.sum()), dtype=np.uint8)
        gather_var(self.page.mm, np.ascontiguousarray(offs), lens, self.page.frame_header_size, data)
        ends = np.zeros(len(lens) + 1, dtype=np.int64)
        np.cumsum(lens, out=ends[1:])
        return data, ends

    def raw_frames(self) -> tuple[np.ndarray, np.ndarray]:
        """A writable copy of the whole frames (header and payload) concatenated, and their
        start offsets in it plus the end. Frames of another format (Kungfu's) come re-headed
        in kftools' layout, payload bytes unchanged: what a kftools journal of them holds."""
        if self.page.fmt is not KFTOOLS:
            return self._as_kftools_frames()
        lens = self.headers["length"].astype(np.int64) + self.page.frame_header_size
        offs = self.offsets
        if len(offs) and int(offs[-1] + lens[-1] - offs[0]) == int(lens.sum()):
            # unfiltered frames lie back to back in the page: one copy beats a per-frame gather
            base = int(offs[0])
            data = np.frombuffer(bytearray(self.page.mm[base : base + int(lens.sum())]), dtype=np.uint8)
            starts = np.empty(len(offs) + 1, np.int64)
            starts[:-1] = offs - base
            starts[-1] = len(data)
            return data, starts
        data = np.empty(int(lens.sum()), dtype=np.uint8)
        gather_var(self.page.mm, np.ascontiguousarray(self.offsets), lens, 0, data)
        starts = np.zeros(len(lens) + 1, dtype=np.int64)
        np.cumsum(lens, out=starts[1:])
        return data, starts

    def _as_kftools_frames(self) -> tuple[np.ndarray, np.ndarray]:
        lens = self.headers["length"].astype(np.int64)
        starts = np.zeros(len(lens) + 1, dtype=np.int64)
        np.cumsum(lens + FRAME_HEADER_SIZE, out=starts[1:])
        data = np.empty(int(starts[-1]), dtype=np.uint8)
        payload = np.empty(int(lens.sum()), dtype=np.uint8)
        gather_var(self.page.mm, np.ascontiguousarray(self.offsets), lens, self.page.frame_header_size, payload)
        is_header = np.zeros(len(data), dtype=bool)
        at = (starts[:-1, None] + np.arange(FRAME_HEADER_SIZE)).reshape(-1)
        is_header[at] = True
        data[at] = np.ascontiguousarray(self.headers).view(np.uint8)
        data[~is_header] = payload
        return data, starts

    def symbols(self, mask: np.ndarray | None = None) -> np.ndarray:
        """The symbol field (``symbol``; Kungfu's ``instrument_id``) of each frame, b"" where the type has none."""
        h = self.headers if mask is None else self.headers[mask]
        offs = self.offsets if mask is None else self.offsets[mask]
        registry = self.page.registry
        name = registry.symbol_field
        width = max((mt.layout.field(name).size for mt in registry.types() if name in mt.layout.names), default=16)
        out = np.zeros(len(offs), dtype=f"S{width}")
        for t in np.unique(h["msg_type"]).tolist():
            mt = registry.get(t)
            if mt is None or name not in mt.layout.names:
                continue
            sel = h["msg_type"] == t
            f = mt.layout.field(name)
            out[sel] = FrameBatch(self.page, offs[sel], h[sel]).field_bytes(mt.layout.offset(name), f.size)
        return out

    def frames(self) -> list[Frame]:
        if self.page.fmt is not KFTOOLS:
            return frames_from_headers(self.page, self.offsets, self.headers)  # headers as kftools lays them out
        return frames_at(self.page, self.offsets)


def _short(registry: TypeRegistry, msg_type: int, length: int) -> str:
    mt = registry.get(msg_type)
    size = mt.layout.size if mt else 0
    return f"{registry.name(msg_type)} payload of {length} bytes is shorter than its {size}-byte layout"


def scan_page(
    page: Page, start: int, end: int, registry: TypeRegistry, max_frames: int = DEFAULT_BATCH
) -> tuple[np.ndarray, np.ndarray, int, str | None]:
    """Walk and validate frames in ``[start, end)`` of ``page``.

    Returns ``(offsets, headers, next_offset, problem)``; ``problem`` names the
    first invalid frame at ``next_offset`` (None if the walk was clean).
    """
    out = np.empty(max_frames, dtype=np.int64)
    fmt, hdr = page.fmt, page.frame_header_size
    problem = None
    if fmt is KFTOOLS:
        n, nxt, err = scan(page.mm, start, end, out, registry.min_lengths())
        offsets = out[:n]
        headers = np.empty(n, dtype=HEADER_DTYPE)
        gather(page.mm, offsets, 0, FRAME_HEADER_SIZE, headers)
    else:
        n, nxt, err = scan(
            page.mm, start, end, out, registry.min_lengths(), hdr, fmt.type_offset, int(fmt.length_counts_header),
            fmt.page_end_type or 0,
        )
        if err == WRITTEN_END:
            err = 0  # a header with length 0 is where the writer is (or died): the end, not damage
        offsets, headers, problem = _foreign_headers(page, out[:n])
        if problem:
            nxt, err = int(out[len(offsets)]), 0
    # where the first bad byte can be: a zero msg_type sits type_offset bytes into the header
    bad_at: int | None = nxt + fmt.type_offset if err == ZERO_TYPE else nxt
    if err in (HEADER_PAST_END, PAYLOAD_PAST_END) and end >= len(page.mm):
        bad_at = None  # cut short by the end of a truncated file: the bytes before it are what was written
    if err == SHORT_PAYLOAD:
        h = fmt.frame_header.unpack(page.mm, nxt)
        length, mt = h["length"] - (hdr if fmt.length_counts_header else 0), h["msg_type"]
        problem = _short(registry, mt, length)
    elif err:
        length = page.mm[nxt : nxt + 4]
        problem = SCAN_ERRORS[err].format(length=int.from_bytes(length, "little") if len(length) == 4 else "?")
    elif nxt > end:
        problem = "frame runs past the write cursor"
    if n and (large := registry.large_ids()):
        for mt in large:
            tid, size, name = mt.id, mt.layout.size, mt.name
            bad = (headers["msg_type"] == tid) & (headers["length"] < size)
            if bad.any():
                k = int(np.argmax(bad))
                problem = f"{name} payload of {int(headers['length'][k])} bytes is shorter than its {size}-byte layout"
                nxt = bad_at = int(offsets[k])
                offsets, headers = offsets[:k], headers[:k]
                break
    if problem and len(offsets) and bad_at is not None:
        # Disks lose whole 4 KiB blocks: the damage seen at nxt may have begun at
        # the block boundary below the bad field, inside a frame whose header survived.
        # Frames overlapping that block are not trusted.
        block = bad_at - bad_at % 4096
        ends = offsets + hdr + headers["length"]
        keep = int(np.searchsorted(ends, block, side="right"))
        if keep < len(offsets):
            problem += f" at offset {nxt}; the frame here overlaps the damaged 4 KiB block at {block}"
            nxt = int(offsets[keep])
            offsets, headers = offsets[:keep], headers[:keep]
    return offsets, headers, nxt, problem


def frame_at(page: Page, offset: int) -> Frame:
    """The frame at ``offset`` of ``page`` (a position the walk validated), in any format."""
    return frames_of(page, np.array([offset], dtype=np.int64))[0]


def frames_of(page: Page, offsets: np.ndarray) -> list[Frame]:
    """The frames at these (validated) offsets of ``page``, in any format."""
    if page.fmt is KFTOOLS:
        return frames_at(page, offsets)
    offsets, headers, _problem = _foreign_headers(page, np.ascontiguousarray(offsets, dtype=np.int64))
    return frames_from_headers(page, offsets, headers)


def _foreign_headers(page: Page, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray, str | None]:
    """Frame headers of another format, as kftools' header dtype (``length`` = payload bytes).

    The frame that seals a page (Kungfu's PageEnd) is dropped: the walk moves to the next page
    on it. A header whose ``header_length`` is not its layout's size ends the valid frames.
    """
    fmt, hdr = page.fmt, page.frame_header_size
    raw = np.empty(len(offsets), dtype=fmt.frame_header.dtype)
    gather(page.mm, offsets, 0, hdr, raw)
    problem = None
    if "header_length" in fmt.frame_header.names:
        bad = raw["header_length"] != hdr
        if bad.any():
            k = int(np.argmax(bad))
            problem = f"frame header_length {int(raw['header_length'][k])}, expected {hdr}"
            offsets, raw = offsets[:k], raw[:k]
    if fmt.page_end_type is not None and len(raw) and raw["msg_type"][-1] == fmt.page_end_type:
        offsets, raw = offsets[:-1], raw[:-1]
    headers = np.empty(len(raw), dtype=HEADER_DTYPE)
    for n in FRAME_HEADER.names:
        headers[n] = raw[n]
    if fmt.length_counts_header:
        headers["length"] -= hdr
    return offsets, headers, problem


class WaitPolicy:
    """How a follower waits for the next frame: ``busy`` spins (lowest latency),
    ``backoff`` spins then sleeps progressively longer (low CPU), ``sleep`` polls
    every ``interval`` seconds."""

    def __init__(self, mode: str = "backoff", *, spins: int = 20000, interval: float = 0.001, max_sleep: float = 0.002):
        if mode not in ("busy", "backoff", "sleep"):
            raise UsageError(f"unknown wait policy {mode!r} (busy, backoff, sleep)")
        self.mode = mode
        self.spins = spins
        self.interval = interval
        self.max_sleep = max_sleep
        self._idle = 0
        self._sleep = 10e-6

    def reset(self) -> None:
        self._idle = 0
        self._sleep = 10e-6

    def pause(self) -> bool:
        """Wait once; True if this wait slept (a good moment for slower checks)."""
        self._idle += 1
        if self.mode == "busy":
            return False
        if self.mode == "sleep":
            time.sleep(self.interval)
            return True
        if self._idle < self.spins:
            return False
        time.sleep(self._sleep)
        self._sleep = min(self._sleep * 2, self.max_sleep)
        return True


class Reader:
    """Read-only access to a journal given its first page's path.

    Iterate for every committed frame; ``follow()`` to wait for new ones;
    ``batches()`` for numpy arrays. After iteration, ``damage`` says where the
    valid data ended if the journal is damaged (iteration stops there).
    """

    def __init__(self, path: str | os.PathLike, *, registry: TypeRegistry | None = None):
        self.path = os.fspath(path)
        #: how commands show the journal: its path, or a Kungfu journal's location and dest
        self.name = self.path
        self.fmt: JournalFormat = KFTOOLS
        self.registry = registry or DEFAULT_REGISTRY
        self.damage: Damage | None = None
        self._pages: collections.OrderedDict[int, Page] = collections.OrderedDict()
        self._probe_fd = -1
        self.kungfu = _kungfu_journal(self.path)
        if self.kungfu is not None:
            # Kungfu's journals: the same walk over their page and frame layouts, their longfist types
            self.fmt, self.path, self.name = yijinjing.FORMAT, self.kungfu.first_page, self.kungfu.name
            self.registry = yijinjing.REGISTRY
        self.first_page = self.fmt.first_page
        self.page(self.first_page)

    @classmethod
    def wait_open(
        cls, path: str | os.PathLike, *, registry: TypeRegistry | None = None,
        stop: Callable[[], bool] | threading.Event | None = None, poll: float = 0.05,
        on_wait: Callable[[str], None] | None = None,
    ) -> Reader | None:
        """Open ``path``, waiting while it does not exist or its header is unwritten (as ``tail -F``).

        Returns None if ``stop`` fires first.
        """
        told = False
        while True:
            try:
                return cls(path, registry=registry)
            except NotYetWritten as e:
                if on_wait and not told:
                    on_wait(str(e))
                    told = True
            if _stopped(stop):
                return None
            time.sleep(poll)

    # -- pages -----------------------------------------------------------------
    def page(self, index: int) -> Page:
        """Page ``index``, mapped read-only (raises NotYetWritten if it is not there)."""
        p = self._pages.get(index)
        if p is not None:
            self._pages.move_to_end(index)
            return p
        p = open_page(self.page_path(index), index, fmt=self.fmt)
        p.registry = self.registry
        self._pages[index] = p
        if len(self._pages) > _MAX_OPEN_PAGES:
            # dropping our reference is enough: frames still holding the page keep it mapped
            self._pages.popitem(last=False)
        if isinstance(p, ArchivedPage):
            # an archived page lives in anonymous memory, not the page cache: keep few of them
            held = [i for i, q in self._pages.items() if isinstance(q, ArchivedPage)]
            for i in held[:-_MAX_ARCHIVED_PAGES]:
                del self._pages[i]
        return p

    def page_path(self, index: int) -> str:
        """The file of page ``index`` (kftools: ``<path>.<n>`` from 0; Kungfu: ``{dest:08x}.{id}.journal`` from 1)."""
        if self.kungfu is not None:
            return self.kungfu.page_path(index)
        return page_path(self.path, index)

    def page_count(self) -> int:
        """Number of page files present."""
        return len(self.page_indices())

    def page_indices(self) -> range:
        """Indices of the page files present, in order (at least the first)."""
        i = self.first_page
        while page_exists(self.page_path(i)):
            i += 1
        return range(self.first_page, max(i, self.first_page + 1))

    def end_position(self) -> Position:
        """(page, cursor) just after the last committed frame, right now."""
        last = self.page_indices()[-1]
        try:
            p = self.page(last)
        except KftoolsError as e:
            if last > self.first_page and (self.page(last - 1).sealed or not isinstance(e, NotYetWritten)):
                # a sealed page's successor is bad, not in the making: end there so iteration reports it
                return last, p_start(self.fmt)
            last -= 1
            p = self.page(last)
        return last, self._page_end(p)[0]  # a bad cursor: as far as iteration reads it

    def writer_state(self) -> tuple[str, int]:
        """``(state, pid)``; state is alive, exited, crashed or unknown (an engine that leaves no trace)."""
        if self._probe_fd < 0:
            self._probe_fd = os.open(self.path, os.O_RDONLY)
        last = self.page(self.first_page)
        for i in reversed(self.page_indices()[1:]):
            try:
                last = self.page(i)
                break
            except KftoolsError:
                continue  # a page in the making (or damaged): the one before it tells
        pid = last.header().get("writer_pid", 0)
        if is_locked(self._probe_fd):
            return "alive", pid
        if last.flags & PageFlag.CLOSED:
            return "exited", pid
        if last.magic and pid:
            return "crashed", pid
        return "unknown", pid

    # -- reading ---------------------------------------------------------------
    def _note_damage(self, page: Page, offset: int, reason: str) -> None:
        if self.damage is None:
            self.damage = Damage(page.path, page.index, offset, reason)

    def _page_end(self, page: Page) -> tuple[int, str | None]:
        problem = page.header_problem()
        if problem:
            return page.limit(), problem
        return page.cursor, None

    def _chunks(
        self, start: Position | None = None, until: Position | None = None, batch_size: int = DEFAULT_BATCH
    ) -> Iterator[FrameBatch]:
        """Validated chunks from ``start`` to the current end (or ``until``)."""
        index, off = start or (self.first_page, p_start(self.fmt))
        while True:
            try:
                page = self.page(index)
            except NotYetWritten:
                return
            end, header_problem = self._page_end(page)
            if until is not None and index == until[0]:
                end = min(end, until[1])
            while off < end:
                offsets, headers, off, problem = scan_page(page, off, end, self.registry, batch_size)
                if len(offsets):
                    yield FrameBatch(page, offsets, headers)
                if problem:
                    # a bad header explains the bad frame better than the frame itself
                    self._note_damage(page, off, header_problem or problem)
                    return
            if header_problem and off >= end:
                self._note_damage(page, off, header_problem)
                return
            nxt = self.page_path(index + 1)
            if until is not None and index >= until[0]:
                if page.sealed and off >= page.cursor and not page_exists(nxt):
                    self._note_damage(page, off, f"page is sealed but the next page {nxt} is missing")
                return
            if not page_exists(nxt):
                if page.sealed:
                    self._note_damage(page, off, f"page is sealed but the next page {nxt} is missing")
                return
            # the next page exists, so this page is final: take any frames committed meanwhile
            if page.cursor > off and header_problem is None:
                continue
            try:
                self.page(index + 1)
            except NotYetWritten as e:
                # writers rename a page in whole before sealing the previous one, so an unwritten
                # page after a sealed one, or before a later page, lost its bytes (power loss)
                if page.sealed or page_exists(self.page_path(index + 2)):
                    self._note_damage(page, off, f"next page {e}")
                return
            except KftoolsError as e:
                self._note_damage(page, off, f"next page {e}")
                return
            index, off = index + 1, page.frame_start

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
        self.damage = None
        for chunk in self._chunks(start, until, batch_size):
            chunk = filt(chunk)
            if len(chunk):
                yield chunk

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()

    def frames(self, **filters) -> Iterator[Frame]:
        """Every committed frame, filtered as in :meth:`batches`."""
        batches = self.batches(**filters)
        if self.fmt is not KFTOOLS:
            return (f for b in batches for f in b.frames())

        def refill(stream) -> bool:
            for b in batches:
                stream.feed(b.page, b.page.mm, b.offsets)
                return True
            return False

        return framestream.stream(refill)

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

    def last(self, n: int, **filters) -> list[Frame]:
        """The last ``n`` frames matching ``filters`` (as ``tail -n``)."""
        keep: collections.deque[FrameBatch] = collections.deque()
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

    def _filter(self, start_time, end_time, types, symbols) -> _Filter:
        """Filters as the CLI takes them, checked: names or ids, comma lists, text times."""
        if isinstance(types, str | int):
            types = [types]
        tids: list[int] | None = None
        if types is not None:
            tids = []
            for t in types:
                if isinstance(t, bool) or not isinstance(t, str | int | np.integer):
                    raise UsageError(f"types: {t!r} is not a type name or id")
                for part in str(t).split(",") if isinstance(t, str) else [t]:
                    if str(part).strip():
                        tids.append(self.registry.resolve(part.strip() if isinstance(part, str) else int(part)))
        if isinstance(symbols, str | bytes):
            symbols = [symbols]
        syms: list | None = None
        if symbols is not None:
            syms = []
            for sym in symbols:
                if not isinstance(sym, str | bytes):
                    raise UsageError(f"symbols: {sym!r} is not a symbol (str)")
                parts = sym.split(",") if isinstance(sym, str) else [sym]
                syms.extend(p.strip() if isinstance(p, str) else p for p in parts if p.strip())
        return _Filter(_check_time("start_time", start_time, self), _check_time("end_time", end_time, self),
                       tids, syms)

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
        filt = self._filter(time_start, None, types, symbols)
        if time_start is not None:
            start = filt.start_time
        policy = wait if isinstance(wait, WaitPolicy) else WaitPolicy(wait)
        slot = None if name is None else self._claim(name, self._start_position(start))
        if self.fmt is not KFTOOLS:
            # no write cursor to spin on: follow the chain of frames batch by batch
            batches = self._follow_batches(self._start_position(start), filt, policy, stop, idle_timeout, DEFAULT_BATCH,
                                           slot)
            return (f for b in batches for f in b.frames())
        # the start is fixed now, not at the generator's first step
        if slot is None:
            return self._follow(self._start_position(start), filt, policy, stop, idle_timeout)
        return self._follow_named(self._start_position(start), filt, policy, stop, idle_timeout, slot)

    def _claim(self, name: str, start: Position) -> PositionSlot:
        """Claim ``name``; a follower starting past the beginning has consumed up to its start."""
        slot = PositionSlot(self.path, name)
        if start > (0, PAGE_HEADER_SIZE):
            last = None
            for b in self.batches(start=(max(0, start[0] - 1), PAGE_HEADER_SIZE), until=start, batch_size=1 << 20):
                if len(b):
                    last = (b.page.index, int(b.offsets[-1]))
            if last is not None:
                slot.store(*last)
        return slot

    def _follow(self, position, filt, policy, stop, idle_timeout) -> Iterator[Frame]:
        # the frame stream spins on the cursor and decodes in C; _LiveRefill does everything slower
        return framestream.stream(_LiveRefill(self, position, filt, policy, stop, idle_timeout))

    def _follow_named(self, position, filt, policy, stop, idle_timeout, slot) -> Iterator[Frame]:
        cell = slot.cell
        try:
            for f in self._follow(position, filt, policy, stop, idle_timeout):
                yield f
                cell[0] = f.page.index << 32 | f.offset  # consumed: the caller asked for the next frame
        finally:
            slot.release()

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
        filt = self._filter(start if start_time is None and start_is_time else start_time, end_time, types, symbols)
        if start_is_time:
            start = filt.start_time if filt.start_time is not None else "beginning"
        policy = wait if isinstance(wait, WaitPolicy) else WaitPolicy(wait)
        slot = None if name is None else self._claim(name, self._start_position(start))
        return self._follow_batches(self._start_position(start), filt, policy, stop, idle_timeout, batch_size, slot)

    def _follow_batches(self, position, filt, policy, stop, idle_timeout, batch_size, slot) -> Iterator[FrameBatch]:
        try:
            yield from self._follow_page_batches(position, filt, policy, stop, idle_timeout, batch_size, slot)
        finally:
            if slot is not None:
                slot.release()

    def _follow_page_batches(self, position, filt, policy, stop, idle_timeout, batch_size, slot) -> Iterator[FrameBatch]:
        index, off = position
        page = self._wait_page(index, policy, stop)
        if page is None:
            return
        idle_since = time.monotonic()
        self.damage = None
        caught_up = False
        while True:
            cur = page.cursor
            if cur > off:
                if cur > page.limit():
                    self._note_damage(page, off, page.header_problem() or "bad cursor")
                    return
                offsets, headers, off, problem = scan_page(page, off, cur, self.registry, batch_size)
                batch = filt(FrameBatch(page, offsets, headers))
                if len(batch):
                    yield batch
                if slot is not None and len(offsets):
                    slot.store(index, int(offsets[-1]))  # the whole batch was consumed
                if problem:
                    self._note_damage(page, off, problem)
                    return
                policy.reset()
                idle_since = time.monotonic()
                caught_up = False
                continue
            if not caught_up:
                caught_up = True
                yield FrameBatch(page, np.empty(0, np.int64), np.empty(0, HEADER_DTYPE))
            if _stopped(stop):
                return
            if idle_timeout is not None and time.monotonic() - idle_since > idle_timeout:
                return
            if page.sealed or page_exists(self.page_path(index + 1)):
                if page.cursor > off:
                    continue
                nxt = self._wait_page(index + 1, policy, stop, prev=page)
                if nxt is None:
                    return
                index, off, page = index + 1, nxt.frame_start, nxt
                continue
            policy.pause()

    def _start_position(self, start) -> Position:
        if start == "end":
            return self.end_position()
        if start == "beginning" or isinstance(start, int):
            return self.first_page, p_start(self.fmt)
        if isinstance(start, tuple):
            return start
        raise UsageError(f"bad follow start {start!r}: beginning, end, a time in ns or (page, offset)")

    def _wait_page(self, index: int, policy: WaitPolicy, stop, prev: Page | None = None) -> Page | None:
        while True:
            try:
                return self.page(index)
            except KftoolsError as e:
                # writers rename a page in whole before sealing the one before it: after a sealed
                # page, a page that cannot be opened is damage, not a page in the making
                if prev is not None and (prev.sealed or not isinstance(e, NotYetWritten)):
                    self._note_damage(prev, min(prev.cursor, prev.limit()), f"next page {e}")
                    return None
                if not isinstance(e, NotYetWritten):
                    raise
                if _stopped(stop):
                    return None
                time.sleep(0.001)

    def close(self) -> None:
        # drop our references only: frames still held keep their page mapped (and valid)
        self._pages.clear()
        if self._probe_fd >= 0:
            os.close(self._probe_fd)
            self._probe_fd = -1

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


INDEX_DTYPE = np.dtype([("page", "<u4"), ("offset", "<i8"), *[(n, HEADER_DTYPE[n]) for n in FRAME_HEADER.names]])


def _cursor(mm) -> int:
    return _U32_FROM(mm, 0)[0]


def p_start(fmt: JournalFormat) -> int:
    """Offset of the first frame in a page of ``fmt``."""
    return fmt.page_header.size


def _kungfu_journal(path: str) -> yijinjing.KungfuJournal | None:
    """The Kungfu journal ``path`` names (a page file or a folder holding one journal), else None."""
    if os.path.isdir(path):
        found = yijinjing.find_journals(path)
        if len(found) > 1:
            names = ", ".join(j.name for j in found[:4]) + (", ..." if len(found) > 4 else "")
            raise NotAJournal(f"{path}: holds {len(found)} Kungfu journals ({names}); open them with open_journals()")
        return found[0] if found else None
    if yijinjing.parse_page_name(path) is None:
        return None
    try:
        with open(path, "rb") as fh:
            head = fh.read(yijinjing.PAGE_HEADER.size)
    except OSError:
        return None  # open_page says what is wrong with it
    return yijinjing.find_journals(path)[0] if yijinjing.detect(head) else None


#: cursor loads a busy follower makes in C between two checks of stop, idle_timeout and rollover
BUSY_SPINS = 1 << 17
#: a cursor that moved further than this is read by the batch scanner (the block rule), not frame by frame
LIVE_MAX = 4096


class _LiveRefill:
    """What a following frame stream calls when it runs dry: start, batch scans, damage, waits, rollover."""

    def __init__(self, reader: Reader, position: Position, filt: _Filter, policy: WaitPolicy, stop, idle_timeout):
        self.reader = reader
        self.index, self.start = position
        self.filt = filt
        self.policy = policy
        self.stop = stop
        self.idle_timeout = idle_timeout
        self.busy = policy.mode == "busy"
        self.page: Page | None = None
        self.pending: tuple[Page, int, str] | None = None  # damage to note once the frames before it are out
        self.last_off = 0
        self.idle = 0
        self.idle_since = 0.0

    def attach(self, stream, page: Page, off: int) -> None:
        reg = self.reader.registry
        large = {mt.id: mt.layout.size for mt in reg.large_ids()}
        stream.attach(page, page.mm, off, page.limit(), reg.min_lengths(), large,
                      BUSY_SPINS if self.busy else 1, LIVE_MAX if self.filt.trivial else 0, CURSOR_OFFSET)
        self.page = page
        self.last_off = off

    def __call__(self, stream) -> bool:
        reader, page = self.reader, self.page
        if self.pending:
            reader._note_damage(*self.pending)
            return False
        if page is None:  # the first call: open (or wait for) the start page
            reader.damage = None
            page = reader._wait_page(self.index, self.policy, self.stop)
            if page is None:
                return False
            self.attach(stream, page, self.start)
            self.idle_since = time.monotonic()
            return True
        status, off = stream.status, stream.offset
        if off != self.last_off:  # frames arrived since the last call
            self.last_off = off
            self.idle = 0
            self.policy.reset()
            if self.idle_timeout is not None:
                self.idle_since = time.monotonic()
        if status == STATUS_BACKLOG:
            offsets, headers, nxt, problem = scan_page(page, off, stream.cursor, reader.registry, DEFAULT_BATCH)
            batch = self.filt(FrameBatch(page, offsets, headers))
            stream.feed(page, page.mm, batch.offsets)
            stream.offset = self.last_off = nxt
            if problem:
                self.pending = (page, nxt, problem)
                stream.detach()
            self.idle = 0
            self.policy.reset()
            if self.idle_timeout is not None:
                self.idle_since = time.monotonic()
            return True
        if status == STATUS_BAD_CURSOR:
            reader._note_damage(page, off, page.header_problem() or "bad cursor")
            return False
        if status == STATUS_BAD_FRAME:
            room = stream.cursor - off
            length, mt = FRAME_HEADER.struct.unpack_from(page.mm, off)[:2] if room >= FRAME_HEADER_SIZE else (0, 0)
            reader._note_damage(page, off, _frame_problem(length, mt, room, reader.registry))
            return False
        # idle: the slower checks, every BUSY_SPINS polls when busy, else after a sleep or every 1024 polls
        if not self.busy:
            self.idle += 1
            if not self.policy.pause() and self.idle & 1023:
                return True
        if _stopped(self.stop):
            return False
        if self.idle_timeout is not None and time.monotonic() - self.idle_since > self.idle_timeout:
            return False
        if page.sealed or page_exists(page_path(reader.path, self.index + 1)):
            if page.cursor > off:
                return True  # the last frames of this page arrived meanwhile
            next_page = reader._wait_page(self.index + 1, self.policy, self.stop, prev=page)
            if next_page is None:
                return False
            self.index += 1
            self.attach(stream, next_page, PAGE_HEADER_SIZE)
        return True


def _frame_problem(length: int, mt: int, room: int, registry: TypeRegistry) -> str:
    if room < 32:
        return SCAN_ERRORS[1]
    if length > room - 32:
        return SCAN_ERRORS[2].format(length=length)
    if mt == 0:
        return SCAN_ERRORS[3]
    return _short(registry, mt, length)


def _stopped(stop) -> bool:
    if stop is None:
        return False
    if isinstance(stop, threading.Event):
        return stop.is_set()
    return bool(stop())


def _check_time(name: str, value, reader: Reader) -> int | None:
    """A filter time as ns: int ns, or text as the CLI takes it (``+10s`` from the first frame)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str | np.integer):
        raise UsageError(f"{name} must be ns since the epoch or a time string, not {value!r}")
    if isinstance(value, str):
        from ..timeparse import parse_time

        origin = None
        if value.strip().startswith("+"):
            origin = next((int(b.headers["gen_time"][0]) for b in reader.batches(batch_size=1)), None)
        return parse_time(value, origin)
    return int(value)


class _Filter:
    """Time, type and symbol filters applied to a whole batch with numpy."""

    def __init__(self, start_time, end_time, types, symbols):
        self.start_time = start_time
        self.end_time = end_time
        self.types = np.array(sorted(set(types)), dtype=np.uint32) if types else None
        self.symbols = np.array([s.encode() if isinstance(s, str) else s for s in symbols], dtype="S16") if symbols else None
        self.trivial = start_time is None and end_time is None and self.types is None and self.symbols is None

    def __call__(self, b: FrameBatch) -> FrameBatch:
        if self.trivial or not len(b):
            return b
        h = b.headers
        mask = np.ones(len(b), dtype=bool)
        if self.start_time is not None:
            mask &= h["gen_time"] >= self.start_time
        if self.end_time is not None:
            mask &= h["gen_time"] <= self.end_time
        if self.types is not None:
            mask &= np.isin(h["msg_type"], self.types)
        if self.symbols is not None and mask.any():
            mask[mask] = np.isin(b.symbols(mask), self.symbols)
        return b if mask.all() else b.select(mask)
