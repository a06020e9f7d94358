"""kftools replay: scheduler (injected clock), bulk writes, strategies, CLI end to end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs
from kftest import KFTOOLS, ROOT, SAMPLES_DIR, copy_journal, run_cli

import kftools.replay.core as replay_core
from kftools.errors import FrameTooLarge, NotAJournal, OutputError, StrategyError, UsageError
from kftools.journal.format import FRAME_HEADER, MsgType
from kftools.journal.page import NotYetWritten
from kftools.journal.reader import Reader
from kftools.journal.writer import Writer
from kftools.replay import Controller, ManualClock, Replay, handle_key, replay, set_column

MULTI = os.path.join(SAMPLES_DIR, "multipage.dat")
CLEAN = os.path.join(SAMPLES_DIR, "clean.dat")
EXAMPLE = os.path.join(ROOT, "examples", "strategy_example.py")
MS = 1_000_000
C_PACER = replay_core._pacer


def frames_of(path, **kw):
    with Reader(path, **kw) as r:
        return [(f.gen_time, f.trigger_time, f.msg_type, f.source, f.dest, bytes(f.payload)) for f in r]


def emitted_offsets(path, clock):
    """Emission times (monotonic, from the manual clock) of every frame of ``path``."""
    return [g - clock.wall_offset for g, *_ in frames_of(path)]


# -- scheduler, with an injected clock ---------------------------------------------------------
@pytest.mark.parametrize("speed", [1, 2, 0.5, 10, 1000])
def test_deadlines_from_one_anchor(tmp_path, speed):
    clock = ManualClock(start=5 * MS)
    out = str(tmp_path / "o.dat")
    st = replay(MULTI, out, speed=speed, clock=clock)
    src = frames_of(MULTI)
    got = frames_of(out)
    assert len(got) == len(src) == st.frames == 1200
    g0 = src[0][0]
    for (gen, trig, mt, s, d, pl), (sgen, _st, smt, ss, sd, spl) in zip(got, src, strict=True):
        assert gen - clock.wall_offset == 5 * MS + int((sgen - g0) / speed)
        assert trig == sgen  # the original event time
        assert (mt, s, d, pl) == (smt, ss, sd, spl)
    assert st.lateness_summary()["lateness_max_ns"] == 0
    assert st.achieved_speed == pytest.approx(speed)
    assert st.loops_done == 1 and not st.interrupted


def test_options_in_groups_replay_as_the_same_keywords(tmp_path):
    """``Replay(path, options=ReplayOptions(...))`` (what the command line passes) is ``Replay(path, out, **kw)``;
    a keyword no group has is refused as Python refuses one, and options come one way, not both."""
    from kftools.replay import FilterOptions, OutputOptions, PacingOptions, ReplayOptions

    a, b = str(tmp_path / "a.dat"), str(tmp_path / "b.dat")
    st_a = replay(MULTI, a, speed=3, loops=2, types=[3], clock=ManualClock(start=0))
    opts = ReplayOptions(pacing=PacingOptions(speed=3, loops=2), output=OutputOptions(out=b),
                         filters=FilterOptions(types=[3]))
    st_b = Replay(MULTI, options=opts, clock=ManualClock(start=0)).run()
    assert st_a.frames == st_b.frames > 0 and frames_of(a) == frames_of(b)
    with pytest.raises(TypeError, match="unexpected keyword argument 'sped'"):
        Replay(MULTI, str(tmp_path / "c.dat"), sped=3)
    with pytest.raises(TypeError, match="not both"):
        Replay(MULTI, str(tmp_path / "c.dat"), options=opts)
    with pytest.raises(UsageError, match="--loop must be >= 0"):
        Replay(MULTI, options=ReplayOptions(pacing=PacingOptions(loops=-1)))


def test_loops_each_from_its_own_anchor(tmp_path):
    clock = ManualClock(start=0)
    out = str(tmp_path / "o.dat")
    st = replay(CLEAN, out, speed=4, clock=clock, loops=3)
    t = emitted_offsets(out, clock)
    assert st.frames == len(t) == 1200 and st.loops_done == 3
    rel = [x - t[0] for x in t[:400]]
    span = rel[-1]
    for k in range(3):
        loop = t[400 * k : 400 * (k + 1)]
        assert [x - loop[0] for x in loop] == rel  # each loop paced alike
        assert loop[0] == k * span  # anchored where the previous loop ended
    assert st.achieved_speed == pytest.approx(4)


def test_pause_resume_and_step(tmp_path):
    clock = ManualClock(start=0)
    ctl = Controller(paused=True)
    clock.at(5 * MS, ctl.step)  # paused: one frame now
    clock.at(6 * MS, ctl.step)
    clock.at(10 * MS, ctl.resume)  # frame 2 then comes 1 ms (its recorded gap) after the resume
    clock.at(30 * MS, ctl.pause)
    clock.at(100 * MS, ctl.resume)
    out = str(tmp_path / "o.dat")
    st = replay(CLEAN, out, speed=1, clock=clock, controller=ctl, end="+49ms")
    t = emitted_offsets(out, clock)
    assert st.frames == len(t) == 50
    assert t[:3] == [5 * MS, 6 * MS, 11 * MS]
    # running from 10 ms, frame k is due at 9 ms + k ms until the pause at 30 ms ...
    assert t[20] == 29 * MS and t[21] == 30 * MS
    # ... and the 70 ms pause shifts every later frame by 70 ms
    assert t[22] == 31 * MS + 70 * MS
    assert t[49] == 58 * MS + 70 * MS
    assert st.lateness_summary()["lateness_max_ns"] == 0
    assert st.paused_ns == 80 * MS  # 0..10 ms (stepping) and 30..100 ms
    # 49 ms of recording, 1 ms of it stepped over while paused: 48 ms in 48 ms of running time
    assert st.stepped_ns == 1 * MS
    assert st.achieved_speed == pytest.approx(1.0)


def test_step_does_nothing_unless_paused():
    ctl = Controller()
    ctl.step()
    assert not ctl.take_step()
    ctl.pause()
    ctl.step()
    assert ctl.take_step() and not ctl.take_step()


def test_keys_drive_the_controller():
    ctl = Controller(paused=True)
    assert handle_key(ctl, " ") and not ctl.paused
    assert handle_key(ctl, " ") and ctl.paused
    assert handle_key(ctl, "\x1b[C") and ctl.take_step()
    assert not handle_key(ctl, "x") and ctl.paused and not ctl.take_step()


def test_start_end_type_symbol_selection(tmp_path):
    clock = ManualClock(start=0)
    out = str(tmp_path / "o.dat")
    st = replay(MULTI, out, clock=clock, speed=1, start="+100ms", end="+199ms", types=["ticker"], symbols=["AAPL"])
    src = [f for f in frames_of(MULTI) if f[2] == MsgType.TICKER]
    g0 = frames_of(MULTI)[0][0]
    with Reader(MULTI) as r:
        want = [f.gen_time for f in r if f.msg_type == 1 and f.symbol == "AAPL"
                and g0 + 100 * MS <= f.gen_time <= g0 + 199 * MS]
    got = frames_of(out)
    assert st.frames == len(got) == len(want) > 0
    assert [g[1] for g in got] == want
    # the schedule starts at the first selected frame
    assert [g - clock.wall_offset for g, *_ in got] == [w - want[0] for w in want]
    assert all(g[2] == 1 for g in got) and len(src) > len(got)


def test_max_speed_keeps_content(tmp_path):
    out = str(tmp_path / "o.dat")
    st = replay(MULTI, out, speed=None)
    src, got = frames_of(MULTI), frames_of(out)
    assert st.frames == len(got) == len(src)
    assert [g[1:] for g in got] == [(s[0], *s[2:]) for s in src]
    assert st.lateness_summary()["lateness_p99_ns"] is None


def test_user_types_replay_byte_identical_payloads(tmp_path, schema_registry):
    p = copy_journal(os.path.join(SAMPLES_DIR, "user_types.dat"), str(tmp_path))
    out = str(tmp_path / "o.dat")
    replay(p, out, speed=None, registry=schema_registry)
    assert [g[2:] for g in frames_of(out)] == [s[2:] for s in frames_of(p)]


# -- bulk writes ---------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lengths=hs.lists(hs.integers(0, 700), min_size=1, max_size=60), cut=hs.integers(0, 60),
       page=hs.sampled_from([4096, 8192]))
def test_write_raw_frames_round_trip(tmp_path_factory, lengths, cut, page):
    d = tmp_path_factory.mktemp("raw")
    src, out = str(d / "src.dat"), str(d / "out.dat")
    with Writer(src, page_size=1 << 20) as w:
        for k, n in enumerate(lengths):
            w.write(100 + k % 3, bytes([k % 256]) * n, gen_time=k, trigger_time=-k, source=k, dest=7)
    with Reader(src) as r:
        (batch,) = list(r.batches())
        data, starts = batch.raw_frames()
    cut = min(cut, len(lengths))
    with Writer(out, page_size=page) as w:
        assert w.write_raw_frames(data, starts, 0, cut) == cut
        assert w.write_raw_frames(data, starts, cut) == len(lengths) - cut
        assert w.frames_written == len(lengths)
    assert frames_of(out) == frames_of(src)
    with Reader(out) as r:
        assert r.damage is None and sum(1 for _ in r) == len(lengths)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lengths=hs.lists(hs.integers(0, 300), min_size=1, max_size=150),
       gaps=hs.lists(hs.sampled_from([0, 0, 0, 1_000, 20_000, 150_000, -5_000]), min_size=150, max_size=150),
       speed=hs.sampled_from([1.0, 3.0, 10.0]), page=hs.sampled_from([4096, 8192, 1 << 20]),
       c_pacer=hs.booleans(), only=hs.sampled_from([None, (100, 102)]))
def test_paced_replay_c_pacer_and_python_twin(tmp_path_factory, monkeypatch, lengths, gaps, speed, page, c_pacer,
                                              only):
    """Real time, both emitters: every frame goes out once, in order, whole, never before it is due, its
    trigger_time the original gen_time; bursts (equal times), out-of-order times, page rollover and a type filter
    (the C pacer then reads frames that do not lie back to back in the source page) included."""
    if C_PACER is None:
        pytest.skip("the C pacer is not built")
    monkeypatch.setattr(replay_core, "_pacer", C_PACER if c_pacer else None)  # one test call runs many examples
    d = tmp_path_factory.mktemp("paced")
    src, out = str(d / "src.dat"), str(d / "out.dat")
    t = 1_800_000_000_000_000_000
    with Writer(src, page_size=1 << 20) as w:
        for k, n in enumerate(lengths):
            t += gaps[k]
            w.write(100 + k % 3, bytes([k % 256]) * n, gen_time=t, trigger_time=-k, source=k, dest=7)
    before = time.time_ns()
    st = replay(src, out, speed=speed, force=True, page_size=page, types=only)
    srcf, got = frames_of(src), frames_of(out)
    if only:
        srcf = [f for f in srcf if f[2] in only]
    assert st.frames == len(got) == len(srcf)
    assert [g[1:] for g in got] == [(s[0], *s[2:]) for s in srcf]
    stamps = [g[0] for g in got]
    assert stamps == sorted(stamps) and stamps[0] >= before
    assert len(st.lateness) == len(srcf) and int(st.lateness.min()) >= 0  # nothing went out before it was due
    with Reader(out) as r:
        assert r.damage is None


def test_the_c_pacer_refuses_buffers_that_do_not_match():
    if replay_core._pacer is None:
        pytest.skip("the C pacer is not built")
    pacer, fields = replay_core._pacer, replay_core.FRAME_FIELDS
    hdr, len_off = fields[0], fields[1]
    data = np.zeros(2 * hdr + 12, np.uint8)
    data[len_off] = 12  # frame 0: a header and 12 bytes of payload
    data[hdr + 12 + len_off] = 5  # frame 1: a header and 5 bytes, past the end of the data
    offsets = np.array([0, hdr + 12], np.int64)
    rel = np.zeros(2, np.int64)
    page = bytearray(4096)
    emitted = np.zeros(2, np.int64)
    with pytest.raises(ValueError, match="frame 1 at .* outside the buffer"):  # its payload runs past the data
        pacer.schedule(data, offsets, 2, *fields, 0, 1.0, 0, rel)
    with pytest.raises(ValueError, match="outside the buffer"):
        pacer.emit(data, offsets, rel, 1, 2, 0, 0, 1, page, 64, 4096, 8, *fields, emitted)
    with pytest.raises(ValueError, match="do not match"):  # capacity beyond the page
        pacer.emit(data, offsets, rel, 0, 1, 0, 0, 1, page, 64, 8192, 8, *fields, emitted)
    with pytest.raises(ValueError, match="do not fit the header"):
        pacer.emit(data, offsets, rel, 0, 1, 0, 0, 1, page, 64, 4096, 8, hdr, hdr, 0, 0, emitted)
    with pytest.raises(ValueError, match="speed must be positive"):
        pacer.schedule(data, offsets, 1, *fields, 0, 0.0, 0, rel)
    i, pos, status = pacer.emit(data, offsets, rel, 0, 1, 0, 0, 1, page, 64, 4096, 8, *fields, emitted)
    assert (i, pos, status) == (1, 64 + hdr + 12, pacer.DONE)
    assert int.from_bytes(page[8:12], "little") == 64 + hdr + 12
    i, pos, status = pacer.emit(data, offsets, rel, 0, 1, 0, 0, 1, page, 64, 64 + hdr + 11, 8, *fields, emitted)
    assert (i, pos, status) == (0, 64, pacer.FULL)


@settings(max_examples=200, deadline=None)
@given(gens=hs.lists(hs.integers(-(2**62), 2**62), min_size=1, max_size=50),
       t0=hs.integers(-(2**62), 2**62), speed=hs.sampled_from([0.001, 0.5, 1.0, 3.0, 10.0, 1e6]),
       last=hs.integers(-(2**40), 2**40))
def test_the_c_pacers_schedule_is_the_python_loops(gens, t0, speed, last):
    """Deadlines computed in C (from the frames themselves) are the ones the Python loop computes with numpy,
    wherever numpy's are defined (they fit in int64)."""
    if replay_core._pacer is None:
        pytest.skip("the C pacer is not built")
    fields = replay_core.FRAME_FIELDS
    hdr, gen_off = fields[0], fields[2]
    data = np.zeros(hdr * len(gens), np.uint8)
    g = np.array(gens, np.int64)
    for k in range(len(gens)):
        data[k * hdr + gen_off : k * hdr + gen_off + 8] = np.frombuffer(g[k : k + 1].tobytes(), np.uint8)
    offsets = np.arange(len(gens), dtype=np.int64) * hdr
    rel = np.empty(len(gens), np.int64)
    got_last = replay_core._pacer.schedule(data, offsets, len(gens), *fields, t0, speed, last, rel)
    with np.errstate(over="ignore"):
        exact = (g - np.int64(t0)) / speed
    if np.all(np.abs(exact) < 2**62):
        expected = exact.astype(np.int64)
        expected[0] = max(int(expected[0]), last)
        np.maximum.accumulate(expected, out=expected)
        assert rel.tolist() == expected.tolist() and got_last == int(expected[-1])
    assert bool((rel[1:] >= rel[:-1]).all()) and rel[0] >= last  # (np.diff would overflow at the extremes)


