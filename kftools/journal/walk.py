"""The one walk over a journal's frames: scan to the cursor, re-read it, roll to the next page,
stop at damage and record it.

A :class:`Walk` reads the pages of a :class:`~.pages.PageSet` and serves every
reader: a snapshot (what is committed now, :meth:`Walk.snapshot`) or a live
follow (wait for more, :meth:`Walk.follow_batches`), as numpy batches; and
frame by frame (:meth:`Walk.frames`, :meth:`Walk.follow_frames`: a frame
stream, ``framestream``, in C). What ends a page and what comes after it is
the page set's rule (:meth:`~.pages.PageSet.successor`); what a valid frame is,
:func:`scan_page`'s. :func:`validate_page` is the same check a writer runs on
the tail it is about to append to.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from . import framestream
from .filter import FrameFilter
from .format import (
    CURSOR_OFFSET,
    FLAGS_OFFSET,
    FRAME_HEADER,
    FRAME_HEADER_SIZE,
    KFTOOLS,
    WAITERS_OFFSET,
    JournalFormat,
    PageFlag,
)
from .frames import HEADER_DTYPE, FrameBatch, empty_batch, foreign_headers, header_field
from .framestream import STATUS_BACKLOG, STATUS_BAD_CURSOR, STATUS_BAD_FRAME, Frame
from .page import NotYetWritten, Page, park_header
from .pages import PageSet, Position
from .positions import PositionSlot
from .registry import TypeRegistry
from .scan import (
    HEADER_PAST_END,
    PAYLOAD_PAST_END,
    SCAN_ERRORS,
    SHORT_PAYLOAD,
    WRITTEN_END,
    ZERO_TYPE,
    gather,
    scan,
)
from .wait import BUSY_SPINS, BackoffWait, BusyWait, ParkWait, SleepWait, WaitPolicy, wait_policy

try:
    from ._framestream import park as _park  # type: ignore[attr-defined]  # built by setup.py; no stub
except ImportError:  # pragma: no cover - the extension is built by pip install
    _park = None

DEFAULT_BATCH = 65536
Stop = Callable[[], bool] | threading.Event | None


@dataclass(frozen=True)
class Damage:
    """Where a journal stops being valid, and why."""

    path: str
    page: int
    offset: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: page {self.page} offset {self.offset}: {self.reason}"


def _short(registry: TypeRegistry, msg_type: int, length: int) -> str:
    mt = registry.get(msg_type)
    size = mt.layout.size if mt else 0
    return f"{registry.name(msg_type)} payload of {length} bytes is shorter than its {size}-byte layout"


def scan_page(
    page: Page, start: int, end: int, registry: TypeRegistry, max_frames: int = DEFAULT_BATCH,
    headers_wanted: bool = True,
) -> tuple[np.ndarray, np.ndarray | None, int, str | None]:
    """Walk and validate frames in ``[start, end)`` of ``page``.

    Returns ``(offsets, headers, next_offset, problem)``; ``problem`` names the
    first invalid frame at ``next_offset`` (None if the walk was clean). Without
    ``headers_wanted`` a kftools page's headers are None (a :class:`FrameBatch`
    copies them when asked for): the checks read the fields they need themselves.
    """
    out = np.empty(max_frames, dtype=np.int64)
    fmt, hdr = page.fmt, page.frame_header_size
    problem = None
    headers: np.ndarray | None = None
    if fmt.native:
        n, nxt, err = scan(page.mm, start, end, out, registry.min_lengths(), hdr, fmt.type_offset, 0, 0,
                           page.populated)
        page.populated = max(page.populated, nxt)
        offsets = out[:n]
        if headers_wanted:
            headers = np.empty(n, dtype=HEADER_DTYPE)
            gather(page.mm, offsets, 0, FRAME_HEADER_SIZE, headers)
    else:
        n, nxt, err = scan(
            page.mm, start, end, out, registry.min_lengths(), hdr, fmt.type_offset, int(fmt.length_counts_header),
            fmt.page_end_type or 0,
        )
        if err == WRITTEN_END:
            err = 0  # a header with length 0 is where the writer is (or died): the end, not damage
        after_end = _after_page_end(page, out[:n], nxt)
        offsets, headers, problem = foreign_headers(page, out[:n])
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
    if problem is None and not fmt.native and after_end:
        # Kungfu writes PageEnd only as a page's last frame: what follows one is damage, not the end
        problem, bad_at = after_end, None
    if n and (large := registry.large_ids()):
        types = header_field(page, offsets, "msg_type") if headers is None else headers["msg_type"]
        lengths = header_field(page, offsets, "length") if headers is None else headers["length"]
        for mt in large:
            tid, size, name = mt.id, mt.layout.size, mt.name
            bad = (types == tid) & (lengths < size)
            if bad.any():
                k = int(np.argmax(bad))
                problem = f"{name} payload of {int(lengths[k])} bytes is shorter than its {size}-byte layout"
                nxt = bad_at = int(offsets[k])
                offsets = offsets[:k]
                headers = None if headers is None else headers[:k]
                break
    if problem and len(offsets) and bad_at is not None:
        # Disks lose whole 4 KiB blocks: the damage seen at nxt may have begun at
        # the block boundary below the bad field, inside a frame whose header survived.
        # Frames overlapping that block are not trusted.
        block = bad_at - bad_at % 4096
        ends = offsets + hdr + (header_field(page, offsets, "length") if headers is None else headers["length"])
        keep = int(np.searchsorted(ends, block, side="right"))
        if keep < len(offsets):
            problem += f" at offset {nxt}; the frame here overlaps the damaged 4 KiB block at {block}"
            nxt = int(offsets[keep])
            offsets = offsets[:keep]
            headers = None if headers is None else headers[:keep]
    return offsets, headers, nxt, problem


def _after_page_end(page: Page, offsets: np.ndarray, nxt: int) -> str | None:
    """Why the bytes after a PageEnd that ends ``offsets`` are damage (a frame written there), or None."""
    fmt = page.fmt
    if not len(offsets) or fmt.page_end_type is None:
        return None
    last = int(offsets[-1])
    if fmt.frame_header.unpack(page.mm, last)["msg_type"] != fmt.page_end_type:
        return None
    if nxt + 4 > len(page.mm) or not int.from_bytes(page.mm[nxt : nxt + 4], "little"):
        return None
    return (f"a frame follows the PageEnd at offset {last}"
            " (a page ends at its PageEnd: the frames after it are damage)")


def validate_page(page: Page, registry: TypeRegistry) -> Damage | None:
    """Walk every frame of ``page`` up to its cursor; the first damage, or None.

    A writer runs this on the page it is about to append to: never write after damage.
    """
    problem = page.header_problem()
    end = page.limit() if problem else page.cursor
    off = page.frame_start
    while off < end:
        _o, _h, off, p = scan_page(page, off, end, registry, 1 << 20, headers_wanted=False)
        if p:
            return Damage(page.path, page.index, off, problem or p)
    if problem:
        return Damage(page.path, page.index, off, problem)
    return None


def stopped(stop: Stop) -> bool:
    """``stop`` fired (an Event set, or a callable returning true)."""
    if stop is None:
        return False
    if isinstance(stop, threading.Event):
        return stop.is_set()
    return bool(stop())


class Walk:
    """One pass over the frames of ``pages``, through ``filt``.

    ``damage`` says where and why the walk stopped if the journal is damaged
    (the first damage only); ``on_damage`` is called with it, and with None
    when a pass begins.
    """

    def __init__(self, pages: PageSet, filt: FrameFilter | None = None,
                 on_damage: Callable[[Damage | None], None] | None = None):
        self.pages = pages
        self.registry = pages.registry
        self.filter = filt or FrameFilter()
        self.damage: Damage | None = None
        self.on_damage = on_damage

    def start(self) -> Position:
        """The position of a journal's first frame."""
        return self.pages.first, self.pages.fmt.frame_start

    def _begin(self) -> None:
        self.damage = None
        if self.on_damage is not None:
            self.on_damage(None)  # a new pass: what an earlier one found no longer holds

    def _note_damage(self, page: Page, offset: int, reason: str) -> None:
        if self.damage is None:
            self.damage = Damage(page.path, page.index, offset, reason)
            if self.on_damage is not None:
                self.on_damage(self.damage)

    # -- a snapshot ------------------------------------------------------------------
    def snapshot(
        self, start: Position | None = None, until: Position | None = None, batch_size: int = DEFAULT_BATCH,
        skip: Callable[[Page], bool] | None = None,
    ) -> Iterator[FrameBatch]:
        """Validated, unfiltered batches from ``start`` to the current end (or ``until``); stops at damage.

        ``skip(page)`` True: a whole final page the caller accounts for itself (its summary): not scanned.
        """
        pages = self.pages
        index, off = start or self.start()
        self._begin()
        while True:
            try:
                page = pages.page(index)
            except NotYetWritten:
                return
            end, header_problem = pages.page_end(page)
            if until is not None and index == until[0]:
                end = min(end, until[1])
            if (skip is not None and header_problem is None and off == page.frame_start and end == page.cursor
                    and skip(page)):
                off = end
            while off < end:
                offsets, headers, off, problem = scan_page(page, off, end, self.registry, batch_size,
                                                           headers_wanted=False)
                if len(offsets):
                    yield FrameBatch(page, offsets, headers)
                if problem:
                    # a bad header explains the bad frame better than the frame itself
                    self._note_damage(page, off, header_problem or problem)
                    return
            if header_problem and off >= end:
                self._note_damage(page, off, header_problem)
                return
            if until is not None and index >= until[0]:
                if page.sealed and off >= page.cursor and not pages.exists(index + 1):
                    nxt = pages.path_of(index + 1)
                    self._note_damage(page, off, f"page is sealed but the next page {nxt} is missing")
                return
            if pages.exists(index + 1) and page.cursor > off and header_problem is None:
                continue  # the next page exists, so this page is final: take any frames committed meanwhile
            next_page, problem = pages.successor(page)
            if next_page is None:
                if problem:
                    self._note_damage(page, off, problem)
                return
            index, off = index + 1, page.frame_start

    def batches(
        self, start: Position | None = None, until: Position | None = None, batch_size: int = DEFAULT_BATCH,
        skip: Callable[[Page], bool] | None = None,
    ) -> Iterator[FrameBatch]:
        """The snapshot through the filter (only non-empty batches)."""
        filt = self.filter
        for chunk in self.snapshot(start, until, batch_size, skip):
            chunk = filt(chunk)
            if len(chunk):
                yield chunk

    def frames(self, start: Position | None = None, until: Position | None = None) -> Iterator[Frame]:
        """The filtered snapshot frame by frame, through a frame stream."""
        return frames_of_batches(self.batches(start, until), self.pages.fmt)

    # -- following -------------------------------------------------------------------
    def wait_page(self, index: int, stop: Stop = None, prev: Page | None = None,
                  policy: WaitPolicy | None = None) -> Page | None:
        """Page ``index`` once it can be opened; after ``prev``, by the rollover rule (None if ``stop``
        fires first, or the journal is damaged after ``prev``: the damage is noted). Between two looks
        it waits by ``policy`` (default: polls every millisecond)."""
        pages = self.pages
        policy = policy or SleepWait(0.001)
        policy.reset()
        while True:
            if prev is not None:
                page, problem = pages.successor(prev)
                if page is not None:
                    return page
                if problem:
                    self._note_damage(prev, min(prev.cursor, prev.limit()), problem)
                    return None
            else:
                try:
                    return pages.page(index)
                except NotYetWritten:
                    pass
            if stopped(stop):
                return None
            policy.idle(0)

    def follow_batches(self, position: Position, policy: WaitPolicy, stop: Stop = None,
                       idle_timeout: float | None = None, batch_size: int = DEFAULT_BATCH,
                       slot: PositionSlot | None = None) -> Iterator[FrameBatch]:
        """Filtered frames as they are committed, in batches, until ``stop`` / ``idle_timeout`` or damage.

        Yields an empty batch each time it catches up, so a consumer can flush.
        ``slot`` stores the position after each batch (and is released at the end).
        """
        try:
            yield from self._follow_page_batches(position, policy, stop, idle_timeout, batch_size, slot)
        finally:
            if slot is not None:
                slot.release()

    def _follow_page_batches(self, position, policy, stop, idle_timeout, batch_size, slot) -> Iterator[FrameBatch]:
        off = position[1]
        rules = _FollowRules(self, position[0], policy, stop, idle_timeout)
        page = rules.first_page()
        if page is None:
            return
        filt = self.filter
        caught_up = False
        while True:
            cur = page.cursor
            if cur > off:
                if cur > page.limit():
                    self._note_damage(page, off, page.header_problem() or "bad cursor")
                    return
                offsets, headers, off, problem = scan_page(page, off, cur, self.registry, batch_size,
                                                           headers_wanted=False)
                batch = filt(FrameBatch(page, offsets, headers))
                if len(batch):
                    yield batch
                if slot is not None and len(offsets):
                    slot.store(rules.index, int(offsets[-1]))  # the whole batch was consumed
                if problem:
                    self._note_damage(page, off, problem)
                    return
                rules.progressed()
                caught_up = False
                continue
            if not caught_up:
                caught_up = True
                yield empty_batch(page)
            parked = rules.park(page, cur)
            nxt = rules.idle(page, off, 1, parked)
            if nxt is False:
                return
            if nxt is not True:
                page, off = nxt, nxt.frame_start

    def follow_frames(self, position: Position, policy: WaitPolicy, stop: Stop = None,
                      idle_timeout: float | None = None, slot: PositionSlot | None = None) -> Iterator[Frame]:
        """Filtered frames one by one as they are committed, until ``stop`` / ``idle_timeout`` or damage.

        The per-frame consumer of the walk: a frame stream (``framestream``, in
        C) spins on the cursor and decodes; :class:`_LiveRefill` does the rest
        by the walk's rules (batch scans of a backlog, damage, waits, rollover).
        ``slot``: the stream stores each consumed frame's position itself (one
        store when the next frame is asked for, no wrapper per frame), and the
        name is released when the stream ends, is closed or is dropped.
        """
        if not self.pages.fmt.native:
            # no write cursor to spin on: follow the chain of frames batch by batch
            return (f for b in self.follow_batches(position, policy, stop, idle_timeout, slot=slot) for f in b.frames())
        stream = framestream.stream(_LiveRefill(self, position, policy, stop, idle_timeout, slot))
        if slot is not None:
            stream.publish(slot.cell)
        return stream


