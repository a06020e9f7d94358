"""The simulated exchange: order requests in, order updates and fills out, at the time each event happens.

No UI, no I/O, no clock of its own. The backtest engine (``engine.py``) calls
it in one time order (docs/backtest.md, "The clock"): market events as the
recording has them (``on_ticker``, ``on_trade``, ``on_depth``), and requests
when they *arrive* (``arrive``), each against the book in force at that time.
Every decision is recorded (``orders``, ``updates``, ``fills``) for the result
folder, and every answer is put in ``outbox`` for the engine to deliver after
the response latency.

What fills a resting order is a :class:`FillModel` chosen once: ``touch``,
``through``, ``queue`` (hftbacktest's risk-averse queue) or ``prob[:n]``
(hftbacktest's power probability queue). Queues are measured from displayed
sizes where the recording has depth (Depth frames), and estimated from the
last print's size where it has only top of book (Ticker frames).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

from ..journal.format import FILL, ORDER_UPDATE, FillFlag, Liquidity, OrderStatus, OrderType, RejectReason, Side

NAN = float("nan")
_INF = float("inf")
BUY, SELL = int(Side.BUY), int(Side.SELL)
UNKNOWN_SIDE = -1  # a print whose aggressor the recording does not say (a Ticker's last trade)
_LIMIT, _MARKET, _IOC, _FOK, _POST = (int(OrderType.LIMIT), int(OrderType.MARKET), int(OrderType.LIMIT_IOC),
                                      int(OrderType.LIMIT_FOK), int(OrderType.POST_ONLY))
_PENDING = -1  # an order sent and not arrived yet
_ACCEPTED, _PARTIAL, _FILLED, _CANCELED, _REJECTED, _EXPIRED, _MODIFIED = (
    int(OrderStatus.ACCEPTED), int(OrderStatus.PARTIALLY_FILLED), int(OrderStatus.FILLED), int(OrderStatus.CANCELED),
    int(OrderStatus.REJECTED), int(OrderStatus.EXPIRED), int(OrderStatus.MODIFIED))
_MAKER, _TAKER = int(Liquidity.MAKER), int(Liquidity.TAKER)
_OPEN = frozenset((_PENDING, int(OrderStatus.ACCEPTED), int(OrderStatus.PARTIALLY_FILLED),
                   int(OrderStatus.MODIFIED)))
_DONE = frozenset((int(OrderStatus.FILLED), int(OrderStatus.CANCELED), int(OrderStatus.REJECTED),
                   int(OrderStatus.EXPIRED)))


# -- the records an exchange produces (named; still tuples, so a row packs and compares cheaply) ------------------
class OrderUpdate(NamedTuple):
    """An answer about one order: ``time`` is the simulated exchange time, ``status`` an OrderStatus."""

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
    """One execution: ``time`` is the simulated fill time, ``liquidity`` a Liquidity."""

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


# The rows' fields: the simulated time, the ids and symbol, then the layout's other fields in its order
# (declared once, in journal/format.py; a Fill's reserved field is not part of the row).
UPDATE_FIELDS = ("time", "order_id", "symbol", *(n for n in ORDER_UPDATE.names if n not in ("symbol", "order_id")))
FILL_FIELDS = ("time", "fill_id", "order_id", "symbol",
               *(n for n in FILL.names if n not in ("symbol", "fill_id", "order_id", "reserved")))
assert OrderUpdate._fields == UPDATE_FIELDS and Fill._fields == FILL_FIELDS


def status_name(status: int) -> str:
    """``accepted``, ``filled``, ... (``pending`` before the order arrived)."""
    return "pending" if status == _PENDING else OrderStatus(status).name.lower()


@dataclass(frozen=True)
class Fees:
    """Maker and taker rates in basis points of the notional, plus a fixed fee per order (at its first fill)."""

    maker_bps: float = 0.0
    taker_bps: float = 0.0
    per_order: float = 0.0

    def to_dict(self) -> dict:
        return {"maker_bps": self.maker_bps, "taker_bps": self.taker_bps, "per_order": self.per_order}


# -- fill models ---------------------------------------------------------------------------------------------
class FillModel:
    """What fills a resting order when a print happens at its limit price (``at_limit``), and how its queue
    position starts and moves. Prints through the limit, and the opposite quote reaching the limit, fill every
    model's orders entirely (docs/backtest.md)."""

    name = ""

    def new_order(self, o: SimOrder, book: Book) -> None:
        """Set ``o.queue``: the displayed size ahead of a new resting order."""
        o.queue = 0.0

    def at_limit(self, o: SimOrder, volume: float) -> float:
        """A print of ``volume`` at ``o``'s limit on the side that fills it: the quantity it may fill."""
        raise NotImplementedError

    def depth(self, o: SimOrder, prev_qty: float, new_qty: float) -> None:
        """The displayed size at ``o``'s price and side changed from ``prev_qty`` to ``new_qty``."""


