"""Replay a recording as if it were live: paced re-emission into an output journal.

Frame i is due at ``anchor + (gen_time_i - gen_time_0) / speed``; every
deadline comes from the one anchor (never from summed gaps), so error never
accumulates. The anchor moves only when a pause ends (time stands still while
paused) and each loop takes its own anchor. Frames whose deadline has passed
are emitted together in one bulk write, so a fast recording replayed at high
speed does not fall behind a per-frame loop.

The emitted frame keeps payload, ``msg_type``, ``source`` and ``dest``; its
``gen_time`` is the wall-clock moment it was emitted and its ``trigger_time``
the original ``gen_time``.
"""

from __future__ import annotations

import bisect
import importlib.util
import inspect
import json
import os
import stat
import struct
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from ..backtest.exchange import ExchangeConfig
from ..backtest.gateway import Gateway
from ..backtest.loop import Backtest
from ..backtest.session import BacktestSession
from ..errors import OutputError, StrategyError, UsageError
from ..journal.format import CURSOR_OFFSET, FRAME_HEADER, PAGE_HEADER, TYPES_SUFFIX, WAITERS_OFFSET
from ..journal.kungfu_out import kungfu_output
from ..journal.layout import BYTE_ORDER
from ..journal.merge import MergedBatch, MergedReader, open_journals
from ..journal.page import ArchivedPage, Page
from ..journal.pretouch import pretoucher
from ..journal.reader import Damage, FrameBatch, Reader
from ..journal.registry import TypeRegistry
from ..journal.writer import Writer
from ..outputs import check_output, remove_journal
from ..selection import Selection
from .lateness import LatenessLog

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
LATE_NS = 1_000_000
MIN_SPEED, MAX_SPEED = 1e-3, 1e6  # beyond these a schedule overflows or is --max in all but name
LONG_WAIT_NS = 60 * 1_000_000_000  # a paced wait longer than this is said (a far-future gen_time)
SLICE_NS = 2_000_000  # the C pacer hands back at least this often: stop and pause stay responsive

try:  # the C pacer (see _pacer.c); without it the Python loop in Replay._play does the same, slower
    from . import _pacer  # type: ignore[attr-defined]  # the C extension setup.py builds; no stub
except ImportError:  # pragma: no cover - a build without a C compiler
    _pacer = None  # type: ignore[assignment]
# Each batch's preparation delays the frames due meanwhile (p99), and preparing costs less per frame in
# larger batches: at speed 10 (a frame every µs) 256-frame batches gave the lowest p99 with the C pacer
# (35-46 µs, against 38-53 at 128 and 45-138 at 64; docs/replay.md); the Python loop keeps up only with 64.
PACED_BATCH, PACED_BATCH_C = 64, 256
# what the pacer assumes of the layouts: a 4-byte cursor and an 8-byte gen_time
assert PAGE_HEADER.field("write_cursor").size == 4 and FRAME_HEADER.field("gen_time").size == 8
MAX_BATCH = 1 << 16


# -- clocks ---------------------------------------------------------------------------
class MonotonicClock:
    """Real time. ``wait_until`` sleeps for the long part of a wait and spins for the last stretch."""

    def __init__(self, spin_ns: int = 120_000, slice_ns: int = 20_000_000):
        # Spinning through long stretches invites the scheduler to preempt us for
        # milliseconds on a busy machine; sleeping overshoots by the timer slack
        # (50 µs by default, so we lower it) plus wake-up time: spin only the last stretch.
        _lower_timer_slack()
        self.spin_ns = spin_ns
        self.slice_ns = slice_ns  # longest single sleep: pause and Ctrl-C stay responsive
        self.now = time.perf_counter_ns  # CLOCK_MONOTONIC on Linux
        self.wall = time.time_ns

    def sleep_until(self, deadline: int, interrupted: Callable[[], bool]) -> int:
        """Sleep until monotonic ``deadline`` (ns) is at most ``spin_ns`` away, or ``interrupted()``;
        returns the time reached. The last stretch is the caller's to spin (C pacer or ``wait_until``)."""
        now_f = self.now
        now = now_f()
        while deadline - now > self.spin_ns:
            time.sleep(min(deadline - now - self.spin_ns, self.slice_ns) / 1e9)
            now = now_f()
            if interrupted():
                return now
        return now

    def wait_until(self, deadline: int, interrupted: Callable[[], bool]) -> int:
        """Wait until monotonic ``deadline`` (ns) or ``interrupted()``; returns the time reached."""
        now = self.sleep_until(deadline, interrupted)
        if deadline - now > self.spin_ns:
            return now  # interrupted
        now_f = self.now
        while now < deadline:
            now = now_f()
        return now

    def sleep(self, ns: int) -> None:
        time.sleep(ns / 1e9)


