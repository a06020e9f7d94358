"""The C backtest engine and its Python twin give the same backtest, byte for byte.

Random recordings (tickers, prints with their aggressor, depth, missing quotes) and a random strategy
(every order type, cancels, modifies, timers, bad requests it catches) under random configurations: every
table and the summary must be equal. The twin is the readable statement of the rules (engine.py,
exchange.py); the C engine (_core.c) is what runs.
"""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kftools
import kftools.backtest.run as run_module
from kftools import OrderType, Side, UsageError, Writer
from kftools.backtest import loop
from kftools.backtest.engine import ReferenceBacktest

pytestmark = pytest.mark.skipif(loop._core is None, reason="the C backtest engine is not built")

T0 = 1_767_000_000_000_000_000
SYMS = ("A", "B")


def recording(path, seed: int, n: int) -> None:
    rng = random.Random(seed)
    mid = {s: 1000 + 50 * k for k, s in enumerate(SYMS)}  # ticks of 0.01
    t = T0
    with Writer(str(path)) as w:
        for _ in range(n):
            t += rng.choice((0, 0, 1000, 50_000, 400_000))  # ties, bursts and gaps
            s = rng.choice(SYMS)
            mid[s] += rng.choice((-1, 0, 0, 1))
            bid, ask = mid[s] / 100, (mid[s] + rng.choice((1, 1, 2))) / 100
            kind = rng.random()
            if kind < 0.45:
                b = bid if rng.random() > 0.05 else rng.choice((0.0, math.nan))
                a = ask if rng.random() > 0.05 else rng.choice((0.0, math.nan))
                w.write_ticker(s, rng.choice((bid, ask)), b, a, float(rng.randint(0, 9)), gen_time=t)
            elif kind < 0.75:
                px = rng.choice((bid, ask, bid - 0.01, ask + 0.01))
                w.write_trade(s, rng.randint(1, 99), px, float(rng.randint(1, 9)), rng.choice((0, 1)), gen_time=t)
            else:
                levels = rng.randint(0, 4)
                bids = [(round(bid - k / 100, 2), float(rng.randint(1, 20))) for k in range(levels)]
                asks = [(round(ask + k / 100, 2), float(rng.randint(1, 20))) for k in range(levels)]
                w.write_depth(s, bids, asks, gen_time=t)


class Random:
    """Acts on every callback by a seeded coin: orders of every type, cancels, modifies, timers, mistakes."""

    def __init__(self, seed: int = 0):
        self.rng = random.Random(seed)
        self.log: list = []

    def on_start(self, ctx):
        ctx.schedule(after=1_000_000, data="first")

    def act(self, ctx, sym):
        rng = self.rng
        bid, ask, last = ctx.quote(sym)
        ref = bid if bid == bid and bid > 0 else last if last == last and last > 0 else 10.0
        r = rng.random()
        try:
            if r < 0.3:
                ot = rng.choice(list(OrderType))
                px = round(ref + rng.choice((-2, -1, 0, 1, 2)) / 100, 2)
                self.log.append(("sent", ctx.send_order(sym, rng.choice((Side.BUY, Side.SELL)), px,
                                                        float(rng.randint(1, 6)), order_type=ot)))
            elif r < 0.4 and ctx.orders:
                ctx.cancel(rng.choice(list(ctx.orders)))
            elif r < 0.48 and ctx.orders:
                oid = rng.choice(list(ctx.orders))
                ctx.modify(oid, price=round(ref + rng.choice((-1, 0, 1)) / 100, 2) if rng.random() < 0.6 else None,
                           quantity=float(rng.randint(1, 8)) if rng.random() < 0.6 else None)
            elif r < 0.5:
                ctx.schedule(after=rng.choice((0, 1000, 300_000)), data=sym)
            elif r < 0.52:
                bad = rng.choice(("side", "qty", "price", "sym", "id"))
                if bad == "side":
                    ctx.send_order(sym, 7, ref, 1.0)
                elif bad == "qty":
                    ctx.send_order(sym, Side.BUY, ref, -1.0)
                elif bad == "price":
                    ctx.send_order(sym, Side.BUY, math.nan, 1.0)
                elif bad == "sym":
                    ctx.send_order("ZZZ", Side.BUY, ref, 1.0)
                else:
                    ctx.cancel(10_000)
        except UsageError as e:
            self.log.append(("usage", str(e)))
        self.log.append((ctx.now(), ctx.position(sym), ctx.avg_price(sym), len(ctx.open_orders()), len(ctx.orders),
                         len(ctx.open_orders(sym)), ctx.depth(sym)))

    def on_ticker(self, ctx, f):
        self.act(ctx, f.symbol)

    def on_trade(self, ctx, f):
        self.act(ctx, f.symbol)

    def on_depth(self, ctx, f):
        self.act(ctx, f.symbol)

    def on_order_update(self, ctx, u):
        v = ctx.orders.get(u.order_id)
        self.log.append(("u", tuple(u), None if v is None else (v.status, v.filled_quantity, v.price, v.quantity,
                                                                  v.remaining_quantity, v.is_open)))
        if self.rng.random() < 0.2:
            self.act(ctx, u.symbol or "A")

    def on_fill(self, ctx, f):
        self.log.append(("f", tuple(f), ctx.cash, ctx.fees, ctx.realized_pnl, ctx.positions))

    def on_timer(self, ctx, t):
        self.log.append(("t", t.timer_id, t.time, t.data))
        self.act(ctx, t.data if t.data in SYMS else "A")

    def on_stop(self, ctx):
        self.summary = {"log": [repr(x) for x in self.log], "pnl": repr(ctx.pnl)}


def both(path, seed: int, **options):
    out = []
    for engine in (loop.CoreBacktest, ReferenceBacktest):
        run_module.Backtest = engine
        try:
            out.append(kftools.backtest(str(path), Random(seed), chart=False, **options))
        finally:
            run_module.Backtest = loop.Backtest
    return out


def assert_same(a, b):
    assert a.summary == b.summary
    for name in a.tables:
        assert a.tables[name].equals(b.tables[name]), name


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10**6), model=st.sampled_from(["touch", "through", "queue", "prob", "prob:1.5"]),
       latency=st.sampled_from([0, 1000, 250_000]), response=st.sampled_from([0, 1000, 90_000]),
       cap=st.booleans(), fees=st.sampled_from([None, "maker=-0.2,taker=2,order=0.01"]))
def test_the_c_engine_equals_its_python_twin(tmp_path_factory, seed, model, latency, response, cap, fees):
    path = tmp_path_factory.mktemp("twin") / "r.dat"
    recording(path, seed, 300)
    a, b = both(path, seed, fill_model=model, latency=latency, response_latency=response, cap_volume=cap, fees=fees)
    assert_same(a, b)


def test_the_twins_agree_on_the_maker_example_over_a_simulated_market(tmp_path):
    from kftools.simulate import simulate

    path = tmp_path / "m.dat"
    simulate(str(path), rate=0, frames=20_000, seed=5, depth=3)
    for engine in (loop.CoreBacktest, ReferenceBacktest):
        run_module.Backtest = engine
        try:
            r = kftools.backtest(str(path), "examples/strategy_maker.py:Maker", fill_model="queue",
                                 latency="100us", chart=False)
        finally:
            run_module.Backtest = loop.Backtest
        if engine is loop.CoreBacktest:
            first = r
    assert r.summary["fills"] > 100
    assert_same(first, r)
