"""kftools sweep over a recording in object storage (issue 23): a dataset ``kftools export`` wrote to s3:// (moto's
server on 127.0.0.1), imported once per host into a cache, and swept with the same results as the local journal;
``kftools import`` reads that dataset layout."""

from __future__ import annotations

import json
import os

import pyarrow.parquet as pq
import pytest
from kftest import ROOT, moto_s3, run_cli

import kftools
from kftools.bench.backtest import record

STRATEGY = os.path.join(ROOT, "tests", "data", "sweep_maker.py") + ":Maker"
GRID = ["--grid", "spread=0.01,0.02", "--no-chart", "--workers", "2"]
RUN_FILES = ("summary.json", "fills.parquet", "equity.parquet", "orders.parquet")


def frames(path: str) -> list[tuple]:
    with kftools.Reader(path) as r:
        return [(f.msg_type, f.gen_time, f.trigger_time, f.source, f.dest, bytes(f.payload)) for f in r]


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """Two recordings in a folder, exported to s3://bucket/recs (two journals) and s3://bucket/rec (one)."""
    d = tmp_path_factory.mktemp("recs")
    os.mkdir(d / "recs")
    record(str(d / "recs" / "a.dat"), 1_500)
    record(str(d / "recs" / "b.dat"), 400, seed=3)
    with moto_s3() as env:
        for args in (("export", d / "recs", "s3://bucket/recs"), ("export", d / "recs" / "a.dat", "s3://bucket/rec")):
            r = run_cli(*args, env=env)
            assert r.returncode == 0, r.stderr
        yield env, str(d / "recs")


def test_import_rebuilds_each_journal_of_a_dataset_local_or_in_s3(s3, tmp_path):
    env, recs = s3
    r = run_cli("export", recs, tmp_path / "ds")
    assert r.returncode == 0, r.stderr
    for src in (str(tmp_path / "ds"), "s3://bucket/recs"):
        for name in ("a.dat", "b.dat"):
            out = str(tmp_path / f"{len(os.listdir(tmp_path))}.dat")
            r = run_cli("import", src, out, "--journal", name, env=env)
            assert r.returncode == 0, r.stderr
            assert frames(out) == frames(os.path.join(recs, name))
        r = run_cli("import", src, tmp_path / "x.dat", env=env)
        assert r.returncode == 2 and "holds 2 journals (a.dat, b.dat); choose one with --journal" in r.stderr
        r = run_cli("import", src, tmp_path / "x.dat", "--journal", "c.dat", env=env)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no journal 'c.dat'" in r.stderr
        assert not os.path.exists(tmp_path / "x.dat")
    out = str(tmp_path / "one.dat")
    r = run_cli("import", "s3://bucket/rec", out, env=env)  # one journal: no --journal needed
    assert r.returncode == 0 and frames(out) == frames(os.path.join(recs, "a.dat")), r.stderr


def test_a_sweep_over_an_s3_dataset_equals_the_sweep_over_the_local_journal(s3, tmp_path):
    env, recs = s3
    cache = tmp_path / "cache"
    env = dict(env, KFTOOLS_CACHE=str(cache))
    r = run_cli("export", os.path.join(recs, "a.dat"), "s3://bucket/sweep", env=env)  # this test's: it grows below
    assert r.returncode == 0, r.stderr
    r = run_cli("sweep", "s3://bucket/sweep", "--strategy", STRATEGY, *GRID, "-o", tmp_path / "remote", env=env)
    assert r.returncode == 0, r.stderr
    r = run_cli("sweep", os.path.join(recs, "a.dat"), "--strategy", STRATEGY, *GRID, "-o", tmp_path / "local")
    assert r.returncode == 0, r.stderr
    remote, local = (pq.read_table(tmp_path / x / "runs.parquet") for x in ("remote", "local"))
    assert remote.column("recording").to_pylist() == ["s3://bucket/sweep"] * 2
    ids = ["run", "recording", "folder"]
    assert remote.drop(ids).equals(local.drop(ids)), (remote.to_pylist(), local.to_pylist())
    for a, b in zip(remote.column("folder").to_pylist(), local.column("folder").to_pylist(), strict=True):
        for name in RUN_FILES:
            with open(tmp_path / "remote" / a / name, "rb") as fa, open(tmp_path / "local" / b / name, "rb") as fb:
                assert fa.read() == fb.read(), name
    # two workers needed it at once: one copy, imported once, nothing half-made left
    copies = [n for n in os.listdir(cache) if not n.endswith(".lock")]
    assert len(copies) == 1 and not copies[0].startswith("."), copies
    assert frames(os.path.join(cache, copies[0], "a.dat")) == frames(os.path.join(recs, "a.dat"))
    before = os.stat(cache / copies[0]).st_ino
    r = run_cli("sweep", "s3://bucket/sweep", "--strategy", STRATEGY, "--grid", "spread=0.05", "--no-chart", "-o",
                tmp_path / "again", env=env)
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(cache)) == sorted([*copies, f"{copies[0]}.lock"])
    assert os.stat(cache / copies[0]).st_ino == before  # reused, not imported again
    # the dataset grew: resuming the first sweep's folder is a different sweep, not a mix of two datasets
    record(str(tmp_path / "more.dat"), 50, seed=5)
    r = run_cli("export", tmp_path / "more.dat", "s3://bucket/sweep", env=env)
    assert r.returncode == 0, r.stderr
    r = run_cli("sweep", "s3://bucket/sweep", "--strategy", STRATEGY, *GRID, "-o", tmp_path / "remote", env=env)
    assert r.returncode == 2 and "holds a different sweep (datasets:" in r.stderr, r.stderr


