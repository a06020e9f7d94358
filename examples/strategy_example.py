"""An example strategy for ``kftools replay rec.dat --strategy examples/strategy_example.py``.

A toy mean-reversion trader. It keeps a moving average of each symbol's last
price; when the price falls below (rises above) the average by more than
``threshold`` it buys (sells) at the opposite quote, up to ``max_position``
either way. Its position is what the simulated exchange filled, never what it
asked for: an order that has not filled after ``patience`` tickers of its
symbol is canceled, and only the fills (``ctx.position``) move the position.

Callbacks receive ``ctx`` (``ctx.send_order``, ``ctx.cancel``, ``ctx.position``,
``ctx.open_orders()``, ``ctx.now()`` = the recording's clock) and the frame
(``frame.symbol``, ``frame.last_price``, ``frame.bid_price``, ``frame.ask_price``).
"""

from collections import deque

from kftools import OrderStatus, Side


class MeanReversion:
    window = 20
    threshold = 0.0005  # relative distance from the average that triggers an order
    quantity = 10.0
    max_position = 10.0
    patience = 5  # tickers of the symbol before an unfilled order is canceled

    def on_start(self, ctx):
        self.hist = {}
        self.sums = {}
        self.working = {}  # symbol -> (order_id, tickers of the symbol when sent)
        self.seen = {}  # tickers per symbol
        self.tickers = 0
        self.trades = 0
        self.fills = 0

    def on_ticker(self, ctx, frame):
        self.tickers += 1
        sym = frame.symbol
        px = frame.last_price
        hist = self.hist.get(sym)
        if hist is None:
            hist = self.hist[sym] = deque(maxlen=self.window)
            self.sums[sym] = 0.0
            self.seen[sym] = 0
        n = self.seen[sym] = self.seen[sym] + 1
        if len(hist) == self.window:
            self.sums[sym] -= hist[0]
        hist.append(px)
        self.sums[sym] += px
        work = self.working.get(sym)
        if work is not None:
            oid, sent_at = work
            if n - sent_at == self.patience:
                ctx.cancel(oid)  # the answer (canceled, or too late: filled) comes as an order update
            return
        if len(hist) < self.window:
            return
        avg = self.sums[sym] / self.window
        pos = ctx.position(sym)
        if px < avg * (1 - self.threshold) and pos < self.max_position and frame.ask_price > 0:
            oid = ctx.send_order(sym, Side.BUY, frame.ask_price, min(self.quantity, self.max_position - pos))
            self.working[sym] = (oid, n)
        elif px > avg * (1 + self.threshold) and pos > -self.max_position and frame.bid_price > 0:
            oid = ctx.send_order(sym, Side.SELL, frame.bid_price, min(self.quantity, self.max_position + pos))
            self.working[sym] = (oid, n)

    def on_trade(self, ctx, frame):
        self.trades += 1  # market prints; the exchange uses them, this strategy does not

    def on_order_update(self, ctx, update):
        if update.status in (OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED):
            work = self.working.get(update.symbol)
            if work is not None and work[0] == update.order_id:
                del self.working[update.symbol]

    def on_fill(self, ctx, fill):
        self.fills += 1

    def on_stop(self, ctx):
        self.summary = {
            "tickers": self.tickers,
            "trades": self.trades,
            "orders_sent": ctx.orders_sent,
            "fills": self.fills,
            "positions": ctx.positions,
        }