class Touch(FillModel):
    """A print at the limit fills up to its volume: as if first in the queue (the most optimistic)."""

    name = "touch"

    def at_limit(self, o, volume):
        return volume


class Through(FillModel):
    """A print at the limit never fills: only the market trading through the price proves a fill."""

    name = "through"

    def at_limit(self, o, volume):
        return 0.0


class RiskAverseQueue(FillModel):
    """hftbacktest's RiskAdverseQueueModel: the queue ahead is the displayed size when the order joins, less
    every print at the price; a smaller displayed size shortens it, a larger one never moves it back. Without
    depth, the size ahead is estimated: 0 when the order sets a new best price, else the last print's size."""

    name = "queue"

    def new_order(self, o, book):
        levels = book.bids if o.side == BUY else book.asks
        if levels is not None:
            o.queue = levels.get(o.price, 0.0)
            return
        same = book.bid if o.side == BUY else book.ask
        improves = not same > 0 or (o.price > same if o.side == BUY else o.price < same)
        o.queue = 0.0 if improves else book.last_size

    def at_limit(self, o, volume):
        o.queue -= volume
        if o.queue < 0.0:
            q = -o.queue
            o.queue = 0.0
            return q
        return 0.0

    def depth(self, o, prev_qty, new_qty):
        if new_qty < o.queue:
            o.queue = new_qty


class ProbQueue(RiskAverseQueue):
    """hftbacktest's ProbQueueModel with a power function: a decrease of the displayed size is taken from the
    front of the queue with probability ``back**n / (back**n + front**n)`` (prints already counted are not
    counted twice)."""

    def __init__(self, n: float = 3.0):
        self.n = n
        self.name = f"prob:{n:g}"

    def at_limit(self, o, volume):
        o.cum_trade += volume
        return super().at_limit(o, volume)

    def depth(self, o, prev_qty, new_qty):
        chg = prev_qty - new_qty - o.cum_trade
        o.cum_trade = 0.0
        if chg < 0.0:  # the size grew: those behind us joined
            if new_qty < o.queue:
                o.queue = new_qty
            return
        # as hftbacktest computes it in f64 (a queue ahead below 0 is a fill not yet counted): a power of a
        # negative number is NaN, 0/0 is NaN, x/0 is infinite and counts as 1, and min() passes over NaN
        front = o.queue
        back = prev_qty - front
        fb, ff = _pow(back, self.n), _pow(front, self.n)
        prob = _div(fb, fb + ff)
        if math.isinf(prob):
            prob = 1.0
        est = front - (1.0 - prob) * chg + _fmin(back - prob * chg, 0.0)
        o.queue = _fmin(est, new_qty)


def _pow(x: float, n: float) -> float:
    """C's pow(): NaN for a negative base and a fractional power, inf on overflow (Python raises)."""
    try:
        return math.pow(x, n)
    except ValueError:
        return NAN
    except OverflowError:
        return _INF


def _div(a: float, b: float) -> float:
    """IEEE division: x/0 is signed infinity, 0/0 and NaN/x are NaN (Python raises on 0)."""
    if b == 0.0:
        return NAN if a == 0.0 or a != a else math.copysign(_INF, a) * math.copysign(1.0, b)
    return a / b


def _fmin(a: float, b: float) -> float:
    """C's fmin() (and Rust's f64::min): the smaller, passing over a NaN."""
    if a != a:
        return b
    if b != b:
        return a
    return a if a < b else b


