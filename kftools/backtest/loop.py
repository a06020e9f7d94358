"""The backtest engine in C (``_core.c``): the same rules as the Python twin in ``engine.py``, at peer speed.

The event queue, the exchange, both accounts, the equity samples and every
record live in C; strategy code stays plain Python. The context's hot methods
(``send_order``, ``cancel``, ``modify``, ``position``, ``orders``) are the C
object's own, so a strategy's call costs no Python frame of ours.

``Backtest`` is this engine when the C extension is built, else the twin;
``KFTOOLS_BACKTEST=python`` chooses the twin (the tests run both and compare).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import UsageError
from ..journal.format import DEPTH_LEVELS, Liquidity, MsgType, OrderStatus, OrderType, RejectReason, Side
from ..journal.merge import MergedBatch
from ..journal.reader import FrameBatch
from ..journal.writer import Writer
from .engine import (
    CALLBACKS,
    STRATEGY_FAILURES,
    BacktestContext,
    ReferenceBacktest,
    StrategyCalls,
    TickerFrame,
    Timer,
    _Columns,
    _Symbols,
    pack_fill,
    pack_update,
    strategy_file,
)
from .exchange import (
    NAN,
    Account,
    ExchangeConfig,
    Fill,
    OrderUpdate,
    ProbQueue,
    RiskAverseQueue,
    SimOrder,
    Through,
    Touch,
)
from .exchange import fill_model as parse_fill_model
from .records import C_SIZES, DTYPES, Records, from_reference

try:
    from . import _core  # type: ignore[attr-defined]
except ImportError:  # the C extension was not built: the twin runs
    _core = None  # type: ignore[assignment]

_MODELS = {Touch: 0, Through: 1, RiskAverseQueue: 2, ProbQueue: 3}
#: OrderView.status names, pending (-1) first
STATUS_NAMES = ("pending", *(OrderStatus(k).name.lower() for k in range(len(OrderStatus))))


def _check_build() -> None:
    """The C build's numbers and record sizes are journal/format.py's and records.py's (declared once there)."""
    assert _core is not None
    got = _core.constants()
    want: dict[str, int] = {}
    for enum in (Side, OrderType, OrderStatus, Liquidity):
        want.update({m.name: int(m) for m in enum})
    want.update({m.name: int(m) for m in RejectReason if m.name != "NONE" and m.name in got})
    want.update({"NO_QUOTE": 1, "TICKER": int(MsgType.TICKER), "TRADE": int(MsgType.TRADE),
                 "DEPTH": int(MsgType.DEPTH)})
    bad = {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}
    bad.update({k: (got[C_SIZES[k]], DTYPES[k].itemsize) for k in DTYPES if got[C_SIZES[k]] != DTYPES[k].itemsize})
    if bad:
        raise ImportError(f"kftools.backtest._core disagrees with the declarations: {bad}")


if _core is not None:
    _check_build()
    #: why Core_lockstep returned: all frames run / a long wait, for Python's back-off (the other reasons Python
    #: finds out for itself)
    LOCKSTEP_DONE, LOCKSTEP_WAIT = _core.constants()["LS_DONE"], _core.constants()["LS_WAIT"]


def account_from(state: tuple) -> Account:
    """An :class:`Account` holding what ``Core.account()`` returned."""
    start, cash, fees, rows = state
    acc = Account(start)
    acc.cash, acc.fees = cash, fees
    for s, qty, avg, realized, volume, turnover in rows:
        acc.qty[s], acc.avg[s], acc.realized[s], acc.volume[s], acc.turnover[s] = qty, avg, realized, volume, turnover
    return acc


class _Book:
    """A symbol's book as the C exchange holds it (read-only)."""

    __slots__ = ("bid", "ask", "last", "last_size", "bids", "asks")

    def __init__(self, state: tuple):
        self.bid, self.ask, self.last, self.last_size, bids, asks = state
        self.bids = None if bids is None else dict(bids)
        self.asks = None if asks is None else dict(asks)

    @property
    def mark(self) -> float:
        if self.bid > 0 and self.ask > 0:
            return (self.bid + self.ask) / 2
        return self.last


