"""Export throughput and peak RSS, beside pyarrow writing the same table from memory and a per-frame loop."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

from . import scratch_dir

# `kftools export` as a user runs it (the CLI's main, same imports), timed from after the imports
_CHILD = """
import json, sys, time
from kftools.cli import main
t = time.perf_counter()
try:
    main(sys.argv[1:])
except SystemExit as e:
    code = e.code
print(json.dumps({"seconds": time.perf_counter() - t, "code": code}))
"""

# What /usr/bin/time does, from a small process. A process spawned by this benchmark (large by then: it made and
# read the journal) starts with this process's peak RSS in its ru_maxrss (Linux keeps the peak of the memory a
# process had before exec), which hid the export's own figure. So a small interpreter forks the export, reaps
# it with wait4 and writes "exit-code ru_maxrss" to the file descriptor it is given.
_TIME = """
import os, sys
fd = int(sys.argv[1])
pid = os.fork()
if pid == 0:
    os.close(fd)
    os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
_pid, status, usage = os.wait4(pid, 0)
os.write(fd, f"{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss}".encode())
"""


def export_in_child(journal: str, out: str, compression: str = "zstd", row_group_size: int = 100_000) -> dict:
    """Run ``kftools export`` in a fresh process and measure its peak RSS from outside.

    Returns rows, seconds (the export, imports excluded) and the kernel's peak RSS of that
    process (``wait4``'s ru_maxrss in KiB, taken as ``/usr/bin/time -v`` takes its "Maximum resident set size").
    """
    import json

    import pyarrow.parquet as pq

    args = ["export", journal, out, "--force", "-q", "--compression", compression, "--row-group-size",
            str(row_group_size)]
    rfd, wfd = os.pipe()
    try:
        p = subprocess.Popen([sys.executable, "-S", "-c", _TIME, str(wfd), "-c", _CHILD, *args],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(wfd,))
    finally:
        os.close(wfd)
    with os.fdopen(rfd, "rb") as measured:
        out_b, err_b = p.communicate()
        status = measured.read().decode().split()
    res = json.loads(out_b.decode().strip().splitlines()[-1]) if out_b.strip() else {"code": None}
    if p.returncode != 0 or len(status) != 2 or status[0] != "0" or res["code"] not in (0, None):
        raise RuntimeError(f"kftools export failed ({p.returncode}, {status}): {err_b.decode().strip()}")
    return {"rows": pq.read_metadata(out).num_rows, "seconds": res["seconds"], "hwm_kb": int(status[1])}


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
            "export.peak_rss_mb": round(max(r["hwm_kb"] for r in runs) / 1024, 1),  # MiB, from outside (wait4)
            "export.peak_rss_kb": max(r["hwm_kb"] for r in runs),
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