def fill_model(name: str) -> FillModel:
    """``touch``, ``through``, ``queue`` or ``prob[:n]`` (n the power, 3 by default)."""
    key = name.strip().lower()
    if key == "touch":
        return Touch()
    if key == "through":
        return Through()
    if key == "queue":
        return RiskAverseQueue()
    if key == "prob" or key.startswith("prob:"):
        n = 3.0
        if ":" in key:
            try:
                n = float(key.partition(":")[2])
            except ValueError:
                n = NAN
        if not (math.isfinite(n) and n > 0):
            raise ValueError(f"fill model {name!r}: prob:N takes a positive power N (prob:3)")
        return ProbQueue(n)
    raise ValueError(f"fill model {name!r}: choose one of {', '.join(FILL_MODELS)}")


FILL_MODELS = ("touch", "through", "queue", "prob[:n]")


@dataclass(frozen=True)
class ExchangeConfig:
    """How the simulated exchange fills: model, latencies (ns of recording time), fees, volume cap."""

    fill_model: str = "touch"
    latency_ns: int = 0  # strategy -> exchange
    response_latency_ns: int = 0  # exchange -> strategy
    fees: Fees = field(default_factory=Fees)
    cap_volume: bool = False  # top of book: taker fills capped by the last print's size
    cash: float = 0.0  # starting cash


class SimOrder:
    """One order as the exchange knows it."""

    __slots__ = (
        "order_id", "symbol", "side", "order_type", "price", "quantity", "filled", "notional", "status",
        "reject_reason", "sent_time", "arrival_time", "queue", "cum_trade", "client_order_id", "fee", "priority",
        "aggressive",
    )

    def __init__(self, order_id, symbol, side, order_type, price, quantity, sent_time, arrival_time,
                 client_order_id=""):
        self.order_id = order_id
        self.symbol = symbol
        self.side = side
        self.order_type = order_type
        self.price = price
        self.quantity = quantity
        self.filled = 0.0
        self.notional = 0.0
        self.status = _PENDING
        self.reject_reason = 0
        self.sent_time = sent_time
        self.arrival_time = arrival_time
        self.queue = 0.0  # displayed size ahead of it at its price
        self.cum_trade = 0.0  # prints at its price since the last size change (ProbQueue)
        self.client_order_id = client_order_id
        self.fee = 0.0
        self.priority = 0  # time priority among our orders: set when it (re)joins the book
        self.aggressive = False  # a market order's remainder under --cap-volume: takes at each print

    @property
    def remaining(self) -> float:
        return 0.0 if self.status in _DONE else self.quantity - self.filled

    @property
    def avg_price(self) -> float:
        return self.notional / self.filled if self.filled else 0.0

    @property
    def is_open(self) -> bool:
        return self.status in _OPEN

    @property
    def status_name(self) -> str:
        return status_name(self.status)

    def __repr__(self) -> str:
        side = "buy" if self.side == BUY else "sell"
        return (f"<Order {self.order_id} {self.symbol} {side} {self.quantity!r} @ {self.price!r} "
                f"{self.status_name} filled {self.filled!r}>")


class Account:
    """Cash, positions (signed quantity and average entry price), realised P&L and fees, from fills."""

    def __init__(self, cash: float = 0.0):
        self.start_cash = cash
        self.cash = cash
        self.qty: dict[str, float] = {}
        self.avg: dict[str, float] = {}
        self.realized: dict[str, float] = {}
        self.fees = 0.0
        self.volume: dict[str, float] = {}  # quantity traded
        self.turnover: dict[str, float] = {}  # notional traded

    def apply(self, symbol: str, side: int, price: float, qty: float, fee: float) -> None:
        d = 1.0 if side == BUY else -1.0
        self.cash -= d * qty * price + fee
        self.fees += fee
        self.volume[symbol] = self.volume.get(symbol, 0.0) + qty
        self.turnover[symbol] = self.turnover.get(symbol, 0.0) + qty * price
        pos = self.qty.get(symbol, 0.0)
        avg = self.avg.get(symbol, 0.0)
        if pos == 0.0 or (pos > 0) == (d > 0):
            new = pos + d * qty
            self.avg[symbol] = (abs(pos) * avg + qty * price) / abs(new)
        else:
            closing = min(qty, abs(pos))
            self.realized[symbol] = self.realized.get(symbol, 0.0) + closing * (price - avg) * (1.0 if pos > 0 else -1.0)
            new = pos + d * qty
            if abs(new) < 1e-12 * max(1.0, qty):
                new = 0.0
                self.avg[symbol] = 0.0
            elif (new > 0) != (pos > 0):
                self.avg[symbol] = price  # flipped: the rest opened a new position at this price
        self.qty[symbol] = new
        self.realized.setdefault(symbol, 0.0)

    def position(self, symbol: str) -> float:
        return self.qty.get(symbol, 0.0)

    def unrealized(self, marks: dict[str, float]) -> float:
        total = 0.0
        for s, q in self.qty.items():
            if q:
                m = marks.get(s, NAN)
                if m == m:
                    total += q * (m - self.avg[s])
        return total

    def equity(self, marks: dict[str, float]) -> float:
        """Cash plus positions valued at ``marks``."""
        total = self.cash
        for s, q in self.qty.items():
            if q:
                m = marks.get(s, NAN)
                total += q * (m if m == m else self.avg[s])
        return total