def test_a_dataset_of_two_journals_is_one_recording_their_merged_timeline(s3, tmp_path):
    env, recs = s3
    env = dict(env, KFTOOLS_CACHE=str(tmp_path / "cache"))
    r = run_cli("sweep", "s3://bucket/recs", "--strategy", STRATEGY, "--grid", "spread=0.01", "--no-chart", "-o",
                tmp_path / "out", env=env)
    assert r.returncode == 0, r.stderr
    row = pq.read_table(tmp_path / "out" / "runs.parquet").to_pylist()[0]
    r = run_cli("backtest", os.path.join(recs, "a.dat"), os.path.join(recs, "b.dat"), "--strategy", STRATEGY,
                "--param", "spread=0.01", "--no-chart", "--results", tmp_path / "bt", "--json")
    assert r.returncode == 0, r.stderr
    want = json.loads(r.stdout)
    assert (row["frames"], row["net_pnl"], row["fills"]) == (want["frames"], want["net_pnl"], want["fills"]) == (
        1_900, want["net_pnl"], want["fills"])


def test_two_workers_that_need_a_dataset_at_once_import_it_once(s3, tmp_path, monkeypatch):
    """Two processes ask for the same dataset while the test holds its key's lock: both wait on it (seen in
    /proc/locks); let go, one imports and the other takes its copy (without the lock the second one's rename
    onto the first's copy fails)."""
    import fcntl
    import subprocess
    import sys

    from kftest import wait_for

    from kftools.sweep.datasets import dataset_key

    env, recs = s3
    for k, v in {**env, "KFTOOLS_CACHE": str(tmp_path / "cache")}.items():
        monkeypatch.setenv(k, v)
    key = dataset_key("s3://bucket/rec")
    os.makedirs(tmp_path / "cache")
    fd = os.open(tmp_path / "cache" / f"{key}.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    code = f"from kftools.sweep.datasets import local_recordings; print(local_recordings('s3://bucket/rec', {key!r}))"
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    inode = os.fstat(fd).st_ino

    def waiting() -> int:
        with open("/proc/locks") as fh:
            return sum(1 for line in fh if "->" in line and line.split()[-3].endswith(f":{inode}"))

    try:
        wait_for(lambda: waiting() == 2 or any(p.poll() is not None for p in procs), "both processes at the lock")
        assert waiting() == 2 and not os.path.exists(tmp_path / "cache" / key)
    finally:
        os.close(fd)
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    want = [str(tmp_path / "cache" / key / "a.dat")]
    assert [json.loads(o.replace("'", '"')) for o, _ in outs] == [want, want]
    assert sorted(os.listdir(tmp_path / "cache")) == [key, f"{key}.lock"]
    assert frames(want[0]) == frames(os.path.join(recs, "a.dat"))


def test_a_sweep_over_what_is_no_dataset_is_one_line_and_writes_nothing(s3, tmp_path):
    env, _ = s3
    r = run_cli("sweep", "s3://bucket/nothing", "--strategy", STRATEGY, *GRID, "-o", tmp_path / "out", env=env)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "s3://bucket/nothing: no kftools dataset here" in r.stderr and "Traceback" not in r.stderr
    assert not os.path.exists(tmp_path / "out")
    assert json.dumps(env["AWS_SECRET_ACCESS_KEY"]).strip('"') not in r.stderr