def _lower_timer_slack() -> None:
    try:
        import ctypes

        ctypes.CDLL(None).prctl(29, 1000, 0, 0, 0)  # PR_SET_TIMERSLACK: 1 µs for this thread
    except (OSError, AttributeError):
        pass


class ManualClock:
    """A clock tests drive: waiting jumps time forward, firing callbacks scheduled with ``at``."""

    def __init__(self, start: int = 1_000_000_000, wall_offset: int = 1_700_000_000_000_000_000):
        self.t = start
        self.wall_offset = wall_offset
        self._events: list[tuple[int, int, Callable[[], None]]] = []
        self._seq = 0

    def now(self) -> int:
        return self.t

    def wall(self) -> int:
        return self.t + self.wall_offset

    def at(self, t: int, fn: Callable[[], None]) -> None:
        """Call ``fn`` when time reaches ``t`` (monotonic ns)."""
        self._seq += 1
        self._events.append((t, self._seq, fn))
        self._events.sort()

    def _advance(self, target: int) -> bool:
        """Move towards ``target``, stopping at the next event; True if an event fired."""
        if self._events and self._events[0][0] <= target:
            t, _s, fn = self._events.pop(0)
            self.t = max(self.t, t)
            fn()
            return True
        self.t = max(self.t, target)
        return False

    def wait_until(self, deadline: int, interrupted: Callable[[], bool]) -> int:
        while self.t < deadline:
            if self._advance(deadline) and interrupted():
                break
        return self.t

    def sleep(self, ns: int) -> None:
        self._advance(self.t + ns)


# -- pause and step ---------------------------------------------------------------------
class Controller:
    """Pause, resume and single-step a replay (the terminal's keys drive it: see ``replay.ui``)."""

    def __init__(self, paused: bool = False):
        self.paused = paused
        self._steps = 0
        self._lock = threading.Lock()

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def toggle(self) -> None:
        self.paused = not self.paused

    def step(self) -> None:
        """Emit one frame now; only while paused."""
        with self._lock:
            if self.paused:
                self._steps += 1

    def take_step(self) -> bool:
        with self._lock:
            if self._steps:
                self._steps -= 1
                return True
            return False


# -- strategies ---------------------------------------------------------------------------
def load_strategy(spec: str, params: dict | None = None):
    """Instantiate ``path.py[:Class]`` with ``params`` as keyword arguments; without a class name, the module's
    one strategy class."""
    path, _, cls_name = spec.partition(":") if not os.path.exists(spec) else (spec, "", "")
    if not os.path.isfile(path):
        raise UsageError(f"{path}: no such strategy file")
    mod_name = "kftools_strategy_" + os.path.splitext(os.path.basename(path))[0]
    try:
        sp = importlib.util.spec_from_file_location(mod_name, path)
        if sp is None or sp.loader is None:
            raise ImportError("not a Python source file")
        mod = importlib.util.module_from_spec(sp)
        sp.loader.exec_module(mod)
    except Exception as e:  # noqa: BLE001 - user code: report where it failed
        raise StrategyError(f"{path}: cannot load strategy: {_where(e)}") from None
    if cls_name:
        cls = getattr(mod, cls_name, None)
        if cls is None:
            raise UsageError(f"{path}: no class {cls_name!r}")
    else:
        found = [v for v in vars(mod).values() if isinstance(v, type) and v.__module__ == mod_name
                 and any(hasattr(v, m) for m in ("on_start", "on_ticker", "on_order", "on_trade", "on_frame"))]
        if len(found) != 1:
            names = ", ".join(c.__name__ for c in found) or "none"
            raise UsageError(f"{path}: name the strategy class as {path}:Class (strategy classes found: {names})")
        cls = found[0]
    return make_strategy(cls, params, path)


def make_strategy(cls: type, params: dict | None, path: str = ""):
    """``cls(**params)``; a parameter the class does not take, or a constructor that raises, is one line."""
    where_ = path or cls.__name__
    try:
        inspect.signature(cls).bind(**(params or {}))
    except TypeError as e:
        raise UsageError(f"{where_}: {cls.__name__} does not take these parameters ({e})") from None
    except ValueError:
        pass  # no signature to check (a builtin): let the call say
    try:
        return cls(**(params or {}))
    except Exception as e:  # noqa: BLE001
        raise StrategyError(f"{where_}: {cls.__name__}() failed: {_where(e)}") from None


