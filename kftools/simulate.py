"""A synthetic market feed written at a controlled rate (demos, tests, benchmarks)."""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass

import numpy as np

from .errors import OutputError, UsageError
from .journal.writer import Writer
from .outputs import check_output

DEFAULT_SYMBOLS = ("AAPL", "MSFT", "NVDA", "TSLA", "AMZN")


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
) -> SimulateResult:
    """Write tickers on a random walk, with an order and a trade every ``order_every`` frames.

    ``rate`` is frames per second (0 = as fast as possible); stops after
    ``frames``, ``duration`` seconds, or when ``stop`` is set. An existing
    journal is refused unless ``append`` (the walk then starts again from
    ``seed``). Every argument is checked before anything is written.
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
    check_output(path, force=True, what="simulated journal")
    if os.path.lexists(path) and not append:
        raise OutputError(f"{path}: already exists; simulate adds frames to a journal only with --append")
    if append and not os.path.lexists(path):
        raise OutputError(f"{path}: no such journal to append to (leave out --append to create it)")
    rng = np.random.default_rng(seed)
    nsym = len(names)
    prices = 100.0 + 50.0 * rng.random(nsym)
    burst = 1024 if not rate or rate >= 100_000 else max(1, int(rate // 1000) or 1)
    written = 0
    order_id = 0
    t0 = time.perf_counter()
    with Writer(path, page_size=page_size, append=True) as w:
        wt, wo, wtr = w.write_ticker, w.write_order, w.write_trade
        while True:
            if frames is not None and written >= frames:
                break
            if duration is not None and time.perf_counter() - t0 >= duration:
                break
            if stop is not None and stop.is_set():
                break
            n = burst if frames is None else min(burst, frames - written)
            sym_idx = rng.integers(0, nsym, n)
            steps = rng.normal(0.0, 0.01, n)
            vols = rng.integers(1, 100, n).astype(float)
            for k in range(n):
                i = int(sym_idx[k])
                prices[i] = max(0.01, prices[i] * (1.0 + steps[k] * 0.01))
                px = round(float(prices[i]), 4)
                sym = names[i]
                written += 1
                if order_every and written % order_every == 0:
                    order_id += 1
                    side = order_id & 1
                    wo(sym, order_id, side, 0, px, vols[k], 0.0, f"sim-{order_id}")
                elif order_every and written % order_every == 1 and order_id:
                    wtr(sym, written, px, vols[k], order_id & 1, order_id)
                else:
                    wt(sym, px, px - 0.01, px + 0.01, vols[k])
            if rate:
                ahead = t0 + written / rate - time.perf_counter()
                if ahead > 0:
                    time.sleep(ahead)
    return SimulateResult(written, time.perf_counter() - t0)


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
