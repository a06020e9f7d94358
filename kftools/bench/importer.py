"""Import against export: `kftools import` of a journal's export and `kftools export` of that journal, each as a
user runs it (a fresh process, the CLI's main), alternated in the same run on the same journal."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys

from . import scratch_dir
from .export import _CHILD

REPEAT = 5


def _cli(*args: str) -> float:
    """Seconds ``kftools ARGS`` took in a fresh process, imports excluded."""
    res = subprocess.run([sys.executable, "-c", _CHILD, *args], capture_output=True, text=True)
    out: dict = json.loads(res.stdout.strip().splitlines()[-1]) if res.stdout.strip() else {"code": None}
    if res.returncode != 0 or out["code"] not in (0, None):
        raise RuntimeError(f"kftools {' '.join(args)} failed ({res.returncode}): {res.stderr.strip()}")
    return float(out["seconds"])


def run(frames: int = 500_000, compression: str = "zstd") -> dict:
    from kftools.journal.reader import Reader
    from kftools.simulate import simulate

    d = scratch_dir()
    try:
        j = os.path.join(d, "feed.dat")
        simulate(j, rate=0, frames=frames, seed=1)
        parquet = os.path.join(d, "feed.parquet")
        copy = os.path.join(d, "copy.dat")
        pairs = []
        # in pairs, an import right after an export: the noise of a shared machine moves between pairs more
        # than within one
        for _ in range(REPEAT):
            e = _cli("export", j, parquet, "--force", "-q", "--compression", compression)
            i = _cli("import", parquet, copy, "--force")
            pairs.append((e, i))
        with Reader(j) as a, Reader(copy) as b:
            same = all(x.raw == y.raw for x, y in zip(a.frames(), b.frames(), strict=True))
    finally:
        shutil.rmtree(d, ignore_errors=True)
    export_s = statistics.median(e for e, _ in pairs)
    import_s = statistics.median(i for _, i in pairs)
    return {
        "import.frames": frames,
        "import.export_seconds": round(export_s, 3),
        "import.import_seconds": round(import_s, 3),
        "import.export_frames_per_s": round(frames / export_s),
        "import.import_frames_per_s": round(frames / import_s),
        "import.import_over_export": round(statistics.median(e / i for e, i in pairs), 3),  # median of the pairs
        "import.frames_identical": same,
        "import.loadavg_1m": round(os.getloadavg()[0], 2),
    }
