"""Append, per-frame read and batch read throughput, each beside a plain-Python baseline."""

from __future__ import annotations

import os
import shutil
import statistics
import struct
import time

from . import median_of, scratch_dir

REPEAT = 5


def run(frames: int = 2_000_000) -> dict:
    from kftools.journal.format import FRAME_HEADER, TICKER
    from kftools.journal.layout import BYTE_ORDER
    from kftools.journal.reader import Reader
    from kftools.journal.writer import Writer

    d = scratch_dir()
    path = os.path.join(d, "tp.dat")
    page = max(64 << 20, frames * 90 + 4096)
    res: dict = {"throughput.frames": frames}
    try:
        def append() -> float:
            for f in os.listdir(d):
                os.unlink(os.path.join(d, f))
            with Writer(path, page_size=page) as w:
                wt = w.write_ticker
                t = time.perf_counter()
                for _ in range(frames):
                    wt("AAPL", 1.0, 2.0, 3.0, 4.0)
                return frames / (time.perf_counter() - t)

        # baseline: the same bytes packed into a bytearray with no journal at all
        s = struct.Struct(BYTE_ORDER + FRAME_HEADER.struct.format[1:] + TICKER.struct.format[1:])
        buf = bytearray(page)

        def pack_only() -> float:
            p, pack, now = 64, s.pack_into, time.time_ns
            t = time.perf_counter()
            for _ in range(frames):
                pack(buf, p, 48, 1, now(), 0, 0, 0, b"AAPL", 1.0, 2.0, 3.0, 4.0)
                p += 80
            return frames / (time.perf_counter() - t)

        res["throughput.append_per_s"] = round(median_of(append, REPEAT))
        res["throughput.baseline_pack_per_s"] = round(median_of(pack_only, REPEAT))

        r = Reader(path)

        def read() -> float:
            t = time.perf_counter()
            n = 0
            for f in r:
                n += f.gen_time > 0
            assert n == frames
            return frames / (time.perf_counter() - t)

        def unpack_only() -> float:
            u = FRAME_HEADER.struct.unpack_from
            mm = r.page(0).mm
            t = time.perf_counter()
            p = 64
            for _ in range(frames):
                h = u(mm, p)
                p += 32 + h[0]
            return frames / (time.perf_counter() - t)

        def batch() -> float:
            t = time.perf_counter()
            n = 0
            for b in r.batches(batch_size=1 << 20):
                n += len(b.headers["gen_time"])
            assert n == frames
            return frames / (time.perf_counter() - t)

        # alternate the two so a noisy neighbour hits both alike
        reads, unpacks = [], []
        for _ in range(REPEAT):
            reads.append(read())
            unpacks.append(unpack_only())
        res["throughput.read_per_s"] = round(statistics.median(reads))
        res["throughput.baseline_unpack_per_s"] = round(statistics.median(unpacks))
        res["throughput.batch_read_per_s"] = round(median_of(batch, REPEAT))
        # the per-frame path against a loop that only unpacks the same headers (target >= 0.5)
        res["throughput.read_over_unpack"] = round(res["throughput.read_per_s"] / res["throughput.baseline_unpack_per_s"], 2)
        r.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return res
