"""The in-process backtest: one time-ordered stream of events through the simulated exchange and the strategy.

The replay calls ``frames`` after each chunk it emits (or
:func:`kftools.backtest` drives it directly, without an output journal).
Market frames come in recording order; requests (new, cancel, modify), answers
and timers wait in one queue ordered by time. The rule for equal times, one for
everything (hftbacktest's): **market data first**. So before a market frame at
time ``t``, every queued event with a time before ``t`` happens, in time order
(at equal times: arrivals at the exchange, then answers reaching the strategy,
then timers, each in the order made); events at exactly ``t`` wait until the
market frames at ``t`` have been handled.

When no order is working, nothing is queued, the strategy holds nothing and has
no callback for the chunk's frames, a chunk costs a few numpy operations (the
books learn the last quote of each symbol).
"""

from __future__ import annotations

import collections
import heapq
import inspect
import math
import os
import traceback
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from ..errors import StrategyError, UsageError
from ..journal.format import DEPTH, FILL, ORDER_UPDATE, TICKER, TRADE, MsgType, OrderStatus, OrderType, Side
from ..journal.merge import MergedBatch
from ..journal.reader import Frame, FrameBatch
from ..journal.writer import Writer
from .exchange import (
    FILL_FIELDS,
    NAN,
    UPDATE_FIELDS,
    Account,
    Book,
    ExchangeConfig,
    Fill,
    OrderUpdate,
    SimExchange,
    SimOrder,
    status_name,
)
from .market import BOOK_ROLE, PRINT_ROLE, QUOTE_ROLE, market_columns

_TICK = int(MsgType.TICKER)
_TRADE = int(MsgType.TRADE)
_ORDER = int(MsgType.ORDER)
_DEPTH = int(MsgType.DEPTH)
_ORDER_TYPES = frozenset(int(t) for t in OrderType)

#: what a strategy's code may raise that stops the backtest with one line (SystemExit included: sys.exit() in
#: a strategy is a strategy's failure, not the command's exit status). KeyboardInterrupt is not: it is how the
#: user's Ctrl-C reaches code that runs under no signal handler (a notebook, a sweep's worker), exit 130.
STRATEGY_FAILURES = (Exception, SystemExit)

# kinds of queued events, in their order at equal times
ARRIVE, DELIVER, TIMER = 0, 1, 2


def _fields(frame, n: int) -> dict:
    return dict(zip(frame._fields[:n], frame[:n], strict=True))


def _to_dict(frame, n: int) -> dict:
    d = {"type": frame.type_name, "msg_type": frame.msg_type, "gen_time": frame.gen_time,
         "trigger_time": frame.trigger_time, "source": frame.source, "dest": frame.dest}
    d.update(_fields(frame, n))
    return d


class _MarketFrame(tuple):
    """What replayed market frames share: the payload's fields, then ``gen_time`` (the emission),
    ``trigger_time`` (the recording time), ``source`` and ``dest``."""

    __slots__ = ()
    _fields: tuple[str, ...]
    _payload: int  # how many of the fields are the payload's
    msg_type: int
    type_name: str

    @property
    def fields(self) -> dict:
        return _fields(self, self._payload)

    def to_dict(self) -> dict:
        return _to_dict(self, self._payload)


def _market_frame(layout, msg_type: int, doc: str) -> Any:
    """A tuple class whose fields are ``layout``'s (declared once, in journal/format.py) and the header's."""
    base = collections.namedtuple(layout.name + "Frame", [*layout.names, *FRAME_FIELDS])  # type: ignore[misc]
    cls = type(layout.name + "Frame", (base, _MarketFrame), {
        "__slots__": (), "__doc__": doc, "_payload": len(layout.names), "msg_type": msg_type,
        "type_name": layout.name})
    return cls


#: the header fields a replayed frame carries after its payload's
FRAME_FIELDS = ("gen_time", "trigger_time", "source", "dest")
TickerFrame = _market_frame(TICKER, _TICK, "A replayed Ticker as strategies see it (decoded once per batch).")
TradeFrame = _market_frame(TRADE, _TRADE, "A replayed Trade (a market print) as strategies see it.")
DepthFrame = _market_frame(DEPTH, _DEPTH, "A replayed Depth snapshot (lists of 10 prices and sizes a side).")

CALLBACKS = {_TICK: "on_ticker", _ORDER: "on_order", _TRADE: "on_trade", _DEPTH: "on_depth"}


class Timer(NamedTuple):
    """What ``on_timer`` receives: the timer's id, when it was due (recording time) and the data given."""

    timer_id: int
    time: int
    data: Any


