"""Kungfu's own journals (yijinjing 2.4): the samples against their manifests, and generated ones."""

from __future__ import annotations

import json
import os
import shutil
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kftest import ROOT, run_cli
from kungfu_writer import KungfuTestWriter

import kftools
from kftools.journal import yijinjing as kf
from kftools.journal.scan import IMPLEMENTATIONS, OK, WRITTEN_END

DATA = os.path.join(ROOT, "tests", "data", "kungfu")
KF_HOME = os.path.join(DATA, "kf_home")
TD = os.path.join(KF_HOME, "runtime", "td", "sim", "acct1", "journal", "live")
STRATEGY = os.path.join(KF_HOME, "runtime", "strategy", "default", "demo", "journal", "live")
SAMPLES = {"td/sim/acct1/live/00000000": (TD, "td-sim-acct1"), "strategy/default/demo/live/00000000": (STRATEGY, "strategy-default-demo")}
PRICE_FIELD = {101: "last_price", 203: "limit_price"}


def manifest(stem: str) -> list[dict]:
    with open(os.path.join(DATA, f"{stem}.manifest.jsonl")) as fh:
        return [json.loads(line) for line in fh]


@pytest.fixture
def kf_home(tmp_path) -> str:
    """A private, writable copy of the sample KF_HOME."""
    dst = str(tmp_path / "kf_home")
    shutil.copytree(KF_HOME, dst)
    for root, dirs, files in os.walk(dst):
        for n in dirs + files:
            os.chmod(os.path.join(root, n), 0o755 if n in dirs else 0o644)
    return dst


@pytest.mark.parametrize("name", SAMPLES)
def test_every_sample_frame_matches_the_manifest(name):
    folder, stem = SAMPLES[name]
    want = manifest(stem)
    with kftools.Reader(folder) as r:
        assert r.name == name
        got = list(r)
        assert r.damage is None
        assert len(got) == len(want)
        for f, m in zip(got, want, strict=True):
            assert (f.page_index, f.offset, f.msg_type, f.gen_time) == (m["page"], m["offset"], m["msg_type"], m["gen_time"])
            fields = f.fields
            if m["msg_type"] in (10001, 10002):
                assert f.type_name in ("SessionStart", "SessionEnd") and fields == {}
                continue
            assert fields["instrument_id"] == m["instrument_id"]
            assert fields[PRICE_FIELD.get(m["msg_type"], "price")] == m["price"]
            assert fields["volume"] == m["volume"]


def test_page_crossing_hides_page_end_and_starts_page_two_after_its_header():
    with kftools.Reader(TD) as r:
        frames = list(r)
        assert [f.type_name for f in frames].count("PageEnd") == 0
        assert {f.msg_type for f in frames} == {101, 102, 103, 203, 204, 10001}
        first_on_2 = next(f for f in frames if f.page_index == 2)
        assert first_on_2.offset == kf.PAGE_HEADER.size
        last_on_1 = [f for f in frames if f.page_index == 1][-1]
        # the PageEnd sits right after the last frame of page 1 and seals it
        assert r.page(1).sealed and not r.page(2).sealed
        assert r.page(1).cursor == last_on_1.offset + kf.FRAME_HEADER.size + last_on_1.length + kf.FRAME_HEADER.size


def test_fields_have_longfist_names_and_enums_show_their_names():
    from kftools.render import record

    with kftools.Reader(TD) as r:
        by_type = {}
        for f in r:
            by_type.setdefault(f.type_name, f)
        q = by_type["Quote"].fields
        assert list(q)[:5] == ["trading_day", "data_time", "instrument_id", "exchange_id", "instrument_type"]
        assert len(q["bid_price"]) == 10 and len(q["ask_volume"]) == 10
        # fields hold the stored numbers; outputs show the enum's names as Kungfu spells them
        assert q["instrument_type"] == kf.InstrumentType.Stock
        assert record(by_type["Quote"])["instrument_type"] == "Stock"
        o = record(by_type["Order"])
        assert o["status"] in {e.name for e in kf.OrderStatus}
        assert o["side"] in {e.name for e in kf.Side} and o["offset"] in {e.name for e in kf.Offset}
        assert isinstance(o["is_swap"], bool)
        t = record(by_type["Trade"])
        assert t["type"] == "Trade" and t["side"] in ("Buy", "Sell")


