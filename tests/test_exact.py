"""What the user sees is exact: floats, names of values, times and zones, selections that match nothing."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kftest import ROOT, run_cli
from typer.testing import CliRunner

from kftools import Writer
from kftools.cli import app
from kftools.journal import Reader
from kftools.render import text_line
from kftools.timeparse import format_time, parse_time, resolve_tz

MULTI = os.path.join(ROOT, "sample_journals", "multipage.dat")
T0 = 1_795_790_400_000_000_000  # 2026-11-27T14:40:00Z
runner = CliRunner()


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def ticker_journal(path, rows, gen_times=None, trigger_time=None) -> str:
    with Writer(str(path), page_size=1 << 16) as w:
        for i, (sym, last, bid, ask, vol) in enumerate(rows):
            kw = {}
            if gen_times is not None:
                kw["gen_time"] = gen_times[i]
            if trigger_time is not None:
                kw["trigger_time"] = trigger_time
            w.write_ticker(sym, last, bid, ask, vol, **kw)
    return str(path)


def test_cat_text_prints_floats_that_round_trip(tmp_path):
    path = ticker_journal(tmp_path / "px.dat", [("BTC", 98765.43, 98765.43, 98765.44, 1_234_567.0)])
    res = run_cli("cat", path)
    assert res.returncode == 0, res.stderr
    line = res.stdout.strip()
    assert "bid_price=98765.43 ask_price=98765.44" in line  # not 98765.4 twice
    assert "volume=1234567.0" in line  # not 1.23457e+06
    assert "e+06" not in line


def _fields(line: str) -> dict[str, str]:
    return dict(m.groups() for m in re.finditer(r"(\w+)=(\S+)", line))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.floats(allow_nan=False, width=64), min_size=4, max_size=4))
def test_text_floats_round_trip_property(tmp_path, values):
    """Whatever the double, the text line reads back to the same double."""
    path = tmp_path / "prop.dat"
    for p in tmp_path.glob("prop.dat*"):
        p.unlink()
    ticker_journal(path, [("X", *values)])
    with Reader(str(path)) as r:
        line = text_line(next(iter(r)))
    got = _fields(line)
    for name, v in zip(("last_price", "bid_price", "ask_price", "volume"), values, strict=True):
        back = float(got[name])
        assert back == v and math.copysign(1, back) == math.copysign(1, v), (name, got[name], v)


def test_one_convention_for_names_and_numbers(tmp_path):
    """type is the name and msg_type the number; side and order_type are names, in text, jsonl and CSV."""
    path = str(tmp_path / "o.dat")
    with Writer(path) as w:
        w.write_order("AAPL", 7, 1, 1, 101.5, 3.0, 0.0, "c-7")
        w.write_trade("AAPL", 9, 101.5, 3.0, side=0, order_id=7)
    text = run_cli("cat", path).stdout.splitlines()
    assert "side=sell order_type=market" in text[0] and "side=buy" in text[1]
    rows = [json.loads(x) for x in run_cli("cat", path, "-F", "jsonl").stdout.splitlines()]
    assert (rows[0]["type"], rows[0]["msg_type"], rows[0]["side"], rows[0]["order_type"]) == ("Order", 2, "sell", "market")
    assert (rows[1]["type"], rows[1]["msg_type"], rows[1]["side"]) == ("Trade", 3, "buy")
    table = list(csv.DictReader(io.StringIO(run_cli("cat", path, "-F", "csv").stdout)))
    assert (table[0]["type"], table[0]["msg_type"], table[0]["side"], table[0]["order_type"]) == ("Order", "2", "sell", "market")
    assert (table[1]["type"], table[1]["msg_type"], table[1]["side"]) == ("Trade", "3", "buy")


def test_tz_for_text_output(tmp_path):
    path = ticker_journal(tmp_path / "tz.dat", [("A", 1.0, 1.0, 1.0, 1.0)], gen_times=[T0 + 123])
    utc = run_cli("cat", path).stdout
    assert utc.startswith("2026-11-27T14:40:00.000000123Z ")
    paris = run_cli("cat", path, "--tz", "Europe/Paris").stdout
    assert paris.startswith("2026-11-27T15:40:00.000000123+01:00 ")
    local = run_cli("cat", path, "--tz", "local", env={"TZ": "America/New_York"}).stdout
    assert local.startswith("2026-11-27T09:40:00.000000123-05:00 ")
    bad = run_cli("cat", path, "--tz", "Mars/Olympus")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert bad.stderr.startswith("kftools: error:") and "Mars/Olympus" in bad.stderr


def test_time_of_day_and_before_the_end(tmp_path):
    times = [T0 + i * 1_000_000_000 for i in range(10)]  # 14:40:00 .. 14:40:09 UTC
    path = ticker_journal(tmp_path / "t.dat", [("A", float(i), 0.0, 0.0, 0.0) for i in range(10)], gen_times=times)

    def prices(*args):
        res = run_cli("cat", path, "-F", "jsonl", *args)
        assert res.returncode == 0, res.stderr
        return [json.loads(x)["last_price"] for x in res.stdout.splitlines()]

    assert prices("--start", "14:40:05") == [5.0, 6.0, 7.0, 8.0, 9.0]
    assert prices("--start", "14:40:02.5", "--end", "14:40:04") == [3.0, 4.0]
    # a time of day is read in --tz: 15:40:07 in Paris is 14:40:07 UTC
    assert prices("--start", "15:40:07", "--tz", "Europe/Paris") == [7.0, 8.0, 9.0]
    assert prices("--start", "-2s") == [7.0, 8.0, 9.0]
    assert prices("--start", "+1s", "--end", "-7s") == [1.0, 2.0]


def test_parse_time_forms():
    paris = resolve_tz("Europe/Paris")
    assert parse_time("2026-11-27T15:40:00", tz=paris) == T0
    assert parse_time("2026-11-27T14:40:00Z", tz=paris) == T0  # an explicit offset wins
    assert parse_time("14:40", T0 + 5) == T0
    assert parse_time("-1ms", last=T0) == T0 - 1_000_000
    assert format_time(T0, paris) == "2026-11-27T15:40:00.000000000+01:00"


def test_start_after_end_and_no_match_are_said(tmp_path):
    res = run_cli("cat", MULTI, "--start", "+1s", "--end", "+0.5s")
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.count("\n") == 1 and "--start" in res.stderr and "after --end" in res.stderr
    res = run_cli("cat", MULTI, "-s", "NOPE")
    assert res.returncode == 0 and res.stdout == ""
    assert res.stderr == "kftools: warning: no frame matched symbol NOPE\n"
    res = run_cli("cat", MULTI, "-s", "AAPL", "-n", "1")
    assert res.stdout.count("\n") == 1 and res.stderr == ""


def test_start_after_end_in_every_selecting_command(tmp_path):
    for args in (["export", MULTI, str(tmp_path / "x.parquet")], ["replay", MULTI, "-o", str(tmp_path / "r.dat")]):
        res = run_cli(*args, "--start", "+1s", "--end", "+0.5s")
        assert res.returncode == 2 and "after --end" in res.stderr, (args, res.stderr)
        assert not os.path.exists(args[-1])


def test_cat_clirunner_tz_and_exact(tmp_path):
    """The same through Typer's runner (in-process): the CLI edge passes --tz through."""
    path = ticker_journal(tmp_path / "c.dat", [("A", 0.1, 0.2, 0.30000000000000004, 1e22)], gen_times=[T0])
    res = cli("cat", path, "--tz", "Asia/Tokyo")
    assert res.exit_code == 0, res.output
    assert res.output.startswith("2026-11-27T23:40:00.000000000+09:00 ")
    assert "ask_price=0.30000000000000004 volume=1e+22" in res.output


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_machine_formats_keep_exact_floats(tmp_path, fmt):
    path = ticker_journal(tmp_path / "m.dat", [("A", 98765.43, 98765.43, 98765.44, 1_234_567.0)])
    out = run_cli("cat", path, "-F", fmt).stdout
    assert "98765.44" in out and "1234567.0" in out


