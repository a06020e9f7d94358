"""How a replay's frames go out: as fast as possible, or on schedule through the C pacer or the Python loop.

One pacing is chosen per run (``Replay._choose_pacing``). Paced, frame i is due at
``anchor + (gen_time_i - gen_time_0) / speed``; every deadline comes from the one
anchor (never from summed gaps), so error never accumulates. The anchor moves
only when a pause ends (time stands still while paused) and each loop takes its
own anchor. Frames whose deadline has passed are emitted together in one bulk
write, so a fast recording replayed at high speed does not fall behind a
per-frame loop.
"""

from __future__ import annotations

import bisect
import struct
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

import numpy as np

from ..journal.format import CURSOR_OFFSET, FRAME_HEADER, PAGE_HEADER, WAITERS_OFFSET
from ..journal.layout import BYTE_ORDER
from ..journal.merge import MergedBatch
from ..journal.page import ArchivedPage, Page
from ..journal.pretouch import pretoucher
from ..journal.reader import FrameBatch
from ..journal.writer import Writer
from .clock import Controller
from .dispatch import Dispatcher
from .stats import ReplayStats

GEN_OFF = FRAME_HEADER.offset("gen_time")
TRIGGER_OFF = FRAME_HEADER.offset("trigger_time")
LENGTH_OFF = FRAME_HEADER.offset("length")
#: what the C pacer needs to know of a kftools frame header
FRAME_FIELDS = (FRAME_HEADER.size, LENGTH_OFF, GEN_OFF, TRIGGER_OFF)
#: one header column, as FRAME_HEADER declares gen_time (and trigger_time, the same type)
_I64 = struct.Struct(BYTE_ORDER + FRAME_HEADER.field("gen_time").struct_code)
_U32 = struct.Struct(BYTE_ORDER + FRAME_HEADER.field("length").struct_code)
_I64_DTYPE = FRAME_HEADER.field("gen_time").numpy_code
assert FRAME_HEADER.field("gen_time").kind == FRAME_HEADER.field("trigger_time").kind
LONG_WAIT_NS = 60 * 1_000_000_000  # a paced wait longer than this is said (a far-future gen_time)
SLICE_NS = 2_000_000  # the C pacer hands back at least this often: stop and pause stay responsive

try:  # the C pacer (see _pacer.c); without it the Python loop (PythonPacing) does the same, slower
    from . import _pacer as C_PACER  # type: ignore[attr-defined]  # the C extension setup.py builds; no stub
except ImportError:  # pragma: no cover - a build without a C compiler
    C_PACER = None
# Each batch's preparation delays the frames due meanwhile (p99), and preparing costs less per frame in
# larger batches: at speed 10 (a frame every µs) 256-frame batches gave the lowest p99 with the C pacer
# (35-46 µs, against 38-53 at 128 and 45-138 at 64; docs/replay.md); the Python loop keeps up only with 64.
PACED_BATCH, PACED_BATCH_C = 64, 256
# what the pacer assumes of the layouts: a 4-byte cursor and an 8-byte gen_time
assert PAGE_HEADER.field("write_cursor").size == 4 and FRAME_HEADER.field("gen_time").size == 8
MAX_BATCH = 1 << 16

Batches = Iterator[FrameBatch] | Iterator[MergedBatch]