def test_write_raw_frames_too_large(tmp_path):
    src = str(tmp_path / "s.dat")
    with Writer(src, page_size=1 << 20) as w:
        w.write(100, bytes(5000))
    with Reader(src) as r:
        data, starts = next(r.batches()).raw_frames()
    with Writer(str(tmp_path / "o.dat"), page_size=4096) as w, pytest.raises(FrameTooLarge):
        w.write_raw_frames(data, starts)


@settings(max_examples=50, deadline=None)
@given(lengths=hs.lists(hs.integers(0, 40), min_size=1, max_size=50))
def test_set_column_unaligned(lengths):
    lens = np.asarray(lengths, np.int64) + FRAME_HEADER.size
    starts = np.zeros(len(lens) + 1, np.int64)
    np.cumsum(lens, out=starts[1:])
    data = np.zeros(int(starts[-1]) + 3, np.uint8)[3:]  # an unaligned buffer too
    data = np.zeros(int(starts[-1]), np.uint8) if len(data) < starts[-1] else data
    vals = np.arange(len(lens), dtype=np.int64) * 1_000_003 - 7
    set_column(data, starts[:-1], FRAME_HEADER.offset("gen_time"), vals)
    for k in range(len(lens)):
        assert FRAME_HEADER.unpack(data, int(starts[k]))["gen_time"] == vals[k]