def _price(x: float) -> bool:
    """A usable quote or print price: positive and finite (NaN, inf and 0 are not prices)."""
    return 0.0 < x < _INF


class Book:
    """What the exchange knows of one symbol's market: the best quote, the last print, and the displayed
    sizes per price when the recording has depth (``bids``/``asks``: price -> size, else None)."""

    __slots__ = ("bid", "ask", "last", "last_size", "bids", "asks")

    def __init__(self):
        self.bid = NAN
        self.ask = NAN
        self.last = NAN
        self.last_size = 0.0
        self.bids: dict[float, float] | None = None
        self.asks: dict[float, float] | None = None

    @property
    def mark(self) -> float:
        """Mid when both quotes are there, else the last trade price."""
        if self.bid > 0 and self.ask > 0:
            return (self.bid + self.ask) / 2
        return self.last

    def quote(self, bid: float, ask: float) -> None:
        """A top-of-book quote; a side that is not a price (NaN, inf, 0) keeps what the book had."""
        if _price(bid):
            self.bid = bid
        if _price(ask):
            self.ask = ask

    def print_(self, price: float, volume: float) -> bool:
        """A print; False when it is not one (no price or no volume)."""
        if _price(price) and 0.0 < volume < _INF:
            self.last = price
            self.last_size = volume
            return True
        return False


