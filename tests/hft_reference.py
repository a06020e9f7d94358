"""hftbacktest 2.4.4 as a reference exchange: run one hand-written scenario through it, get every order's outcome.

A scenario is a plain dict (the kftools side can be driven from the same dict)::

    {"tick_size": 0.01, "lot_size": 1.0,
     "latency_ns": 0, "response_latency_ns": 0,        # constant entry / response latency
     "exchange": "partial" | "no_partial",              # PartialFillExchange / NoPartialFillExchange
     "queue": "risk_averse" | "power_prob:3",           # RiskAdverseQueueModel / PowerProbQueueModel(3)
     "maker_fee": 0.0, "taker_fee": 0.0,                 # fractions of notional (trading_value_fee_model)
     "events": [   # market data sorted by t; exch_ts = local_ts = t
        {"t": 1000, "kind": "depth", "side": "bid"|"ask", "price": 100.0, "qty": 5.0},  # L2 level (qty 0: gone)
        {"t": 2000, "kind": "trade", "side": "buy"|"sell", "price": 100.01, "qty": 2.0}, # aggressor side
     ],
     "requests": [  # strategy requests at local time t (they arrive at t + latency_ns)
        {"t": 1500, "kind": "new", "id": 1, "side": "buy", "price": 100.0, "qty": 1.0,
         "type": "limit"|"market", "tif": "gtc"|"ioc"|"fok"|"gtx"},
        {"t": 2500, "kind": "cancel", "id": 1},
        {"t": 2600, "kind": "modify", "id": 1, "price": 100.01, "qty": 2.0},
     ]}

``run_reference`` returns ``{"orders": {id: {"status", "exec_qty", "leaves_qty", "fills": [{"exch_ts", "price",
"qty", "maker"}]}}, "position", "balance", "fee", "requests": [{"t", "kind", "id", "rc"}]}``. ``rc`` is what
hftbacktest's submit/cancel/modify returned at the request time (0 sent; 10 duplicate id, 11 a request of the
order still in flight, 12 unknown order: refused before sending). ``position``, ``balance`` and ``fee`` are
hftbacktest's own account, with its quirks (docs/backtest-hftbacktest.md): it applies only responses with status
filled.

How fills are seen: hftbacktest's Python API shows, per order, only the last response that reached the
strategy. The harness steps ``elapse`` to every event time, request time, arrival time and each of those plus
the response latency, and compares each order with what it was after the previous step: a drop of
``leaves_qty`` is an execution; when the answer is a fill with a new ``exch_timestamp`` its ``exec_qty`` at
``exec_price_tick`` is the visible fill. Executions of one order answered at one timestamp (a taker walking
several levels, an IOC's fills before its expiry) leave only the last visible: the rest is reported as one fill
with ``"price": None, "hidden": True``. A step in which an order's quantity changed (a modify's answer) is taken
as no execution.
"""

from __future__ import annotations

import math

import numpy as np

STATUS = {0: "none", 1: "new", 2: "expired", 3: "filled", 4: "canceled", 5: "partially_filled", 6: "rejected"}
TIF = {"gtc": 0, "gtx": 1, "fok": 2, "ioc": 3}
ORDER_TYPE = {"limit": 0, "market": 1}


def _events(scenario: dict, end: int) -> np.ndarray:
    import hftbacktest as h
    from hftbacktest.types import event_dtype

    rows = []
    for e in scenario["events"]:
        if e["kind"] == "depth":
            kind, side = h.DEPTH_EVENT, {"bid": h.BUY_EVENT, "ask": h.SELL_EVENT}[e["side"]]
        elif e["kind"] == "trade":
            kind, side = h.TRADE_EVENT, {"buy": h.BUY_EVENT, "sell": h.SELL_EVENT}[e["side"]]
        else:
            raise ValueError(f"event kind {e['kind']!r}: depth or trade")
        rows.append((kind | side | h.EXCH_EVENT | h.LOCAL_EVENT, e["t"], e["t"], e["price"], e["qty"], 0, 0, 0.0))
    # hftbacktest stops at the end of its data: a no-op level update (a bid level of size 0 one tick above
    # zero) after every step keeps it running until the last request has been answered
    tick = scenario.get("tick_size", 0.01)
    rows.append((h.DEPTH_EVENT | h.BUY_EVENT | h.EXCH_EVENT | h.LOCAL_EVENT, end, end, tick, 0.0, 0, 0, 0.0))
    data = np.array(rows, dtype=event_dtype)
    if np.any(np.diff(data["exch_ts"]) < 0):
        raise ValueError("scenario events must be sorted by t")
    return data


def _asset(scenario: dict, data: np.ndarray):
    from hftbacktest import BacktestAsset

    a = BacktestAsset().data(data).linear_asset(1.0)
    a = a.constant_order_latency(int(scenario.get("latency_ns", 0)), int(scenario.get("response_latency_ns", 0)))
    queue = scenario.get("queue", "risk_averse")
    if queue == "risk_averse":
        a = a.risk_adverse_queue_model()
    elif queue.startswith("power_prob:"):
        a = a.power_prob_queue_model(float(queue.split(":", 1)[1]))
    else:
        raise ValueError(f"queue {queue!r}: risk_averse or power_prob:N")
    exchange = scenario.get("exchange", "partial")
    if exchange == "partial":
        a = a.partial_fill_exchange()
    elif exchange == "no_partial":
        a = a.no_partial_fill_exchange()
    else:
        raise ValueError(f"exchange {exchange!r}: partial or no_partial")
    a = a.trading_value_fee_model(float(scenario.get("maker_fee", 0.0)), float(scenario.get("taker_fee", 0.0)))
    return a.tick_size(float(scenario.get("tick_size", 0.01))).lot_size(float(scenario.get("lot_size", 1.0)))


