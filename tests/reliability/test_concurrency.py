"""Concurrency: one writer and several readers at once (a library follower, `tail --plain`,
`cat -f`, `export --follow`, `replay --follow`) for a bounded time: each reader sees the same
frames in the same order as the writer committed them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pyarrow.parquet as pq
import pytest
from relhelp import KFTOOLS, ROOT, raw_frames

import kftools

SCALE = float(os.environ.get("KFTOOLS_TORTURE_SCALE", "1"))
WRITER = r"""
import sys, time, kftools
path, n, page, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
t0 = time.monotonic()
with kftools.Writer(path, page_size=page) as w:
    print("ready", flush=True)
    for i in range(n):
        kind = i % 3
        if kind == 0:
            w.write_ticker("SEQ", float(i), padding=i % 40)
        elif kind == 1:
            w.write_order("SEQ", i, i % 2, price=float(i))
        else:
            w.write_trade("SEQ", i, float(i), 1.0)
        while i % 64 == 0 and time.monotonic() - t0 < i / rate:
            time.sleep(0.0005)
"""


def spawn(*args, out=None):
    return subprocess.Popen([*KFTOOLS, *map(str, args)], stdout=out or subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT)


def lines_in(path) -> int:
    with open(path, "rb") as fh:
        return fh.read().count(b"\n")


def run_session(tmp_path, frames: int, page: int, rate: float, wait: str) -> dict:
    path = tmp_path / "live.dat"
    tail_out, cat_out = open(tmp_path / "tail.txt", "w"), open(tmp_path / "cat.jsonl", "w")
    # tail and cat start before the journal exists: they wait for it
    tail = spawn("tail", "--plain", "-n", 10**9, path, out=tail_out)
    cat = spawn("cat", "-f", "--format", "jsonl", "--wait", wait, path, out=cat_out)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(frames), str(page), str(rate)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "ready"
    export = spawn("export", "--follow", "-q", path, tmp_path / "live.parquet")
    replay = spawn("replay", "--follow", "--max", "--wait", wait, path, "-o", tmp_path / "relay.dat")
    seen, stop = [], threading.Event()

    def follow():
        for f in kftools.Reader(path).follow("beginning", wait, stop=stop):
            seen.append(bytes(f.raw))

    t = threading.Thread(target=follow, daemon=True)
    t.start()
    procs = {"tail": tail, "cat": cat, "export": export, "replay": replay}
    try:
        assert writer.wait(timeout=300) == 0, writer.stderr.read()
        committed, damage = raw_frames(path)
        assert damage is None and len(committed) == frames
        deadline = time.monotonic() + 120

        def relayed():
            try:
                return kftools.Reader(tmp_path / "relay.dat").count()
            except kftools.NotAJournal:
                return 0

        def exporting():
            # export --follow writes a hidden temporary beside its output once it follows (its
            # Ctrl-C handler is in place); Ctrl-C then exports every frame committed by then
            return any(n.startswith(".live.parquet.kftmp-") for n in os.listdir(tmp_path))

        while time.monotonic() < deadline and (
            len(seen) < frames or lines_in(tmp_path / "tail.txt") < frames
            or lines_in(tmp_path / "cat.jsonl") < frames or relayed() < frames or not exporting()
        ):
            time.sleep(0.05)
        # export --follow writes every frame committed before its SIGINT: wait until it follows
        # (its hidden output exists, so its signal handler is in place)
        while time.monotonic() < deadline and not [n for n in os.listdir(tmp_path) if n.startswith(".live.parquet")]:
            time.sleep(0.05)
    finally:
        stop.set()
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        codes = {}
        for name, p in procs.items():
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            codes[name] = (p.returncode, p.stderr.read())
        tail_out.close()
        cat_out.close()
        t.join(10)
    for name, (code, err) in codes.items():
        assert "Traceback" not in err, f"{name}: {err}"
        assert code in (0, 130), f"{name} exited {code}: {err}"
    # the library follower: every frame, byte for byte, in order
    assert seen == committed
    # tail --plain and cat -f print exactly what a cat of the finished journal prints
    res = subprocess.run([*KFTOOLS, "cat", path], capture_output=True, text=True, cwd=ROOT)
    with open(tmp_path / "tail.txt") as fh:
        assert fh.read() == res.stdout
    res = subprocess.run([*KFTOOLS, "cat", "--format", "jsonl", path], capture_output=True, text=True, cwd=ROOT)
    with open(tmp_path / "cat.jsonl") as fh:
        assert fh.read() == res.stdout
    # export --follow: one row per frame, in commit order
    table = pq.read_table(tmp_path / "live.parquet")
    gens = [int.from_bytes(f[8:16], "little", signed=True) for f in committed]
    assert table.num_rows == frames
    assert table.column("gen_time").cast("int64").to_pylist() == gens
    # replay --follow: the same payloads in the same order, original times as trigger_time
    relayed_frames, dmg = raw_frames(tmp_path / "relay.dat")
    assert dmg is None and [f[32:] for f in relayed_frames] == [f[32:] for f in committed]
    with kftools.Reader(tmp_path / "relay.dat") as r:
        assert [f.trigger_time for f in r] == gens
    return {"frames": frames, "pages": kftools.Reader(path).page_count()}


def test_one_writer_many_readers(tmp_path):
    info = run_session(tmp_path, frames=6000, page=32768, rate=20000, wait="backoff")
    assert info["pages"] > 5


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("wait", ["busy", "backoff", "sleep"])
def test_one_writer_many_readers_torture(tmp_path, wait):
    info = run_session(tmp_path, frames=int(100_000 * SCALE), page=65536, rate=50_000, wait=wait)
    print(f"\nconcurrency ({wait}):", json.dumps(info))