# -- input states --------------------------------------------------------------------------------
def test_journal_still_being_written(tmp_path):
    src, out = str(tmp_path / "live.dat"), str(tmp_path / "o.dat")
    w = Writer(src, page_size=1 << 20)
    for k in range(10):
        w.write_ticker("AAPL", 1.0 + k)
    rep = Replay(src, out, speed=None)
    w.write_ticker("LATE", 2.0)  # committed after the replay started: not replayed
    st = rep.run()
    assert st.writer_state == "alive" and st.frames == 10
    assert len(frames_of(out)) == 10
    w.close()


def test_follow_relays_new_frames(tmp_path):
    src, out = str(tmp_path / "live.dat"), str(tmp_path / "o.dat")
    w = Writer(src, page_size=8192)
    for k in range(50):
        w.write_ticker("AAPL", float(k))
    stop = threading.Event()
    rep = Replay(src, out, speed=None, follow=True, stop=stop)
    th = threading.Thread(target=rep.run)
    th.start()
    for k in range(50, 500):  # rolls pages of the input while we follow
        w.write_ticker("AAPL", float(k))
    w.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # polling for the event: all 500 frames in the output
        try:
            with Reader(out) as r:
                if r.count() == 500:
                    break
        except NotAJournal:
            pass  # the replay thread has not created its output yet (a loaded machine)
        time.sleep(0.05)
    stop.set()
    th.join(30)
    assert not th.is_alive()
    with Reader(out) as r:
        prices = [f.last_price for f in r]
    assert prices == [float(k) for k in range(500)]
    assert rep.stats.frames == 500 and rep.stats.interrupted


