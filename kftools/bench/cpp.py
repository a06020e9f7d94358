"""C++ writer latency: to a Python follower and to a C++ follower, in the same run.

A paced C++ writer (cpp/bench/latency.cpp) appends one Ticker every
``interval_ns`` with a busy-wait; the follower takes ``time.time_ns()`` (or
CLOCK_REALTIME in C++, the same clock) when it has decoded the frame and
subtracts the frame's ``gen_time``. The C++ follower is the floor: what is left
when no Python runs at all. Runs alternate Python/C++ ``repeat`` times and each
percentile is the median over the runs, as a 2-core machine is noisy.

    python -c "from kftools.bench.cpp import run; print(run())"
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path

from . import percentiles, scratch_dir

CPP_DIR = Path(__file__).resolve().parents[2] / "cpp"
WARMUP = 2000


def build(cpp_dir: Path = CPP_DIR) -> Path:
    """Build cpp/ with its Makefile (a no-op when up to date); returns the build folder."""
    if not (cpp_dir / "Makefile").exists():
        raise RuntimeError(f"{cpp_dir}: no C++ sources (the C++ benchmark needs a source checkout)")
    if shutil.which(os.environ.get("CXX", "g++")) is None or shutil.which("make") is None:
        raise RuntimeError("the C++ benchmark needs g++ and make on PATH")
    res = subprocess.run(["make", "-s", "-C", str(cpp_dir)], capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"building {cpp_dir} failed:\n{res.stdout}{res.stderr}")
    return cpp_dir / "build"


def _writer(exe: Path, path: str, n: int, interval_ns: int) -> subprocess.Popen[str]:
    # the writer creates the journal, then waits 300 ms so the follower is spinning before frame 1
    return subprocess.Popen([str(exe), "write", path, str(n), str(interval_ns), "--delay-ms", "300"],
                            stderr=subprocess.PIPE, text=True)


def _stderr(w: subprocess.Popen[str]) -> str:
    """What the writer printed on stderr (``_writer`` pipes it)."""
    if w.stderr is None:
        raise RuntimeError("C++ writer: stderr is not a pipe")
    return w.stderr.read()


def _python_follower(exe: Path, path: str, n: int, interval_ns: int) -> list[int]:
    from ..journal.reader import Reader

    w = _writer(exe, path, n, interval_ns)
    try:
        r = Reader.wait_open(path, poll=0.001, stop=lambda: w.poll() is not None)
        if r is None:
            raise RuntimeError(f"C++ writer failed: {_stderr(w)}")
        lat = [0] * n
        now = time.time_ns
        i = 0
        for f in r.follow(wait="busy", idle_timeout=10):
            lat[i] = now() - f.gen_time  # at decode, as a strategy would see it
            i += 1
            if i == n:
                break
        r.close()
        if w.wait(timeout=60) != 0:
            raise RuntimeError(f"C++ writer failed: {_stderr(w)}")
    finally:
        w.kill()
        w.wait()
    if i < n:
        raise RuntimeError(f"Python follower saw {i} of {n} frames")
    return lat[WARMUP:]


def _cpp_follower(exe: Path, path: str, n: int, interval_ns: int) -> dict:
    follower = subprocess.Popen([str(exe), "follow", path, str(n), "--skip", str(WARMUP)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    w = _writer(exe, path, n, interval_ns)
    try:
        out, err = follower.communicate(timeout=120)
        if w.wait(timeout=60) != 0:
            raise RuntimeError(f"C++ writer failed: {_stderr(w)}")
    finally:
        for p in (follower, w):
            p.kill()
            p.wait()
    res = json.loads(out)
    if res["samples"] != n - WARMUP:
        raise RuntimeError(f"C++ follower saw {res['samples']} of {n - WARMUP} frames: {err}")
    return res


def _fresh(d: str, name: str) -> str:
    for f in os.listdir(d):
        os.unlink(os.path.join(d, f))
    return os.path.join(d, name)


def run(json_out: bool = False, frames: int = 200_000, interval_ns: int = 15_000, repeat: int = 3,
        throughput_frames: int = 2_000_000) -> dict:
    """Latency percentiles (ns) of C++ writer -> Python follower and -> C++ follower, and C++ append rate.

    ``frames`` per run (the first 2000 are warm-up and not counted); ``json_out``
    prints the dict as one JSON object as well.
    """
    exe = build() / "latency"
    load = os.getloadavg()[0]  # before we add two spinning processes
    n = frames + WARMUP
    d = scratch_dir()
    runs: dict[str, list[dict]] = {"cpp_to_python": [], "cpp_to_cpp": []}
    rates = []
    try:
        for _ in range(repeat):
            lat = _python_follower(exe, _fresh(d, "py.dat"), n, interval_ns)
            runs["cpp_to_python"].append(percentiles(lat, "x"))
            c = _cpp_follower(exe, _fresh(d, "cpp.dat"), n, interval_ns)
            runs["cpp_to_cpp"].append({f"x.{k}": v for k, v in c.items()})
            out = subprocess.run([str(exe), "throughput", _fresh(d, "tp.dat"), str(throughput_frames)],
                                 capture_output=True, text=True, check=True).stdout
            rates.append(json.loads(out)["per_s"])
    finally:
        shutil.rmtree(d, ignore_errors=True)
    res: dict = {}
    for name, rs in runs.items():
        for q in ("p50_ns", "p99_ns", "p999_ns"):
            res[f"latency.{name}.{q}"] = int(statistics.median(r[f"x.{q}"] for r in rs))
        res[f"latency.{name}.samples"] = frames
    res["latency.python_over_cpp_p50"] = round(res["latency.cpp_to_python.p50_ns"] / max(1, res["latency.cpp_to_cpp.p50_ns"]), 2)
    res["latency.interval_ns"] = interval_ns
    res["latency.repeat"] = repeat
    res["throughput.cpp_append_per_s"] = int(statistics.median(rates))
    # busy writer + busy follower fill both cores of a small machine: other load shows up as ms outliers
    res["host.loadavg_1m_before"] = round(load, 2)
    res["host.cpus"] = os.cpu_count() or 0
    if json_out:
        print(json.dumps(res))
    return res


if __name__ == "__main__":  # pragma: no cover
    from . import report

    report(run(), json_out=False)
