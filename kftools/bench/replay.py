"""Replay pacing accuracy (lateness at speeds 1 and 10) and ``--max`` throughput.

The recording is a simulated feed at exactly ``rate`` frames/s (tickers with
an order and a trade every 20 frames, gen_time evenly spaced), written in
RAM (/dev/shm) as engines place live journals.
"""

from __future__ import annotations

import os
import shutil
import statistics

from . import scratch_dir

REPEAT = 3


def _record(path: str, frames: int, rate: float) -> None:
    from kftools.journal.writer import Writer

    gap = round(1e9 / rate)
    t0 = 1_800_000_000_000_000_000
    syms = ("AAPL", "MSFT", "NVDA", "TSLA", "AMZN")
    with Writer(path, page_size=max(1 << 20, frames * 100 + 4096)) as w:
        for k in range(frames):
            sym = syms[k % 5]
            g = t0 + k * gap
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
        _record(src, frames, rate)
        page = frames * max_loops * 100 + 4096  # one output page: rolling is not what we measure
        for speed in (1, 10):
            runs = [replay(src, out, speed=speed, force=True, page_size=page) for _ in range(REPEAT)]
            summ = [r.lateness_summary() for r in runs]
            key = f"replay.speed{speed}"
            for name in ("lateness_p50_ns", "lateness_p99_ns", "lateness_max_ns", "late_over_1ms"):
                res[f"{key}.{name}"] = int(statistics.median(s[name] for s in summ))
            speeds = [r.achieved_speed for r in runs]
            if any(s is None for s in speeds):
                raise RuntimeError(f"replay at speed {speed}: no frame replayed, no achieved speed")
            res[f"{key}.achieved_speed"] = round(statistics.median(s for s in speeds if s is not None), 4)
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