class Pacing:
    """How one run's frames go out: :class:`MaxPacing`, :class:`PythonPacing` or :class:`CPacing`.

    ``stopped`` is the replay's stop check (None when nothing can stop it); ``say_long_wait(wait_ns, gen_time,
    previous)`` is told of a paced wait longer than a minute. ``last_emit`` and ``paused_at_emit`` say when the
    last frame went out (the run's wall time ends there) and how long the run had been paused by then.
    """

    batch_size = MAX_BATCH

    def __init__(self, clock, controller: Controller, stats: ReplayStats, dispatch: Dispatcher,
                 stopped: Callable[[], bool] | None,
                 say_long_wait: Callable[[int, int, int | None], None] | None = None):
        self.clock, self.controller, self.stats, self.dispatch = clock, controller, stats, dispatch
        self.stopped = stopped
        self.say_long_wait = say_long_wait
        self.t0: int | None = None  # gen_time of the run's first frame: recording time counts from it
        self.last_rel = 0  # the schedule so far (ns after the anchor): a later frame is never due before it
        self.last_emit = 0
        self.paused_at_emit = 0

    def start_loop(self) -> None:
        """A new pass over the recording: its schedule starts again."""
        self.last_rel = 0

    def close(self) -> None:
        """The run ended."""

    def prepare(self, batch: FrameBatch | MergedBatch) -> _Prepared | None:
        """A batch ready to emit and, paced, its schedule (``rel``: ns after the anchor); None if empty."""
        n = len(batch)
        if not n:
            return None
        seen = self.clock.now()
        gens = batch.headers["gen_time"]
        if self.t0 is None:
            self.t0 = int(gens[0])
        return self._prepared(batch, n, gens, seen)

    def _prepared(self, batch, n: int, gens: np.ndarray, seen: int) -> _Prepared:
        """Its frames copied out, trigger times set (the original event time)."""
        data, starts = batch.raw_frames()
        set_column(data, starts[:-1], TRIGGER_OFF, gens)
        return _Prepared(batch, n, gens, data, starts, seen)

    def play(self, batches: Batches, anchor: int | None, live: bool) -> int | None:
        """Emit ``batches``; returns the anchor of the schedule (moved by pauses; None before any frame)."""
        raise NotImplementedError


class MaxPacing(Pacing):
    """As fast as possible (``--max``): each batch whole, as soon as it is read."""

    def play(self, batches: Batches, anchor: int | None, live: bool) -> int | None:
        """Emit ``batches`` whole, as soon as each is read; returns ``anchor`` (no schedule here)."""
        clock, ctl, st = self.clock, self.controller, self.stats
        emit, handle, stopped = self.dispatch.emit, self.dispatch.handle, self.stopped
        for batch in batches:
            prep = self.prepare(batch)
            if stopped is not None and stopped():
                break
            if prep is None:
                continue  # a follower caught up
            if ctl.paused:
                since = clock.now()
                while ctl.paused and not (stopped and stopped()):
                    clock.sleep(5_000_000)
                st.paused_ns += clock.now() - since
            n, data, starts = prep.n, prep.data, prep.starts
            wall = clock.wall()
            set_column(data, starts[:-1], GEN_OFF, np.full(n, wall, np.int64))
            done_n = emit(data, starts, 0, n, batch, wall)
            st.frames += done_n
            if done_n < n:
                break
            st.position_ns = int(prep.gens[-1]) - cast(int, self.t0)
            if handle is not None:
                handle(batch, 0, n, wall)
            self.last_emit = clock.now()  # after the strategy: its time is part of the wall time
            self.paused_at_emit = st.paused_ns
        return anchor