def test_batches_give_typed_arrays_equal_to_the_frames():
    with kftools.Reader(TD) as r:
        quotes = np.concatenate([b.payload(101) for b in r.batches(types=[101])])
        frames = [f for f in r if f.msg_type == 101]
    assert len(quotes) == len(frames) == 2977
    assert quotes.dtype == kf.QUOTE.dtype and quotes["bid_price"].shape == (2977, 10)
    assert quotes["last_price"].tolist() == [f.last_price for f in frames]
    assert quotes["bid_volume"][5].tolist() == frames[5].bid_volume


def test_symbol_filter_matches_instrument_id():
    want = [m for m in manifest("td-sim-acct1") if m["instrument_id"] == "rb2405"]
    with kftools.Reader(TD) as r:
        got = list(r.frames(symbols=["rb2405"]))
    assert [(f.page_index, f.offset) for f in got] == [(m["page"], m["offset"]) for m in want]


def test_a_folder_of_several_journals_is_not_one_journal():
    with pytest.raises(kftools.NotAJournal, match="holds 2 Kungfu journals"):
        kftools.Reader(KF_HOME)


def test_first_page_file_names_the_journal():
    with kftools.Reader(os.path.join(TD, "00000000.1.journal")) as r:
        assert r.name == "td/sim/acct1/live/00000000" and r.count() == 5001


def test_find_journals_by_folder_kinds():
    names = lambda p: [j.name for j in kf.find_journals(p)]  # noqa: E731
    both = ["strategy/default/demo/live/00000000", "td/sim/acct1/live/00000000"]
    assert names(KF_HOME) == both
    assert names(os.path.join(KF_HOME, "runtime")) == both
    assert names(TD) == ["td/sim/acct1/live/00000000"]
    assert names(os.path.join(TD, "00000000.2.journal")) == ["td/sim/acct1/live/00000000"]


@pytest.mark.parametrize("field, value, said", [
    ("frame_header_length", 80, "80-byte frame headers, a layout this kftools does not know"),
    ("version", 0xA1B2C3D5, "Kungfu journal format epoch 0xa1b2c3d5 is newer than this kftools knows"),
])
def test_unknown_kungfu_layouts_and_epochs_are_refused_by_name(tmp_path, field, value, said):
    w = KungfuTestWriter(str(tmp_path / "j"), page_size=1 << 16)
    w.write(101, bytes(kf.QUOTE.size), 1)
    w.close()
    page = w.journal.page_path(1)
    with open(page, "r+b") as fh:
        fh.seek(kf.PAGE_HEADER.offset(field))
        fh.write(struct.pack("<I", value))
    for target in (page, str(tmp_path / "j")):
        r = run_cli("info", target)
        assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
        assert said in r.stderr and "Traceback" not in r.stderr


# -- generated journals -------------------------------------------------------------------------------------------

_TYPES = [101, 102, 103, 201, 203, 204, 10001, 10002, 777]


@st.composite
def frames(draw):
    n = draw(st.integers(0, 60))
    out = []
    t = 1_700_000_000_000_000_000
    for _ in range(n):
        mt = draw(st.sampled_from(_TYPES))
        layout = kf.REGISTRY.get(mt)
        size = layout.layout.size if layout else draw(st.integers(0, 40))
        extra = draw(st.integers(0, 8))
        t += draw(st.integers(0, 10**6))
        out.append((mt, draw(st.binary(min_size=size + extra, max_size=size + extra)), t))
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frames(), st.booleans(), st.booleans())
def test_generated_journal_reads_back_every_frame(tmp_path_factory, written, half, lose_page):
    folder = str(tmp_path_factory.mktemp("kf") / "td" / "sim" / "a" / "journal" / "live")
    w = KungfuTestWriter(folder, page_size=4096)  # small pages: many PageEnds
    for mt, data, t in written:
        w.write(mt, data, t, trigger_time=t - 1)
    if half:
        w.write_half(101, bytes(range(256)) * 2 + b"xx")
    w.close()
    want = w.written
    lost = None
    if lose_page and w.page_id >= 3:
        lost = 2
        os.unlink(w.journal.page_path(lost))
    with kftools.Reader(folder) as r:
        got = list(r)
        damage = r.damage
        batched = sum(len(b) for b in r.batches(batch_size=7))
    if lost is None:
        assert damage is None
        expect = want
    else:
        # page 1 is sealed by a PageEnd but page 2 is gone: damage, and nothing after it is handed out
        assert damage is not None and damage.page == 1 and "missing" in damage.reason
        expect = [x for x in want if x["page"] == 1]
    assert batched == len(got) == len(expect)
    for f, x in zip(got, expect, strict=True):
        assert (f.page_index, f.offset, f.msg_type, f.gen_time, f.trigger_time, f.source, f.dest) == (
            x["page"], x["offset"], x["msg_type"], x["gen_time"], x["trigger_time"], x["source"], x["dest"])
        assert f.payload == x["payload"]
        if f.msg_type == 777:
            assert f.type_name == "type777" and "payload" in f.to_dict()