def test_follow_and_loop_conflict(tmp_path):
    with pytest.raises(UsageError):
        Replay(CLEAN, str(tmp_path / "o.dat"), follow=True, loops=2)


# -- strategies -----------------------------------------------------------------------------------
def test_example_strategy(tmp_path):
    from kftools.replay import load_strategy

    strat = load_strategy(EXAMPLE)
    out = str(tmp_path / "m.replay.dat")
    st = replay(MULTI, out, speed=None, strategy=strat, chart=False)
    assert st.orders == str(tmp_path / "m.orders.dat")
    assert strat.summary["tickers"] == 960 and strat.summary["trades"] == 120
    with Reader(st.orders) as r:
        orders = [f for f in r if f.msg_type == MsgType.ORDER]
    recorded = {f.gen_time for f in Reader(MULTI)}
    assert len(orders) == st.orders_sent == strat.summary["orders_sent"] > 0
    assert [o.order_id for o in orders] == list(range(1, len(orders) + 1))
    assert all(o.trigger_time in recorded for o in orders)  # the recording time of the frame that sent it
    held = {s: p["quantity"] for s, p in st.backtest.summary["positions"].items() if p["quantity"]}
    assert strat.summary["positions"] == held and strat.summary["fills"] > 0  # positions come from fills


def test_strategy_callbacks_and_context(tmp_path):
    calls = []

    class S:
        def on_start(self, ctx):
            calls.append("start")

        def on_ticker(self, ctx, f):
            calls.append(("t", f.symbol, f.trigger_time))
            assert ctx.frame is f and f.trigger_time == ctx.now()  # a backtest runs on the recording's clock

        def on_frame(self, ctx, f):
            calls.append(("f", f.type_name))

        def on_stop(self, ctx):
            calls.append("stop")

    st = replay(CLEAN, str(tmp_path / "o.dat"), speed=None, strategy=S(), orders=str(tmp_path / "ord.dat"), chart=False)
    assert calls[0] == "start" and calls[-1] == "stop"
    kinds = [c[0] for c in calls[1:-1]]
    assert kinds.count("t") == 320 and kinds.count("f") == 80  # orders and trades fall to on_frame
    src = [f[0] for f in frames_of(CLEAN) if f[2] == 1]
    assert [c[2] for c in calls[1:-1] if c[0] == "t"] == src
    assert st.orders_sent == 0


