"""The simulated exchange: order requests in, order updates and fills out, on the recording's clock.

No UI, no I/O. The backtest engine (``engine.py``) feeds it market events in
recording order and requests as the strategy makes them; everything it decides
is recorded (``orders``, ``updates``, ``fills``) for the result folder.

Event order at a market frame *m* (time ``t``), the rules docs/backtest.md states:

1. the frame's market data updates the symbol's book (bid, ask, last);
2. requests that have arrived (sent at an earlier frame, ``sent + latency <= t``)
   are handled in the order sent: cancels cancel, new orders are accepted (or
   rejected) and a marketable one fills at once as taker at the opposite quote
   (never at the last price unless the recording has no quotes: flagged);
3. orders that were resting before this frame are matched against its event
   under the fill model (maker fills at the limit price).

So an order can never fill against the frame that triggered it, nor against any
frame before its arrival; a cancel that arrived beats a trade at the same frame.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from ..journal.format import FILL, ORDER_UPDATE, FillFlag, Liquidity, OrderStatus, OrderType, RejectReason, Side

FILL_MODELS = ("touch", "through", "queue")
NAN = float("nan")


@dataclass(frozen=True)
class Fees:
    """Maker and taker rates in basis points of the notional, plus a fixed fee per order (at its first fill)."""

    maker_bps: float = 0.0
    taker_bps: float = 0.0
    per_order: float = 0.0

    def to_dict(self) -> dict:
        return {"maker_bps": self.maker_bps, "taker_bps": self.taker_bps, "per_order": self.per_order}


@dataclass(frozen=True)
class ExchangeConfig:
    """How the simulated exchange fills: model, latencies (ns of recording time), fees, volume cap."""

    fill_model: str = "touch"
    latency_ns: int = 0  # strategy -> exchange
    response_latency_ns: int = 0  # exchange -> strategy
    fees: Fees = field(default_factory=Fees)
    cap_volume: bool = False  # taker and quote-crossing fills capped by the event's volume
    cash: float = 0.0  # starting cash


class SimOrder:
    """One order as the exchange (or the strategy's view of it) knows it."""

    __slots__ = (
        "order_id", "symbol", "side", "order_type", "price", "quantity", "filled", "notional", "status",
        "reject_reason", "sent_time", "arrival_time", "sent_seq", "queue_ahead", "client_order_id", "fee",
        "accepted_seq", "aggressive",
    )

    def __init__(self, order_id, symbol, side, order_type, price, quantity, sent_time, arrival_time, sent_seq,
                 client_order_id=""):
        self.order_id = order_id
        self.symbol = symbol
        self.side = side
        self.order_type = order_type
        self.price = price
        self.quantity = quantity
        self.filled = 0.0
        self.notional = 0.0
        self.status = -1  # not arrived yet
        self.reject_reason = 0
        self.sent_time = sent_time
        self.arrival_time = arrival_time
        self.sent_seq = sent_seq
        self.queue_ahead = 0.0
        self.client_order_id = client_order_id
        self.fee = 0.0
        self.accepted_seq = -1
        self.aggressive = False  # a market order's remainder (volume cap): takes at each event

    @property
    def remaining(self) -> float:
        return 0.0 if self.status in (OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED) \
            else self.quantity - self.filled

    @property
    def avg_price(self) -> float:
        return self.notional / self.filled if self.filled else 0.0

    @property
    def is_open(self) -> bool:
        return self.status in (-1, OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)

    @property
    def status_name(self) -> str:
        return "pending" if self.status == -1 else OrderStatus(self.status).name.lower()

    def __repr__(self) -> str:
        side = "buy" if self.side == Side.BUY else "sell"
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
        d = 1.0 if side == Side.BUY else -1.0
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


class Book:
    """What the exchange knows of one symbol's market: the last quote and the last trade."""

    __slots__ = ("bid", "ask", "last")

    def __init__(self):
        self.bid = NAN
        self.ask = NAN
        self.last = NAN

    @property
    def mark(self) -> float:
        """Mid when both quotes are there, else the last trade price."""
        if self.bid > 0 and self.ask > 0:
            return (self.bid + self.ask) / 2
        return self.last


class SimExchange:
    """Orders, matching and accounting; the engine drives it frame by frame (see the module doc)."""

    def __init__(self, config: ExchangeConfig):
        if config.fill_model not in FILL_MODELS:
            raise ValueError(f"fill model {config.fill_model!r}: choose one of {', '.join(FILL_MODELS)}")
        self.config = config
        self.model = config.fill_model
        self.latency = config.latency_ns
        self.response_latency = config.response_latency_ns
        self.fees = config.fees
        self.cap = config.cap_volume
        self.books: dict[str, Book] = {}
        self.orders: dict[int, SimOrder] = {}
        self.open: dict[str, list[SimOrder]] = {}  # resting orders by symbol
        self.aggressive: dict[str, list[SimOrder]] = {}
        self.pending: list[tuple[int, int, int, str, int]] = []  # (arrival, sent_seq, n, kind, order_id)
        self._n = 0
        self.account = Account(config.cash)
        # records for the result folder, rows of plain values
        self.updates: list[tuple] = []  # (time, order_id, symbol, status, reason, filled, remaining, avg_price)
        self.fills: list[tuple] = []  # (time, fill_id, order_id, symbol, side, liquidity, price, qty, fee, flags)
        self.cancels: list[tuple] = []  # (sent_time, arrival_time, order_id)
        self.outbox: list[tuple] = []  # (deliver_time, kind, payload) for the strategy, in time order
        self.no_quote_fills = 0
        self._last_size: dict[str, float] = {}  # last traded size per symbol (the queue model's estimate)

    # -- requests ------------------------------------------------------------------------------
    def submit(self, order: SimOrder) -> None:
        """Take a new order sent at ``order.sent_time`` during frame ``order.sent_seq``."""
        self.orders[order.order_id] = order
        self._queue(order.arrival_time, order.sent_seq, "new", order.order_id)

    def cancel(self, order_id: int, sent_time: int, sent_seq: int) -> None:
        arrival = sent_time + self.latency
        self.cancels.append((sent_time, arrival, order_id))
        self._queue(arrival, sent_seq, "cancel", order_id)

    def _queue(self, arrival: int, seq: int, kind: str, order_id: int) -> None:
        self._n += 1
        bisect.insort(self.pending, (arrival, seq, self._n, kind, order_id))

    @property
    def busy(self) -> bool:
        """Anything that a market frame could change: pending requests, working orders, undelivered answers."""
        return bool(self.pending or self.open or self.aggressive or self.outbox)

    # -- market frames -----------------------------------------------------------------------
    def on_market(self, seq: int, t: int, symbol: str, last: float, bid: float, ask: float, vol: float) -> None:
        """One market event: a Ticker (``bid``/``ask`` set) or a Trade (``bid``/``ask`` NaN)."""
        book = self.books.get(symbol)
        if book is None:
            book = self.books[symbol] = Book()
        if bid == bid:
            book.bid = bid
            book.ask = ask
        if last == last and last > 0:
            book.last = last
        # the event's traded volume: what our fills may use of it, across all our orders (never twice)
        budget = vol if (vol == vol and vol > 0 and last == last and last > 0) else 0.0
        if self.pending and self.pending[0][0] <= t:
            budget = self.arrivals(seq, t, symbol, budget)
        if symbol in self.aggressive:
            budget = self._take_aggressive(t, symbol, book, budget)
        resting = self.open.get(symbol)
        if resting:
            self._match(t, symbol, book, resting, seq, last, bid, ask, budget)
        if vol == vol and vol > 0 and last == last and last > 0:
            self._last_size[symbol] = vol

    def on_time(self, seq: int, t: int) -> None:
        """A frame that is not market data still moves time: requests that arrived are handled."""
        if self.pending and self.pending[0][0] <= t:
            self.arrivals(seq, t, "", 0.0)

    def arrivals(self, seq: int, t: int, symbol: str, budget: float) -> float:
        """Handle the requests that reached the exchange by ``t``; returns what is left of ``budget``."""
        p = self.pending
        k = 0
        keep = []
        while k < len(p) and p[k][0] <= t:
            item = p[k]
            k += 1
            if item[1] >= seq:  # sent while handling this very frame: it cannot act on it
                keep.append(item)
                continue
            _arr, _seq, _n, kind, oid = item
            if kind == "cancel":
                self._do_cancel(t, oid)
            else:
                o = self.orders[oid]
                if o.symbol == symbol:
                    budget = self._accept(seq, t, o, budget)
                else:
                    self._accept(seq, t, o, 0.0)  # another symbol's frame: no volume of its own
        del p[:k]
        for item in keep:
            bisect.insort(p, item)
        return budget

    def _do_cancel(self, t: int, oid: int) -> None:
        o = self.orders.get(oid)
        if o is None:
            self._update(t, oid, "", OrderStatus.CANCEL_REJECTED, RejectReason.UNKNOWN_ORDER, None)
            return
        if o.status == -1 or not o.is_open:
            # not arrived yet (a cancel cannot overtake its order), or already filled/canceled/rejected
            reason = RejectReason.TOO_LATE if o.status != -1 else RejectReason.UNKNOWN_ORDER
            self._update(t, oid, o.symbol, OrderStatus.CANCEL_REJECTED, reason, o)
            return
        self._close(o, OrderStatus.CANCELED)
        self._update(t, oid, o.symbol, OrderStatus.CANCELED, RejectReason.NONE, o)

    def _close(self, o: SimOrder, status: int) -> None:
        o.status = status
        for book in (self.open, self.aggressive):
            lst = book.get(o.symbol)
            if lst and o in lst:
                lst.remove(o)
                if not lst:
                    del book[o.symbol]

    def _reject(self, t: int, o: SimOrder, reason: int) -> None:
        o.status = OrderStatus.REJECTED
        o.reject_reason = reason
        self._update(t, o.order_id, o.symbol, OrderStatus.REJECTED, reason, o)

    def _accept(self, seq: int, t: int, o: SimOrder, budget: float) -> float:
        book = self.books.get(o.symbol)
        if book is None:
            self._reject(t, o, RejectReason.UNKNOWN_SYMBOL)
            return budget
        o.status = OrderStatus.ACCEPTED
        o.accepted_seq = seq
        self._update(t, o.order_id, o.symbol, OrderStatus.ACCEPTED, RejectReason.NONE, o)
        buy = o.side == Side.BUY
        opp = book.ask if buy else book.bid
        flags = 0
        if not opp > 0:
            opp = book.last
            flags = FillFlag.NO_QUOTE
        if o.order_type == OrderType.MARKET:
            if not opp > 0:
                self._close(o, OrderStatus.REJECTED)
                o.reject_reason = RejectReason.NO_MARKET
                self._update(t, o.order_id, o.symbol, OrderStatus.REJECTED, RejectReason.NO_MARKET, o)
                return budget
            marketable = True
        else:
            marketable = opp > 0 and (opp <= o.price if buy else opp >= o.price)
        if marketable:
            q = min(o.quantity - o.filled, budget) if self.cap else o.quantity - o.filled
            if q > 0:
                self._fill(t, o, opp, q, Liquidity.TAKER, flags)
                if self.cap:
                    budget -= q
            if o.is_open and o.order_type == OrderType.MARKET:
                o.aggressive = True
                self.aggressive.setdefault(o.symbol, []).append(o)
                return budget
        if o.is_open:
            o.queue_ahead = self._queue_estimate(o, book)
            self.open.setdefault(o.symbol, []).append(o)
        return budget

    def _queue_estimate(self, o: SimOrder, book: Book) -> float:
        """Volume ahead of a new resting order: none when it improves the quote, else the last traded size."""
        if self.model != "queue":
            return 0.0
        same = book.bid if o.side == Side.BUY else book.ask
        if same > 0 and (o.price > same if o.side == Side.BUY else o.price < same):
            return 0.0  # a new best price: nobody stands there
        return self._last_size.get(o.symbol, 0.0)

    def _take_aggressive(self, t: int, symbol: str, book: Book, budget: float) -> float:
        for o in list(self.aggressive.get(symbol, ())):
            buy = o.side == Side.BUY
            opp, flags = (book.ask if buy else book.bid), 0
            if not opp > 0:
                opp, flags = book.last, FillFlag.NO_QUOTE
            q = min(o.quantity - o.filled, budget)
            if q > 0 and opp > 0:
                self._fill(t, o, opp, q, Liquidity.TAKER, flags)
                budget -= q
        return budget

    def _match(self, t, symbol, book, resting, seq, last, bid, ask, budget) -> None:
        model = self.model
        traded = last == last and last > 0 and budget > 0
        quoted = bid == bid
        # price priority, then time: best limits first (buys high, sells low)
        order = sorted(resting, key=lambda o: (-o.price if o.side == Side.BUY else o.price, o.order_id)) \
            if len(resting) > 1 else list(resting)
        for o in order:
            if o.accepted_seq >= seq:
                continue  # accepted at this frame: this frame's event came before it
            buy = o.side == Side.BUY
            L = o.price
            rem = o.quantity - o.filled
            q = 0.0
            if quoted:
                opp = ask if buy else bid
                if opp > 0 and ((opp < L) if buy else (opp > L)) or (model == "touch" and opp > 0 and opp == L):
                    # the quote crossed (or, touch, reached) the limit: no size in the data, so all of it,
                    # or with the volume cap what is left of the event's volume
                    q = min(rem, budget) if self.cap else rem
                    if self.cap:
                        budget -= q
            if q == 0.0 and traded:
                through = last < L if buy else last > L
                at = last == L
                if through or (model == "touch" and at):
                    q = min(rem, budget)
                    if model == "queue":
                        o.queue_ahead = 0.0
                elif model == "queue" and at:
                    before = o.queue_ahead
                    o.queue_ahead = max(0.0, before - budget)
                    q = min(rem, max(0.0, budget - before))
                budget -= q
            if q > 0:
                self._fill(t, o, L, q, Liquidity.MAKER, 0)

    # -- fills and updates ---------------------------------------------------------------------
    def _fill(self, t: int, o: SimOrder, price: float, q: float, liquidity: int, flags: int) -> None:
        rate = self.fees.maker_bps if liquidity == Liquidity.MAKER else self.fees.taker_bps
        fee = q * price * rate / 1e4
        if o.filled == 0.0:
            fee += self.fees.per_order
        o.filled += q
        o.notional += q * price
        o.fee += fee
        if o.quantity - o.filled <= 1e-9 * o.quantity:
            o.filled = o.quantity
            self._close(o, OrderStatus.FILLED)
            status = OrderStatus.FILLED
        else:
            o.status = status = OrderStatus.PARTIALLY_FILLED
        if flags:
            self.no_quote_fills += 1
        fill_id = len(self.fills) + 1
        row = (t, fill_id, o.order_id, o.symbol, o.side, liquidity, price, q, fee, flags)
        self.fills.append(row)
        self.account.apply(o.symbol, o.side, price, q, fee)
        self.outbox.append((t + self.response_latency, "fill", row))
        self._update(t, o.order_id, o.symbol, status, RejectReason.NONE, o)

    def _update(self, t, oid, symbol, status, reason, o: SimOrder | None) -> None:
        if o is None:
            row = (t, oid, symbol, int(status), int(reason), 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0)
        else:
            row = (t, oid, symbol, int(status), int(reason), int(o.side), int(o.order_type), o.price, o.quantity,
                   o.filled, o.remaining, o.avg_price)
        self.updates.append(row)
        self.outbox.append((t + self.response_latency, "update", row))


# The rows of ``updates`` and ``fills``: the simulated time, the ids and symbol, then the layout's other fields
# in its order (declared once, in journal/format.py; a Fill's reserved field is not part of the row).
UPDATE_FIELDS = ("time", "order_id", "symbol", *(n for n in ORDER_UPDATE.names if n not in ("symbol", "order_id")))
FILL_FIELDS = ("time", "fill_id", "order_id", "symbol",
               *(n for n in FILL.names if n not in ("symbol", "fill_id", "order_id", "reserved")))
