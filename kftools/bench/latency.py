"""Cross-process latency: writer timestamp to decoded frame in a busy-polling follower.

The baseline is ``multiprocessing.Pipe`` measured in the same run with the
same pacing, clock and process layout.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import time

import numpy as np

from . import percentiles, scratch_dir

WARMUP = 2000
GAP_NS = 20_000  # one frame every 20 µs: latency, not backlog


def _spin_until(t: int) -> None:
    while time.perf_counter_ns() < t:
        pass


def _journal_follower(path: str, n: int, ready, out) -> None:
    from kftools.journal.reader import Reader

    lat = np.empty(n, dtype=np.int64)
    ready.set()
    r = Reader.wait_open(path, poll=0.001)
    if r is None:  # only with a stop condition, and there is none
        raise RuntimeError(f"{path}: journal did not open")
    i = 0
    now = time.time_ns
    for f in r.follow("beginning", wait="busy"):
        lat[i] = now() - f.gen_time
        i += 1
        if i == n:
            break
    out.put(lat[WARMUP:].tobytes())


def _journal_writer(path: str, n: int) -> None:
    from kftools.journal.writer import Writer

    with Writer(path, page_size=64 << 20) as w:
        t = time.perf_counter_ns()
        for _ in range(n):
            t += GAP_NS
            _spin_until(t)
            w.write_ticker("AAPL", 1.0, 1.0, 1.0, 1.0)


def _pipe_follower(conn, n: int, ready, out) -> None:
    lat = np.empty(n, dtype=np.int64)
    ready.set()
    now = time.time_ns
    for i in range(n):
        sent = int.from_bytes(conn.recv_bytes(), "little")
        lat[i] = now() - sent
    out.put(lat[WARMUP:].tobytes())


def _pipe_writer(conn, n: int) -> None:
    t = time.perf_counter_ns()
    for _ in range(n):
        t += GAP_NS
        _spin_until(t)
        conn.send_bytes(time.time_ns().to_bytes(8, "little"))


def _measure(follower, follower_args, writer, writer_args) -> np.ndarray:
    ctx = mp.get_context("fork")
    ready, out = ctx.Event(), ctx.Queue()
    p = ctx.Process(target=follower, args=(*follower_args, ready, out))
    p.start()
    if not ready.wait(30):
        p.kill()
        raise RuntimeError("follower did not start")
    w = ctx.Process(target=writer, args=writer_args)
    w.start()
    data = out.get(timeout=300)
    w.join()
    p.join()
    return np.frombuffer(data, dtype=np.int64)


def run(samples: int = 100_000) -> dict:
    """Journal and Pipe latency percentiles, in ns."""
    n = samples + WARMUP
    load = os.getloadavg()[0]  # two spinning processes need both cores: report what else was running
    d = scratch_dir()
    try:
        path = os.path.join(d, "latency.dat")
        journal = _measure(_journal_follower, (path, n), _journal_writer, (path, n))
        a, b = mp.get_context("fork").Pipe(duplex=False)
        pipe = _measure(_pipe_follower, (a, n), _pipe_writer, (b, n))
    finally:
        shutil.rmtree(d, ignore_errors=True)
    res = {**percentiles(journal, "latency.journal"), **percentiles(pipe, "latency.pipe")}
    res["latency.pipe_over_journal_p50"] = round(res["latency.pipe.p50_ns"] / max(1, res["latency.journal.p50_ns"]), 2)
    res["latency.loadavg_1m_before"] = round(load, 2)
    return res
