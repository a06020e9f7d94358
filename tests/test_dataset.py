"""Datasets beyond one machine (issue 13 §2): Spark, Polars and DuckDB read the dataset `export` writes;
incremental export through the manifest, interrupted by kill -9; export to S3 (moto's server on 127.0.0.1);
several journals to one Parquet file with a `journal` column."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kftest import KFTOOLS, ROOT, run_cli

from kftools import Reader, Writer
from kftools.export import MANIFEST, export, import_parquet
from kftools.journal.registry import DEFAULT_REGISTRY
from kftools.journal.resolve import journal_paths

T0 = 1_764_201_600 * 10**9 + 123_456_789  # 2025-11-27T00:00:00.123456789Z: ns a microsecond column cannot hold
SYMS = ["AAPL", "MSFT", "NVDA"]


def make_runtime(folder, journals=("md-a.dat", "md-b.dat"), frames=300, start=0, seed=1):
    """Journals of tickers (a trade every 5th frame), 5 minutes apart, crossing midnight; appends if they exist."""
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(seed + start)
    for k, name in enumerate(journals):
        with Writer(str(folder / name), page_size=16384, append=True) as w:
            for i in range(start, start + frames):
                s = SYMS[int(rng.integers(3))]
                t = T0 + k * 7 + i * 10**9 * 300
                if i % 5 == 4:
                    w.write_trade(s, i, float(rng.random() * 100), float(rng.integers(1, 9)), gen_time=t)
                else:
                    w.write_ticker(s, float(rng.random() * 100), volume=float(rng.integers(1, 9)), gen_time=t)


def truth(folder):
    """Frames, and per symbol (ticker count, volume sum), read from the journals themselves."""
    want: dict = {}
    n = 0
    for path in journal_paths([str(folder)]):
        with Reader(path) as rd:
            for f in rd:
                n += 1
                if f.type_name == "Ticker":
                    c, v = want.get(f.symbol, (0, 0.0))
                    want[f.symbol] = (c + 1, v + f.volume)
    return n, want


def parts(out) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*.parquet"))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    d = tmp_path_factory.mktemp("ds")
    make_runtime(d / "runtime")
    r = run_cli("export", d / "runtime", d / "out")
    assert r.returncode == 0, r.stderr
    return d


# -- what each engine sees -------------------------------------------------------------------


def test_dataset_has_microsecond_timestamps_beside_exact_nanoseconds(dataset):
    t = pq.read_table(dataset / "out")
    assert str(t.schema.field("gen_time").type) == "timestamp[us, tz=UTC]"
    assert str(t.schema.field("gen_time_ns").type) == "int64"
    ns = t.column("gen_time_ns").to_numpy()
    us = t.column("gen_time").cast("int64").to_numpy()
    assert (us == ns // 1000).all() and (ns % 1000 != 0).all()  # the us column is the exact one, rounded down
    assert t.column("trigger_time_ns").null_count == t.num_rows  # unset stays unset


def test_duckdb_reads_the_dataset(dataset):
    import duckdb

    n, want = truth(dataset / "runtime")
    q = f"read_parquet('{dataset / 'out'}/**/*.parquet', hive_partitioning=true)"
    assert duckdb.sql(f"SELECT count(*) FROM {q}").fetchall()[0][0] == n
    types = dict(duckdb.sql(f"DESCRIBE SELECT gen_time, gen_time_ns, msg_type, date FROM {q}").fetchall()[i][:2]
                 for i in range(4))
    assert types == {"gen_time": "TIMESTAMP WITH TIME ZONE", "gen_time_ns": "BIGINT", "msg_type": "UINTEGER",
                     "date": "DATE"}
    got = duckdb.sql(f"SELECT symbol, count(*), sum(volume) FROM {q} WHERE type = 'Ticker' GROUP BY symbol "
                     "ORDER BY symbol").fetchall()
    assert [(s, c) for s, c, _ in got] == [(s, want[s][0]) for s in sorted(want)]
    assert all(v == pytest.approx(want[s][1]) for s, _, v in got)
    assert duckdb.sql(f"SELECT min(gen_time_ns) FROM {q}").fetchall()[0][0] == T0  # the exact time is there


def test_polars_reads_the_dataset(dataset):
    import polars as pl

    n, want = truth(dataset / "runtime")
    df = pl.read_parquet(str(dataset / "out" / "**" / "*.parquet"), hive_partitioning=True)
    assert df.height == n
    assert df.schema["gen_time"] == pl.Datetime("us", "UTC") and df.schema["gen_time_ns"] == pl.Int64
    assert df.schema["msg_type"] == pl.UInt32 and df.schema["date"] == pl.Date
    agg = (df.filter(pl.col("type") == "Ticker").group_by("symbol")
           .agg(pl.len().alias("n"), pl.col("volume").sum().alias("v")).sort("symbol"))
    assert [(r["symbol"], r["n"]) for r in agg.iter_rows(named=True)] == [(s, want[s][0]) for s in sorted(want)]
    assert all(r["v"] == pytest.approx(want[r["symbol"]][1]) for r in agg.iter_rows(named=True))


def _java_missing() -> str | None:
    java = shutil.which("java")
    if java is None:
        return "no java on PATH: pyspark needs a JVM (Java 17)"
    r = subprocess.run([java, "-version"], capture_output=True, text=True)
    return None if r.returncode == 0 else f"java -version failed: {r.stderr.strip()[:200]}"


@pytest.fixture(scope="module")
def spark():
    """One local Spark session for the module (a JVM takes seconds to start), bound to the loopback."""
    why = _java_missing()
    if why:
        pytest.skip(why)
    from pyspark.sql import SparkSession

    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    session = (SparkSession.builder.master("local[1]").appName("kftools-test")
               .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
               .config("spark.ui.enabled", "false").config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.shuffle.partitions", "1").getOrCreate())
    yield session
    session.stop()


@pytest.mark.timeout(600)  # a JVM starting on a loaded 2-core machine
def test_spark_reads_the_dataset(dataset, spark):
    from pyspark.sql import functions as F

    n, want = truth(dataset / "runtime")
    df = spark.read.parquet(str(dataset / "out"))
    assert df.count() == n
    types = dict(df.dtypes)
    assert types["gen_time"] == "timestamp" and types["gen_time_ns"] == "bigint"
    assert types["msg_type"] == "bigint" and types["source"] == "bigint"  # Spark has no unsigned: uint32 widens
    assert types["trade_id"] == "decimal(20,0)"  # and uint64 becomes an exact decimal
    assert types["date"] == "date" and types["type"] == "string" and types["journal"] == "string"
    rows = (df.where(F.col("type") == "Ticker").groupBy("symbol")
            .agg(F.count("*").alias("n"), F.sum("volume").alias("v")).orderBy("symbol").collect())
    assert [(r["symbol"], r["n"]) for r in rows] == [(s, want[s][0]) for s in sorted(want)]
    assert all(r["v"] == pytest.approx(want[r["symbol"]][1]) for r in rows)
    first = df.orderBy("gen_time_ns").select("gen_time", "gen_time_ns").first()
    assert first["gen_time_ns"] == T0 and first["gen_time"].microsecond == 123_456


# -- import stays lossless ---------------------------------------------------------------------


def test_import_of_a_dataset_file_is_lossless(dataset, tmp_path):
    part = sorted((dataset / "out").glob("date=*/type=Ticker/*.parquet"))[0]
    r = run_cli("import", part, tmp_path / "back.dat")
    assert r.returncode == 0, r.stderr
    rows = pq.read_table(part)
    with Reader(str(tmp_path / "back.dat")) as back:
        assert [f.gen_time for f in back] == rows.column("gen_time_ns").to_pylist()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(times=st.lists(st.tuples(st.integers(-(2**62), 2**62), st.integers(0, 2**62)), min_size=1, max_size=30),
       layout=st.sampled_from(["us", "ns"]))
def test_hypothesis_microsecond_export_round_trips(tmp_path_factory, times, layout):
    """Any gen_time / trigger_time (before the epoch too) survives export with either --timestamps and import."""
    d = tmp_path_factory.mktemp("rt")
    j = str(d / "j.dat")
    with Writer(j, page_size=8192) as w:
        for i, (gen, trig) in enumerate(times):
            w.write_ticker("S", float(i), gen_time=gen, trigger_time=trig)
    export(j, str(d / "j.parquet"), registry=DEFAULT_REGISTRY, timestamps=layout)
    import_parquet(str(d / "j.parquet"), str(d / "back.dat"))
    with Reader(j) as a, Reader(str(d / "back.dat")) as b:
        assert [bytes(f.raw) for f in a] == [bytes(f.raw) for f in b]


# -- incremental -------------------------------------------------------------------------------


def test_incremental_export_adds_only_what_is_new(tmp_path):
    rt = tmp_path / "runtime"
    make_runtime(rt, journals=("md-a.dat",), frames=100)
    out = tmp_path / "out"
    assert run_cli("export", rt, out).returncode == 0
    first = parts(out)
    # the journal grows (onto new pages), and a new journal appears
    make_runtime(rt, journals=("md-a.dat",), frames=150, start=100)
    make_runtime(rt, journals=("md-c.dat",), frames=30, seed=2)
    r = run_cli("export", rt, out)
    assert r.returncode == 0, r.stderr
    assert "wrote 180 rows" in r.stderr  # 150 new frames of md-a, 30 of md-c
    assert set(first) < set(parts(out))  # nothing rewritten, files added
    t = pq.read_table(out)
    keys = set(zip(t.column("journal").to_pylist(), t.column("gen_time_ns").to_pylist(), strict=True))
    assert t.num_rows == 280 and len(keys) == 280
    n, want = truth(rt)
    assert n == 280
    manifest = json.loads((out / MANIFEST).read_text())
    assert {k: v["frames"] for k, v in manifest["journals"].items()} == {"md-a.dat": 250, "md-c.dat": 30}
    assert sorted(manifest["files"]) == parts(out)
    # nothing new: nothing added
    before = parts(out)
    r = run_cli("export", rt, out)
    assert r.returncode == 0 and "wrote 0 rows" in r.stderr
    assert parts(out) == before


def test_incremental_export_refuses_what_would_mix(tmp_path):
    rt = tmp_path / "runtime"
    make_runtime(rt, journals=("md-a.dat",), frames=20)
    out = tmp_path / "out"
    assert run_cli("export", rt, out).returncode == 0
    # another selection would make a dataset that is neither
    r = run_cli("export", rt, out, "-t", "Ticker")
    assert r.returncode == 2 and "another selection" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    # another journal under the same name
    for p in rt.iterdir():
        p.unlink()
    make_runtime(rt, journals=("md-a.dat",), frames=20, seed=9, start=1000)
    r = run_cli("export", rt, out)
    assert r.returncode == 2 and "first frame differs" in r.stderr
    # a manifest that is not ours
    (out / MANIFEST).write_text("{not json")
    r = run_cli("export", rt, out)
    assert r.returncode != 0 and r.stderr.startswith("kftools: error:") and "Traceback" not in r.stderr
    # --force replaces the dataset
    r = run_cli("export", rt, out, "--force")
    assert r.returncode == 0, r.stderr
    assert pq.read_table(out).num_rows == 20


def _scratch(parent) -> list[str]:
    return [n for n in os.listdir(parent) if n.startswith(".out.kftmp-")]


def test_export_killed_mid_run_leaves_the_dataset_consistent(tmp_path):
    rt = tmp_path / "runtime"
    make_runtime(rt, journals=("md-a.dat",), frames=100)
    out = tmp_path / "out"
    assert run_cli("export", rt, out).returncode == 0
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    manifest = (out / MANIFEST).read_bytes()
    make_runtime(rt, journals=("md-a.dat",), frames=20_000, start=100)
    p = subprocess.Popen([*KFTOOLS, "export", "-q", "--row-group-size", "10", str(rt), str(out)], cwd=ROOT,
                         stderr=subprocess.PIPE)
    # the event: the run has written part of a Parquet file in its private temporary folder
    deadline = time.monotonic() + 120
    while not any(f.stat().st_size > 0 for s in _scratch(tmp_path) for f in (tmp_path / s).rglob("*.parquet")):
        assert p.poll() is None, p.stderr.read() if p.stderr else ""
        assert time.monotonic() < deadline, "the export never started writing"
        time.sleep(0.01)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert p.returncode == -signal.SIGKILL
    # nothing of the killed run is visible; readers see the dataset as it was
    assert sorted(str(q.relative_to(out)) for q in out.rglob("*")) == before
    assert (out / MANIFEST).read_bytes() == manifest
    assert pq.read_table(out).num_rows == 100
    r = run_cli("export", rt, out)  # the next run completes it, once; the dead run's temporary is gone
    assert r.returncode == 0, r.stderr
    t = pq.read_table(out)
    assert t.num_rows == 20_100 and len(set(t.column("gen_time_ns").to_pylist())) == 20_100
    assert _scratch(tmp_path) == []


def test_files_of_a_run_interrupted_while_moving_in_are_removed(tmp_path):
    """Killed between moving its files in and writing the manifest, a run leaves files no manifest lists:
    the next run removes them before exporting those frames again, so none is counted twice."""
    rt = tmp_path / "runtime"
    make_runtime(rt, journals=("md-a.dat",), frames=50)
    out = tmp_path / "out"
    assert run_cli("export", rt, out).returncode == 0
    make_runtime(rt, journals=("md-a.dat",), frames=50, start=50)
    stray = out / "date=2025-11-27" / "type=Ticker" / "part-20990101T000000Z-1.parquet"
    shutil.copyfile(next((out / "date=2025-11-27" / "type=Ticker").glob("*.parquet")), stray)
    r = run_cli("export", rt, out)
    assert r.returncode == 0, r.stderr
    assert not stray.exists()
    t = pq.read_table(out)
    assert t.num_rows == 100 and len(set(t.column("gen_time_ns").to_pylist())) == 100


# -- several journals, one file ------------------------------------------------------------------


def test_several_journals_to_one_file_have_a_journal_column_in_time_order(tmp_path):
    rt = tmp_path / "runtime"
    make_runtime(rt, frames=60)
    out = tmp_path / "all.parquet"
    r = run_cli("export", rt / "md-b.dat", rt / "md-a.dat", out)
    assert r.returncode == 0, r.stderr
    t = pq.read_table(out)
    assert t.num_rows == 120
    assert str(t.schema.field("gen_time").type) == "timestamp[ns, tz=UTC]"  # a file keeps exact timestamps
    gen = t.column("gen_time").cast("int64").to_pylist()
    assert gen == sorted(gen)
    journals = t.column("journal").to_pylist()
    with Reader(str(rt / "md-a.dat")) as a, Reader(str(rt / "md-b.dat")) as b:
        want = sorted([(f.gen_time, "md-a.dat", f.offset) for f in a] + [(f.gen_time, "md-b.dat", f.offset) for f in b])
    assert list(zip(gen, journals, t.column("offset").to_pylist(), strict=True)) == want
    assert set(t.column("type").to_pylist()) == {"Ticker", "Trade"}
    # the same from text, JSON lines and CSV: each row names its journal
    jl = run_cli("cat", rt / "md-b.dat", rt / "md-a.dat", "-F", "jsonl")
    assert [json.loads(x)["journal"].rsplit("/", 1)[-1] for x in jl.stdout.splitlines()] == journals
    # us timestamps on request, exact nanoseconds beside
    r = run_cli("export", rt, tmp_path / "us.parquet", "--timestamps", "us")
    assert r.returncode == 0, r.stderr
    u = pq.read_table(tmp_path / "us.parquet")
    assert u.column("gen_time_ns").to_pylist() == gen
    r = run_cli("export", rt, tmp_path / "x.parquet", "--timestamps", "ms")
    assert r.returncode == 2 and "unknown --timestamps" in r.stderr


# -- object storage ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3():
    """moto's S3 server on 127.0.0.1 (stopped after), a bucket, and the environment a user would set."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {"AWS_ACCESS_KEY_ID": "kftools-test-key", "AWS_SECRET_ACCESS_KEY": "kftools-test-secret-value",
           "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    try:
        deadline = time.monotonic() + 60
        while True:  # the event: it accepts connections
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, "moto server exited"
                assert time.monotonic() < deadline, "moto server did not start"
                time.sleep(0.05)
        from pyarrow import fs

        s3fs = fs.S3FileSystem(access_key=env["AWS_ACCESS_KEY_ID"], secret_key=env["AWS_SECRET_ACCESS_KEY"],
                               region="us-east-1", endpoint_override=f"127.0.0.1:{port}", scheme="http",
                               allow_bucket_creation=True)
        s3fs.create_dir("bucket")
        yield env, s3fs
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_export_to_s3(tmp_path, s3):
    env, s3fs = s3
    rt = tmp_path / "runtime"
    make_runtime(rt, frames=100)
    r = run_cli("export", rt, "s3://bucket/prefix/runtime", env=env)
    assert r.returncode == 0, r.stderr
    assert env["AWS_SECRET_ACCESS_KEY"] not in r.stderr + r.stdout
    t = pq.read_table("bucket/prefix/runtime", filesystem=s3fs)
    assert t.num_rows == 200 and {"date", "type", "journal", "gen_time_ns"} <= set(t.column_names)
    # incremental to S3 too
    make_runtime(rt, journals=("md-a.dat",), frames=10, start=100)
    r = run_cli("export", rt, "s3://bucket/prefix/runtime", env=env)
    assert r.returncode == 0, r.stderr
    assert "wrote 10 rows" in r.stderr
    assert pq.read_table("bucket/prefix/runtime", filesystem=s3fs).num_rows == 210
    with s3fs.open_input_stream(f"bucket/prefix/runtime/{MANIFEST}") as f:
        manifest = json.loads(f.read())
    assert {k: v["frames"] for k, v in manifest["journals"].items()} == {"md-a.dat": 110, "md-b.dat": 100}
    # a bucket that does not exist: one line, no secret, nothing left behind
    r = run_cli("export", rt, "s3://no-such-bucket/x", env=env)
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith("kftools: error:") and env["AWS_SECRET_ACCESS_KEY"] not in r.stderr