def test_info_on_a_later_page_names_its_journal(tmp_path):
    res = run_cli("info", MULTI + ".3")
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr == f"kftools: error: {MULTI}.3: this is page 3 of {MULTI}; give the journal's first page, {MULTI}\n"
    assert "damaged" not in res.stderr
    lone = tmp_path / "lone.dat"
    lone.write_bytes(open(MULTI + ".3", "rb").read())
    res = run_cli("cat", lone)
    assert res.returncode == 2 and "this is page 3 of a journal, not its first page" in res.stderr


def test_recover_says_frames_and_bytes_dropped(tmp_path):
    from kftest import copy_journal

    from kftools.journal.format import FRAME_HEADER

    path = copy_journal(MULTI, str(tmp_path))
    with Reader(path) as r:
        frames = list(r)
        by_page = {}
        for f in frames:
            by_page.setdefault(f.page_index, []).append(f)
        victim = by_page[4][3]  # damage the 4th frame of page 4 of 9
        cursors = {i: r.page(i).cursor for i in range(9)}
        later_frames = sum(len(by_page[i]) for i in range(5, 9))
    with open(f"{path}.4", "r+b") as fh:  # msg_type 0: garbage
        fh.seek(victim.offset + FRAME_HEADER.offset("msg_type"))
        fh.write(b"\0\0\0\0")
    with Reader(path) as r:
        kept = r.count()
        assert r.damage.page == 4
        dropped_bytes = cursors[4] - r.damage.offset + sum(cursors[i] - 64 for i in range(5, 9))
    res = run_cli("recover", path, "-o", tmp_path / "out.dat")
    assert res.returncode == 3
    assert res.stdout == f"wrote {tmp_path / 'out.dat'}: {kept:,} frame(s) in 5 page(s)\n"
    assert res.stderr.startswith(f"kftools: warning: dropped {dropped_bytes:,} byte(s) from ")
    assert f"and 4 later page(s) holding {later_frames:,} readable frame(s)" in res.stderr
    res = run_cli("recover", tmp_path / "out.dat", "--in-place")
    assert res.returncode == 0 and res.stdout == f"clean, nothing cut: {kept:,} frame(s) in 5 page(s)\n"
    assert "cut in" not in res.stdout and res.stderr == ""
    res = run_cli("recover", path, "--in-place")
    assert res.returncode == 3 and res.stdout.startswith(f"cut in place: kept {kept:,} frame(s)")


