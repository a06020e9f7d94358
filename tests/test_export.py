"""kftools export / import: Parquet round trips, filters, --split, datasets, live and damaged journals, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kftest import KFTOOLS, ROOT, SAMPLES, SCHEMA, copy_journal, run_cli, wait_for

from kftools.cli import exit_code
from kftools.errors import KftoolsError, UnknownType
from kftools.export import export, import_parquet, schema_table
from kftools.journal.format import MsgType
from kftools.journal.reader import Reader
from kftools.journal.schemas import load_registry
from kftools.journal.writer import Writer

DAY = 86_400 * 10**9
T0 = 1_764_264_600 * 10**9  # 2025-11-27T17:30:00Z


def frames_of(path: str, registry=None) -> list[tuple]:
    """Every committed frame as (page, offset, raw bytes)."""
    with Reader(path, registry=registry) as r:
        return [(f.page_index, f.offset, bytes(f.raw)) for f in r]


def raw_frames(path: str, registry=None) -> list[bytes]:
    return [raw for _p, _o, raw in frames_of(path, registry)]


def listing(d) -> list[str]:
    return sorted(os.listdir(d))


# -- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("src", SAMPLES, ids=os.path.basename)
def test_cli_round_trip_every_sample(src, tmp_path):
    j = copy_journal(src, str(tmp_path))
    out = tmp_path / "out.parquet"
    back = tmp_path / "back.dat"
    r = run_cli("export", j, out, "--schema", SCHEMA)
    damaged = os.path.basename(src).startswith("damaged")
    assert r.returncode == (3 if damaged else 0), r.stderr
    if damaged:
        assert "dropped" in r.stderr and "offset" in r.stderr
    r = run_cli("import", out, back)
    assert r.returncode == 0, r.stderr
    reg = load_registry([SCHEMA])
    original = frames_of(j, reg)
    assert original, "the valid prefix is not empty"
    assert frames_of(str(back), reg) == original  # byte-identical, at the same pages and offsets
    assert pq.read_metadata(out).num_rows == len(original)


def test_round_trip_without_schema_keeps_user_payloads(tmp_path):
    src = [p for p in SAMPLES if "user_types" in p][0]
    out = tmp_path / "u.parquet"
    export(src, str(out), registry=load_registry())
    t = pq.read_table(out)
    assert t.column("payload").null_count < t.num_rows  # unknown types keep their bytes
    import_parquet(str(out), str(tmp_path / "u.dat"))
    assert raw_frames(str(tmp_path / "u.dat")) == raw_frames(src)


def test_typed_columns(tmp_path):
    src = [p for p in SAMPLES if "user_types" in p][0]
    out = tmp_path / "u.parquet"
    export(src, str(out), registry=load_registry([SCHEMA]))
    t = pq.read_table(out)
    s = t.schema
    assert s.field("gen_time").type == pa.timestamp("ns", tz="UTC")
    assert s.field("trigger_time").type == pa.timestamp("ns", tz="UTC")
    assert pa.types.is_dictionary(s.field("type").type) and s.field("msg_type").type == pa.uint32()
    assert pa.types.is_dictionary(s.field("symbol").type)
    assert s.field("last_price").type == pa.float64()
    assert s.field("order_id").type == pa.uint64()
    assert s.field("payload").type == pa.binary()
    df = t.to_pandas()
    reg = load_registry([SCHEMA])
    with Reader(src, registry=reg) as r:
        frames = [f.to_dict() for f in r]
    # one convention with text, jsonl and CSV: type is the name, msg_type the number
    assert list(df["type"].astype(str)) == [f["type"] for f in frames]
    assert list(df["msg_type"]) == [f["msg_type"] for f in frames]
    for row, f in zip(df.itertuples(), frames, strict=True):
        if f["type"] == "Ticker":
            assert row.symbol == f["symbol"] and row.last_price == f["last_price"]
            assert np.isnan(row.price)  # a field the type lacks is null
            assert row.payload is None
        if f["type"] == "Quote":
            assert row.bid == f["bid"]
        if "payload" in f:  # unknown type: its bytes, nothing typed
            assert row.payload.hex() == f["payload"]
    meta = json.loads(pq.read_schema(out).metadata[b"kftools"])
    assert meta["page_capacity"] == os.path.getsize(src)
    assert {t["name"] for t in meta["types"]} >= {"Ticker", "Order", "Trade", "Quote"}


TEXTS = st.one_of(
    st.sampled_from([b"", b"AAPL", b"MSFT", b"X" * 16, "é".encode()]),
    st.binary(max_size=16),  # garbage after NUL, non-UTF-8...
)
#: side / order_type: named values (exported as names) and any other u32 (exported as its number, in text)
NAMED = st.one_of(st.sampled_from([0, 1]), st.integers(0, 2**32 - 1))
QUOTE = [("symbol", "char[16]"), ("bid", "f64"), ("ask", "f64"), ("n", "u16"), ("k", "i32"), ("w", "f32")]


@st.composite
def journals(draw):
    frames = []
    for _ in range(draw(st.integers(0, 40))):
        kind = draw(st.sampled_from(["ticker", "order", "trade", "quote", "unknown"]))
        pad = draw(st.sampled_from([0, 0, 0, 1, 7, 64]))
        garbage = draw(st.booleans()) and pad > 0
        hdr = dict(gen_time=T0 + draw(st.integers(0, 3 * DAY)), trigger_time=draw(st.one_of(st.just(0), st.integers(0, 2**63 - 1))),
                   source=draw(st.integers(0, 2**32 - 1)), dest=draw(st.integers(0, 2**32 - 1)))
        floats = st.floats(allow_nan=True, allow_infinity=True)
        if kind == "unknown":
            payload = draw(st.binary(max_size=100))
        elif kind == "ticker":
            payload = np.array((draw(TEXTS), draw(floats), draw(floats), 0.5, -1.0),
                               dtype=load_registry().get(1).layout.dtype).tobytes()
        elif kind == "order":
            payload = np.array((draw(TEXTS), draw(st.integers(0, 2**64 - 1)), draw(NAMED), draw(NAMED), draw(floats), 2.0, 0.0,
                                draw(st.binary(max_size=32))), dtype=load_registry().get(2).layout.dtype).tobytes()
        elif kind == "trade":
            payload = np.array((draw(TEXTS), 7, 9, draw(NAMED), draw(st.integers(0, 2**32 - 1)), 1.5, 3.0),
                               dtype=load_registry().get(3).layout.dtype).tobytes()
        else:
            payload = np.array((draw(TEXTS), 1.0, draw(floats), draw(st.integers(0, 65535)),
                                draw(st.integers(-2**31, 2**31 - 1)), 0.25),
                               dtype=np.dtype([(n, k.replace("char[16]", "S16").replace("f64", "<f8").replace(
                                   "u16", "<u2").replace("i32", "<i4").replace("f32", "<f4")) for n, k in QUOTE])
                               ).tobytes()
        if pad:
            payload += draw(st.binary(min_size=pad, max_size=pad)) if garbage else bytes(pad)
        frames.append((kind, payload, hdr))
    return draw(st.sampled_from([4096, 8192, 65536])), frames


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(journals())
def test_hypothesis_round_trip(tmp_path_factory, spec):
    page_size, frames = spec
    d = tmp_path_factory.mktemp("h")
    reg = load_registry()
    reg.register(100, "Quote", QUOTE)
    j = str(d / "j.dat")
    with Writer(j, page_size=page_size, registry=reg) as w:
        for kind, payload, hdr in frames:
            unknown_id = 200 if len(payload) % 2 else 70000
            t = {"ticker": 1, "order": 2, "trade": 3, "quote": 100, "unknown": unknown_id}[kind]
            w.write(t, payload, **hdr)
    out = str(d / "j.parquet")
    res = export(j, out, registry=reg, row_group_size=7)
    assert res.rows == len(frames) and not res.damage
    back = str(d / "back.dat")
    import_parquet(out, back)  # the registry comes from the file's metadata
    assert frames_of(back, reg) == frames_of(j, reg)
    if frames:
        # a file per type: the files share one writer, which writes the fullest early when they hold more than
        # two row groups' rows, so row groups come out smaller but never larger, and nothing is lost or moved
        split = d / "split"
        res = export(j, str(split), registry=reg, row_group_size=7, split=True)
        assert res.rows == len(frames)
        for f in listing(split):
            md = pq.read_metadata(split / f)
            assert all(0 < md.row_group(i).num_rows <= 7 for i in range(md.num_row_groups))
        import_parquet(str(split), str(d / "split.dat"))
        assert frames_of(str(d / "split.dat"), reg) == frames_of(j, reg)


# -- options -------------------------------------------------------------------------------


@pytest.fixture
def feed(tmp_path) -> str:
    """A small simulated feed over two pages."""
    from kftools.simulate import simulate

    j = str(tmp_path / "feed.dat")
    simulate(j, rate=0, frames=3000, page_size=131072, seed=3)
    return j


def test_filters(feed, tmp_path):
    reg = load_registry()
    out = tmp_path / "f.parquet"
    r = run_cli("export", feed, out, "--type", "Ticker,Trade", "--symbol", "AAPL", "-q")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    df = pq.read_table(out).to_pandas()
    with Reader(feed) as rd:
        want = [f for f in rd if f.type_name in ("Ticker", "Trade") and f.symbol == "AAPL"]
    assert len(df) == len(want) > 0
    assert set(df["symbol"].astype(str)) == {"AAPL"}
    # only the chosen types' columns
    assert "order_type" not in df.columns and "last_price" in df.columns and "trade_id" in df.columns
    with Reader(feed) as rd:
        times = [f.gen_time for f in rd]
    lo, hi = times[500], times[1500]
    res = export(feed, str(tmp_path / "t.parquet"), registry=reg, start=str(lo), end=str(hi))
    assert res.rows == sum(lo <= t <= hi for t in times)


def test_compression_and_row_groups(feed, tmp_path):
    for comp in ("zstd", "snappy", "none"):
        out = tmp_path / f"{comp}.parquet"
        r = run_cli("export", feed, out, "--compression", comp, "--row-group-size", "1000")
        assert r.returncode == 0, r.stderr
        md = pq.read_metadata(out)
        assert md.num_rows == 3000 and md.num_row_groups == 3
        want = "UNCOMPRESSED" if comp == "none" else comp.upper()
        assert md.row_group(0).column(0).compression == want


def test_split(feed, tmp_path):
    out = tmp_path / "split"
    r = run_cli("export", feed, out, "--split")
    assert r.returncode == 0, r.stderr
    assert listing(out) == ["Order.parquet", "Ticker.parquet", "Trade.parquet"]
    tick = pq.read_table(out / "Ticker.parquet")
    assert "last_price" in tick.column_names and "order_type" not in tick.column_names
    assert set(tick.column("type").to_pylist()) == {"Ticker"}
    total = sum(pq.read_metadata(out / f).num_rows for f in listing(out))
    assert total == 3000
    r = run_cli("import", out, tmp_path / "back.dat")
    assert r.returncode == 0, r.stderr
    assert frames_of(str(tmp_path / "back.dat")) == frames_of(feed)


def test_dataset_duckdb_and_pandas(tmp_path):
    import duckdb
    import pandas as pd

    day = tmp_path / "days"
    day.mkdir()
    rng = np.random.default_rng(1)
    syms = ["AAPL", "MSFT", "NVDA"]
    for k, name in enumerate(["eng-a.dat", "eng-b.dat", "eng-c.dat"]):
        with Writer(str(day / name), page_size=16384) as w:
            for i in range(700):
                s = syms[int(rng.integers(3))]
                t = T0 + k * DAY + i * 10**9 * 60  # journal c starts on another day; a crosses midnight
                if i % 5 == 4:
                    w.write_trade(s, i, float(rng.random() * 100), float(rng.integers(1, 9)), gen_time=t)
                else:
                    w.write_ticker(s, float(rng.random() * 100), volume=float(rng.integers(1, 9)), gen_time=t)
    (day / "notes.txt").write_text("engine A and B, Nov 27-30\n")
    out = tmp_path / "ds"
    r = run_cli("export", day, out)
    assert r.returncode == 0, r.stderr
    assert "notes.txt" not in r.stderr  # plainly not a journal: not one of the folder's journals
    assert "_kftools_export.json" in listing(out)  # the manifest an incremental export continues from
    dates = [d for d in listing(out) if d.startswith("date=")]
    assert dates == ["date=2025-11-27", "date=2025-11-28", "date=2025-11-29", "date=2025-11-30"]
    assert listing(out / dates[1]) == ["type=Ticker", "type=Trade"]
    # the same aggregate from the journals themselves
    want: dict = {}
    for name in ["eng-a.dat", "eng-b.dat", "eng-c.dat"]:
        with Reader(str(day / name)) as rd:
            for f in rd:
                if f.type_name == "Ticker":
                    n, v = want.get(f.symbol, (0, 0.0))
                    want[f.symbol] = (n + 1, v + f.volume)
    got = duckdb.sql(
        f"SELECT symbol, count(*) AS n, sum(volume) AS v FROM read_parquet('{out}/**/*.parquet', hive_partitioning=true)"
        " WHERE type = 'Ticker' GROUP BY symbol ORDER BY symbol"
    ).fetchall()
    assert [(s, n) for s, n, _ in got] == [(s, want[s][0]) for s in sorted(want)]
    for s, _n, v in got:
        assert v == pytest.approx(want[s][1])
    per_journal = dict(duckdb.sql(
        f"SELECT journal, count(*) FROM read_parquet('{out}/**/*.parquet', hive_partitioning=true) GROUP BY journal"
    ).fetchall())
    assert per_journal == {"eng-a.dat": 700, "eng-b.dat": 700, "eng-c.dat": 700}
    df = pd.read_parquet(out)
    assert len(df) == 2100 and {"date", "type", "journal", "symbol"} <= set(df.columns)


# -- live, crashed, damaged, empty -----------------------------------------------------------


def _start_writer(path: str, rate: int, duration: float) -> subprocess.Popen:
    p = subprocess.Popen([*KFTOOLS, "simulate", path, "--rate", str(rate), "--duration", str(duration),
                          "--page-size", "65536"], cwd=ROOT, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with Reader(path) as r:
                if r.count() > 100:
                    return p
        except KftoolsError:
            pass
        time.sleep(0.05)
    p.kill()
    raise AssertionError("the writer did not start")


def test_export_while_writer_appends(tmp_path):
    j = str(tmp_path / "live.dat")
    w = _start_writer(j, 5000, 60)
    try:
        with Reader(j) as r:
            before = r.count()
        out = tmp_path / "live.parquet"
        r = run_cli("export", j, out)
        assert r.returncode == 0, r.stderr
        with Reader(j) as rd:
            after = rd.count()
        rows = pq.read_metadata(out).num_rows
        assert before <= rows <= after
        import_parquet(str(out), str(tmp_path / "back.dat"))
        assert raw_frames(str(tmp_path / "back.dat")) == raw_frames(j)[:rows]  # a prefix, nothing torn
    finally:
        w.send_signal(signal.SIGINT)
        w.wait(30)


def test_follow_until_sigint_exports_every_frame_committed_by_then(tmp_path):
    j = str(tmp_path / "live.dat")
    w = _start_writer(j, 2000, 60)
    out = tmp_path / "follow.parquet"
    p = subprocess.Popen([*KFTOOLS, "export", j, str(out), "--follow"], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # the event: export follows once its hidden temporary exists
        wait_for(lambda: any(n.startswith(".follow.parquet.kftmp-") for n in os.listdir(tmp_path)), "export to start")
        assert not out.exists()  # only the complete file appears
    finally:
        w.send_signal(signal.SIGINT)
        w.wait(30)
    committed = raw_frames(j)  # the writer has stopped: this is everything
    p.send_signal(signal.SIGINT)
    _o, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert pq.read_metadata(out).num_rows == len(committed) > 100  # a valid file, closed cleanly, nothing left out
    import_parquet(str(out), str(tmp_path / "back.dat"))
    assert raw_frames(str(tmp_path / "back.dat")) == committed
    assert [f for f in listing(tmp_path) if "kftmp" in f or f.endswith(".tmp")] == []


def test_crashed_and_damaged(tmp_path):
    crashed = copy_journal([p for p in SAMPLES if "crashed" in p][0], str(tmp_path))
    r = run_cli("export", crashed, tmp_path / "c.parquet")
    assert r.returncode == 0 and "writer died" in r.stderr
    damaged = copy_journal([p for p in SAMPLES if "damaged" in p][0], str(tmp_path))
    r = run_cli("export", damaged, tmp_path / "d.parquet")
    assert r.returncode == 3
    assert "damaged.dat: page 0 offset" in r.stderr and "dropped" in r.stderr
    with Reader(damaged) as rd:
        valid = rd.count()
    assert pq.read_metadata(tmp_path / "d.parquet").num_rows == valid


def test_empty_journal(tmp_path):
    j = str(tmp_path / "empty.dat")
    Writer(j, page_size=4096).close()
    out = tmp_path / "empty.parquet"
    r = run_cli("export", j, out)
    assert r.returncode == 0, r.stderr
    t = pq.read_table(out)
    assert t.num_rows == 0
    assert {"gen_time", "symbol", "last_price", "order_id", "payload"} <= set(t.column_names)
    r = run_cli("export", j, tmp_path / "es", "--split", "--type", "Ticker")
    assert r.returncode == 0 and listing(tmp_path / "es") == ["Ticker.parquet"]
    import_parquet(str(out), str(tmp_path / "back.dat"))
    assert raw_frames(str(tmp_path / "back.dat")) == []


# -- bad input ------------------------------------------------------------------------------


def _assert_one_line_error(r, code=None):
    assert r.returncode != 0
    if code is not None:
        assert r.returncode == code
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kftools: error:"), r.stderr
    assert "Traceback" not in r.stderr


def test_bad_input(feed, tmp_path):
    out_dir = tmp_path / "o"
    out_dir.mkdir()
    before = listing(tmp_path)
    r = run_cli("export", feed, out_dir)  # a folder
    _assert_one_line_error(r, 2)
    assert "is a directory" in r.stderr
    r = run_cli("export", feed, tmp_path / "missing" / "x.parquet")
    _assert_one_line_error(r, 2)
    notj = tmp_path / "notj.dat"
    notj.write_bytes(b"hello world" * 100)
    r = run_cli("export", notj, out_dir / "x.parquet")
    _assert_one_line_error(r, 2)
    assert "notj.dat" in r.stderr
    r = run_cli("export", feed, out_dir / "x.parquet", "--type", "Nope")
    _assert_one_line_error(r, exit_code(UnknownType("x")))
    assert "Nope" in r.stderr
    r = run_cli("export", feed, out_dir / "x.parquet", "--compression", "lz5")
    _assert_one_line_error(r, 2)
    r = run_cli("import", notj, out_dir / "y.dat")
    _assert_one_line_error(r)
    assert listing(out_dir) == []  # nothing partial left behind
    assert listing(tmp_path) == sorted([*before, "notj.dat"])
    # an existing output is kept unless --force
    (out_dir / "keep.parquet").write_bytes(b"mine")
    r = run_cli("export", feed, out_dir / "keep.parquet")
    _assert_one_line_error(r, 2)
    assert (out_dir / "keep.parquet").read_bytes() == b"mine"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output(feed, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    r = run_cli("export", feed, ro / "x.parquet")
    _assert_one_line_error(r, 2)
    assert "not writable" in r.stderr


def test_write_failure_leaves_nothing(feed, tmp_path, monkeypatch):
    """A failure half way (here: the disk) removes the temporary file."""
    import kftools.export as ex

    def boom(self, b, journal=None):
        raise OSError("No space left on device")

    monkeypatch.setattr(ex.Columns, "convert", boom)
    with pytest.raises(OSError):
        export(feed, str(tmp_path / "x.parquet"), registry=load_registry())
    assert not [f for f in listing(tmp_path) if "x.parquet" in f]


def test_progress_bar_on_a_terminal(feed, tmp_path):
    import pty

    master, slave = pty.openpty()
    p = subprocess.Popen([*KFTOOLS, "export", feed, str(tmp_path / "p.parquet")], cwd=ROOT,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    p.wait(60)
    os.close(master)
    text = b"".join(chunks).decode(errors="replace")
    assert p.returncode == 0
    assert "export" in text and "3,000 frames" in text


def test_schema_table_documents_every_column():
    table = schema_table()
    for col in ("gen_time", "msg_type", "symbol", "last_price", "client_order_id", "payload", "journal"):
        assert f"`{col}`" in table
    assert MsgType.TICKER == 1
    assert sys.version_info >= (3, 10)
