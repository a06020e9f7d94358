"""Regenerate the sample journals (deterministic bytes): ``make samples``.

clean.dat        tickers, orders, trades, some padded as C++ engines pad them
multipage.dat    the same feed across several 16 KiB pages (.dat, .dat.1, ...)
crashed.dat      a writer killed with SIGKILL in the middle of a frame
damaged.dat      a 4 KiB block zeroed below the cursor (a page lost in a power cut)
engine.dat       written by an engine that knows only the four standard header fields
user_types.dat   a registered type (Quote, see user_types.toml) and an unknown type 200
"""

from __future__ import annotations

import glob
import os
import signal
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from kftools.journal.format import PAGE_HEADER, page_path  # noqa: E402
from kftools.journal.registry import load_registry  # noqa: E402
from kftools.journal.writer import Writer  # noqa: E402

T0 = 1_795_800_600_000_000_000  # 2026-11-27T17:30:00Z
SYMBOLS = ("AAPL", "MSFT", "NVDA", "ES-2612", "BTC-USD")
FAKE_PID = 4_000_000  # above pid_max: never a live process


def feed(w: Writer, n: int, t0: int = T0) -> None:
    px = [100.0, 250.0, 450.0, 6000.0, 90000.0]
    for i in range(n):
        s = i % len(SYMBOLS)
        px[s] = round(px[s] * (1 + ((i * 7919) % 11 - 5) / 10000), 4)
        t = t0 + i * 1_000_000
        pad = (0, 16, 48)[i % 3]  # 48, 64 and 96-byte tickers
        if i % 10 == 9:
            w.write_order(SYMBOLS[s], i, i & 1, (i // 10) & 1, px[s], 10 + i % 7, (i % 3) * 1.0, f"c-{i}",
                          gen_time=t, trigger_time=t - 1500, source=1, dest=2, padding=136 if i % 20 == 9 else 0)
        elif i % 10 == 4:
            w.write_trade(SYMBOLS[s], 10_000 + i, px[s], 5 + i % 4, i & 1, max(0, i - 5),
                          gen_time=t, trigger_time=t - 900, source=1)
        else:
            w.write_ticker(SYMBOLS[s], px[s], px[s] - 0.01, px[s] + 0.01, 100 + i % 50,
                           gen_time=t, trigger_time=t - 2000, source=1, padding=pad)


def set_pid(path: str, pid: int) -> None:
    i = 0
    while os.path.exists(page_path(path, i)):
        with open(page_path(path, i), "r+b") as fh:
            fh.seek(PAGE_HEADER.offset("writer_pid"))
            fh.write(struct.pack("<I", pid))
        i += 1


def fresh(name: str) -> str:
    path = os.path.join(HERE, name)
    for f in glob.glob(glob.escape(path) + "*"):
        os.unlink(f)
    return path


def main() -> None:
    page = 64 * 1024
    p = fresh("clean.dat")
    with Writer(p, page_size=page) as w:
        feed(w, 400)
    set_pid(p, 0)

    p = fresh("multipage.dat")
    with Writer(p, page_size=16 * 1024) as w:
        feed(w, 1200)
    set_pid(p, 0)

    p = fresh("crashed.dat")
    pid = os.fork()
    if pid == 0:
        w = Writer(p, page_size=page)
        feed(w, 300)
        # half a frame past the cursor, then die without closing
        w._mm[w._pos : w._pos + 40] = struct.pack("<II", 48, 1) + b"\xab" * 32
        os.kill(os.getpid(), signal.SIGKILL)
    os.waitpid(pid, 0)
    set_pid(p, FAKE_PID)

    p = fresh("damaged.dat")
    with Writer(p, page_size=page) as w:
        feed(w, 400)
    set_pid(p, 0)
    with open(p, "r+b") as fh:
        fh.seek(8192)
        fh.write(bytes(4096))

    p = fresh("engine.dat")
    with Writer(p, page_size=page) as w:
        feed(w, 200)
    with open(p, "r+b") as fh:  # what an engine knowing only the 4 standard fields leaves
        fh.seek(16)
        fh.write(bytes(48))

    p = fresh("user_types.dat")
    reg = load_registry([os.path.join(HERE, "user_types.toml")])
    with Writer(p, page_size=page, registry=reg) as w:
        for i in range(100):
            t = T0 + i * 500_000
            if i % 4 == 3:
                w.write(200, bytes(range(i % 7, i % 7 + 24)), gen_time=t, source=3)
            elif i % 4 == 1:
                w.write("Quote", symbol="AAPL", bid=100 + i / 100, ask=100.02 + i / 100, bid_size=i, ask_size=2 * i,
                        gen_time=t, source=3)
            else:
                w.write_ticker("AAPL", 100 + i / 100, 100 + i / 100, 100.02 + i / 100, i, gen_time=t, source=3)
    set_pid(p, 0)


if __name__ == "__main__":
    main()
