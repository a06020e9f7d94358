"""Writer and reader through the public API: round trips, pages, resume, locking, read-only."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kftest import SAMPLES, copy_journal

import kftools
from kftools import JournalLocked, Reader, Writer
from kftools.errors import CorruptJournal, FrameTooLarge, UsageError
from kftools.journal.format import ACK, BUILTIN_LAYOUTS, FRAME_HEADER, ORDER, TICKER, TRADE, page_path
from kftools.journal.registry import TypeRegistry
from kftools.journal.scan import IMPLEMENTATIONS

SYM = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.", min_size=1, max_size=16)
F64 = st.floats(allow_nan=False, width=64)
U32 = st.integers(0, 2**32 - 1)
U64 = st.integers(0, 2**64 - 1)
I64 = st.integers(-(2**63), 2**63 - 1)
PAD = st.integers(0, 200)

ticker = st.fixed_dictionaries({
    "kind": st.just("ticker"), "symbol": SYM, "last_price": F64, "bid_price": F64, "ask_price": F64, "volume": F64,
    "padding": PAD})
order = st.fixed_dictionaries({
    "kind": st.just("order"), "symbol": SYM, "order_id": U64, "side": st.integers(0, 1),
    "order_type": st.integers(0, 1), "price": F64, "quantity": F64, "filled_quantity": F64,
    "client_order_id": st.text(alphabet="abcdef0123456789-", max_size=32), "padding": PAD})
trade = st.fixed_dictionaries({
    "kind": st.just("trade"), "symbol": SYM, "trade_id": U64, "price": F64, "volume": F64, "side": st.integers(0, 1),
    "order_id": U64, "padding": PAD})
ack = st.fixed_dictionaries({"kind": st.just("ack"), "frames": U64, "padding": st.just(0)})
raw = st.fixed_dictionaries({
    "kind": st.just("raw"), "msg_type": st.integers(max(BUILTIN_LAYOUTS) + 1, 2**32 - 1),  # unregistered types
    "payload": st.binary(max_size=300)})
frames_st = st.lists(
    st.tuples(st.one_of(ticker, order, trade, ack, raw), I64, I64, U32, U32), min_size=0, max_size=60)


def _write(w: Writer, spec, gen_time, trigger_time, source, dest):
    d = dict(spec)
    kind = d.pop("kind")
    hdr = dict(gen_time=gen_time, trigger_time=trigger_time, source=source, dest=dest)
    if kind == "ticker":
        w.write_ticker(**d, **hdr)
    elif kind == "order":
        w.write_order(**d, **hdr)
    elif kind == "trade":
        w.write_trade(**d, **hdr)
    elif kind == "ack":
        w.write_ack(d["frames"], **hdr)
    else:
        w.write(d["msg_type"], d["payload"], **hdr)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frames=frames_st, page_kib=st.sampled_from([4, 8, 64]))
def test_round_trip_every_type_and_padding(tmp_path_factory, frames, page_kib):
    path = str(tmp_path_factory.mktemp("rt") / "j.dat")
    with Writer(path, page_size=page_kib * 1024) as w:
        for spec, gt, tt, src, dst in frames:
            _write(w, spec, gt, tt, src, dst)
    with Reader(path) as r:
        got = list(r)
        assert r.damage is None
        assert len(got) == len(frames)
        for f, (spec, gt, tt, src, dst) in zip(got, frames, strict=False):
            assert (f.gen_time, f.trigger_time, f.source, f.dest) == (gt, tt, src, dst)
            kind = spec["kind"]
            if kind == "raw":
                assert f.msg_type == spec["msg_type"] and f.payload == spec["payload"]
                assert f.fields == {}
                continue
            layout = {"ticker": TICKER, "order": ORDER, "trade": TRADE, "ack": ACK}[kind]
            assert f.type_name == layout.name
            assert f.length == layout.size + spec["padding"]
            assert f.payload[layout.size:] == bytes(spec["padding"])
            for k, v in spec.items():
                if k in ("kind", "padding"):
                    continue
                assert getattr(f, k) == v, k
        # batch access sees the same frames as iteration
        arr = r.read_batch()
        assert arr["gen_time"].tolist() == [f.gen_time for f in got]
        assert arr["length"].tolist() == [f.length for f in got]


@settings(max_examples=60, deadline=None)
@given(data=st.binary(min_size=0, max_size=3000), start=st.integers(0, 100),
       mins=st.lists(st.integers(0, 300), max_size=8))
def test_scanner_implementations_agree_on_any_bytes(data, start, mins):
    table = np.array(mins, dtype="<u4").tobytes()
    results = []
    for scan, _gather, _ in IMPLEMENTATIONS.values():
        out = np.zeros(512, dtype=np.int64)
        n, nxt, err = scan(data, start, len(data), out, table)
        results.append((n, nxt, err, out[:n].tolist()))
    assert all(r == results[0] for r in results)


def test_scanner_stops_at_a_payload_shorter_than_its_layout():
    frame = struct.pack("<IIqqII", 8, 1, 0, 0, 0, 0) + bytes(8)  # a "Ticker" of 8 bytes
    ok = struct.pack("<IIqqII", 0, 9, 0, 0, 0, 0)
    data = ok + frame
    table = np.array([0, 48], dtype="<u4").tobytes()
    for scan, _gather, _ in IMPLEMENTATIONS.values():
        out = np.zeros(8, dtype=np.int64)
        assert scan(data, 0, len(data), out, table) == (1, 32, 4)
        assert scan(data, 0, len(data), out) == (2, len(data), 0)  # no table: not checked


@pytest.mark.parametrize("damage_at", [None, 3, 70_000, 139_999])
def test_a_long_walk_of_a_mapped_file_populates_ahead_and_finds_what_the_twin_finds(tmp_path, damage_at):
    """The C walk maps a long range in ahead of itself (a chunk at a time): the frames it finds, where it stops and
    why are the Python twin's, on a mapped file past several chunks, from any start, up to any count."""
    import mmap

    n, payload = 140_000, 64
    lengths = np.full(n, payload, "<u4")
    lengths[::7] = 8  # frames of two sizes: chunk ends fall inside frames
    sizes = 32 + lengths.astype(np.int64)
    offs = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    data = np.zeros(int(sizes.sum()), np.uint8)
    data[(offs[:, None] + np.arange(4)).ravel()] = lengths.view(np.uint8)
    types = np.full(n, 2, "<u4")
    if damage_at is not None:
        types[damage_at] = 0
    data[(offs[:, None] + 4 + np.arange(4)).ravel()] = types.view(np.uint8)
    path = tmp_path / "long.bin"
    data.tofile(path)
    assert len(data) > 9 << 20  # past two chunks of the walk's populate
    table = np.array([0, 0, 8], dtype="<u4").tobytes()
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        for start, cap, populate in ((0, n, 0), (int(offs[1000]), n, 0), (0, 50_000, 5 << 20), (int(offs[-5]), n, 0),
                                     (0, n, -1)):
            got = []
            for scan, _gather, _ in IMPLEMENTATIONS.values():
                out = np.zeros(cap, dtype=np.int64)
                k, nxt, err = scan(mm, start, len(mm), out, table, 32, 4, 0, 0, populate)
                got.append((k, nxt, err, out[:k].tobytes()))
            assert got[0] == got[-1]
            first = int(np.searchsorted(offs, start))
            stop = n if damage_at is None or damage_at < first else damage_at
            k = min(cap, stop - first)
            assert got[0][:3] == (k, int(offs[first + k]) if first + k < n else len(data),
                                  3 if k < cap and stop < n else 0)


