"""The in-process backtest: drives the simulated exchange over the replayed batches and calls the strategy.

The replay calls :meth:`Backtest.frames` after each chunk it emits. When no
order is working, no answer is on its way, the strategy holds nothing and has
no per-frame callback, a chunk costs a few numpy operations (the books learn
the last quote of each symbol); otherwise a Python loop visits its frames, and
the strategy is called only for the frame types it has callbacks for.

Everything runs on the recording's clock (the frames' original ``gen_time``):
``--max`` and a paced run make the same decisions, byte for byte.
"""

from __future__ import annotations

import collections
import inspect
import math
import os
import traceback
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from ..errors import StrategyError, UsageError
from ..journal.format import FILL, ORDER_UPDATE, TICKER, TRADE, MsgType, OrderStatus, OrderType, Side
from ..journal.merge import MergedBatch
from ..journal.reader import Frame, FrameBatch
from ..journal.writer import Writer
from .exchange import FILL_FIELDS, NAN, UPDATE_FIELDS, Account, Book, ExchangeConfig, SimExchange, SimOrder

_TICK = int(MsgType.TICKER)
_TRADE = int(MsgType.TRADE)
_ORDER = int(MsgType.ORDER)


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


class OrderUpdate(NamedTuple):
    """What ``on_order_update`` receives: ``time`` is the simulated exchange time, ``status`` an OrderStatus."""

    time: int
    order_id: int
    symbol: str
    status: int
    reject_reason: int
    side: int
    order_type: int
    price: float
    quantity: float
    filled_quantity: float
    remaining_quantity: float
    avg_price: float


class Fill(NamedTuple):
    """What ``on_fill`` receives: ``time`` is the simulated fill time, ``liquidity`` a Liquidity."""

    time: int
    fill_id: int
    order_id: int
    symbol: str
    side: int
    liquidity: int
    price: float
    quantity: float
    fee: float
    flags: int


assert OrderUpdate._fields == UPDATE_FIELDS and Fill._fields == FILL_FIELDS

CALLBACKS = {_TICK: "on_ticker", _ORDER: "on_order", _TRADE: "on_trade"}


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
        self.status = "pending"  # pending, accepted, partially_filled, filled, canceled, rejected

    @property
    def remaining_quantity(self) -> float:
        return self.quantity - self.filled_quantity if self.is_open else 0.0

    @property
    def is_open(self) -> bool:
        return self.status in ("pending", "accepted", "partially_filled")

    def __repr__(self) -> str:
        side = "buy" if self.side == Side.BUY else "sell"
        return f"<OrderView {self.order_id} {self.symbol} {side} {self.quantity!r} @ {self.price!r} {self.status}>"


