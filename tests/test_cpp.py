"""The C++ header (cpp/include/kftools/journal.hpp) against the Python core.

Real files, real subprocesses, real SIGKILL: the tools under cpp/ are built
once per session with the Makefile.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

import kftools
from kftools.journal.format import (
    ACK,
    CANCEL_REQUEST,
    DEPTH,
    FILL,
    FRAME_HEADER,
    MAGIC,
    MODIFY_REQUEST,
    ORDER,
    ORDER_UPDATE,
    PAGE_HEADER,
    PAGE_HEADER_SIZE,
    TICKER,
    TIMER,
    TRADE,
    PageFlag,
    page_path,
)
from kftools.render import json_line

ROOT = Path(__file__).resolve().parents[1]
CPP = ROOT / "cpp"
SYMBOLS = ["BTCUSDT", "ETHUSDT", "600000.SH"]
RAW_TYPE = 200
SIZES = {1: TICKER.size, 2: ORDER.size, 3: TRADE.size, RAW_TYPE: 20}


@pytest.fixture(scope="session")
def cpp_bin(tmp_path_factory) -> Path:
    cxx = os.environ.get("CXX", "g++")
    if shutil.which(cxx) is None:
        pytest.skip(f"no C++ compiler ({cxx}) on PATH: the C++ header cannot be tested")
    if shutil.which("make") is None:
        pytest.skip("no make on PATH: cannot build cpp/")
    build = tmp_path_factory.mktemp("cppbuild")
    res = subprocess.run(["make", "-C", str(CPP), f"BUILD={build}", f"CXX={cxx}", "-j2"], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr  # -Wall -Wextra -Werror: warnings fail here
    return build


def run(exe: Path, *args, check: bool = True, **kw) -> subprocess.CompletedProcess:
    res = subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, timeout=30, **kw)
    if check:
        assert res.returncode == 0, res.stderr
    return res


def expected_frame(k: int, pad_to: int = 0) -> tuple[dict, int]:
    """Python twin of write_one() in cpp/tools/kfwrite.cpp: (to_dict() without gen_time, length) of frame k."""
    sym, x = SYMBOLS[k % 3], float(k)
    d = {"trigger_time": k, "source": 7, "dest": k % 5}
    kind = k % 4
    if kind == 0:
        d.update(type="Ticker", msg_type=1, symbol=sym, last_price=x + 0.25, bid_price=x, ask_price=x + 0.5,
                 volume=x * 2)
    elif kind == 1:
        d.update(type="Order", msg_type=2, symbol=sym, order_id=k, side=k % 2, order_type=k // 2 % 2,
                 price=x + 0.125, quantity=float(k % 100 + 1), filled_quantity=(k % 100) / 2,
                 client_order_id=f"c-{k}")
    elif kind == 2:
        d.update(type="Trade", msg_type=3, symbol=sym, trade_id=k, order_id=k // 2, side=k % 2, reserved=0,
                 price=x + 0.375, volume=(k % 7) + 0.5)
    else:
        d.update(type=f"type{RAW_TYPE}", msg_type=RAW_TYPE)
    size = SIZES[d["msg_type"]]
    length = -(-size // pad_to) * pad_to if pad_to else size
    if kind == 3:
        d["payload"] = (struct.pack("<QQI", k, 3 * k, 0xC0FFEE) + bytes(length - size)).hex()
    return d, length


def check_sequence(frames, start: int, pad_to: int = 0) -> None:
    """frames (Frame objects) are exactly the sequence start, start+1, ... as kfwrite writes it."""
    for i, f in enumerate(frames):
        want, length = expected_frame(start + i, pad_to)
        got = f.to_dict()
        assert got.pop("gen_time") > 0
        assert (got, f.length) == (want, length), f"frame {start + i} at page {f.page_index} offset {f.offset}"


def page_headers(path) -> list[dict]:
    out, i = [], 0
    while os.path.exists(page_path(path, i)):
        with open(page_path(path, i), "rb") as fh:
            out.append(PAGE_HEADER.unpack(fh.read(PAGE_HEADER_SIZE)))
        i += 1
    return out


def assert_cli_verify_clean(path) -> None:
    """`kftools verify` (the CLI, in a subprocess) agrees the journal is clean."""
    res = subprocess.run([sys.executable, "-m", "kftools.cli", "verify", str(path)], capture_output=True, text=True,
                         timeout=30)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "clean" in res.stdout


# -- layouts -------------------------------------------------------------------

def test_cpp_structs_match_python_layouts(cpp_bin, tmp_path):
    layouts = [PAGE_HEADER, FRAME_HEADER, TICKER, ORDER, TRADE, CANCEL_REQUEST, ORDER_UPDATE, FILL, ACK,
               MODIFY_REQUEST, DEPTH, TIMER]
    src = ['#include <cstdio>', '#include "kftools/journal.hpp"', "namespace py {", "#pragma pack(push, 1)"]
    src += [lay.c_struct() for lay in layouts]
    src += ["#pragma pack(pop)", "}", "#define SAME(T, f) \\",
            "    static_assert(offsetof(py::T, f) == offsetof(kftools::T, f) && "
            "sizeof(py::T::f) == sizeof(kftools::T::f), #T \".\" #f);"]
    for lay in layouts:
        src.append(f"static_assert(sizeof(py::{lay.name}) == sizeof(kftools::{lay.name}), \"{lay.name}\");")
        src += [f"SAME({lay.name}, {f.name})" for f in lay.fields]
    src.append("int main() {")
    for lay in layouts:
        src.append(f'    std::printf("{lay.name} size %zu\\n", sizeof(kftools::{lay.name}));')
        for f in lay.fields:
            src.append(f'    std::printf("{lay.name} {f.name} %zu %zu\\n", offsetof(kftools::{lay.name}, {f.name}), '
                       f"sizeof(kftools::{lay.name}::{f.name}));")
    src.append("}")
    (tmp_path / "layouts.cpp").write_text("\n".join(src) + "\n")
    exe = tmp_path / "layouts"
    res = subprocess.run(
        [os.environ.get("CXX", "g++"), "-std=c++17", "-Wall", "-Wextra", "-Werror", f"-I{CPP / 'include'}",
         "-o", str(exe), str(tmp_path / "layouts.cpp")], capture_output=True, text=True,
    )
    assert res.returncode == 0, res.stderr
    want = []
    for lay in layouts:
        want.append(f"{lay.name} size {lay.size}")
        want += [f"{lay.name} {f.name} {lay.offset(f.name)} {f.size}" for f in lay.fields]
    assert run(exe).stdout.splitlines() == want
    assert (TICKER.size, ORDER.size, TRADE.size) == (48, 88, 56)


# -- C++ writes, Python reads ----------------------------------------------------

def test_python_follows_cpp_writer_across_pages(cpp_bin, tmp_path):
    path = tmp_path / "live.journal"
    n = 20000
    proc = subprocess.Popen([str(cpp_bin / "kfwrite"), str(path), "--frames", str(n), "--page-size", "16384",
                             "--pad-to", "64", "--rate", "40000"], stderr=subprocess.PIPE, text=True)
    try:
        reader = kftools.Reader.wait_open(path, stop=lambda: proc.poll() not in (None, 0))
        assert reader is not None, proc.stderr.read()
        frames, live_at_first = [], None
        for f in reader.follow(wait="busy", idle_timeout=10):
            if live_at_first is None:
                live_at_first = proc.poll() is None
            frames.append(f)
            if len(frames) == n:
                break
        assert proc.wait(timeout=10) == 0, proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()
    assert live_at_first, "the follower only started after the writer had finished"
    assert reader.damage is None
    assert len(frames) == n
    check_sequence(frames, 0, pad_to=64)
    assert len({f.page_index for f in frames}) > 10  # many rollovers crossed while following

    headers = page_headers(path)
    for i, h in enumerate(headers):
        assert (h["magic"], h["version"], h["page_index"], h["capacity"]) == (MAGIC, 1, i, 16384)
        assert h["writer_pid"] == proc.pid
        assert h["flags"] == (PageFlag.CLOSED if i == len(headers) - 1 else PageFlag.SEALED)
    assert not list(tmp_path.glob("*.tmp"))
    rep = kftools.verify(path)
    assert rep.clean and rep.frames == n
    check_sequence(list(kftools.Reader(path)), 0, pad_to=64)


def test_cpp_writer_wakes_a_parked_python_follower(cpp_bin, tmp_path):
    """The C++ Writer publishes the cursor as the Python one does: a Python follower parked on it (a park
    lasts 2 s unless a writer wakes it) sees each frame within milliseconds, across page seals too."""
    if not kftools.journal.framestream.NATIVE:
        pytest.skip("parking needs the C extension")
    path = tmp_path / "live.journal"
    n, long_park = 120, 2.0
    proc = subprocess.Popen([str(cpp_bin / "kfwrite"), str(path), "--frames", str(n), "--page-size", "4096",
                             "--rate", "250"], stderr=subprocess.PIPE, text=True)
    try:
        reader = kftools.Reader.wait_open(path, stop=lambda: proc.poll() not in (None, 0))
        assert reader is not None, proc.stderr.read()
        frames, delays = [], []
        for f in reader.follow(wait=kftools.ParkWait(spins=64, timeout=long_park), idle_timeout=60):
            delays.append((time.time_ns() - f.gen_time) / 1e9)
            frames.append(f)
            if len(frames) == n:
                break
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()
    check_sequence(frames, 0)
    assert len({f.page_index for f in frames}) >= 3  # parked across page seals
    delays.sort()
    assert delays[n // 2] < long_park / 10, delays[n // 2]


@pytest.mark.parametrize("pad_to", [0, 128])
def test_python_reads_cpp_padding(cpp_bin, tmp_path, pad_to):
    path = tmp_path / "pad.journal"
    run(cpp_bin / "kfwrite", path, "--frames", 1000, "--page-size", 8192, "--pad-to", pad_to)
    frames = list(kftools.Reader(path))
    assert len(frames) == 1000
    check_sequence(frames, 0, pad_to)
    if pad_to == 0:
        assert [f.length for f in frames[:4]] == [48, 88, 56, 20]  # unaligned frames after the raw one


# -- Python writes, C++ reads ----------------------------------------------------

def write_python_frames(w: kftools.Writer, start: int, n: int, pace_every: int = 0) -> None:
    for k in range(start, start + n):
        sym = ["BTCUSDT", "éß", "X" * 16][k % 3]
        kind = k % 5
        if kind == 0:
            w.write_ticker(sym, k + 0.1, k - 0.2, k + 0.3, 1e-9 * k, trigger_time=k, source=3, dest=k % 7)
        elif kind == 1:
            w.write_order(sym, 2**63 + k, k % 2, 1, -k * 1.5, 1e300, 0.0, f"coid-{k}", trigger_time=-k, padding=40)
        elif kind == 2:
            w.write_trade(sym, k, k / 3, 1 / (k + 1), side=1, order_id=k * 11, padding=8)
        elif kind == 3:
            w.write(300 + k % 2, bytes(range(k % 50)) + b"\xff", trigger_time=k)
        else:
            w.write(3, TRADE.struct.pack(sym.encode(), k, k, 0, 7, 1.0, 2.0), padding=3)
        if pace_every and k % pace_every == 0:
            time.sleep(0.0005)


def python_lines(path) -> list[str]:
    """What kfread prints: page, offset, length, then the line ``kftools cat -F jsonl`` prints."""
    with kftools.Reader(path) as r:
        return [f'{{"page":{f.page_index},"offset":{f.offset},"length":{f.length},' + json_line(f)[1:]
                for f in r]


def python_json(path) -> list[dict]:
    return [json.loads(line) for line in python_lines(path)]


def cpp_json(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_cpp_reads_what_python_wrote(cpp_bin, tmp_path):
    path = tmp_path / "py.journal"
    with kftools.Writer(path, page_size=8192) as w:
        write_python_frames(w, 0, 3000)
    want = python_json(path)
    assert len({d["page"] for d in want}) > 10
    got = cpp_json(run(cpp_bin / "kfread", path).stdout)
    assert len(got) == len(want)
    for g, p in zip(got, want, strict=True):
        assert g == p  # every field, including floats at full precision and unknown payload bytes


def test_kfread_prints_what_cat_jsonl_prints(cpp_bin, tmp_path):
    """One rendering rule: kfread's lines are `kftools cat -F jsonl`'s, byte for byte, for every built-in type
    (names for every labelled field, null for an unset trigger_time, Python's shortest floats, \\u-escaped
    text)."""
    path = tmp_path / "odd.journal"
    floats = [100.8162, 0.1 + 0.2, -0.0, 0.0, float("nan"), float("inf"), -float("inf"), 1e16, 1e15, 123456.0,
              1e-4, 1e-5, 5e-324, 1.7976931348623157e308, 2.5e-300, 1 / 3, 1e22, 12345678901234567890.0]
    texts = [b"plain", b'q"uo\\te', b"\x01\n\t\x7f", "é€😀".encode(), b"bad\xff\xe2\x82x", b"\xf0\x9f\x98"]
    with kftools.Writer(path) as w:
        for k, x in enumerate(floats):
            w.write_ticker(texts[k % len(texts)].decode("utf-8", "replace")[:5], x, -x, x / 7, x * 3,
                           trigger_time=k % 2)
        for k in range(12):
            w.write(2, ORDER.struct.pack(texts[k % len(texts)], k, k % 3, k % 7, floats[k], 1.0, 0.0,
                                         texts[(k + 1) % len(texts)]), trigger_time=-k)
            w.write(3, TRADE.struct.pack(texts[k % len(texts)], k, k, k % 3, 0, floats[-k], 2.0))
            sym = texts[k % len(texts)]
            w.write(4, CANCEL_REQUEST.struct.pack(sym, k))
            w.write(5, ORDER_UPDATE.struct.pack(sym, k, k % 10, k % 11, k % 3, k % 6, floats[k], 1.0, 0.5, 0.5,
                                                floats[-k]), trigger_time=k % 2)
            w.write(6, FILL.struct.pack(sym, k, k, k % 2, k % 3, floats[k], 1.5, -0.0, 1, 0))
            w.write(7, ACK.struct.pack(2**64 - 1 - k))
            w.write(8, MODIFY_REQUEST.struct.pack(sym, k, floats[k], 2.5))
            w.write(9, DEPTH.struct.pack(sym, *(floats[(k + i) % len(floats)] for i in range(40))))
            w.write(10, TIMER.struct.pack(k, -(k * 10**17)))
    out = run(cpp_bin / "kfread", path).stdout
    assert out.splitlines() == python_lines(path)
    assert '"side":"sell"' in out and '"side":2' in out and '"order_type":"post_only"' in out
    assert '"status":"modify_rejected"' in out and '"status":9' in out and '"liquidity":"taker"' in out
    assert '"trigger_time":null' in out and "100.8162," in out and "100.81619999999999" not in out


def test_cpp_follows_python_writer_across_pages(cpp_bin, tmp_path):
    path = tmp_path / "pyfollow.journal"
    n = 4000
    # started before the journal exists: the C++ follower waits for the first page
    proc = subprocess.Popen([str(cpp_bin / "kfread"), str(path), "--follow", "--count", str(n), "--idle-ms", "10000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.05)
        with kftools.Writer(path, page_size=4096) as w:
            write_python_frames(w, 0, n, pace_every=50)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    got = cpp_json(out)
    want = python_json(path)
    assert len(got) == len(want) == n
    assert got == want
    assert len({d["page"] for d in got}) > 20


def test_cpp_writer_resumes_after_python_writer(cpp_bin, tmp_path):
    path = tmp_path / "mixed.journal"
    with kftools.Writer(path, page_size=4096, source=7) as w:
        for k in range(100):  # kfwrite's sequence, written by Python
            d, _ = expected_frame(k)
            head = {"trigger_time": k, "dest": k % 5}
            if d["msg_type"] == 1:
                w.write_ticker(d["symbol"], d["last_price"], d["bid_price"], d["ask_price"], d["volume"], **head)
            elif d["msg_type"] == 2:
                w.write_order(d["symbol"], k, d["side"], d["order_type"], d["price"], d["quantity"],
                              d["filled_quantity"], d["client_order_id"], **head)
            elif d["msg_type"] == 3:
                w.write_trade(d["symbol"], k, d["price"], d["volume"], d["side"], d["order_id"], **head)
            else:
                w.write(RAW_TYPE, bytes.fromhex(d["payload"]), **head)
    run(cpp_bin / "kfwrite", path, "--frames", 200, "--start", 100)
    frames = list(kftools.Reader(path))
    assert len(frames) == 300
    check_sequence(frames, 0)  # Python's 100 then C++'s 200: no gap, no overlap, same bytes
    assert page_headers(path)[-1]["flags"] == PageFlag.CLOSED
    assert kftools.verify(path).clean


# -- crashes ---------------------------------------------------------------------

def test_kill9_leaves_clean_journal_and_restart_resumes(cpp_bin, tmp_path):
    path = tmp_path / "crash.journal"
    rng = random.Random(6)
    total = 0
    for rnd in range(5):
        proc = subprocess.Popen([str(cpp_bin / "kfwrite"), str(path), "--frames", "0", "--start", str(total),
                                 "--page-size", "4096", "--rate", "300000"], stderr=subprocess.PIPE)
        # let it roll over a few pages, then kill it at a random moment mid-stream
        deadline = time.monotonic() + 10
        target = page_path(path, len(page_headers(path)) + 3) if rnd else page_path(path, 3)
        while not os.path.exists(target) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.001)
        time.sleep(rng.uniform(0, 0.02))
        assert proc.poll() is None, proc.stderr.read()
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL

        rep = kftools.verify(path)
        assert rep.clean, rep.damage
        assert rep.frames > total  # this round added frames
        headers = page_headers(path)
        assert not headers[-1]["flags"] & PageFlag.CLOSED  # a killed writer cannot close
        with kftools.Reader(path) as r:
            assert r.writer_state() == ("crashed", proc.pid)
        total = rep.frames
        assert_cli_verify_clean(path)

    # a page a killed writer was still preparing (killed between open and writing its header)
    stale = Path(page_path(path, len(page_headers(path))) + ".tmp")
    stale.write_bytes(bytes(4096))
    # the restarted writer appends after the last committed frame: no gap, no duplicate
    res = run(cpp_bin / "kfwrite", path, "--frames", 500, "--start", total, "--page-size", 4096)
    assert not stale.exists()
    frames = list(kftools.Reader(path))
    assert len(frames) == total + 500, res.stderr
    check_sequence(frames, 0)
    headers = page_headers(path)
    assert headers[-1]["flags"] == PageFlag.CLOSED
    assert kftools.verify(path).clean
    assert_cli_verify_clean(path)


def test_cpp_writer_refuses_to_append_after_damage(cpp_bin, tmp_path):
    path = tmp_path / "damaged.journal"
    run(cpp_bin / "kfwrite", path, "--frames", 100)
    victim = list(kftools.Reader(path))[50]
    with open(path, "r+b") as fh:
        fh.seek(victim.offset + 4)
        fh.write(struct.pack("<I", 0))  # msg_type 0 below the cursor
    before = path.read_bytes()
    res = run(cpp_bin / "kfwrite", path, "--frames", 10, check=False)
    assert res.returncode == 3
    assert f"offset {victim.offset}" in res.stderr and "recover" in res.stderr
    assert path.read_bytes() == before  # untouched: not even the pid or flags


# -- the single-writer lock ---------------------------------------------------------

def test_cpp_writer_refused_while_python_writer_holds(cpp_bin, tmp_path):
    path = tmp_path / "held.journal"
    with kftools.Writer(path, page_size=4096) as w:
        w.write_ticker("BTCUSDT", 1.0)
        res = run(cpp_bin / "kfwrite", path, "--frames", 10, check=False)
        assert res.returncode == 4
        assert f"locked by a writer (pid {os.getpid()})" in res.stderr
    assert kftools.Reader(path).count() == 1  # the refused writer wrote nothing
    run(cpp_bin / "kfwrite", path, "--frames", 10, "--start", 1)
    assert kftools.Reader(path).count() == 11


def test_python_writer_refused_while_cpp_writer_holds(cpp_bin, tmp_path):
    path = tmp_path / "held2.journal"
    proc = subprocess.Popen([str(cpp_bin / "kfwrite"), str(path), "--frames", "10", "--page-size", "4096", "--hold"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().split() == ["ready", str(proc.pid)], proc.stderr.read()
        with pytest.raises(kftools.JournalLocked, match=rf"\(pid {proc.pid}\)"):
            kftools.Writer(path)
        with kftools.Reader(path) as r:
            assert r.writer_state() == ("alive", proc.pid)
        proc.stdin.close()
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.wait()
    assert page_headers(path)[-1]["flags"] == PageFlag.CLOSED
    with kftools.Writer(path, append=True) as w:  # the lock died with the C++ writer's close
        assert page_headers(path)[-1]["flags"] == 0  # the new writer clears CLOSED
        w.write(RAW_TYPE, struct.pack("<QQI", 10, 30, 0xC0FFEE), trigger_time=10, source=7)
    frames = list(kftools.Reader(path))
    assert len(frames) == 11 and frames[-1].trigger_time == 10


# -- the example ----------------------------------------------------------------------

def test_hybrid_engine_feeds_python_strategy(cpp_bin, tmp_path):
    path = tmp_path / "engine.journal"
    strategy = subprocess.Popen(
        [sys.executable, str(CPP / "examples" / "strategy.py"), str(path), "--idle", "1.5", "--every", "500"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        out = run(cpp_bin / "hybrid_engine", path, 3000, 50000).stdout
        s_out, s_err = strategy.communicate(timeout=30)
    finally:
        strategy.kill()
    assert strategy.returncode == 0, s_err
    orders = int(out.split(" tickers, ")[1].split()[0])
    assert orders > 0
    assert f"done: {3000 + orders} frames, 3000 tickers, {orders} orders" in s_out
    assert "[3000] ma20: BTCUSDT=" in s_out
    frames = list(kftools.Reader(path))
    assert all(f.length == 64 if f.msg_type == 1 else f.length == 128 for f in frames)  # pad_to 64
    # each order follows the tick that triggered it
    for prev, f in zip(frames, frames[1:], strict=False):
        if f.msg_type == 2:
            assert prev.msg_type == 1 and f.trigger_time == prev.gen_time


def test_kfread_missing_file_or_directory_is_an_error(cpp_bin, tmp_path):
    """Not a silent exit 0 with nothing printed: one error line and exit 2, as `kftools cat` says it."""
    missing = run(cpp_bin / "kfread", tmp_path / "nope.dat", check=False)
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr == f"kfread: error: {tmp_path / 'nope.dat'}: no such journal\n"
    folder = run(cpp_bin / "kfread", tmp_path, check=False)
    assert folder.returncode == 2 and folder.stderr == f"kfread: error: {tmp_path}: is a directory, not a journal\n"
    fifo = tmp_path / "fifo.dat"
    os.mkfifo(fifo)
    res = run(cpp_bin / "kfread", fifo, check=False)
    assert res.returncode == 2 and "not a regular file" in res.stderr


def test_cpp_writer_refuses_what_verify_does_not_call_clean(cpp_bin, tmp_path):
    """As the Python Writer: a sealed last page whose successor vanished, a gap, stale pages of a new journal."""
    j = tmp_path / "j.dat"
    run(cpp_bin / "kfwrite", j, "--frames", 300, "--page-size", 4096)
    assert os.path.exists(page_path(str(j), 3))
    run(cpp_bin / "kfwrite", j, "--frames", 10, "--start", 300)  # a clean journal resumes
    os.unlink(page_path(str(j), 2))  # a gap: page 1 is sealed, page 3 exists
    res = run(cpp_bin / "kfwrite", j, "--frames", 1, check=False)
    assert res.returncode != 0 and "recover" in res.stderr and "is missing" in res.stderr
    for n in range(3, 100):  # pages 0 and 1 left: page 1 is sealed and the last
        if os.path.exists(page_path(str(j), n)):
            os.unlink(page_path(str(j), n))
    res = run(cpp_bin / "kfwrite", j, "--frames", 1, check=False)  # page 1 is sealed and the last
    assert res.returncode != 0 and "sealed" in res.stderr and "recover" in res.stderr
    new = tmp_path / "new.dat"
    os.rename(str(j) + ".1", str(new) + ".1")
    res = run(cpp_bin / "kfwrite", new, "--frames", 1, check=False)
    assert res.returncode != 0 and "another journal" in res.stderr and not new.exists()


def test_kfread_says_a_page_is_archived_and_reads_it_once_unarchived(cpp_bin, tmp_path):
    """The header reads plain pages only (zstd is not its dependency): an archived page is named, not "missing"."""
    path = tmp_path / "arch.dat"
    with kftools.Writer(str(path), page_size=1 << 16) as w:
        write_python_frames(w, 0, 3000)
    pages = len(list(tmp_path.glob("arch.dat*")))
    assert pages >= 3
    cli = [sys.executable, "-m", "kftools.cli"]
    subprocess.run([*cli, "archive", str(path), "--older-than", "0s"], check=True, capture_output=True)
    assert (tmp_path / "arch.dat.1.zst").exists() and not (tmp_path / "arch.dat.1").exists()
    res = run(cpp_bin / "kfread", path, check=False)
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert f"{path}.1.zst: page 1 is archived" in res.stderr and "kftools unarchive" in res.stderr
    assert 0 < len(cpp_json(res.stdout)) < 3000  # page 0's frames came out first
    subprocess.run([*cli, "unarchive", str(path)], check=True, capture_output=True)
    assert cpp_json(run(cpp_bin / "kfread", path).stdout) == python_json(path)