class _Books:
    """symbol -> book, for code that asks the exchange ``symbol in books`` (the gateway's checks)."""

    def __init__(self, core):
        self._core = core

    def __contains__(self, symbol: object) -> bool:
        return isinstance(symbol, str) and self._core.book(symbol) is not None

    def get(self, symbol: str, default=None):
        st = self._core.book(symbol) if isinstance(symbol, str) else None
        return default if st is None else _Book(st)

    def __getitem__(self, symbol: str) -> _Book:
        b = self.get(symbol)
        if b is None:
            raise KeyError(symbol)
        return b

    def items(self):
        return [(s, self[s]) for s in self._core.marks()]


class CoreExchange:
    """The exchange's state as the rest of kftools reads it: config, books, account, records."""

    def __init__(self, bt: CoreBacktest, config: ExchangeConfig):
        self._bt = bt
        self.config = config
        self.latency = config.latency_ns
        self.response_latency = config.response_latency_ns
        self.books = _Books(bt.core)

    @property
    def account(self) -> Account:
        return account_from(self._bt.core.account(False))

    @property
    def no_quote_fills(self) -> int:
        return self._bt.core.state()["no_quote_fills"]

    @property
    def working(self) -> bool:
        return bool(self._bt.core.state()["working"])

    @property
    def updates(self) -> list[OrderUpdate]:
        return self._bt.updates_since(0)

    @property
    def orders(self) -> dict[int, SimOrder]:
        """order id -> the order as the exchange knows it now (a copy, in the order sent)."""
        rec = self._bt.records()
        out = {}
        for row, coid in zip(rec.orders.tolist(), rec.client_order_ids, strict=True):
            oid, sent, arrival, s, side, otype, status, reason, _p, price, qty, filled, notional, fee = row
            o = SimOrder(oid, rec.symbols[s], side, otype, price, qty, sent, arrival, coid)
            o.status, o.reject_reason, o.filled, o.notional, o.fee = status, reason, filled, notional, fee
            out[oid] = o
        return out

    @property
    def fills(self) -> list[Fill]:
        return self._bt.fills_since(0)


class CoreContext(BacktestContext):
    """The strategy's ``ctx`` on the C engine: the same API as :class:`BacktestContext`."""

    def __init__(self, engine: CoreBacktest, orders: Writer | None):  # noqa: D107 - the base's fields, from C
        core = engine.core
        self._engine = engine
        self._core = core
        self._orders = orders
        self.orders_path = orders.path if orders is not None else None
        self.frame: Any = None
        self._timers = 0
        self.summary: dict | None = None
        self.orders = core.views()  # type: ignore[assignment]
        if orders is None:  # nothing to journal: the strategy calls C directly
            self.send_order = core.send_order  # type: ignore[method-assign]
            self.cancel = core.cancel  # type: ignore[method-assign]
            self.modify = core.modify  # type: ignore[method-assign]
        self.position = core.position  # type: ignore[method-assign]
        self.avg_price = core.avg_price  # type: ignore[method-assign]
        self.open_orders = core.open_orders  # type: ignore[method-assign]

    @property  # type: ignore[override,misc]
    def orders_sent(self) -> int:
        return self._core.orders_sent

    @orders_sent.setter
    def orders_sent(self, n: int) -> None:
        self._core.orders_sent = n

    @property  # type: ignore[override,misc]
    def account(self) -> Account:  # type: ignore[override]
        return account_from(self._core.account(True))

    def now(self) -> int:
        return self._core.time

    def quote(self, symbol: str) -> tuple[float, float, float]:
        st = self._core.book(symbol) if isinstance(symbol, str) else None
        return (NAN, NAN, NAN) if st is None else (st[0], st[1], st[2])

    def depth(self, symbol: str) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        st = self._core.book(symbol) if isinstance(symbol, str) else None
        if st is None or st[4] is None:
            return [], []
        return st[4], st[5]

    def send_order(self, symbol: str, side: int, price: float = 0.0, quantity: float = 0.0, *,  # type: ignore[override]
                   order_type: int = OrderType.LIMIT, client_order_id: str = "") -> int:
        oid = self._core.send_order(symbol, side, price, quantity, order_type=order_type,
                                    client_order_id=client_order_id)
        v = self.orders[oid]
        assert self._orders is not None
        self._orders.write_order(symbol, oid, v.side, v.order_type, v.price, v.quantity, 0.0,
                                 client_order_id or f"bt-{oid}", trigger_time=self._core.time)
        return oid

    def cancel(self, order_id: int) -> None:  # type: ignore[override]
        self._core.cancel(order_id)
        v = self.orders[order_id]
        assert self._orders is not None
        self._orders.write(int(MsgType.CANCEL_REQUEST), symbol=v.symbol, order_id=order_id,
                           trigger_time=self._core.time)

    def modify(self, order_id: int, price: float | None = None, quantity: float | None = None) -> None:  # type: ignore[override]
        v = self.orders.get(order_id) if isinstance(order_id, int) else None
        self._core.modify(order_id, price, quantity)
        assert self._orders is not None and v is not None
        self._orders.write(int(MsgType.MODIFY_REQUEST), symbol=v.symbol, order_id=order_id,
                           price=float(v.price if price is None else price),
                           quantity=float(v.quantity if quantity is None else quantity), trigger_time=self._core.time)