def frames_of_batches(batches: Iterator[FrameBatch], fmt: JournalFormat = KFTOOLS) -> Iterator[Frame]:
    """The frames of validated batches one by one: the per-frame consumer of a snapshot (a frame stream, in C)."""
    if not fmt.native:
        return (f for b in batches for f in b.frames())

    def refill(stream) -> bool:
        for b in batches:
            stream.feed(b.page, b.page.mm, b.offsets)
            return True
        return False

    return framestream.stream(refill)


#: a cursor that moved further than this is read by the batch scanner (the block rule), not frame by frame
LIVE_MAX = 4096
#: cursor loads between two of the slower checks (stop, idle timeout, the page file unchanged, rollover)
#: when the wait policy has not slept meanwhile
SLOW_CHECK_LOADS = 1024


class _FollowRules:
    """The follower rules, once, for every follower (batches, and a frame stream's refill): open the first
    page, wait by the policy when nothing is new, make the slower checks when they are due (stop, idle
    timeout, the page file unchanged), and roll over to the next page."""

    def __init__(self, walk: Walk, index: int, policy: WaitPolicy, stop: Stop, idle_timeout: float | None):
        self.walk = walk
        self.index = index
        self.policy = policy
        self.stop = stop
        self.idle_timeout = idle_timeout
        self.loads = 0
        self.idle_since = time.monotonic()
        self._header: tuple[Page, object] | None = None  # (page, its writable header mapping) for parking

    def first_page(self) -> Page | None:
        """Page ``index`` once it exists (a new pass begins), or None when ``stop`` fires first."""
        self.walk._begin()
        page = self.walk.wait_page(self.index, self.stop, policy=self.policy)
        self.idle_since = time.monotonic()
        return page

    def progressed(self) -> None:
        """Frames arrived: the idle count, the policy and the idle timeout start again."""
        self.loads = 0
        self.policy.reset()
        if self.idle_timeout is not None:
            self.idle_since = time.monotonic()

    def header(self, page: Page):
        """A writable mapping of ``page``'s header to count a parked follower in (None: park timed only)."""
        if self._header is None or self._header[0] is not page:
            self._header = (page, park_header(page))
        return self._header[1]

    def park(self, page: Page, seen: int) -> bool:
        """With a parking policy, wait on ``page``'s cursor while it is ``seen`` (True: waited)."""
        if not self.policy.park_ns or not page.fmt.native or _park is None or page.sealed:
            return False
        hdr = self.header(page)
        if hdr is None:
            _park(page.mm, CURSOR_OFFSET, -1, FLAGS_OFFSET, PageFlag.SEALED, seen, self.policy.park_ns)
        else:
            _park(hdr, CURSOR_OFFSET, WAITERS_OFFSET, FLAGS_OFFSET, PageFlag.SEALED, seen, self.policy.park_ns)
        return True

    def idle(self, page: Page, off: int, loads: int, waited: bool = False) -> Page | bool:
        """Nothing new at ``off`` after ``loads`` cursor loads: wait by the policy (unless the caller
        ``waited`` already), then the slower checks when due. True: poll ``page`` again; a Page: the next
        page, go on at its first frame; False: stop (``stop``, the idle timeout, or damage, noted)."""
        self.loads += loads
        if not (waited or self.policy.idle(0)) and self.loads < SLOW_CHECK_LOADS:
            return True
        self.loads = 0
        walk = self.walk
        if stopped(self.stop):
            return False
        if self.idle_timeout is not None and time.monotonic() - self.idle_since > self.idle_timeout:
            return False
        walk.pages.check_unchanged(page)
        if page.sealed or walk.pages.exists(self.index + 1):
            if page.cursor > off:
                return True  # the last frames of this page arrived meanwhile
            nxt = walk.wait_page(self.index + 1, self.stop, prev=page, policy=self.policy)
            if nxt is None:
                return False
            self.index += 1
            self.policy.reset()
            return nxt
        return True


