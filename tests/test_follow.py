"""Followers against real writer processes: every policy, page rollover, waiting for the file, kill -9."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time

import pytest

import kftools
from kftools import Reader, Writer

WRITER = r"""
import sys, time, kftools
path, n, page, gap = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
start = 0
try:
    r = kftools.Reader(path)
    last = r.last(1)
    start = int(last[0].last_price) + 1 if last else 0
    r.close()
except kftools.NotAJournal:
    pass
with kftools.Writer(path, page_size=page, append=True) as w:
    print("ready", start, flush=True)
    for i in range(start, start + n):
        w.write_ticker("SEQ", float(i), gen_time=time.time_ns(), padding=i % 40)
        if gap:
            time.sleep(gap)
"""


def start_writer(path, n, page=4096, gap=0.0):
    return subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(n), str(page), str(gap)],
                            stdout=subprocess.PIPE, text=True)


def seqs(frames):
    return [int(f.last_price) for f in frames]


@pytest.mark.parametrize("wait", ["busy", "backoff", "sleep"])
def test_follower_sees_every_frame_across_pages(tmp_path, wait):
    path = tmp_path / "j.dat"
    n = 3000
    proc = start_writer(path, n, page=4096, gap=0.0)
    try:
        assert proc.stdout.readline().startswith("ready")
        r = Reader(path)
        got = []
        for f in r.follow("beginning", wait, idle_timeout=20):
            got.append(int(f.last_price))
            if len(got) == n:
                break
        assert got == list(range(n))
        assert r.page_count() > 10  # it really crossed pages
        assert r.damage is None
    finally:
        proc.wait(timeout=30)


def test_follow_waits_for_a_journal_that_does_not_exist_yet(tmp_path):
    path = tmp_path / "later.dat"
    got, told = [], []
    stop, told_event = threading.Event(), threading.Event()

    def on_wait(msg):
        told.append(msg)
        told_event.set()

    def follow():
        r = Reader.wait_open(path, stop=stop, on_wait=on_wait)
        for f in r.follow("beginning", "backoff", stop=stop):
            got.append(f.symbol)
            if len(got) == 3:
                return

    t = threading.Thread(target=follow)
    t.start()
    assert told_event.wait(60), "the follower never said it was waiting"  # the event, not a sleep
    assert told and "no such journal" in told[0]
    with Writer(path, page_size=4096) as w:
        for s in "ABC":
            w.write_ticker(s, 1.0)
    t.join(10)
    stop.set()
    assert got == ["A", "B", "C"]


def test_follow_from_end_sees_only_new_frames(tmp_path):
    path = str(tmp_path / "j.dat")
    with Writer(path, page_size=4096) as w:
        for i in range(100):
            w.write_ticker("OLD", i)
        r = Reader(path)
        it = r.follow("end", "busy", idle_timeout=5)
        w.write_ticker("NEW", 1.0)
        assert next(it).symbol == "NEW"


def _kill_cycle(path, rng, follower_stop):
    proc = start_writer(path, 10**7, page=4096)
    line = proc.stdout.readline()
    assert line.startswith("ready"), line
    time.sleep(rng.uniform(0.0, 0.05))
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def kill_and_check(tmp_path, kills, seed):
    """Kill a writer at random instants, restart it, and check nothing is lost, torn or repeated."""
    path = tmp_path / "k.dat"
    rng = random.Random(seed)
    seen: list[int] = []
    stop = threading.Event()

    def follower():
        r = Reader.wait_open(path, stop=stop)
        for f in r.follow("beginning", "backoff", stop=stop):
            seen.append(int(f.last_price))
            assert f.symbol == "SEQ" and f.length == 48 + int(f.last_price) % 40

    t = threading.Thread(target=follower, daemon=True)
    t.start()
    previous = 0
    for _ in range(kills):
        _kill_cycle(path, rng, stop)
        rep = kftools.verify(path)
        assert rep.clean, rep.damage
        with Reader(path) as r:
            committed = seqs(r)
        assert committed == list(range(len(committed)))  # no gap, no duplicate
        assert len(committed) >= previous  # nothing committed was lost or overwritten
        previous = len(committed)
    deadline = time.time() + 20
    while len(seen) < previous and time.time() < deadline:
        time.sleep(0.05)
    stop.set()
    t.join(5)
    assert seen == list(range(previous))
    return previous


def test_kill_minus_9_loses_nothing_committed(tmp_path):
    frames = kill_and_check(tmp_path, kills=12, seed=1)
    assert frames > 0