def _where(e: BaseException) -> str:
    tb = traceback.extract_tb(e.__traceback__)
    loc = f"{os.path.basename(tb[-1].filename)}:{tb[-1].lineno} in {tb[-1].name}: " if tb else ""
    return f"{loc}{type(e).__name__}: {e}"


# -- results ---------------------------------------------------------------------------------
@dataclass
class ReplayStats:
    """Progress while replaying (read by a progress display) and the summary after."""

    out: str
    speed: float | None
    frames: int = 0
    loop: int = 0
    loops_done: int = 0
    position_ns: int = 0  # recording time reached in the current loop
    span_total_ns: int = 0  # recording time covered by finished loops
    recording_span_ns: int = 0
    wall_ns: int = 0
    paused_ns: int = 0
    #: recording time jumped over by single steps while paused (covered in no running time)
    stepped_ns: int = 0
    #: what the strategy left in its ``summary`` attribute (or returned from a ``summary()`` method)
    strategy_summary: object = None
    interrupted: bool = False
    following: bool = False
    writer_state: str = "unknown"
    writer_pid: int = 0
    damage: Damage | None = None
    orders: str | None = None
    orders_sent: int = 0
    backtest: Any = None  # a BacktestResult when a strategy ran
    lateness: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    _late: LatenessLog = field(default_factory=LatenessLog, repr=False)
    _t0: int = 0

    @property
    def achieved_speed(self) -> float | None:
        """Recording time replayed while running / wall time while running (None before any frame).

        Pauses are not slowness, and steps taken while paused are not speed: both are left out.
        """
        span = self.span_total_ns + self.position_ns - self.stepped_ns
        running = self.wall_ns - self.paused_ns
        return span / running if running > 0 and span else None

    def lateness_summary(self) -> dict:
        a = self.lateness
        if not len(a):
            return {"lateness_p50_ns": None, "lateness_p99_ns": None, "lateness_max_ns": None, "late_over_1ms": 0}
        return {
            "lateness_p50_ns": int(np.percentile(a, 50)),
            "lateness_p99_ns": int(np.percentile(a, 99)),
            "lateness_max_ns": int(a.max()),
            "late_over_1ms": int((a > LATE_NS).sum()),
        }

    def to_dict(self) -> dict:
        d = {
            "out": self.out,
            "frames": self.frames,
            "loops": self.loops_done,
            "speed": "max" if self.speed is None else self.speed,
            "wall_s": round(self.wall_ns / 1e9, 6),
            "paused_s": round(self.paused_ns / 1e9, 6),
            "frames_per_s": round(self.frames / (self.wall_ns / 1e9), 1) if self.wall_ns else None,
            "achieved_speed": None if self.achieved_speed is None else round(self.achieved_speed, 4),
        }
        d.update(self.lateness_summary())
        d.update({
            "interrupted": self.interrupted,
            "input_writer": self.writer_state,
            "damage": None if self.damage is None else str(self.damage),
            "orders": self.orders,
            "orders_sent": self.orders_sent,
            "strategy_summary": self.strategy_summary,
        })
        if self.backtest is not None:
            d["backtest"] = self.backtest.to_dict()
        return d


