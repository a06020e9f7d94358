"""Read-only: every read command leaves a journal's bytes and modification times unchanged,
on every sample (clean, multi-page, crashed, damaged, engine, user types) and on a live journal."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest
from relhelp import KFTOOLS, ROOT, SAMPLES, SCHEMA, assert_clean_exit, cli, copy_journal, snapshot

import kftools


def read_commands(path, out_dir):
    schema = ["--schema", SCHEMA] if "user_types" in str(path) else []
    return [
        ["info", path, *schema], ["info", "--json", path, *schema], ["cat", path, *schema],
        ["cat", "-n", "5", "--format", "jsonl", path, *schema], ["cat", "--format", "csv", path, *schema],
        ["verify", path, *schema], ["verify", "--json", path, *schema],
        ["recover", path, "-o", out_dir / "r.dat", *schema],
        ["export", "-q", path, out_dir / "o.parquet", *schema],
        ["replay", "--max", path, "-o", out_dir / "p.dat", *schema],
    ]


def run_tail(path):
    p = subprocess.Popen([*KFTOOLS, "tail", "--plain", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, cwd=ROOT)
    # the event: its first line is out, so it is following (its Ctrl-C handler is in place); every sample has frames
    assert p.stdout.readline()
    if p.poll() is None:
        p.send_signal(signal.SIGINT)
    _out, err = p.communicate(timeout=60)
    assert "Traceback" not in err


FAST = ("crashed.dat", "damaged.dat")


@pytest.mark.parametrize("src", [
    pytest.param(p, marks=() if os.path.basename(p) in FAST else pytest.mark.slow) for p in SAMPLES
], ids=os.path.basename)
def test_read_commands_change_nothing(tmp_path, src):
    j = tmp_path / "j"
    j.mkdir()
    path = copy_journal(src, str(j))
    old = os.stat(path).st_mtime_ns - 10**9  # an mtime in the past, so any write would show
    for name in os.listdir(j):
        os.utime(j / name, ns=(old, old))
    before = snapshot(path)
    for args in read_commands(path, tmp_path):
        res = cli(*args)
        assert_clean_exit(res, " ".join(map(str, args)))
        assert snapshot(path) == before, f"kftools {' '.join(map(str, args))} changed the journal"
    run_tail(path)
    assert snapshot(path) == before, "tail --plain changed the journal"
    assert sorted(os.listdir(j)) == sorted(before)  # and created nothing beside it


def test_reading_a_live_journal_changes_nothing_the_writer_did_not(tmp_path):
    path = tmp_path / "live.dat"
    with kftools.Writer(path, page_size=4096) as w:
        for i in range(300):
            w.write_ticker("SEQ", float(i))
        before = snapshot(path)
        for args in read_commands(path, tmp_path):
            res = cli(*args)
            assert_clean_exit(res, " ".join(map(str, args)))
        assert snapshot(path) == before
