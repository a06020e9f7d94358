"""A timeline of a sweep for finding where its time goes: ``KFTOOLS_SWEEP_TRACE=FILE`` appends one JSON line
per event (monotonic time, pid, the process's CPU seconds, minor page faults and modules imported so far, the
event and its details) from the sweep's process, the local pool's fork server and every worker. Off when the
variable is unset. (The fork server keeps the value it started with: one file per process that sweeps.)"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

_PATH = os.environ.get("KFTOOLS_SWEEP_TRACE")


def mark(event: str, **details: object) -> None:
    """Record ``event`` on the timeline (nothing when tracing is off)."""
    if not _PATH:
        return
    t = os.times()
    flt = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    line = json.dumps({"t": time.monotonic(), "pid": os.getpid(), "cpu": t.user + t.system, "user": t.user,
                       "sys": t.system, "minflt": flt, "modules": len(sys.modules), "event": event, **details})
    fd = os.open(_PATH, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)