def test_half_written_last_frame_is_the_end_not_damage(tmp_path):
    folder = str(tmp_path / "j")
    w = KungfuTestWriter(folder, page_size=1 << 16)
    for i in range(5):
        w.write(102, bytes(kf.ENTRUST.size), 10 + i)
    w.write_half(101, b"\x01" * kf.QUOTE.size)
    w.close()
    r = run_cli("verify", w.journal.first_page)
    assert r.returncode == 0, r.stderr
    assert "5 valid frame(s)" in r.stdout
    with kftools.Reader(folder) as rd:
        assert rd.count() == 5 and rd.damage is None


def test_damaged_chain_is_reported_and_stops_reading(tmp_path):
    folder = str(tmp_path / "j")
    w = KungfuTestWriter(folder, page_size=1 << 16)
    for i in range(100):
        w.write(103, bytes(kf.TRANSACTION.size), 10 + i)
    w.close()
    bad = w.written[60]["offset"]
    with open(w.journal.page_path(1), "r+b") as fh:
        fh.seek(bad + kf.FRAME_HEADER.offset("msg_type"))
        fh.write(struct.pack("<i", -5))
    r = run_cli("verify", folder)
    assert r.returncode == 3
    assert f"offset {bad}" in r.stdout + r.stderr
    # as in kftools' journals, frames overlapping the 4 KiB block of the damage are not trusted either
    block = (bad + kf.FRAME_HEADER.offset("msg_type")) // 4096 * 4096
    trusted = [x for x in w.written if x["offset"] + kf.FRAME_HEADER.size + len(x["payload"]) <= block]
    with kftools.Reader(folder) as rd:
        assert rd.count() == len(trusted) > 0 and rd.damage is not None


def test_json_text_payloads_show_as_text(tmp_path):
    folder = str(tmp_path / "j")
    w = KungfuTestWriter(folder, page_size=1 << 16)
    w.write(10005, b'{"location_uid":1,"value":"x"}', 5)
    w.write(10006, b"\x00\x01binary", 6)
    w.close()
    with kftools.Reader(folder) as r:
        a, b = (f.to_dict() for f in r)
    assert a["text"] == '{"location_uid":1,"value":"x"}' and "payload" not in a
    assert b["payload"] == "0001" + b"binary".hex()


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=600), st.integers(0, 64))
def test_scanner_implementations_agree_on_kungfu_bytes(data, start):
    mins = kf.REGISTRY.min_lengths()
    results = []
    for scan, _g, _gv in IMPLEMENTATIONS.values():
        out = np.zeros(200, dtype=np.int64)
        n, nxt, err = scan(data, start, len(data), out, mins, 36, 24, 1, 10000)
        results.append((n, nxt, err, out[:n].tolist()))
    assert all(r == results[0] for r in results)