def test_strategy_error_names_the_place(tmp_path):
    class Bad:
        def on_ticker(self, ctx, f):
            raise ValueError("boom")

    out = str(tmp_path / "o.dat")
    with pytest.raises(StrategyError, match=r"Bad.on_ticker failed: .*ValueError: boom"):
        replay(CLEAN, out, speed=None, strategy=Bad())
    assert Reader(out).count() >= 1  # what was emitted before stays valid


def test_strategy_class_selection(tmp_path):
    from kftools.replay import load_strategy

    p = tmp_path / "two.py"
    p.write_text("class A:\n    def on_ticker(self, c, f): pass\nclass B:\n    def on_start(self, c): pass\n")
    with pytest.raises(UsageError, match="strategy classes found: A, B"):
        load_strategy(str(p))
    assert type(load_strategy(f"{p}:B")).__name__ == "B"
    with pytest.raises(UsageError, match="no class 'C'"):
        load_strategy(f"{p}:C")


# -- CLI ------------------------------------------------------------------------------------------
def test_cli_crashed_input(tmp_path):
    p = copy_journal(os.path.join(SAMPLES_DIR, "crashed.dat"), str(tmp_path))
    r = run_cli("replay", p, "--speed", "50", "--json")
    assert r.returncode == 0, r.stderr
    assert "crashed" in r.stderr and "committed" in r.stderr
    d = json.loads(r.stdout)
    assert d["frames"] == 300 and d["input_writer"] == "crashed"
    assert d["out"] == str(tmp_path / "crashed.replay.dat")
    assert len(frames_of(d["out"])) == 300


