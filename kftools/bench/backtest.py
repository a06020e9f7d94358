"""Backtest throughput: frames per second through the simulated exchange in ``--max`` mode.

One recording (a bursty random-walk feed: tickers with a market trade every 10
frames, gaps drawn from bursts and lulls), replayed in the same run:

- ``replay --max`` with no strategy (the baseline: copying frames);
- a backtest with a strategy that does nothing (no per-frame callback);
- a backtest with a strategy whose ``on_ticker`` only returns (a Python call per ticker);
- a backtest with ``examples/strategy_example.py`` (orders, cancels, fills);
- on a second recording, ``kftools simulate``'s market (prints, orders, a tick grid): a backtest with
  ``examples/strategy_maker.py`` (an order or a cancel on about a third of the frames) and the same logic
  in hftbacktest 2.4.4 (``bench/hft_maker.py``, numba, compile not timed) when it is installed, and the
  ratio of their frames/s;
- the same strategy out of process (``replay --order-journal``, lockstep), on
  the first ``gateway_frames`` frames: in a Python process
  (``examples/strategy_process.py``) at latency 0 and 200 µs, and compiled from
  ``examples/strategy_cpp.cpp`` when a C++ compiler is there. One run each,
  timed around the replay process (the strategy's start-up included).

Each in-process case is the median of ``repeat`` runs, timed around the whole
``Replay.run()`` (results written, chart off). ``chart`` writes the example's
chart (PNG) from one more run.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from typing import Any

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


def record_market(path: str, frames: int, seed: int = 7) -> None:
    """``kftools simulate``'s market (five symbols on a tick grid, a bursty clock, prints, orders and their
    fills): the maker example sends an order or a cancel on about a third of its frames."""
    from kftools.simulate import simulate

    simulate(path, rate=0, frames=frames, seed=seed, page_size=max(1 << 20, frames * 100 + 4096))


class DoNothing:
    """No per-frame callback: the simulator runs, the strategy is never called per frame."""

    def on_start(self, ctx):
        pass


class EmptyTicker:
    """A Python call per ticker that does nothing."""

    def on_ticker(self, ctx, frame):
        pass


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(frames: int = 1_000_000, repeat: int = 3, gateway_frames: int = 20_000, chart: str | None = None) -> dict:
    from kftools.replay import Replay, load_strategy

    example = os.path.join(ROOT, "examples", "strategy_example.py")
    maker = os.path.join(ROOT, "examples", "strategy_maker.py")
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
        from kftools.backtest import backtest as run_backtest

        rates = [frames / _timed(lambda: run_backtest(src, DoNothing, chart=False))[0] for _ in range(repeat)]
        res["backtest.api_do_nothing.frames_per_s"] = round(statistics.median(rates))
        if os.path.exists(maker):
            res.update(_maker(d, frames, repeat, maker))
        base = res["backtest.replay_max.frames_per_s"]
        for name, _m in plans[1:]:
            res[f"backtest.{name}.vs_replay_max"] = round(res[f"backtest.{name}.frames_per_s"] / base, 3)
        if chart and os.path.exists(example):
            folder = os.path.join(d, "chart.backtest")
            Replay(src, out, speed=None, strategy=load_strategy(example), force=True, results=folder,
                   page_size=frames * 100 + (1 << 20)).run()
            from kftools.backtest.chart import draw_folder

            draw_folder(folder, chart, recordings=[src])  # with the recording: the price panel has the market
            res["backtest.chart"] = chart
        if gateway_frames and os.path.exists(example):
            res.update(_gateway(d, min(gateway_frames, frames), example))
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return res


def _timed(fn) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds of this process, result) of ``fn()``."""
    w, c = time.perf_counter(), time.process_time()
    r = fn()
    return time.perf_counter() - w, time.process_time() - c, r


