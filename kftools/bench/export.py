"""Export throughput and peak RSS, beside pyarrow writing the same table from memory and a per-frame loop."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

from . import scratch_dir

# Runs in a child process so its peak RSS is the export's alone.
_CHILD = """
import json, sys, time
from kftools.export import export
from kftools.journal.registry import load_registry
t = time.perf_counter()
r = export(sys.argv[1], sys.argv[2], registry=load_registry(), compression=sys.argv[3], row_group_size=int(sys.argv[4]), force=True)
s = time.perf_counter() - t
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(json.dumps({"rows": r.rows, "seconds": s, "hwm_kb": hwm}))
"""


def export_in_child(journal: str, out: str, compression: str = "zstd", row_group_size: int = 100_000) -> dict:
    """Export in a fresh interpreter; its rows, seconds and peak RSS (VmHWM, KiB)."""
    p = subprocess.run([sys.executable, "-c", _CHILD, journal, out, compression, str(row_group_size)],
                       capture_output=True, text=True, check=True)
    return json.loads(p.stdout)


def _per_frame_export(journal: str, out: str, frames: int, compression: str, row_group_size: int) -> float:
    """The naive way: struct.unpack each frame into Python lists, then pyarrow. Rows per second."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from kftools.journal.format import FRAME_HEADER, FRAME_HEADER_SIZE, PAGE_HEADER_SIZE
    from kftools.journal.reader import Reader
    from kftools.journal.registry import DEFAULT_REGISTRY

    t = time.perf_counter()
    r = Reader(journal)
    mm = r.page(0).mm
    hnames = FRAME_HEADER.names
    layouts = {mt.id: mt.layout for mt in DEFAULT_REGISTRY.types()}
    names = list(dict.fromkeys([*hnames, *(f for lay in layouts.values() for f in lay.names)]))
    cols: dict[str, list] = {k: [] for k in names}
    unpack_h = FRAME_HEADER.struct.unpack_from
    off = PAGE_HEADER_SIZE
    for _ in range(frames):
        h = unpack_h(mm, off)
        row = dict(zip(hnames, h, strict=True))
        row.update(layouts[h[1]].unpack(mm, off + FRAME_HEADER_SIZE))
        for k in names:
            cols[k].append(row.get(k))
        off += FRAME_HEADER_SIZE + h[0]
    pq.write_table(pa.table(cols), out, compression=None if compression == "none" else compression,
                   row_group_size=row_group_size)
    r.close()
    return frames / (time.perf_counter() - t)


def run(frames: int = 10_000_000, compression: str = "zstd", baseline_frames: int = 300_000,
        row_group_size: int = 100_000) -> dict:
    import pyarrow.parquet as pq

    from kftools.simulate import simulate

    d = scratch_dir()
    try:
        j = os.path.join(d, "bench.dat")
        simulate(j, rate=0, frames=frames, page_size=1 << 30)
        from kftools.journal.reader import Reader

        with Reader(j) as r:
            size = sum(int(b.headers["length"].sum()) + 32 * len(b) for b in r.batches(1 << 20))
        out = os.path.join(d, "out.parquet")
        runs = [export_in_child(j, out, compression, row_group_size) for _ in range(3)]
        best = min(runs, key=lambda r: r["seconds"])
        res = {
            "export.frames": frames,
            "export.journal_mb": round(size / 2**20, 1),
            "export.parquet_mb": round(os.path.getsize(out) / 2**20, 1),
            "export.compression": compression,
            "export.row_group_size": row_group_size,
            "export.seconds": round(best["seconds"], 2),
            "export.rows_per_s": round(frames / best["seconds"]),
            "export.peak_rss_mb": round(max(r["hwm_kb"] for r in runs) / 1024, 1),
        }
        # pyarrow alone: the same table, already in memory, written with the same settings
        table = pq.read_table(out)
        out2 = os.path.join(d, "pa.parquet")
        secs = []
        for _ in range(3):
            t = time.perf_counter()
            pq.write_table(table, out2, compression=None if compression == "none" else compression,
                           row_group_size=row_group_size)
            secs.append(time.perf_counter() - t)
        del table
        res["export.pyarrow_rows_per_s"] = round(frames / min(secs))
        res["export.ratio_to_pyarrow"] = round(res["export.rows_per_s"] / res["export.pyarrow_rows_per_s"], 2)
        nb = min(baseline_frames, frames)
        res["export.per_frame_rows_per_s"] = round(_per_frame_export(j, os.path.join(d, "pf.parquet"), nb,
                                                                     compression, row_group_size))
        res["export.speedup_vs_per_frame"] = round(res["export.rows_per_s"] / res["export.per_frame_rows_per_s"], 1)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return res
