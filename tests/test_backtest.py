"""The backtest: hand-computed scenarios for every fill rule, properties, results, bad strategies, the CLI."""

from __future__ import annotations

import json
import math
import os

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs
from kftest import ROOT, run_cli

from kftools import Liquidity, OrderStatus, OrderType, Reader, RejectReason, Side, Writer
from kftools.backtest import ExchangeConfig, Fees, exchange_config
from kftools.errors import StrategyError, UsageError
from kftools.journal.format import FillFlag, MsgType
from kftools.replay import Replay

T0 = 1_800_000_000_000_000_000
MS = 1_000_000
EXAMPLE = os.path.join(ROOT, "examples", "strategy_example.py")
MAKER = os.path.join(ROOT, "examples", "strategy_maker.py")
MULTI = os.path.join(ROOT, "sample_journals", "multipage.dat")


def record(path, events):
    """Write a recording: ("t", ms, symbol, last, bid, ask, volume) tickers and ("x", ms, symbol, price, volume
    [, aggressor side]) trades (a seller takes when no side is given: the print can fill our bids)."""
    with Writer(str(path), page_size=1 << 20) as w:
        for k, e in enumerate(events):
            if e[0] == "t":
                _, ms, sym, last, bid, ask, vol = e
                w.write_ticker(sym, last, bid, ask, vol, gen_time=T0 + int(ms * MS))
            else:
                _, ms, sym, px, vol, *side = e
                w.write_trade(sym, k + 1, px, vol, side[0] if side else Side.SELL, gen_time=T0 + int(ms * MS))
    return str(path)


class Script:
    """A strategy that performs ``actions[k]`` (callables of ctx) at the k-th ticker/trade it sees."""

    def __init__(self, actions=None):
        self.actions = actions or {}
        self.seen = 0
        self.updates = []
        self.fills = []
        self.log = []

    def _on(self, ctx, f):
        act = self.actions.get(self.seen)
        self.log.append((self.seen, ctx.now(), ctx.position(f.symbol)))
        self.seen += 1
        if act is not None:
            act(ctx)

    on_ticker = on_trade = _on

    def on_order_update(self, ctx, u):
        self.updates.append(u)

    def on_fill(self, ctx, f):
        self.fills.append((f, ctx.now()))


def run(tmp_path, events, actions=None, *, strategy=None, speed=None, **cfg):
    src = record(tmp_path / "rec.dat", events)
    strat = strategy or Script(actions)
    rep = Replay(src, str(tmp_path / "out.dat"), speed=speed, strategy=strat, exchange=ExchangeConfig(**cfg),
                 chart=False, force=True)
    st = rep.run()
    ex = rep.backtest.engine.exchange
    return strat, ex, st


def fills(ex):
    """(ms after T0, order_id, side, liquidity, price, quantity) per fill."""
    return [((f[0] - T0) / MS, f[2], f[4], f[5], f[6], f[7]) for f in ex.fills]


def buy(price, qty, **kw):
    return lambda ctx: ctx.send_order("A", Side.BUY, price, qty, **kw)


def sell(price, qty, **kw):
    return lambda ctx: ctx.send_order("A", Side.SELL, price, qty, **kw)


# -- marketable orders and latency --------------------------------------------------------------------------
QUOTES = [
    ("t", 0, "A", 100.0, 99.0, 101.0, 1.0),
    ("t", 1, "A", 100.5, 100.0, 102.0, 1.0),
    ("t", 2, "A", 101.0, 100.5, 103.0, 1.0),
    ("t", 3, "A", 101.5, 101.0, 104.0, 1.0),
]


def test_latency_zero_meets_the_quote_the_strategy_saw(tmp_path):
    # latency 0 is "now": sent at the 0 ms ticker (ask 101), it fills at 101 at 0 ms, not at the next frame's 102
    _s, ex, _ = run(tmp_path, QUOTES, {0: buy(0, 3, order_type=OrderType.MARKET)})
    assert fills(ex) == [(0.0, 1, Side.BUY, Liquidity.TAKER, 101.0, 3.0)]