# -- Parquet: the same convention, nulls where nothing was set, ids as nullable integers ---------------
def _mixed_journal(path) -> str:
    import numpy as np

    from kftools.journal.registry import DEFAULT_REGISTRY

    with Writer(str(path)) as w:
        w.write_ticker("AAPL", 98765.43, 98765.43, 98765.44, 1.0, trigger_time=0)
        w.write_order("AAPL", 2**63 + 5, 1, 1, 101.5, 3.0, 0.0, "c-1", trigger_time=T0)
        w.write_trade("AAPL", 9, 101.5, 3.0, side=0, order_id=2**63 + 5)
        odd = np.array((b"AAPL", 6, 7, 0, 1.0, 1.0, 0.0, b""), dtype=DEFAULT_REGISTRY.get(2).layout.dtype)
        w.write(2, odd.tobytes())  # side 7 has no name: it stays a number, as text
    return str(path)


def test_parquet_columns_follow_the_convention(tmp_path):
    import duckdb
    import pandas as pd
    import pyarrow.parquet as pq

    path = _mixed_journal(tmp_path / "m.dat")
    out = tmp_path / "m.parquet"
    res = run_cli("export", path, out)
    assert res.returncode == 0, res.stderr
    t = pq.read_table(out)
    assert t.column("type").to_pylist() == ["Ticker", "Order", "Trade", "Order"]
    assert t.column("msg_type").to_pylist() == [1, 2, 3, 2]
    assert t.column("side").to_pylist() == [None, "sell", "buy", "7"]
    assert t.column("order_type").to_pylist() == [None, "market", None, "limit"]
    trig = t.column("trigger_time")
    assert trig[0].as_py() is None and trig.null_count == 3  # unset: null, not 1970-01-01
    assert trig[1].value == T0
    df = pd.read_parquet(out)  # ids as nullable integers by default: exact, <NA> on other types' rows
    assert str(df["order_id"].dtype) == "UInt64" and str(df["trade_id"].dtype) == "UInt64"
    assert df["order_id"].tolist()[:3] == [pd.NA, 2**63 + 5, 2**63 + 5]
    assert str(df["msg_type"].dtype) == "UInt32" and df["side"].tolist()[1:3] == ["sell", "buy"]
    rows = duckdb.sql(f"select type, msg_type, side from '{out}' order by \"offset\"").fetchall()
    assert rows == [("Ticker", 1, None), ("Order", 2, "sell"), ("Trade", 3, "buy"), ("Order", 2, "7")]
    # and back, byte for byte
    res = run_cli("import", out, tmp_path / "back.dat")
    assert res.returncode == 0, res.stderr
    with Reader(path) as a, Reader(str(tmp_path / "back.dat")) as b:
        assert [f.raw for f in a] == [f.raw for f in b]


def test_import_reads_format_1_exports(tmp_path):
    """Exports written before the convention (msg_type = name, msg_type_id = number, numeric side) still import."""
    import json as _json

    import pyarrow as pa
    import pyarrow.parquet as pq

    path = _mixed_journal(tmp_path / "m.dat")
    new = tmp_path / "new.parquet"
    assert run_cli("export", path, new).returncode == 0
    t = pq.read_table(new)
    meta = _json.loads(t.schema.metadata[b"kftools"])
    meta["format"] = 1
    cols = {n: t.column(n) for n in t.column_names}
    cols["msg_type_id"] = cols.pop("msg_type")
    cols["msg_type"] = cols.pop("type")
    cols["side"] = pa.array([None, 1, 0, 7], pa.uint32())
    cols["order_type"] = pa.array([None, 1, None, 0], pa.uint32())
    old = pa.table(cols).replace_schema_metadata({b"kftools": _json.dumps(meta).encode()})
    pq.write_table(old, tmp_path / "old.parquet")
    res = run_cli("import", tmp_path / "old.parquet", tmp_path / "back.dat")
    assert res.returncode == 0, res.stderr
    with Reader(path) as a, Reader(str(tmp_path / "back.dat")) as b:
        assert [f.raw for f in a] == [f.raw for f in b]


def test_dataset_type_comes_from_its_folders(tmp_path):
    import pandas as pd

    folder = tmp_path / "day"
    folder.mkdir()
    _mixed_journal(folder / "a.dat")
    out = tmp_path / "ds"
    res = run_cli("export", folder, out)
    assert res.returncode == 0, res.stderr
    df = pd.read_parquet(out)
    assert sorted(df["type"].astype(str)) == ["Order", "Order", "Ticker", "Trade"]
    assert sorted(df["msg_type"].tolist()) == [1, 2, 2, 3]
