"""Replay a recording as if it were live: paced re-emission into an output journal.

The :class:`Replay` checks everything on construction and, when run, reads the
input in batches and hands them to one pacing (``pacing.py``: as fast as
possible, the C pacer, or the Python loop), which emits them through one
dispatcher (``dispatch.py``: the plain output, an in-process backtest, or the
gateway to strategy processes).

The emitted frame keeps payload, ``msg_type``, ``source`` and ``dest``; its
``gen_time`` is the wall-clock moment it was emitted and its ``trigger_time``
the original ``gen_time``.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Callable
from typing import Any, cast

from ..backtest.session import BacktestSession, bar_ns_of
from ..errors import OutputError, UsageError
from ..journal.format import TYPES_SUFFIX, WriterState
from ..journal.kungfu_out import kungfu_output
from ..journal.merge import MergedReader, open_journals
from ..journal.reader import Reader
from ..journal.registry import TypeRegistry
from ..journal.writer import Writer
from ..outputs import check_output, remove_journal
from ..selection import Selection
from .clock import Controller, ManualClock, MonotonicClock
from .dispatch import Dispatcher, InProcessBacktest, OutOfProcessGateway, PlainOutput
from .options import BacktestOptions, OutputOptions, ReplayOptions
from .pacing import C_PACER, FRAME_FIELDS, CPacing, MaxPacing, Pacing, PythonPacing, set_column
from .stats import ReplayStats
from .strategy import load_strategy, make_strategy, summary_of

#: the C pacer when it is built (tests set it to None to run the Python loop instead)
_pacer = C_PACER


class Replay:
    """A replay of ``path`` into ``out``; everything is checked on construction, nothing written until ``run``.

    ``path`` may be a list of journals (or a folder): their frames are replayed
    as one timeline merged by gen_time (ties: the order given) into the one
    output, paced from the first frame of all of them, so a strategy sees
    market data and orders interleaved as they happened. Each frame keeps its
    source and dest, which say where it came from.

    What to do comes as ``options`` (a :class:`ReplayOptions`) or as keywords, each a field of one of its
    groups: pacing (``speed`` None: as fast as possible; ``loops`` 0: until stopped; ``follow``, ``wait``,
    ``name``), output (``force``, ``page_size``, ``format``, ``kf_home``, ``location``), filters (``types``,
    ``symbols``, ``start``, ``end``) and backtest (``strategy``, ``orders``, ``exchange``, ``results``,
    ``chart``, ``order_journals``, ``lockstep``). ``stop`` (an Event or callable) ends it cleanly: the output
    then holds exactly the frames emitted.
    """

    def __init__(
        self,
        path: str | os.PathLike | list[str | os.PathLike],
        out: str | os.PathLike | None = None,
        *,
        options: ReplayOptions | None = None,
        registry: TypeRegistry | None = None,
        controller: Controller | None = None,
        clock=None,
        stop: threading.Event | Callable[[], bool] | None = None,
        on_long_wait: Callable[[str], None] | None = None,
        **keywords: Any,
    ):
        if options is None:
            options = ReplayOptions.from_keywords(out, **keywords)
        elif out is not None or keywords:
            raise TypeError("Replay() takes options or keywords (out among them), not both")
        self.options = options
        pacing, output, bt = options.pacing, options.output, options.backtest
        # several journals (or a folder) replay as one timeline merged by gen_time into one output
        paths = [os.fspath(p) for p in path] if isinstance(path, list | tuple) else [os.fspath(path)]
        self.path = paths[0] if len(paths) == 1 else ", ".join(paths)
        # --format kungfu-*: the output is a Kungfu runtime journal (its own module), else a kftools journal
        self.kungfu_out = kungfu_output(output.format, output.kf_home, output.location, output.out, output.force,
                                        bt.strategy, bt.order_journals)
        pacing.check()
        self.on_long_wait = on_long_wait
        self.name, self.speed, self.loops = pacing.name, pacing.speed, pacing.loops
        self.follow, self.wait = pacing.follow, pacing.wait
        self.clock = clock or MonotonicClock()
        self.controller = controller or Controller()
        self._stop = stop
        self._open_input(paths, registry, output.out)
        f = options.filters
        self.selection = Selection.parse(self.reader, self.registry, f.types, f.symbols, f.start, f.end)
        # what was committed when we started (one position per journal when several)
        self.end_position: Any = self.reader.end_position()
        self.out = self._check_output(output)
        self.force = output.force
        self._attach_backtest(bt)
        # a page roll costs a file creation mid-replay: start with roomy pages (sparse, so free)
        self.page_size = output.page_size or max(
            max(r.page(r.first_page).limit() for r in _readers(self.reader)), 16 << 20)
        state, pid = _worst_writer(self.reader)
        self.stats = ReplayStats(self.out, self.speed, writer_state=state, writer_pid=pid, orders=self.orders)

    def _open_input(self, paths: list[str], registry: TypeRegistry | None, out) -> None:
        reader = open_journals(paths, registry=registry)
        assert reader is not None  # only a waiting open returns None
        self.reader: Reader | MergedReader = reader
        if self.name is not None and isinstance(reader, MergedReader):
            raise UsageError("--name publishes the position of a follower of one journal, not of several")
        # what a reader opens again (first pages: a Kungfu journal's label is no path)
        self.inputs = paths if isinstance(reader, Reader) else [r.path for r in reader.readers]
        if isinstance(reader, MergedReader) and out is None and self.kungfu_out is None:
            reader.close()
            raise UsageError("replaying several journals needs -o/--out (one output for all of them)")
        self.registry = self.reader.registry

    def _check_output(self, output: OutputOptions) -> str:
        """The output's path, refused if it exists (unless ``force``) or is an input."""
        if self.kungfu_out is not None:
            return self.kungfu_out.first_page
        out = os.fspath(output.out) if output.out is not None else default_output(self.path)
        check_output(out, force=output.force, inputs=self.inputs)
        side = out + TYPES_SUFFIX
        if os.path.lexists(side) and (not output.force or not stat.S_ISREG(os.lstat(side).st_mode)):
            raise OutputError(f"{side}: exists beside the output (a types file is replaced only with --force, "
                              "and only when it is a regular file)")
        return out

    def _attach_backtest(self, bt: BacktestOptions) -> None:
        """The strategy (loaded from its file if named), its orders journal, and the backtest session."""
        strategy = bt.strategy
        spec = strategy if isinstance(strategy, str) else ""
        if isinstance(strategy, str):
            strategy = load_strategy(strategy)
        self.strategy = strategy
        self.orders: str | None = None
        self.backtest: BacktestSession | None = None
        journals = [os.fspath(p) for p in bt.order_journals or ()]
        if strategy is not None and journals:
            raise UsageError("--strategy runs a strategy in-process, --order-journal follows one in its own "
                             "process: give one or the other")
        if not bt.lockstep and not journals:
            raise UsageError("--free-running is a clock for --order-journal strategies")
        ours = {os.path.realpath(p) for p in [*self.inputs, self.out]}
        for p in journals:
            if os.path.realpath(p) in ours:
                raise UsageError(f"{p}: an order journal is the strategy's own, not the replay's input or output")
        if strategy is not None:
            self.orders = os.fspath(bt.orders) if bt.orders is not None else _sibling(self.out, ".orders.dat")
            check_output(self.orders, force=self.force, inputs=[*self.inputs, self.out], what="orders journal")
        if strategy is not None or journals:
            self.backtest = BacktestSession(
                bt.exchange, None if bt.results is None else os.fspath(bt.results), out=self.out,
                inputs=list(self.inputs), force=self.force, strategy=strategy, chart=bt.chart, strategy_name=spec,
                order_journals=journals, lockstep=bt.lockstep,
                bar_ns=bar_ns_of(self.reader, self.end_position, self.selection.filters()))
        elif bt.orders is not None or bt.results is not None or bt.exchange is not None:
            raise UsageError("--orders, --results and the exchange options need --strategy or --order-journal")

    # -- running ---------------------------------------------------------------------------------
    def stopped(self) -> bool:
        s = self._stop
        if s is None:
            return False
        return s.is_set() if isinstance(s, threading.Event) else bool(s())

    def run(self) -> ReplayStats:
        """Replay; returns the stats (also when stopped early)."""
        st = self.stats
        for p in (self.out, self.orders):
            if p is not None and self.force:
                remove_journal(p)
        dispatch = self._open_outputs()
        pacing = self._choose_pacing(dispatch)
        if self.speed is not None:
            st._late.reserve()
        t_begin = self.clock.now()
        st._t0 = t_begin
        pacing.last_emit = t_begin
        try:
            dispatch.start()
            anchor = self._play_loops(pacing)
            if self.follow and not self.stopped() and self.reader.damage is None:
                self._play_live(pacing, anchor)
        except OutputError as e:
            raise self._abandon(e) from None
        finally:
            self._end(dispatch, pacing, t_begin)
        if self.backtest is not None:
            st.backtest = self.backtest.finish(interrupted=st.interrupted)
        return st

    def _open_outputs(self) -> Dispatcher:
        """The output (and orders) writers, and the dispatcher the frames go through."""
        # paced: frames must go out on time, and a first store to fresh memory can take milliseconds
        self._writer = (Writer(self.out, page_size=self.page_size, pretouch=self.speed is not None)
                        # a Kungfu journal's writer: the Python loop's calls only (write_raw_frames, close)
                        if self.kungfu_out is None else cast(Writer, self.kungfu_out.open()))
        if self.kungfu_out is None:
            write_declared_types(self.out, self.registry)
        self._orders_w = Writer(self.orders, page_size=1 << 20) if self.orders else None
        if self.backtest is None:
            return PlainOutput(self._writer, direct=self.kungfu_out is None)
        engine = self.backtest.start(self.strategy, self._orders_w, self._writer, self.clock)
        if self.backtest.order_journals:
            return OutOfProcessGateway(self.backtest.gateway(self._writer, self.clock, stopped=self.stopped))
        return InProcessBacktest(engine, self._writer)

    def _choose_pacing(self, dispatch: Dispatcher) -> Pacing:
        """As fast as possible; else the C pacer unless every frame must pass through Python (strategies, an
        injected clock, a Kungfu output, no build); else the Python loop."""
        stop = self._stop
        # the emitting loops' stop check: an Event's own method, the cheapest
        stopped = (stop.is_set if isinstance(stop, threading.Event) else self.stopped) if stop is not None else None
        common = (self.clock, self.controller, self.stats, dispatch, stopped,
                  self._say_long_wait if self.on_long_wait is not None else None)
        if self.speed is None:
            return MaxPacing(*common)
        if dispatch.direct and _pacer is not None and isinstance(self.clock, MonotonicClock):
            return CPacing(self.speed, _pacer, self._writer, *common)
        return PythonPacing(self.speed, *common)

    def _play_loops(self, pacing: Pacing) -> int | None:
        """The recording, ``loops`` times (0: until stopped); returns the last loop's anchor."""
        st = self.stats
        filters = self.selection.filters()
        anchor: int | None = None
        loop = 0
        while not self.stopped() and (self.loops == 0 or loop < self.loops):
            st.loop = loop
            st.position_ns = 0
            pacing.start_loop()
            # paced: small batches, so preparing one never holds back frames that are due
            batches = self.reader.batches(pacing.batch_size, until=self.end_position, **filters)
            anchor = pacing.play(batches, None, live=False)  # each loop anchors when its first frame is ready
            if self.stopped() or self.reader.damage is not None:
                break
            loop += 1
            st.loops_done = loop
            st.span_total_ns += st.position_ns
            st.position_ns = 0
            if st.frames == 0:
                break  # nothing selected: looping would spin
        return anchor

    def _play_live(self, pacing: Pacing, anchor: int | None) -> None:
        """Then frames as they are committed (``--follow``), on the last loop's schedule."""
        st = self.stats
        st.following = True
        st.loops_done = 0
        st.span_total_ns = 0  # following continues the one loop: position counts from the same t0
        named = {} if self.name is None else {"name": self.name}  # one journal only (checked at start)
        batches = self.reader.follow_batches(
            start=self.end_position, wait=self.wait, stop=self.stopped,
            batch_size=pacing.batch_size, **named, **self.selection.filters()  # type: ignore[arg-type]
        )
        pacing.play(batches, anchor, live=True)
        st.loops_done = 1

    def _abandon(self, e: OutputError) -> OutputError:
        """A full disk mid-replay: never leave a clean-looking partial output under the final name."""
        written = self._writer.frames_written
        self._writer.close()
        if self._orders_w is not None:
            self._orders_w.close()
        removed = [p for p in (self.out, self.orders) if p is not None and os.path.exists(p)]
        for p in removed:
            remove_journal(p) if p != self.out or self.kungfu_out is None else self.kungfu_out.remove()
        return OutputError(f"{e}; removed the incomplete {' and '.join(removed)} "
                           f"({written:,} frame(s) had been written to it)")

    def _end(self, dispatch: Dispatcher, pacing: Pacing, t_begin: int) -> None:
        """The strategy's end, the stats' closing figures, and every file closed (also after an error)."""
        st, clock = self.stats, self.clock
        st.interrupted = self.stopped()
        st.damage = self.reader.damage
        try:
            if self.backtest is not None:
                t_stop = clock.now()
                dispatch.finish()
                pacing.last_emit += clock.now() - t_stop  # the strategy's time is part of the run
                st.strategy_summary = summary_of(self.strategy)
        finally:
            st.wall_ns = max(0, pacing.last_emit - t_begin)
            st.paused_ns = min(st.paused_ns, pacing.paused_at_emit)  # a pause after the last frame is not in it
            st.orders_sent = dispatch.orders_sent
            st.lateness = st._late.finish()
            pacing.close()
            self._writer.close()
            if self._orders_w is not None:
                self._orders_w.close()
            self.reader.close()

    def _say_long_wait(self, wait_ns: int, gen_time: int, previous: int | None) -> None:
        from ..timeparse import format_time

        assert self.on_long_wait is not None
        gap = "" if previous is None else f", {(gen_time - previous) / 1e9:,.0f} s after the frame before it"
        self.on_long_wait(
            f"{self.path}: the next frame (gen_time {format_time(gen_time)}{gap}) is due in "
            f"{wait_ns / 1e9:,.0f} s at --speed {self.speed!r}; waiting (Ctrl-C stops; --max does not wait)"
        )


def _readers(reader: Reader | MergedReader) -> list[Reader]:
    return [reader] if isinstance(reader, Reader) else reader.readers


def _worst_writer(reader: Reader | MergedReader) -> tuple[WriterState, int]:
    """The writer state to warn about: one journal's, or of several the first crashed, else the first alive."""
    states = [r.writer_state() for r in _readers(reader)]
    for want in (WriterState.CRASHED, WriterState.ALIVE):
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


def replay(path: str | os.PathLike, out: str | os.PathLike | None = None, **kw) -> ReplayStats:
    """Replay ``path`` into ``out`` (see :class:`Replay` for the options); returns the stats."""
    return Replay(path, out, **kw).run()


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
    "FRAME_FIELDS", "Controller", "ManualClock", "MonotonicClock", "Replay", "ReplayOptions", "ReplayStats",
    "default_output", "load_strategy", "make_strategy", "replay", "set_column",
]
