"""The per-frame path (kftools.journal.framestream): the C frames and stream and their Python twin, run alike.

Every test runs once per implementation; the property tests also check that
per-frame reading agrees with the batch (numpy) path, which does not use it.
"""

from __future__ import annotations

import mmap
import os
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kftools import Reader, Writer
from kftools.journal import framestream, scan
from kftools.journal.format import FRAME_HEADER, PAGE_HEADER_SIZE, page_path
from kftools.journal.registry import TypeRegistry

HYP = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(params=sorted(framestream.IMPLEMENTATIONS))
def impl(request):
    """Readers use this implementation's frames for the test."""
    framestream.use(request.param)
    yield request.param
    framestream.use("c" if framestream.NATIVE else "python")


def test_the_c_frames_are_built_with_the_c_scanner():
    # setup.py builds both extensions: a missing one here means it was left out of the build
    assert framestream.NATIVE == scan.NATIVE


FRAME = st.one_of(
    st.tuples(st.just("ticker"), st.integers(0, 40)),
    st.tuples(st.just("order"), st.integers(0, 40)),
    st.tuples(st.just("raw"), st.integers(0, 120)),
    st.tuples(st.just("quote"), st.integers(0, 8)),
    st.tuples(st.just("big"), st.integers(0, 8)),
)


def _registry() -> TypeRegistry:
    reg = TypeRegistry()
    reg.register(100, "Quote", [("symbol", "char[8]"), ("bid", "f64"), ("ask", "f64")])
    reg.register(70000, "Big", [("x", "u64")])  # past the scanner's length table
    return reg


def _write(w: Writer, i: int, kind: str, pad: int) -> None:
    hdr = dict(gen_time=1_000_000 + i * 7, trigger_time=-i, source=i % 3, dest=i % 5)
    if kind == "ticker":
        w.write_ticker(f"S{i % 4}", float(i), i + 0.5, i + 1.5, 1e-3 * i, padding=pad, **hdr)
    elif kind == "order":
        w.write_order(symbol=f"S{i % 4}", order_id=i, side=i % 2, order_type=1, price=i / 3, quantity=2.0,
                      filled_quantity=0.0, client_order_id=f"c{i}", padding=pad, **hdr)
    elif kind == "quote":
        w.write(100, struct.pack("<8sdd", b"Q%d" % i, i * 0.25, i * 0.5) + bytes(pad), **hdr)
    elif kind == "big":
        w.write(70000, struct.pack("<Q", i), padding=pad, **hdr)
    else:
        w.write(1000 + pad, bytes(range(pad % 256))[:pad], **hdr)


def _seen(f) -> tuple:
    return (f.page_index, f.offset, f.length, f.msg_type, f.gen_time, f.trigger_time, f.source, f.dest,
            f.type_name, f.raw, f.to_dict())


def _batch_reference(r: Reader, **filters) -> list[tuple]:
    """What the batch path says the frames are (no per-frame code involved)."""
    out = []
    reg = r.registry
    for b in r.batches(**filters):
        mm = b.page.mm
        for off, h in zip(b.offsets.tolist(), b.headers.tolist(), strict=True):
            length, mt = h[0], h[1]
            payload = bytes(mm[off + 32 : off + 32 + length])
            mtype = reg.get(mt)
            d = {"type": reg.name(mt), "msg_type": mt, "gen_time": h[2], "trigger_time": h[3], "source": h[4],
                 "dest": h[5]}
            if mtype:
                d.update(mtype.layout.unpack(payload))
            else:
                d["payload"] = payload.hex()
            out.append((b.page.index, off, *h, reg.name(mt), bytes(mm[off : off + 32 + length]), d))
    return out


@HYP
@given(spec=st.lists(FRAME, max_size=80), page_kib=st.sampled_from([4, 8]), damage=st.none() | st.integers(0, 10**6),
       filt=st.sampled_from([{}, {"types": [1, 100]}, {"symbols": ["S1"]}, {"start_time": 1_000_100}]))
def test_snapshot_frames_match_the_batch_path(tmp_path_factory, impl, spec, page_kib, damage, filt):
    path = str(tmp_path_factory.mktemp("snap") / "j.dat")
    with Writer(path, page_size=page_kib * 1024, registry=_registry()) as w:
        for i, (kind, pad) in enumerate(spec):
            _write(w, i, kind, pad)
    if damage is not None and spec:
        # zero 8 bytes somewhere in the frames of the first page
        with open(path, "r+b") as fh:
            cursor = struct.unpack("<I", fh.read(4))[0]
            if cursor > PAGE_HEADER_SIZE:
                fh.seek(PAGE_HEADER_SIZE + damage % (cursor - PAGE_HEADER_SIZE))
                fh.write(bytes(8))
    with Reader(path, registry=_registry()) as r:
        want = _batch_reference(r, **filt)
        want_damage = r.damage
        got = [_seen(f) for f in r.frames(**filt)]
        assert got == want
        assert r.damage == want_damage
        assert [_seen(f) for f in r] == _batch_reference(r)
        # a batch's own frames, and frames fetched again by attribute
        for b in r.batches(**filt):
            for f, row in zip(b.frames(), b.headers.tolist(), strict=True):
                assert (f.length, f.msg_type, f.gen_time, f.trigger_time, f.source, f.dest) == tuple(row)
                if f.type_name == "Ticker":
                    assert f.last_price == f.fields["last_price"]