@pytest.mark.parametrize("sample", SAMPLES, ids=os.path.basename)
def test_scanner_implementations_agree_on_samples(sample):
    with open(sample, "rb") as fh:
        data = fh.read()
    cursor = struct.unpack_from("<I", data)[0]
    got = []
    for scan, gather, _gather_var in IMPLEMENTATIONS.values():
        out = np.zeros(5000, dtype=np.int64)
        n, nxt, err = scan(data, 64, cursor, out)
        hdr = np.zeros(n * 32, dtype=np.uint8)
        gather(data, out[:n], 0, 32, hdr)
        got.append((n, nxt, err, hdr.tobytes()))
    assert got[0] == got[-1]


def test_user_type_registered_with_dtype(tmp_path):
    reg = TypeRegistry()
    reg.register(150, "BookLevel", np.dtype([("symbol", "S16"), ("level", "<u4"), ("px", "<f8")]))
    p = str(tmp_path / "u.dat")
    with Writer(p, registry=reg, page_size=8192) as w:
        w.write("BookLevel", symbol="ES", level=3, px=4321.25)
        rec = np.zeros((), dtype=reg.get(150).layout.dtype)
        rec["symbol"], rec["level"], rec["px"] = b"NQ", 1, 1.5
        w.write(150, rec.tobytes())
    with Reader(p, registry=reg) as r:
        a, b = list(r)
        assert (a.type_name, a.symbol, a.level, a.px) == ("BookLevel", "ES", 3, 4321.25)
        assert b.fields == {"symbol": "NQ", "level": 1, "px": 1.5}
        batch = next(r.batches())
        assert batch.payload(150)["px"].tolist() == [4321.25, 1.5]
    with Reader(p) as r:  # without the registration the frames stay readable as bytes
        a, _ = list(r)
        assert a.type_name == "type150" and a.fields == {} and len(a.payload) == 28