def _maker(d: str, frames: int, repeat: int, maker: str) -> dict:
    """The maker example (kftools.backtest(), touch fills: what ``kftools backtest`` runs) and the same logic in
    hftbacktest, alternately on one simulated market; the same example through ``replay --max --strategy``."""
    from kftools.backtest import backtest as run_backtest
    from kftools.replay import Replay, load_strategy

    src, out = os.path.join(d, "market.dat"), os.path.join(d, "market-out.dat")
    record_market(src, frames)
    res: dict = {"backtest.market.recording_frames": frames}
    hft = _hftbacktest_maker(src, repeat)
    rates, cpu_rates = [], []
    for _ in range(repeat):
        wall, cpu, r = _timed(lambda: run_backtest(src, maker + ":Maker", chart=False))
        rates.append(frames / wall)
        cpu_rates.append(frames / cpu)
        for k in ("orders", "cancels", "fills"):
            res[f"backtest.maker.{k}"] = r.summary[k]
    res["backtest.maker.frames_per_s"] = round(statistics.median(rates))
    res["backtest.maker.frames_per_cpu_s"] = round(statistics.median(cpu_rates))
    if hft:
        res.update(hft)
        res["backtest.maker.vs_hftbacktest"] = round(
            res["backtest.maker.frames_per_s"] / res["backtest.hftbacktest_maker.frames_per_s"], 3)
        res["backtest.maker.vs_hftbacktest_cpu"] = round(
            res["backtest.maker.frames_per_cpu_s"] / res["backtest.hftbacktest_maker.frames_per_cpu_s"], 3)
    rates = []
    for _ in range(repeat):
        rep = Replay(src, out, speed=None, strategy=load_strategy(maker), force=True, chart=False,
                     page_size=frames * 130 + (1 << 20))
        wall, _cpu, st = _timed(rep.run)
        rates.append(st.frames / wall)
    res["backtest.maker_replay.frames_per_s"] = round(statistics.median(rates))
    return res


def _hftbacktest_maker(src: str, repeat: int = 1) -> dict:
    """The maker example as an hftbacktest numba strategy (bench/hft_maker.py) on the same recording, when
    hftbacktest is installed (the ``test`` extra); its numba compile is not timed."""
    import importlib.util

    path = os.path.join(ROOT, "bench", "hft_maker.py")
    if importlib.util.find_spec("hftbacktest") is None or not os.path.exists(path):
        return {}
    spec = importlib.util.spec_from_file_location("hft_maker", path)
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    r = mod.run(src, repeat=repeat)
    return {"backtest.hftbacktest_maker.frames_per_s": round(r["frames"] / r["seconds"]),
            "backtest.hftbacktest_maker.frames_per_cpu_s": round(r["frames"] / r["cpu_seconds"]),
            "backtest.hftbacktest_maker.orders": r["orders"], "backtest.hftbacktest_maker.cancels": r["cancels"],
            "backtest.hftbacktest_maker.fills": r["fills"]}


def _gateway(d: str, frames: int, example: str) -> dict:
    """Frames/s of lockstep backtests with the example strategy in its own process (Python, C++)."""
    src = os.path.join(d, "gw.dat")
    record(src, frames)
    res: dict = {"backtest.gateway.recording_frames": frames}
    host = [sys.executable, os.path.join(ROOT, "examples", "strategy_process.py"), example]
    cases = [("python", host, "0"), ("python_latency_200us", host, "200us")]
    cxx = os.environ.get("CXX", "g++")
    exe = os.path.join(d, "strategy_cpp")
    if shutil.which(cxx) and subprocess.run(
            [cxx, "-O2", "-std=c++17", f"-I{ROOT}/cpp/include", "-o", exe,
             os.path.join(ROOT, "examples", "strategy_cpp.cpp")], capture_output=True).returncode == 0:
        cases += [("cpp", [exe], "0"), ("cpp_latency_200us", [exe], "200us")]
    for name, cmd, latency in cases:
        out, orders = os.path.join(d, f"gw-{name}.dat"), os.path.join(d, f"gw-{name}.orders.dat")
        # the strategy first: the replay's clock starts once it is up (its order journal exists)
        strat = subprocess.Popen([*cmd, "--output", out, "--orders", orders] if cmd is host else [*cmd, out, orders],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while not os.path.exists(orders) and strat.poll() is None:
            time.sleep(0.001)
        rep = subprocess.run([sys.executable, "-m", "kftools.cli", "replay", src, "--max", "-o", out, "--no-chart",
                              "--json", "--latency", latency, "--order-journal", orders],
                             capture_output=True, text=True)
        _out, err = strat.communicate()
        if rep.returncode or strat.returncode:
            res[f"backtest.gateway.{name}.error"] = (rep.stderr or err).strip()[-300:]
            continue
        st = json.loads(rep.stdout)
        res[f"backtest.gateway.{name}.frames_per_s"] = round(st["frames_per_s"])
        res[f"backtest.gateway.{name}.fills"] = st["backtest"]["fills"]
    return res
