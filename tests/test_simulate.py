"""kftools simulate: a market on a tick grid whose quotes, prints, orders, fills and books agree; bursty; seeded."""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest
from kftest import run_cli

from kftools import Reader
from kftools.journal.format import PAGE_HEADER_SIZE
from kftools.simulate import simulate


@pytest.fixture(scope="module")
def market(tmp_path_factory) -> list:
    """20,000 frames on a 0.05 grid with 5 levels of depth, read back as frames."""
    p = tmp_path_factory.mktemp("sim") / "m.dat"
    r = run_cli("simulate", p, "--frames", "20000", "--rate", "0", "--tick", "0.05", "--depth", "5", "--seed", "3",
                "--page-size", str(1 << 20))
    assert r.returncode == 0, r.stderr
    with Reader(p) as rd:
        return list(rd)


def on_grid(price: float, tick: float = 0.05) -> bool:
    ticks = round(price / tick)
    return abs(price / tick - ticks) < 1e-9 and repr(price) == repr(float(f"{ticks * tick:.2f}"))


def test_prices_are_exact_multiples_of_the_tick_and_quotes_never_cross(market):
    kinds = {f.type_name for f in market}
    assert kinds == {"Ticker", "Trade", "Order", "Depth"}
    for f in market:
        if f.type_name == "Ticker":
            assert on_grid(f.bid_price) and on_grid(f.ask_price) and on_grid(f.last_price)
            assert f.ask_price - f.bid_price >= 0.05 - 1e-9 and f.volume == 0
        elif f.type_name in ("Trade", "Order"):
            assert on_grid(f.price)


def test_prints_are_at_the_quote_on_their_aggressor_side_and_fills_name_their_orders(market):
    quote, orders = {}, {}
    prints = fills = 0
    for f in market:
        if f.type_name == "Ticker":
            quote[f.symbol] = (f.bid_price, f.ask_price)
        elif f.type_name == "Order":
            orders[f.order_id] = f
        elif f.type_name == "Trade" and f.order_id:
            o = orders[f.order_id]
            assert (f.symbol, f.price, f.volume, int(f.side)) == (o.symbol, o.price, o.quantity, 1 - int(o.side))
            fills += 1
        elif f.type_name == "Trade" and f.symbol in quote:
            bid, ask = quote[f.symbol]
            assert f.price == (ask if int(f.side) == 0 else bid)  # a buy lifts the ask, a sell hits the bid
            assert f.volume >= 1 and f.volume == int(f.volume)
            prints += 1
    assert prints > 1000 and fills > 400


def test_depth_agrees_with_the_quote_and_a_print_takes_its_volume_off_the_level(market):
    quote, book = {}, {}
    checked = 0
    for prev, f in zip(market, market[1:], strict=False):
        if f.type_name == "Ticker":
            quote[f.symbol] = (f.bid_price, f.ask_price)
        if f.type_name != "Depth":
            continue
        assert list(f.bid_price[5:]) == [0.0] * 5 and list(f.ask_volume[5:]) == [0.0] * 5
        assert all(v >= 1 for v in f.ask_volume[:5]) and np.all(np.diff(f.ask_price[:5]) > 0)
        assert (f.bid_price[0], f.ask_price[0]) == quote.get(f.symbol, (f.bid_price[0], f.ask_price[0]))
        if prev.type_name == "Trade" and prev.symbol == f.symbol and f.symbol in book:
            before = book[f.symbol]
            side = "ask" if int(prev.side) == 0 else "bid"
            level, vol = getattr(before, side + "_price")[0], getattr(before, side + "_volume")[0]
            if getattr(f, side + "_price")[0] == level:
                assert getattr(f, side + "_volume")[0] == max(1.0, vol - prev.volume)
                checked += 1
        book[f.symbol] = f
    assert checked > 100


def test_the_clock_is_bursty(market):
    t = np.array([f.gen_time for f in market if f.type_name != "Depth"], dtype=np.int64)
    gaps = np.diff(t)
    assert np.all(gaps >= 0)
    assert np.median(gaps) < gaps.mean() / 3  # most gaps tiny ...
    assert gaps.max() > 20 * gaps.mean()  # ... some long lulls


def _bytes(path: str) -> bytes:
    """Every page's frames (the page header holds the writer's pid)."""
    return b"".join(open(p, "rb").read()[PAGE_HEADER_SIZE:] for p in sorted(glob.glob(path + "*"))
                    if not p.endswith(".summaries"))  # pages only, not the files beside them


def test_the_same_seed_gives_the_same_bytes(tmp_path):
    paths = []
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        p = str(tmp_path / f"{name}.dat")
        simulate(p, rate=0, frames=3000, seed=seed, depth=3, page_size=65536)
        paths.append(p)
    a, b, c = map(_bytes, paths)
    assert a == b and a != c


def test_progress_reaches_the_total_and_no_bar_off_a_terminal(tmp_path):
    seen = []
    simulate(str(tmp_path / "p.dat"), rate=0, frames=40_000, progress=lambda n, total: seen.append((n, total)))
    assert seen[-1] == (40_000, 40_000) and seen == sorted(seen)
    r = run_cli("simulate", tmp_path / "q.dat", "--frames", "40000", "--rate", "0")
    assert r.returncode == 0 and r.stderr.count("\n") == 1 and r.stderr.startswith("wrote 40,000 frames")


@pytest.mark.parametrize("args, msg", [
    (["--tick", "0"], "--tick"),
    (["--depth", "11"], "--depth"),
])
def test_bad_tick_or_depth_is_one_line_and_writes_nothing(tmp_path, args, msg):
    r = run_cli("simulate", tmp_path / "x.dat", "--frames", "10", "--rate", "0", *args)
    assert r.returncode != 0 and msg in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert os.listdir(tmp_path) == []