def test_an_order_meets_the_quote_in_force_when_it_arrives(tmp_path):
    # 1.5 ms: arrives between the 1 ms and 2 ms frames: the 1 ms quote (ask 102) is in force, it fills at 1.5 ms
    _s, ex, _ = run(tmp_path, QUOTES, {0: buy(0, 3, order_type=OrderType.MARKET)}, latency_ns=1_500_000)
    assert fills(ex) == [(1.5, 1, Side.BUY, Liquidity.TAKER, 102.0, 3.0)]
    o = ex.orders[1]
    assert (o.sent_time - T0, o.arrival_time - T0) == (0, 1_500_000)


def test_the_issue_cases_market_buy_and_limit_that_must_rest(tmp_path):
    # the ask is 102 from 0.5 ms and 100.5 from 2 ms: a market buy sent at 0 with 1 ms latency pays 102 at 1 ms
    events = [("t", 0, "A", 101.0, 100.0, 101.0, 1.0), ("t", 0.5, "A", 101.0, 100.0, 102.0, 1.0),
              ("t", 2, "A", 101.0, 100.0, 100.5, 1.0), ("t", 3, "A", 101.0, 100.0, 100.25, 1.0)]
    _s, ex, _ = run(tmp_path, events, {0: buy(0, 1, order_type=OrderType.MARKET)}, latency_ns=MS)
    assert fills(ex) == [(1.0, 1, Side.BUY, Liquidity.TAKER, 102.0, 1.0)]
    # a buy limit at 100.5 arriving at 1 ms (ask 102) rests; the ask reaching 100.5 at 2 ms fills it as maker
    # at its limit (never as a taker at the 100.25 that comes later)
    _s, ex, _ = run(tmp_path, events, {0: buy(100.5, 1)}, latency_ns=MS)
    assert fills(ex) == [(2.0, 1, Side.BUY, Liquidity.MAKER, 100.5, 1.0)]


def test_marketable_limit_fills_at_the_quote_not_the_limit(tmp_path):
    # a buy limit at 105 arriving when the ask is 101 pays 101 (taker); a sell limit above the bid rests
    _s, ex, _ = run(tmp_path, QUOTES, {0: buy(105.0, 2), 1: sell(110.0, 1)})
    assert fills(ex) == [(0.0, 1, Side.BUY, Liquidity.TAKER, 101.0, 2.0)]
    assert ex.orders[2].status == OrderStatus.ACCEPTED


def test_no_quotes_fill_at_the_last_trade_and_say_so(tmp_path):
    events = [("x", 0, "A", 50.0, 5.0), ("x", 1, "A", 51.0, 5.0), ("x", 2, "A", 52.0, 5.0)]
    _s, ex, st = run(tmp_path, events, {0: buy(0, 1, order_type=OrderType.MARKET)})
    assert [f[6] for f in ex.fills] == [50.0] and ex.fills[0][9] == FillFlag.NO_QUOTE
    assert st.backtest.summary["no_quote_fills"] == 1


# -- resting limit orders: the three fill models -----------------------------------------------------------
RESTING = [
    ("t", 0, "A", 100.5, 100.0, 101.0, 3.0),  # buy 10 @ 100 sent and arrived here; joins the bid (queue: 3 ahead)
    ("t", 1, "A", 100.5, 100.0, 101.0, 4.0),  # no trade at 100
    ("t", 2, "A", 100.0, 99.5, 100.5, 5.0),  # 5 trade at the limit
    ("t", 3, "A", 100.1, 99.9, 100.2, 2.0),  # nothing
    ("t", 4, "A", 99.9, 99.8, 99.95, 4.0),  # a trade through the limit: the level was swept, the rest fills
]


@pytest.mark.parametrize("model, expected", [
    ("touch", [(2.0, 5.0), (4.0, 5.0)]),  # at the limit: all 5; through: the rest
    ("through", [(4.0, 10.0)]),  # trades at the limit never fill it
    ("queue", [(2.0, 2.0), (4.0, 8.0)]),  # 3 ahead: only 5 - 3 = 2 of the trade at 100 reach us
])
def test_fill_models(tmp_path, model, expected):
    _s, ex, st = run(tmp_path, RESTING, {0: buy(100.0, 10)}, fill_model=model)
    assert [(f[0], f[5]) for f in fills(ex)] == expected
    assert all(f[4] == 100.0 and f[3] == Liquidity.MAKER for f in fills(ex))  # makers fill at their limit
    assert ex.orders[1].status == OrderStatus.FILLED
    statuses = [u[3] for u in ex.updates]
    assert statuses == [OrderStatus.ACCEPTED] + [OrderStatus.PARTIALLY_FILLED] * (len(expected) - 1) + [OrderStatus.FILLED]
    assert st.backtest.summary["fill_model"] == model