class _Paced(Pacing):
    """On schedule: each frame when it is due, the frames due together in one write (see the module)."""

    #: how early a wait may hand back and the frame still count as reached (the C pacer spins the rest)
    early_ns = 0

    def __init__(self, speed: float, *args, **kw):
        super().__init__(*args, **kw)
        self.speed = speed
        ctl, stopped = self.controller, self.stopped
        self._interrupted = (lambda: ctl.paused or stopped()) if stopped else (lambda: ctl.paused)

    def play(self, batches: Batches, anchor: int | None, live: bool) -> int | None:
        """Emit ``batches`` on schedule from ``anchor``; returns the anchor (moved by pauses).

        Without an anchor, the schedule starts when the first frame is ready to go:
        the one-time costs of the first batch (opening, first page faults) must not
        make the first frames late and the rest rush to catch up.
        """
        # not live: the next batch is read and prepared while we wait for a frame due later, so its
        # preparation never delays frames that are due (bursts spanning two batches included)
        ahead = _Ahead(batches, self.prepare) if not live else None
        prepared = ahead if ahead is not None else (self.prepare(b) for b in batches)
        stopped = self.stopped
        for prep in prepared:
            if stopped is not None and stopped():
                break
            if prep is None:
                continue  # a follower caught up
            if anchor is None:
                anchor = self.clock.now() - int(prep.rel[0])
            emitted = np.empty(prep.n, np.int64)  # per frame: emission time minus anchor
            anchor, i = self._play_batch(prep, anchor, ahead, emitted)
            if i:
                late = emitted[:i] - prep.rel[:i]
                if live:  # a live frame cannot go out before it arrived: lateness counts from arrival
                    late = np.minimum(late, emitted[:i] + (anchor - prep.seen))
                self.stats._late.append(late)
                self.stats.position_ns = int(prep.gens[i - 1]) - cast(int, self.t0)
            if i < prep.n:
                break
        return anchor

    def _play_batch(self, prep: _Prepared, anchor: int, ahead: _Ahead | None,
                    emitted: np.ndarray) -> tuple[int, int]:
        """The frames of one batch, each when due; returns (the anchor, how many went out)."""
        now_f, ctl, stopped = self.clock.now, self.controller, self.stopped
        rel, n = prep.rel, prep.n
        self._begin(prep)
        i = 0
        while i < n:
            step = False
            if ctl.paused:
                held = self._hold(anchor, int(rel[i]))
                if held is None:
                    break
                anchor, step = held
            d = anchor + int(rel[i])
            now = now_f()
            if now < d:
                if ahead is not None and d - now > ahead.cost_ns and ahead.prepare():
                    now = now_f()  # prepared the next batch in the slack before this frame
                    if now >= d:
                        continue
                if d - now > LONG_WAIT_NS and self.say_long_wait is not None:
                    self.say_long_wait(d - now, int(prep.gens[i]), int(prep.gens[i - 1]) if i else None)
                now = self._wait_until(d)
                if now < d - self.early_ns:
                    if stopped is not None and stopped():
                        break
                    continue  # paused during the wait
            j = self._emit(prep, i, step, anchor, now, ahead, emitted)
            if j is None:
                break
            i = j
            if stopped is not None and stopped():
                break
        return anchor, i

    def _begin(self, prep: _Prepared) -> None:
        """Before the first frame of ``prep``."""

    def _wait_until(self, deadline: int) -> int:
        return self.clock.wait_until(deadline, self._interrupted)

    def _emit(self, prep: _Prepared, i: int, step: bool, anchor: int, now: int, ahead: _Ahead | None,
              emitted: np.ndarray) -> int | None:
        """Emit the frames from ``i`` that are due (one if ``step``), noting when in ``emitted``; returns where
        the next frame is, or None when the dispatcher took none (stopped)."""
        raise NotImplementedError

    def _emitted(self, at: int) -> None:
        self.last_emit = at
        self.paused_at_emit = self.stats.paused_ns

    def _hold(self, anchor: int, next_rel: int) -> tuple[int, bool] | None:
        """Wait while paused. Returns (anchor, step) or None if stopped.

        Replay time stands still while paused: on resume the next frame is due
        as long after the resume as it was after the pause.
        """
        clock, ctl, stopped = self.clock, self.controller, self.stopped
        since = clock.now()
        virtual = min(since - anchor, next_rel)
        try:
            while True:
                if stopped is not None and stopped():
                    return None
                if ctl.take_step():
                    # replay time jumps from where it stood to the stepped frame, in no running time
                    self.stats.stepped_ns += int((next_rel - virtual) * self.speed)
                    return clock.now() - next_rel, True
                if not ctl.paused:
                    return clock.now() - virtual, False
                clock.sleep(2_000_000)
        finally:
            self.stats.paused_ns += clock.now() - since


