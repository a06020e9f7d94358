"""Strategies in their own processes: the replay follows their order journals, as an engine's gateway does.

A strategy process follows the replay's output (``kftools.Reader`` or the C++
header) and writes Order and CancelRequest frames into an order journal of its
own, with ``trigger_time`` = the recording time (the output frame's
``trigger_time``) of the frame it was handling, and an Ack frame (``frames`` =
how many output frames it has handled) whenever it has caught up. The replay
reads those journals and runs the same simulated exchange as an in-process
backtest; the answers (OrderUpdate, Fill) go into the output when they reach
the strategy (after the response latency), just before the market frame at
which an in-process strategy would have received them, with ``dest`` = the
``source`` of the request they answer.

Two clocks (docs/backtest.md states what each guarantees):

- **lockstep** (the default): the replay never handles a market frame at
  recording time ``t`` before every strategy has acknowledged every output
  frame older than ``t - latency``: no request a strategy could still send can
  arrive before a frame the exchange has already handled. Results are those of
  an in-process run of the same logic, byte for byte, whatever the speed or the
  load of the machine. With latency 0 that is one round trip per frame.
- **free-running**: the replay never waits; a request is handled as sent when
  the replay reads it (the strategy's own slowness is part of the result, as in
  production). Not reproducible.
"""

from __future__ import annotations

import bisect
import struct
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import NotAJournal, StrategyError
from ..journal.format import (
    ACK,
    CURSOR_OFFSET,
    FLAGS_OFFSET,
    FRAME_HEADER,
    FRAME_HEADER_SIZE,
    WAITERS_OFFSET,
    MsgType,
    OrderType,
    PageFlag,
    WriterState,
)
from ..journal.layout import BYTE_ORDER
from ..journal.page import NotYetWritten, Page
from ..journal.reader import FrameBatch, Reader
from ..journal.writer import Writer
from . import loop
from .engine import _check_order, pack_fill, pack_update
from .exchange import SimOrder
from .loop import Backtest

_ORDER, _CANCEL, _ACK = int(MsgType.ORDER), int(MsgType.CANCEL_REQUEST), int(MsgType.ACK)
_MODIFY, _TIMER = int(MsgType.MODIFY_REQUEST), int(MsgType.TIMER)
_GEN_OFF = FRAME_HEADER.offset("gen_time")
_I64 = struct.Struct(BYTE_ORDER + FRAME_HEADER.field("gen_time").struct_code)
_LENGTH_TYPE = struct.Struct(BYTE_ORDER + FRAME_HEADER.field("length").struct_code
                             + FRAME_HEADER.field("msg_type").struct_code)
assert FRAME_HEADER.offset("msg_type") == FRAME_HEADER.offset("length") + 4 == 4
_ACK_FRAMES = struct.Struct(BYTE_ORDER + ACK.field("frames").struct_code)
_ACK_AT = FRAME_HEADER_SIZE + ACK.offset("frames")
#: where Core_lockstep (``_core.c``) finds what it reads and writes, from the layouts
_LOCKSTEP_SPEC = (FRAME_HEADER_SIZE, FRAME_HEADER.offset("length"), FRAME_HEADER.offset("msg_type"), _GEN_OFF,
                  CURSOR_OFFSET, WAITERS_OFFSET, FLAGS_OFFSET, ACK.offset("frames"), _ACK, ACK.size,
                  int(PageFlag.SEALED))
LOCKSTEP_SPINS = 1 << 16  # the C loop's empty polls before it hands a wait to Python's back-off (and checks)
FREE_CHUNK = 1024  # free-running: frames handled between two looks at the order journals
STATE_CHECK_NS = 20_000_000  # while waiting: how often to ask whether a strategy is still alive (syscalls)


def _text(b: bytes) -> str:
    return b.split(b"\0", 1)[0].decode("utf-8", "replace")


def check_order_journal(path: str) -> None:
    """Refuse (NotAJournal) an order journal that exists and is not a journal; one not created yet is fine."""
    try:
        Reader(path).close()
    except NotYetWritten:
        pass
    except NotAJournal as e:
        raise NotAJournal(f"order journal {e}") from None