def test_a_new_best_price_has_no_queue(tmp_path):
    # buy at 100.2 above the 100 bid: nobody ahead, the first trade at 100.2 fills it
    events = [("t", 0, "A", 100.5, 100.0, 101.0, 3.0), ("t", 1, "A", 100.5, 100.0, 101.0, 3.0),
              ("t", 2, "A", 100.2, 100.0, 101.0, 2.0)]
    _s, ex, _ = run(tmp_path, events, {0: buy(100.2, 2)}, fill_model="queue")
    assert fills(ex) == [(2.0, 1, Side.BUY, Liquidity.MAKER, 100.2, 2.0)]


def test_one_trade_never_fills_two_orders_twice(tmp_path):
    # two resting buys at 100 (5 each); a print of 6 at 100 fills the first 5 and the second 1 (time priority)
    events = [("t", 0, "A", 100.5, 100.0, 101.0, 1.0), ("t", 1, "A", 100.5, 100.0, 101.0, 1.0),
              ("x", 2, "A", 100.0, 6.0)]
    _s, ex, _ = run(tmp_path, events, {0: lambda c: (buy(100.0, 5)(c), buy(100.0, 5)(c))})
    assert [(f[1], f[5]) for f in fills(ex)] == [(1, 5.0), (2, 1.0)]


def test_price_priority_among_our_orders(tmp_path):
    events = [("t", 0, "A", 100.5, 100.0, 101.0, 1.0), ("t", 1, "A", 100.5, 100.0, 101.0, 1.0),
              ("x", 2, "A", 99.0, 3.0)]
    _s, ex, _ = run(tmp_path, events, {0: lambda c: (buy(99.5, 2)(c), buy(100.0, 2)(c))})
    assert [(f[1], f[5]) for f in fills(ex)] == [(2, 2.0), (1, 2.0)]  # the higher bid first; through: all of both


def test_crossed_quote_fills_a_resting_order_under_every_model(tmp_path):
    events = [("t", 0, "A", 100.5, 100.0, 101.0, 1.0), ("t", 1, "A", 100.5, 100.0, 101.0, 1.0),
              ("t", 2, "A", 100.5, 100.3, 99.8, 0.0)]  # crossed book: ask 99.8 < our bid 100
    for model in ("touch", "through", "queue"):
        _s, ex, _ = run(tmp_path, events, {0: buy(100.0, 7)}, fill_model=model)
        assert fills(ex) == [(2.0, 1, Side.BUY, Liquidity.MAKER, 100.0, 7.0)], model


def test_volume_cap_leaves_the_rest_working(tmp_path):
    events = [("t", 0, "A", 100.0, 99.0, 101.0, 1.0), ("t", 1, "A", 100.0, 99.0, 101.0, 4.0),
              ("t", 2, "A", 100.0, 99.0, 101.5, 3.0), ("t", 3, "A", 100.0, 99.0, 102.0, 9.0)]
    _s, ex, _ = run(tmp_path, events, {0: buy(0, 10, order_type=OrderType.MARKET)}, cap_volume=True)
    # on arrival: the last print's size (1); then each print's volume
    assert [(f[0], f[4], f[5]) for f in fills(ex)] == [(0.0, 101.0, 1.0), (1.0, 101.0, 4.0), (2.0, 101.5, 3.0),
                                                       (3.0, 102.0, 2.0)]


# -- cancels ---------------------------------------------------------------------------------------------------
CANCEL = [  # latency 2 ms
    ("t", 0, "A", 100.5, 100.0, 101.0, 1.0),  # sell 5 @ 101 sent (arrives at 2 ms)
    ("t", 1, "A", 100.5, 100.0, 101.5, 1.0),  # the cancel is sent (arrives at 3 ms)
    ("t", 2, "A", 100.5, 100.0, 101.5, 1.0),  # the order arrives and rests
]