class OrderView:
    """An order as the strategy knows it: what it sent, and the answers delivered so far."""

    __slots__ = ("order_id", "symbol", "side", "order_type", "price", "quantity", "filled_quantity",
                 "avg_price", "status")

    def __init__(self, order_id, symbol, side, order_type, price, quantity):
        self.order_id = order_id
        self.symbol = symbol
        self.side = side
        self.order_type = order_type
        self.price = price
        self.quantity = quantity
        self.filled_quantity = 0.0
        self.avg_price = 0.0
        self.status = "pending"  # pending, accepted, partially_filled, modified, filled, canceled, rejected, expired

    @property
    def remaining_quantity(self) -> float:
        return self.quantity - self.filled_quantity if self.is_open else 0.0

    @property
    def is_open(self) -> bool:
        return self.status in _OPEN_NAMES

    def learn(self, u: OrderUpdate) -> None:
        """An answer about this order reached the strategy."""
        if u.status in _UNCHANGED:
            return
        self.status = _STATUS_NAMES[u.status]
        self.filled_quantity = u.filled_quantity
        self.avg_price = u.avg_price
        if u.status == _MODIFIED:
            self.price, self.quantity = u.price, u.quantity

    def __repr__(self) -> str:
        side = "buy" if self.side == Side.BUY else "sell"
        return f"<OrderView {self.order_id} {self.symbol} {side} {self.quantity!r} @ {self.price!r} {self.status}>"


_OPEN_NAMES = frozenset(("pending", "accepted", "partially_filled", "modified"))
_STATUS_NAMES = {int(s): status_name(int(s)) for s in OrderStatus}
_UNCHANGED = frozenset((int(OrderStatus.CANCEL_REJECTED), int(OrderStatus.MODIFY_REJECTED)))
_MODIFIED = int(OrderStatus.MODIFIED)


def _check_order(symbol, side, order_type, price, quantity, books) -> str:
    """What is wrong with an order as a strategy sends it ('' if nothing)."""
    if side not in (Side.BUY, Side.SELL):
        return f"side must be Side.BUY or Side.SELL, not {side!r}"
    if order_type not in _ORDER_TYPES:
        return f"order_type must be an OrderType (LIMIT, MARKET, LIMIT_IOC, LIMIT_FOK, POST_ONLY), not {order_type!r}"
    if not isinstance(quantity, int | float) or isinstance(quantity, bool) or not (0 < quantity < math.inf):
        return f"quantity must be a positive number, not {quantity!r}"
    if order_type != OrderType.MARKET and (
            not isinstance(price, int | float) or isinstance(price, bool) or not (0 < price < math.inf)):
        return f"a limit order needs a positive price, not {price!r}"
    if not isinstance(symbol, str) or symbol not in books:
        return f"unknown symbol {symbol!r} (no market data for it in the recording so far)"
    return ""