class OrderJournal:
    """One strategy's order journal, read without blocking from where the last poll ended."""

    def __init__(self, path: str, number: int):
        self.path = path
        self.number = number  # 1, 2, ... in the order given
        self.reader: Reader | None = None
        self.pos: tuple[int, int] | None = None  # (page, offset) after the last frame read
        self.acked = 0  # output frames the strategy said it has handled
        self.frames = 0  # frames read from this journal
        self.orders: set[int] = set()  # order ids it sent
        self.timers = False  # it said it sets timers
        self.ready = False  # it acknowledged (its start-up is over)
        self._page: Page | None = None  # the page ``pos`` is on

    def open(self) -> bool:
        """Open the journal once it exists (False while the strategy has not created it yet)."""
        if self.reader is None:
            try:
                self.reader = Reader(self.path)
            except NotYetWritten:
                return False
            except NotAJournal as e:
                raise NotAJournal(f"order journal {e}") from None
            self.pos = (self.reader.first_page, self.reader.page(self.reader.first_page).frame_start)
        return True

    def poll(self) -> list[FrameBatch]:
        """Batches committed since the last poll (cheap when nothing is new: one cursor load)."""
        if not self.open():
            return []
        r, pos = self.reader, self.pos
        assert r is not None and pos is not None
        page = self._page
        if page is None or page.index != pos[0]:
            page = self._page = r.page(pos[0])
        if page.cursor <= pos[1] and not page.sealed:  # the lockstep's hot loop: two loads, no batch
            return []
        out = []
        for b in r.batches(start=pos):
            out.append(b)
            self.pos = (b.page.index, int(b.offsets[-1]) + FRAME_HEADER_SIZE + int(b.headers["length"][-1]))
        if r.damage is not None:
            raise StrategyError(f"order journal {r.damage}")
        return out

    def acks(self, written: int) -> tuple[int, int] | None:
        """The lockstep's hot path: (how many, the last one's count) of the Ack frames committed since the last
        poll on the open page, (0, 0) when nothing is new; None when anything else is there (a request, a
        sealed or new page, bytes that are not a whole Ack, an Ack of more than the ``written`` output frames:
        :meth:`poll` reads and validates those)."""
        page, pos = self._page, self.pos
        if page is None or pos is None or page.index != pos[0] or page.sealed:
            return None
        cursor = page.cursor
        off = pos[1]
        if cursor <= off:
            return 0, 0
        mm = page.mm
        n = last = 0
        while off < cursor:
            length, mt = _LENGTH_TYPE.unpack_from(mm, off)
            end = off + FRAME_HEADER_SIZE + length
            if mt != _ACK or length < ACK.size or end > cursor:
                break
            v = _ACK_FRAMES.unpack_from(mm, off + _ACK_AT)[0]
            if v > written:
                break
            last = max(last, v)
            n += 1
            off = end
        if off < cursor:
            return None
        self.pos = (pos[0], off)
        self.frames += n
        return n, last

    def on_page(self) -> bool:
        """The page the read position is on is open here (the C loop reads its Acks from it)."""
        page, pos = self._page, self.pos
        return page is not None and pos is not None and page.index == pos[0] and page.fmt.native

    def page_mapping(self):
        assert self._page is not None
        return self._page.mm

    def state(self) -> tuple[WriterState, int]:
        """(alive, exited, crashed, unknown, or missing: not created yet; the writer's pid)."""
        if self.reader is None:
            return WriterState.MISSING, 0
        return self.reader.writer_state()

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()


