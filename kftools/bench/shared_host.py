"""Followers on a shared host: cross-process latency idle and with a third process competing for the cores.

Each transport carries the same paced stream (one message every ``latency.GAP_NS`` on average, the
writer stamping ``time.time_ns()`` just before it publishes; the follower subtracts it from its own
clock once it has the message), in the same run, first with nothing of ours competing ("idle": other
people's processes may still be running, so the load average is reported with every figure) and then
with one more process spinning on a core ("contended"):

- ``journal_busy``: a Python writer and a busy-polling follower (``wait="busy"``);
- ``journal_park``: the same with ``wait="park"`` (spin briefly, then futex-wait on the cursor; the
  writer wakes it);
- ``pipe``: ``multiprocessing.Pipe``, the baseline;
- ``iceoryx2_poll`` / ``iceoryx2_wait``: iceoryx2's Python bindings (zero-copy shared-memory
  publish-subscribe), the subscriber polling ``receive()``, or blocking on an iceoryx2 event the
  publisher notifies after each sample (its equivalent of parking). Skipped when ``iceoryx2`` is not
  installed (``pip install 'kftools[bench]'``).

    kftools bench latency --contended
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import os
import shutil
import time
from collections.abc import Iterator

import numpy as np

from . import percentiles, scratch_dir
from .latency import WARMUP, _journal_writer, _measure, _pipe_follower, _pipe_writer, _spin_until, schedule

#: a message lost by iceoryx2 (its subscriber buffer overflowed while the follower was descheduled)
#: is left out of the percentiles and counted
ICEORYX_BUFFER = 4096


def _journal_follower(path: str, n: int, wait: str, ready, out) -> None:
    from kftools.journal.reader import Reader

    lat = np.empty(n, dtype=np.int64)
    ready.set()
    r = Reader.wait_open(path, poll=0.001)
    if r is None:
        raise RuntimeError(f"{path}: journal did not open")
    i = 0
    now = time.time_ns
    for f in r.follow("beginning", wait=wait):
        lat[i] = now() - f.gen_time
        i += 1
        if i == n:
            break
    out.put(lat[WARMUP:].tobytes())


class _Stamp(ctypes.Structure):
    _fields_ = [("seq", ctypes.c_int64), ("t", ctypes.c_int64)]

    @staticmethod
    def type_name() -> str:
        return "KftoolsBenchStamp"


def _ice_ports(name: str):
    import iceoryx2 as iox2

    iox2.set_log_level(iox2.LogLevel.Error)
    node = iox2.NodeBuilder.new().create(iox2.ServiceType.Ipc)
    pubsub = (node.service_builder(iox2.ServiceName.new(name)).publish_subscribe(_Stamp)
              .subscriber_max_buffer_size(ICEORYX_BUFFER).open_or_create())
    event = node.service_builder(iox2.ServiceName.new(name + "/sent")).event().open_or_create()
    return node, pubsub, event


def _ice_follower(name: str, n: int, block: bool, ready, out) -> None:
    _node, pubsub, event = _ice_ports(name)
    sub = pubsub.subscriber_builder().buffer_size(ICEORYX_BUFFER).create()
    listener = event.listener_builder().create()
    lat = np.full(n, -1, dtype=np.int64)
    ready.set()
    now = time.time_ns
    deadline = time.monotonic() + 300
    last = -1
    while last < n - 1 and time.monotonic() < deadline:
        s = sub.receive()
        if s is None:
            if block:
                listener.blocking_wait()
            continue
        got = s.payload().contents
        lat[got.seq] = now() - got.t
        last = got.seq
        del s
    kept = lat[WARMUP:]
    out.put(kept[kept >= 0].tobytes())


def _ice_writer(name: str, due: np.ndarray, block: bool) -> None:
    _node, pubsub, event = _ice_ports(name)
    pub = pubsub.publisher_builder().create()
    notifier = event.notifier_builder().create()
    t0 = time.perf_counter_ns()
    for i, t in enumerate(due.tolist()):
        _spin_until(t0 + t)
        s = pub.loan_uninit()
        s = s.write_payload(_Stamp(seq=i, t=time.time_ns()))
        s.send()
        if block:
            notifier.notify()


def _spinner() -> None:  # pragma: no cover - killed by its parent
    while True:
        pass


@contextlib.contextmanager
def _competitor(on: bool) -> Iterator[None]:
    """With ``on``: one more process spinning on a core for as long as the block runs."""
    if not on:
        yield
        return
    p = mp.get_context("fork").Process(target=_spinner, daemon=True)
    p.start()
    try:
        yield
    finally:
        p.kill()
        p.join()


def iceoryx2_available() -> bool:
    try:
        import iceoryx2  # noqa: F401
    except ImportError:
        return False
    return True


def run(samples: int = 20_000) -> dict:
    """Every transport idle and contended (``shared.<idle|contended>.<transport>.*``), with the load
    average before each condition and the ratios the targets are stated in."""
    n = samples + WARMUP
    due = schedule(n, False)
    d = scratch_dir()
    res: dict = {}
    ice = iceoryx2_available()
    try:
        for cond in ("idle", "contended"):
            res[f"shared.{cond}.loadavg_1m_before"] = round(os.getloadavg()[0], 2)
            with _competitor(cond == "contended"):
                for wait in ("busy", "park"):
                    path = os.path.join(d, f"{cond}-{wait}.dat")
                    lat = _measure(_journal_follower, (path, n, wait), _journal_writer, (path, due))
                    res.update(percentiles(lat, f"shared.{cond}.journal_{wait}"))
                a, b = mp.get_context("fork").Pipe(duplex=False)
                res.update(percentiles(_measure(_pipe_follower, (a, n), _pipe_writer, (b, due)), f"shared.{cond}.pipe"))
                if ice:
                    for block in (False, True):
                        label = f"shared.{cond}.iceoryx2_{'wait' if block else 'poll'}"
                        name = f"kftools-bench/{os.getpid()}/{cond}/{int(block)}"
                        lat = _measure(_ice_follower, (name, n, block), _ice_writer, (name, due, block))
                        res.update(percentiles(lat, label))
                        res[f"{label}.lost"] = samples - len(lat)
            pipe = max(1, res[f"shared.{cond}.pipe.p50_ns"])
            res[f"shared.{cond}.park_over_pipe_p50"] = round(res[f"shared.{cond}.journal_park.p50_ns"] / pipe, 2)
            res[f"shared.{cond}.busy_over_pipe_p50"] = round(res[f"shared.{cond}.journal_busy.p50_ns"] / pipe, 2)
            res[f"shared.{cond}.pipe_over_busy_p50"] = round(pipe / max(1, res[f"shared.{cond}.journal_busy.p50_ns"]), 2)
        res["shared.loadavg_1m_after"] = round(os.getloadavg()[0], 2)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return res


__all__ = ["iceoryx2_available", "run"]