class BacktestContext:
    """What a backtest strategy's callbacks receive as ``ctx``.

    Orders: ``send_order`` (limit or market), ``cancel``, ``open_orders``, ``orders``.
    The account as the strategy knows it (fills delivered after the response
    latency): ``position``, ``avg_price``, ``cash``, ``realized_pnl``,
    ``unrealized_pnl``, ``pnl``, ``fees``. ``now()`` is the simulated time
    (the recording's clock), ``frame`` the frame being handled.
    """

    def __init__(self, engine: Backtest, orders: Writer | None):
        self._engine = engine
        self._orders = orders
        self.orders_path = orders.path if orders is not None else None
        self.frame: Any = None
        self.orders_sent = 0
        self.orders: dict[int, OrderView] = {}
        self.account = Account(engine.exchange.config.cash)
        self._qty = self.account.qty
        self.summary: dict | None = None

    # -- time and market -------------------------------------------------------------------
    def now(self) -> int:
        """Simulated time, ns: the recording time of the frame being handled."""
        return self._engine.time

    def quote(self, symbol: str) -> tuple[float, float, float]:
        """(bid, ask, last) of ``symbol`` as of now (NaN where the recording had none)."""
        b = self._engine.exchange.books.get(symbol)
        return (NAN, NAN, NAN) if b is None else (b.bid, b.ask, b.last)

    # -- orders -------------------------------------------------------------------------------
    def send_order(
        self, symbol: str, side: int, price: float = 0.0, quantity: float = 0.0, *, order_type: int = OrderType.LIMIT,
        client_order_id: str = "",
    ) -> int:
        """Send a limit (or ``order_type=MARKET``) order; returns its order_id (1, 2, ...).

        It reaches the exchange ``--latency`` after the frame being handled.
        """
        eng = self._engine
        if side not in (Side.BUY, Side.SELL):
            raise UsageError(f"send_order: side must be Side.BUY or Side.SELL, not {side!r}")
        if order_type not in (OrderType.LIMIT, OrderType.MARKET):
            raise UsageError(f"send_order: order_type must be OrderType.LIMIT or MARKET, not {order_type!r}")
        try:
            quantity = float(quantity)
            price = float(price)
        except (TypeError, ValueError):
            raise UsageError(f"send_order: price and quantity must be numbers, not {price!r} and {quantity!r}") from None
        if not (quantity > 0 and math.isfinite(quantity)):
            raise UsageError(f"send_order: quantity must be a positive number, not {quantity!r}")
        if order_type == OrderType.LIMIT and not (price > 0 and math.isfinite(price)):
            raise UsageError(f"send_order: a limit order needs a positive price, not {price!r}")
        if not isinstance(symbol, str) or symbol not in eng.exchange.books:
            raise UsageError(f"send_order: unknown symbol {symbol!r} (no market data for it in the recording so far)")
        if order_type == OrderType.MARKET:
            price = 0.0
        self.orders_sent += 1
        oid = self.orders_sent
        t = eng.time
        coid = client_order_id or f"bt-{oid}"
        if self._orders is not None:
            self._orders.write_order(symbol, oid, int(side), int(order_type), price, quantity, 0.0, coid,
                                     trigger_time=t)
        o = SimOrder(oid, symbol, int(side), int(order_type), price, quantity, t, t + eng.exchange.latency, eng.seq,
                     coid)
        eng.exchange.submit(o)
        self.orders[oid] = OrderView(oid, symbol, int(side), int(order_type), price, quantity)
        return oid

    def cancel(self, order_id: int) -> None:
        """Ask the exchange to cancel ``order_id``; the answer comes as an order update."""
        if order_id not in self.orders:
            raise UsageError(f"cancel: unknown order id {order_id!r} (this strategy sent orders 1..{self.orders_sent})")
        eng = self._engine
        v = self.orders[order_id]
        if self._orders is not None:
            self._orders.write(int(MsgType.CANCEL_REQUEST), symbol=v.symbol, order_id=order_id, trigger_time=eng.time)
        eng.exchange.cancel(order_id, eng.time, eng.seq)

    def open_orders(self, symbol: str | None = None) -> list[OrderView]:
        """Orders not known (to the strategy) to be filled, canceled or rejected."""
        return [v for v in self.orders.values() if v.is_open and (symbol is None or v.symbol == symbol)]

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


