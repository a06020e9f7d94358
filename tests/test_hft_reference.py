"""What hftbacktest 2.4.4 does in hand cases: the peer's rules the kftools backtest is matched against.

Each test runs one small scenario through ``hft_reference.run_reference`` and pins what hftbacktest
answered (docs/backtest-hftbacktest.md lists the rules by test name). The numba compile happens once per
session, so every hftbacktest test lives in this one file.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("hftbacktest")

from hft_reference import run_reference  # noqa: E402

MS = 1_000_000


def book(t=1000, bid=100.0, ask=100.01, bid_qty=5.0, ask_qty=5.0):
    return [depth(t, "bid", bid, bid_qty), depth(t, "ask", ask, ask_qty)]


def depth(t, side, price, qty):
    return {"t": t, "kind": "depth", "side": side, "price": price, "qty": qty}


def trade(t, side, price, qty):
    return {"t": t, "kind": "trade", "side": side, "price": price, "qty": qty}


def new(t, oid, side, price, qty, type="limit", tif="gtc"):
    return {"t": t, "kind": "new", "id": oid, "side": side, "price": price, "qty": qty, "type": type, "tif": tif}


def scenario(events, requests, **kw):
    s = {"tick_size": 0.01, "lot_size": 1.0, "latency_ns": 0, "response_latency_ns": 0, "exchange": "partial",
         "queue": "risk_averse", "maker_fee": 0.0, "taker_fee": 0.0, "events": events, "requests": requests}
    s.update(kw)
    return s


def fills(result, oid=1):
    return [(f["exch_ts"], f["price"], f["qty"], f["maker"]) for f in result["orders"][oid]["fills"]]


def test_resting_buy_filled_by_a_sell_print_through_its_price():
    r = run_reference(scenario(book() + [trade(2000, "sell", 99.99, 2)], [new(1500, 1, "buy", 100.0, 1)]))
    assert fills(r) == [(2000, 100.0, 1.0, True)]  # at its own price, as maker, whatever the queue
    assert r["orders"][1]["status"] == "filled"
    assert (r["position"], r["balance"]) == (1.0, -100.0)


def test_best_ask_dropping_to_a_resting_buy_fills_it_as_maker():
    r = run_reference(scenario(book() + [depth(2000, "ask", 100.0, 3)], [new(1500, 1, "buy", 100.0, 1)]))
    assert fills(r) == [(2000, 100.0, 1.0, True)]


def test_market_buy_fills_at_the_best_ask_as_taker():
    r = run_reference(scenario(book(), [new(1500, 1, "buy", 0.0, 3, type="market")]))
    assert fills(r) == [(1500, 100.01, 3.0, False)]
    assert r["orders"][1]["status"] == "filled"


def test_a_taker_walking_levels_shows_only_its_last_execution_and_the_account_counts_only_that():
    events = book() + [depth(1000, "ask", 100.02, 4)]
    r = run_reference(scenario(events, [new(1500, 1, "buy", 0.0, 7, type="market")]))
    f = r["orders"][1]["fills"]
    assert [(x["qty"], x["price"], x.get("hidden", False)) for x in f] == [(5.0, None, True), (2.0, 100.02, False)]
    # the strategy's account applies only the response that completed the order
    assert (r["position"], r["balance"]) == (2.0, -200.04)


def test_a_marketable_gtc_limit_fills_its_rest_at_its_limit_beyond_the_displayed_size():
    events = book() + [depth(1000, "ask", 100.02, 4)]
    r = run_reference(scenario(events, [new(1500, 1, "buy", 100.02, 20)]))
    f = r["orders"][1]["fills"]
    # 5 at 100.01 (the levels better than the limit), then all 15 left at 100.02 though 4 were displayed there
    assert [(x["qty"], x["price"]) for x in f] == [(5.0, None), (15.0, 100.02)]
    assert r["orders"][1]["exec_qty"] == 20.0 and r["position"] == 15.0


def test_ioc_that_finds_nothing_expires_and_ioc_takes_what_is_there_up_to_its_limit():
    r = run_reference(scenario(book(), [new(1500, 1, "buy", 100.0, 1, tif="ioc")]))
    assert r["orders"][1]["status"] == "expired" and r["orders"][1]["fills"] == []
    events = book() + [depth(1000, "ask", 100.02, 4)]
    r = run_reference(scenario(events, [new(1500, 1, "buy", 100.02, 20, tif="ioc")]))
    o = r["orders"][1]
    assert (o["status"], o["exec_qty"], o["leaves_qty"]) == ("expired", 9.0, 11.0)
    assert r["position"] == 0.0  # no response with status filled: the account never sees the 9


def test_fok_fills_entirely_or_expires():
    events = book() + [depth(1000, "ask", 100.02, 4)]
    r = run_reference(scenario(events, [new(1500, 1, "buy", 100.02, 20, tif="fok")]))
    assert r["orders"][1]["status"] == "expired" and r["orders"][1]["exec_qty"] == 0
    r = run_reference(scenario(events, [new(1500, 1, "buy", 100.02, 8, tif="fok")]))
    assert r["orders"][1]["status"] == "filled" and r["orders"][1]["exec_qty"] == 8.0


def test_gtx_that_would_cross_expires():
    r = run_reference(scenario(book(), [new(1500, 1, "buy", 100.01, 1, tif="gtx")]))
    assert r["orders"][1]["status"] == "expired" and r["orders"][1]["fills"] == []


def test_risk_averse_queue_fills_only_after_more_than_the_level_has_printed_at_the_price():
    prints = [trade(2000, "sell", 100.0, 3), trade(3000, "sell", 100.0, 2), trade(4000, "sell", 100.0, 1)]
    r = run_reference(scenario(book() + prints[:2], [new(1500, 1, "buy", 100.0, 1)]))
    assert r["orders"][1]["status"] == "new"  # 5 printed at a level of 5: still queued
    r = run_reference(scenario(book() + prints, [new(1500, 1, "buy", 100.0, 1)]))
    assert fills(r) == [(4000, 100.0, 1.0, True)]


def test_partial_exchange_a_queue_fill_equal_to_the_rest_leaves_the_order_in_the_book_and_the_next_print_fails():
    prints = [trade(2000, "sell", 100.0, 3), trade(3000, "sell", 100.0, 2), trade(4000, "sell", 100.0, 1),
              trade(5000, "sell", 100.0, 1)]
    with pytest.raises(RuntimeError, match="elapse to 5000 returned 14"):
        run_reference(scenario(book() + prints, [new(1500, 1, "buy", 100.0, 1)]))
    r = run_reference(scenario(book() + prints, [new(1500, 1, "buy", 100.0, 1)], exchange="no_partial"))
    assert fills(r) == [(4000, 100.0, 1.0, True)]


def test_power_prob_queue_advances_on_cancels_ahead_risk_averse_does_not():
    # joins 5, 4 more join behind, then 4 leave: power_prob:3 takes about 2/3 of them from ahead of us
    events = book() + [depth(2000, "bid", 100.0, 9), depth(2500, "bid", 100.0, 5)]
    prints = [trade(3000 + 1000 * i, "sell", 100.0, 1) for i in range(6)]
    r = run_reference(scenario(events + prints[:3], [new(1500, 1, "buy", 100.0, 1)], queue="power_prob:3"))
    assert fills(r) == [(5000, 100.0, 1.0, True)]
    r = run_reference(scenario(events + prints[:3], [new(1500, 1, "buy", 100.0, 1)]))
    assert r["orders"][1]["status"] == "new"
    r = run_reference(scenario(events + prints, [new(1500, 1, "buy", 100.0, 1)]))
    assert fills(r) == [(8000, 100.0, 1.0, True)]


def test_partial_and_no_partial_exchanges_on_a_print_larger_than_the_queue():
    events = book() + [trade(2000, "sell", 100.0, 6), trade(3000, "buy", 100.01, 1)]
    r = run_reference(scenario(events, [new(1500, 1, "buy", 100.0, 3)]))
    assert fills(r) == [(2000, 100.0, 1.0, True)]  # only what printed beyond the queue ahead
    assert r["orders"][1]["status"] == "partially_filled" and r["position"] == 0.0
    r = run_reference(scenario(events, [new(1500, 1, "buy", 100.0, 3)], exchange="no_partial"))
    assert fills(r) == [(2000, 100.0, 3.0, True)]  # the whole order


def test_no_partial_exchange_fills_a_marketable_order_whole_at_the_best_price():
    events = book() + [depth(1000, "ask", 100.02, 4)]
    for req in (new(1500, 1, "buy", 100.02, 20), new(1500, 1, "buy", 0.0, 20, type="market"),
                new(1500, 1, "buy", 100.02, 20, tif="ioc")):
        r = run_reference(scenario(events, [req], exchange="no_partial"))
        assert fills(r) == [(1500, 100.01, 20.0, False)], req


def test_latency_an_order_meets_the_book_in_force_when_it_arrives():
    ask_down = [depth(None, "ask", 100.0, 2), depth(None, "ask", 100.01, 0)]

    def at(t):
        return [dict(e, t=t) for e in ask_down] + [trade(2 * MS, "sell", 50.0, 1)]

    sent = [new(0, 1, "buy", 100.0, 1, tif="gtx")]
    r = run_reference(scenario(book(0) + at(MS // 2), sent, latency_ns=MS))
    assert r["orders"][1]["status"] == "expired"  # the ask came down before it arrived: post-only would take
    r = run_reference(scenario(book(0) + at(MS + 1), sent, latency_ns=MS))
    assert fills(r) == [(MS + 1, 100.0, 1.0, True)]  # rested at 1 ms, then the ask came to it


def test_ties_market_data_at_an_orders_arrival_time_comes_first():
    ask_down = [depth(MS, "ask", 100.0, 2), depth(MS, "ask", 100.01, 0), trade(2 * MS, "sell", 50.0, 1)]
    r = run_reference(scenario(book(0) + ask_down, [new(0, 1, "buy", 100.0, 1, tif="gtx")], latency_ns=MS))
    assert r["orders"][1]["status"] == "expired"
    ask_down = [depth(1500, "ask", 100.0, 2), depth(1500, "ask", 100.01, 0), trade(2000, "sell", 50.0, 1)]
    r = run_reference(scenario(book() + ask_down, [new(1500, 1, "buy", 100.0, 1, tif="gtx")]))
    assert r["orders"][1]["status"] == "expired"


def test_cancel_before_a_fill_and_after_one():
    r = run_reference(scenario(book() + [trade(3000, "sell", 99.99, 2)],
                               [new(1500, 1, "buy", 100.0, 1), {"t": 2000, "kind": "cancel", "id": 1}]))
    assert r["orders"][1]["status"] == "canceled" and r["orders"][1]["fills"] == []
    r = run_reference(scenario(book() + [trade(2000, "sell", 99.99, 2), trade(3000, "sell", 99.0, 1)],
                               [new(1500, 1, "buy", 100.0, 1), {"t": 2500, "kind": "cancel", "id": 1}]))
    assert r["orders"][1]["status"] == "filled" and fills(r) == [(2000, 100.0, 1.0, True)]
    # the rejected cancel comes back as a copy of the filled order, and the account applies the fill again
    assert (r["position"], r["balance"]) == (2.0, -200.0)


def test_requests_refused_before_they_are_sent():
    events = book() + [trade(2000, "sell", 99.0, 1)]
    r = run_reference(scenario(events, [new(1500, 1, "buy", 99.0, 1), {"t": 1500, "kind": "cancel", "id": 1},
                                        new(1600, 1, "buy", 99.0, 1), {"t": 1600, "kind": "cancel", "id": 9}]))
    # a cancel while the new is in flight, a duplicate id, an unknown id
    assert [q["rc"] for q in r["requests"]] == [0, 11, 10, 12]
    assert fills(r) == [(2000, 99.0, 1.0, True)]


def test_modify_resets_the_rest_to_the_new_quantity_ignoring_what_was_filled():
    events = book(bid_qty=0) + [trade(2000, "sell", 100.0, 1), trade(3000, "buy", 100.01, 1),
                                trade(4000, "sell", 100.0, 1), trade(5000, "buy", 100.01, 1)]
    modify = {"t": 2500, "kind": "modify", "id": 1, "price": 100.0, "qty": 2.0}
    r = run_reference(scenario(events, [new(1500, 1, "buy", 100.0, 3), modify]))
    # 1 filled of 3, then qty 2: hftbacktest lets 2 more fill (3 in all), not 1
    assert [f[0] for f in fills(r)] == [2000, 4000]
    assert r["orders"][1]["leaves_qty"] == 1.0


def test_fees_are_fractions_of_notional_maker_and_taker():
    r = run_reference(scenario(book() + [trade(2000, "sell", 99.99, 2)],
                               [new(1500, 1, "buy", 100.0, 1), new(1500, 2, "buy", 100.01, 1)],
                               maker_fee=-0.0001, taker_fee=0.0007))
    assert fills(r, 2) == [(1500, 100.01, 1.0, False)]
    assert r["fee"] == pytest.approx(100.0 * -0.0001 + 100.01 * 0.0007)


def test_bench_hft_maker_converts_a_journal_to_level_updates_and_prints(tmp_path):
    import importlib.util
    import os

    import hftbacktest as h
    from kftest import ROOT

    from kftools import Writer

    spec = importlib.util.spec_from_file_location("hft_maker", os.path.join(ROOT, "bench", "hft_maker.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    p = str(tmp_path / "j.dat")
    with Writer(p, page_size=1 << 16) as w:
        w.write_ticker("A", 100.0, 100.0, 100.01, gen_time=10)
        w.write_trade("A", 1, 100.01, 3.0, 0, gen_time=20)
        w.write_ticker("A", 100.01, 100.01, 100.02, gen_time=30)
        w.write_order("A", 7, 0, 0, 100.0, 1.0, gen_time=40)
    names, arrays, frames = mod.convert(p, displayed=2.0)
    assert (names, frames) == (["A"], 4)
    ev = arrays[0]
    side = np.where(ev["ev"] & h.BUY_EVENT, "b", "s")
    kind = np.where(ev["ev"] & 0xFF == h.TRADE_EVENT, "trade", "depth")
    got = [(int(t), str(k), str(s), float(px), float(q)) for t, k, s, px, q in
           zip(ev["exch_ts"], kind, side, ev["px"], ev["qty"], strict=True)]
    assert got == [(10, "depth", "b", 100.0, 2.0), (10, "depth", "s", 100.01, 2.0),
                   (20, "trade", "b", 100.01, 3.0),
                   (30, "depth", "b", 100.01, 2.0), (30, "depth", "s", 100.02, 2.0),  # the new levels, then
                   (30, "depth", "b", 100.0, 0.0), (30, "depth", "s", 100.01, 0.0)]  # the old ones cleared
