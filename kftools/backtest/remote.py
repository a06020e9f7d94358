"""Run a backtest strategy class in its own process, against a replay's output (``replay --order-journal``).

The strategy is the same class an in-process backtest runs (``on_ticker``,
``on_fill``, ``ctx.send_order``, ...). This host follows the replay's output
with :class:`kftools.Reader`, writes the strategy's orders and cancels into its
order journal with :class:`kftools.Writer`, and acknowledges (an Ack frame) how
far it has read each time it catches up. Answers (OrderUpdate, Fill frames
addressed to ``source``) reach the strategy at the next frame, before its
market callback, as in-process: in lockstep the two runs decide the same.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..errors import KftoolsError, StrategyError
from ..journal.format import FILL, FRAME_HEADER_SIZE, ORDER_UPDATE, TICKER, TIMER, TRADE, MsgType, PageFlag, WriterState
from ..journal.reader import Reader
from ..journal.wait import WaitPolicy, wait_policy
from ..journal.writer import Writer
from ..outputs import check_output, remove_journal
from .engine import CALLBACKS, STRATEGY_FAILURES, BacktestContext, TickerFrame, Timer, TradeFrame, strategy_file, where
from .exchange import Book, ExchangeConfig, Fill, OrderUpdate

_TICK, _TRADE = int(MsgType.TICKER), int(MsgType.TRADE)
_UPDATE, _FILL, _ACK = int(MsgType.ORDER_UPDATE), int(MsgType.FILL), int(MsgType.ACK)
_TIMER = int(MsgType.TIMER)
_UNSET = object()
_HDR = FRAME_HEADER_SIZE
_TICKER_UNPACK, _TRADE_UNPACK = TICKER.struct.unpack_from, TRADE.struct.unpack_from
_ANSWER_UNPACK = {_UPDATE: ORDER_UPDATE.struct.unpack_from, _FILL: FILL.struct.unpack_from,
                  _TIMER: TIMER.struct.unpack_from}
REPLAY_CHECK_S = 0.5  # while idle: how often to ask whether the replay is still alive


class _Market:
    """What the strategy's context asks of an exchange, answered from the output it reads."""

    latency = 0

    def __init__(self, cash: float):
        self.books: dict[str, Book] = {}
        self.config = ExchangeConfig(cash=cash)


class _Host:
    """The engine a :class:`BacktestContext` expects: the recording's clock, the market seen so far, and the
    strategy's own timers (requests are in the order journal already: the replay's exchange decides)."""

    def __init__(self, cash: float):
        self.time = 0
        self.exchange = _Market(cash)
        self.timers: dict[int, Any] = {}  # timer_id -> data, until the replay says it fired

    def marks(self) -> dict[str, float]:
        return {s: b.mark for s, b in self.exchange.books.items()}

    def submit(self, order) -> None:
        """The order is in the journal."""

    def request_cancel(self, order_id: int, sent: int) -> None:
        """The cancel is in the journal."""

    def request_modify(self, order_id: int, price: float, quantity: float, sent: int) -> None:
        """The modify is in the journal."""

    def schedule_timer(self, timer_id: int, due: int, data: Any = None) -> None:
        """The timer is in the journal; the replay fires it (a Timer frame addressed to us)."""
        self.timers[timer_id] = data


def run_strategy(
    strategy: object, output: str, orders: str, *, source: int = 0, cash: float = 0.0, wait: str = "backoff",
    force: bool = False, stop: Callable[[], bool] | None = None, path: str = "", response_latency: int = 0,
) -> BacktestContext:
    """Follow the replay writing ``output``; write ``strategy``'s orders into ``orders``; returns the context
    when the replay has closed its output (the strategy's ``on_stop`` has run). ``response_latency`` (ns) is
    the replay's ``--response-latency``: answers reach the strategy (``ctx.now()``) that long after the
    exchange time their frames carry."""
    check_output(orders, force=force, inputs=[output], what="order journal")
    if force:
        remove_journal(orders)
    host = _Host(cash)
    # the journal first: a replay waiting for its strategies knows this one is up
    with Writer(orders, page_size=1 << 20, source=source) as writer:
        if getattr(strategy, "on_timer", None) is not None:
            writer.write(_TIMER, timer_id=0, at=0)  # "I set timers": the replay runs no further ahead than a timer
        reader = Reader.wait_open(output, stop=stop)
        if reader is None:
            raise KftoolsError(f"{output}: stopped before the replay created it")
        ctx = BacktestContext(host, writer)  # type: ignore[arg-type]
        _Session(strategy, ctx, host, reader, writer, source, path or strategy_file(strategy), stop,
                 response_latency).run(wait)
    return ctx