def test_frame_api(tmp_path, impl):
    path = str(tmp_path / "j.dat")
    with Writer(path) as w:
        w.write_ticker("AAPL", 1.5, 1.25, 1.75, 300.0, gen_time=42, trigger_time=41, source=7, dest=8)
        w.write(999, b"\x01\x02", gen_time=43)
    r = Reader(path)
    t, u = list(r)
    assert (t.offset, t.length, t.msg_type, t.gen_time, t.trigger_time, t.source, t.dest) == (64, 48, 1, 42, 41, 7, 8)
    assert t.page_index == 0 and t.page is r.page(0)
    assert t.type_name == "Ticker" and t.symbol == "AAPL" and t.volume == 300.0
    assert t.fields is t.fields  # decoded once
    assert t.payload == bytes(r.page(0).mm[96:144]) and t.raw == bytes(r.page(0).mm[64:144])
    assert repr(t) == "<Frame Ticker page=0 offset=64 gen_time=42>"
    with pytest.raises(AttributeError, match="Ticker frame has no field 'price'"):
        _ = t.price
    with pytest.raises(AttributeError):
        _ = t._secret
    with pytest.raises(AttributeError):
        t.gen_time = 1  # type: ignore[misc]
    with pytest.raises(AttributeError):
        t.anything_new = 1  # no __dict__: frames stay small
    assert u.type_name == "type999" and u.fields == {} and u.payload == b"\x01\x02"
    assert u.to_dict() == {"type": "type999", "msg_type": 999, "gen_time": 43, "trigger_time": 0, "source": 0,
                           "dest": 0, "payload": "0102"}
    # frames are made from a header tuple too (the tail and replay do)
    frame_type = framestream._active[0]
    g = frame_type(r.page(0), (64, 48, 1, 5, 6, 7, 8))
    assert (g.gen_time, g.trigger_time, g.last_price) == (5, 6, 1.5)


def _corrupt(path: str, offset: int, data: bytes) -> None:
    with open(path, "r+b") as fh, mmap.mmap(fh.fileno(), 0) as mm:
        mm[offset : offset + len(data)] = data


@HYP
@given(steps=st.lists(st.lists(FRAME, min_size=1, max_size=70), min_size=1, max_size=6),
       wait=st.sampled_from(["busy", "backoff"]), types=st.sampled_from([None, [1, 2]]))
def test_follow_sees_each_write_as_it_is_committed(tmp_path_factory, impl, steps, wait, types):
    # one process: write a step, then take exactly as many frames as match; next() returns once they are there
    path = str(tmp_path_factory.mktemp("follow") / "j.dat")
    reg = _registry()
    with Writer(path, page_size=4096, registry=reg) as w:
        r = Reader(path, registry=reg)
        it = r.follow("beginning", wait, types=types)
        i = 0
        for step in steps:
            first = i
            for kind, pad in step:
                _write(w, i, kind, pad)
                i += 1
            want = [k for k in range(first, i) if types is None or spec_type(steps, k) in types]
            got = [next(it) for _ in want]
            assert [f.gen_time for f in got] == [1_000_000 + k * 7 for k in want]
            assert all(f.to_dict()["type"] == f.type_name for f in got)
        assert r.damage is None
    close = getattr(it, "close", None)
    if close:
        close()


def spec_type(steps, k: int) -> int:
    kind = [s for step in steps for s in step][k][0]
    return {"ticker": 1, "order": 2, "quote": 100, "big": 70000, "raw": 0}[kind]