def test_cli_damaged_input(tmp_path):
    p = copy_journal(os.path.join(SAMPLES_DIR, "damaged.dat"), str(tmp_path))
    r = run_cli("replay", p, "--max", "-o", tmp_path / "o.dat")
    valid = len(frames_of(p))  # the reader's valid prefix
    assert r.returncode == 3
    assert f"replayed the {valid} valid frame(s)" in r.stderr
    assert frames_of(str(tmp_path / "o.dat"))[0][1:] == (frames_of(p)[0][0], *frames_of(p)[0][2:])
    assert len(frames_of(str(tmp_path / "o.dat"))) == valid > 0


@pytest.mark.parametrize("args, msg", [
    (["--out", "{src}"], "would overwrite"),
    (["--out", "{src}.1"], "would overwrite"),
    (["--out", "{tmp}/exists.dat"], "already exists (use --force"),
    (["--out", "{src}.7"], "page 7 of"),  # not a page yet, but the input's writer would make it one
    (["--out", "{tmp}/link.dat"], "symbolic link"),
    (["--out", "{tmp}/dangling.dat"], "symbolic link"),
    (["--out", "{tmp}/fifo.dat", "--force"], "is a FIFO"),
    (["--speed", "0"], "--speed must be a number from"),
    (["--speed", "-2"], "--speed must be a number from"),
    (["--speed", "1e-300"], "--speed must be a number from"),
    (["--speed", "nan"], "--speed must be a number from"),
    (["--speed", "10", "--max"], "--speed and --max cannot be combined"),
    (["--speed", "fast"], "Invalid value for '--speed'"),
    (["--bogus"], "No such option: --bogus"),
    (["--loop", "-1"], "--loop must be"),
    (["--paused"], "--paused needs a terminal"),
    (["--strategy", "{tmp}/nope.py"], "no such strategy file"),
    (["--start", "yesterday"], "bad time"),
    (["--type", "NoSuchType"], "NoSuchType"),
])
def test_cli_bad_input(tmp_path, args, msg):
    src = copy_journal(MULTI, str(tmp_path))
    (tmp_path / "exists.dat").write_bytes(b"keep")
    (tmp_path / "link.dat").symlink_to(tmp_path / "exists.dat")
    (tmp_path / "dangling.dat").symlink_to(tmp_path / "target-of-dangling.dat")
    os.mkfifo(tmp_path / "fifo.dat")
    before = sorted(os.listdir(tmp_path))
    r = run_cli("replay", src, *[a.format(src=src, tmp=tmp_path) for a in args])
    assert r.returncode == 2
    assert msg in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert sorted(os.listdir(tmp_path)) == before  # nothing written
    assert (tmp_path / "exists.dat").read_bytes() == b"keep"