def test_writer_on_an_existing_journal_needs_append(tmp_path):
    p = str(tmp_path / "j.dat")
    with Writer(p, page_size=4096) as w:
        w.write_ticker("A", 1.0)
    before = {f: open(tmp_path / f, "rb").read() for f in os.listdir(tmp_path)}
    with pytest.raises(kftools.OutputError, match=r"j\.dat: a journal exists here already; pass append=True"):
        Writer(p)
    assert {f: open(tmp_path / f, "rb").read() for f in os.listdir(tmp_path)} == before  # nothing written
    with Writer(p, append=True) as w:  # the refusal let go of the lock
        w.write_ticker("A", 2.0)
    assert [f.last_price for f in Reader(p)] == [1.0, 2.0]


def test_follow_names_the_start_words_it_takes(tmp_path):
    p, q = str(tmp_path / "j.dat"), str(tmp_path / "k.dat")
    for path in (p, q):
        with Writer(path) as w:
            w.write_ticker("A", 1.0)
    for follow in (Reader(p).follow, Reader(p).follow_batches, kftools.MergedReader([p, q]).follow_batches):
        with pytest.raises(UsageError, match="bad follow start 'start': 'beginning', 'end'"):
            follow("start")
    assert next(Reader(p).follow("beginning")).last_price == 1.0


def test_writer_resumes_after_last_committed_frame(tmp_path):
    p = str(tmp_path / "j.dat")
    with Writer(p, page_size=4096) as w:
        for i in range(100):
            w.write_ticker("A", i)
    with Reader(p) as r:
        before = {i: r.page(i).mm[64 : r.page(i).cursor] for i in range(r.page_count())}
    with Writer(p, append=True) as w:
        assert w.page_size == 4096  # the existing page size is kept
        for i in range(100, 150):
            w.write_ticker("A", i)
    with Reader(p) as r:
        assert [f.last_price for f in r] == list(range(150))
        # every committed byte written before is unchanged
        for i, data in before.items():
            assert r.page(i).mm[64 : 64 + len(data)] == data