class _LiveRefill:
    """What a following frame stream calls when it runs dry: batch scans of a backlog and damage here,
    the rest (start, waits, slower checks, rollover) by the follower rules."""

    def __init__(self, walk: Walk, position: Position, policy: WaitPolicy, stop: Stop, idle_timeout: float | None,
                 slot: PositionSlot | None = None):
        self.walk = walk
        self.slot = slot  # a named follower's: released when the stream ends, is closed or is dropped
        self.rules = _FollowRules(walk, position[0], policy, stop, idle_timeout)
        self.start = position[1]
        self.filt = walk.filter
        self.policy = policy
        self.page: Page | None = None
        self.pending: tuple[Page, int, str] | None = None  # damage to note once the frames before it are out
        self.last_off = 0

    def attach(self, stream, page: Page, off: int) -> None:
        reg, policy = self.walk.registry, self.policy
        large = {mt.id: mt.layout.size for mt in reg.large_ids()}
        park = {}
        if policy.park_ns:
            hdr = self.rules.header(page)
            park = {"park_ns": policy.park_ns, "header": hdr, "waiters_offset": WAITERS_OFFSET if hdr else -1,
                    "flags_offset": FLAGS_OFFSET, "sealed_mask": int(PageFlag.SEALED)}
        stream.attach(page, page.mm, off, page.limit(), reg.min_lengths(), large, policy.stream_spins,
                      LIVE_MAX if self.filt.trivial else 0, CURSOR_OFFSET, **park)
        self.page = page
        self.last_off = off

    def __call__(self, stream) -> bool:
        go = self._step(stream)
        if not go and self.slot is not None:
            stream.close()  # gives the position cell back before the slot lets go of its mapping
            self.on_close()
        return go

    def on_close(self) -> None:
        """The stream was closed (it gave the position cell back first): a named follower's name is released."""
        slot, self.slot = self.slot, None
        if slot is not None:
            slot.release()

    def __del__(self) -> None:
        # the stream was dropped unfinished; it released the cell before it let go of us
        self.on_close()

    def _step(self, stream) -> bool:
        walk, page, rules = self.walk, self.page, self.rules
        if self.pending:
            walk._note_damage(*self.pending)
            return False
        if page is None:  # the first call: open (or wait for) the start page
            page = rules.first_page()
            if page is None:
                return False
            self.attach(stream, page, self.start)
            return True
        status, off = stream.status, stream.offset
        if off != self.last_off:  # frames arrived since the last call
            self.last_off = off
            rules.progressed()
        if status == STATUS_BACKLOG:
            offsets, headers, nxt, problem = scan_page(page, off, stream.cursor, walk.registry, DEFAULT_BATCH,
                                                       headers_wanted=False)
            batch = self.filt(FrameBatch(page, offsets, headers))
            stream.feed(page, page.mm, batch.offsets)
            stream.offset = self.last_off = nxt
            if problem:
                self.pending = (page, nxt, problem)
                stream.detach()
            rules.progressed()
            return True
        if status == STATUS_BAD_CURSOR:
            walk._note_damage(page, off, page.header_problem() or "bad cursor")
            return False
        if status == STATUS_BAD_FRAME:
            room = stream.cursor - off
            length, mt = FRAME_HEADER.struct.unpack_from(page.mm, off)[:2] if room >= FRAME_HEADER_SIZE else (0, 0)
            walk._note_damage(page, off, _frame_problem(length, mt, room, walk.registry))
            return False
        # idle: the stream made policy.stream_spins loads (and parked, with a parking policy)
        went = rules.idle(page, off, self.policy.stream_spins, waited=bool(self.policy.park_ns))
        if went is False:
            return False
        if went is not True:
            self.attach(stream, went, went.frame_start)
        return True


def _frame_problem(length: int, mt: int, room: int, registry: TypeRegistry) -> str:
    if room < FRAME_HEADER_SIZE:
        return SCAN_ERRORS[1]
    if length > room - FRAME_HEADER_SIZE:
        return SCAN_ERRORS[2].format(length=length)
    if mt == 0:
        return SCAN_ERRORS[3]
    return _short(registry, mt, length)


__all__ = ["BUSY_SPINS", "DEFAULT_BATCH", "BackoffWait", "BusyWait", "Damage", "ParkWait", "SleepWait", "Walk",
           "WaitPolicy", "frames_of_batches", "scan_page", "stopped", "validate_page", "wait_policy"]