# -- the replay --------------------------------------------------------------------------------
class Replay:
    """A replay of ``path`` into ``out``; everything is checked on construction, nothing written until ``run``.

    ``path`` may be a list of journals (or a folder): their frames are replayed
    as one timeline merged by gen_time (ties: the order given) into the one
    output, paced from the first frame of all of them, so a strategy sees
    market data and orders interleaved as they happened. Each frame keeps its
    source and dest, which say where it came from.

    ``speed`` None replays as fast as possible. ``loops`` 0 repeats until
    stopped. ``stop`` (an Event or callable) ends it cleanly: the output then
    holds exactly the frames emitted.
    """

    def __init__(
        self,
        path: str | os.PathLike | list[str | os.PathLike],
        out: str | os.PathLike | None = None,
        *,
        speed: float | None = 1.0,
        registry: TypeRegistry | None = None,
        types: Iterable[str | int] | None = None,
        symbols: Iterable[str] | None = None,
        start: str | None = None,
        end: str | None = None,
        loops: int = 1,
        follow: bool = False,
        controller: Controller | None = None,
        strategy: object | str | None = None,
        orders: str | os.PathLike | None = None,
        exchange: ExchangeConfig | None = None,
        results: str | os.PathLike | None = None,
        chart: bool = True,
        order_journals: Iterable[str | os.PathLike] | None = None,
        lockstep: bool = True,
        force: bool = False,
        clock=None,
        stop: threading.Event | Callable[[], bool] | None = None,
        wait: str = "busy",
        page_size: int | None = None,
        name: str | None = None,
        on_long_wait: Callable[[str], None] | None = None,
        format: str = "kftools",
        kf_home: str | os.PathLike | None = None,
        location: str | None = None,
    ):
        # several journals (or a folder) replay as one timeline merged by gen_time into one output
        paths = [os.fspath(p) for p in path] if isinstance(path, list | tuple) else [os.fspath(path)]
        self.path = paths[0] if len(paths) == 1 else ", ".join(paths)
        # --format kungfu-*: the output is a Kungfu runtime journal (its own module), else a kftools journal
        self.kungfu_out = kungfu_output(format, kf_home, location, out, force, strategy, order_journals)
        if speed is not None and (
            isinstance(speed, bool) or not isinstance(speed, int | float) or not MIN_SPEED <= speed <= MAX_SPEED
        ):
            raise UsageError(f"--speed must be a number from {MIN_SPEED:g} to {MAX_SPEED:g} (--max: no pacing), not {speed!r}")
        self.on_long_wait = on_long_wait
        if loops < 0:
            raise UsageError("--loop must be >= 0 (0 repeats until stopped)")
        if follow and loops != 1:
            raise UsageError("--follow and --loop cannot be combined")
        if name is not None and not follow:
            raise UsageError("--name needs --follow (it publishes a follower's position)")
        self.name = name
        self.speed = speed
        self.loops = loops
        self.follow = follow
        self.wait = wait
        self.clock = clock or MonotonicClock()
        self.controller = controller or Controller()
        self._stop = stop
        reader = open_journals(paths, registry=registry)
        assert reader is not None  # only a waiting open returns None
        self.reader: Reader | MergedReader = reader
        if name is not None and isinstance(reader, MergedReader):
            raise UsageError("--name publishes the position of a follower of one journal, not of several")
        # what a reader opens again (first pages: a Kungfu journal's label is no path)
        self.inputs = paths if isinstance(reader, Reader) else [r.path for r in reader.readers]
        if isinstance(reader, MergedReader) and out is None and self.kungfu_out is None:
            reader.close()
            raise UsageError("replaying several journals needs -o/--out (one output for all of them)")
        self.registry = self.reader.registry
        self.selection = Selection.parse(self.reader, self.registry, types, symbols, start, end)
        # what was committed when we started (one position per journal when several)
        self.end_position: Any = self.reader.end_position()
        if self.kungfu_out is not None:
            self.out = self.kungfu_out.first_page
        else:
            self.out = os.fspath(out) if out is not None else default_output(self.path)
            check_output(self.out, force=force, inputs=self.inputs)
            side = self.out + TYPES_SUFFIX
            if os.path.lexists(side) and (not force or not stat.S_ISREG(os.lstat(side).st_mode)):
                raise OutputError(f"{side}: exists beside the output (a types file is replaced only with --force, "
                                  "and only when it is a regular file)")
        spec = strategy if isinstance(strategy, str) else ""
        if isinstance(strategy, str):
            strategy = load_strategy(strategy)
        self.strategy = strategy
        self.orders = None
        self.force = force
        self.backtest: BacktestSession | None = None
        journals = [os.fspath(p) for p in order_journals or ()]
        if strategy is not None and journals:
            raise UsageError("--strategy runs a strategy in-process, --order-journal follows one in its own "
                             "process: give one or the other")
        if not lockstep and not journals:
            raise UsageError("--free-running is a clock for --order-journal strategies")
        ours = {os.path.realpath(p) for p in [*self.inputs, self.out]}
        for p in journals:
            if os.path.realpath(p) in ours:
                raise UsageError(f"{p}: an order journal is the strategy's own, not the replay's input or output")
        if strategy is not None:
            self.orders = os.fspath(orders) if orders is not None else _sibling(self.out, ".orders.dat")
            check_output(self.orders, force=force, inputs=[*self.inputs, self.out], what="orders journal")
        if strategy is not None or journals:
            self.backtest = BacktestSession(self, exchange, None if results is None else os.fspath(results),
                                            chart=chart, strategy_name=spec, order_journals=journals,
                                            lockstep=lockstep)
        elif orders is not None or results is not None or exchange is not None:
            raise UsageError("--orders, --results and the exchange options need --strategy or --order-journal")
        # a page roll costs a file creation mid-replay: start with roomy pages (sparse, so free)
        self.page_size = page_size or max(max(r.page(r.first_page).limit() for r in _readers(self.reader)), 16 << 20)
        state, pid = _worst_writer(self.reader)
        self.stats = ReplayStats(self.out, speed, writer_state=state, writer_pid=pid, orders=self.orders)

    # -- running ---------------------------------------------------------------------------------
    def stopped(self) -> bool:
        s = self._stop
        if s is None:
            return False
        return s.is_set() if isinstance(s, threading.Event) else bool(s())

    def run(self) -> ReplayStats:
        """Replay; returns the stats (also when stopped early)."""
        st = self.stats
        filters = self.selection.filters()
        for p in (self.out, self.orders):
            if p is not None and self.force:
                remove_journal(p)
        # paced: frames must go out on time, and a first store to fresh memory can take milliseconds
        self._writer = (Writer(self.out, page_size=self.page_size, pretouch=self.speed is not None)
                        # a Kungfu journal's writer: the Python loop's calls only (write_raw_frames, close)
                        if self.kungfu_out is None else cast(Writer, self.kungfu_out.open()))
        if self.kungfu_out is None:
            write_declared_types(self.out, self.registry)
        orders_w = Writer(self.orders, page_size=1 << 20) if self.orders else None
        ctx = dispatch = None
        if self.backtest is not None:
            dispatch = self.backtest.start(self.strategy, orders_w, self._writer, self.clock, stopped=self.stopped)
            ctx = dispatch.ctx
        self._dispatch = dispatch
        self._t0: int | None = None
        self._last_rel = 0
        self._source_page: Page | None = None
        self._source_toucher: Any = None
        if self.speed is not None:
            st._late.reserve()
        clock = self.clock
        t_begin = clock.now()
        st._t0 = t_begin
        self._last_emit = t_begin
        self._paused_at_emit = 0  # st.paused_ns as of the last emission: wall time ends there
        try:
            if dispatch:
                dispatch.call("on_start")
            anchor: int | None = None
            loop = 0
            while not self.stopped() and (self.loops == 0 or loop < self.loops):
                st.loop = loop
                st.position_ns = 0
                self._last_rel = 0
                # each loop anchors when its first frame is ready to go (see _play)
                anchor = None
                # paced: small batches, so preparing one never holds back frames that are due
                batches = self.reader.batches(self._batch_size(), until=self.end_position, **filters)
                anchor = self._play(batches, anchor, live=False)
                if self.stopped() or self.reader.damage is not None:
                    break
                loop += 1
                st.loops_done = loop
                st.span_total_ns += st.position_ns
                st.position_ns = 0
                if st.frames == 0:
                    break  # nothing selected: looping would spin
            if self.follow and not self.stopped() and self.reader.damage is None:
                st.following = True
                st.loops_done = 0
                st.span_total_ns = 0  # following continues the one loop: position counts from the same t0
                named = {} if self.name is None else {"name": self.name}  # one journal only (checked at start)
                batches = self.reader.follow_batches(
                    start=self.end_position, wait=self.wait, stop=self.stopped,
                    batch_size=self._batch_size(), **named, **filters  # type: ignore[arg-type]
                )
                self._play(batches, anchor, live=True)
                st.loops_done = 1
        except OutputError as e:
            # a full disk mid-replay: never leave a clean-looking partial output under the final name
            written = self._writer.frames_written
            self._writer.close()
            if orders_w is not None:
                orders_w.close()
            removed = [p for p in (self.out, self.orders) if p is not None and os.path.exists(p)]
            for p in removed:
                remove_journal(p) if p != self.out or self.kungfu_out is None else self.kungfu_out.remove()
            raise OutputError(f"{e}; removed the incomplete {' and '.join(removed)} "
                              f"({written:,} frame(s) had been written to it)") from None
        finally:
            st.interrupted = self.stopped()
            st.damage = self.reader.damage
            try:
                if dispatch:
                    t_stop = clock.now()
                    dispatch.finish()  # answers still on their way reach the strategy before on_stop
                    dispatch.call("on_stop")
                    self._last_emit += clock.now() - t_stop  # the strategy's time is part of the run
                    st.strategy_summary = _summary_of(self.strategy)
            finally:
                st.wall_ns = max(0, self._last_emit - t_begin)
                st.paused_ns = min(st.paused_ns, self._paused_at_emit)  # a pause after the last frame is not in it
                if ctx is not None:
                    st.orders_sent = ctx.orders_sent
                st.lateness = st._late.finish()
                self._read_ahead(None)
                self._writer.close()
                if orders_w is not None:
                    orders_w.close()
                self.reader.close()
        if self.backtest is not None:
            st.backtest = self.backtest.finish(interrupted=st.interrupted)
        return st

    def _play(self, batches: Iterator[FrameBatch] | Iterator[MergedBatch], anchor: int | None, live: bool) -> int | None:
        """Emit ``batches`` on schedule from ``anchor``; returns the anchor (moved by pauses).

        Without an anchor, the schedule starts when the first frame is ready to go:
        the one-time costs of the first batch (opening, first page faults) must not
        make the first frames late and the rest rush to catch up.
        """
        clock = self.clock
        now_f, wall_f, wait_until = clock.now, clock.wall, clock.wait_until
        w = self._writer
        write = w.write_raw_frames
        ctl = self.controller
        stop = self._stop
        stopped = (stop.is_set if isinstance(stop, threading.Event) else self.stopped) if stop is not None else None
        interrupted = (lambda: ctl.paused or stopped()) if stopped else (lambda: ctl.paused)
        st = self.stats
        speed = self.speed
        dispatch = self._dispatch
        emit = dispatch.emit if isinstance(dispatch, Gateway) else None  # it writes the frames itself
        feed = dispatch.frames if isinstance(dispatch, Backtest) else None
        pack_gen = _I64.pack_into
        pacer = self._pacer()
        spin_ns = clock.spin_ns if isinstance(clock, MonotonicClock) else 0
        # paced and not live: the next batch is read and prepared while we wait for a frame due later,
        # so its preparation never delays frames that are due (bursts spanning two batches included)
        ahead = _Ahead(batches, self._prepare) if speed is not None and not live else None
        prepared_batches = ahead if ahead is not None else (self._prepare(b) for b in batches)
        for prep in prepared_batches:
            if stopped is not None and stopped():
                break
            if prep is None:
                continue  # a follower caught up
            batch, n, gens, data, starts, seen = prep.batch, prep.n, prep.gens, prep.data, prep.starts, prep.seen
            t0 = cast(int, self._t0)  # set by the first _prepare
            if speed is None:
                if ctl.paused:
                    since = now_f()
                    while ctl.paused and not (stopped and stopped()):
                        clock.sleep(5_000_000)
                    st.paused_ns += now_f() - since
                wall = wall_f()
                set_column(data, starts[:-1], GEN_OFF, np.full(n, wall, np.int64))
                if emit is not None:  # out-of-process strategies: the gateway writes, interleaving its answers
                    done_n = emit(data, starts, 0, n, batch, wall)
                    st.frames += done_n
                    if done_n < n:
                        break
                else:
                    write(data, starts)
                    st.frames += n
                st.position_ns = int(gens[-1]) - t0
                if feed is not None:
                    feed(batch, 0, n, wall)
                self._last_emit = now_f()  # after the strategy: its time is part of the wall time
                self._paused_at_emit = st.paused_ns
                continue
            rel = prep.rel
            # the Python loop's copy; struct and the writer take a memoryview far faster than an ndarray
            # (numpy's stubs declare ndarray.__buffer__ only for Python >= 3.12)
            mv = memoryview(data if pacer is None else b"")  # type: ignore[arg-type]
            if anchor is None:
                anchor = now_f() - int(rel[0])
            floor = seen if live else None
            emitted = np.empty(n, np.int64)  # per frame: emission time minus anchor
            paused_at_emit = self._paused_at_emit
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
                fast = pacer is not None
                if now < d:
                    if ahead is not None and d - now > ahead.cost_ns and ahead.prepare():
                        now = now_f()  # prepared the next batch in the slack before this frame
                        if now >= d:
                            continue
                    if d - now > LONG_WAIT_NS:
                        self._say_long_wait(d - now, int(gens[i]), int(gens[i - 1]) if i else None)
                    # the C pacer spins the last stretch itself
                    now = clock.sleep_until(d, interrupted) if fast else wait_until(d, interrupted)  # type: ignore[union-attr]
                    if now < d - (spin_ns if fast else 0):
                        if stopped is not None and stopped():
                            break
                        continue  # paused during the wait
                if fast:
                    # hand back at the first gap long enough to prepare the next batch in, until it is ready
                    bound = spin_ns if ahead is None or ahead.ready else min(spin_ns, ahead.cost_ns)
                    page, pos, cap = w.append_area()
                    j, pos, status = pacer.emit(data, starts, rel, i, i + 1 if step else n, anchor, bound,  # type: ignore[union-attr]
                                                SLICE_NS, page, pos, cap, CURSOR_OFFSET, *FRAME_FIELDS, emitted,
                                                WAITERS_OFFSET)
                    if j > i:
                        w.appended(pos, j - i)
                        st.frames += j - i
                        paused_at_emit = st.paused_ns
                        done = now_f()
                    if status == pacer.FULL:  # type: ignore[union-attr]
                        w.append_area(need=FRAME_HEADER.size + _U32.unpack_from(data, int(starts[j]) + LENGTH_OFF)[0])
                    i = j
                    if stopped is not None and stopped():
                        break
                    continue
                rel_l = prep.rel_l
                j = i + 1 if step else bisect.bisect_right(rel_l, now - anchor, i + 1)
                wall = wall_f()
                if j - i == 1:
                    pack_gen(mv, prep.starts_l[i] + GEN_OFF, wall)
                elif j - i <= 64:  # cheaper than numpy's fixed cost for a few frames
                    for s in prep.starts_l[i:j]:
                        pack_gen(mv, s + GEN_OFF, wall)
                else:
                    set_column(data, starts[i:j], GEN_OFF, np.full(j - i, wall, np.int64))
                if emit is not None:
                    j = i + emit(data, starts, i, j, batch, wall)
                    if j == i:
                        break
                else:
                    write(mv, starts, i, j)
                t = now_f()
                emitted[i:j] = t - anchor
                st.frames += j - i
                paused_at_emit = st.paused_ns
                done = t
                if feed is not None:
                    feed(batch, i, j, wall)
                    done = now_f()  # the strategy's time is part of the wall time
                i = j
                if stopped is not None and stopped():
                    break
            if i:
                self._last_emit = done
                self._paused_at_emit = paused_at_emit
                late = emitted[:i] - rel[:i]
                if floor is not None:
                    # a live frame cannot go out before it arrived: lateness counts from arrival
                    late = np.minimum(late, emitted[:i] + (anchor - floor))
                st._late.append(late)
                st.position_ns = int(gens[i - 1]) - t0
            if i < n:
                break
        return anchor

    def _batch_size(self) -> int:
        if not self.speed:
            return MAX_BATCH
        return PACED_BATCH_C if self._pacer() is not None else PACED_BATCH

    def _pacer(self):
        """The C pacer, unless every frame must pass through Python (strategies, an injected clock, no build)."""
        direct = not isinstance(self._dispatch, (Gateway, Backtest)) and self.kungfu_out is None
        if self.speed is not None and direct and isinstance(self.clock, MonotonicClock):
            return _pacer
        return None

    def _prepare(self, batch: FrameBatch | MergedBatch) -> _Prepared | None:
        """A batch ready to emit and, paced, its schedule (``rel``: ns after the anchor).

        For the Python loop: its frames copied out, trigger times set. For the C
        pacer: where its frames lie (``starts``: their offsets in ``data``), the
        source page itself when it is in kftools' layout; the pacer sets the
        trigger time as it copies, so a batch is ready in a few µs.
        """
        n = len(batch)
        if not n:
            return None
        seen = self.clock.now()
        gens = batch.headers["gen_time"]
        if self._t0 is None:
            self._t0 = int(gens[0])
        pacer = self._pacer()
        if pacer is not None:
            if isinstance(batch, FrameBatch) and batch.page.fmt.native:
                where: tuple[Any, np.ndarray] = (batch.page.mm, np.ascontiguousarray(batch.offsets, np.int64))
                self._read_ahead(batch.page, int(where[1][-1]))
            else:  # several journals, or Kungfu's layout: frames copied out in kftools' layout
                where = batch.raw_frames()
            prep = _Prepared(batch, n, gens, *where, seen)
            prep.rel = np.empty(n, np.int64)
            self._last_rel = pacer.schedule(*where, n, *FRAME_FIELDS, self._t0, self.speed, self._last_rel, prep.rel)
            return prep
        data, starts = batch.raw_frames()
        set_column(data, starts[:-1], TRIGGER_OFF, gens)  # the original event time
        prep = _Prepared(batch, n, gens, data, starts, seen)
        if self.speed is not None:
            rel = ((gens - self._t0) / self.speed).astype(np.int64)
            rel[0] = max(int(rel[0]), self._last_rel)
            np.maximum.accumulate(rel, out=rel)  # out-of-order gen_times: never due before an earlier frame
            self._last_rel = int(rel[-1])
            prep.rel = rel
        return prep

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

    def _say_long_wait(self, wait_ns: int, gen_time: int, previous: int | None) -> None:
        if self.on_long_wait is None:
            return
        from ..timeparse import format_time

        gap = "" if previous is None else f", {(gen_time - previous) / 1e9:,.0f} s after the frame before it"
        self.on_long_wait(
            f"{self.path}: the next frame (gen_time {format_time(gen_time)}{gap}) is due in "
            f"{wait_ns / 1e9:,.0f} s at --speed {self.speed!r}; waiting (Ctrl-C stops; --max does not wait)"
        )

    def _hold(self, anchor: int, next_rel: int) -> tuple[int, bool] | None:
        """Wait while paused. Returns (anchor, step) or None if stopped.

        Replay time stands still while paused: on resume the next frame is due
        as long after the resume as it was after the pause.
        """
        clock, ctl = self.clock, self.controller
        since = clock.now()
        virtual = min(since - anchor, next_rel)
        try:
            while True:
                if self.stopped():
                    return None
                if ctl.take_step():
                    # replay time jumps from where it stood to the stepped frame, in no running time
                    speed = self.speed or 1.0
                    self.stats.stepped_ns += int((next_rel - virtual) * speed)
                    return clock.now() - next_rel, True
                if not ctl.paused:
                    return clock.now() - virtual, False
                clock.sleep(2_000_000)
        finally:
            self.stats.paused_ns += clock.now() - since