def test_rollover_pages_are_complete_and_named(tmp_path):
    p = str(tmp_path / "j.dat")
    with Writer(p, page_size=4096) as w:
        for i in range(500):
            w.write_order("X", i, 0, 0, 1.0, 1.0, 0.0, f"c{i}")
        assert w.page_index >= 3
    with Reader(p) as r:
        assert [f.order_id for f in r] == list(range(500))
        n = r.page_count()
        for i in range(n):
            page = r.page(i)
            assert page.path == page_path(p, i) and page.header()["page_index"] == i
            assert page.sealed == (i < n - 1)
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_frame_larger_than_a_page_is_refused(tmp_path):
    with Writer(str(tmp_path / "j.dat"), page_size=4096) as w:
        with pytest.raises(FrameTooLarge, match="does not fit"):
            w.write(9, bytes(5000))
        w.write_ticker("OK", 1.0)
    assert [f.symbol for f in Reader(str(tmp_path / "j.dat"))] == ["OK"]


def test_bad_writer_arguments(tmp_path):
    with pytest.raises(UsageError, match="page size"):
        Writer(str(tmp_path / "j.dat"), page_size=100)
    with Writer(str(tmp_path / "k.dat"), page_size=4096) as w:
        with pytest.raises(UsageError, match="longer than 16"):
            w.write_ticker("X" * 17, 1.0)
        with pytest.raises(UsageError, match="msg_type 0"):
            w.write(0, b"")


@pytest.fixture(scope="module")
def paged_journal(tmp_path_factory):
    """300 frames of two types and three symbols over 4 KiB pages (sealed ones summarised by the writer)."""
    p = str(tmp_path_factory.mktemp("last") / "j.dat")
    with Writer(p, page_size=4096) as w:
        for i in range(300):
            sym = ("A", "B", "C")[i % 3]
            if i % 4 == 3:
                w.write_order(sym, i, 0, 0, float(i), 1.0, 0.0, f"c{i}")
            else:
                w.write_ticker(sym, float(i))
    return p


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 320), types=st.sampled_from([None, "ticker", "order"]),
       symbols=st.sampled_from([None, "A", "B,C"]), batch=st.sampled_from([None, 1, 7]))
def test_last_n_are_the_last_n_of_the_walk(paged_journal, n, types, symbols, batch):
    """``last(n)`` (``cat -n``) gives the frames the whole walk ends with, across pages, batches and filters."""
    with Reader(paged_journal) as r:
        every = [(f.page_index, f.offset) for f in r.frames(types=types, symbols=symbols)]
        if batch is not None:  # batches of a few frames: the last n span several
            batches = r.batches
            r.batches = lambda **kw: batches(batch_size=batch, **kw)  # type: ignore[method-assign]
        got = [(f.page_index, f.offset) for f in r.last(n, types=types, symbols=symbols)]
    assert got == (every[-n:] if n else [])


def test_start_from_time_and_end(tmp_path):
    p = str(tmp_path / "j.dat")
    with Writer(p, page_size=4096) as w:
        for i in range(200):
            w.write_ticker("A", i, gen_time=1_000 + i)
    with Reader(p) as r:
        assert [f.last_price for f in r.frames(start_time=1_150)] == list(range(150, 200))
        assert [f.last_price for f in r.frames(start_time=1_010, end_time=1_012)] == [10, 11, 12]
        assert [f.last_price for f in r.last(3)] == [197, 198, 199]
        assert list(r.follow("end", idle_timeout=0.05)) == []
        assert [f.last_price for f in r.follow(1_198, idle_timeout=0.05)] == [198, 199]


def test_second_writer_is_refused_with_the_holders_pid(tmp_path):
    p = str(tmp_path / "j.dat")
    with Writer(p, page_size=4096):
        with pytest.raises(JournalLocked, match=f"pid {os.getpid()}"):
            Writer(p)
    with Writer(p, append=True):  # released on close
        pass


