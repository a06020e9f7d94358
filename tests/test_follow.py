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


@pytest.mark.parametrize("wait", ["busy", "backoff", "sleep", "park"])
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


# -- parked followers (a shared host): the writer wakes them --------------------------------------------
#: a park that nobody ends lasts this long; a woken follower sees a frame within milliseconds
LONG_PARK = 2.0


def _follow_parked(path, n, batches=False):
    """Follow ``n`` frames with a ParkWait whose parks last LONG_PARK unless a writer wakes them;
    each frame's delay from its gen_time, in seconds, and the sequence numbers."""
    r = Reader.wait_open(path, poll=0.001)
    policy = kftools.ParkWait(spins=64, timeout=LONG_PARK)
    delays, got = [], []
    if batches:
        frames = (f for b in r.follow_batches("beginning", policy, idle_timeout=60) for f in b.frames())
    else:
        frames = r.follow("beginning", policy, idle_timeout=60)
    for f in frames:
        delays.append((time.time_ns() - f.gen_time) / 1e9)
        got.append(int(f.last_price))
        if len(got) == n:
            break
    assert r.damage is None
    r.close()
    return sorted(delays), got


@pytest.mark.parametrize("batches", [False, True], ids=["frames", "batches"])
def test_parked_follower_is_woken_by_the_writer_and_at_rollover(tmp_path, batches):
    """A follower parked on the cursor is woken by each commit and by each page seal: a frame every 5 ms
    over several pages reaches it in well under a park (without the wake, half the frames wait ~1 s)."""
    if not kftools.journal.framestream.NATIVE:
        pytest.skip("parking needs the C extension (the Python twin parks timed only)")
    path = tmp_path / "j.dat"
    n = 100
    proc = start_writer(path, n, page=4096, gap=0.004)
    try:
        assert proc.stdout.readline().startswith("ready")
        delays, got = _follow_parked(path, n, batches)
    finally:
        proc.wait(timeout=60)
    assert got == list(range(n))
    assert kftools.Reader(path).page_count() >= 3  # it crossed pages while parked
    assert delays[len(delays) // 2] < LONG_PARK / 10, delays[len(delays) // 2]


def test_page_checksum_ignores_a_parked_followers_count(tmp_path):
    """The header's waiters count changes while followers park: a sealed page's checksum taken then
    still matches once they have gone (KFC1 reads the count as 0)."""
    from kftools.journal.checksums import record_checksums
    from kftools.journal.format import WAITERS_OFFSET

    path = tmp_path / "j.dat"
    with Writer(path, page_size=4096) as w:
        for i in range(200):
            w.write_ticker("SEQ", float(i))
    with open(path, "r+b") as fh:  # page 0 is sealed: a follower parked there while checksums are taken
        fh.seek(WAITERS_OFFSET)
        fh.write((1).to_bytes(4, "little"))
    assert record_checksums(path) > 0
    with open(path, "r+b") as fh:  # ... and has left
        fh.seek(WAITERS_OFFSET)
        fh.write(bytes(4))
    rep = kftools.verify(path)
    assert rep.clean, rep.damage


@pytest.mark.parametrize("batches", [False, True], ids=["frames", "batches"])
def test_parked_follower_never_parks_on_a_sealed_page(tmp_path, batches):
    """Catching up through sealed pages costs no park: nothing will be committed there (a follower
    parked on each would wait out its timeout per page)."""
    path = tmp_path / "j.dat"
    n = 300
    with Writer(path, page_size=4096) as w:  # open and idle: nobody wakes the follower
        for i in range(n):
            w.write_ticker("SEQ", float(i), padding=i % 40)
        t0 = time.monotonic()
        delays, got = _follow_parked(path, n, batches)
        took = time.monotonic() - t0
    assert got == list(range(n))
    assert kftools.Reader(path).page_count() > 5
    assert took < LONG_PARK, f"{took:.2f} s: the follower parked on a sealed page"


def test_cat_follow_wait_park_prints_each_frame_as_the_writer_commits_it(tmp_path):
    """`kftools cat -f --wait park`: the CLI's parked follower prints each frame once it is written
    (the writer waits for each line before the next frame: the event, not a sleep), and stops on SIGINT."""
    from kftest import KFTOOLS, ROOT

    path = tmp_path / "j.dat"
    with Writer(path, page_size=4096) as w:
        w.write_ticker("SEQ", 0.0)
        proc = subprocess.Popen([*KFTOOLS, "cat", "-f", "--wait", "park", "-F", "jsonl", str(path)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        try:
            for i in range(1, 80):  # two pages
                assert f'"last_price":{i - 1}' in proc.stdout.readline().replace(" ", "").replace(".0", "")
                w.write_ticker("SEQ", float(i))
            assert '"last_price":79' in proc.stdout.readline().replace(" ", "").replace(".0", "")
        finally:
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert kftools.Reader(path).page_count() > 1
