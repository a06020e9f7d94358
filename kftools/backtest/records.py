"""What a finished backtest recorded, as numpy arrays: orders, updates, fills, equity samples, requests.

The C engine hands these out as the bytes of its own records (the dtypes below are
their layouts, checked by size against the build); the Python twin's lists are
converted to the same arrays, so the result files are made from one form.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

UPDATE_DTYPE = np.dtype([
    ("time", "<i8"), ("order_id", "<i8"), ("sym", "<i4"), ("status", "<i4"), ("reject_reason", "<i4"),
    ("side", "<i4"), ("order_type", "<i4"), ("_pad", "<i4"), ("price", "<f8"), ("quantity", "<f8"),
    ("filled_quantity", "<f8"), ("remaining_quantity", "<f8"), ("avg_price", "<f8")])
FILL_DTYPE = np.dtype([
    ("time", "<i8"), ("fill_id", "<i8"), ("order_id", "<i8"), ("sym", "<i4"), ("side", "<i4"),
    ("liquidity", "<i4"), ("flags", "<i4"), ("price", "<f8"), ("quantity", "<f8"), ("fee", "<f8")])
SAMPLE_DTYPE = np.dtype([
    ("time", "<i8"), ("equity", "<f8"), ("cash", "<f8"), ("realized", "<f8"), ("unrealized", "<f8"),
    ("fees", "<f8"), ("pos_start", "<i8"), ("npos", "<i4"), ("bar", "<i4")])
POSITION_DTYPE = np.dtype([("sym", "<i4"), ("_pad", "<i4"), ("qty", "<f8")])
REQUEST_DTYPE = np.dtype([("sent", "<i8"), ("arrival", "<i8"), ("order_id", "<i8")])
ORDER_DTYPE = np.dtype([
    ("order_id", "<i8"), ("sent_time", "<i8"), ("arrival_time", "<i8"), ("sym", "<i4"), ("side", "<i4"),
    ("order_type", "<i4"), ("status", "<i4"), ("reject_reason", "<i4"), ("_pad", "<i4"), ("price", "<f8"),
    ("quantity", "<f8"), ("filled", "<f8"), ("notional", "<f8"), ("fee", "<f8")])
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