class _Session:
    def __init__(self, strategy, ctx: BacktestContext, host: _Host, reader: Reader, writer: Writer, source: int,
                 path: str, stop, response_latency: int = 0):
        self.strategy = strategy
        self.ctx = ctx
        self.host = host
        self.reader = reader
        self.writer = writer
        self.source = source
        self.path = path
        self.stop = stop
        self.response_latency = response_latency
        self.last: Any = None  # the last frame read
        self._page: Any = None
        self._mm: Any = None
        self._symbols: dict[bytes, str] = {}
        self.checked = time.monotonic()
        self.cb: dict[int, Callable | None] = {}
        self._on_fill = getattr(strategy, "on_fill", None)
        self._on_update = getattr(strategy, "on_order_update", None)

    def call(self, name: str, *args) -> None:
        fn = getattr(self.strategy, name, None)
        if fn is not None:
            self.guard(fn, *args)

    def guard(self, fn, *args) -> None:
        try:
            fn(self.ctx, *args)
        except STRATEGY_FAILURES as e:  # user code (sys.exit too): one line naming where
            raise StrategyError(f"strategy {type(self.strategy).__name__}.{fn.__name__} failed: "
                                f"{where(e, self.path)}") from None

    def finished(self) -> bool:
        """The replay closed its output and every frame of it was read (checked while idle)."""
        if self.stop is not None and self.stop():
            return True
        r, last = self.reader, self.last
        end = ((r.first_page, r.page(r.first_page).frame_start) if last is None
               else (last.page.index, last.offset + FRAME_HEADER_SIZE + last.length))
        page = r.page(end[0])
        flags = page.flags  # CLOSED is set after the last commit: read it before the cursor
        if flags & PageFlag.CLOSED and not flags & PageFlag.SEALED and page.cursor <= end[1]:
            return True
        now = time.monotonic()
        if now - self.checked > REPLAY_CHECK_S:
            self.checked = now
            state, pid = self.reader.writer_state()
            if state == WriterState.CRASHED:
                raise KftoolsError(f"{self.reader.path}: the replay writing it (pid {pid}) died")
        return False

    def run(self, wait: str) -> None:
        """Each output frame as it is committed (the per-frame follower), and an Ack whenever caught up."""
        self.call("on_start")
        self.writer.write_ack(0)  # ready: what on_start sent is in the journal
        policy = _AckWhenCaughtUp(wait_policy(wait), self.writer)
        frame = self.frame
        for f in self.reader.follow(wait=policy, stop=self.finished):
            self.last = f
            frame(f)
            policy.handled += 1
        if self.reader.damage is not None:
            raise KftoolsError(f"replay output {self.reader.damage}")
        self.call("on_stop")
        policy.ack()

    def frame(self, f) -> None:
        """One output frame: an answer or timer addressed to us, or market data for the strategy's callbacks."""
        mt = f.msg_type
        if mt == _UPDATE or mt == _FILL or mt == _TIMER:
            # answers and timers reach the strategy as soon as read: a lockstep replay waits for what it sends
            # in reaction before the market frame that follows
            if f.dest == self.source:
                self.heard(mt, _ANSWER_UNPACK[mt](self.mapping(f), f.offset + _HDR), f.trigger_time)
            return
        host = self.host
        t = f.trigger_time
        if t > host.time:
            host.time = t
        x: Any
        if mt == _TICK:
            sym, last, bid, ask, vol = _TICKER_UNPACK(self.mapping(f), f.offset + _HDR)
            s = self.symbol(sym)
            books = host.exchange.books
            book = books.get(s) or books.setdefault(s, Book())
            if bid == bid:
                book.bid, book.ask = bid, ask
            if last > 0:
                book.last = last
            x = TickerFrame(s, last, bid, ask, vol, f.gen_time, t, f.source, f.dest)
        elif mt == _TRADE:
            row = _TRADE_UNPACK(self.mapping(f), f.offset + _HDR)
            s = self.symbol(row[0])
            books = host.exchange.books
            book = books.get(s) or books.setdefault(s, Book())
            x = TradeFrame(s, *row[1:], f.gen_time, t, f.source, f.dest)
            if x.price > 0:
                book.last = x.price
        else:
            x = f
        fn = self.cb.get(mt, _UNSET)
        if fn is _UNSET:
            fn = self.cb[mt] = (getattr(self.strategy, CALLBACKS.get(mt, ""), None)
                                or getattr(self.strategy, "on_frame", None))
        if fn is not None:
            self.ctx.frame = x
            self.guard(fn, x)

    def mapping(self, f):
        """The mapping of ``f``'s page (looked up again only when the page changes)."""
        page = f.page
        if page is not self._page:
            self._page, self._mm = page, page.mm
        return self._mm

    def symbol(self, raw: bytes) -> str:
        s = self._symbols.get(raw)
        if s is None:
            s = self._symbols[raw] = raw.split(b"\0", 1)[0].decode()
        return s

    def heard(self, mt: int, row: tuple, t: int) -> None:
        """An answer (exchange time ``t``) or a timer (due at ``t``) addressed to this strategy."""
        host = self.host
        if mt == _TIMER:
            tid, at = row
            host.time = max(host.time, at)
            on_timer = getattr(self.strategy, "on_timer", None)
            data = host.timers.pop(tid, None)
            if on_timer is not None:
                self.guard(on_timer, Timer(tid, at, data))
            return
        host.time = max(host.time, t + self.response_latency)
        self.deliver([_answer(mt, row, t)])

    def deliver(self, due: list) -> None:
        """Answers reach the strategy."""
        ctx = self.ctx
        for kind, a in due:
            if kind == "fill":
                ctx.account.apply(a.symbol, a.side, a.price, a.quantity, a.fee)
                if self._on_fill is not None:
                    self.guard(self._on_fill, a)
            else:
                v = ctx.orders.get(a.order_id)
                if v is not None:
                    v.learn(a)
                if self._on_update is not None:
                    self.guard(self._on_update, a)


