"""An example strategy for ``kftools replay --strategy examples/strategy_example.py``.

A toy mean-reversion trader: it keeps a moving average of each symbol's last
price and sends a buy (sell) order when the price falls below (rises above)
the average by more than ``threshold``, at most one open position per symbol.
Orders go to the orders journal (``<stem>.orders.dat``), which
``kftools export`` turns into Parquet.

Callbacks receive ``ctx`` (``ctx.send_order``, ``ctx.now()``, ``ctx.frame``)
and the replayed frame (``frame.symbol``, ``frame.last_price``, ``frame.gen_time``
= emission time, ``frame.trigger_time`` = original event time).
"""

from collections import defaultdict, deque

from kftools import Side


class MeanReversion:
    window = 20
    threshold = 0.0005  # relative distance from the average that triggers an order
    quantity = 10.0

    def on_start(self, ctx):
        self.prices = defaultdict(lambda: deque(maxlen=self.window))
        self.position = defaultdict(float)
        self.tickers = 0
        self.fills_seen = 0

    def on_ticker(self, ctx, frame):
        self.tickers += 1
        px = frame.last_price
        hist = self.prices[frame.symbol]
        hist.append(px)
        if len(hist) < self.window:
            return
        avg = sum(hist) / len(hist)
        pos = self.position[frame.symbol]
        if px < avg * (1 - self.threshold) and pos <= 0:
            ctx.send_order(frame.symbol, Side.BUY, px, self.quantity)
            self.position[frame.symbol] += self.quantity
        elif px > avg * (1 + self.threshold) and pos >= 0:
            ctx.send_order(frame.symbol, Side.SELL, px, self.quantity)
            self.position[frame.symbol] -= self.quantity

    def on_order(self, ctx, frame):
        pass  # orders of the recorded engine; ours go to the orders journal

    def on_frame(self, ctx, frame):
        # every frame without a more specific callback (trades, user types)
        self.fills_seen += 1

    def on_stop(self, ctx):
        self.summary = {
            "tickers": self.tickers,
            "orders_sent": ctx.orders_sent,
            "other_frames": self.fills_seen,
            "position": dict(self.position),
        }
