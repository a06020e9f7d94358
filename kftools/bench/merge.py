"""Merging several journals by gen_time: batch merge and per-frame merged iteration,
each beside a single Reader reading the same frames in the same run.

The journals are bursty recordings (bursts of frames nanoseconds apart, quiet
gaps of up to milliseconds between bursts), each with its own bursts, written
in RAM (/dev/shm) as engines place live journals.
"""

from __future__ import annotations

import heapq
import os
import shutil
import time

from . import median_of, scratch_dir

REPEAT = 3


def _record(path: str, frames: int, seed: int) -> None:
    import numpy as np

    from kftools.journal.format import FRAME_HEADER, FRAME_HEADER_SIZE, TICKER
    from kftools.journal.writer import Writer

    rng = np.random.default_rng(seed)
    # bursts: mostly 0-200 ns apart, one frame in 50 after a quiet gap of up to 2 ms
    gaps = rng.integers(0, 200, frames)
    quiet = rng.random(frames) < 0.02
    gaps[quiet] = rng.integers(10_000, 2_000_000, int(quiet.sum()))
    gen = 1_800_000_000_000_000_000 + np.cumsum(gaps)
    rec = np.zeros(frames, np.dtype([("h", FRAME_HEADER.dtype), ("p", TICKER.dtype)]))
    rec["h"]["length"] = TICKER.size
    rec["h"]["msg_type"] = 1
    rec["h"]["gen_time"] = gen
    rec["p"]["symbol"] = np.array([b"AAPL", b"MSFT", b"NVDA", b"TSLA"])[rng.integers(0, 4, frames)]
    rec["p"]["last_price"] = 100.0 + rng.random(frames)
    size = FRAME_HEADER_SIZE + TICKER.size
    starts = np.arange(frames + 1, dtype=np.int64) * size
    with Writer(path, page_size=min(256 << 20, frames * size + 4096)) as w:
        w.write_raw_frames(rec.view(np.uint8), starts)


def run(frames: int = 8_000_000, journals: int = 8, per_frame_frames: int = 1_000_000) -> dict:
    """``frames`` in total over ``journals`` journals for the batch merge; the per-frame
    measurements read the first ``per_frame_frames`` of them (they take ~1 s per million)."""
    from kftools.journal.merge import open_many
    from kftools.journal.reader import Reader

    d = scratch_dir()
    each = frames // journals
    paths = [os.path.join(d, f"j{i}.dat") for i in range(journals)]
    res: dict = {"merge.journals": journals, "merge.frames": each * journals}
    try:
        for i, p in enumerate(paths):
            _record(p, each, seed=i)

        def merged_batches() -> float:
            with open_many(paths) as m:
                t = time.perf_counter()
                n = 0
                for b in m.batches():
                    n += len(b.headers)
                dt = time.perf_counter() - t
            assert n == each * journals, n
            return n / dt

        def single_batches() -> float:
            # the same frames read one journal after another, no merge: the floor a merge adds to
            t = time.perf_counter()
            n = 0
            for p in paths:
                with Reader(p) as r:
                    for b in r.batches():
                        n += len(b.headers)
            return n / (time.perf_counter() - t)

        res["merge.batch_merged_per_s"] = round(median_of(merged_batches, REPEAT))
        res["merge.batch_single_reader_per_s"] = round(median_of(single_batches, REPEAT))

        # per-frame: journals of per_frame_frames in total
        small = [os.path.join(d, f"s{i}.dat") for i in range(journals)]
        per = per_frame_frames // journals
        for i, p in enumerate(small):
            _record(p, per, seed=100 + i)
        total = per * journals

        def merged_frames() -> float:
            with open_many(small) as m:
                t = time.perf_counter()
                n = 0
                for f in m:
                    n += f.gen_time > 0
                dt = time.perf_counter() - t
            assert n == total
            return total / dt

        def single_frames() -> float:
            t = time.perf_counter()
            n = 0
            for p in small:
                with Reader(p) as r:
                    for f in r:
                        n += f.gen_time > 0
            assert n == total
            return total / (time.perf_counter() - t)

        def heap_frames() -> float:
            # the naive merge: a Python heap of per-frame iterators
            readers = [Reader(p) for p in small]
            t = time.perf_counter()
            n = 0
            for f in heapq.merge(*(iter(r) for r in readers), key=lambda f: f.gen_time):
                n += f.gen_time > 0
            dt = time.perf_counter() - t
            for r in readers:
                r.close()
            assert n == total
            return total / dt

        res["merge.frames_merged_per_s"] = round(median_of(merged_frames, REPEAT))
        res["merge.frames_single_reader_per_s"] = round(median_of(single_frames, REPEAT))
        res["merge.frames_heapq_merge_per_s"] = round(median_of(heap_frames, REPEAT))
        res["merge.batch_vs_single"] = round(res["merge.batch_merged_per_s"] / res["merge.batch_single_reader_per_s"], 3)
        res["merge.frames_vs_single"] = round(res["merge.frames_merged_per_s"] / res["merge.frames_single_reader_per_s"], 3)
        res["merge.load_avg_1m"] = round(os.getloadavg()[0], 2)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return res