class SimExchange:
    """Orders, matching and accounting (see the module doc); the engine calls it in time order."""

    def __init__(self, config: ExchangeConfig):
        try:
            self.model = fill_model(config.fill_model)
        except ValueError as e:
            raise ValueError(str(e)) from None
        self.config = config
        self.latency = config.latency_ns
        self.response_latency = config.response_latency_ns
        self.fees = config.fees
        self.cap = config.cap_volume
        self.books: dict[str, Book] = {}
        self.orders: dict[int, SimOrder] = {}
        self.resting: dict[str, list[SimOrder]] = {}  # by symbol, in priority order of arrival
        self.aggressive: dict[str, list[SimOrder]] = {}
        self.account = Account(config.cash)
        # records for the result folder
        self.updates: list[OrderUpdate] = []
        self.fills: list[Fill] = []
        self.cancels: list[tuple[int, int, int]] = []  # (sent_time, arrival_time, order_id)
        self.modifies: list[tuple[int, int, int]] = []
        self.outbox: list[OrderUpdate | Fill] = []  # answers not yet handed to the engine, in time order
        self.no_quote_fills = 0
        self._priority = 0

    def book(self, symbol: str) -> Book:
        b = self.books.get(symbol)
        if b is None:
            b = self.books[symbol] = Book()
        return b

    @property
    def working(self) -> bool:
        """Any order in the market (resting, or a market order's remainder taking at each print)."""
        return bool(self.resting or self.aggressive)

    # -- requests, at their arrival -----------------------------------------------------------------
    def sent(self, order: SimOrder) -> None:
        """Record an order as sent (it arrives later, through :meth:`arrive_order`)."""
        self.orders[order.order_id] = order

    def arrive_order(self, t: int, o: SimOrder) -> None:
        """A new order reaches the exchange at ``t``."""
        book = self.books.get(o.symbol)
        if book is None:
            self._reject(t, o, RejectReason.UNKNOWN_SYMBOL)
            return
        if not math.isfinite(o.quantity * (o.price or 1.0)):
            self._reject(t, o, RejectReason.NOT_FINITE)
            return
        buy = o.side == BUY
        ot = o.order_type
        opp = book.ask if buy else book.bid
        levels = book.asks if buy else book.bids
        if ot == _MARKET:
            marketable = True
            if not _price(opp) and not _price(book.last):
                self._reject(t, o, RejectReason.NO_MARKET)
                return
        else:
            marketable = _price(opp) and (opp <= o.price if buy else opp >= o.price)
        if marketable and ot == _POST:
            self._reject(t, o, RejectReason.POST_ONLY_WOULD_TAKE)
            return
        o.status = _ACCEPTED
        self._update(t, o, _ACCEPTED)
        if marketable:
            if levels is not None and levels and _price(opp):
                self._take_levels(t, o, levels)
            else:
                self._take_top(t, o, book, opp)
            if not o.is_open:
                return
            if ot in (_MARKET, _IOC, _FOK):
                if ot == _MARKET and self.cap and levels is None:
                    o.aggressive = True  # the volume cap left a rest: it takes at each print
                    self.aggressive.setdefault(o.symbol, []).append(o)
                    return
                self._close(t, o, OrderStatus.EXPIRED)
                return
        elif ot in (_MARKET, _IOC, _FOK):
            self._close(t, o, OrderStatus.EXPIRED)
            return
        self._rest(o, book)

    def _take_top(self, t: int, o: SimOrder, book: Book, opp: float) -> None:
        """A marketable order against top of book (no sizes): all of it at the opposite quote, or (with the
        volume cap) up to the last print's size; the last print's price when there is no quote."""
        flags = 0
        if not _price(opp):
            opp = book.last
            flags = int(FillFlag.NO_QUOTE)
        q = o.quantity - o.filled
        if self.cap:
            q = min(q, book.last_size)
        if o.order_type == _FOK and q < o.quantity - o.filled:
            return  # cannot fill entirely: it expires
        if q > 0:
            self._fill(t, o, opp, q, _TAKER, flags)

    def _take_levels(self, t: int, o: SimOrder, levels: dict[float, float]) -> None:
        """A marketable order against depth: level by level from the best, each up to its displayed size,
        never past the limit (a market order: every level the book shows)."""
        buy = o.side == BUY
        prices = sorted(levels) if buy else sorted(levels, reverse=True)
        lim = o.price if o.order_type != _MARKET else (_INF if buy else -_INF)
        usable = [(p, levels[p]) for p in prices if levels[p] > 0 and (p <= lim if buy else p >= lim)]
        want = o.quantity - o.filled
        if o.order_type == _FOK and sum(v for _p, v in usable) < want * (1 - 1e-12):
            return
        for p, v in usable:
            q = min(v, o.quantity - o.filled)
            if q <= 0:
                break
            self._fill(t, o, p, q, _TAKER, 0)
            if not o.is_open:
                break

    def _rest(self, o: SimOrder, book: Book) -> None:
        self._priority += 1
        o.priority = self._priority
        o.cum_trade = 0.0
        self.model.new_order(o, book)
        self.resting.setdefault(o.symbol, []).append(o)

    def arrive_cancel(self, t: int, order_id: int) -> None:
        o = self.orders.get(order_id)
        if o is None or o.status == _PENDING:
            # never sent, or not arrived yet (a cancel cannot overtake its order)
            self._answer_reject(t, order_id, o, OrderStatus.CANCEL_REJECTED, RejectReason.UNKNOWN_ORDER)
            return
        if not o.is_open:
            self._answer_reject(t, order_id, o, OrderStatus.CANCEL_REJECTED, RejectReason.TOO_LATE)
            return
        self._close(t, o, _CANCELED)

    def arrive_modify(self, t: int, order_id: int, price: float, quantity: float) -> None:
        """Change a resting order: a new price or a larger quantity re-enters it at the back of the queue (and
        may take, as a new order would); a smaller quantity keeps its place."""
        o = self.orders.get(order_id)
        rej = OrderStatus.MODIFY_REJECTED
        if o is None or o.status == _PENDING:
            self._answer_reject(t, order_id, o, rej, RejectReason.UNKNOWN_ORDER)
            return
        if not o.is_open or o.aggressive:
            self._answer_reject(t, order_id, o, rej, RejectReason.TOO_LATE)
            return
        if not (quantity > o.filled and quantity < _INF):
            self._answer_reject(t, order_id, o, rej, RejectReason.BAD_QUANTITY)
            return
        if not _price(price):
            self._answer_reject(t, order_id, o, rej, RejectReason.BAD_PRICE)
            return
        book = self.books[o.symbol]
        buy = o.side == BUY
        opp = book.ask if buy else book.bid
        marketable = _price(opp) and (opp <= price if buy else opp >= price)
        if marketable and o.order_type == _POST:
            self._answer_reject(t, order_id, o, rej, RejectReason.POST_ONLY_WOULD_TAKE)
            return
        requeue = price != o.price or quantity > o.quantity
        o.price = price
        o.quantity = quantity
        o.status = int(OrderStatus.MODIFIED)
        self._update(t, o, OrderStatus.MODIFIED)
        if not requeue:
            return
        self._unrest(o)
        if marketable:
            levels = book.asks if buy else book.bids
            if levels is not None and levels:
                self._take_levels(t, o, levels)
            else:
                self._take_top(t, o, book, opp)
            if not o.is_open:
                return
        self._rest(o, book)

    # -- market events ---------------------------------------------------------------------------------
    def on_ticker(self, t: int, symbol: str, last: float, bid: float, ask: float, volume: float) -> None:
        """A Ticker: a top-of-book quote, and a print of ``volume`` at ``last`` whose aggressor is not known."""
        book = self.book(symbol)
        pb, pa = book.bid, book.ask
        book.quote(bid, ask)
        printed = book.print_(last, volume)
        # with the volume cap, what fills at this event comes out of its print's volume, once
        budget = (volume if printed else 0.0) if self.cap else _INF
        if symbol in self.resting and (book.bid != pb or book.ask != pa):
            budget = self._crossed(t, symbol, book, budget)
        if printed:
            if symbol in self.aggressive:
                self._take_aggressive(t, symbol, book)
            if symbol in self.resting:
                self._print(t, symbol, last, volume, UNKNOWN_SIDE, budget)

    def on_trade(self, t: int, symbol: str, price: float, volume: float, aggressor: int) -> None:
        """A Trade print: ``aggressor`` is the side that took (BUY fills our sells), or UNKNOWN_SIDE."""
        book = self.book(symbol)
        if not book.print_(price, volume):
            return
        if symbol in self.aggressive:
            self._take_aggressive(t, symbol, book)
        if symbol in self.resting:
            self._print(t, symbol, price, volume, aggressor)

    def on_depth(self, t: int, symbol: str, bids: dict[float, float], asks: dict[float, float]) -> None:
        """A Depth snapshot (price -> size per side; absent levels left out)."""
        book = self.book(symbol)
        prev_b, prev_a = book.bids, book.asks
        book.bids, book.asks = bids, asks
        pb, pa = book.bid, book.ask
        book.bid = max(bids) if bids else NAN
        book.ask = min(asks) if asks else NAN
        rest = self.resting.get(symbol)
        if not rest:
            return
        for o in rest:
            levels, prev = (bids, prev_b) if o.side == BUY else (asks, prev_a)
            before = prev.get(o.price, 0.0) if prev is not None else 0.0
            now = levels.get(o.price, 0.0)
            if now != before:
                self.model.depth(o, before, now)
        if book.bid != pb or book.ask != pa:
            self._crossed(t, symbol, book)

    # -- matching ---------------------------------------------------------------------------------------
    def _crossed(self, t: int, symbol: str, book: Book, budget: float = _INF) -> float:
        """The opposite quote reached a resting order's limit: it fills entirely (with the volume cap: up to
        ``budget``), as maker at its limit (the market shows someone willing at that price, and no one of the
        recording was there before us). Returns what is left of ``budget``."""
        ask, bid = book.ask, book.bid
        for o in self._by_priority(symbol):
            if not o.is_open:
                continue
            if (o.side == BUY and _price(ask) and ask <= o.price) or (o.side == SELL and _price(bid) and bid >= o.price):
                q = min(o.quantity - o.filled, budget)
                if q > 0:
                    budget -= q
                    self._fill(t, o, o.price, q, _MAKER, 0)
        return budget

    def _print(self, t: int, symbol: str, price: float, volume: float, aggressor: int, budget: float = _INF) -> None:
        """A print: orders it traded through fill entirely (with the volume cap: up to ``budget``); orders at
        its price take what the model gives, from a volume that no two of our orders share."""
        budget = min(budget, volume) if self.cap else budget
        at_budget = min(volume, budget)
        model = self.model
        for o in self._by_priority(symbol):
            if not o.is_open:
                continue
            if o.side == BUY:
                if aggressor == BUY:
                    continue  # a buyer took: our bids were not hit
                through, at = price < o.price, price == o.price
            else:
                if aggressor == SELL:
                    continue
                through, at = price > o.price, price == o.price
            if through:
                q = min(o.quantity - o.filled, budget)
                if q > 0:
                    budget -= q
                    self._fill(t, o, o.price, q, _MAKER, 0)
            elif at:
                q = min(model.at_limit(o, volume), o.quantity - o.filled, at_budget, budget)
                if q > 0:
                    at_budget -= q
                    budget -= q
                    self._fill(t, o, o.price, q, _MAKER, 0)

    def _take_aggressive(self, t: int, symbol: str, book: Book) -> None:
        budget = book.last_size
        for o in list(self.aggressive.get(symbol, ())):
            buy = o.side == BUY
            opp, flags = (book.ask if buy else book.bid), 0
            if not _price(opp):
                opp, flags = book.last, int(FillFlag.NO_QUOTE)
            q = min(o.quantity - o.filled, budget)
            if q > 0 and _price(opp):
                self._fill(t, o, opp, q, _TAKER, flags)
                budget -= q

    def _by_priority(self, symbol: str) -> list[SimOrder]:
        """Our resting orders of ``symbol``: best price first (buys high, sells low), then time."""
        rest = self.resting.get(symbol, ())
        if len(rest) < 2:
            return list(rest)
        return sorted(rest, key=lambda o: (-o.price if o.side == BUY else o.price, o.priority))

    # -- answers ------------------------------------------------------------------------------------------
    def _fill(self, t: int, o: SimOrder, price: float, q: float, liquidity: int, flags: int) -> None:
        rate = self.fees.maker_bps if liquidity == _MAKER else self.fees.taker_bps
        fee = q * price * rate / 1e4
        if o.filled == 0.0:
            fee += self.fees.per_order
        o.filled += q
        o.notional += q * price
        o.fee += fee
        if flags:
            self.no_quote_fills += 1
        f = Fill(t, len(self.fills) + 1, o.order_id, o.symbol, o.side, int(liquidity), price, q, fee, flags)
        self.fills.append(f)
        self.account.apply(o.symbol, o.side, price, q, fee)
        self.outbox.append(f)
        if o.quantity - o.filled <= 1e-9 * o.quantity:
            o.filled = o.quantity
            self._close(t, o, _FILLED)
        else:
            o.status = _PARTIAL
            self._update(t, o, _PARTIAL)

    def _unrest(self, o: SimOrder) -> None:
        for where in (self.resting, self.aggressive):
            lst = where.get(o.symbol)
            if lst and o in lst:
                lst.remove(o)
                if not lst:
                    del where[o.symbol]

    def _close(self, t: int, o: SimOrder, status: int) -> None:
        o.status = int(status)
        self._unrest(o)
        self._update(t, o, status)

    def _reject(self, t: int, o: SimOrder, reason: int) -> None:
        o.status = int(OrderStatus.REJECTED)
        o.reject_reason = int(reason)
        self._update(t, o, OrderStatus.REJECTED, reason)

    def _answer_reject(self, t: int, oid: int, o: SimOrder | None, status: int, reason: int) -> None:
        """A cancel or modify refused; the order (if any) is unchanged."""
        if o is None:
            u = OrderUpdate(t, oid, "", int(status), int(reason), 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0)
            self.updates.append(u)
            self.outbox.append(u)
        else:
            self._update(t, o, status, reason)

    def _update(self, t: int, o: SimOrder, status: int, reason: int = 0) -> None:
        filled = o.filled
        u = OrderUpdate(t, o.order_id, o.symbol, int(status), int(reason), o.side, o.order_type, o.price,
                        o.quantity, filled, 0.0 if o.status in _DONE else o.quantity - filled,
                        o.notional / filled if filled else 0.0)
        self.updates.append(u)
        self.outbox.append(u)