class PythonPacing(_Paced):
    """On schedule, every frame through Python: what a strategy, an injected clock or a Kungfu output needs."""

    batch_size = PACED_BATCH

    def _prepared(self, batch, n: int, gens: np.ndarray, seen: int) -> _Prepared:
        prep = super()._prepared(batch, n, gens, seen)
        rel = ((gens - cast(int, self.t0)) / self.speed).astype(np.int64)
        rel[0] = max(int(rel[0]), self.last_rel)
        np.maximum.accumulate(rel, out=rel)  # out-of-order gen_times: never due before an earlier frame
        self.last_rel = int(rel[-1])
        prep.rel = rel
        return prep

    def _begin(self, prep: _Prepared) -> None:
        # struct and the writer take a memoryview far faster than an ndarray
        # (numpy's stubs declare ndarray.__buffer__ only for Python >= 3.12)
        self._mv = memoryview(prep.data)  # type: ignore[arg-type]

    def _emit(self, prep: _Prepared, i: int, step: bool, anchor: int, now: int, ahead: _Ahead | None,
              emitted: np.ndarray) -> int | None:
        j = i + 1 if step else bisect.bisect_right(prep.rel_l, now - anchor, i + 1)
        wall = self.clock.wall()
        mv, pack_gen = self._mv, _I64.pack_into
        if j - i == 1:
            pack_gen(mv, prep.starts_l[i] + GEN_OFF, wall)
        elif j - i <= 64:  # cheaper than numpy's fixed cost for a few frames
            for s in prep.starts_l[i:j]:
                pack_gen(mv, s + GEN_OFF, wall)
        else:
            set_column(prep.data, prep.starts[i:j], GEN_OFF, np.full(j - i, wall, np.int64))
        done = self.dispatch.emit(mv, prep.starts, i, j, prep.batch, wall)
        if not done:
            return None
        j = i + done
        t = self.clock.now()
        emitted[i:j] = t - anchor
        self.stats.frames += j - i
        self._emitted(t)
        handle = self.dispatch.handle
        if handle is not None:
            handle(prep.batch, i, j, wall)
            self.last_emit = self.clock.now()  # the strategy's time is part of the wall time
        return j


class CPacing(_Paced):
    """On schedule, the C pacer copying due frames straight into the output page (nothing else sees them)."""

    batch_size = PACED_BATCH_C

    def __init__(self, speed: float, pacer: Any, writer: Writer, *args, **kw):
        super().__init__(speed, *args, **kw)
        self.pacer = pacer
        self.writer = writer
        self.early_ns = self.clock.spin_ns  # the C pacer spins the last stretch itself
        self._source_page: Page | None = None
        self._source_toucher: Any = None

    def _prepared(self, batch, n: int, gens: np.ndarray, seen: int) -> _Prepared:
        """Where its frames lie (``starts``: their offsets in ``data``), the source page itself when it is in
        kftools' layout; the pacer sets the trigger time as it copies, so a batch is ready in a few µs."""
        if isinstance(batch, FrameBatch) and batch.page.fmt.native:
            where: tuple[Any, np.ndarray] = (batch.page.mm, np.ascontiguousarray(batch.offsets, np.int64))
            self._read_ahead(batch.page, int(where[1][-1]))
        else:  # several journals, or Kungfu's layout: frames copied out in kftools' layout
            where = batch.raw_frames()
        prep = _Prepared(batch, n, gens, *where, seen)
        prep.rel = np.empty(n, np.int64)
        self.last_rel = self.pacer.schedule(*where, n, *FRAME_FIELDS, self.t0, self.speed, self.last_rel, prep.rel)
        return prep

    def _wait_until(self, deadline: int) -> int:
        return self.clock.sleep_until(deadline, self._interrupted)

    def _emit(self, prep: _Prepared, i: int, step: bool, anchor: int, now: int, ahead: _Ahead | None,
              emitted: np.ndarray) -> int | None:
        # hand back at the first gap long enough to prepare the next batch in, until it is ready
        spin_ns = self.early_ns
        bound = spin_ns if ahead is None or ahead.ready else min(spin_ns, ahead.cost_ns)
        w, pacer, data, starts = self.writer, self.pacer, prep.data, prep.starts
        page, pos, cap = w.append_area()
        j, pos, status = pacer.emit(data, starts, prep.rel, i, i + 1 if step else prep.n, anchor, bound, SLICE_NS,
                                    page, pos, cap, CURSOR_OFFSET, *FRAME_FIELDS, emitted, WAITERS_OFFSET)
        if j > i:
            w.appended(pos, j - i)
            self.stats.frames += j - i
            self._emitted(self.clock.now())
        if status == pacer.FULL:
            w.append_area(need=FRAME_HEADER.size + _U32.unpack_from(data, int(starts[j]) + LENGTH_OFF)[0])
        return j

    def close(self) -> None:
        self._read_ahead(None)

    def _read_ahead(self, page: Page | None, position: int = 0) -> None:
        """Keep the source page faulted in ahead of the walk (None: stop), off the emitting thread."""
        if page is not self._source_page:
            if self._source_toucher is not None:
                self._source_toucher.stop()
            self._source_page, self._source_toucher = page, None
            # an archived page is memory it was decompressed into: already there
            if page is not None and not isinstance(page, ArchivedPage):
                self._source_toucher = pretoucher(page.mm, len(page.mm), cursor_offset=CURSOR_OFFSET, write=False)
        if self._source_toucher is not None:
            self._source_toucher.advance(position)


