"""A resting-limit example: ``kftools replay rec.dat --strategy examples/strategy_maker.py --fill-model queue``.

A toy market maker. For each symbol it keeps one buy order resting at the
best bid and one sell order at the best ask, ``size`` each, and moves them
when the quote moves (cancel, then a new order once the cancel is confirmed).
It stops quoting the side that would take its inventory past ``max_position``.

Its orders join the quote it saw and are meant to rest: with latency 0 every
fill is a maker fill, and when and how much fills is exactly what the fill
model decides. With latency the quote may have moved by the time an order
arrives, and an order that then reaches the other side takes (a taker fill,
as on a real exchange). Run it with ``--fill-model touch``, ``through`` and
``queue`` and several ``--latency`` values on the same recording to see
how much the answer depends on that assumption (docs/backtest.md).
"""

from kftools import OrderStatus, Side


class Maker:
    def __init__(self, size: float = 5.0, max_position: float = 20.0):
        self.size = float(size)  # kftools backtest ... --param size=2
        self.max_position = float(max_position)

    def on_start(self, ctx):
        self.resting = {}  # (symbol, side) -> order id of our working order
        self.canceling = set()  # order ids we asked to cancel and have no answer for
        self.fills = 0

    def on_ticker(self, ctx, frame):
        sym = frame.symbol
        if not (frame.bid_price > 0 and frame.ask_price > frame.bid_price):
            return  # no two-sided quote to join
        pos = ctx.position(sym)
        for side, price, room in ((Side.BUY, frame.bid_price, self.max_position - pos),
                                  (Side.SELL, frame.ask_price, self.max_position + pos)):
            key = (sym, side)
            oid = self.resting.get(key)
            if oid is not None:
                order = ctx.orders[oid]
                if order.price != price and oid not in self.canceling:
                    ctx.cancel(oid)  # the quote moved: requote after the cancel is confirmed
                    self.canceling.add(oid)
                continue
            if room >= self.size:
                self.resting[key] = ctx.send_order(sym, side, price, self.size)

    def on_order_update(self, ctx, update):
        if update.status == OrderStatus.CANCEL_REJECTED:  # too late: it filled meanwhile (that update came first)
            self.canceling.discard(update.order_id)
        elif update.status in (OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED):
            self.canceling.discard(update.order_id)
            key = (update.symbol, update.side)
            if self.resting.get(key) == update.order_id:
                del self.resting[key]  # the next ticker quotes this side again

    def on_fill(self, ctx, fill):
        self.fills += 1

    def on_stop(self, ctx):
        self.summary = {"orders_sent": ctx.orders_sent, "fills": self.fills, "positions": ctx.positions,
                        "open_orders": len(ctx.open_orders())}