class CoreBacktest(StrategyCalls):
    """One backtest on the C engine (the twin's interface: ``frames``, ``step_until``, ``finish``, ...)."""

    def __init__(self, strategy: object, config: ExchangeConfig, *, orders: Writer | None = None,
                 output: Writer | None = None, clock=None, bar_ns: int = 1_000_000_000):
        assert _core is not None
        self.strategy = strategy
        self.path = strategy_file(strategy)
        model = parse_fill_model(config.fill_model)
        f = config.fees
        self.bar_ns = max(1, int(bar_ns))
        self.core = _core.Core(_MODELS[type(model)], getattr(model, "n", 0.0), config.latency_ns,
                               config.response_latency_ns, f.maker_bps, f.taker_bps, f.per_order, config.cap_volume,
                               config.cash, self.bar_ns, DEPTH_LEVELS, OrderUpdate, Fill, TickerFrame, UsageError,
                               STATUS_NAMES)
        self.exchange = CoreExchange(self, config)
        self.ctx = CoreContext(self, orders)
        self.output = output
        self.clock = clock
        self._on_frame = getattr(strategy, "on_frame", None)
        callbacks = [self._strategy_callback(mt) for mt in range(_core.constants()["callbacks"])]
        self.core.set_strategy(self.ctx, getattr(strategy, "on_order_update", None),
                               getattr(strategy, "on_fill", None), getattr(strategy, "on_timer", None), callbacks,
                               self._on_frame)
        self._symbols = _Symbols()
        self._cache: tuple | None = None
        self._written = (0, 0)
        self._records: Records | None = None

    # -- the twin's attributes ---------------------------------------------------------------
    @property
    def sink(self) -> Callable[[str, tuple], None] | None:
        return self.core.sink

    @sink.setter
    def sink(self, fn: Callable[[str, tuple], None] | None) -> None:
        self.core.sink = fn

    @property
    def time(self) -> int:
        return self.core.time

    @property
    def market_time(self) -> int | None:
        return self.core.market_time

    @property
    def first_time(self) -> int | None:
        return self.core.state()["first_time"]

    @property
    def frames_seen(self) -> int:
        return self.core.frames_seen

    @property
    def timers_fired(self) -> int:
        return self.core.state()["timers_fired"]

    @property
    def timers_dropped(self) -> int:
        return self.core.state()["timers_dropped"]

    @property
    def busy(self) -> bool:
        return self.core.busy

    def marks(self) -> dict[str, float]:
        return self.core.marks()

    # -- requests (the gateway) ----------------------------------------------------------------
    def submit(self, o) -> None:
        """A new order (a SimOrder), sent at ``o.sent_time``: it arrives at ``o.arrival_time``."""
        self.core.submit(o.order_id, o.symbol, o.side, o.order_type, o.price, o.quantity, o.sent_time,
                         o.arrival_time, o.client_order_id)

    def request_cancel(self, order_id: int, sent: int) -> None:
        self.core.request_cancel(order_id, sent)

    def request_modify(self, order_id: int, price: float, quantity: float, sent: int) -> None:
        self.core.request_modify(order_id, price, quantity, sent)

    def schedule_timer(self, timer_id: int, due: int, data: Any = None) -> None:
        self.core.schedule_timer(due, Timer(timer_id, due, data))

    # -- the loop ------------------------------------------------------------------------------
    def frames(self, batch: FrameBatch | MergedBatch, i: int, j: int, wall: int) -> None:
        """Frames ``i..j-1`` of ``batch`` were just emitted (at wall-clock ``wall``)."""
        cols = self._columns(batch)
        try:
            self.core.frames(*cols[:13], len(batch), i, j, wall, self._builder(batch, wall))
        except STRATEGY_FAILURES as e:
            self._failed(e)
        if self.output is not None:
            self._write_answers(wall)

    def lockstep(self, batch: FrameBatch | MergedBatch, k: int, j: int, *args) -> tuple:
        """The out-of-process gateway's hot loop over frames ``k..j-1`` of ``batch`` (``_core.c``'s
        Core_lockstep, which names ``args``); the gateway's own columns of the batch are made here."""
        cols = self._columns(batch)
        times, base, data, starts, *rest = args
        return self.core.lockstep(cols[:13], len(batch), self._builder(batch, 0), times, base, data, starts, k, j,
                                  *rest)

    def _builder(self, batch, wall: int) -> Callable[[int, int], Any]:
        """Builds a frame other than a Ticker for a callback (the twin's code: such callbacks are rarer)."""
        cols = self._cache
        assert cols is not None
        c: _Columns = cols[13]

        def build(k: int, mt: int):
            c.lists()
            return ReferenceBacktest._frame(self, batch, c, k, mt, wall)  # type: ignore[arg-type]

        return build

    def _columns(self, batch: FrameBatch | MergedBatch) -> tuple:
        """The batch as the C loop reads it: (msg_type, role, gen_time, symbol bytes, last, bid, ask, volume,
        side, source, dest, book row per frame, books, the twin's columns, the batch)."""
        if self._cache is not None and self._cache[14] is batch:
            return self._cache
        c = _Columns(batch, self._symbols)
        h = batch.headers
        n = len(batch)
        sym = np.ascontiguousarray(c.sym_a)
        width = sym.dtype.itemsize if n else 16
        books = dpos = None
        if c.depth_a.any():
            books = np.ascontiguousarray(c.books.reshape(len(c.books), -1), np.float64)
            dpos = np.ascontiguousarray(c.depth_pos, np.int64)
        f64 = np.float64
        cols = (np.ascontiguousarray(h["msg_type"], np.uint32), np.ascontiguousarray(c.role_a, np.int32),
                np.ascontiguousarray(h["gen_time"], np.int64),
                sym.view(np.uint8).reshape(n, width) if n else np.zeros((0, 16), np.uint8),
                np.ascontiguousarray(c.last_a, f64), np.ascontiguousarray(c.bid_a, f64),
                np.ascontiguousarray(c.ask_a, f64), np.ascontiguousarray(c.vol_a, f64),
                np.ascontiguousarray(c.side_a, np.int64), np.ascontiguousarray(h["source"], np.uint32),
                np.ascontiguousarray(h["dest"], np.uint32), dpos, books, c, batch)
        self._cache = cols
        return cols

    def step_until(self, t: int | None) -> bool:
        """Queued events before ``t`` (all if None) up to and including the first that reaches the strategy;
        False when nothing before ``t`` was left (the twin's rule)."""
        core = self.core
        top = core.queue_top
        if top is None or (t is not None and top >= t):
            return False
        mt = core.market_time
        end = mt if mt is not None else core.time
        try:
            core.run_until(t, end if t is None else None, True)
        except STRATEGY_FAILURES as e:
            self._failed(e)
        return True

    def finish(self) -> None:
        """End of the recording: :meth:`drain`, then the last equity sample."""
        self.drain()
        self.close()

    def drain(self) -> None:
        """Every event still queued: requests in flight are handled against the last book and their answers
        reach the strategy; timers due after the last market frame never fire."""
        core = self.core
        mt = core.market_time
        try:
            core.run_until(None, mt if mt is not None else core.time, False)
        except STRATEGY_FAILURES as e:
            self._failed(e)

    def close(self) -> None:
        """The answers into the output journal, and the last equity sample."""
        if self.output is not None:
            self._write_answers(self.clock.wall() if self.clock is not None else 0)
        self.core.sample(self.core.time, True)

    # -- records --------------------------------------------------------------------------------
    def updates_since(self, start: int) -> list[OrderUpdate]:
        rows = np.frombuffer(self.core.records("updates", start), DTYPES["updates"])
        names = [*self.core.symbols(), ""]
        new = tuple.__new__
        return [new(OrderUpdate, (r[0], r[1], names[r[2]], *r[3:7], *r[8:])) for r in rows.tolist()]

    def fills_since(self, start: int) -> list[Fill]:
        rows = np.frombuffer(self.core.records("fills", start), DTYPES["fills"])
        names = self.core.symbols()
        new = tuple.__new__
        return [new(Fill, (t, fid, oid, names[s], side, liq, px, q, fee, flags))
                for t, fid, oid, s, side, liq, flags, px, q, fee in rows.tolist()]

    def records(self) -> Records:
        """Everything recorded so far (cached once the backtest is over)."""
        if self._records is not None:
            return self._records
        core = self.core

        def arr(name: str) -> np.ndarray:
            return np.frombuffer(core.records(name), DTYPES[name])

        return Records(core.symbols(), arr("orders"), core.client_order_ids(), arr("updates"), arr("fills"),
                       arr("samples"), arr("positions"), arr("cancels"), arr("modifies"))

    @property
    def equity(self) -> list[tuple]:
        """The twin's equity rows: (time, equity, cash, realized, unrealized, fees, {symbol: qty}, is_bar)."""
        rec = self.records()
        pos = rec.positions.tolist()
        out = []
        for t, e, cash, real, unreal, fees, start, n, bar in rec.samples.tolist():
            out.append((t, e, cash, real, unreal, fees, {rec.symbols[s]: q for s, _p, q in pos[start:start + n]},
                        bool(bar)))
        return out

    def _write_answers(self, wall: int) -> None:
        nu, nf = self._written
        w = self.output
        assert w is not None
        st = self.core.state()
        if st["updates"] == nu and st["fills"] == nf:
            return
        for u in self.updates_since(nu):
            w.write(int(MsgType.ORDER_UPDATE), pack_update(u), gen_time=wall, trigger_time=u.time)
        for f in self.fills_since(nf):
            w.write(int(MsgType.FILL), pack_fill(f), gen_time=wall, trigger_time=f.time)
        self._written = (st["updates"], st["fills"])


def records_of(bt: Any) -> Records:
    """The records of either engine."""
    return bt.records() if isinstance(bt, CoreBacktest) else from_reference(bt)


def _choose() -> type:
    want = os.environ.get("KFTOOLS_BACKTEST", "").strip().lower()
    if want == "python" or _core is None:
        return ReferenceBacktest
    return CoreBacktest


#: the engine backtests run on: C when built (KFTOOLS_BACKTEST=python: the Python twin)
Backtest: Any = _choose()
AnyBacktest = CoreBacktest | ReferenceBacktest
__all__ = ["Backtest", "CoreBacktest", "ReferenceBacktest", "AnyBacktest", "CALLBACKS", "records_of"]