def test_scanner_stops_at_zero_length_and_after_page_end():
    buf = bytearray(200)
    hdr = kf.FRAME_HEADER
    hdr.struct.pack_into(buf, 0, 36, 36, 1, 0, 10001, 0, 0)
    hdr.struct.pack_into(buf, 36, 36, 36, 2, 0, 10000, 0, 0)
    hdr.struct.pack_into(buf, 72, 36, 36, 3, 0, 10001, 0, 0)
    for scan, _g, _gv in IMPLEMENTATIONS.values():
        out = np.zeros(10, dtype=np.int64)
        assert scan(bytes(buf), 0, 200, out, b"", 36, 24, 1, 10000)[:3] == (2, 72, OK)
        assert scan(bytes(buf), 0, 200, out, b"", 36, 24, 1, 0)[:3] == (3, 108, WRITTEN_END)


# -- commands ------------------------------------------------------------------------------------------------------

def test_cli_info_cat_verify_on_a_kungfu_journal():
    r = run_cli("info", TD, "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)["journals"][0]  # a folder: a row per journal in it (here one)
    assert info["path"] == "td/sim/acct1/live/00000000" and info["frames"] == 5001 and info["pages"] == 2
    assert info["by_type"] == {"Quote": 2977, "Entrust": 746, "Transaction": 621, "Order": 362, "Trade": 294,
                               "SessionStart": 1}
    want = [m for m in manifest("td-sim-acct1") if m["instrument_id"] == "rb2405" and m["msg_type"] == 203]
    r = run_cli("cat", TD, "-F", "jsonl", "--type", "Order", "--symbol", "rb2405")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(x["gen_time"], x["limit_price"]) for x in rows] == [(m["gen_time"], m["price"]) for m in want]
    assert rows[0]["type"] == "Order" and rows[0]["status"] in {e.name for e in kf.OrderStatus}
    r = run_cli("cat", TD, "-F", "csv", "--type", "quote", "-n", "2")
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and len(lines) == 3 and "instrument_id" in lines[0] and "bid_price" in lines[0]
    r = run_cli("cat", TD, "-n", "1", "--type", "Trade")
    assert " Trade " in r.stdout and "side=" in r.stdout and "instrument_id=" in r.stdout
    r = run_cli("verify", os.path.join(TD, "00000000.1.journal"))
    assert r.returncode == 0 and "5,001 valid frame(s)" in r.stdout


def test_recover_never_writes_into_a_kungfu_journal(kf_home):
    folder = os.path.join(kf_home, "runtime", "td", "sim", "acct1", "journal", "live")
    before = {n: open(os.path.join(folder, n), "rb").read() for n in os.listdir(folder)}
    r = run_cli("recover", "--in-place", folder)
    assert r.returncode == 2 and "Kungfu journal" in r.stderr and r.stderr.count("\n") == 1
    assert {n: open(os.path.join(folder, n), "rb").read() for n in os.listdir(folder)} == before


