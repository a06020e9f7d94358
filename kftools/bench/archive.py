"""Archive: compression ratio and speed on a simulated feed, and batch reading an archived journal
against the same journal uncompressed, in the same run."""

from __future__ import annotations

import glob
import os
import shutil
import statistics
import time

from . import scratch_dir

REPEAT = 7


def run(frames: int = 1_000_000, page_size: int = 8 << 20, level: int = 3) -> dict:
    from kftools.journal.archive import archive, unarchive
    from kftools.journal.reader import Reader
    from kftools.simulate import simulate

    d = scratch_dir()
    try:
        plain = os.path.join(d, "plain", "feed.dat")
        packed = os.path.join(d, "packed", "feed.dat")
        os.makedirs(os.path.dirname(plain))
        os.makedirs(os.path.dirname(packed))
        simulate(plain, rate=0, frames=frames, page_size=page_size, seed=1)
        for p in glob.glob(glob.escape(plain) + "*"):
            shutil.copyfile(p, os.path.join(os.path.dirname(packed), os.path.basename(p)))

        t = time.perf_counter()
        res = archive([packed], level=level)
        archive_s = time.perf_counter() - t

        def batch_read(path: str) -> float:
            # a fresh reader each time: opening an archived page (decompressing it) is part of the read
            t = time.perf_counter()
            with Reader(path) as r:
                n = sum(len(b) for b in r.batches())
            assert n == frames
            return frames / (time.perf_counter() - t)

        # in pairs, each archived read right after a plain one: a read takes tens of ms, and the noise of a shared
        # machine moves between pairs more than within one
        pairs = [(batch_read(plain), batch_read(packed)) for _ in range(REPEAT)]
        plain_rate = statistics.median(p for p, _ in pairs)
        packed_rate = statistics.median(a for _, a in pairs)
        ratio = statistics.median(a / p for p, a in pairs)
        t = time.perf_counter()
        unarchive([packed])
        unarchive_s = time.perf_counter() - t
    finally:
        shutil.rmtree(d, ignore_errors=True)
    mb = res.bytes_before / 1e6
    return {
        "archive.frames": frames,
        "archive.page_bytes": page_size,
        "archive.level": level,
        "archive.pages_archived": len(res.pages),
        "archive.mb_before": round(mb, 1),
        "archive.mb_after": round(res.bytes_after / 1e6, 1),
        "archive.ratio": round(res.ratio, 2),
        "archive.mb_per_s": round(mb / archive_s, 1),
        "archive.unarchive_mb_per_s": round(mb / unarchive_s, 1),
        "archive.batch_read_plain_frames_per_s": round(plain_rate),
        "archive.batch_read_archived_frames_per_s": round(packed_rate),
        "archive.archived_over_plain": round(ratio, 3),  # the median of the pairs' ratios
        "archive.loadavg_1m": round(os.getloadavg()[0], 2),
    }