def test_cancel_before_the_trade_wins(tmp_path):
    events = CANCEL + [("x", 3.5, "A", 101.0, 10.0, Side.BUY)]  # the trade at 101 comes after the cancel arrived
    s, ex, st = run(tmp_path, events, {0: sell(101.0, 5), 1: lambda c: c.cancel(1)}, latency_ns=2 * MS)
    assert ex.fills == [] and ex.orders[1].status == OrderStatus.CANCELED
    assert [u.status for u in s.updates] == [OrderStatus.ACCEPTED, OrderStatus.CANCELED]
    assert st.backtest.summary["orders_by_status"]["canceled"] == 1


def test_ties_market_data_first_for_orders_and_cancels_alike(tmp_path):
    # the trade at 3 ms and the cancel's arrival at 3 ms: market data first, the order fills, the cancel is late
    events = CANCEL + [("x", 3, "A", 101.0, 10.0, Side.BUY)]
    s, ex, _ = run(tmp_path, events, {0: sell(101.0, 5), 1: lambda c: c.cancel(1)}, latency_ns=2 * MS)
    assert fills(ex) == [(3.0, 1, Side.SELL, Liquidity.MAKER, 101.0, 5.0)]
    assert s.updates[-1].status == OrderStatus.CANCEL_REJECTED
    # a new order arriving with a frame of its own time meets that frame's quote (the ask 101.5 of 2 ms, not 101)
    events = [("t", 0, "A", 100.0, 99.0, 101.0, 1.0), ("t", 2, "A", 100.0, 99.0, 101.5, 1.0)]
    _s, ex, _ = run(tmp_path, events, {0: buy(0, 1, order_type=OrderType.MARKET)}, latency_ns=2 * MS)
    assert fills(ex) == [(2.0, 1, Side.BUY, Liquidity.TAKER, 101.5, 1.0)]


def test_prints_respect_their_aggressor_side(tmp_path):
    # a buyer taking at 100 does not fill our resting buy at 100, under touch; a seller does
    events = [("t", 0, "A", 100.5, 100.0, 101.0, 1.0), ("x", 1, "A", 100.0, 5.0, Side.BUY),
              ("x", 2, "A", 100.0, 2.0, Side.SELL)]
    _s, ex, _ = run(tmp_path, events, {0: buy(100.0, 3)}, fill_model="touch")
    assert fills(ex) == [(2.0, 1, Side.BUY, Liquidity.MAKER, 100.0, 2.0)]


def test_cancel_racing_a_fill_loses(tmp_path):
    events = CANCEL + [("x", 2.5, "A", 101.0, 10.0, Side.BUY), ("t", 3, "A", 100.5, 100.0, 101.5, 1.0)]
    s, ex, _ = run(tmp_path, events, {0: sell(101.0, 5), 1: lambda c: c.cancel(1)}, latency_ns=2 * MS)
    assert fills(ex) == [(2.5, 1, Side.SELL, Liquidity.MAKER, 101.0, 5.0)]
    assert [(u.status, u.reject_reason) for u in s.updates] == [
        (OrderStatus.ACCEPTED, 0), (OrderStatus.FILLED, 0), (OrderStatus.CANCEL_REJECTED, RejectReason.TOO_LATE)]
    assert s.fills and s.fills[0][0].quantity == 5.0


def test_cancel_after_a_partial_fill_cancels_the_rest(tmp_path):
    events = CANCEL + [("x", 2.5, "A", 101.0, 2.0, Side.BUY), ("t", 3, "A", 100.5, 100.0, 101.5, 1.0)]
    _s, ex, st = run(tmp_path, events, {0: sell(101.0, 5), 1: lambda c: c.cancel(1)}, latency_ns=2 * MS)
    o = ex.orders[1]
    assert (o.status, o.filled, o.remaining) == (OrderStatus.CANCELED, 2.0, 0.0)
    assert st.backtest.summary["fill_ratio"] == 2.0 / 5.0


