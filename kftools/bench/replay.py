"""Replay pacing accuracy (lateness at speeds 1 and 10) and ``--max`` throughput.

Two recordings of the same length and mean rate, written in RAM (/dev/shm) as
engines place live journals (tickers with an order and a trade every 20 frames):

- uniform: gen_time exactly ``rate`` frames/s, evenly spaced (a tidy feed);
- bursty: market-like, clusters of frames sharing one gen_time (geometric
  sizes, mean ~3.3, up to hundreds) separated by exponential gaps, so the mean
  rate is still ``rate`` but a burst of frames falls due at the same instant.
"""

from __future__ import annotations

import os
import shutil
import statistics

from . import scratch_dir

REPEAT = 3


def bursty_times(frames: int, rate: float, seed: int = 0, t0: int = 1_800_000_000_000_000_000) -> list[int]:
    """gen_times of a bursty feed: clusters with one time each, exponential gaps between them, mean rate ``rate``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    sizes = rng.geometric(0.3, size=frames)  # mean 1/0.3 frames per cluster
    sizes = sizes[: int(np.searchsorted(np.cumsum(sizes), frames)) + 1]
    sizes[-1] -= int(sizes.sum()) - frames
    gaps = rng.exponential(sizes.mean() * 1e9 / rate, size=len(sizes)).astype(np.int64)
    starts = t0 + np.cumsum(gaps) - gaps[0]
    return np.repeat(starts, sizes).tolist()


def _record(path: str, frames: int, rate: float, bursty: bool = False) -> None:
    from kftools.journal.writer import Writer

    gap = round(1e9 / rate)
    t0 = 1_800_000_000_000_000_000
    times = bursty_times(frames, rate, t0=t0) if bursty else [t0 + k * gap for k in range(frames)]
    syms = ("AAPL", "MSFT", "NVDA", "TSLA", "AMZN")
    with Writer(path, page_size=max(1 << 20, frames * 100 + 4096)) as w:
        for k in range(frames):
            sym = syms[k % 5]
            g = times[k]
            if k % 20 == 19:
                w.write_order(sym, k, k & 1, 0, 100.0, 10.0, gen_time=g)
            elif k % 20 == 0 and k:
                w.write_trade(sym, k, 100.0, 10.0, k & 1, k - 1, gen_time=g)
            else:
                w.write_ticker(sym, 100.0 + k % 7, 99.99, 100.01, 5.0, gen_time=g)


def run(frames: int = 200_000, rate: float = 100_000.0, max_loops: int = 20) -> dict:
    from kftools.replay import replay

    d = scratch_dir()
    src = os.path.join(d, "rec.dat")
    out = os.path.join(d, "out.dat")
    res: dict = {"replay.recording_frames": frames, "replay.recording_rate": rate}
    try:
        page = frames * max_loops * 100 + 4096  # one output page: rolling is not what we measure
        for label, bursty in (("", False), ("bursty.", True)):
            _record(src, frames, rate, bursty=bursty)
            for speed in (1, 10):
                runs = [replay(src, out, speed=speed, force=True, page_size=page) for _ in range(REPEAT)]
                summ = [r.lateness_summary() for r in runs]
                key = f"replay.{label}speed{speed}"
                for name in ("lateness_p50_ns", "lateness_p99_ns", "lateness_max_ns", "late_over_1ms"):
                    res[f"{key}.{name}"] = int(statistics.median(s[name] for s in summ))
                res[f"{key}.late_over_1ms_worst"] = max(s["late_over_1ms"] for s in summ)
                speeds = [r.achieved_speed for r in runs]
                if any(s is None for s in speeds):
                    raise RuntimeError(f"replay at speed {speed}: no frame replayed, no achieved speed")
                res[f"{key}.achieved_speed"] = round(statistics.median(s for s in speeds if s is not None), 4)
            os.unlink(src)
        _record(src, frames, rate)
        res["replay.lateness_p50_ns"] = res["replay.speed1.lateness_p50_ns"]
        res["replay.lateness_p99_ns"] = res["replay.speed1.lateness_p99_ns"]
        rates = []
        for _ in range(REPEAT):
            st = replay(src, out, speed=None, loops=max_loops, force=True, page_size=page)
            rates.append(st.frames / (st.wall_ns / 1e9))
        res["replay.max_frames"] = frames * max_loops
        res["replay.max_frames_per_s"] = round(statistics.median(rates))
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return res