def test_lock_does_not_outlive_a_killed_writer(tmp_path):
    p = str(tmp_path / "j.dat")
    code = (f"import kftools,time,sys; w=kftools.Writer({p!r}, page_size=4096); w.write_ticker('A',1.0); "
            "print('ready', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        with pytest.raises(JournalLocked, match=f"pid {proc.pid}"):
            Writer(p)
        with Reader(p) as r:
            assert r.writer_state() == ("alive", proc.pid)
    finally:
        proc.kill()
        proc.wait()
    with Reader(p) as r:
        assert r.writer_state() == ("crashed", proc.pid)
    with Writer(p, append=True) as w:
        w.write_ticker("B", 2.0)
    with Reader(p) as r:
        assert [f.symbol for f in r] == ["A", "B"]
        assert r.writer_state()[0] == "exited"


def test_writer_refuses_to_append_after_damage(tmp_path):
    p = copy_journal([s for s in SAMPLES if s.endswith("damaged.dat")][0], str(tmp_path))
    before = open(p, "rb").read()
    with pytest.raises(CorruptJournal, match="kftools recover"):
        Writer(p, append=True)
    assert open(p, "rb").read() == before


def test_writer_refuses_a_file_that_is_not_a_journal(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_bytes(b"hello world, this is not a journal at all. " * 10)
    before = p.read_bytes()
    with pytest.raises(kftools.NotAJournal):
        Writer(str(p), append=True)
    assert p.read_bytes() == before


@pytest.mark.parametrize("sample", SAMPLES, ids=os.path.basename)
def test_readers_never_modify_the_journal(sample, tmp_path):
    p = copy_journal(sample, str(tmp_path))
    files = sorted(os.path.join(tmp_path, f) for f in os.listdir(tmp_path))
    os.utime(p, ns=(1_000_000_000, 1_000_000_000))
    state = {f: (hashlib.sha256(open(f, "rb").read()).hexdigest(), os.stat(f).st_mtime_ns) for f in files}
    os.chmod(p, 0o444)  # read-only commands must not even need write permission
    try:
        with Reader(p) as r:
            list(r)
            r.read_batch()
            r.writer_state()
            list(r.follow("beginning", idle_timeout=0.02))
        kftools.verify(p)
    finally:
        os.chmod(p, 0o644)
    assert state == {f: (hashlib.sha256(open(f, "rb").read()).hexdigest(), os.stat(f).st_mtime_ns) for f in files}


def test_many_readers_at_once(tmp_path):
    p = str(tmp_path / "j.dat")
    with Writer(p, page_size=8192) as w:
        for i in range(300):
            w.write_ticker("A", i)
    readers = [Reader(p) for _ in range(20)]
    assert all([f.last_price for f in r] == list(range(300)) for r in readers)
    for r in readers:
        r.close()


def test_frames_stay_valid_while_reader_is_open_and_time_passes(tmp_path):
    p = str(tmp_path / "j.dat")
    with Writer(p, page_size=4096) as w:
        w.write_ticker("A", 1.0)
        r = Reader(p)
        first = next(iter(r))
        for i in range(300):  # roll many pages; the old frame still decodes
            w.write_ticker("B", float(i))
        time.sleep(0.01)
        assert first.symbol == "A"
        r.close()


def test_first_page_whose_creator_died_before_the_version_is_waited_for_then_reinitialised(tmp_path):
    from kftools.journal.format import MAGIC, PAGE_HEADER

    p = tmp_path / "j.dat"
    # what a writer killed between the header write and the version write leaves
    p.write_bytes(PAGE_HEADER.struct.pack(64, 0, 8192, 0, MAGIC, 0, 4_000_000, 0, 0, b"") + bytes(8192 - 64))
    with pytest.raises(kftools.NotAJournal, match="not written yet"):
        Reader(p)
    with Writer(p) as w:
        w.write_ticker("A", 1.0)
    assert [f.symbol for f in Reader(p)] == ["A"]


def test_writer_resumes_a_truncated_last_page_by_rolling_over(tmp_path):
    p = str(tmp_path / "j.dat")
    with Writer(p, page_size=8192) as w:
        for i in range(20):
            w.write_ticker("A", float(i))
    os.truncate(p, 4096)  # cursor (1664) still inside the file
    with Writer(p, append=True) as w:
        for i in range(20, 200):
            w.write_ticker("A", float(i))
    with Reader(p) as r:
        assert [f.last_price for f in r] == list(range(200)) and r.damage is None


@pytest.mark.parametrize("filtered", [False, True])
def test_raw_frames_are_the_frames_bytes(tmp_path, filtered):
    p = str(tmp_path / "j.dat")
    with Writer(p, page_size=1 << 16) as w:
        for i in range(50):
            w.write_ticker("A" if i % 3 else "B", float(i), padding=i % 5)
    with Reader(p) as r:
        (batch,) = list(r.batches(symbols=["A"] if filtered else None))
        data, starts = batch.raw_frames()
        frames = batch.frames()
        assert [bytes(data[a:b]) for a, b in zip(starts[:-1], starts[1:], strict=True)] == [f.raw for f in frames]
        data[:4] = 0  # a copy: the journal is untouched
        assert next(iter(r)).length == 48


def test_writer_state_is_a_named_state_that_prints_as_before(tmp_path):
    """Every writer_state() answers a WriterState (a StrEnum): compared by name or by its old string, and shown
    by info (text and JSON) exactly as the strings were."""
    from kftest import run_cli

    from kftools import WriterState

    closed, crashed, live = (str(tmp_path / f"{n}.dat") for n in ("closed", "crashed", "live"))
    with Writer(closed, page_size=4096) as w:
        w.write_ticker("A", 1.0)
    subprocess.run([sys.executable, "-c", f"import kftools,os; w=kftools.Writer({crashed!r}, page_size=4096); "
                    "w.write_ticker('A',1.0); os._exit(0)"], check=True)
    code = (f"import kftools,sys; w=kftools.Writer({live!r}, page_size=4096); w.write_ticker('A',1.0); "
            "print('ready', flush=True); sys.stdin.read()")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        want = {closed: WriterState.EXITED, crashed: WriterState.CRASHED, live: WriterState.ALIVE}
        for path, state in want.items():
            with Reader(path) as r:
                got, _pid = r.writer_state()
            assert got is state and got == state.value
            d = json.loads(run_cli("info", "--json", path).stdout)
            assert d["writer_state"] == state.value
            assert f"writer          {state.value} (pid " in run_cli("info", path).stdout
        with kftools.open_many(list(want)) as m:
            assert [s for s, _pid in m.writer_state()] == list(want.values())
            assert all(isinstance(s, WriterState) for s, _pid in m.writer_state())
    finally:
        proc.stdin.close()
        proc.wait()


def test_batch_headers_are_copied_when_asked_and_every_field_reads_the_same(paged_journal):
    """A batch's headers are copied from the page when first asked for; one field alone (``column``), the whole
    headers, a selection before or after the copy, and the frames themselves all read the same values."""
    with Reader(paged_journal) as r:
        frames = list(r)
        got, cols = [], {name: [] for name in FRAME_HEADER.names}
        for b in r.batches(batch_size=50):
            part = b.select(slice(3, None))  # selected before its headers were copied
            for name in FRAME_HEADER.names:
                cols[name].extend(b.column(name).tolist())  # before the headers are copied
                assert part.column(name).tolist() == b.headers[name][3:].tolist() == part.headers[name].tolist()
            got.extend(b.headers.tolist())
    assert got == [tuple(getattr(f, name) for name in FRAME_HEADER.names) for f in frames]
    assert all(cols[name] == [getattr(f, name) for f in frames] for name in FRAME_HEADER.names)