def run_reference(scenario: dict) -> dict:
    """Run ``scenario`` through hftbacktest 2.4.4 (HashMapMarketDepthBacktest); every order's outcome."""
    from hftbacktest import HashMapMarketDepthBacktest

    lat = int(scenario.get("latency_ns", 0))
    rlat = int(scenario.get("response_latency_ns", 0))
    tick = float(scenario.get("tick_size", 0.01))
    events, requests = scenario["events"], sorted(scenario.get("requests", []), key=lambda r: r["t"])
    if not events:
        raise ValueError("a scenario needs market data (hftbacktest's clock starts at the first event)")
    start = events[0]["t"]
    if requests and requests[0]["t"] < start:
        raise ValueError(f"request at {requests[0]['t']} before the first event at {start}")
    steps = {e["t"] for e in events} | {e["t"] + rlat for e in events}
    for r in requests:
        steps |= {r["t"], r["t"] + lat, r["t"] + lat + rlat}
    steps = sorted(steps)
    steps.append(steps[-1] + 1)  # one more look, after the answers to the last requests
    # hftbacktest reads the event array in place: it must outlive the backtest
    data = _events(scenario, steps[-1] + 1)
    bt = HashMapMarketDepthBacktest([_asset(scenario, data)])
    if bt.elapse(0) != 0 or bt.current_timestamp != start:
        raise RuntimeError(f"hftbacktest did not start at the first event ({bt.current_timestamp} != {start})")

    decimals = max(0, -math.floor(math.log10(tick)) + 2)
    lot = float(scenario.get("lot_size", 1.0))
    orders: dict[int, dict] = {}
    seen: dict[int, tuple] = {}  # order id -> (qty, leaves_qty, exch_timestamp, status, exec_qty) after the last step
    log: list[dict] = []
    k = 0
    for t in steps:
        if t > bt.current_timestamp:
            rc = bt.elapse(t - bt.current_timestamp)
            if rc != 0:
                raise RuntimeError(f"hftbacktest elapse to {t} returned {rc}")
        # the responses that reached the strategy by t
        for oid, rec in orders.items():
            o = bt.orders(0).get(oid)
            if o is None:
                continue
            now = (o.qty, o.leaves_qty, o.exch_timestamp, o.status, o.exec_qty)
            before = seen.get(oid)
            seen[oid] = now
            if before is None or now == before:
                continue
            maker = bool(o.arr[0]["maker"])
            if o.qty != before[0]:
                continue  # a modify's answer (leaves_qty is reset to the new qty): taken as no execution
            done = round((before[1] - o.leaves_qty) / lot) * lot
            visible = 0.0
            if done > 0 and o.status in (3, 5) and o.exec_qty > 0 and o.exch_timestamp != before[2]:
                visible = float(o.exec_qty)
            hidden = done - visible
            if hidden > 0:
                rec["fills"].append({"exch_ts": int(o.exch_timestamp), "price": None, "qty": hidden, "maker": maker,
                                     "hidden": True})
            if visible:
                rec["fills"].append({"exch_ts": int(o.exch_timestamp), "price": round(o.exec_price_tick * tick, decimals),
                                     "qty": visible, "maker": maker})
        # the strategy's requests at t, in the scenario's order
        while k < len(requests) and requests[k]["t"] == t:
            r = requests[k]
            k += 1
            oid = int(r["id"])
            if r["kind"] == "new":
                submit = bt.submit_buy_order if r["side"] == "buy" else bt.submit_sell_order
                price = float(r.get("price", 0.0))
                rc = submit(0, oid, price, float(r["qty"]), TIF[r.get("tif", "gtc")],
                            ORDER_TYPE[r.get("type", "limit")], False)
                if rc == 0:
                    orders.setdefault(oid, {"fills": []})
                    seen[oid] = (float(r["qty"]), float(r["qty"]), 0, 0, 0.0)
            elif r["kind"] == "cancel":
                rc = bt.cancel(0, oid, False)
            elif r["kind"] == "modify":
                rc = bt.modify(0, oid, float(r["price"]), float(r["qty"]), False)
            else:
                raise ValueError(f"request kind {r['kind']!r}: new, cancel or modify")
            log.append({"t": t, "kind": r["kind"], "id": oid, "rc": int(rc)})

    out: dict[int, dict] = {}
    for oid, rec in orders.items():
        o = bt.orders(0).get(oid)
        out[oid] = {"status": STATUS.get(o.status, str(o.status)), "exec_qty": sum(f["qty"] for f in rec["fills"]),
                    "fills": rec["fills"], "leaves_qty": float(o.leaves_qty)}
    s = bt.state_values(0)
    result = {"orders": out, "position": float(s.position), "balance": float(s.balance), "fee": float(s.fee),
              "requests": log}
    bt.close()
    del data
    return result
