"""Kill -9 during `kftools archive` and `kftools unarchive` at random instants. After each kill every
command reads exactly the frames written (the page, its archive, or both are there, never neither),
`verify` is clean, a later run finishes the job, and `unarchive` restores every page byte-identical.
"""

from __future__ import annotations

import collections
import glob
import hashlib
import os
import random
import signal
import subprocess
import time

import pytest
from relhelp import KFTOOLS, ROOT

import kftools

SCALE = float(os.environ.get("KFTOOLS_TORTURE_SCALE", "1"))


def page_files(path):
    return sorted(p for p in glob.glob(glob.escape(path) + "*") if p == path or p[len(path) + 1 :].isdigit())


def digests(path):
    out = {}
    for p in page_files(path):
        with open(p, "rb") as fh:
            out[p] = hashlib.sha256(fh.read()).hexdigest()
    return out


def cli(*args):
    return subprocess.run([*KFTOOLS, *map(str, args)], capture_output=True, text=True, cwd=ROOT, timeout=300)


def landed(path) -> str:
    """Where the kill left the run, from what is on disk."""
    parts = glob.glob(glob.escape(path) + "*.part")
    both = [p for p in page_files(path) if os.path.exists(p + ".zst")]
    if parts:
        return "temporary being written"
    if both:
        return "page and archive both present"
    return "between pages" if glob.glob(glob.escape(path) + "*.zst") else "before the first archive"


def run_case(tmp, rng, stats, command):
    path = os.path.join(tmp, "j.dat")
    expect = cli("cat", path).stdout
    args = [command, path] + (["--level", str(rng.choice([1, 3, 19]))] if command == "archive" else [])
    proc = subprocess.Popen([*KFTOOLS, *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # start the clock when the run visibly works on a page (its interpreter start-up takes seconds on a loaded
    # machine), then kill at a random instant: fault injection, not synchronisation
    zst = len(glob.glob(glob.escape(path) + "*.zst"))
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if glob.glob(glob.escape(path) + "*.part") or len(glob.glob(glob.escape(path) + "*.zst")) != zst:
            break
    time.sleep(rng.uniform(0, 0.6))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stats[f"{command}: killed with {landed(path)}" if proc.returncode == -signal.SIGKILL
          else f"{command}: finished before the kill"] += 1
    res = cli("cat", path)
    assert res.returncode == 0 and res.stdout == expect, res.stderr
    res = cli("verify", path)
    assert res.returncode == 0, res.stdout + res.stderr
    with kftools.Reader(path) as r:
        stats["frames checked"] += sum(len(b) for b in r.batches())


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_archive_kill_9_at_random_instants(tmp_path):
    rng = random.Random(14)
    stats: collections.Counter = collections.Counter()
    for j in range(int(6 * SCALE)):
        tmp = str(tmp_path / f"j{j}")
        os.makedirs(tmp)
        path = os.path.join(tmp, "j.dat")
        with kftools.Writer(path, page_size=rng.choice([1 << 18, 1 << 20])) as w:
            for i in range(rng.randrange(20_000, 60_000)):
                w.write_ticker("SEQ", float(i), padding=rng.randrange(0, 64))
        original = digests(path)
        for _ in range(int(10 * SCALE)):
            run_case(tmp, rng, stats, rng.choice(["archive", "archive", "unarchive"]))
        assert cli("archive", path).returncode == 0
        assert not glob.glob(os.path.join(tmp, "*.part"))
        assert cli("unarchive", path).returncode == 0
        assert digests(path) == original  # byte-identical, every page
        stats["journals restored byte-identical"] += 1
    print(dict(stats))
