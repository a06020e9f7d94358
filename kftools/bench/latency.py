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
GAP_NS = 20_000  # one frame every 20 µs on average: latency, not backlog
BURST_MAX = 32  # bursty pacing: 1..BURST_MAX frames back to back, then a longer gap


def schedule(n: int, bursty: bool, seed: int = 1) -> np.ndarray:
    """When each of ``n`` frames is due (ns from the start): evenly spaced, or in bursts with
    exponential gaps between them, at the same mean rate."""
    if not bursty:
        return np.arange(1, n + 1, dtype=np.int64) * GAP_NS
    rng = np.random.default_rng(seed)
    due = np.empty(n, dtype=np.int64)
    t, i = 0, 0
    while i < n:
        k = min(n - i, int(rng.integers(1, BURST_MAX + 1)))
        t += int(rng.exponential(GAP_NS * k))
        due[i : i + k] = t
        i += k
    return due


def _spin_until(t: int) -> None:
    while time.perf_counter_ns() < t:
        pass


def _journal_follower(path: str, n: int, name: str | None, ready, out) -> None:
    from kftools.journal.reader import Reader

    lat = np.empty(n, dtype=np.int64)
    ready.set()
    r = Reader.wait_open(path, poll=0.001)
    if r is None:  # only with a stop condition, and there is none
        raise RuntimeError(f"{path}: journal did not open")
    i = 0
    now = time.time_ns
    for f in r.follow("beginning", wait="busy", name=name):
        lat[i] = now() - f.gen_time
        i += 1
        if i == n:
            break
    out.put(lat[WARMUP:].tobytes())


def _journal_writer(path: str, due: np.ndarray) -> None:
    from kftools.journal.writer import Writer

    with Writer(path, page_size=64 << 20) as w:
        t0 = time.perf_counter_ns()
        for t in due.tolist():
            _spin_until(t0 + t)
            w.write_ticker("AAPL", 1.0, 1.0, 1.0, 1.0)


def _pipe_follower(conn, n: int, ready, out) -> None:
    lat = np.empty(n, dtype=np.int64)
    ready.set()
    now = time.time_ns
    for i in range(n):
        sent = int.from_bytes(conn.recv_bytes(), "little")
        lat[i] = now() - sent
    out.put(lat[WARMUP:].tobytes())


def _pipe_writer(conn, due: np.ndarray) -> None:
    t0 = time.perf_counter_ns()
    for t in due.tolist():
        _spin_until(t0 + t)
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


def follow_step(samples: int = 100_000, name: str | None = None) -> dict:
    """In one process, what a busy follower spends per frame once the frame is committed:
    write a frame, then time ``next()`` on the follower and reading ``gen_time`` (no second core,
    no scheduler, so it measures on a loaded machine too). Baseline in the same run: a bare
    ``struct.unpack_from`` of the same header right after the same write. ``name``: a named
    follower (publishing its position per frame)."""
    from kftools.journal.format import FRAME_HEADER
    from kftools.journal.reader import Reader
    from kftools.journal.writer import Writer

    d = scratch_dir()
    step = np.empty(samples, dtype=np.int64)
    bare = np.empty(samples, dtype=np.int64)
    try:
        path = os.path.join(d, "step.dat")
        with Writer(path, page_size=max(64 << 20, 2 * samples * 90 + 4096)) as w:
            r = Reader(path)
            it = iter(r.follow("beginning", wait="busy", name=name))
            mm = r.page(0).mm
            unpack, clock, write = FRAME_HEADER.struct.unpack_from, time.perf_counter_ns, w.write_ticker
            off = 64
            for i in range(samples):
                write("AAPL", 1.0, 1.0, 1.0, 1.0)
                t = clock()
                got = next(it).gen_time
                step[i] = clock() - t
                write("AAPL", 1.0, 1.0, 1.0, 1.0)
                next(it)  # keep the follower in step with the second write
                off += 80
                t = clock()
                want = unpack(mm, off)[2]
                bare[i] = clock() - t
                off += 80
                if got > want:  # the follower's frame was written first
                    raise RuntimeError("follower out of step with the writer")
            r.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return {
        "latency.follow_step.p50_ns": int(np.percentile(step, 50)),
        "latency.follow_step.p99_ns": int(np.percentile(step, 99)),
        "latency.follow_step.baseline_unpack_p50_ns": int(np.percentile(bare, 50)),
    }


def run(samples: int = 100_000) -> dict:
    """Journal and Pipe latency percentiles, in ns: evenly paced (``latency.journal``, ``latency.pipe``)
    and bursty (``latency.bursty.*``), each pair with the same schedule in the same run."""
    n = samples + WARMUP
    load = os.getloadavg()[0]  # two spinning processes need both cores: report what else was running
    d = scratch_dir()
    res: dict = {}
    try:
        for prefix, bursty in (("latency", False), ("latency.bursty", True)):
            due = schedule(n, bursty)
            path = os.path.join(d, f"{prefix}.dat")
            journal = _measure(_journal_follower, (path, n, None), _journal_writer, (path, due))
            a, b = mp.get_context("fork").Pipe(duplex=False)
            pipe = _measure(_pipe_follower, (a, n), _pipe_writer, (b, due))
            res.update(percentiles(journal, f"{prefix}.journal"))
            res.update(percentiles(pipe, f"{prefix}.pipe"))
            res[f"{prefix}.pipe_over_journal_p50"] = round(
                res[f"{prefix}.pipe.p50_ns"] / max(1, res[f"{prefix}.journal.p50_ns"]), 2)
        # a named follower stores its position once per frame: the same run says what that costs
        named = os.path.join(d, "named.dat")
        due = schedule(n, False)
        res.update(percentiles(_measure(_journal_follower, (named, n, "bench"), _journal_writer, (named, due)),
                               "latency.journal_named"))
        res["latency.named_over_unnamed_p50"] = round(
            res["latency.journal_named.p50_ns"] / max(1, res["latency.journal.p50_ns"]), 3)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    res["latency.loadavg_1m_before"] = round(load, 2)
    res.update(follow_step(samples))
    # the named follower's cost per frame, in one process, so it holds on a loaded machine too
    named_step = follow_step(samples, name="bench")
    res["latency.follow_step_named.p50_ns"] = named_step["latency.follow_step.p50_ns"]
    res["latency.follow_step_named.p99_ns"] = named_step["latency.follow_step.p99_ns"]
    res["latency.follow_step.named_over_unnamed_p50"] = round(
        res["latency.follow_step_named.p50_ns"] / max(1, res["latency.follow_step.p50_ns"]), 3)
    return res