@pytest.mark.parametrize("backlog", [False, True], ids=["frame-by-frame", "batch-scan"])
@pytest.mark.parametrize("bad", ["zero-type", "past-cursor", "short"])
def test_follow_stops_at_a_bad_frame(tmp_path, impl, backlog, bad):
    path = str(tmp_path / "j.dat")
    n = 200 if backlog else 3  # 200 tickers are more bytes than the frame-by-frame limit
    with Writer(path, page_size=1 << 20) as w:
        for i in range(n):
            w.write_ticker("S", float(i))
    victim = PAGE_HEADER_SIZE + 80 * (n - 2)  # the second-last frame
    patch = {"zero-type": (4, struct.pack("<I", 0)), "past-cursor": (0, struct.pack("<I", 10_000)),
             "short": (0, struct.pack("<I", 8))}[bad]
    _corrupt(path, victim + patch[0], patch[1])
    r = Reader(path)
    got = list(r.follow("beginning", "busy", idle_timeout=30))
    reason = {"zero-type": "msg_type 0", "past-cursor": "runs past the write cursor", "short": "shorter than"}[bad]
    assert r.damage is not None and reason in r.damage.reason
    if backlog:
        # the batch scanner's rule: frames in the damaged 4 KiB block are not trusted either
        assert r.damage.offset <= victim and len(got) <= n - 2
        assert [f.offset for f in got] == [f.offset for f in Reader(path)]
    else:
        assert r.damage.offset == victim and len(got) == n - 2
    assert [f.last_price for f in got] == [float(i) for i in range(len(got))]


def test_follow_rolls_over_pages_and_stops_when_asked(tmp_path, impl):
    path = str(tmp_path / "j.dat")
    stop = [False]
    with Writer(path, page_size=4096) as w:
        r = Reader(path)
        it = r.follow("beginning", "busy", stop=lambda: stop[0])
        for i in range(300):  # about six pages
            w.write_ticker("S", float(i))
            assert next(it).last_price == float(i)
        assert os.path.exists(page_path(path, 5))
        stop[0] = True
        assert list(it) == []
    assert r.damage is None


def test_follow_a_bad_cursor_is_damage(tmp_path, impl):
    path = str(tmp_path / "j.dat")
    with Writer(path, page_size=4096) as w:
        w.write_ticker("S", 1.0)
        r = Reader(path)
        it = r.follow("beginning", "busy", idle_timeout=30)
        assert next(it).last_price == 1.0
        _corrupt(path, 0, struct.pack("<I", 1 << 20))  # the cursor jumps past the page
        assert list(it) == []
    assert r.damage is not None and "past the page capacity" in r.damage.reason


def test_stream_contract(tmp_path, impl):
    """The stream itself: queued offsets first, statuses, bounds."""
    path = str(tmp_path / "j.dat")
    with Writer(path, page_size=4096) as w:
        for i in range(3):
            w.write_ticker("S", float(i))
    page = Reader(path).page(0)
    offsets = np.array([64, 144, 224], dtype=np.int64)
    calls = []

    def refill(s):
        calls.append(s.status)
        if len(calls) == 1:
            s.attach(page, page.mm, 144, page.limit(), np.zeros(0, "<u4"), None, 5, 4096, 0)
            return True
        return False

    s = framestream.stream(refill)
    s.feed(page, page.mm, offsets[::2].copy())
    got = [f.last_price for f in s]
    # fed frames, then the live page from offset 144 to its cursor, then idle: refill ends it
    assert got == [0.0, 2.0, 1.0, 2.0]
    assert calls == [framestream.STATUS_EMPTY, framestream.STATUS_IDLE]
    assert s.cursor == 304
    with pytest.raises(ValueError):
        framestream.stream(refill).feed(page, page.mm, np.array([4090], dtype=np.int64))
    assert FRAME_HEADER.size == framestream.HEADER_SPEC[0]


def test_a_stream_refuses_next_from_its_own_refill(impl):
    def refill(s):
        next(s)  # refill owns the stream's state while it runs
        return False

    with pytest.raises(ValueError, match="already executing"):
        list(framestream.stream(refill))



@pytest.mark.parametrize("end", ["stop", "close", "drop"])
def test_a_named_follower_publishes_each_consumed_frame_across_pages(tmp_path, impl, end):
    """The stream stores the last consumed frame's position itself; the name is released however it ends."""
    from kftools.journal.positions import read_positions

    path = str(tmp_path / "j.dat")
    stop = [False]
    with Writer(path, page_size=4096) as w:
        r = Reader(path)
        it = r.follow("beginning", "busy", stop=lambda: stop[0], name="s")
        seen = []
        for i in range(200):  # four pages or so, frame by frame and in backlogs
            w.write_ticker("S", float(i))
            if i % 3 == 0:
                w.write_ticker("S", float(i))
                f = next(it)
                seen.append((f.page.index, f.offset))
            f = next(it)
            (entry,) = read_positions(path)
            assert entry.position == (seen[-1] if seen else None) and entry.state == "alive"
            seen.append((f.page.index, f.offset))
        assert seen[-1][0] >= 3
        if end == "stop":
            stop[0] = True
            assert list(it) == []
        elif end == "close":
            it.close()
        else:
            del it
        (entry,) = read_positions(path)
        assert entry.state == "exited" and entry.position == (seen[-1] if end == "stop" else seen[-2])
    r.close()