# -- positions, P&L, fees --------------------------------------------------------------------------------------
def test_short_selling_and_round_trip_pnl(tmp_path):
    # sell 10 at the 100.5 bid (0 ms), buy 4 at the 99.0 ask (2 ms): realised 4 * 1.5 = 6,
    # the remaining -6 marked at the last mid 98.0: unrealised 6 * 2.5 = 15
    events = [("t", 0, "A", 100.5, 100.5, 101.0, 1.0), ("t", 1, "A", 100.5, 100.0, 101.0, 1.0),
              ("t", 2, "A", 99.0, 98.0, 99.0, 1.0), ("t", 3, "A", 98.5, 98.0, 98.5, 1.0),
              ("t", 4, "A", 98.0, 97.5, 98.5, 1.0)]
    s, ex, st = run(tmp_path, events, {0: sell(0, 10, order_type=OrderType.MARKET),
                                       2: buy(0, 4, order_type=OrderType.MARKET)})
    assert [(f[4], f[5]) for f in fills(ex)] == [(100.5, 10.0), (99.0, 4.0)]
    d = st.backtest.summary
    assert d["positions"]["A"]["quantity"] == -6.0 and d["positions"]["A"]["avg_price"] == 100.5
    assert d["realized_pnl"] == 6.0 and d["unrealized_pnl"] == 15.0 and d["net_pnl"] == 21.0
    assert d["cash"] == 10 * 100.5 - 4 * 99.0
    assert [p for _k, _t, p in s.log] == [0.0, -10.0, -10.0, -6.0, -6.0]  # what the strategy saw, from fills


def test_fees_maker_taker_and_per_order(tmp_path):
    # taker: buy 10 market at 101 -> 10 * 101 * 2bp = 0.202, plus 0.5 for the order
    # maker: sell 10 @ 102 rests, a print at 102 fills it -> 10 * 102 * -1bp = -0.102 (rebate), plus 0.5
    events = [("t", 0, "A", 100.5, 100.0, 101.0, 1.0), ("t", 1, "A", 100.5, 100.0, 101.0, 1.0),
              ("x", 2, "A", 102.0, 20.0, Side.BUY)]
    _s, ex, st = run(tmp_path, events, {0: lambda c: (buy(0, 10, order_type=OrderType.MARKET)(c), sell(102.0, 10)(c))},
                     fees=Fees(maker_bps=-1.0, taker_bps=2.0, per_order=0.5))
    assert [f[8] for f in ex.fills] == [pytest.approx(0.702), pytest.approx(0.398)]
    d = st.backtest.summary
    assert d["fees"] == pytest.approx(1.1) and d["realized_pnl"] == pytest.approx(10.0)
    assert d["net_pnl"] == pytest.approx(8.9)


def test_response_latency_delays_what_the_strategy_learns(tmp_path):
    events = [("t", k, "A", 100.0, 99.0, 101.0, 1.0) for k in range(6)]
    s, ex, _ = run(tmp_path, events, {0: buy(0, 1, order_type=OrderType.MARKET)}, response_latency_ns=3 * MS)
    assert fills(ex)[0][0] == 0.0  # filled at 0 ms ...
    assert s.fills[0][1] == T0 + 3 * MS  # ... known to the strategy at 3 ms, after the 3 ms frame (a tie)
    assert [p for _k, _t, p in s.log] == [0.0, 0.0, 0.0, 0.0, 1.0, 1.0]


def test_requests_in_flight_at_the_end_meet_the_last_book(tmp_path):
    s, ex, st = run(tmp_path, QUOTES, {2: buy(50.0, 1), 3: buy(0, 1, order_type=OrderType.MARKET)}, latency_ns=5 * MS)
    by = st.backtest.summary["orders_by_status"]
    assert (by["accepted"], by["filled"], by["pending"]) == (1, 1, 0)
    assert fills(ex) == [(8.0, 2, Side.BUY, Liquidity.TAKER, 104.0, 1.0)]  # arrived at 8 ms, the 3 ms ask
    assert s.fills and s.updates[-1].status == OrderStatus.FILLED  # and the strategy heard of it


