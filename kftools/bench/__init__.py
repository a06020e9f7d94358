"""Benchmarks behind ``kftools bench`` (never part of ``make test``).

Every benchmark returns a flat dict of measurements; ``report`` prints it as a
table or one JSON object.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile


def report(results: dict, json_out: bool) -> None:
    if json_out:
        print(json.dumps(results))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table("measurement", "value", title="kftools bench")
    for k, v in results.items():
        if isinstance(v, float):
            v = f"{v:,.1f}"
        elif isinstance(v, int):
            v = f"{v:,}"
        t.add_row(k, str(v))
    Console().print(t)


def percentiles(values, prefix: str) -> dict:
    """p50/p99/p99.9/max of ns samples under ``prefix``."""
    import numpy as np

    a = np.asarray(values, dtype=np.int64)
    return {
        f"{prefix}.p50_ns": int(np.percentile(a, 50)),
        f"{prefix}.p99_ns": int(np.percentile(a, 99)),
        f"{prefix}.p999_ns": int(np.percentile(a, 99.9)),
        f"{prefix}.max_ns": int(a.max()),
        f"{prefix}.samples": int(len(a)),
    }


def median_of(fn, repeat: int) -> float:
    return statistics.median(fn() for _ in range(repeat))


def scratch_dir() -> str:
    """A temporary folder, in RAM when /dev/shm exists (as engines place live journals)."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    return tempfile.mkdtemp(prefix="kftools-bench-", dir=base)


def run_all(quick: bool = False, progress=None) -> dict:
    """Run every benchmark, in one process tree, one after the other (they share the 2 cores badly)."""
    import shutil

    from . import archive, backtest, cpp, export, importer, latency, merge, replay, shared_host, text, throughput

    plan = [
        ("throughput", lambda: throughput.run(frames=500_000 if quick else 2_000_000)),
        ("latency", lambda: latency.run(samples=20_000 if quick else 100_000)),
        ("shared host", lambda: shared_host.run(samples=5_000 if quick else 20_000)),
        ("export", lambda: export.run(frames=1_000_000 if quick else 10_000_000)),
        ("import", lambda: importer.run(frames=200_000 if quick else 500_000)),
        ("text", lambda: text.run(frames=500_000 if quick else 1_000_000, follow_frames=0 if quick else 2_000_000)),
        ("replay", lambda: replay.run(frames=100_000 if quick else 200_000)),
        ("merge", lambda: merge.run(frames=2_000_000 if quick else 8_000_000,
                                    per_frame_frames=200_000 if quick else 1_000_000)),
        ("archive", lambda: archive.run(frames=200_000 if quick else 1_000_000)),
        ("backtest", lambda: backtest.run(frames=200_000 if quick else 1_000_000)),
    ]
    if shutil.which("g++") or shutil.which("c++"):
        plan.append(("cpp", lambda: cpp.run(frames=30_000 if quick else 200_000)))
    results: dict = {}
    for name, fn in plan:
        if progress:
            progress(name)
        results.update(fn())
    return results
