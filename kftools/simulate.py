"""A synthetic market feed written at a controlled rate (demos, tests, benchmarks)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from .journal.writer import Writer

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
    symbols: tuple[str, ...] = DEFAULT_SYMBOLS,
    page_size: int | None = None,
    seed: int = 0,
    order_every: int = 20,
    stop: threading.Event | None = None,
) -> SimulateResult:
    """Write tickers on a random walk, with an order and a trade every ``order_every`` frames.

    ``rate`` is frames per second (0 = as fast as possible); stops after
    ``frames``, ``duration`` seconds, or when ``stop`` is set.
    """
    rng = np.random.default_rng(seed)
    nsym = len(symbols)
    prices = 100.0 + 50.0 * rng.random(nsym)
    burst = 1024 if not rate or rate >= 100_000 else max(1, int(rate // 1000) or 1)
    written = 0
    order_id = 0
    t0 = time.perf_counter()
    with Writer(path, page_size=page_size) as w:
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
                sym = symbols[i]
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