class BacktestContext:
    """What a backtest strategy's callbacks receive as ``ctx``.

    Orders: ``send_order`` (limit, market, IOC, FOK, post-only), ``cancel``,
    ``modify``, ``open_orders``, ``orders``. Timers: ``schedule``. The account
    as the strategy knows it (fills delivered after the response latency):
    ``position``, ``avg_price``, ``cash``, ``realized_pnl``, ``unrealized_pnl``,
    ``pnl``, ``fees``. ``now()`` is the simulated time (the recording's clock),
    ``frame`` the frame being handled.
    """

    def __init__(self, engine: Any, orders: Writer | None):
        self._engine = engine
        self._orders = orders
        self.orders_path = orders.path if orders is not None else None
        self.frame: Any = None
        self.orders_sent = 0
        self.orders: dict[int, OrderView] = {}
        self.account = Account(engine.exchange.config.cash)
        self._qty = self.account.qty
        self._timers = 0
        self.summary: dict | None = None

    # -- time and market -------------------------------------------------------------------
    def now(self) -> int:
        """Simulated time, ns: the recording time of the event being handled."""
        return self._engine.time

    def quote(self, symbol: str) -> tuple[float, float, float]:
        """(bid, ask, last) of ``symbol`` as of now (NaN where the recording had none)."""
        b = self._engine.exchange.books.get(symbol)
        return (NAN, NAN, NAN) if b is None else (b.bid, b.ask, b.last)

    def depth(self, symbol: str) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """(bids, asks) of ``symbol`` as of now: (price, size) pairs, best first ([] without depth data)."""
        b = self._engine.exchange.books.get(symbol)
        if b is None or b.bids is None:
            return [], []
        return sorted(b.bids.items(), reverse=True), sorted((b.asks or {}).items())

    # -- orders -------------------------------------------------------------------------------
    def send_order(
        self, symbol: str, side: int, price: float = 0.0, quantity: float = 0.0, *, order_type: int = OrderType.LIMIT,
        client_order_id: str = "",
    ) -> int:
        """Send an order; returns its order_id (1, 2, ...). It reaches the exchange ``--latency`` after now.

        ``order_type``: LIMIT (good till canceled), MARKET, LIMIT_IOC, LIMIT_FOK or POST_ONLY.
        """
        eng = self._engine
        problem = _check_order(symbol, side, order_type, price, quantity, eng.exchange.books)
        if problem:
            raise UsageError(f"send_order: {problem}")
        quantity, price = float(quantity), float(price)
        if order_type == OrderType.MARKET:
            price = 0.0
        self.orders_sent += 1
        oid = self.orders_sent
        t = eng.time
        coid = client_order_id or f"bt-{oid}"
        if self._orders is not None:
            self._orders.write_order(symbol, oid, int(side), int(order_type), price, quantity, 0.0, coid,
                                     trigger_time=t)
        o = SimOrder(oid, symbol, int(side), int(order_type), price, quantity, t, t + eng.exchange.latency, coid)
        eng.submit(o)
        self.orders[oid] = OrderView(oid, symbol, int(side), int(order_type), price, quantity)
        return oid

    def cancel(self, order_id: int) -> None:
        """Ask the exchange to cancel ``order_id``; the answer comes as an order update."""
        v = self._view(order_id, "cancel")
        eng = self._engine
        if self._orders is not None:
            self._orders.write(int(MsgType.CANCEL_REQUEST), symbol=v.symbol, order_id=order_id, trigger_time=eng.time)
        eng.request_cancel(order_id, eng.time)

    def modify(self, order_id: int, price: float | None = None, quantity: float | None = None) -> None:
        """Ask the exchange to change a resting order's limit ``price`` and/or total ``quantity``; a new price or
        a larger quantity loses its place in the queue. The answer comes as an update (MODIFIED or
        MODIFY_REJECTED)."""
        v = self._view(order_id, "modify")
        price = v.price if price is None else price
        quantity = v.quantity if quantity is None else quantity
        if not isinstance(quantity, int | float) or isinstance(quantity, bool) or not (0 < quantity < math.inf):
            raise UsageError(f"modify: quantity must be a positive number, not {quantity!r}")
        if not isinstance(price, int | float) or isinstance(price, bool) or not (0 < price < math.inf):
            raise UsageError(f"modify: price must be a positive number, not {price!r}")
        eng = self._engine
        if self._orders is not None:
            self._orders.write(int(MsgType.MODIFY_REQUEST), symbol=v.symbol, order_id=order_id, price=float(price),
                               quantity=float(quantity), trigger_time=eng.time)
        eng.request_modify(order_id, float(price), float(quantity), eng.time)

    def _view(self, order_id: int, what: str) -> OrderView:
        v = self.orders.get(order_id)
        if v is None:
            raise UsageError(f"{what}: unknown order id {order_id!r} (this strategy sent orders 1..{self.orders_sent})")
        return v

    def open_orders(self, symbol: str | None = None) -> list[OrderView]:
        """Orders not known (to the strategy) to be filled, canceled, rejected or expired."""
        return [v for v in self.orders.values() if v.is_open and (symbol is None or v.symbol == symbol)]

    # -- timers -------------------------------------------------------------------------------
    def schedule(self, at: int | None = None, *, after: int | None = None, data: Any = None) -> int:
        """Call the strategy's ``on_timer(ctx, timer)`` at recording time ``at`` (ns) or ``after`` ns from now;
        returns the timer's id. A timer due before now fires at once (after the event being handled); one due
        after the last frame of the recording never fires."""
        eng = self._engine
        if (at is None) == (after is None):
            raise UsageError("schedule: give either at= (recording time, ns) or after= (ns from now)")
        when = at if at is not None else after
        if not isinstance(when, int) or isinstance(when, bool):
            raise UsageError(f"schedule: {'at' if at is not None else 'after'} must be an integer of ns, not {when!r}")
        due = max(int(at), eng.time) if at is not None else eng.time + max(0, int(when))
        self._timers += 1
        if self._orders is not None:
            self._orders.write(int(MsgType.TIMER), timer_id=self._timers, at=due, trigger_time=eng.time)
        eng.schedule_timer(self._timers, due, data)
        return self._timers

    # -- account ------------------------------------------------------------------------------
    def position(self, symbol: str) -> float:
        """Signed quantity held (negative: short), from the fills delivered so far."""
        return self._qty.get(symbol, 0.0)

    def avg_price(self, symbol: str) -> float:
        """Average entry price of the open position (0 when flat)."""
        return self.account.avg.get(symbol, 0.0) if self.account.position(symbol) else 0.0

    @property
    def positions(self) -> dict[str, float]:
        return {s: q for s, q in self.account.qty.items() if q}

    @property
    def cash(self) -> float:
        return self.account.cash

    @property
    def fees(self) -> float:
        return self.account.fees

    @property
    def realized_pnl(self) -> float:
        return sum(self.account.realized.values())

    @property
    def unrealized_pnl(self) -> float:
        return self.account.unrealized(self._engine.marks())

    @property
    def pnl(self) -> float:
        """Realised plus unrealised, net of fees."""
        return self.realized_pnl + self.unrealized_pnl - self.fees


