"""Batch read of a Kungfu journal beside a kftools journal holding the same frames, in the same run.

Both journals hold the same frames (same types, payload sizes and bursty
``gen_time``s) in 128 MiB pages on /dev/shm: the Kungfu one laid out as
Kungfu 2.4 writes it (36-byte headers whose length counts the header,
``PageEnd`` before each new page), the kftools one by kftools' writer. Reads
alternate so a noisy neighbour hits both alike; the ratio is the target
(>= 0.5).
"""

from __future__ import annotations

import os
import shutil
import statistics
import time

import numpy as np

from . import scratch_dir

REPEAT = 5
PAGE_SIZE = 128 << 20
# a feed mostly of quotes, with the market and order flow between them
_MIX = [101] * 6 + [102] * 2 + [103] * 2 + [203, 204]


def _feed(frames: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Message types and bursty gen_times: bursts of 1..200 frames 1 µs apart, gaps up to 5 ms."""
    rng = np.random.default_rng(seed)
    types = np.array(_MIX, dtype=np.int32)[rng.integers(0, len(_MIX), frames)]
    gaps = np.full(frames, 1_000, dtype=np.int64)
    starts = np.cumsum(rng.integers(1, 200, frames // 2 + 1))
    starts = starts[starts < frames]
    gaps[starts] = rng.integers(10_000, 5_000_000, len(starts))
    return types, 1_700_000_000_000_000_000 + np.cumsum(gaps)


def write_kungfu(folder: str, types: np.ndarray, times: np.ndarray, page_size: int = PAGE_SIZE) -> None:
    """Pages ``00000000.{1,2,...}.journal`` as Kungfu 2.4 lays them out (zero payloads)."""
    from kftools.journal import yijinjing as kf

    hdr, ph = kf.FRAME_HEADER, kf.PAGE_HEADER
    sizes = np.zeros(int(types.max()) + 1, dtype=np.int64)
    for t, layout in kf.LAYOUTS.items():
        if t < len(sizes):
            sizes[t] = layout.size
    lens = hdr.size + sizes[types]
    os.makedirs(folder, exist_ok=True)
    done, page_id = 0, 1
    while done < len(types):
        # frames fit while they end before page_size - 36 (room for the PageEnd)
        ends = ph.size + np.cumsum(lens[done:])
        k = max(1, int(np.searchsorted(ends, page_size - hdr.size, side="right")))
        offs = ends[:k] - lens[done : done + k]
        buf = np.zeros(page_size, dtype=np.uint8)
        head = np.zeros(k + 1, dtype=hdr.dtype)
        head["length"][:k] = lens[done : done + k]
        head["header_length"] = hdr.size
        head["gen_time"][:k] = times[done : done + k]
        head["msg_type"][:k] = types[done : done + k]
        last = done + k < len(types)
        if last:  # sealed: PageEnd after the last frame
            head[k] = (hdr.size, hdr.size, times[done + k - 1], 0, int(kf.MsgType.PageEnd), 0, 0)
        where = np.append(offs, int(ends[k - 1]))[: k + int(last)]
        raw = head[: len(where)].view(np.uint8).reshape(len(where), hdr.size)
        for lo in range(0, len(where), 100_000):  # bounded index arrays
            idx = where[lo : lo + 100_000, None] + np.arange(hdr.size)
            buf[idx] = raw[lo : lo + 100_000]
        buf[: ph.size] = np.frombuffer(ph.struct.pack(kf.VERSION, ph.size, page_size, hdr.size, int(where[-1])), np.uint8)
        with open(os.path.join(folder, kf.page_file_name(0, page_id)), "wb") as fh:
            fh.write(buf.tobytes())
        done += k
        page_id += 1


def run(frames: int = 1_000_000) -> dict:
    from kftools.journal import yijinjing as kf
    from kftools.journal.reader import Reader
    from kftools.journal.writer import Writer

    d = scratch_dir()
    res: dict = {"kungfu.frames": frames}
    try:
        types, times = _feed(frames)
        kfolder = os.path.join(d, "md", "bench", "feed", "journal", "live")
        write_kungfu(kfolder, types, times)
        path = os.path.join(d, "feed.dat")
        payloads = {int(t): bytes(layout.size) for t, layout in kf.LAYOUTS.items()}
        with Writer(path, page_size=PAGE_SIZE) as w:
            write = w.write
            for t, g in zip(types.tolist(), times.tolist(), strict=True):
                write(t, payloads[t], gen_time=g)
        kr, fr = Reader(kfolder), Reader(path)

        def batch(r) -> tuple[float, float]:
            t, c = time.perf_counter(), time.process_time()
            n = 0
            for b in r.batches(batch_size=1 << 20):
                n += len(b.headers["gen_time"])
            assert n == frames, (n, frames)
            # wall clock, and CPU time: on a loaded machine the process waits for a core between the two
            return frames / (time.perf_counter() - t), frames / max(time.process_time() - c, 1e-9)

        batch(kr), batch(fr)  # map the pages once before measuring either
        kungfu, kftools = [], []
        for _ in range(REPEAT):
            kungfu.append(batch(kr))
            kftools.append(batch(fr))
        res["kungfu.batch_read_per_s"] = round(statistics.median(k[0] for k in kungfu))
        res["kungfu.kftools_batch_read_per_s"] = round(statistics.median(k[0] for k in kftools))
        res["kungfu.batch_read_ratio"] = round(res["kungfu.batch_read_per_s"] / res["kungfu.kftools_batch_read_per_s"], 2)
        res["kungfu.batch_read_cpu_per_s"] = round(statistics.median(k[1] for k in kungfu))
        res["kungfu.kftools_batch_read_cpu_per_s"] = round(statistics.median(k[1] for k in kftools))
        res["kungfu.batch_read_cpu_ratio"] = round(
            res["kungfu.batch_read_cpu_per_s"] / res["kungfu.kftools_batch_read_cpu_per_s"], 2)
        res["kungfu.pages"] = kr.page_count()
        res["kungfu.load_average"] = round(os.getloadavg()[0], 1)
        kr.close()
        fr.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return res