# -- properties ----------------------------------------------------------------------------------------------
@hs.composite
def markets_and_actions(draw):
    n = draw(hs.integers(5, 40))
    px = 100.0
    events = []
    for k in range(n):
        px = round(px + draw(hs.sampled_from([-0.5, 0.0, 0.5])), 2)
        sym = draw(hs.sampled_from(["A", "B"]))
        if draw(hs.booleans()):
            events.append(("t", k, sym, px, px - 0.5, px + 0.5, float(draw(hs.integers(0, 5)))))
        else:
            events.append(("x", k, sym, px, float(draw(hs.integers(1, 5)))))
    actions = {}
    for k in draw(hs.lists(hs.integers(0, n - 1), max_size=8, unique=True)):
        kind = draw(hs.sampled_from(["limit", "market", "cancel"]))
        side = draw(hs.sampled_from([Side.BUY, Side.SELL]))
        qty = float(draw(hs.integers(1, 6)))
        off = draw(hs.sampled_from([-1.0, -0.5, 0.0, 0.5, 1.0]))
        target = draw(hs.integers(1, 8))
        actions[k] = (kind, side, qty, off, target)
    return events, actions


class Random:
    def __init__(self, actions):
        self.actions = actions
        self.k = 0

    def on_ticker(self, ctx, f):
        a = self.actions.get(self.k)
        self.k += 1
        if a is None:
            return
        kind, side, qty, off, target = a
        last = f.last_price if f.msg_type == MsgType.TICKER else f.price
        if kind == "cancel":
            if target <= ctx.orders_sent:
                ctx.cancel(target)
        elif kind == "market":
            ctx.send_order(f.symbol, side, 0, qty, order_type=OrderType.MARKET)
        else:
            ctx.send_order(f.symbol, side, last + off, qty)

    on_trade = on_ticker


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=markets_and_actions(), model=hs.sampled_from(["touch", "through", "queue"]),
       latency=hs.sampled_from([0, 500_000, 2 * MS]), cap=hs.booleans())
def test_accounting_properties(tmp_path_factory, case, model, latency, cap):
    events, actions = case
    tmp = tmp_path_factory.mktemp("p")
    _s, ex, st = run(tmp, events, strategy=Random(actions), fill_model=model, latency_ns=latency, cap_volume=cap,
                     fees=Fees(1.0, 2.0, 0.25))
    d = st.backtest.summary
    sign = {Side.BUY: 1.0, Side.SELL: -1.0}
    # cash + positions valued at their fill prices = starting cash - fees
    assert d["cash"] + sum(sign[f[4]] * f[7] * f[6] for f in ex.fills) == pytest.approx(-d["fees"], abs=1e-6)
    # P&L is the sum over fills of (mark - fill price) * signed quantity
    marks = {s: p["mark"] for s, p in d["positions"].items()}
    by_fills = sum(sign[f[4]] * f[7] * (marks[f[3]] - f[6]) for f in ex.fills)
    assert d["realized_pnl"] + d["unrealized_pnl"] == pytest.approx(by_fills, abs=1e-6)
    for f in ex.fills:  # no fill before its order arrived
        o = ex.orders[f[2]]
        assert f[0] >= o.arrival_time >= o.sent_time
        assert f[7] > 0 and o.filled <= o.quantity + 1e-9
    if cap:  # the volume of one market event is never used twice by the resting orders it fills
        used: dict = {}
        for f in ex.fills:
            if f[5] != Liquidity.MAKER:
                continue  # a taker fills on arrival, capped by the last print's size
            used[(f[0], f[3])] = used.get((f[0], f[3]), 0.0) + f[7]
        vol: dict = {}
        for e in events:
            key = (T0 + int(e[1] * MS), e[2])
            vol[key] = vol.get(key, 0.0) + (e[6] if e[0] == "t" else e[4])
        assert all(q <= vol.get(key, 0.0) + 1e-9 for key, q in used.items())