class _AckWhenCaughtUp:
    """The follower's wait policy: on the first poll that finds nothing new, the Ack of every frame handled (a
    lockstep replay waits for it); then ``inner``'s wait."""

    stream_spins = 1  # the first empty poll is when we have caught up
    park_ns = 0

    def __init__(self, inner: WaitPolicy, writer: Writer):
        self.inner = inner
        self.writer = writer
        self.handled = 0
        self.acked = 0

    def ack(self) -> None:
        if self.handled > self.acked:
            self.writer.write_ack(self.handled)
            self.acked = self.handled

    def idle(self, work_count: int = 0) -> bool:
        if work_count:
            self.reset()
            return False
        if self.handled > self.acked:
            self.ack()
            return False
        return self.inner.idle(0)

    def reset(self) -> None:
        self.inner.reset()


def _answer(mt: int, row: tuple, t: int) -> tuple[str, Any]:
    sym = row[0].split(b"\0", 1)[0].decode()
    if mt == _UPDATE:
        d = dict(zip(ORDER_UPDATE.names, row, strict=True))
        return "update", OrderUpdate(t, d["order_id"], sym, d["status"], d["reject_reason"], d["side"],
                                     d["order_type"], d["price"], d["quantity"], d["filled_quantity"],
                                     d["remaining_quantity"], d["avg_price"])
    d = dict(zip(FILL.names, row, strict=True))
    return "fill", Fill(t, d["fill_id"], d["order_id"], sym, d["side"], d["liquidity"], d["price"], d["quantity"],
                        d["fee"], d["flags"])