class Gateway:
    """The replay's dispatcher for out-of-process strategies: it writes the replayed frames itself, interleaved
    with the exchange's answers, and (lockstep) waits for the strategies' acknowledgements."""

    def __init__(self, engine: Backtest, output: Writer, journals: list[str], *, lockstep: bool = True,
                 stopped: Callable[[], bool] | None = None, wall: Callable[[], int] = time.time_ns):
        self.engine = engine
        self.ctx = engine.ctx
        self.output = output
        self.journals = [OrderJournal(p, k + 1) for k, p in enumerate(journals)]
        self.lockstep = lockstep
        self.stopped = stopped or (lambda: False)
        self.wall = wall
        self.request_latency = engine.exchange.latency
        # output frames written but not acknowledged by every strategy: (count after, time of its first frame)
        self.units: deque[tuple[int, int]] = deque()
        self.written = 0  # output frames written
        self.dest: dict[int, int] = {}  # order id -> the source of the journal that sent it (answers' dest)
        self.failed = False
        self._answers: list[tuple[str, Any]] = []
        self._started = False
        engine.sink = self._heard
        self._checked = time.monotonic_ns()
        engine.output = None  # answers are published when they reach the strategy, not when decided

    def _heard(self, kind: str, row: tuple) -> None:
        """An answer or a timer reached a strategy: published into the output before the next market frame."""
        self._answers.append((kind, row))

    @property
    def latency(self) -> int:
        """How far the replay may run ahead of an unacknowledged frame: the request latency, or 0 once a
        strategy said it sets timers (a timer may be due at once, and what its callback sends with it)."""
        return 0 if any(j.timers for j in self.journals) else self.request_latency

    # -- what the replay calls ---------------------------------------------------------------
    def call(self, name: str) -> None:
        """No in-process callbacks: the strategies run elsewhere."""

    def emit(self, data: np.ndarray, starts: np.ndarray, i: int, j: int, batch, wall: int) -> int:
        """Write frames ``i..j-1`` of ``batch`` (bytes ``data``) and everything they cause; returns how many
        were written (fewer when stopped)."""
        try:
            return self._emit(data, starts, i, j, batch)
        except BaseException:
            self.failed = True
            raise

    def finish(self) -> None:
        """End of the recording: the last acknowledgements, the answers still on their way, then theirs."""
        eng = self.engine
        try:
            if self.failed:
                return
            self._wait_all()
            while eng.step_until(None):  # what the strategies send in reaction to the last answers counts too
                if self._answers:
                    self._publish()
                    self._wait_all()
            eng.close()
        finally:
            for j in self.journals:
                j.close()

    # -- the loop ------------------------------------------------------------------------------
    def _emit(self, data, starts, i, j, batch) -> int:
        eng = self.engine
        if not self._started:
            self._start()
        gens = batch.headers["gen_time"][i:j]
        times_a = np.maximum.accumulate(np.maximum(gens, eng.time)) if j > i else np.zeros(0, np.int64)
        times = times_a.tolist()
        fast = self.lockstep and hasattr(eng, "lockstep")
        if fast:
            times_a = np.ascontiguousarray(times_a, np.int64)
            starts = np.ascontiguousarray(starts, np.int64)
        k = i
        while k < j:
            if fast and not self._answers and all(jn.on_page() for jn in self.journals):
                k, reason = self._lockstep(data, starts, k, j, i, times_a, batch)
                if reason == loop.LOCKSTEP_DONE:
                    break
                if reason == loop.LOCKSTEP_WAIT:  # a long wait: Python's back-off (sleeps, checks), then the C loop again
                    self._take()
                    if self._allowed(times, k - i, i) == k and not self._wait(times[k - i]):
                        return k - i
                    continue
            self._take()
            if self.lockstep:
                r = self._allowed(times, k - i, i)
            else:
                r = min(j, k + FREE_CHUNK)
                now = time.monotonic_ns()
                if now - self._checked > STATE_CHECK_NS:
                    self._checked = now
                    self._check_alive()
            if r == k:
                if not self._wait(times[k - i]):
                    return k - i
                continue
            if not eng.busy:
                # nothing of ours in the market and no answer on its way: these frames cannot cause one
                eng.frames(batch, k, r, self.wall())
                self._write(data, starts, k, r, times[k - i])
                k = r
                continue
            if not self._settle(times[k - i]):
                return k - i
            eng.frames(batch, k, k + 1, self.wall())
            self._publish()
            self._write(data, starts, k, k + 1, times[k - i])
            k += 1
        return j - i

    def _lockstep(self, data, starts, k: int, j: int, base: int, times, batch) -> tuple[int, int]:
        """Frames from ``k`` through the C loop, until it needs Python (a request, an answer or timer due, a
        full output page, a long wait): (the next frame, why it returned)."""
        js = self.journals
        page, pos, cap = self.output.append_area()
        jpos = np.array([jn.pos[1] for jn in js], np.int64)  # type: ignore[index]
        acked = np.array([jn.acked for jn in js], np.int64)
        nread = np.array([jn.frames for jn in js], np.int64)
        k, pos, out, self.written, units, reason = self.engine.lockstep(
            batch, k, j, times, base, data, starts, page, pos, cap, tuple(jn.page_mapping() for jn in js), jpos,
            acked, nread, list(self.units), self.written, self.latency, self.wall, _LOCKSTEP_SPEC, LOCKSTEP_SPINS)
        self.output.appended(pos, out)
        self.units = deque(units)
        for jn, p, a, n in zip(js, jpos.tolist(), acked.tolist(), nread.tolist(), strict=True):
            jn.pos = (jn.pos[0], p)  # type: ignore[index]
            jn.acked, jn.frames = a, n
        return k, reason

    def _settle(self, t: int) -> bool:
        """Before a market frame at ``t``: every event before it happens, and what reaches the strategies
        then (answers, timers) is published and (lockstep) acknowledged, with the requests they cause taken
        in: a strategy answering an answer with latency 0 is in time for this frame, as in-process. False
        when stopped."""
        eng = self.engine
        while eng.step_until(t):
            if not self._answers:
                continue
            self._publish()
            if not self.lockstep:
                continue
            while self.units and self.units[0][1] + self.latency <= t:
                if not self._wait(t):
                    return False
        return True

    def _allowed(self, times: list[int], rel: int, base: int) -> int:
        """End of the frames from ``base + rel`` that can be handled now: recording time before the oldest
        unacknowledged frame's time plus the latency (a request sent there cannot have arrived)."""
        if self.units:
            horizon = self.units[0][1] + self.latency
            return base + bisect.bisect_left(times, horizon, rel)
        # nothing unacknowledged: the next frame may go, and those a request sent at it cannot reach
        return base + max(rel + 1, bisect.bisect_left(times, times[rel] + self.latency, rel))

    def _write(self, data, starts, k: int, r: int, first_time: int) -> None:
        wall = self.wall()
        for s in starts[k:r].tolist():
            _I64.pack_into(data, s + _GEN_OFF, wall)
        self.output.write_raw_frames(data, starts, k, r)
        self.written += r - k
        if self.lockstep:
            self.units.append((self.written, first_time))

    def _publish(self) -> None:
        """Answers that just reached the strategies, into the output before the frame that follows."""
        if not self._answers:
            return
        w = self.output
        wall = self.wall()
        for kind, row in self._answers:
            if kind == "timer":
                jn, tid = row.data
                w.write(_TIMER, timer_id=tid, at=row.time, gen_time=wall, trigger_time=row.time, dest=jn)
            elif kind == "fill":
                w.write(int(MsgType.FILL), pack_fill(row), gen_time=wall, trigger_time=row[0],
                        dest=self.dest.get(row[2], 0))
            else:
                w.write(int(MsgType.ORDER_UPDATE), pack_update(row), gen_time=wall, trigger_time=row[0],
                        dest=self.dest.get(row[1], 0))
        self.written += len(self._answers)
        if self.lockstep:
            # a strategy may answer an answer: its requests can arrive from this time plus the latency on
            self.units.append((self.written, min(row.time for _kind, row in self._answers)))
        self._answers.clear()

    # -- requests ---------------------------------------------------------------------------------
    def _start(self) -> None:
        """Before the first frame: every strategy has created its order journal and (lockstep) said it is ready
        with a first Ack, after its start-up: what it sent then is in."""
        self._started = True
        policy = _Backoff()
        checked = time.monotonic_ns()
        while not all(j.open() for j in self.journals) or (self.lockstep and not all(j.ready for j in self.journals)):
            if self.stopped():
                return
            self._take()
            now = time.monotonic_ns()
            if now - checked > STATE_CHECK_NS:
                checked = now
                self._check_alive()
            policy.pause()

    def _take(self) -> None:
        for jn in self.journals:
            got = jn.acks(self.written)
            if got is None:
                for b in jn.poll():
                    self._requests(jn, b)
            elif got[0]:
                jn.acked = max(jn.acked, got[1])
                jn.ready = True
                self._prune()

    def _requests(self, jn: OrderJournal, b: FrameBatch) -> None:
        eng = self.engine
        ex = eng.exchange
        h = b.headers
        kinds = h["msg_type"].tolist()
        trig = h["trigger_time"].tolist()
        src = h["source"].tolist()
        offsets = b.offsets.tolist()
        orders = iter(b.payload(_ORDER).tolist()) if _ORDER in kinds else iter(())
        cancels = iter(b.payload(_CANCEL).tolist()) if _CANCEL in kinds else iter(())
        acks = iter(b.payload(_ACK).tolist()) if _ACK in kinds else iter(())
        modifies = iter(b.payload(_MODIFY).tolist()) if _MODIFY in kinds else iter(())
        timers = iter(b.payload(_TIMER).tolist()) if _TIMER in kinds else iter(())
        for k, mt in enumerate(kinds):
            jn.frames += 1
            if mt == _ACK:
                (n,) = next(acks)
                if n > self.written:
                    raise StrategyError(f"{jn.path}: frame {jn.frames} (page {b.page.index} offset {offsets[k]}): "
                                        f"acknowledges {n:,} output frames, only {self.written:,} were written")
                jn.acked = max(jn.acked, int(n))
                jn.ready = True
                self._prune()
                continue
            if mt == _TIMER:
                tid, at = next(timers)
                if tid == 0:
                    jn.timers = True  # "I set timers" (before its first frame): the replay waits closer
                else:  # fired by the replay's clock, published to the strategy as in-process would call it
                    eng.schedule_timer(tid, max(at, eng.time), (src[k], tid))
                continue
            if mt not in (_ORDER, _CANCEL, _MODIFY):
                continue  # anything else a strategy journals is its own business
            where = f"{jn.path}: frame {jn.frames} (page {b.page.index} offset {offsets[k]})"
            # lockstep: when the strategy says it sent it (never later than now: a request cannot come from
            # the future); free-running: now
            sent = min(trig[k], eng.time) if self.lockstep else eng.time
            if mt == _CANCEL or mt == _MODIFY:
                row = next(cancels) if mt == _CANCEL else next(modifies)
                oid = row[1]
                if oid not in jn.orders:
                    what = "cancel" if mt == _CANCEL else "modify"
                    raise StrategyError(f"{where}: {what} of order {oid}, which this journal never sent")
                if mt == _CANCEL:
                    eng.request_cancel(oid, sent)
                else:
                    eng.request_modify(oid, row[2], row[3], sent)
                continue
            sym, oid, side, otype, price, qty, _filled, coid = next(orders)
            symbol = _text(sym)
            problem = ("order id already used" if oid in self.dest
                       else _check_order(symbol, side, otype, price, qty, ex.books))
            if problem:
                raise StrategyError(f"{where}: order {oid}: {problem}")
            if otype == OrderType.MARKET:
                price = 0.0
            jn.orders.add(oid)
            self.dest[oid] = src[k]
            eng.ctx.orders_sent += 1
            eng.submit(SimOrder(oid, symbol, side, otype, price, qty, sent, max(sent + ex.latency, eng.time),
                                _text(coid)))

    def _time_after(self, acked: int) -> int:
        """Recording time of the first output frame after ``acked`` (the oldest a new request can come from)."""
        for count, t in self.units:
            if count > acked:
                return t
        return self.engine.time

    def _prune(self) -> None:
        least = min(j.acked for j in self.journals)
        units = self.units
        while units and units[0][0] <= least:
            units.popleft()

    # -- waiting ------------------------------------------------------------------------------------
    def _wait(self, next_time: int) -> bool:
        """Until the next frame may go (True) or the replay is stopped (False); raises if a strategy died."""
        policy = _Backoff()
        checked = time.monotonic_ns()
        latency = self.latency
        while True:
            self._take()
            if not self.units or self.units[0][1] + latency > next_time:
                return True
            latency = self.latency  # a strategy may have said it sets timers
            if self.stopped():
                return False
            now = time.monotonic_ns()
            if now - checked > STATE_CHECK_NS:
                checked = now
                self._check_alive()
            policy.pause()

    def _wait_all(self) -> None:
        """Lockstep: until every strategy has acknowledged every frame written."""
        if not self.lockstep:
            self._take()
            return
        policy = _Backoff()
        checked = time.monotonic_ns()
        while True:
            self._take()
            if min(j.acked for j in self.journals) >= self.written or self.stopped():
                return
            now = time.monotonic_ns()
            if now - checked > STATE_CHECK_NS:
                checked = now
                self._check_alive()
            policy.pause()

    def _check_alive(self) -> None:
        """A strategy killed, or (lockstep) gone before acknowledging what it was sent, stops the replay."""
        for jn in self.journals:
            if self.lockstep and jn.acked >= self.written:
                continue
            state, pid = jn.state()
            if state == WriterState.CRASHED or (state == WriterState.EXITED and self.lockstep):
                self._take()  # what it committed before it went
                if self.lockstep and jn.acked >= self.written:
                    continue
                how = ("was killed (it died without closing its order journal)" if state == WriterState.CRASHED
                       else "closed its order journal")
                raise StrategyError(f"{jn.path}: the strategy writing it (pid {pid}) {how} after acknowledging "
                                    f"{jn.acked:,} of the {self.written:,} output frames; the replay stopped there")


class _Backoff:
    """Spin a little, then sleep progressively longer (up to 1 ms): a strategy on the other core answers in
    microseconds, one sharing our core needs us to yield."""

    def __init__(self):
        self.n = 0

    def pause(self) -> None:
        self.n += 1
        if self.n > 200:
            time.sleep(min(1e-3, 1e-5 * (1 << min(self.n - 200, 7))))