def test_no_fill_before_arrival(tmp_path):
    # every frame sends a market order; each arrives half a frame later and meets the quote then in force
    events = [("t", k, "A", 100.0 + k, 99.0 + k, 101.0 + k, 1.0) for k in range(6)]
    acts = {k: buy(0, 1, order_type=OrderType.MARKET) for k in range(5)}
    _s, ex, _ = run(tmp_path, events, acts, latency_ns=MS // 2)
    assert [(f[0], f[1], f[4]) for f in fills(ex)] == [(k + 0.5, k + 1, 101.0 + k) for k in range(5)]


# -- results, determinism, CLI --------------------------------------------------------------------------------
def test_result_folder_and_parquet(tmp_path):
    src = record(tmp_path / "rec.dat", RESTING)
    rep = Replay(src, str(tmp_path / "rec.replay.dat"), speed=None, strategy=Script({0: buy(100.0, 10)}),
                 exchange=ExchangeConfig(fill_model="touch"), chart=False)
    st = rep.run()
    folder = str(tmp_path / "rec.backtest")
    assert st.backtest.results == folder
    assert sorted(os.listdir(folder)) == ["equity.parquet", "fills.parquet", "orders.parquet", "summary.json",
                                          "updates.parquet"]
    f = pq.read_table(os.path.join(folder, "fills.parquet"))
    for col in ("order_id", "symbol", "side", "price", "quantity", "fee", "gen_time"):
        assert col in f.column_names
    assert str(f.schema.field("gen_time").type) == "timestamp[ns, tz=UTC]"
    assert f.column("quantity").to_pylist() == [5.0, 5.0]
    eq = pq.read_table(os.path.join(folder, "equity.parquet")).to_pydict()
    assert eq["position.A"][-1] == 10.0 and eq["equity"][-1] == pytest.approx(st.backtest.summary["net_pnl"])
    with open(os.path.join(folder, "summary.json")) as fh:
        assert json.load(fh)["fills"] == 2
    # fills and updates also went into the output journal, as a gateway writes them
    with Reader(str(tmp_path / "rec.replay.dat")) as r:
        got = [(f.type_name, f.trigger_time) for f in r if f.msg_type in (MsgType.FILL, MsgType.ORDER_UPDATE)]
    assert [g for g in got if g[0] == "Fill"] == [("Fill", T0 + 2 * MS), ("Fill", T0 + 4 * MS)]
    assert len([g for g in got if g[0] == "OrderUpdate"]) == 3
    with Reader(str(tmp_path / "rec.orders.dat")) as r:
        assert [(f.type_name, f.order_id, f.trigger_time) for f in r] == [("Order", 1, T0)]


def test_result_folder_is_refused_when_it_exists_and_kept_when_foreign(tmp_path):
    src = record(tmp_path / "rec.dat", QUOTES)
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "notes.txt").write_text("mine")
    with pytest.raises(Exception, match="result folder exists"):
        Replay(src, str(tmp_path / "o.dat"), speed=None, strategy=Script(), results=str(tmp_path / "res"))
    with pytest.raises(Exception, match="not a kftools result file"):
        Replay(src, str(tmp_path / "o.dat"), speed=None, strategy=Script(), results=str(tmp_path / "res"), force=True)
    assert (tmp_path / "res" / "notes.txt").read_text() == "mine"
    os.symlink(tmp_path / "res", tmp_path / "link")
    with pytest.raises(Exception, match="symbolic link"):
        Replay(src, str(tmp_path / "o.dat"), speed=None, strategy=Script(), results=str(tmp_path / "link"))


def test_option_syntax():
    c = exchange_config("Queue", "200us", "1.5ms", "maker=-0.2bp,taker=2bp,order=0.01", True, 1000.0)
    assert (c.fill_model, c.latency_ns, c.response_latency_ns, c.cap_volume, c.cash) == ("queue", 200_000, 1_500_000,
                                                                                           True, 1000.0)
    assert c.fees == Fees(-0.2, 2.0, 0.01)
    for bad in [("nope", 0, 0, None), ("touch", "fast", 0, None), ("touch", "-1ms", 0, None),
                ("touch", 0, 0, "maker=x"), ("touch", 0, 0, "gas=1bp"), ("touch", 0, 0, "order=1bp")]:
        with pytest.raises(UsageError):
            exchange_config(*bad)


def _files(folder):
    out = {}
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as fh:
            out[name] = fh.read()
    return out


