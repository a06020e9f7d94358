"""Two writers: a second writer, Python or C++, is refused while the first lives (exit 4, one line
naming the holder's pid) and allowed once it is gone, whether it closed or was killed -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from relhelp import assert_clean_exit, cli
from test_cpp import cpp_bin  # noqa: F401  (the fixture that builds cpp/ once)

import kftools

HOLDER = r"""
import sys, kftools
w = kftools.Writer(sys.argv[1], page_size=4096, append=True)
for i in range(100):
    w.write_ticker("SEQ", float(i))
print("ready", flush=True)
sys.stdin.read()
w.close()
"""


def start_holder(path):
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)
    assert p.stdout.readline().strip() == "ready"
    return p


@pytest.mark.parametrize("ending", ["close", "kill -9"])
def test_second_python_writer_refused_then_allowed(tmp_path, ending):
    path = tmp_path / "j.dat"
    holder = start_holder(path)
    try:
        with pytest.raises(kftools.JournalLocked, match=rf"pid {holder.pid}"):
            kftools.Writer(path)
        res = cli("simulate", path, "--frames", 10, "--rate", 0, "--append")
        assert_clean_exit(res, "simulate")
        assert res.returncode == 4 and f"locked by a writer (pid {holder.pid})" in res.stderr
        assert kftools.Reader(path).count() == 100  # the refused writers wrote nothing
    finally:
        if ending == "close":
            holder.stdin.close()
        else:
            holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    with kftools.Writer(path, append=True) as w:
        w.write_ticker("SEQ", 100.0)
    frames = [int(f.last_price) for f in kftools.Reader(path)]
    assert frames == list(range(101))


def test_second_cpp_writer_refused_then_allowed(tmp_path, cpp_bin):  # noqa: F811
    path = tmp_path / "j.dat"
    holder = start_holder(path)
    try:
        res = subprocess.run([str(cpp_bin / "kfwrite"), str(path), "--frames", "10"], capture_output=True, text=True,
                             timeout=30)
        assert res.returncode == 4 and f"pid {holder.pid}" in res.stderr, res.stderr
        assert kftools.Reader(path).count() == 100
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    res = subprocess.run([str(cpp_bin / "kfwrite"), str(path), "--frames", "10", "--start", "100"],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    assert kftools.Reader(path).count() == 110 and kftools.verify(path).clean


def test_many_writers_racing_for_one_journal(tmp_path):
    """Eight writers started at once: exactly one holds the journal at a time; none tears a frame."""
    path = tmp_path / "race.dat"
    code = (
        "import sys, kftools\n"
        "try:\n"
        "    w = kftools.Writer(sys.argv[1], page_size=4096, append=True)\n"
        "except kftools.JournalLocked:\n"
        "    sys.exit(4)\n"
        "for i in range(2000):\n"
        "    w.write_ticker('W' + sys.argv[2], float(i))\n"
        "w.close()\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path), str(k)]) for k in range(8)]
    codes = [p.wait(timeout=120) for p in procs]
    assert set(codes) <= {0, 4} and 0 in codes
    rep = kftools.verify(path)
    assert rep.clean and rep.frames == 2000 * codes.count(0)
    by_writer: dict[str, list[int]] = {}
    for f in kftools.Reader(path):
        by_writer.setdefault(f.symbol, []).append(int(f.last_price))
    assert all(v == list(range(2000)) for v in by_writer.values())  # whole runs, never interleaved
    assert os.path.exists(path)