def test_export_typed_parquet_with_list_columns(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = tmp_path / "td.parquet"
    r = run_cli("export", TD, out)
    assert r.returncode == 0, r.stderr
    t = pq.read_table(out)
    want = manifest("td-sim-acct1")
    assert t.num_rows == len(want)
    assert t.schema.field("bid_price").type == pa.list_(pa.float64(), 10)
    assert t.schema.field("ask_volume").type == pa.list_(pa.int64(), 10)
    assert t.schema.field("instrument_id").type == pa.string() and t.schema.field("is_swap").type == pa.bool_()
    rows = t.select(["page", "offset", "msg_type", "instrument_id", "last_price", "limit_price", "price"]).to_pylist()
    for row, m in zip(rows, want, strict=True):
        assert (row["page"], row["offset"], row["msg_type"]) == (m["page"], m["offset"], m["msg_type"])
        if m["msg_type"] != 10001:
            assert row["instrument_id"] == m["instrument_id"]
            assert row[PRICE_FIELD.get(m["msg_type"], "price")] == m["price"]
    with kftools.Reader(TD) as rd:
        quotes = np.concatenate([b.payload(101) for b in rd.batches(types=[101])])
    got = t.filter(pa.compute.equal(t["msg_type"], 101))
    assert got.column("bid_price").to_pylist() == quotes["bid_price"].tolist()


def test_export_a_kf_home_is_one_dataset_named_by_location(tmp_path):
    import duckdb

    out = tmp_path / "ds"
    r = run_cli("export", KF_HOME, out)
    assert r.returncode == 0, r.stderr
    counts = dict(duckdb.sql(
        f"select journal, count(*) from read_parquet('{out}/**/*.parquet', hive_partitioning=true) group by 1").fetchall())
    assert counts == {"td/sim/acct1/live/00000000": 5001, "strategy/default/demo/live/00000000": 801}


def test_a_kf_home_is_every_journal_merged_by_gen_time():
    from kftools.journal.merge import MergedReader

    td, strat = manifest("td-sim-acct1"), manifest("strategy-default-demo")
    with MergedReader([KF_HOME]) as m:
        assert m.journals == ["strategy/default/demo/live/00000000", "td/sim/acct1/live/00000000"]
        got = [(f.journal, f.gen_time, f.page_index, f.offset) for f in m]
    want = sorted([("td/sim/acct1/live/00000000", x["gen_time"], x["page"], x["offset"]) for x in td]
                  + [("strategy/default/demo/live/00000000", x["gen_time"], x["page"], x["offset"]) for x in strat],
                  key=lambda w: (w[1], w[0] != "strategy/default/demo/live/00000000"))
    assert len(got) == 5802 and sorted(got, key=lambda g: g[1]) == got
    assert sorted(got) == sorted(want)
    r = run_cli("cat", KF_HOME, "-F", "jsonl", "--symbol", "rb2405", "--type", "Quote")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    n = sum(1 for x in td + strat if x["instrument_id"] == "rb2405" and x["msg_type"] == 101)
    assert len(rows) == n and [x["gen_time"] for x in rows] == sorted(x["gen_time"] for x in rows)
    assert {x["journal"] for x in rows} == {"td/sim/acct1/live/00000000", "strategy/default/demo/live/00000000"}
    r = run_cli("verify", KF_HOME)
    assert r.returncode == 0 and "td/sim/acct1/live/00000000" in r.stdout and "total: 2 journals" in r.stdout


@pytest.mark.parametrize("pace", [["--max"], ["--speed", "1000000"]])  # paced: the C pacer, frames re-headed
def test_replay_into_a_kftools_journal_keeps_every_payload(tmp_path, pace):
    from kftools.journal.schemas import load_registry

    out = tmp_path / "td.replay.dat"
    r = run_cli("replay", os.path.join(TD, "00000000.1.journal"), *pace, "-o", out)
    assert r.returncode == 0, r.stderr
    with kftools.Reader(TD) as src:
        want = [(f.msg_type, f.gen_time, f.source, f.dest, f.payload) for f in src]
    with kftools.Reader(out, registry=load_registry(["kungfu"])) as rep:
        got = list(rep)
        assert [(f.msg_type, f.trigger_time, f.source, f.dest, f.payload) for f in got] == want
        assert got[1].type_name == "Quote" and got[1].instrument_id == "000001"
    r = run_cli("cat", out, "--schema", "kungfu", "--type", "Trade", "-n", "1", "-F", "jsonl")
    assert r.returncode == 0 and json.loads(r.stdout)["side"] in ("Buy", "Sell")
    # issue 24 item 30: the output says which types it holds (<out>.types): no --schema needed to read it
    assert json.loads((tmp_path / "td.replay.dat.types").read_text()) == {"types": "kungfu-2.4"}
    r = run_cli("cat", out, "--type", "Quote", "-n", "1", "-F", "jsonl")
    assert r.returncode == 0 and json.loads(r.stdout)["instrument_id"], r.stderr
    with kftools.Reader(out) as rep:
        assert [f.type_name for f in rep][1] == "Quote"
    assert run_cli("replay", os.path.join(TD, "00000000.1.journal"), *pace, "-o", out, "--force").returncode == 0
    (tmp_path / "elsewhere.dat.types").write_text('{"types": "kungfu-99"}')
    os.link(out, tmp_path / "elsewhere.dat")
    r = run_cli("info", tmp_path / "elsewhere.dat")
    assert r.returncode != 0 and "kungfu-99" in r.stderr and r.stderr.count("\n") == 1


@pytest.mark.parametrize("gen", kf.GENERATIONS, ids=lambda g: g.name)
def test_follow_a_growing_kungfu_journal_across_pages(tmp_path, gen):
    import threading

    folder = str(tmp_path / "td" / "sim" / "a" / "journal" / "live")
    w = KungfuTestWriter(folder, page_size=1 << 14, generation=gen)  # ~100 Entrusts a page
    w.write(10001, b"", 1)  # the first page exists before the follower opens it
    total = 600
    go = threading.Event()
    entrust = gen.msg_types.__members__.get("Entrust", 102)
    size = gen.registry.get(int(entrust)).layout.size if gen.registry.get(int(entrust)) else kf.ENTRUST.size

    def write():
        go.wait(60)
        for i in range(total):
            w.write(int(entrust), i.to_bytes(4, "little") + bytes(size - 4), 10 + i)
        w.close()

    t = threading.Thread(target=write)
    t.start()
    got = []
    with kftools.Reader(folder) as r:
        for f in r.follow("beginning", "sleep", idle_timeout=60):
            got.append((f.page_index, f.gen_time, f.payload[:4]))
            if len(got) == 1:
                go.set()  # the follower is running: now the writer goes
            if len(got) == total + 1:
                break
        assert r.damage is None
    t.join(60)
    assert w.page_id >= 5
    assert [g for _p, g, _d in got] == [1] + [10 + i for i in range(total)]
    assert [int.from_bytes(d, "little") for _p, _g, d in got[1:]] == list(range(total))
    assert {p for p, _g, _d in got} == set(range(1, w.page_id + 1))


def _a_page_being_made(tmp_path, monkeypatch):
    """A Kungfu journal whose writer has just created page 2 (all zero), and a PageSet.page that lets the
    writer finish it (header written, page 1 sealed: its own rollover) right after a reader found it unwritten."""
    from kftools.journal.page import NotYetWritten
    from kftools.journal.pages import PageSet

    folder = str(tmp_path / "td" / "sim" / "a" / "journal" / "live")
    w = KungfuTestWriter(folder, page_size=1 << 14)
    entrust = bytes(kf.ENTRUST.size)
    w.write(102, entrust, 1)
    made = w.journal.page_path(2)
    fd = os.open(made, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    os.ftruncate(fd, 1 << 14)
    os.close(fd)
    real = PageSet.page
    raced: list[int] = []

    def page_while_the_writer_goes_on(self, index):
        try:
            return real(self, index)
        except NotYetWritten:
            if not raced:
                raced.append(index)
                os.unlink(made)
                while w.page_id == 1:
                    w.write(102, entrust, 2)
            raise

    return folder, w, raced, lambda: monkeypatch.setattr(PageSet, "page", page_while_the_writer_goes_on)


def test_a_page_its_writer_finishes_while_the_follower_looks_is_not_damage(tmp_path, monkeypatch):
    # Kungfu's writer makes its next page in place: created (all zero), header written, then the page before
    # sealed with PageEnd. A follower that finds the header unwritten and only then sees the seal raced it.
    folder, w, raced, race = _a_page_being_made(tmp_path, monkeypatch)
    with kftools.Reader(folder) as r:
        first = r.pages.page(r.pages.first)
        race()
        nxt, problem = r.pages.successor(first)
        assert raced and first.sealed
        assert problem is None
        assert nxt is None or nxt.index == 2
        monkeypatch.undo()
        assert [f.gen_time for f in r][-1] == 2 and r.damage is None
    w.close()


def test_the_end_of_a_journal_whose_last_page_is_finished_meanwhile_is_not_damage(tmp_path, monkeypatch):
    folder, w, raced, race = _a_page_being_made(tmp_path, monkeypatch)
    with kftools.Reader(folder) as r:
        r.pages.page(r.pages.first)
        race()
        end = r.pages.end_position()
        assert raced
        monkeypatch.undo()
        assert end[0] == 2 and end[1] > r.pages.page(2).frame_start  # the frame the writer put there
    w.close()


# -- trust pass (issue 24 items 7, 8, 11) ------------------------------------------------------------------------


def test_a_page_end_in_the_middle_of_a_page_is_damage_not_the_end_of_the_page(kf_home):
    """Kungfu writes PageEnd only as a page's last frame: valid frames after one are damage, reported where."""
    folder = os.path.join(kf_home, "runtime", "td", "sim", "acct1", "journal", "live")
    on_1 = [m for m in manifest("td-sim-acct1") if m["page"] == 1]
    k = len(on_1) // 2
    with open(os.path.join(folder, "00000000.1.journal"), "r+b") as fh:  # frame k becomes a PageEnd
        fh.seek(on_1[k]["offset"] + kf.FRAME_HEADER.offset("msg_type"))
        fh.write(struct.pack("<i", kf.MsgType.PageEnd))
    r = run_cli("verify", folder)
    where = f"page 1 offset {on_1[k + 1]['offset']}: a frame follows the PageEnd at offset {on_1[k]['offset']}"
    assert r.returncode == 3 and where in r.stdout, r.stdout + r.stderr
    with kftools.Reader(folder) as rd:
        assert len(list(rd)) == k and where in str(rd.damage)
    r = run_cli("cat", folder, "-F", "jsonl")
    assert r.returncode == 3 and len(r.stdout.splitlines()) == k and where in r.stderr


def test_symlinked_folders_under_a_kf_home_are_followed_once(kf_home, tmp_path):
    """A category on another disk (a symlinked folder) is read; a link back up the tree is not walked twice."""
    runtime = os.path.join(kf_home, "runtime")
    elsewhere = str(tmp_path / "other-disk")
    os.makedirs(elsewhere)
    shutil.move(os.path.join(runtime, "strategy"), os.path.join(elsewhere, "strategy"))
    os.symlink(os.path.join(elsewhere, "strategy"), os.path.join(runtime, "strategy"))
    os.symlink("..", os.path.join(elsewhere, "strategy", "default", "loop"))  # a loop
    os.symlink(os.path.join(runtime, "td"), os.path.join(runtime, "td-again"))  # the same folder twice
    r = run_cli("info", kf_home, "--json")
    assert r.returncode == 0, r.stderr
    assert sorted(j["path"] for j in json.loads(r.stdout)["journals"]) == sorted(SAMPLES)
    r = run_cli("verify", kf_home)
    assert r.returncode == 0 and "strategy/default/demo/live/00000000" in r.stdout, r.stdout + r.stderr
    out = str(tmp_path / "all.parquet")
    r = run_cli("export", kf_home, out)
    assert r.returncode == 0 and "5,802 rows" in r.stdout + r.stderr, r.stdout + r.stderr


@pytest.mark.parametrize("command", ["info", "verify", "cat", "export"])
def test_a_page_file_shorter_than_its_page_size_is_read_and_reported(kf_home, tmp_path, command):
    """A copy cut short (zeros after the frames, the file smaller than page_size) ends; no 100% CPU spin."""
    page = os.path.join(kf_home, "runtime", "strategy", "default", "demo", "journal", "live", "00000000.1.journal")
    last = manifest("strategy-default-demo")[-1]
    with open(page, "rb") as fh:
        length = struct.unpack_from("<I", fh.read(last["offset"] + 4), last["offset"])[0]
    os.truncate(page, last["offset"] + length + 4096)
    args = [str(tmp_path / "out.parquet")] if command == "export" else []
    r = run_cli(command, page, *args, timeout=60)  # the timeout only fires on the old spin
    assert r.returncode == 3, r.stdout + r.stderr
    said = [line for line in (r.stdout + r.stderr).splitlines() if "its header says 1,048,576 (truncated?)" in line]
    assert said and all(page in line for line in said if "kftools:" in line)
    if command == "cat":
        assert len(r.stdout.splitlines()) == 801
    if command == "verify":
        assert "801 valid frame(s)" in r.stdout


def test_a_types_file_beside_a_new_output_is_never_replaced_unasked(tmp_path):
    out = tmp_path / "o.dat"
    (tmp_path / "o.dat.types").mkdir()  # not a file kftools wrote: nothing may replace it
    r = run_cli("replay", os.path.join(TD, "00000000.1.journal"), "--max", "-o", out)
    assert r.returncode == 2 and "o.dat.types" in r.stderr and r.stderr.count("\n") == 1
    assert not out.exists() and (tmp_path / "o.dat.types").is_dir()