class Backtest:
    """The replay's dispatcher when a strategy runs: market frames to the exchange and the strategy,
    orders to the exchange, answers back to the strategy (and into the output journal)."""

    def __init__(self, strategy: object, config: ExchangeConfig, *, orders: Writer | None = None,
                 output: Writer | None = None, clock=None, bar_ns: int = 1_000_000_000):
        self.strategy = strategy
        self.path = strategy_file(strategy)
        self.exchange = SimExchange(config)
        self.ctx = BacktestContext(self, orders)
        self.output = output
        self.clock = clock
        self.time = 0
        self.seq = 0
        self.bar_ns = max(1, int(bar_ns))
        self._next_bar = _NEVER_SAMPLED
        self._cache: _Columns | None = None
        self.equity: list[tuple] = []  # (time, equity, cash, realized, unrealized, fees, {symbol: qty}, is_bar)
        self.first_time: int | None = None
        self.frames_seen = 0
        self._symbols = _Symbols()
        self._cb: dict[int, Callable | None] = {}
        self._on_frame = getattr(strategy, "on_frame", None)
        self._on_update = getattr(strategy, "on_order_update", None)
        self._on_fill = getattr(strategy, "on_fill", None)
        self._market_cb = any(getattr(strategy, n, None) for n in ("on_ticker", "on_trade", "on_order", "on_frame"))
        self._written = (0, 0)  # updates, fills already written to the output journal
        #: called with ("update"|"fill", row) for each answer as it reaches the strategy (the gateway publishes it)
        self.sink: Callable[[str, tuple], None] | None = None

    # -- strategy calls ------------------------------------------------------------------------
    def call(self, name: str) -> None:
        fn = getattr(self.strategy, name, None)
        if fn is not None:
            self._guard(fn, self.ctx)

    def _guard(self, fn, *args) -> None:
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - user code: stop the replay, say where
            self._failed(e)

    def _failed(self, e: Exception) -> None:
        """An exception while the strategy ran: one StrategyError naming its callback, file and line."""
        tb = traceback.extract_tb(e.__traceback__)
        mine = [fr for fr in tb if os.path.abspath(fr.filename) == os.path.abspath(self.path)]
        if not mine:
            raise e  # not raised under the strategy's code: a kftools bug, keep its traceback
        raise StrategyError(f"strategy {type(self.strategy).__name__}.{mine[0].name} failed: "
                            f"{where(e, self.path)}") from None

    def _callback(self, mt: int) -> Callable | None:
        fn = self._cb.get(mt, False)
        if fn is False:
            name = CALLBACKS.get(mt)
            fn = (getattr(self.strategy, name, None) if name else None) or self._on_frame
            self._cb[mt] = fn
        return fn  # type: ignore[return-value]

    # -- the loop ---------------------------------------------------------------------------------
    def frames(self, batch: FrameBatch | MergedBatch, i: int, j: int, wall: int) -> None:
        """Frames ``i..j-1`` of ``batch`` were just emitted (at wall-clock ``wall``)."""
        c = self._columns(batch)
        ex = self.exchange
        if not self._market_cb and not ex.busy and not self._holding():
            self._skip(c, i, j)
            return
        c.lists()
        mts, gens, syms, last, bid, ask, vol, src, dst = c.mt, c.gen, c.sym, c.last, c.bid, c.ask, c.vol, c.src, c.dst
        books, working, aggressive, last_size = ex.books, ex.open, ex.aggressive, ex._last_size
        fills, outbox, pending = ex.fills, ex.outbox, ex.pending
        cb, ctx, new = self._cb, self.ctx, tuple.__new__
        try:
            for k in range(i, j):
                self.seq = seq = self.seq + 1
                t = gens[k]
                if t > self.time:
                    self.time = t
                t = self.time  # out-of-order gen_times never move the simulated clock back
                if t >= self._next_bar:
                    self._bar(t)
                mt = mts[k]
                if mt == _TICK or mt == _TRADE:
                    s = syms[k]
                    if (pending and pending[0][0] <= t) or s in working or s in aggressive:
                        nf = len(fills)
                        ex.on_market(seq, t, s, last[k], bid[k], ask[k], vol[k])
                        if len(fills) != nf:
                            self._sample(t)
                    else:  # nothing of ours can trade here: only the book learns (as on_market would)
                        b = books.get(s)
                        if b is None:
                            b = books[s] = Book()
                        px = last[k]
                        if bid[k] == bid[k]:
                            b.bid = bid[k]
                            b.ask = ask[k]
                        if px > 0:
                            b.last = px
                            if vol[k] > 0:
                                last_size[s] = vol[k]
                elif pending:
                    nf = len(fills)
                    ex.on_time(seq, t)
                    if len(fills) != nf:
                        self._sample(t)
                if outbox:
                    self._deliver(t)
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
        except Exception as e:  # noqa: BLE001 - user code: stop the replay, say where
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
        """No order, no position, no callback: the books learn the latest quotes and trades, bars pass."""
        self.seq += j - i
        self.frames_seen += j - i
        if j <= i:
            return
        times = np.maximum.accumulate(np.maximum(c.gen_a[i:j], self.time))
        if int(times[-1]) >= self._next_bar:
            # the bar boundaries the per-frame loop would have crossed, in order (equity is constant here)
            bars = np.unique(times[times >= self._next_bar] // self.bar_ns)
            for b in bars.tolist():
                self._bar(b * self.bar_ns)
        self.time = int(times[-1])
        ex = self.exchange
        for kind in ("quote", "trade"):
            sel = c.tick_a[i:j] if kind == "quote" else c.traded_a[i:j]
            idx = np.flatnonzero(sel)
            if not len(idx):
                continue
            for k in _last_per_symbol(c.sym_a[i:j][idx]).tolist():
                k = i + int(idx[k])
                s = self._symbols[bytes(c.sym_a[k])]
                b = ex.books.get(s)
                if b is None:
                    b = ex.books[s] = Book()
                if kind == "quote":
                    b.bid, b.ask = float(c.bid_a[k]), float(c.ask_a[k])
                else:
                    b.last = float(c.last_a[k])
                    ex._last_size[s] = float(c.vol_a[k])

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
            p, tid, oid, side = c.trade_rows()
            q = p[k]
            return TradeFrame(c.sym[k], tid[q], oid[q], side[q], 0, c.last[k], c.vol[k], wall, c.gen[k], src, dst)
        page = batch.page if isinstance(batch, FrameBatch) else batch.row_pages()[k]  # merged: each row's own page
        return Frame(page, (int(batch.offsets[k]), int(batch.headers["length"][k]), mt, wall, c.gen[k], src, dst))

    # -- answers --------------------------------------------------------------------------------
    def _deliver(self, t: int | None) -> None:
        """Hand the strategy the answers whose response latency has passed by ``t`` (all if None)."""
        box = self.exchange.outbox
        n = 0
        while n < len(box) and (t is None or box[n][0] <= t):
            n += 1
        if not n:
            return
        due = box[:n]
        del box[:n]
        ctx = self.ctx
        sink = self.sink
        for _when, kind, row in due:
            if sink is not None:
                sink(kind, row)
            if kind == "fill":
                f = Fill(*row)
                ctx.account.apply(f.symbol, f.side, f.price, f.quantity, f.fee)
                if self._on_fill is not None:
                    self._guard(self._on_fill, ctx, f)
            else:
                u = OrderUpdate(*row)
                v = ctx.orders.get(u.order_id)
                if v is not None and u.status != OrderStatus.CANCEL_REJECTED:
                    v.status = OrderStatus(u.status).name.lower()
                    v.filled_quantity = u.filled_quantity
                    v.avg_price = u.avg_price
                if self._on_update is not None:
                    self._guard(self._on_update, ctx, u)

    def _write_answers(self, wall: int) -> None:
        ex = self.exchange
        nu, nf = self._written
        w = self.output
        assert w is not None
        for row in ex.updates[nu:]:
            w.write(int(MsgType.ORDER_UPDATE), pack_update(row), gen_time=wall, trigger_time=row[0])
        for row in ex.fills[nf:]:
            w.write(int(MsgType.FILL), pack_fill(row), gen_time=wall, trigger_time=row[0])
        self._written = (len(ex.updates), len(ex.fills))

    # -- equity ----------------------------------------------------------------------------------
    def marks(self) -> dict[str, float]:
        return {s: b.mark for s, b in self.exchange.books.items()}

    def _sample(self, t: int, bar: bool = False) -> None:
        acc = self.exchange.account
        marks = self.marks()
        unreal = acc.unrealized(marks)
        self.equity.append((t, acc.equity(marks), acc.cash, sum(acc.realized.values()), unreal, acc.fees,
                            dict(acc.qty), bar))

    def finish(self) -> None:
        """End of the recording: answers still on their way reach the strategy; a last equity sample."""
        self._deliver(None)
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
    """One batch decoded once: header and market columns as lists (the loop) and arrays (the skip)."""

    def __init__(self, batch: FrameBatch | MergedBatch, symbols: _Symbols):
        self.batch = batch
        h = batch.headers
        mt = h["msg_type"]
        n = len(batch)
        last = np.full(n, np.nan)
        bid = np.full(n, np.nan)
        ask = np.full(n, np.nan)
        vol = np.full(n, np.nan)
        tick = mt == _TICK
        trade = mt == _TRADE
        # (no mask argument: a merged batch of several journals takes none, and the type is the mask)
        self.tp = batch.payload(_TICK) if tick.any() else None
        self.rp = batch.payload(_TRADE) if trade.any() else None
        if self.tp is not None:
            last[tick] = self.tp["last_price"]
            bid[tick] = self.tp["bid_price"]
            ask[tick] = self.tp["ask_price"]
            vol[tick] = self.tp["volume"]
        if self.rp is not None:
            last[trade] = self.rp["price"]
            vol[trade] = self.rp["volume"]
        self.trade_a = trade
        self.tick_a = tick
        self.traded_a = (tick | trade) & (last > 0) & (vol > 0)
        self.gen_a = h["gen_time"]
        self.sym_a = batch.symbols()
        self.last_a, self.bid_a, self.ask_a, self.vol_a = last, bid, ask, vol
        self._symbols = symbols
        self._lists = False
        self._trade_rows: tuple | None = None

    def lists(self) -> _Columns:
        """Python lists of the columns, for the per-frame loop (the skip path needs none)."""
        if not self._lists:
            self.mt = self.batch.headers["msg_type"].tolist()
            self.gen = self.gen_a.tolist()
            symbols = self._symbols
            self.sym = [symbols[b] for b in self.sym_a.tolist()]
            self.last, self.bid, self.ask = self.last_a.tolist(), self.bid_a.tolist(), self.ask_a.tolist()
            self.vol = self.vol_a.tolist()
            h = self.batch.headers
            self.src, self.dst = h["source"].tolist(), h["dest"].tolist()
            self._lists = True
        return self

    def trade_rows(self) -> tuple:
        """(position among the trades by frame, trade_id, order_id, side) for building Trade frames."""
        if self._trade_rows is None:
            rp = self.rp
            assert rp is not None
            self._trade_rows = ((np.cumsum(self.trade_a) - 1).tolist(), rp["trade_id"].tolist(),
                                rp["order_id"].tolist(), rp["side"].tolist())
        return self._trade_rows


_NEVER_SAMPLED = -(1 << 62)
_UNSET = object()
