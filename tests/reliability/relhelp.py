"""Helpers shared by the reliability modules."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys

from kftest import CLEAN_SAMPLES, KFTOOLS, ROOT, SAMPLES, SCHEMA, copy_journal, run_cli  # noqa: F401

import kftools
from kftools.journal.format import page_path

#: exit codes the CLI may end with (0 ok, 1 failure, 2 bad input, 3 damage, 4 locked, 130 interrupted)
EXIT_CODES = {0, 1, 2, 3, 4, 130}


def torture() -> bool:
    return os.environ.get("KFTOOLS_TORTURE") == "1"


def count(fast: int, slow: int) -> int:
    """Cases for a scenario: ``fast`` in `make test`, ``slow`` in `make torture` (KFTOOLS_TORTURE_SCALE scales it)."""
    return int(slow * float(os.environ.get("KFTOOLS_TORTURE_SCALE", "1"))) if fast is None else fast


def pages_of(path) -> list[str]:
    """Existing page files of a journal, in order."""
    out, i = [], 0
    while os.path.exists(page_path(path, i)):
        out.append(page_path(path, i))
        i += 1
    return out


def snapshot(path) -> dict:
    """Bytes and modification time (ns) of every file of a journal."""
    d = os.path.dirname(os.fspath(path)) or "."
    base = os.path.basename(os.fspath(path))
    snap = {}
    for name in sorted(os.listdir(d)):
        if name == base or name.startswith(base + "."):
            p = os.path.join(d, name)
            st = os.stat(p)
            with open(p, "rb") as fh:
                snap[name] = (fh.read(), st.st_mtime_ns, st.st_size)
    return snap


def raw_frames(path, registry=None) -> tuple[list[bytes], object]:
    """Every valid frame's raw bytes, and the damage."""
    with kftools.Reader(path, registry=registry) as r:
        frames = [bytes(f.raw) for f in r]
        return frames, r.damage


def limited(as_bytes: int | None = None, fsize: int | None = None):
    """A preexec_fn setting RLIMIT_AS / RLIMIT_FSIZE (SIGXFSZ ignored, so writes fail with EFBIG)."""

    def pre():
        if as_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (as_bytes, as_bytes))
        if fsize is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return pre


def cli(*args, timeout: float = 120, preexec=None, env=None) -> subprocess.CompletedProcess:
    """``kftools ARGS`` in a real subprocess (optionally under resource limits)."""
    e = dict(os.environ)
    e.pop("KFTOOLS_SCHEMA", None)
    e.update(env or {})
    return subprocess.run([*KFTOOLS, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env=e, preexec_fn=preexec)


def assert_clean_exit(res, what="") -> None:
    """A defined exit code, no traceback, and a one-line reason on failure."""
    err = res.stderr
    assert "Traceback" not in err, f"{what}: traceback\n{err}"
    assert res.returncode in EXIT_CODES, f"{what}: exit {res.returncode}\n{err}"
    if res.returncode not in (0, 130):
        assert "kftools: error:" in err or "kftools: warning:" in err, f"{what}: exit {res.returncode} without a reason"


@contextlib.contextmanager
def memory_limit(extra: int = 1 << 30):
    """Cap this process's address space at its current size plus ``extra``: an unbounded allocation fails."""
    with open("/proc/self/status") as fh:
        vm = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))
    old = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (vm + extra, old[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, old)


@contextlib.contextmanager
def deadline(seconds: float, what: str = ""):
    """Fail (instead of hanging) if the block runs longer than ``seconds``."""

    def fire(signum, frame):
        raise TimeoutError(f"hang: {what} ran longer than {seconds}s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def python() -> str:
    return sys.executable
