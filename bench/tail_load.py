"""Load test of ``kftools tail``: a simulated writer at RATE frames/s for DURATION s with the tail open.

    .venv/bin/python bench/tail_load.py --rate 1000000 --duration 30

The tail runs headless (``App.run_test``, which still lays out and renders
every refresh) in its own process, so its CPU and peak memory are its own.
Reports the writer's achieved rate, the tail's CPU (% of one core), peak RSS
(VmHWM), frames counted against frames written, and the lag (now minus the
newest indexed frame's gen_time) sampled every 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time

KFWRITE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "cpp", "build", "kfwrite")

def rss_anon_mb(kind: str = "RssAnon") -> float:
    with open("/proc/self/status") as fh:
        return round(int(re.search(kind + r":\s+(\d+)", fh.read()).group(1)) / 1024, 1)


def child(path: str, seconds: float, out: str) -> None:
    """Run the tail headless; sample lag; write a JSON report to ``out``."""
    import resource

    from kftools.journal.reader import Reader
    from kftools.journal.registry import DEFAULT_REGISTRY
    from kftools.tui.app import TailApp
    from kftools.tui.widgets import FrameTable

    lags: list[float] = []
    behind_rows: list[int] = []
    behind: list[float] = []
    anon: list[float] = []
    mapped: list[float] = []

    def behind_ms(idx) -> float:
        """gen_time of the newest committed frame minus that of the newest frame the tail has indexed."""
        with idx.lock:
            page, end, seen = idx.pages[-1].index, idx.pages[-1].end, idx.newest_time
        newest = seen
        # a fresh reader each time, closed after: its mappings must not count as the tail's memory
        with Reader(path) as r:
            for b in r.batches(start=(page, end)):
                newest = int(b.headers["gen_time"][-1])
        return (newest - seen) / 1e6

    async def go():
        app = TailApp(path, DEFAULT_REGISTRY)
        async with app.run_test(size=(160, 50)) as pilot:
            t_end = time.monotonic() + seconds
            table = app.query_one(FrameTable)
            last_total, since = -1, time.monotonic()
            while time.monotonic() < t_end:
                await pilot.pause(0.1)
                idx = app.index
                live = app.writer[0] == "alive"  # after the writer closes, "lag" is just idle time
                if live and idx.newest_time is not None and app.watcher is not None and app.watcher.caught_up:
                    lags.append((time.time_ns() - idx.newest_time) / 1e6)
                    behind_rows.append(idx.count - table.count)
                    if not os.environ.get("TAIL_LOAD_NO_PROBE"):
                        behind.append(behind_ms(idx))
                    anon.append(rss_anon_mb())
                    mapped.append(rss_anon_mb("RssFile"))
                if app.writer[0] == "exited":
                    if idx.total == last_total and time.monotonic() - since > 1.0:
                        break  # the writer closed and every frame has been counted
                    if idx.total != last_total:
                        last_total, since = idx.total, time.monotonic()
            # the writer has stopped: how long until every committed frame is counted
            return app.index.total, app.header_text

    t0 = time.monotonic()
    c0 = time.process_time()
    total, header = asyncio.run(go())
    wall = time.monotonic() - t0
    cpu = time.process_time() - c0
    with open("/proc/self/status") as fh:
        hwm = int(re.search(r"VmHWM:\s+(\d+)", fh.read()).group(1))
    lags.sort()
    behind.sort()

    def pct(p):
        return lags[min(len(lags) - 1, int(p / 100 * len(lags)))] if lags else None

    report = {
        "tail_frames_counted": total,
        "tail_cpu_percent": round(100 * cpu / wall, 1),
        "tail_peak_rss_mb": round(hwm / 1024, 1),
        "tail_maxrss_mb_getrusage": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "lag_ms_p50": pct(50),
        "lag_ms_p99": pct(99),
        "lag_ms_max": lags[-1] if lags else None,
        "lag_samples": len(lags),
        "tail_behind_writer_ms_p50": behind[len(behind) // 2] if behind else None,
        "tail_behind_writer_ms_p99": behind[min(len(behind) - 1, int(0.99 * len(behind)))] if behind else None,
        "tail_behind_writer_ms_max": behind[-1] if behind else None,
        "tail_rss_anon_mb_max": max(anon) if anon else None,
        "tail_rss_anon_mb_first": anon[0] if anon else None,
        "tail_rss_file_mb_max": max(mapped) if mapped else None,
        "view_rows_behind_max": max(behind_rows) if behind_rows else None,
        "header": header,
    }
    with open(out, "w") as fh:
        json.dump(report, fh)


def open_child(path: str, out: str) -> None:
    """Time opening a finished journal headless: until every frame is counted, then Home and a time jump."""
    from kftools.journal.registry import DEFAULT_REGISTRY
    from kftools.tui.app import TailApp
    from kftools.tui.widgets import FrameTable

    async def go():
        t0 = time.monotonic()
        app = TailApp(path, DEFAULT_REGISTRY)
        async with app.run_test(size=(160, 50)) as pilot:
            table = app.query_one(FrameTable)
            while not (app.caught_up and table.count == app.index.count and table.count):
                await pilot.pause(0.01)
            t_open = time.monotonic() - t0
            t1 = time.monotonic()
            await pilot.press("home")
            top = app.index.frames(app.reader, 0, 1)[0].gen_time
            t_home = time.monotonic() - t1
            mid = app.index.frames(app.reader, table.count // 2, table.count // 2 + 1)[0].gen_time
            t2 = time.monotonic()
            app.goto_time(str(mid))
            t_jump = time.monotonic() - t2
            return {"frames": app.index.total, "open_s": round(t_open, 2), "home_s": round(t_home, 3),
                    "jump_to_time_s": round(t_jump, 3), "jump_row_ok": table.cursor <= table.count // 2,
                    "top_is_first": top == app.index.pages[0].first_time}

    c0 = time.process_time()
    report = asyncio.run(go())
    report["cpu_s"] = round(time.process_time() - c0, 2)
    report["peak_rss_mb"] = rss_anon_mb("VmHWM")
    report["rss_anon_mb"] = rss_anon_mb()
    with open(out, "w") as fh:
        json.dump(report, fh)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=1_000_000)
    ap.add_argument("--duration", type=float, default=30)
    ap.add_argument("--page-size", type=int, default=128 * 1024 * 1024)
    ap.add_argument("--writer", choices=("auto", "cpp", "python"), default="auto",
                    help="cpp: cpp/build/kfwrite (make -C cpp); python: kftools simulate; auto: cpp if built")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--open", type=int, metavar="FRAMES",
                    help="instead: time opening a finished journal of FRAMES frames (written by kfwrite)")
    ap.add_argument("--open-child", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--child", nargs=3, metavar=("PATH", "SECONDS", "OUT"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child[0], float(a.child[1]), a.child[2])
        return
    if a.open_child:
        open_child(*a.open_child)
        return
    if a.open:
        with tempfile.TemporaryDirectory(prefix="kftools-tail-open-") as tmp:
            path, out = os.path.join(tmp, "big.dat"), os.path.join(tmp, "open.json")
            subprocess.run([KFWRITE, path, "--frames", str(a.open), "--rate", "0", "--page-size", str(a.page_size)],
                           check=True, stdout=subprocess.DEVNULL)
            size = sum(os.path.getsize(os.path.join(tmp, p)) for p in os.listdir(tmp))
            subprocess.run([sys.executable, __file__, "--open-child", path, out], check=True)
            with open(out) as fh:
                report = {"journal_bytes": size, **json.load(fh)}
        print(json.dumps(report) if a.json else "\n".join(f"{k:28} {v}" for k, v in report.items()))
        return
    with tempfile.TemporaryDirectory(prefix="kftools-tail-load-") as tmp:
        path = os.path.join(tmp, "load.dat")
        out = os.path.join(tmp, "tail.json")
        tail = subprocess.Popen([sys.executable, __file__, "--child", path, str(a.duration + 20), out])
        use_cpp = a.writer == "cpp" or (a.writer == "auto" and os.access(KFWRITE, os.X_OK))
        t0 = time.monotonic()
        if use_cpp:
            # the C++ writer reaches 1M frames/s on 2 shared cores; the Python simulate does not
            n = int(a.rate * a.duration)
            subprocess.run([KFWRITE, path, "--frames", str(n), "--rate", str(a.rate), "--page-size",
                            str(a.page_size)], check=True, stdout=subprocess.DEVNULL)
            written, achieved = n, round(n / (time.monotonic() - t0))
        else:
            err = subprocess.run(
                [sys.executable, "-m", "kftools.cli", "simulate", path, "--rate", str(a.rate), "--duration",
                 str(a.duration), "--page-size", str(a.page_size)],
                stderr=subprocess.PIPE, text=True, check=True,
            ).stderr
            written = int(re.search(r"wrote ([\d,]+) frames", err).group(1).replace(",", ""))
            achieved = float(re.search(r"\(([\d,]+)/s\)", err).group(1).replace(",", ""))
        tail.wait(timeout=a.duration + 120)
        with open(out) as fh:
            report = json.load(fh)
        pages = len([p for p in os.listdir(tmp) if p.startswith("load.dat")])
    report = {"writer": "cpp kfwrite" if use_cpp else "python simulate", "writer_rate_target": a.rate, "writer_rate_achieved": achieved, "frames_written": written,
              "pages": pages, "duration_s": a.duration, **report}
    report["all_frames_counted"] = report["tail_frames_counted"] == written
    if a.json:
        print(json.dumps(report))
    else:
        for k, v in report.items():
            print(f"{k:28} {v}")


if __name__ == "__main__":
    main()
