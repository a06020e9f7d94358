"""What a finished backtest recorded, as numpy arrays: orders, updates, fills, equity samples, requests.

The C engine hands these out as the bytes of its own records (the dtypes below are
their layouts, checked by size against the build); the Python twin's lists are
converted to the same arrays, so the result files are made from one form.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..journal.layout import Field, Layout


def _layout(name: str, fields: str) -> np.dtype:
    """A record layout from ``"name:kind ..."`` (kinds as journal/layout.py declares them; no padding)."""
    return Layout(name, [Field(n, kind) for n, kind in (f.split(":") for f in fields.split())]).dtype


# the C engine's records (_core.c: Update, Fill, Sample, Pos, Req, OrderRec), field for field; the sizes are
# checked against the build at import (loop.py), "_pad" keeps each 8-byte field on an 8-byte boundary
UPDATE_DTYPE = _layout("Update", "time:i64 order_id:i64 sym:i32 status:i32 reject_reason:i32 side:i32 "
                                 "order_type:i32 _pad:i32 price:f64 quantity:f64 filled_quantity:f64 "
                                 "remaining_quantity:f64 avg_price:f64")
FILL_DTYPE = _layout("Fill", "time:i64 fill_id:i64 order_id:i64 sym:i32 side:i32 liquidity:i32 flags:i32 "
                             "price:f64 quantity:f64 fee:f64")
SAMPLE_DTYPE = _layout("Sample", "time:i64 equity:f64 cash:f64 realized:f64 unrealized:f64 fees:f64 "
                                 "pos_start:i64 npos:i32 bar:i32")
POSITION_DTYPE = _layout("Pos", "sym:i32 _pad:i32 qty:f64")
REQUEST_DTYPE = _layout("Req", "sent:i64 arrival:i64 order_id:i64")
ORDER_DTYPE = _layout("OrderRec", "order_id:i64 sent_time:i64 arrival_time:i64 sym:i32 side:i32 order_type:i32 "
                                  "status:i32 reject_reason:i32 _pad:i32 price:f64 quantity:f64 filled:f64 "
                                  "notional:f64 fee:f64")
DTYPES = {"updates": UPDATE_DTYPE, "fills": FILL_DTYPE, "samples": SAMPLE_DTYPE, "positions": POSITION_DTYPE,
          "cancels": REQUEST_DTYPE, "modifies": REQUEST_DTYPE, "orders": ORDER_DTYPE}
#: the C build's record sizes, by the names its constants() uses
C_SIZES = {"updates": "sizeof_update", "fills": "sizeof_fill", "samples": "sizeof_sample",
           "positions": "sizeof_position", "cancels": "sizeof_request", "modifies": "sizeof_request",
           "orders": "sizeof_order"}


@dataclass
class Records:
    """Every record of one backtest. ``sym`` columns index ``symbols`` (-1: no symbol, an answer about an
    unknown order); ``status`` -1 is an order still pending; a sample's positions are
    ``positions[pos_start:pos_start + npos]``."""

    symbols: list[str]
    orders: np.ndarray
    client_order_ids: list[str]
    updates: np.ndarray
    fills: np.ndarray
    samples: np.ndarray
    positions: np.ndarray
    cancels: np.ndarray
    modifies: np.ndarray

    def symbol_names(self, sym: np.ndarray) -> list[str]:
        """The symbol of each row (``''`` for -1)."""
        names = [*self.symbols, ""]
        return [names[k] for k in sym.tolist()]


def from_reference(bt) -> Records:
    """The Python twin's (``engine.ReferenceBacktest``) lists as Records."""
    ex = bt.exchange
    index: dict[str, int] = {}

    def sym(s: str) -> int:
        if s == "":
            return -1
        k = index.get(s)
        if k is None:
            k = index[s] = len(index)
        return k

    orders = list(ex.orders.values())
    o = np.zeros(len(orders), ORDER_DTYPE)
    for k, x in enumerate(orders):
        o[k] = (x.order_id, x.sent_time, x.arrival_time, sym(x.symbol), x.side, x.order_type, x.status,
                x.reject_reason, 0, x.price, x.quantity, x.filled, x.notional, x.fee)
    u = np.zeros(len(ex.updates), UPDATE_DTYPE)
    for k, r in enumerate(ex.updates):
        u[k] = (r.time, r.order_id, sym(r.symbol), r.status, r.reject_reason, r.side, r.order_type, 0, r.price,
                r.quantity, r.filled_quantity, r.remaining_quantity, r.avg_price)
    f = np.zeros(len(ex.fills), FILL_DTYPE)
    for k, r in enumerate(ex.fills):
        f[k] = (r.time, r.fill_id, r.order_id, sym(r.symbol), r.side, r.liquidity, r.flags, r.price, r.quantity,
                r.fee)
    samples = np.zeros(len(bt.equity), SAMPLE_DTYPE)
    pos: list[tuple] = []
    for k, r in enumerate(bt.equity):
        samples[k] = (r[0], r[1], r[2], r[3], r[4], r[5], len(pos), len(r[6]), int(bool(r[7])))
        pos.extend((sym(s), 0, q) for s, q in r[6].items())

    def req(rows) -> np.ndarray:
        return np.array([tuple(r) for r in rows], REQUEST_DTYPE) if rows else np.zeros(0, REQUEST_DTYPE)

    return Records(list(index), o, [x.client_order_id for x in orders], u, f, samples,
                   np.array(pos, POSITION_DTYPE) if pos else np.zeros(0, POSITION_DTYPE), req(ex.cancels),
                   req(ex.modifies))
