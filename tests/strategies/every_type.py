"""A test strategy that uses every order type, modify and timers, and answers answers (orders sent from
on_fill, on_order_update and on_timer), so in-process and out-of-process runs can be compared."""

from kftools import OrderStatus, OrderType, Side

TYPES = (OrderType.LIMIT, OrderType.LIMIT_IOC, OrderType.POST_ONLY, OrderType.LIMIT_FOK, OrderType.MARKET)


class EveryType:
    def on_start(self, ctx):
        self.n = 0
        self.timers = 0

    def on_ticker(self, ctx, f):
        self.n += 1
        if not (f.bid_price > 0 and f.ask_price > f.bid_price):
            return
        if self.n % 7 == 0:
            k = (self.n // 7) % len(TYPES)
            side = Side.BUY if self.n % 2 else Side.SELL
            px = f.ask_price if side == Side.BUY else f.bid_price
            if TYPES[k] in (OrderType.LIMIT, OrderType.LIMIT_IOC) or (TYPES[k] == OrderType.POST_ONLY and self.n % 3):
                px = f.bid_price if side == Side.BUY else f.ask_price  # passive: rests, or (IOC) expires
            ctx.send_order(f.symbol, side, px, 1.0, order_type=TYPES[k])
        if self.n % 11 == 0:
            ctx.schedule(after=150_000, data=f.symbol)
        if self.n % 13 == 0:
            for o in [o for o in ctx.open_orders(f.symbol) if o.price > 0][:1]:
                ctx.modify(o.order_id, price=o.price, quantity=o.quantity + 1 if self.n % 2 else 0.5)

    def on_timer(self, ctx, timer):
        self.timers += 1
        for o in ctx.open_orders(timer.data)[:2]:
            ctx.cancel(o.order_id)

    def on_fill(self, ctx, fill):
        if fill.quantity >= 1 and ctx.position(fill.symbol) > 3:
            bid, ask, _last = ctx.quote(fill.symbol)
            if bid > 0:
                ctx.send_order(fill.symbol, Side.SELL, bid, 1.0, order_type=OrderType.LIMIT_IOC)

    def on_order_update(self, ctx, u):
        if u.status == OrderStatus.EXPIRED and self.n % 3 == 0:
            ctx.schedule(after=0, data=u.symbol)

    def on_stop(self, ctx):
        self.summary = {"timers": self.timers}