def strategy_file(strategy: object) -> str:
    """The file the strategy's class was written in (its methods' code says; the module may not be importable)."""
    for cls in type(strategy).__mro__:
        for v in vars(cls).values():
            code = getattr(v, "__code__", None)
            if code is not None:
                return code.co_filename
    try:
        return inspect.getsourcefile(type(strategy)) or "<strategy>"
    except TypeError:
        return "<strategy>"


def where(e: BaseException, path: str) -> str:
    """``file:line in func: Type: message``, at the innermost line of the strategy's own file."""
    tb = traceback.extract_tb(e.__traceback__)
    mine = [fr for fr in tb if os.path.abspath(fr.filename) == os.path.abspath(path)]
    at = mine[-1] if mine else (tb[-1] if tb else None)
    loc = f"{at.filename}:{at.lineno} in {at.name}: " if at is not None else f"{path}: "
    return f"{loc}{type(e).__name__}: {e}"


class _Symbols(dict):
    def __missing__(self, key: bytes) -> str:
        s = self[key] = key.split(b"\0", 1)[0].decode("utf-8", "replace")
        return s


class StrategyCalls:
    """What both engines share: calling the strategy, and turning its exceptions into one StrategyError."""

    strategy: object
    path: str
    ctx: Any
    _on_frame: Callable | None

    def call(self, name: str) -> None:
        fn = getattr(self.strategy, name, None)
        if fn is not None:
            self._guard(fn, self.ctx)

    def _guard(self, fn, *args) -> None:
        try:
            fn(*args)
        except STRATEGY_FAILURES as e:
            self._failed(e)

    def _failed(self, e: BaseException) -> None:
        """An exception while the strategy ran (sys.exit and KeyboardInterrupt from its code too: a strategy does
        not decide the command's exit): one StrategyError naming its callback, file and line."""
        tb = traceback.extract_tb(e.__traceback__)
        mine = [fr for fr in tb if os.path.abspath(fr.filename) == os.path.abspath(self.path)]
        if not mine:
            raise e  # not raised under the strategy's code: a kftools bug, keep its traceback
        raise StrategyError(f"strategy {type(self.strategy).__name__}.{mine[0].name} failed: "
                            f"{where(e, self.path)}") from None

    def _strategy_callback(self, mt: int) -> Callable | None:
        """The strategy's callback for frames of ``mt`` (on_ticker, ...), else its on_frame, else None."""
        name = CALLBACKS.get(mt)
        return (getattr(self.strategy, name, None) if name else None) or self._on_frame


