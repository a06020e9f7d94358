"""Backtest throughput: frames per second through the simulated exchange in ``--max`` mode.

One recording (a bursty random-walk feed: tickers with a market trade every 10
frames, gaps drawn from bursts and lulls), replayed in the same run:

- ``replay --max`` with no strategy (the baseline: copying frames);
- a backtest with a strategy that does nothing (no per-frame callback);
- a backtest with a strategy whose ``on_ticker`` only returns (a Python call per ticker);
- a backtest with ``examples/strategy_example.py`` (orders, cancels, fills).

Each is the median of ``repeat`` runs, timed around the whole ``Replay.run()``
(results written, chart off).
"""

from __future__ import annotations

import os
import shutil
import statistics
import time

import numpy as np

from . import scratch_dir

SYMBOLS = ("AAPL", "MSFT", "NVDA", "TSLA", "AMZN")


def record(path: str, frames: int, seed: int = 7) -> None:
    """A bursty feed: 90% of gaps ~2 µs (bursts), 10% ~1 ms (lulls); prices on a random walk."""
    from kftools.journal.writer import Writer

    rng = np.random.default_rng(seed)
    gaps = np.where(rng.random(frames) < 0.9, rng.exponential(2_000, frames), rng.exponential(1_000_000, frames))
    times = (1_800_000_000_000_000_000 + np.cumsum(gaps)).astype(np.int64).tolist()
    sym = rng.integers(0, len(SYMBOLS), frames).tolist()
    steps = rng.choice([-0.01, 0.0, 0.01], frames).tolist()
    vols = rng.integers(1, 100, frames).astype(float).tolist()
    px = [100.0 + 20 * k for k in range(len(SYMBOLS))]
    with Writer(path, page_size=max(1 << 20, frames * 90 + 4096)) as w:
        wt, wx = w.write_ticker, w.write_trade
        for k in range(frames):
            i = sym[k]
            px[i] = round(px[i] + steps[k], 2)
            p = px[i]
            if k % 10 == 9:
                wx(SYMBOLS[i], k, p, vols[k], k & 1, gen_time=times[k])
            else:
                wt(SYMBOLS[i], p, round(p - 0.01, 2), round(p + 0.01, 2), vols[k], gen_time=times[k])


class DoNothing:
    """No per-frame callback: the simulator runs, the strategy is never called per frame."""

    def on_start(self, ctx):
        pass


class EmptyTicker:
    """A Python call per ticker that does nothing."""

    def on_ticker(self, ctx, frame):
        pass


def run(frames: int = 1_000_000, repeat: int = 3) -> dict:
    from kftools.replay import Replay, load_strategy

    example = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                           "examples", "strategy_example.py")
    d = scratch_dir()
    src = os.path.join(d, "rec.dat")
    out = os.path.join(d, "out.dat")
    res: dict = {"backtest.recording_frames": frames}
    try:
        record(src, frames)
        plans = [("replay_max", lambda: None), ("do_nothing", DoNothing), ("empty_on_ticker", EmptyTicker)]
        if os.path.exists(example):
            plans.append(("example", lambda: load_strategy(example)))
        for name, make in plans:
            rates = []
            for _ in range(repeat):
                strategy = make()
                rep = Replay(src, out, speed=None, strategy=strategy, force=True, chart=False,
                             page_size=frames * 100 + (1 << 20))
                t0 = time.perf_counter()
                st = rep.run()
                rates.append(st.frames / (time.perf_counter() - t0))
                if name == "example" and st.backtest is not None:
                    res["backtest.example.orders"] = st.backtest.summary["orders"]
                    res["backtest.example.fills"] = st.backtest.summary["fills"]
            res[f"backtest.{name}.frames_per_s"] = round(statistics.median(rates))
        base = res["backtest.replay_max.frames_per_s"]
        for name, _m in plans[1:]:
            res[f"backtest.{name}.vs_replay_max"] = round(res[f"backtest.{name}.frames_per_s"] / base, 3)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return res