class _Prepared:
    """A batch ready to emit (see ``Replay._prepare``): ``data`` holds its frames at offsets ``starts``, a copy
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


def _readers(reader: Reader | MergedReader) -> list[Reader]:
    return [reader] if isinstance(reader, Reader) else reader.readers


def _worst_writer(reader: Reader | MergedReader) -> tuple[str, int]:
    """The writer state to warn about: one journal's, or of several the first crashed, else the first alive."""
    states = [r.writer_state() for r in _readers(reader)]
    for want in ("crashed", "alive"):
        for st, pid in states:
            if st == want:
                return st, pid
    return states[0]


def write_declared_types(out: str, registry: TypeRegistry) -> None:
    """A kftools output of a Kungfu recording holds Kungfu's types: say so in ``<out>.types``, so readers decode
    them without ``--schema kungfu`` (written atomically; nothing for kftools' own types)."""
    from ..journal.yijinjing import GENERATIONS

    gen = next((g for g in GENERATIONS if g.registry is registry), None)
    if gen is None:
        return
    side = out + TYPES_SUFFIX
    tmp = f"{side}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    try:
        os.write(fd, (json.dumps({"types": gen.name}) + "\n").encode())
    finally:
        os.close(fd)
    os.replace(tmp, side)


def _summary_of(strategy: object) -> object:
    """A strategy's ``summary``: an attribute, or a method called once the replay ended."""
    summary = getattr(strategy, "summary", None)
    if callable(summary):
        try:
            summary = summary()
        except Exception as e:  # noqa: BLE001 - a strategy's bug, reported as one line
            raise StrategyError(f"strategy {type(strategy).__name__}.summary failed: {_where(e)}") from None
    return summary


def replay(path: str | os.PathLike, out: str | os.PathLike | None = None, **kw) -> ReplayStats:
    """Replay ``path`` into ``out`` (see :class:`Replay` for the options); returns the stats."""
    return Replay(path, out, **kw).run()


# -- helpers --------------------------------------------------------------------------------------
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


def default_output(path: str) -> str:
    """``<stem>.replay.dat`` beside the input, or in the current directory if that is not writable."""
    base = os.path.basename(path)
    stem = base[:-4] if base.endswith(".dat") else base
    folder = os.path.dirname(os.path.abspath(path))
    if not os.access(folder, os.W_OK):
        folder = os.getcwd()
    return os.path.join(folder, stem + ".replay.dat")


def _sibling(out: str, suffix: str) -> str:
    base = out[:-4] if out.endswith(".dat") else out
    if base.endswith(".replay"):
        base = base[: -len(".replay")]
    return base + suffix


__all__ = [
    "Controller", "ManualClock", "MonotonicClock", "Replay", "ReplayStats",
    "default_output", "load_strategy", "replay", "set_column",
]