def test_cli_force_replaces(tmp_path):
    out = tmp_path / "o.dat"
    assert run_cli("replay", CLEAN, "--max", "-o", out).returncode == 0
    r = run_cli("replay", CLEAN, "--max", "-o", out, "--force", "--type", "trade")
    assert r.returncode == 0, r.stderr
    assert len(frames_of(str(out))) == 40


def test_cli_strategy_and_summary(tmp_path):
    out = tmp_path / "m.dat"
    r = run_cli("replay", MULTI, "--max", "-o", out, "--strategy", f"{EXAMPLE}:MeanReversion")
    assert r.returncode == 0, r.stderr
    assert "replayed 1,200 frame(s)" in r.stdout and "orders" in r.stdout
    assert "lateness" in r.stdout
    assert Reader(str(tmp_path / "m.orders.dat")).count() > 0


FOLLOWER = textwrap.dedent("""
    import json, sys
    from kftools import Reader
    r = Reader.wait_open(sys.argv[1])
    out = [(f.gen_time, f.trigger_time, f.msg_type, f.payload.hex()) for f in r.follow(idle_timeout=2, wait="backoff")]
    print(json.dumps(out))
""")


def test_end_to_end_real_time_with_follower(tmp_path):
    src, out = str(tmp_path / "feed.dat"), str(tmp_path / "feed.replay.dat")
    n = 600
    with Writer(src, page_size=1 << 16) as w:  # 600 frames over 0.6 s of recording, several pages
        for k in range(n):
            w.write_ticker("AAPL" if k % 2 else "MSFT", 100.0 + k, gen_time=1_000_000_000_000 + k * MS)
    follower = subprocess.Popen([sys.executable, "-c", FOLLOWER, out], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    t = time.monotonic()
    r = run_cli("replay", src, "--speed", "2", "--json")
    elapsed = time.monotonic() - t
    assert r.returncode == 0, r.stderr
    got = json.loads(follower.communicate(timeout=60)[0])
    d = json.loads(r.stdout)
    src_frames = frames_of(src)
    assert d["frames"] == len(got) == n
    assert [(g[1], g[2], g[3]) for g in got] == [(s[0], s[2], s[5].hex()) for s in src_frames]
    gens = [g[0] for g in got]
    assert gens == sorted(gens)
    # 0.3 s of replay: generous bounds for a noisy machine (precision is the benchmark's job)
    assert 0.25 <= d["wall_s"] <= 5 and elapsed >= 0.25
    assert 0.1 <= (gens[-1] - gens[0]) / 1e9 <= 5
    assert d["achieved_speed"] > 0.1 and d["lateness_p50_ns"] is not None


def test_ctrl_c_leaves_valid_output(tmp_path):
    out = tmp_path / "o.dat"
    p = subprocess.Popen([*KFTOOLS, "replay", MULTI, "-o", str(out), "--speed", "0.05", "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if out.exists():
            try:
                with Reader(str(out)) as r:
                    if r.count() >= 3:
                        break
            except NotYetWritten:  # made, its header not written yet: the next look will find it
                pass
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=30)
    assert p.returncode == 130, stderr
    d = json.loads(stdout)
    assert d["interrupted"] and 3 <= d["frames"] < 1200
    got = frames_of(str(out))
    assert len(got) == d["frames"]
    assert [g[1:] for g in got] == [(s[0], *s[2:]) for s in frames_of(MULTI)[: len(got)]]
    assert run_cli("verify", out).returncode == 0


def test_cli_help_lists_options():
    r = run_cli("replay", "--help")
    assert r.returncode == 0
    for opt in ("--speed", "--max", "--loop", "--follow", "--paused", "--strategy", "--out", "--force"):
        assert opt in r.stdout


def test_bad_speed_in_library():
    with pytest.raises(UsageError):
        Replay(CLEAN, "/nonexistent/x.dat", speed=float("inf"))
    with pytest.raises(OutputError):
        Replay(CLEAN, "/nonexistent/x.dat")


# -- what the summary says is exact (issue 12 §4) -----------------------------------------------
@pytest.mark.parametrize("speed", [1, 2])
def test_achieved_speed_leaves_out_pauses_and_steps(tmp_path, speed):
    clock = ManualClock(start=0)
    ctl = Controller(paused=True)
    for k in range(5):  # five steps while paused, 1 ms apart
        clock.at((k + 1) * MS, ctl.step)
    clock.at(20 * MS, ctl.resume)
    out = str(tmp_path / "o.dat")
    st = replay(CLEAN, out, speed=speed, clock=clock, controller=ctl, end="+49ms")
    assert st.frames == 50 and st.paused_ns == 20 * MS
    assert st.stepped_ns == 4 * MS  # frames 0..4 stepped: 4 ms of recording in no running time
    assert st.achieved_speed == pytest.approx(speed)


def test_a_pause_after_the_last_frame_is_not_wall_time(tmp_path):
    clock = ManualClock(start=0)
    ctl = Controller()
    stop = threading.Event()
    clock.at(int(4.5 * MS), ctl.pause)  # after frame 4, before frame 5
    clock.at(500 * MS, stop.set)  # the user quits while paused
    st = replay(CLEAN, str(tmp_path / "o.dat"), speed=1, clock=clock, controller=ctl, stop=stop)
    assert st.frames == 5 and st.interrupted
    assert st.wall_ns == 4 * MS and st.paused_ns == 0
    assert st.achieved_speed == pytest.approx(1.0)


class _SlowStrategy:
    """Each ticker costs 1 ms of (manual) clock time; on_stop 5 ms."""

    def __init__(self, clock):
        self.clock = clock
        self.tickers = 0

    def on_ticker(self, ctx, frame):
        self.tickers += 1
        self.clock.sleep(MS)

    def on_stop(self, ctx):
        self.clock.sleep(5 * MS)
        self.summary = {"tickers": self.tickers, "mean": 0.1 + 0.2}


def test_max_wall_time_includes_the_strategy(tmp_path):
    clock = ManualClock(start=0)
    strat = _SlowStrategy(clock)
    st = replay(CLEAN, str(tmp_path / "o.dat"), speed=None, clock=clock, strategy=strat,
                orders=str(tmp_path / "ord.dat"))
    assert strat.tickers == 320
    assert st.wall_ns == 320 * MS + 5 * MS  # every callback, on_stop included
    assert st.to_dict()["frames_per_s"] == round(400 / 0.325, 1)
    assert st.strategy_summary == {"tickers": 320, "mean": 0.30000000000000004}


def test_paused_max_replay_counts_the_pause(tmp_path):
    clock = ManualClock(start=0)
    ctl = Controller(paused=True)
    clock.at(7 * MS, ctl.resume)
    st = replay(CLEAN, str(tmp_path / "o.dat"), speed=None, clock=clock, controller=ctl)
    assert st.frames == 400 and st.paused_ns == 7 * MS and st.wall_ns == 7 * MS


def test_cli_prints_the_strategy_summary(tmp_path):
    r = run_cli("replay", MULTI, "--max", "-o", tmp_path / "m.dat", "--strategy", f"{EXAMPLE}:MeanReversion")
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stdout.splitlines() if x.startswith("strategy "))
    assert "tickers 960" in line and "trades 120" in line and "orders_sent" in line
    r = run_cli("replay", MULTI, "--max", "-o", tmp_path / "j.dat", "--strategy", f"{EXAMPLE}:MeanReversion", "--json")
    d = json.loads(r.stdout)
    assert d["strategy_summary"]["tickers"] == 960 and d["strategy_summary"]["orders_sent"] == d["orders_sent"]