class ReferenceBacktest(StrategyCalls):
    """The event loop of one backtest in Python: market frames to the exchange and the strategy, requests to
    the exchange at their arrival, answers to the strategy after the response latency, timers when due.

    The C engine (``loop.py``) runs the same rules; this twin is what the tests check it against."""

    def __init__(self, strategy: object, config: ExchangeConfig, *, orders: Writer | None = None,
                 output: Writer | None = None, clock=None, bar_ns: int = 1_000_000_000):
        self.strategy = strategy
        self.path = strategy_file(strategy)
        self.exchange = SimExchange(config)
        self.ctx = BacktestContext(self, orders)
        self.output = output
        self.clock = clock
        self.time = 0
        self.market_time: int | None = None  # time of the last market frame
        self.queue: list[tuple] = []  # (time, kind, n, payload): the events still to come
        self._n = 0
        self.bar_ns = max(1, int(bar_ns))
        self._next_bar = _NEVER_SAMPLED
        self._cache: _Columns | None = None
        self.equity: list[tuple] = []  # (time, equity, cash, realized, unrealized, fees, {symbol: qty}, is_bar)
        self.first_time: int | None = None
        self.frames_seen = 0
        self.timers_fired = 0
        self.timers_dropped = 0
        self._symbols = _Symbols()
        self._cb: dict[int, Callable | None] = {}
        self._on_frame = getattr(strategy, "on_frame", None)
        self._on_update = getattr(strategy, "on_order_update", None)
        self._on_fill = getattr(strategy, "on_fill", None)
        self._on_timer = getattr(strategy, "on_timer", None)
        self._market_cb = any(getattr(strategy, n, None) for n in (*CALLBACKS.values(), "on_frame"))
        self._written = (0, 0)  # updates, fills already written to the output journal
        #: called with ("update"|"fill"|"timer", record) as each reaches the strategy (the gateway publishes it)
        self.sink: Callable[[str, tuple], None] | None = None

    # -- requests (the context and the gateway) ------------------------------------------------------
    def _push(self, t: int, kind: int, payload) -> None:
        self._n += 1
        heapq.heappush(self.queue, (t, kind, self._n, payload))

    def submit(self, o: SimOrder) -> None:
        """A new order, sent at ``o.sent_time``: it arrives at ``o.arrival_time``."""
        self.exchange.sent(o)
        self._push(o.arrival_time, ARRIVE, ("new", o))

    def request_cancel(self, order_id: int, sent: int) -> None:
        arrival = sent + self.exchange.latency
        self.exchange.cancels.append((sent, arrival, order_id))
        self._push(arrival, ARRIVE, ("cancel", order_id))

    def request_modify(self, order_id: int, price: float, quantity: float, sent: int) -> None:
        arrival = sent + self.exchange.latency
        self.exchange.modifies.append((sent, arrival, order_id))
        self._push(arrival, ARRIVE, ("modify", order_id, price, quantity))

    def schedule_timer(self, timer_id: int, due: int, data: Any = None) -> None:
        self._push(due, TIMER, Timer(timer_id, due, data))

    @property
    def busy(self) -> bool:
        """Anything a market frame could change or that waits for its time: queued events, working orders."""
        return bool(self.queue) or self.exchange.working

    def _callback(self, mt: int) -> Callable | None:
        fn = self._cb.get(mt, False)
        if fn is False:
            fn = self._cb[mt] = self._strategy_callback(mt)
        return fn  # type: ignore[return-value]

    # -- the queue ---------------------------------------------------------------------------------
    def step_until(self, t: int | None) -> bool:
        """Queued events before ``t`` (all if None) up to and including the first that reaches the strategy
        (an answer, a timer): a strategy in another process must hear it, and be heard, before the next one.
        False when nothing before ``t`` was left."""
        if not self.queue or (t is not None and self.queue[0][0] >= t):
            return False
        end = self.market_time if self.market_time is not None else self.time
        self._run_until(t, timers_until=end if t is None else None, step=True)
        return True

    def _run_until(self, t: int | None, timers_until: int | None = None, step: bool = False) -> None:
        """Every queued event before ``t`` (all of them if None), in order; timers after ``timers_until`` are
        dropped (the recording ended before them). ``step``: return after the first answer or timer."""
        q = self.queue
        ex = self.exchange
        pop = heapq.heappop
        while q and (t is None or q[0][0] < t):
            when, kind, _n, p = pop(q)
            if when > self.time:
                self.time = when
            if kind == ARRIVE:
                what = p[0]
                if what == "new":
                    ex.arrive_order(when, p[1])
                elif what == "cancel":
                    ex.arrive_cancel(when, p[1])
                else:
                    ex.arrive_modify(when, p[1], p[2], p[3])
                if ex.fills and ex.fills[-1].time == when:
                    self._sample(when)
                self._post()
            elif kind == DELIVER:
                self._deliver(p)
                if step:
                    return
            elif timers_until is not None and when > timers_until:
                self.timers_dropped += 1
            else:
                self.timers_fired += 1
                if self.sink is not None:
                    self.sink("timer", p)
                if self._on_timer is not None:
                    self._guard(self._on_timer, self.ctx, p)
                if step:
                    return

    def _post(self) -> None:
        """Answers the exchange just made: queued to reach the strategy after the response latency."""
        box = self.exchange.outbox
        if not box:
            return
        rl = self.exchange.response_latency
        for a in box:
            self._push(a.time + rl, DELIVER, a)
        box.clear()

    def _deliver(self, a: OrderUpdate | Fill) -> None:
        ctx = self.ctx
        if self.sink is not None:
            self.sink("fill" if type(a) is Fill else "update", a)
        if type(a) is Fill:
            ctx.account.apply(a.symbol, a.side, a.price, a.quantity, a.fee)
            if self._on_fill is not None:
                self._guard(self._on_fill, ctx, a)
        else:
            assert type(a) is OrderUpdate
            v = ctx.orders.get(a.order_id)
            if v is not None:
                v.learn(a)
            if self._on_update is not None:
                self._guard(self._on_update, ctx, a)

    # -- the loop ---------------------------------------------------------------------------------
    def frames(self, batch: FrameBatch | MergedBatch, i: int, j: int, wall: int) -> None:
        """Frames ``i..j-1`` of ``batch`` were just emitted (at wall-clock ``wall``)."""
        c = self._columns(batch)
        ex = self.exchange
        if not self._market_cb and not self.queue and not ex.working and not self._holding():
            self._skip(c, i, j)
            return
        c.lists()
        mts, gens, syms, last, bid, ask, vol, side = c.mt, c.gen, c.sym, c.last, c.bid, c.ask, c.vol, c.side
        src, dst, roles = c.src, c.dst, c.role
        books, resting, aggressive, q = ex.books, ex.resting, ex.aggressive, self.queue
        cb, ctx, new = self._cb, self.ctx, tuple.__new__
        try:
            for k in range(i, j):
                t = gens[k]
                if t < self.time:
                    t = self.time  # out-of-order gen_times never move the simulated clock back
                if q and q[0][0] < t:
                    self._run_until(t)
                self.time = self.market_time = t
                if t >= self._next_bar:
                    self._bar(t)
                mt, role = mts[k], roles[k]
                if role == _TICK or role == _TRADE:
                    s = syms[k]
                    if s in resting or s in aggressive:
                        nf = len(ex.fills)
                        if role == _TICK:
                            ex.on_ticker(t, s, last[k], bid[k], ask[k], vol[k])
                        else:
                            ex.on_trade(t, s, last[k], vol[k], side[k])
                        if len(ex.fills) != nf:
                            self._sample(t)
                        self._post()
                    else:  # nothing of ours can trade here: only the book learns (as the exchange would)
                        b = books.get(s)
                        if b is None:
                            b = books[s] = Book()
                        if role == _TICK:
                            b.quote(bid[k], ask[k])
                        b.print_(last[k], vol[k])
                elif role == _DEPTH:
                    bids, asks = c.depth_levels(k)
                    s = syms[k]
                    nf = len(ex.fills)
                    ex.on_depth(t, s, bids, asks)
                    if len(ex.fills) != nf:
                        self._sample(t)
                    self._post()
                fn: Any = cb.get(mt, _UNSET)
                if fn is _UNSET:
                    fn = self._callback(mt)
                if fn is not None:
                    if mt == _TICK:
                        f = new(TickerFrame, (syms[k], last[k], bid[k], ask[k], vol[k], wall, gens[k], src[k], dst[k]))
                    else:
                        f = self._frame(batch, c, k, mt, wall)
                    ctx.frame = f
                    fn(ctx, f)
        except STRATEGY_FAILURES as e:  # user code: stop the replay, say where
            self._failed(e)
        self.frames_seen += j - i
        if self.output is not None:
            self._write_answers(wall)

    def _bar(self, t: int) -> None:
        """Time reached ``t``: sample the bar that ended (not the first), then wait for the next boundary."""
        if self._next_bar != _NEVER_SAMPLED:
            self._sample(self._next_bar, True)
        elif self.first_time is None:
            self.first_time = t
        self._next_bar = t - t % self.bar_ns + self.bar_ns

    def _holding(self) -> bool:
        return any(self.exchange.account.qty.values())

    def _skip(self, c: _Columns, i: int, j: int) -> None:
        """No order, nothing queued, no position, no callback: the books learn the latest quotes, prints and
        depth, bars pass."""
        self.frames_seen += j - i
        if j <= i:
            return
        times = np.maximum.accumulate(np.maximum(c.gen_a[i:j], self.time))
        if int(times[-1]) >= self._next_bar:
            # the bar boundaries the per-frame loop would have crossed, in order (equity is constant here)
            bars = np.unique(times[times >= self._next_bar] // self.bar_ns)
            for b in bars.tolist():
                self._bar(b * self.bar_ns)
        self.time = self.market_time = int(times[-1])
        ex = self.exchange
        for kind in ("quote", "trade", "depth"):
            sel = c.tick_a[i:j] if kind == "quote" else c.traded_a[i:j] if kind == "trade" else c.depth_a[i:j]
            idx = np.flatnonzero(sel)
            if not len(idx):
                continue
            for k in _last_per_symbol(c.sym_a[i:j][idx]).tolist():
                k = i + int(idx[k])
                b = ex.book(self._symbols[bytes(c.sym_a[k])])
                if kind == "quote":
                    b.quote(float(c.bid_a[k]), float(c.ask_a[k]))
                elif kind == "trade":
                    b.print_(float(c.last_a[k]), float(c.vol_a[k]))
                else:
                    bids, asks = c.depth_levels(k)
                    b.bids, b.asks = bids, asks
                    b.bid = max(bids) if bids else NAN
                    b.ask = min(asks) if asks else NAN
        if c.depth_a[i:j].any() and c.tick_a[i:j].any():
            self._settle_mixed(c, i, j)

    def _settle_mixed(self, c: _Columns, i: int, j: int) -> None:
        """Tickers and Depth of one symbol in one chunk: the best quote is whichever came last."""
        ex = self.exchange
        sel = np.flatnonzero(c.tick_a[i:j] | c.depth_a[i:j])
        for k in _last_per_symbol(c.sym_a[i:j][sel]).tolist():
            k = i + int(sel[k])
            b = ex.book(self._symbols[bytes(c.sym_a[k])])
            if c.tick_a[k]:
                b.quote(float(c.bid_a[k]), float(c.ask_a[k]))

    def _columns(self, batch: FrameBatch | MergedBatch) -> _Columns:
        c = self._cache
        if c is None or c.batch is not batch:
            c = self._cache = _Columns(batch, self._symbols)
        return c

    def _frame(self, batch: FrameBatch | MergedBatch, c: _Columns, k: int, mt: int, wall: int):
        src, dst = c.src[k], c.dst[k]
        if mt == _TICK:
            return TickerFrame(c.sym[k], c.last[k], c.bid[k], c.ask[k], c.vol[k], wall, c.gen[k], src, dst)
        if mt == _TRADE:
            p, tid, oid = c.trade_rows()
            q = p[k]
            return TradeFrame(c.sym[k], tid[q], oid[q], c.side[k], 0, c.last[k], c.vol[k], wall, c.gen[k], src, dst)
        if mt == _DEPTH:
            return DepthFrame(c.sym[k], *c.depth_row(k), wall, c.gen[k], src, dst)
        page = batch.page if isinstance(batch, FrameBatch) else batch.row_pages()[k]  # merged: each row's own page
        return Frame(page, (int(batch.offsets[k]), int(batch.headers["length"][k]), mt, wall, c.gen[k], src, dst))

    # -- answers into the output ------------------------------------------------------------------------
    def _write_answers(self, wall: int) -> None:
        ex = self.exchange
        nu, nf = self._written
        w = self.output
        assert w is not None
        for u in ex.updates[nu:]:
            w.write(int(MsgType.ORDER_UPDATE), pack_update(u), gen_time=wall, trigger_time=u.time)
        for f in ex.fills[nf:]:
            w.write(int(MsgType.FILL), pack_fill(f), gen_time=wall, trigger_time=f.time)
        self._written = (len(ex.updates), len(ex.fills))

    # -- equity ----------------------------------------------------------------------------------
    def marks(self) -> dict[str, float]:
        return {s: b.mark for s, b in self.exchange.books.items()}

    def _sample(self, t: int, bar: bool = False) -> None:
        acc = self.exchange.account
        books = self.exchange.books
        marks = {s: books[s].mark for s, q in acc.qty.items() if q}  # only what is held moves the equity
        unreal = acc.unrealized(marks)
        self.equity.append((t, acc.equity(marks), acc.cash, sum(acc.realized.values()), unreal, acc.fees,
                            dict(acc.qty), bar))

    def finish(self) -> None:
        """End of the recording: :meth:`drain`, then the last equity sample."""
        self.drain()
        self.close()

    def drain(self) -> None:
        """Every event still queued: requests in flight are handled against the last book and their answers
        reach the strategy; timers due after the last market frame never fire."""
        end = self.market_time if self.market_time is not None else self.time
        self._run_until(None, timers_until=end)

    def close(self) -> None:
        """The answers into the output journal, and the last equity sample."""
        if self.output is not None:
            self._write_answers(self.clock.wall() if self.clock is not None else 0)
        self._sample(self.time, True)


def _packer(layout, row_fields: tuple[str, ...]) -> Callable[[tuple], bytes]:
    """Pack a row (fields named ``row_fields``) as a ``layout`` payload, by name; fields not in the row are 0."""
    at = [row_fields.index(n) if n in row_fields else -1 for n in layout.names]
    text = [f.is_text for f in layout.fields]
    pack = layout.struct.pack

    def packer(row: tuple) -> bytes:
        return pack(*[0 if i < 0 else row[i].encode() if t else row[i] for i, t in zip(at, text, strict=True)])

    return packer


#: an exchange update row (``UPDATE_FIELDS``) as an OrderUpdate payload; a fill row as a Fill payload
pack_update = _packer(ORDER_UPDATE, UPDATE_FIELDS)
pack_fill = _packer(FILL, FILL_FIELDS)


def _last_per_symbol(syms: np.ndarray) -> np.ndarray:
    """Index of the last occurrence of each distinct symbol (``S16``), without sorting strings."""
    n = len(syms)
    if n == 0:
        return np.empty(0, np.int64)
    raw = np.ascontiguousarray(syms).view(np.uint8).reshape(n, -1)
    if raw.shape[1] == 16:
        halves = raw.view(np.uint64)  # a hash key of the bytes, not a stored layout: any byte order
        key = halves[:, 0] ^ (halves[:, 1] * np.uint64(0x9E3779B97F4A7C15))
        rev = key[::-1]
        _u, first, inv = np.unique(rev, return_index=True, return_inverse=True)
        last = n - 1 - first
        # a 64-bit key can collide: check every symbol against the one its key picked
        if (syms[::-1] == syms[last[inv]]).all():
            return last
    _u, first = np.unique(syms[::-1], return_index=True)
    return n - 1 - first


class _Columns:
    """One batch decoded once: header and market columns (``market.py``: each frame's role by its layout) as
    lists (the loop) and arrays (the skip and the C engine)."""

    def __init__(self, batch: FrameBatch | MergedBatch, symbols: _Symbols):
        self.batch = batch
        h = batch.headers
        m = market_columns(batch)
        self.role_a = m.role
        self.tick_a = m.role == QUOTE_ROLE
        self.depth_a = m.role == BOOK_ROLE
        self.books, self.depth_pos = m.books, m.book_pos
        self.traded_a = (self.tick_a | (m.role == PRINT_ROLE)) & (m.last > 0) & (m.vol > 0)
        self.trade_a = h["msg_type"] == _TRADE  # kftools Trade frames (TradeFrame's extra fields)
        self.gen_a = h["gen_time"]
        self.sym_a = batch.symbols()
        self.last_a, self.bid_a, self.ask_a, self.vol_a, self.side_a = m.last, m.bid, m.ask, m.vol, m.side
        self._symbols = symbols
        self._lists = False
        self._trade_rows: tuple | None = None

    def lists(self) -> _Columns:
        """Python lists of the columns, for the per-frame loop (the skip path needs none)."""
        if not self._lists:
            self.mt = self.batch.headers["msg_type"].tolist()
            self.role = self.role_a.tolist()
            self.gen = self.gen_a.tolist()
            symbols = self._symbols
            self.sym = [symbols[b] for b in self.sym_a.tolist()]
            self.last, self.bid, self.ask = self.last_a.tolist(), self.bid_a.tolist(), self.ask_a.tolist()
            self.vol = self.vol_a.tolist()
            self.side = self.side_a.tolist()
            h = self.batch.headers
            self.src, self.dst = h["source"].tolist(), h["dest"].tolist()
            self._lists = True
        return self

    def depth_row(self, k: int) -> tuple[list, list, list, list]:
        """Frame ``k``'s Depth payload: bid prices, bid sizes, ask prices, ask sizes (10 each)."""
        bp, bv, ap, av = self.books[int(self.depth_pos[k])].tolist()
        return bp, bv, ap, av

    def depth_levels(self, k: int) -> tuple[dict[float, float], dict[float, float]]:
        """Frame ``k``'s Depth as price -> size per side (levels without a price or a size left out)."""
        bp, bv, ap, av = self.depth_row(k)
        inf = math.inf
        bids = {p: v for p, v in zip(bp, bv, strict=True) if 0 < p < inf and 0 < v < inf}
        asks = {p: v for p, v in zip(ap, av, strict=True) if 0 < p < inf and 0 < v < inf}
        return bids, asks

    def trade_rows(self) -> tuple:
        """(position among the trades by frame, trade_id, order_id) for building Trade frames."""
        if self._trade_rows is None:
            rp = self.batch.payload(_TRADE)
            self._trade_rows = ((np.cumsum(self.trade_a) - 1).tolist(), rp["trade_id"].tolist(),
                                rp["order_id"].tolist())
        return self._trade_rows


_NEVER_SAMPLED = -(1 << 62)
_UNSET = object()