def test_determinism_max_and_paced_give_identical_results(tmp_path):
    args = ["--strategy", EXAMPLE, "--latency", "1ms", "--fees", "maker=0.5bp,taker=2bp", "--no-chart"]
    a = run_cli("replay", MULTI, "--max", "-o", tmp_path / "a.dat", *args)
    assert a.returncode == 0, a.stderr
    b = run_cli("replay", MULTI, "--speed", "4", "-o", tmp_path / "b.dat", *args, timeout=120)
    assert b.returncode == 0, b.stderr
    fa, fb = _files(tmp_path / "a.backtest"), _files(tmp_path / "b.backtest")
    assert fa == fb and len(fa) == 5
    assert json.loads(fa["summary.json"])["fills"] > 0


def test_cli_json_and_terminal_summary(tmp_path):
    r = run_cli("replay", MULTI, "--max", "-o", tmp_path / "o.dat", "--strategy", EXAMPLE, "--fill-model", "through",
                "--json", "--results", tmp_path / "res")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)["backtest"]
    for key in ("orders", "fills", "realized_pnl", "unrealized_pnl", "fees", "positions", "max_drawdown", "sharpe",
                "fill_ratio", "turnover", "traded_volume", "fill_model", "latency_ns", "strategy_summary"):
        assert key in d
    assert d["fill_model"] == "through" and d["results"] == str(tmp_path / "res")
    assert "chart.png" in os.listdir(tmp_path / "res")
    for sym, p in d["positions"].items():
        assert set(p) >= {"quantity", "avg_price"}, sym
    t = run_cli("replay", MULTI, "--max", "-o", tmp_path / "t.dat", "--strategy", EXAMPLE, "--no-chart")
    assert t.returncode == 0, t.stderr
    assert "fill model touch" in t.stdout and "P&L            net " in t.stdout and "max drawdown" in t.stdout


# -- bad strategies -------------------------------------------------------------------------------------------
BAD = {
    "raises": ("    def on_ticker(self, ctx, f):\n        raise RuntimeError('boom')\n", "RuntimeError: boom"),
    "negative": ("    def on_ticker(self, ctx, f):\n        ctx.send_order(f.symbol, 0, 100.0, -5)\n",
                 "quantity must be a positive number"),
    "cancel": ("    def on_ticker(self, ctx, f):\n        ctx.cancel(42)\n", "unknown order id 42"),
    "symbol": ("    def on_ticker(self, ctx, f):\n        ctx.send_order('NOPE', 0, 100.0, 1)\n", "unknown symbol 'NOPE'"),
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_strategy_names_file_and_line(tmp_path, kind):
    body, msg = BAD[kind]
    p = tmp_path / f"{kind}.py"
    p.write_text("class S:\n" + body)
    r = run_cli("replay", MULTI, "--max", "-o", tmp_path / "o.dat", "--strategy", p)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kftools: error: "), r.stderr
    assert f"{p}:3 in on_ticker" in lines[0] and msg in lines[0]
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "o.backtest").exists()  # no half-written result folder
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_library_strategy_error_is_a_strategy_error(tmp_path):
    class Bad:
        def on_ticker(self, ctx, f):
            ctx.send_order(f.symbol, Side.BUY, math.nan, 1)

    src = record(tmp_path / "rec.dat", QUOTES)
    with pytest.raises(StrategyError, match="a limit order needs a positive price"):
        Replay(src, str(tmp_path / "o.dat"), speed=None, strategy=Bad(), chart=False).run()


def test_market_frames_a_strategy_sees_are_the_frames_replayed(tmp_path):
    """TickerFrame/TradeFrame come from the layouts: what a strategy is handed is what the output holds."""
    events = [("t", 0, "AAA", 10.0, 9.9, 10.1, 3), ("x", 1, "AAA", 10.05, 2), ("t", 2, "BBB", 5.0, 4.9, 5.1, 1)]
    seen = []

    class Collect:
        def on_ticker(self, ctx, f):
            seen.append(f.to_dict())

        on_trade = on_ticker

    run(tmp_path, events, strategy=Collect())
    with Reader(str(tmp_path / "out.dat")) as r:
        assert seen == [f.to_dict() for f in r]
