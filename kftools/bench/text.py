"""``kftools bench text``: ``cat -F text|jsonl|csv`` lines/s piped to /dev/null, beside pyarrow's CSV writer
writing the same rows, and ``cat -f`` keeping up with a live writer.

Each ``cat`` runs as a user runs it (the CLI's ``main`` in a fresh process whose standard output is /dev/null),
timed from after its imports; ``wall`` figures include the interpreter's start and the imports; ``cpu`` figures divide by the CPU time the
process used (what a shared, loaded machine does not change much).
pyarrow's ``write_csv`` gets the same rows as an in-memory table (the export's columns, dictionaries decoded,
built before the clock starts) and writes them to /dev/null in this process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

from . import scratch_dir

_CHILD = """
import json, sys, time
from kftools.cli import main
t, c = time.perf_counter(), time.process_time()
code = 0
try:
    main(sys.argv[1:])
except SystemExit as e:
    code = e.code
sys.stdout.flush()
print(json.dumps({"seconds": time.perf_counter() - t, "cpu": time.process_time() - c, "code": code}),
      file=sys.stderr)
"""


def cat_in_child(journal: str, fmt: str) -> tuple[float, float, float]:
    """(seconds after imports, CPU seconds after imports, wall seconds) of ``kftools cat JOURNAL -F FMT > /dev/null``."""
    with open(os.devnull, "wb") as null:
        t = time.perf_counter()
        p = subprocess.run([sys.executable, "-c", _CHILD, "cat", journal, "-F", fmt], stdout=null,
                           stderr=subprocess.PIPE, check=False)
        wall = time.perf_counter() - t
    got = json.loads(p.stderr.decode().strip().splitlines()[-1])
    if got["code"] not in (0, None):
        raise RuntimeError(f"kftools cat -F {fmt} failed: {p.stderr.decode()[-500:]}")
    return got["seconds"], got["cpu"], wall


def arrow_rows(journal: str):
    """The journal's rows as the export's Arrow table, dictionary columns decoded (what write_csv takes)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from kftools.export import export
    from kftools.journal.schemas import load_registry

    d = scratch_dir()
    try:
        out = os.path.join(d, "rows.parquet")
        export(journal, out, registry=load_registry(), compression="none")
        table = pq.read_table(out)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    cols = []
    for c in table.columns:
        c = c.combine_chunks()
        if pa.types.is_dictionary(c.type):
            c = c.dictionary_decode()
        if pa.types.is_binary(c.type) or pa.types.is_fixed_size_list(c.type):
            c = pa.array([None] * len(c), pa.string()) if c.null_count == len(c) else c.cast(pa.string())
        cols.append(c)
    return pa.table(cols, names=table.column_names)


def follow_live(journal: str, frames: int, rate: float) -> dict:
    """``cat -f -F jsonl`` (to a pipe this process drains) on a journal a C++ writer fills at ``rate`` frames/s.

    Keeping up means the follower has printed every frame soon after the writer wrote its last: the result
    says the writer's own duration and the follower's lag behind it. Empty without a C++ compiler."""
    from .cpp import build

    try:
        kfwrite = str(build() / "kfwrite")
    except RuntimeError:
        return {}
    # the follower first: it waits for the journal to appear, so it sees every frame from the first
    cat = subprocess.Popen([sys.executable, "-m", "kftools.cli", "cat", journal, "-f", "-F", "jsonl"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert cat.stdout is not None
    t0 = time.perf_counter()
    w = subprocess.Popen([kfwrite, journal, "--frames", str(frames), "--rate", str(int(rate))],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen = 0
    writer_done = None
    fd = cat.stdout.fileno()
    try:
        while seen < frames:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            seen += chunk.count(b"\n")
            if writer_done is None and w.poll() is not None:
                writer_done = time.perf_counter()
        end = time.perf_counter()
        w.wait()
        writer_done = writer_done or end
    finally:
        cat.terminate()
        _pid, _status, usage = os.wait4(cat.pid, 0)
        cat.returncode = 0  # reaped above
        if w.poll() is None:
            w.kill()
            w.wait()
    cpu = usage.ru_utime + usage.ru_stime
    return {"text.follow.frames": seen, "text.follow.writer_rate": int(rate),
            "text.follow.writer_seconds": round(writer_done - t0, 3),
            "text.follow.lag_after_writer_s": round(end - writer_done, 3),
            # the follower's whole CPU time, its interpreter's start and imports included
            "text.follow.cat_cpu_s": round(cpu, 3), "text.follow.cpu_lines_per_s": round(seen / cpu)}


def run(frames: int = 1_000_000, repeat: int = 3, follow_frames: int = 0, follow_rate: float = 1e6) -> dict:
    import pyarrow.csv as pacsv

    from kftools.simulate import simulate

    d = scratch_dir()
    res: dict = {"text.frames": frames}
    try:
        path = os.path.join(d, "text.dat")
        simulate(path, rate=0, frames=frames, seed=1)
        for fmt in ("text", "jsonl", "csv"):
            runs = [cat_in_child(path, fmt) for _ in range(repeat)]
            secs, cpu, wall = (sorted(r[k] for r in runs)[len(runs) // 2] for k in range(3))
            res[f"text.{fmt}.lines_per_s"] = round(frames / secs)
            res[f"text.{fmt}.cpu_lines_per_s"] = round(frames / cpu)
            res[f"text.{fmt}.wall_lines_per_s"] = round(frames / wall)
        table = arrow_rows(path)

        def arrow() -> tuple[float, float]:
            t, c = time.perf_counter(), time.process_time()
            pacsv.write_csv(table, os.devnull)
            return time.perf_counter() - t, time.process_time() - c

        timed = [arrow() for _ in range(repeat)]
        secs, cpu = (sorted(r[k] for r in timed)[len(timed) // 2] for k in range(2))
        res["text.pyarrow_write_csv.rows_per_s"] = round(table.num_rows / secs)
        res["text.pyarrow_write_csv.cpu_rows_per_s"] = round(table.num_rows / cpu)
        for fmt in ("text", "jsonl", "csv"):
            res[f"text.{fmt}.vs_pyarrow"] = round(res[f"text.{fmt}.lines_per_s"] / res["text.pyarrow_write_csv.rows_per_s"], 2)
        if follow_frames:
            res.update(follow_live(os.path.join(d, "live.dat"), follow_frames, follow_rate))
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return res
