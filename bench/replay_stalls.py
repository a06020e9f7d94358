"""What happens when a paced replay stalls: kernel trace events around its latest frames.

Replays the uniform recording of `kftools bench replay` at speed 1 a number of
times with the scheduler, interrupt and user page-fault tracepoints on (trace
clock: CLOCK_MONOTONIC), and for each replay that had frames more than 1 ms
late prints every event between the worst one's deadline and its emission
(found by its gen_time in the output, the wall clock when it went out).

Needs root and tracefs (mounted at /sys/kernel/tracing if it is not):

    sudo .venv/bin/python bench/replay_stalls.py [REPLAYS] [LATE_MS] [bursty]

LATE_MS (default 1) is how late a frame must be for its replay's events to be printed;
`bursty` replays the bench's bursty recording instead of the uniform one.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

from kftools.bench.replay import _record
from kftools.journal import Reader
from kftools.replay import replay

TRACEFS = "/sys/kernel/tracing"
EVENTS = "sched:sched_switch sched:sched_wakeup irq:* irq_vectors:* exceptions:page_fault_user"
FRAMES, RATE = 200_000, 100_000.0


def tracefs(name: str, value: str) -> None:
    with open(os.path.join(TRACEFS, name), "w") as fh:
        fh.write(value)


def setting(name: str) -> str:
    with open(os.path.join(TRACEFS, name)) as fh:
        text = fh.read().strip()
    chosen = re.search(r"\[(\S+)\]", text)  # trace_clock lists every clock, the one in use in brackets
    return chosen.group(1) if chosen else text


def main(replays: int, late_ns: int, bursty: bool) -> None:
    mounted = not os.path.exists(os.path.join(TRACEFS, "trace"))
    if mounted:
        subprocess.run(["mount", "-t", "tracefs", "nodev", TRACEFS], check=True)
    before = {name: setting(name) for name in ("tracing_on", "trace_clock", "buffer_size_kb")}
    folder = tempfile.mkdtemp(prefix="kftools-stalls-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    src, out = os.path.join(folder, "rec.dat"), os.path.join(folder, "out.dat")
    try:
        _record(src, FRAMES, RATE, bursty=bursty)
        tracefs("tracing_on", "0")
        tracefs("trace_clock", "mono")
        tracefs("buffer_size_kb", "65536")
        tracefs("set_event", EVENTS)
        for k in range(replays):
            tracefs("trace", "")
            tracefs("tracing_on", "1")
            wall_minus_mono = time.clock_gettime_ns(time.CLOCK_REALTIME) - time.clock_gettime_ns(time.CLOCK_MONOTONIC)
            st = replay(src, out, speed=1.0, force=True, page_size=FRAMES * 20 * 100)
            tracefs("tracing_on", "0")
            late = np.flatnonzero(st.lateness > late_ns)
            print(f"replay {k}: {len(late)} frames later than {late_ns / 1e6:g} ms, worst {st.lateness.max() / 1e6:.2f} ms", flush=True)
            if not len(late):
                continue
            with Reader(out) as r:
                sent = np.concatenate([b.headers["gen_time"] for b in r.batches()])
            worst = int(late[np.argmax(st.lateness[late])])
            emitted = (int(sent[worst]) - wall_minus_mono) / 1e9
            due = emitted - st.lateness[worst] / 1e9
            print(f"  frame {worst}: due {due:.6f}, emitted {emitted:.6f} (CLOCK_MONOTONIC, s); events between:")
            with open(os.path.join(TRACEFS, "trace")) as fh:
                for line in fh:
                    m = re.search(r"\s(\d+\.\d+): ", line)
                    if m and due - 0.0005 <= float(m.group(1)) <= emitted + 0.0002:
                        print("   ", line.strip()[:200])
    finally:
        # leave tracing as it was found
        tracefs("set_event", "")
        tracefs("trace", "")
        for name, value in before.items():
            tracefs(name, value)
        if mounted:
            subprocess.run(["umount", TRACEFS], check=False)
        for name in ("rec.dat", "out.dat"):  # what this made, and nothing else
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(folder, name))
        os.rmdir(folder)


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 10,
        int(float(sys.argv[2]) * 1e6) if len(sys.argv) > 2 else 1_000_000,
        sys.argv[3:4] == ["bursty"],
    )
