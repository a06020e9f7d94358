"""A synthetic market feed written at a controlled rate (demos, tests, benchmarks).

The market, per symbol: a best bid on a tick grid and a spread of one or more ticks; the quote moves on a
random walk whose volatility switches between a calm and a busy regime (the busy one also brings more prints
and shorter gaps); gaps between frames are bursty (most tiny, some long lulls). Frames:

- Ticker: a quote update (``bid_price``, ``ask_price``, ``last_price`` = the last print, ``volume`` 0: the
  prints are the Trade frames, so a backtest never counts a trade twice);
- Trade (``order_id`` 0): a print at the quote with its aggressor side (a buy at the ask, a sell at the bid);
- Order + Trade: every ``order_every`` frames an order resting at the touch (a buy at the bid, a sell at the
  ask) and, next, its fill: a Trade of the same symbol naming the order's id, at its price, the aggressor the
  other side;
- Depth (with ``depth`` N > 0): after every Ticker and print, the symbol's book, N levels a side one tick
  apart from the quote, sizes that move: a print at the ask takes its volume off the ask size.

Frames are generated as numpy arrays and appended a batch at a time (``Writer.write_raw_frames``).
Prices are exact multiples of the tick (the nearest double to the decimal price).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from .errors import OutputError, UsageError
from .journal.format import DEPTH, DEPTH_LEVELS, FRAME_HEADER, FRAME_HEADER_SIZE, ORDER, TICKER, TRADE, MsgType
from .journal.reader import Reader
from .journal.writer import Writer
from .outputs import check_output

DEFAULT_SYMBOLS = ("AAPL", "MSFT", "NVDA", "TSLA", "AMZN")
#: frames/s of the recording's own clock when frames are written as fast as possible (``rate`` 0)
CLOCK_RATE = 100_000.0
#: where that clock starts (2026-01-05 14:30 UTC): the same seed gives the same bytes
SIM_EPOCH = 1_767_623_400_000_000_000

#: progress(frames written, frames asked for or None)
Progress = Callable[[int, "int | None"], None]

_KINDS = (  # kind code -> (msg type, layout)
    (MsgType.TICKER, TICKER), (MsgType.TRADE, TRADE), (MsgType.ORDER, ORDER), (MsgType.TRADE, TRADE),
    (MsgType.DEPTH, DEPTH),
)
TICK, PRINT, ORDER_NEW, ORDER_FILL, BOOK = range(5)


@dataclass
class SimulateResult:
    frames: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


def simulate(
    path: str,
    *,
    rate: float = 10_000.0,
    duration: float | None = None,
    frames: int | None = None,
    symbols: str | tuple[str, ...] = DEFAULT_SYMBOLS,
    page_size: int | None = None,
    seed: int = 0,
    order_every: int = 20,
    stop: threading.Event | None = None,
    append: bool = False,
    tick: float = 0.01,
    depth: int = 0,
    progress: Progress | None = None,
) -> SimulateResult:
    """Write a simulated market (module docstring) to ``path``.

    ``rate`` is frames per second of wall-clock time (0 = as fast as possible); frames carry the recording's
    own bursty clock (``gen_time``) averaging ``rate`` frames/s, from now, and a paced run writes each frame
    when its time comes; with ``rate`` 0 the clock averages ``CLOCK_RATE`` frames/s from ``SIM_EPOCH`` (after
    the last frame when appending). Stops after ``frames``, ``duration`` seconds, or when ``stop``
    is set. ``tick`` is the price grid, ``depth`` the levels a side of Depth frames (0: none). The same
    ``seed`` and arguments give the same frames. An existing journal is refused unless ``append`` (the market
    then starts again from ``seed``). Every argument is checked before anything is written. ``progress`` is
    called after each batch.
    """
    path = os.fspath(path)
    names = check_symbols(symbols)
    if not (isinstance(rate, int | float) and rate >= 0 and math.isfinite(rate)):
        raise UsageError(f"--rate must be a finite number >= 0, not {rate!r}")
    if frames is not None and frames < 0:
        raise UsageError(f"--frames must be >= 0, not {frames}")
    if duration is not None and not (duration >= 0 and math.isfinite(duration)):
        raise UsageError(f"--duration must be a finite number >= 0, not {duration}")
    if order_every < 0:
        raise UsageError(f"order_every must be >= 0, not {order_every}")
    if not (isinstance(tick, int | float) and math.isfinite(tick) and 1e-9 <= tick <= 1e6):
        raise UsageError(f"--tick must be a price step between 1e-9 and 1e6, not {tick!r}")
    if not (isinstance(depth, int) and 0 <= depth <= DEPTH_LEVELS):
        raise UsageError(f"--depth must be 0 to {DEPTH_LEVELS} levels a side, not {depth!r}")
    check_output(path, force=True, what="simulated journal")
    if os.path.lexists(path) and not append:
        raise OutputError(f"{path}: already exists; simulate adds frames to a journal only with --append")
    if append and not os.path.lexists(path):
        raise OutputError(f"{path}: no such journal to append to (leave out --append to create it)")
    start = time.time_ns() if rate else SIM_EPOCH
    if append:
        with Reader(path) as r:
            last = r.last_time()
        if last is not None:
            start = max(start, last + 1)  # the clock goes on after the journal's last frame
    market = Market(names, seed=seed, tick=tick, depth=depth, order_every=order_every,
                    clock_rate=rate or CLOCK_RATE, start=start)
    batch = 1 << 14 if not rate else int(min(4096, max(16, rate / 50)))
    written = 0
    t0 = time.perf_counter()
    wall0 = time.time_ns()
    with Writer(path, page_size=page_size) as w:
        while True:
            if frames is not None and written >= frames:
                break
            if duration is not None and time.perf_counter() - t0 >= duration:
                break
            if stop is not None and stop.is_set():
                break
            n = batch if frames is None else min(batch, frames - written)
            data, starts, times = market.frames(n)
            last = len(times) if frames is None else min(len(times), frames - written)
            if not rate:
                written += w.write_raw_frames(data, starts, 0, last)
            else:
                written += _paced(w, data, starts[:last + 1], times - market.start + wall0, t0, duration, stop)
            if progress is not None:
                progress(written, frames)
    return SimulateResult(written, time.perf_counter() - t0)


def _paced(w: Writer, data, starts, due, t0: float, duration: float | None, stop: threading.Event | None) -> int:
    """Write frames when their wall-clock time ``due`` (ns) comes; returns how many were written."""
    k, n = 0, len(starts) - 1
    while k < n:
        if duration is not None and time.perf_counter() - t0 >= duration:
            break
        if stop is not None and stop.is_set():
            break
        now = time.time_ns()
        e = int(np.searchsorted(due, now, "right"))
        if e > k:
            w.write_raw_frames(data, starts, k, e)
            k = e
        else:
            time.sleep(min(0.05, (int(due[k]) - now) / 1e9))
    return k


class Market:
    """The simulated market's state; :meth:`frames` makes the next ``n`` frames as bytes."""

    def __init__(self, names: tuple[str, ...], *, seed: int, tick: float, depth: int, order_every: int,
                 clock_rate: float, start: int):
        self.rng = np.random.default_rng(seed)
        self.names = np.array([s.encode() for s in names], dtype="S16")
        self.tick = tick
        self.decimals = max(0, -Decimal(repr(tick)).normalize().as_tuple().exponent)  # type: ignore[operator]
        inv = round(1 / tick)
        self.per_unit = inv if inv >= 1 and Decimal(repr(tick)) * inv == 1 else 0
        self.depth = depth
        self._buf = np.empty(0, np.uint64)
        self.order_every = order_every
        self.gap = 1e9 / clock_rate
        self.start = self.now = start
        nsym = len(names)
        rng = self.rng
        self.bid = np.round((100.0 + 50.0 * rng.random(nsym)) / tick).astype(np.int64)
        self.spread = np.ones(nsym, np.int64)
        self.last = self.bid.copy()
        self.bid_size = np.round(rng.lognormal(3.5, 0.5, nsym))
        self.ask_size = np.round(rng.lognormal(3.5, 0.5, nsym))
        self.bid_seen = self.bid.copy()  # best prices the sizes above belong to
        self.ask_seen = self.bid + 1
        self.regime, self.regime_left = 0, 0
        self.index = 0  # frames made so far
        self.order_id = 0
        self.trade_id = 0
        self.pending: tuple | None = None  # an order whose fill is the next batch's first frame

    def _regimes(self, n: int) -> np.ndarray:
        """Calm (0) or busy (1) per event: runs of ~5000 calm and ~1000 busy events."""
        out = np.empty(n, np.int8)
        k = 0
        while k < n:
            if self.regime_left == 0:
                self.regime ^= 1
                self.regime_left = 1 + int(self.rng.geometric(1 / (1000 if self.regime else 5000)))
            m = min(self.regime_left, n - k)
            out[k:k + m] = self.regime
            self.regime_left -= m
            k += m
        return out

    def _price(self, ticks) -> np.ndarray:
        if self.per_unit:  # ticks / 100 is the double nearest the decimal price, in one rounding
            return np.asarray(ticks) / self.per_unit
        return np.round(np.asarray(ticks) * self.tick, self.decimals)

    def frames(self, n: int):
        """``(data, starts, gen_times)`` of the frames of the next ``n`` market events (with depth, a ticker's
        or a print's book follows it: up to ``2 n`` frames)."""
        kind, sym, ev = self._events(n)
        return self._assemble(kind, sym, ev)

    def _events(self, m: int):
        rng = self.rng
        nsym = len(self.names)
        busy = self._regimes(m) == 1
        u = rng.random((8, m))  # one draw for all the coin flips below
        kind = np.where(u[0] < np.where(busy, 0.30, 0.12), PRINT, TICK).astype(np.int8)
        sym = (u[1] * nsym).astype(np.int64)
        if self.order_every:
            g = self.index + np.arange(m)  # the order/fill pairs keep their place across batches
            kind[g % self.order_every == self.order_every - 1] = ORDER_NEW
            kind[(g % self.order_every == 0) & (g > 0)] = ORDER_FILL
        self.index += m
        # the quote: only tickers move it; a busy market moves more often and further
        move = (kind == TICK) & (u[2] < np.where(busy, 0.3, 0.1))
        step = np.where(move, np.where(u[3] < 0.5, -1, 1) * np.where(busy & (u[4] < 0.5), 2, 1), 0)
        respread = (kind == TICK) & (u[5] < np.where(busy, 0.08, 0.02))
        new_spread = np.where(u[4] < np.where(busy, 0.5, 0.75), 1, np.where(u[4] < 0.9, 2, 3))
        side = (u[6] < 0.5).astype(np.int8)  # a print's aggressor, an order's side: 0 buy, 1 sell
        qty = np.maximum(1.0, np.round(rng.lognormal(1.0, 0.9, m)))
        gaps = self._gaps(busy, u[7], m)
        # an order's fill names the order just before it (the previous batch's last order for the first)
        order_ix = np.flatnonzero(kind == ORDER_NEW)
        fill_ix = np.flatnonzero(kind == ORDER_FILL)
        which = np.searchsorted(order_ix, fill_ix) - 1
        if len(which) and which[0] < 0 and self.pending is not None:
            sym[fill_ix[0]] = self.pending[0]
        sym[fill_ix[which >= 0]] = sym[order_ix[which[which >= 0]]]
        bid = np.empty(m, np.int64)
        spread = np.empty(m, np.int64)
        last = np.empty(m, np.int64)
        bid_size = np.empty(m)
        ask_size = np.empty(m)
        if self.depth:
            refill = np.round(rng.lognormal(3.5, 0.6, (2, m)))
            churn = np.round(rng.normal(0.0, 1.5, (2, m)))
        for s in range(nsym):
            ix = np.flatnonzero(sym == s)
            if not len(ix):
                continue
            b = np.maximum(1, self.bid[s] + np.cumsum(step[ix]))
            rs = respread[ix]  # the spread holds until redrawn
            drawn = np.maximum.accumulate(np.where(rs, np.arange(len(ix)), -1))
            sp = np.where(drawn >= 0, new_spread[ix][np.maximum(drawn, 0)], self.spread[s])
            k = kind[ix]
            px = np.where(k == PRINT, np.where(side[ix] == 0, b + sp, b), -1)  # a buy at the ask, a sell at the bid
            seen = np.maximum.accumulate(np.where(px >= 0, np.arange(len(ix)), -1))
            la = np.where(seen >= 0, px[np.maximum(seen, 0)], self.last[s])
            bid[ix], spread[ix], last[ix] = b, sp, la
            self.bid[s], self.spread[s], self.last[s] = b[-1], sp[-1], la[-1]
            if self.depth:
                bid_size[ix], ask_size[ix] = self._sizes(s, b, b + sp, k, side[ix], qty[ix], refill[:, ix],
                                                          churn[:, ix])
        # orders rest at the touch: a buy at the bid, a sell at the ask
        order_px = np.where(side == 0, bid, bid + spread)
        oid = np.zeros(m, np.uint64)
        oid[order_ix] = self.order_id + 1 + np.arange(len(order_ix), dtype=np.uint64)
        self.order_id += len(order_ix)
        fill_cols = {}
        for name, col in (("oid", oid), ("px", order_px), ("side", side), ("qty", qty)):
            c = col.copy()
            if len(which):
                pend = self.pending[("sym", "oid", "px", "side", "qty").index(name)] if self.pending else 0
                c[fill_ix] = np.where(which >= 0, col[order_ix[np.maximum(which, 0)]], pend)
            fill_cols[name] = c
        if m and kind[-1] == ORDER_NEW:
            self.pending = (sym[-1], oid[-1], order_px[-1], side[-1], qty[-1])
        elif len(order_ix) or len(fill_ix):
            self.pending = None
        ev = {"bid": bid, "spread": spread, "last": last, "side": side, "qty": qty, "bid_size": bid_size,
              "ask_size": ask_size, "order_px": order_px, "oid": oid, "fill": fill_cols, "time": gaps}
        return kind, sym, ev

    def _sizes(self, s, bid, ask, kind, side, qty, refill, churn):
        """Best bid and ask sizes after each event of symbol ``s``: a new best level starts afresh, a print
        takes its volume off the side it hit, a quote update adds or takes a little."""
        out = []
        for k, (price, seen, size_now, hit) in enumerate(((bid, self.bid_seen, self.bid_size, 1),
                                                          (ask, self.ask_seen, self.ask_size, 0))):
            new = price != np.concatenate(([seen[s]], price[:-1]))
            took = np.where((kind == PRINT) & (side == hit), -qty, 0.0)
            delta = np.where(new, 0.0, took + np.where(kind == TICK, churn[k], 0.0))
            epoch = np.cumsum(new)
            base = np.concatenate(([size_now[s]], refill[k][new]))
            c = np.cumsum(delta)
            size = np.maximum(1.0, base[epoch] + c - np.concatenate(([0.0], c[new]))[epoch])
            size_now[s], seen[s] = size[-1], price[-1]
            out.append(size)
        return out[0], out[1]

    def _assemble(self, kind, sym, ev):
        m = len(kind)
        if self.depth:
            # each ticker and print is followed by its book, at the same time
            src = np.repeat(np.arange(m), 1 + ((kind == TICK) | (kind == PRINT)))
            fkind = kind[src].copy()
            fkind[np.concatenate(([False], src[1:] == src[:-1]))] = BOOK
        else:
            src = np.arange(m)
            fkind = kind
        times = ev["time"][src]
        sizes = np.array([FRAME_HEADER_SIZE + layout.size for _, layout in _KINDS], np.int64)
        starts = np.zeros(len(fkind) + 1, np.int64)
        np.cumsum(sizes[fkind], out=starts[1:])
        if len(self._buf) < int(starts[-1]) // 8:
            self._buf = np.empty(int(starts[-1]) // 8, np.uint64)  # every word is written below
        words = self._buf[:int(starts[-1]) // 8]
        is_trade = (fkind == PRINT) | (fkind == ORDER_FILL)
        trade_id = self.trade_id + np.cumsum(is_trade, dtype=np.uint64)  # in frame order
        self.trade_id += int(is_trade.sum())
        for code, (msg, layout) in enumerate(_KINDS):
            ix = np.flatnonzero(fkind == code)
            if not len(ix):
                continue
            e = src[ix]  # the events these frames show
            rec = np.zeros(len(ix), np.dtype([("h", FRAME_HEADER.dtype), ("p", layout.dtype)]))
            rec["h"]["length"] = layout.size
            rec["h"]["msg_type"] = int(msg)
            rec["h"]["gen_time"] = times[ix]
            p = rec["p"]
            p["symbol"] = self.names[sym[e]]
            if code == TICK:
                p["bid_price"] = self._price(ev["bid"][e])
                p["ask_price"] = self._price(ev["bid"][e] + ev["spread"][e])
                p["last_price"] = self._price(ev["last"][e])
            elif code == PRINT:
                p["trade_id"] = trade_id[ix]
                p["side"] = ev["side"][e]
                p["price"] = self._price(ev["last"][e])
                p["volume"] = ev["qty"][e]
            elif code == ORDER_NEW:
                p["order_id"] = ev["oid"][e]
                p["side"] = ev["side"][e]
                p["order_type"] = 0
                p["price"] = self._price(ev["order_px"][e])
                p["quantity"] = ev["qty"][e]
                p["client_order_id"] = np.char.add(b"sim-", ev["oid"][e].astype("S20"))
            elif code == ORDER_FILL:
                f = ev["fill"]
                p["trade_id"] = trade_id[ix]
                p["order_id"] = f["oid"][e]
                p["side"] = 1 - f["side"][e]  # the aggressor took the resting order
                p["price"] = self._price(f["px"][e])
                p["volume"] = f["qty"][e]
            else:
                n = self.depth
                lv = np.arange(n)
                b = ev["bid"][e][:, None] - lv
                a = (ev["bid"][e] + ev["spread"][e])[:, None] + lv
                sz = np.round(self.rng.lognormal(3.8, 0.6, (2, len(ix), n)))
                sz[0, :, 0], sz[1, :, 0] = ev["bid_size"][e], ev["ask_size"][e]
                p["bid_price"][:, :n] = self._price(np.maximum(b, 0))
                p["bid_volume"][:, :n] = np.where(b > 0, sz[0], 0.0)
                p["ask_price"][:, :n] = self._price(a)
                p["ask_volume"][:, :n] = sz[1]
            width = rec.itemsize // 8
            words[(starts[ix] // 8)[:, None] + np.arange(width)] = rec.view(np.uint64).reshape(len(ix), width)
        return words.view(np.uint8), starts, times

    def _gaps(self, busy, u, m: int) -> np.ndarray:
        """gen_times: bursts (9 gaps in 10 a tenth of the mean) and lulls (~9x the mean); a busy market is
        three times as dense."""
        scale = self.gap * np.where(u < 0.9, 0.1, 9.1) * np.where(busy, 0.4, 1.12)
        t = self.now + np.cumsum(self.rng.standard_exponential(m) * scale).astype(np.int64)
        if m:
            self.now = int(t[-1])
        return t


def check_symbols(symbols) -> tuple[str, ...]:
    """The symbols as a tuple: at least one, each 1..16 bytes of UTF-8."""
    if isinstance(symbols, str):
        symbols = tuple(s.strip() for s in symbols.split(",") if s.strip())
    symbols = tuple(symbols)
    if not symbols:
        raise UsageError("--symbols: give at least one symbol (a comma-separated list)")
    for s in symbols:
        if not isinstance(s, str) or not s or len(s.encode()) > 16:
            raise UsageError(f"--symbols: {s!r} must be 1 to 16 bytes of text")
    return symbols
