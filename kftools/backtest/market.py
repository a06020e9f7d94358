"""What the simulated exchange reads from a recording: each frame's market role, decided by its layout.

- kftools ``Ticker``: a quote (bid, ask) and a print of ``volume`` at ``last_price`` whose aggressor is unknown;
- kftools ``Trade``: a print with its aggressor ``side``;
- kftools ``Depth``: a book of price levels and sizes;
- Kungfu's ``Quote`` (every generation): its 10 levels a side as a book (its ``last_price`` and ``volume`` are
  the session's running figures, not prints);
- Kungfu's ``Transaction``: a print at ``price`` of ``volume``, its aggressor from ``bs_flag`` (2.4) or
  ``side`` (later generations); a Transaction whose ``exec_type`` is Cancel (an order withdrawn) is not a print;
- anything else (Kungfu's ``Entrust`` too: order-by-order data, which the exchange does not model) plays no part.

One batch (or a merged batch of several journals, each with its own types) gives numpy columns in its row
order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..journal.format import DEPTH, DEPTH_LEVELS, TICKER, TRADE, MsgType
from ..journal.merge import MergedBatch
from ..journal.reader import FrameBatch

QUOTE_ROLE, PRINT_ROLE, BOOK_ROLE = int(MsgType.TICKER), int(MsgType.TRADE), int(MsgType.DEPTH)
NO_ROLE = 0
UNKNOWN_SIDE = -1
_KF_CANCEL = 1  # Kungfu ExecType.Cancel (every generation)
_KF_BS = {1: 0, 2: 1}  # Kungfu 2.4 BsFlag Buy, Sell -> Side.BUY, Side.SELL


@dataclass
class MarketColumns:
    """Per row: ``role`` (QUOTE_ROLE, PRINT_ROLE, BOOK_ROLE or NO_ROLE), ``last``/``bid``/``ask``/``vol``
    (NaN where the role has none), ``side`` (a print's aggressor, -1 unknown), ``book_pos`` (row of ``books``
    or -1). ``books`` is (rows, 4, DEPTH_LEVELS): bid prices, bid sizes, ask prices, ask sizes."""

    role: np.ndarray
    last: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    vol: np.ndarray
    side: np.ndarray
    book_pos: np.ndarray
    books: np.ndarray


def _levels(a: np.ndarray) -> np.ndarray:
    """(rows, n) levels as float64 (rows, DEPTH_LEVELS): cut or padded with absent (0) levels."""
    a = np.asarray(a, np.float64).reshape(len(a), -1)
    if a.shape[1] >= DEPTH_LEVELS:
        return a[:, :DEPTH_LEVELS]
    return np.pad(a, ((0, 0), (0, DEPTH_LEVELS - a.shape[1])))


def _part(p: FrameBatch) -> MarketColumns:
    n = len(p)
    mt = p.headers["msg_type"]
    role = np.zeros(n, np.int32)
    last, bid, ask, vol = (np.full(n, np.nan) for _ in range(4))
    side = np.full(n, UNKNOWN_SIDE, np.int64)
    book_pos = np.full(n, -1, np.int64)
    books: list[np.ndarray] = []
    nbooks = 0
    registry = p.page.registry
    for t in np.unique(mt).tolist():
        typ = registry.get(t)
        if typ is None:
            continue
        lay, sel = typ.layout, mt == t
        names = set(lay.names)
        if lay is TICKER:
            pl = p.payload(t, sel)
            role[sel] = QUOTE_ROLE
            last[sel], bid[sel], ask[sel], vol[sel] = pl["last_price"], pl["bid_price"], pl["ask_price"], pl["volume"]
        elif lay is TRADE:
            pl = p.payload(t, sel)
            role[sel] = PRINT_ROLE
            last[sel], vol[sel], side[sel] = pl["price"], pl["volume"], pl["side"]
        elif lay is DEPTH or (lay.name == "Quote" and {"bid_price", "bid_volume", "ask_price", "ask_volume"} <= names):
            pl = p.payload(t, sel)
            role[sel] = BOOK_ROLE
            k = len(pl)
            books.append(np.stack([_levels(pl["bid_price"]), _levels(pl["bid_volume"]), _levels(pl["ask_price"]),
                                   _levels(pl["ask_volume"])], axis=1))
            book_pos[sel] = nbooks + np.arange(k)
            nbooks += k
        elif lay.name == "Transaction" and {"price", "volume"} <= names:
            pl = p.payload(t, sel)
            rows = np.flatnonzero(sel)
            prints = pl["exec_type"] != _KF_CANCEL if "exec_type" in names else np.ones(len(pl), bool)
            rows, pl = rows[prints], pl[prints]
            role[rows] = PRINT_ROLE
            last[rows], vol[rows] = pl["price"], np.asarray(pl["volume"], np.float64)
            if "bs_flag" in names:  # 2.4: Buy 1, Sell 2, else unknown
                flag = pl["bs_flag"].astype(np.int64)
                side[rows] = np.where(flag == 1, 0, np.where(flag == 2, 1, UNKNOWN_SIDE))
            elif "side" in names:  # later generations: Side Buy 0, Sell 1
                s = pl["side"].astype(np.int64)
                side[rows] = np.where((s == 0) | (s == 1), s, UNKNOWN_SIDE)
    stacked = np.concatenate(books) if books else np.zeros((0, 4, DEPTH_LEVELS))
    return MarketColumns(role, last, bid, ask, vol, side, book_pos, stacked)


def market_columns(batch: FrameBatch | MergedBatch) -> MarketColumns:
    """The market columns of ``batch``'s rows (a merged batch: each journal read by its own types)."""
    if not isinstance(batch, MergedBatch):
        return _part(batch)
    parts = [_part(p) for p in batch.parts]
    if not parts:
        f = np.empty(0)
        return MarketColumns(np.empty(0, np.int32), f, f, f, f, np.empty(0, np.int64), np.empty(0, np.int64),
                             np.zeros((0, 4, DEPTH_LEVELS)))
    base = np.cumsum([0, *(len(m.books) for m in parts[:-1])])
    pos = [np.where(m.book_pos >= 0, m.book_pos + b, -1) for m, b in zip(parts, base.tolist(), strict=True)]

    def merged(arrays: list[np.ndarray]) -> np.ndarray:
        a = np.concatenate(arrays)
        return a if batch.order is None else a[batch.order]

    return MarketColumns(merged([m.role for m in parts]), merged([m.last for m in parts]),
                         merged([m.bid for m in parts]), merged([m.ask for m in parts]),
                         merged([m.vol for m in parts]), merged([m.side for m in parts]), merged(pos),
                         np.concatenate([m.books for m in parts]))
