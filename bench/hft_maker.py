"""examples/strategy_maker.py's logic as an hftbacktest 2.4.4 numba strategy, over a kftools journal.

``run(journal)`` converts the journal (per symbol: Ticker -> its best bid and ask as level updates of a fixed
size, the old levels cleared; Trade -> a trade with its aggressor side; Depth -> the changed levels) and runs
the maker in hftbacktest: per symbol one buy at the best bid and one sell at the best ask, ``size`` each; when
the quote moves it cancels and sends the new order once the cancel is answered; it stops quoting a side that
would take its position past ``max_position``. The time is the backtest alone (assets built from the converted
arrays and the strategy run), after a warm-up run on a small slice that pays numba's compile.

Exchange: NoPartialFillExchange (PartialFillExchange 2.4.4 stops with error 14 on a queue fill equal to the
order's rest, docs/backtest-hftbacktest.md). ``fill``: ``"touch-ish"`` shows each quote with 1 lot, so a
print at our price beyond that fills us (RiskAdverse queue); ``"queue"`` shows 20 lots.

    python bench/hft_maker.py rec.dat [--fill touch-ish|queue] [--latency-ns N]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

SIZE = 5.0
MAX_POSITION = 20.0
DISPLAYED = {"touch-ish": 1.0, "queue": 20.0}


def convert(journal: str, displayed: float = 1.0, limit: int | None = None) -> tuple[list[str], list, int]:
    """(symbols, one hftbacktest event array per symbol, frames read) for the first ``limit`` frames."""
    import hftbacktest as h
    from hftbacktest.types import event_dtype

    from kftools import Reader
    from kftools.journal.format import DEPTH_LEVELS, MsgType

    flags = h.EXCH_EVENT | h.LOCAL_EVENT
    per: dict[bytes, list] = {}
    frames = 0
    with Reader(journal) as rd:
        for b in rd.batches():
            if limit is not None and frames >= limit:
                break
            if limit is not None and frames + len(b) > limit:
                b = b.select(np.arange(len(b)) < limit - frames)
            mt, t = b.headers["msg_type"], b.headers["gen_time"]
            k = np.arange(len(b)) + frames  # the frame's place in the journal orders each symbol's events
            frames += len(b)
            for code in (MsgType.TICKER, MsgType.TRADE, MsgType.DEPTH):
                m = mt == code
                if m.any():
                    p = b.payload(int(code), m)
                    for sym in np.unique(p["symbol"]):
                        s = p["symbol"] == sym
                        per.setdefault(sym, []).append((int(code), t[m][s], k[m][s], p[s]))
    names, arrays = [], []
    for sym, parts in sorted(per.items()):
        rows = []
        bid = ask = 0.0
        book = ({}, {})
        keyed = []
        for code, times, order, p in parts:
            for i in range(len(times)):
                keyed.append((int(order[i]), code, int(times[i]), p[i]))
        keyed.sort(key=lambda x: x[0])
        for _, code, ts, r in keyed:
            if code == MsgType.TRADE:
                side = h.BUY_EVENT if int(r["side"]) == 0 else h.SELL_EVENT
                rows.append((h.TRADE_EVENT | side | flags, ts, ts, float(r["price"]), float(r["volume"]), 0, 0, 0.0))
            elif code == MsgType.TICKER:
                nb, na = float(r["bid_price"]), float(r["ask_price"])
                if nb <= 0 or na <= nb:
                    continue
                # the new levels first, then the old ones cleared (a best level cleared last costs no search)
                if nb != bid:
                    rows.append((h.DEPTH_EVENT | h.BUY_EVENT | flags, ts, ts, nb, displayed, 0, 0, 0.0))
                if na != ask:
                    rows.append((h.DEPTH_EVENT | h.SELL_EVENT | flags, ts, ts, na, displayed, 0, 0, 0.0))
                if bid and nb != bid:
                    rows.append((h.DEPTH_EVENT | h.BUY_EVENT | flags, ts, ts, bid, 0.0, 0, 0, 0.0))
                if ask and na != ask:
                    rows.append((h.DEPTH_EVENT | h.SELL_EVENT | flags, ts, ts, ask, 0.0, 0, 0, 0.0))
                bid, ask = nb, na
            else:
                for side, ev, (pxs, qtys) in ((0, h.BUY_EVENT, (r["bid_price"], r["bid_volume"])),
                                              (1, h.SELL_EVENT, (r["ask_price"], r["ask_volume"]))):
                    new = {float(pxs[i]): float(qtys[i]) for i in range(DEPTH_LEVELS) if pxs[i] > 0}
                    old = book[side]
                    for px, q in new.items():
                        if old.get(px) != q:
                            rows.append((h.DEPTH_EVENT | ev | flags, ts, ts, px, q, 0, 0, 0.0))
                    for px in old.keys() - new.keys():
                        rows.append((h.DEPTH_EVENT | ev | flags, ts, ts, px, 0.0, 0, 0, 0.0))
                    book = (new, book[1]) if side == 0 else (book[0], new)
        if rows:
            names.append(sym.decode())
            arrays.append(np.array(rows, dtype=event_dtype))
    return names, arrays, frames


def _strategy():
    import hftbacktest as h
    from numba import njit

    new_, partial, filled, gtc, limit = h.NEW, 5, h.FILLED, h.GTC, h.LIMIT

    @njit
    def maker(hbt, n_assets, size, max_position, stats):
        buy = np.zeros(n_assets, np.int64)  # our working order id per side, 0 none
        sell = np.zeros(n_assets, np.int64)
        canceling = np.zeros((n_assets, 2), np.bool_)
        next_id = 1
        while True:
            r = hbt.wait_next_feed(True, 3_600_000_000_000)
            if r != 2 and r != 3:  # 1: the end of the data
                break
            for a in range(n_assets):
                depth = hbt.depth(a)
                bid, ask = depth.best_bid_tick, depth.best_ask_tick
                if bid <= 0 or ask <= bid or ask > 10_000_000_000:
                    continue
                orders = hbt.orders(a)
                pos = hbt.position(a)
                for s in range(2):
                    oid = buy[a] if s == 0 else sell[a]
                    price = bid if s == 0 else ask
                    if oid != 0:
                        o = orders.get(oid)
                        if o is None:
                            continue
                        st = o.status
                        if st == new_ or st == partial:
                            if o.price_tick != price and not canceling[a, s] and o.req == 0:
                                hbt.cancel(a, oid, False)  # requote once the cancel is answered
                                canceling[a, s] = True
                                stats[1] += 1
                            continue
                        if st == filled:
                            stats[2] += 1
                        canceling[a, s] = False
                        if s == 0:
                            buy[a] = 0
                        else:
                            sell[a] = 0
                    room = max_position - pos if s == 0 else max_position + pos
                    if room >= size and (s == 0 and buy[a] == 0 or s == 1 and sell[a] == 0):
                        px = price * depth.tick_size
                        if s == 0:
                            hbt.submit_buy_order(a, next_id, px, size, gtc, limit, False)
                            buy[a] = next_id
                        else:
                            hbt.submit_sell_order(a, next_id, px, size, gtc, limit, False)
                            sell[a] = next_id
                        next_id += 1
                        stats[0] += 1
                hbt.clear_inactive_orders(a)
        return stats

    return maker


def _backtest(arrays, fill: str, latency_ns: int, tick: float):
    from hftbacktest import BacktestAsset, HashMapMarketDepthBacktest

    assets = [BacktestAsset().data(a).linear_asset(1.0).constant_order_latency(latency_ns, latency_ns)
              .risk_adverse_queue_model().no_partial_fill_exchange().trading_value_fee_model(0.0, 0.0)
              .tick_size(tick).lot_size(1.0) for a in arrays]
    return HashMapMarketDepthBacktest(assets)


def run(journal_path: str, fill: str = "touch-ish", latency_ns: int = 0, tick: float = 0.01,
        warm_frames: int = 5_000, repeat: int = 1) -> dict:
    """``{"frames", "seconds", "cpu_seconds", "orders", "cancels", "fills"}`` of the maker in hftbacktest over the
    journal (the median of ``repeat`` runs)."""
    if fill not in DISPLAYED:
        raise ValueError(f"fill {fill!r}: one of {', '.join(DISPLAYED)}")
    maker = _strategy()
    # warm-up on a slice: numba compiles the strategy and hftbacktest's methods once
    _, warm, _ = convert(journal_path, DISPLAYED[fill], limit=warm_frames)
    hbt = _backtest(warm, fill, latency_ns, tick)
    maker(hbt, len(warm), SIZE, MAX_POSITION, np.zeros(3, np.int64))
    hbt.close()
    names, arrays, frames = convert(journal_path, DISPLAYED[fill])
    walls, cpus = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        hbt = _backtest(arrays, fill, latency_ns, tick)
        stats = maker(hbt, len(arrays), SIZE, MAX_POSITION, np.zeros(3, np.int64))
        hbt.close()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    seconds, cpu_seconds = sorted(walls)[len(walls) // 2], sorted(cpus)[len(cpus) // 2]
    del arrays  # hftbacktest read them in place until close()
    return {"frames": frames, "seconds": seconds, "cpu_seconds": cpu_seconds, "orders": int(stats[0]),
            "cancels": int(stats[1]),
            "fills": int(stats[2]), "symbols": names}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("journal")
    ap.add_argument("--fill", default="touch-ish", choices=sorted(DISPLAYED))
    ap.add_argument("--latency-ns", type=int, default=0)
    a = ap.parse_args()
    r = run(a.journal, a.fill, a.latency_ns)
    r["frames_per_s"] = round(r["frames"] / r["seconds"])
    print(json.dumps(r))


if __name__ == "__main__":
    main()