class _Prepared:
    """A batch ready to emit (see ``Pacing.prepare``): ``data`` holds its frames at offsets ``starts``, a copy
    (the Python loop's, ``starts`` ending with the end) or, for the C pacer, maybe the source page itself."""

    __slots__ = ("batch", "n", "gens", "data", "starts", "seen", "rel", "_rel_l", "_starts_l")

    def __init__(self, batch, n: int, gens: np.ndarray, data: Any, starts: np.ndarray, seen: int):
        self.batch, self.n, self.gens, self.data, self.starts, self.seen = batch, n, gens, data, starts, seen
        self.rel: np.ndarray = np.empty(0, np.int64)
        self._rel_l: list[int] | None = None
        self._starts_l: list[int] | None = None

    # the Python loop's lists (it indexes them per frame); the C pacer reads the arrays
    @property
    def rel_l(self) -> list[int]:
        if self._rel_l is None:
            self._rel_l = self.rel.tolist()
        return self._rel_l

    @property
    def starts_l(self) -> list[int]:
        if self._starts_l is None:
            self._starts_l = self.starts.tolist()
        return self._starts_l


class _Ahead:
    """Prepared batches, one ahead: ``prepare()`` reads and prepares the next one while the replay has time to
    spare before a frame is due; iterating takes the one prepared ahead, or prepares it then."""

    def __init__(self, batches: Iterator, prepare: Callable[[Any], _Prepared | None]):
        self._batches = iter(batches)
        self._prepare = prepare
        self._next: _Prepared | None = None
        self._have = False
        self._done = False
        # what preparing a batch takes: a decaying maximum of what it took (a rare slow one is remembered a while)
        self.cost_ns = 50_000

    @property
    def ready(self) -> bool:
        """The next batch is prepared, or there is none."""
        return self._have or self._done

    def prepare(self) -> bool:
        """Prepare the next batch unless one is ready already or none is left; True if it did."""
        if self._have or self._done:
            return False
        t = time.perf_counter_ns()
        try:
            batch = next(self._batches)
        except StopIteration:
            self._done = True
            return False
        self._next = self._prepare(batch)
        self._have = True
        self.cost_ns = max(self.cost_ns * 15 // 16, time.perf_counter_ns() - t)
        return True

    def __iter__(self) -> _Ahead:
        return self

    def __next__(self) -> _Prepared | None:
        if not self._have and not self.prepare():
            raise StopIteration
        self._have = False
        prepared, self._next = self._next, None
        return prepared


def set_column(data: np.ndarray, starts: np.ndarray, rel: int, values: np.ndarray) -> None:
    """Store int64 ``values`` at byte ``starts + rel`` of ``data`` (uint8), vectorised.

    Frames have any length, so the 8-byte slots are unaligned in general:
    view ``data`` as int64 once per residue mod 8 and scatter into each view.
    """
    if not len(starts):
        return
    pos = starts + rel
    rem = pos & 7
    r0 = int(rem[0])
    if (rem == r0).all():
        groups = [(r0, None)]
    else:
        groups = [(int(r), rem == r) for r in np.unique(rem)]
    values = np.asarray(values, dtype=np.int64)
    for r, sel in groups:
        usable = (len(data) - r) // 8 * 8
        view = data[r : r + usable].view(_I64_DTYPE)
        if sel is None:
            view[(pos - r) >> 3] = values
        else:
            view[(pos[sel] - r) >> 3] = values[sel] if values.ndim else values
