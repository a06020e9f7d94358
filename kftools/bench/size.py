"""Commands whose cost must not grow with the journal: each run on a 1-frame journal and on big ones (10 M
frames, 100 M when there is room) in the same run, as separate processes, their wall time, CPU time and peak
RSS measured from outside (``/usr/bin/time``; without it, ``wait4``'s rusage, which counts this process's pages
in a child's).

Target (issue 26): each command within 50 ms of its 1-frame time, and under 100 MB peak RSS, at any size.
The tail is also run on a journal of a few screenfuls (:data:`SCREENFUL`): a 1-frame journal draws one row,
a big one a screen of them, and drawing a screen of rows is a cost of the screen, not of the journal's size.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time

from . import scratch_dir

#: bytes a simulated frame takes (measured: 10 M frames fill 834.8 MB of pages)
FRAME_BYTES = 84
#: what is left for everything else when the big journals are in RAM
SPARE = 4 << 30
#: frames of the tail's second reference journal (one page): more rows than a screen holds
SCREENFUL = 1000


def _commands(path: str, frames: int) -> dict[str, list[str]]:
    py = sys.executable
    kf = [py, "-m", "kftools.cli"]
    return {
        "cat_n5": [*kf, "cat", path, "-n", "5"],
        "info": [*kf, "info", path],
        "verify_quick": [*kf, "verify", "--quick", path],
        "monitor_once": [*kf, "monitor", "--once", path],
        "writer_append_open": [py, "-c", "import sys; from kftools.journal.writer import Writer; "
                                        "Writer(sys.argv[1], append=True).close()", path],
        "tail_screen": [py, "-m", "kftools.bench.tail_probe", path, str(frames)],
    }


#: GNU time reports the command's own peak RSS. wait4's is not enough here: a child forked from this process
#: starts with this process's pages counted in its RSS, so it reports at least our size (189 MB after simulate).
GNU_TIME = "/usr/bin/time"


def measure(argv: list[str]) -> tuple[float, float, int, str]:
    """(wall s, cpu s, peak RSS kB, stdout) of one run of ``argv``, from outside."""
    timed = os.access(GNU_TIME, os.X_OK)
    t = time.perf_counter()
    p = subprocess.Popen([GNU_TIME, "-f", "%M", *argv] if timed else argv, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    out = p.stdout.read()  # type: ignore[union-attr]
    err = p.stderr.read()  # type: ignore[union-attr]
    _pid, status, ru = os.wait4(p.pid, 0)  # its CPU time includes the command's (a child it waited for)
    wall = time.perf_counter() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode not in (0,):
        raise RuntimeError(f"{' '.join(argv)}: exit {p.returncode}: {err.decode(errors='replace')[-500:]}")
    rss = int(err.decode().strip().splitlines()[-1]) if timed else ru.ru_maxrss
    return wall, ru.ru_utime + ru.ru_stime, rss, out.decode(errors="replace")


def _room(frames: int, folder: str) -> bool:
    need = frames * FRAME_BYTES + (256 << 20)
    free = shutil.disk_usage(folder).free
    try:
        with open("/proc/meminfo") as fh:
            avail = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("MemAvailable:"))
    except (OSError, StopIteration):
        avail = free
    on_ram = folder.startswith("/dev/shm")
    return free > need + SPARE and (not on_ram or avail > need + SPARE)


def run(sizes: tuple[int, ...] = (10_000_000, 100_000_000), repeat: int = 5, keep: str | None = None) -> dict:
    """Each command ``repeat`` times on every size, interleaved; medians, worst peak RSS, and the deltas."""
    from kftools.simulate import simulate

    d = keep or scratch_dir()
    os.makedirs(d, exist_ok=True)
    res: dict = {"size.loadavg_1m_start": round(os.getloadavg()[0], 2)}
    try:
        journals = {}
        for n in (1, SCREENFUL, *sizes):
            path = os.path.join(d, f"j{n}.dat")
            if not os.path.exists(path):
                if n > 1 and not _room(n, d):
                    res[f"size.skipped_{n}"] = f"no room for {n:,} frames in {d}"
                    continue
                t = time.perf_counter()
                simulate(path, rate=0, frames=n, seed=1)
                if n > 1:
                    res[f"size.simulate_{n}_s"] = round(time.perf_counter() - t, 1)
            journals[n] = path
        for path in journals.values():
            # journals made elsewhere (or copied) may lack summaries: a resuming writer records them, once
            measure(_commands(path, 1)["writer_append_open"])
        runs: dict[tuple[str, int], list[tuple[float, float, int]]] = {}
        tails: dict[int, list[dict]] = {}
        for _ in range(repeat):
            for n, path in journals.items():
                for name, argv in _commands(path, n).items():
                    if n == SCREENFUL and name != "tail_screen":
                        continue
                    wall, cpu, rss, out = measure(argv)
                    runs.setdefault((name, n), []).append((wall, cpu, rss))
                    if name == "tail_screen":
                        import json

                        tails.setdefault(n, []).append(json.loads(out.strip().splitlines()[-1]))
        for (name, n), rs in runs.items():
            res[f"size.{name}.{n}.wall_ms"] = round(statistics.median(r[0] for r in rs) * 1e3, 1)
            res[f"size.{name}.{n}.cpu_ms"] = round(statistics.median(r[1] for r in rs) * 1e3, 1)
            res[f"size.{name}.{n}.peak_rss_mb"] = round(max(r[2] for r in rs) / 1024, 1)
        for (name, n), _rs in runs.items():
            if n in (1, SCREENFUL):
                continue
            for what in ("wall", "cpu"):
                res[f"size.{name}.{n}.{what}_over_1_frame_ms"] = round(
                    res[f"size.{name}.{n}.{what}_ms"] - res[f"size.{name}.1.{what}_ms"], 1)
                if (name, SCREENFUL) in runs:
                    res[f"size.{name}.{n}.{what}_over_{SCREENFUL}_frames_ms"] = round(
                        res[f"size.{name}.{n}.{what}_ms"] - res[f"size.{name}.{SCREENFUL}.{what}_ms"], 1)
        for n, ts in tails.items():
            for k in ts[0]:
                res[f"size.tail.{n}.{k}"] = statistics.median(t[k] for t in ts)
        for n in tails:
            if n not in (1, SCREENFUL) and SCREENFUL in tails:
                for k in tails[n][0]:
                    for base in (1, SCREENFUL):
                        res[f"size.tail.{n}.{k}_over_{base}"] = round(
                            res[f"size.tail.{n}.{k}"] - res[f"size.tail.{base}.{k}"], 1)
        res["size.repeat"] = repeat
        res["size.loadavg_1m_end"] = round(os.getloadavg()[0], 2)
    finally:
        if keep is None:
            shutil.rmtree(d, ignore_errors=True)
    return res
