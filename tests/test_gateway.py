"""Out-of-process backtests (``replay --order-journal``): real strategy processes, Python and C++, against the
in-process run of the same logic; a strategy killed with kill -9; bad order journals and bad requests."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs
from kftest import KFTOOLS, ROOT, run_cli

from kftools import MsgType, Reader, Writer, verify
from kftools.backtest import ExchangeConfig
from kftools.backtest.loop import Backtest
from kftools.backtest.remote import run_strategy
from kftools.bench.backtest import record as record_bursty
from kftools.replay import Replay, load_strategy

EXAMPLE = os.path.join(ROOT, "examples", "strategy_example.py")
MAKER = os.path.join(ROOT, "examples", "strategy_maker.py")
HOST = os.path.join(ROOT, "examples", "strategy_process.py")
CPP_SRC = os.path.join(ROOT, "examples", "strategy_cpp.cpp")
RESULT_FILES = ("orders.parquet", "updates.parquet", "fills.parquet", "equity.parquet")
NUMBERS = ("orders", "fills", "realized_pnl", "unrealized_pnl", "fees", "net_pnl", "cash", "max_drawdown", "positions",
           "orders_by_status", "traded_volume", "turnover")
GUARD = 120  # seconds: a failure guard only


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> str:
    """A bursty five-symbol feed (tickers, a market trade every 10th frame) on which the examples trade."""
    path = str(tmp_path_factory.mktemp("rec") / "rec.dat")
    record_bursty(path, 1500)
    return path


def in_process(recording: str, folder, strategy: str, *opts) -> dict:
    res = run_cli("replay", recording, "--max", "-o", folder / "in.dat", "--strategy", strategy, "--no-chart",
                  "--json", *opts, timeout=GUARD)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)["backtest"]


def start_replay(recording: str, folder, journals, *opts) -> subprocess.Popen:
    pace = [] if "--speed" in opts else ["--max"]
    args = [*KFTOOLS, "replay", recording, *pace, "-o", str(folder / "out.dat"), "--no-chart", "--json", *opts]
    for j in journals:
        args += ["--order-journal", str(j)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def same_results(a, b) -> None:
    for name in RESULT_FILES:
        with open(os.path.join(a, name), "rb") as fa, open(os.path.join(b, name), "rb") as fb:
            assert fa.read() == fb.read(), name


def frames_of(path, msg_type) -> list:
    with Reader(path) as r:
        return [f for f in r if f.msg_type == msg_type]


# -- a real strategy process against the in-process run ---------------------------------------------

@pytest.mark.parametrize("strategy, opts", [
    (EXAMPLE, ()),
    (MAKER, ("--fill-model", "queue", "--latency", "200us", "--response-latency", "50us", "--fees", "maker=-0.2bp")),
])
def test_python_strategy_process_matches_in_process(recording, tmp_path, strategy, opts):
    want = in_process(recording, tmp_path, strategy, *opts)
    assert want["fills"] > 0
    rep = start_replay(recording, tmp_path, [tmp_path / "s.orders.dat"], *opts)
    host = subprocess.run([sys.executable, HOST, strategy, "--output", str(tmp_path / "out.dat"), "--orders",
                           str(tmp_path / "s.orders.dat")], capture_output=True, text=True, timeout=GUARD, cwd=ROOT)
    out, err = rep.communicate(timeout=GUARD)
    assert host.returncode == 0, host.stderr
    assert rep.returncode == 0, err
    got = json.loads(out)["backtest"]
    assert {k: got[k] for k in NUMBERS} == {k: want[k] for k in NUMBERS}
    same_results(tmp_path / "in.backtest", tmp_path / "out.backtest")
    # the strategy learnt its position from the Fill frames the replay sent it
    assert json.loads(host.stdout)["positions"] == {s: p["quantity"] for s, p in want["positions"].items()
                                                   if p["quantity"]}
    fills = frames_of(tmp_path / "out.dat", MsgType.FILL)
    assert len(fills) == want["fills"] and all(f.dest == 0 for f in fills)
    acks = frames_of(tmp_path / "s.orders.dat", MsgType.ACK)
    assert acks[-1].frames == len(list(Reader(str(tmp_path / "out.dat"))))  # it acknowledged every frame


@pytest.fixture(scope="module")
def cpp_strategy(tmp_path_factory) -> str:
    cxx = os.environ.get("CXX", "g++")
    if shutil.which(cxx) is None:
        pytest.skip(f"no C++ compiler ({cxx}) on PATH")
    exe = str(tmp_path_factory.mktemp("cpp") / "strategy_cpp")
    res = subprocess.run([cxx, "-O2", "-std=c++17", "-Wall", "-Wextra", "-Werror", f"-I{ROOT}/cpp/include", "-o",
                          exe, CPP_SRC], capture_output=True, text=True, timeout=GUARD)
    assert res.returncode == 0, res.stderr
    return exe


@pytest.mark.parametrize("pace", [(), ("--speed", "1")])
def test_cpp_strategy_matches_the_python_example_in_process(recording, tmp_path, cpp_strategy, pace):
    """Paced or not, lockstep decides as in-process (the recording spans about 0.15 s)."""
    want = in_process(recording, tmp_path, EXAMPLE)
    rep = start_replay(recording, tmp_path, [tmp_path / "c.orders.dat"], *pace)
    strat = subprocess.run([cpp_strategy, str(tmp_path / "out.dat"), str(tmp_path / "c.orders.dat")],
                           capture_output=True, text=True, timeout=GUARD)
    out, err = rep.communicate(timeout=GUARD)
    assert strat.returncode == 0, strat.stderr
    assert rep.returncode == 0, err
    got = json.loads(out)["backtest"]
    assert {k: got[k] for k in NUMBERS} == {k: want[k] for k in NUMBERS}
    same_results(tmp_path / "in.backtest", tmp_path / "out.backtest")
    said = json.loads(strat.stdout)
    assert said["fills"] == want["fills"] and said["orders_sent"] == want["orders"]


def test_free_running_results_agree_with_the_output(recording, tmp_path):
    """No determinism promised (requests are handled when the replay reads them, those sent after its last frame
    never): but what it reports is what it published."""
    rep = start_replay(recording, tmp_path, [tmp_path / "s.orders.dat"], "--free-running")
    host = subprocess.run([sys.executable, HOST, EXAMPLE, "--output", str(tmp_path / "out.dat"), "--orders",
                           str(tmp_path / "s.orders.dat")], capture_output=True, text=True, timeout=GUARD, cwd=ROOT)
    out, err = rep.communicate(timeout=GUARD)
    assert host.returncode == 0 and rep.returncode == 0, host.stderr + err
    bt = json.loads(out)["backtest"]
    assert bt["fills"] == len(frames_of(tmp_path / "out.dat", MsgType.FILL))
    sent = [f.order_id for f in frames_of(tmp_path / "s.orders.dat", MsgType.ORDER)]
    assert bt["orders"] <= len(sent)
    assert {f.order_id for f in frames_of(tmp_path / "out.dat", MsgType.ORDER_UPDATE)} <= set(sent)
    assert verify(str(tmp_path / "out.dat")).clean


# -- in-thread strategies: the lockstep guarantee under any latency -----------------------------------

@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(latency=hs.sampled_from([0, 1_000, 300_000, 5_000_000]), response=hs.sampled_from([0, 200_000]),
       model=hs.sampled_from(["touch", "through", "queue"]), maker=hs.booleans())
def test_lockstep_equals_in_process_for_any_latency(recording, tmp_path_factory, latency, response, model, maker):
    d = tmp_path_factory.mktemp("lockstep")
    cfg = ExchangeConfig(fill_model=model, latency_ns=latency, response_latency_ns=response)
    lockstep_equals_in_process(recording, d, MAKER if maker else EXAMPLE, cfg)


def lockstep_equals_in_process(recording: str, d, path: str, cfg: ExchangeConfig, page_size: int | None = None):
    """Run ``path`` in-process and, in a thread, out of process in lockstep (its output in pages of
    ``page_size``); the results must be the same byte for byte. Returns the in-process result."""
    inproc = Replay(recording, str(d / "in.dat"), speed=None, strategy=load_strategy(path), exchange=cfg,
                    chart=False).run().backtest
    failures: list[BaseException] = []

    def strategy_process():
        try:
            run_strategy(load_strategy(path), str(d / "out.dat"), str(d / "s.orders.dat"),
                         response_latency=cfg.response_latency_ns)
        except BaseException as e:  # noqa: BLE001 - reported by the test
            failures.append(e)

    th = threading.Thread(target=strategy_process)
    # both sides spin in this one process: hand the GIL over often, or every round trip waits out a 5 ms slice
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    th.start()
    try:
        remote = Replay(recording, str(d / "out.dat"), speed=None, order_journals=[str(d / "s.orders.dat")],
                        exchange=cfg, chart=False, page_size=page_size).run().backtest
    finally:
        th.join(GUARD)
        sys.setswitchinterval(switch)
    assert not failures
    assert {k: remote.summary[k] for k in NUMBERS} == {k: inproc.summary[k] for k in NUMBERS}
    same_results(d / "in.backtest", d / "out.backtest")
    return inproc


@pytest.mark.skipif(not hasattr(Backtest, "lockstep"), reason="the C engine is not built (or KFTOOLS_BACKTEST=python)")
# the maker sends requests at most frames: those go through Python, and so may its page rolls
@pytest.mark.parametrize("path, share, rolled_in_c", [(EXAMPLE, 0.5, True), (MAKER, 0.1, False)])
def test_the_c_loop_hands_full_pages_requests_and_answers_to_python(recording, tmp_path, monkeypatch, path, share,
                                                                   rolled_in_c):
    """The gateway's C loop runs most frames; it returns for a full output page (rolled by Python), a request,
    an answer due or a long wait, and goes on where it stopped: results still equal in-process, byte for byte."""
    calls: list[tuple[int, int, int]] = []
    real = Backtest.lockstep

    def spy(self, batch, k, j, *args):
        got = real(self, batch, k, j, *args)
        calls.append((k, got[0], got[-1]))
        return got

    monkeypatch.setattr(Backtest, "lockstep", spy)
    lockstep_equals_in_process(recording, tmp_path, path, ExchangeConfig(), page_size=4096)  # a roll every ~50 frames
    reasons = {r for _k, _end, r in calls}
    in_c = sum(end - k for k, end, _r in calls)
    assert in_c > Reader(recording).count() * share, (in_c, len(calls))
    assert (3 in reasons) >= rolled_in_c  # LS_ROOM: the output rolled to a new page under the C loop
    assert 2 in reasons  # LS_SETTLE: an answer due before the next frame went through Python
    assert Reader(str(tmp_path / "out.dat")).page_count() >= 2


# -- a strategy killed with kill -9 --------------------------------------------------------------------

def test_a_killed_strategy_stops_the_replay_with_one_line(tmp_path):
    rec = str(tmp_path / "long.dat")
    record_bursty(rec, 50_000)  # far longer than the test lets it run
    orders = tmp_path / "s.orders.dat"
    rep = start_replay(rec, tmp_path, [orders])
    host = subprocess.Popen([sys.executable, HOST, EXAMPLE, "--output", str(tmp_path / "out.dat"), "--orders",
                             str(orders)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        # the event: the strategy has acknowledged a few hundred frames (it is mid-run)
        deadline = time.monotonic() + GUARD
        while True:
            assert time.monotonic() < deadline, "the strategy never got going"
            assert rep.poll() is None, rep.communicate()[1]
            if os.path.exists(orders):
                try:
                    acks = frames_of(orders, MsgType.ACK)
                except Exception:  # noqa: BLE001 - its first page still being created
                    acks = []
                if acks and acks[-1].frames >= 300:
                    break
            time.sleep(0.01)  # polling for the event, not waiting for it to happen
        host.send_signal(signal.SIGKILL)
        host.wait(GUARD)
        out, err = rep.communicate(timeout=GUARD)
    finally:
        for p in (host, rep):
            if p.poll() is None:
                p.kill()
    assert rep.returncode == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kftools: error: ") and str(orders) in lines[0], err
    assert "killed" in lines[0]
    assert "Traceback" not in err and out == ""
    # consistent: the output is a clean journal whose every answer is for an order the strategy journaled
    assert verify(str(tmp_path / "out.dat")).clean
    sent = {f.order_id for f in frames_of(orders, MsgType.ORDER)}
    assert {f.order_id for f in frames_of(tmp_path / "out.dat", MsgType.FILL)} <= sent
    assert not os.path.exists(tmp_path / "out.backtest")  # no results for a backtest that did not finish


# -- bad input ------------------------------------------------------------------------------------------

def test_an_order_journal_that_is_not_a_journal(recording, tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("these are not orders\n" * 10)
    res = run_cli("replay", recording, "--max", "-o", tmp_path / "out.dat", "--order-journal", bad, timeout=GUARD)
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and str(bad) in res.stderr and "Traceback" not in res.stderr
    assert res.stderr.startswith("kftools: error: order journal ")
    assert not os.path.exists(tmp_path / "out.dat")  # refused before anything was written


def _write_requests(w: Writer, symbol: str, requests) -> None:
    for kind, kw in requests:
        if kind == "order":
            w.write_order(kw.get("symbol", symbol), kw.get("order_id", 1), 0, 0, kw.get("price", 100.0),
                          kw.get("quantity", 1.0), 0.0, "x")
        elif kind == "ack":
            w.write(int(MsgType.ACK), frames=kw["frames"])
        else:
            w.write(int(MsgType.CANCEL_REQUEST), symbol=symbol, order_id=kw["order_id"])


@pytest.mark.parametrize("requests, problem", [
    ([("order", {"quantity": -5.0})], "order 1: quantity must be a positive number, not -5.0"),
    ([("order", {"symbol": "NOPE"})], "order 1: unknown symbol 'NOPE'"),
    ([("order", {"price": float("nan")})], "order 1: a limit order needs a positive price"),
    ([("order", {}), ("order", {})], "order 1: order id already used"),
    ([("cancel", {"order_id": 9})], "cancel of order 9, which this journal never sent"),
    ([("ack", {"frames": 1_000_000})], "acknowledges 1,000,000 output frames, only"),  # then it exits: no hang
])
def test_a_bad_request_stops_the_replay_naming_the_journal(recording, tmp_path, requests, problem):
    """The test is the strategy: it answers the first frame with the requests, then acknowledges it."""
    orders = tmp_path / "s.orders.dat"
    out = tmp_path / "out.dat"
    with Writer(str(orders), page_size=1 << 16) as w:
        w.write(int(MsgType.ACK), frames=0)  # ready
        rep = start_replay(recording, tmp_path, [orders])
        try:
            deadline = time.monotonic() + GUARD
            first = None
            while first is None:
                assert time.monotonic() < deadline and rep.poll() is None, "the replay wrote no frame"
                try:
                    first = next(iter(Reader(str(out))), None)
                except Exception:  # noqa: BLE001 - not created yet
                    pass
                time.sleep(0.01)  # polling for the event
            _write_requests(w, first.symbol, requests)
            w.write(int(MsgType.ACK), frames=1)
            _out, err = rep.communicate(timeout=GUARD)
        finally:
            if rep.poll() is None:
                rep.kill()
    assert rep.returncode == 1, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"kftools: error: {orders}: frame ") and problem in err, err
    assert verify(str(out)).clean
    assert not os.path.exists(tmp_path / "out.backtest")


@pytest.mark.parametrize("args, message", [
    (["--free-running"], "--free-running is a clock for --order-journal"),
    (["--order-journal", "{out}"], "an order journal is the strategy's own"),
    (["--order-journal", "{tmp}/o.dat", "--strategy", EXAMPLE], "give one or the other"),
])
def test_order_journal_option_errors(recording, tmp_path, args, message):
    args = [a.format(out=tmp_path / "out.dat", tmp=tmp_path) for a in args]
    res = run_cli("replay", recording, "--max", "-o", tmp_path / "out.dat", *args, timeout=GUARD)
    assert res.returncode == 2 and message in res.stderr and res.stderr.count("\n") == 1, res.stderr
    assert not os.path.exists(tmp_path / "out.dat")


# -- the request and answer types round-trip --------------------------------------------------------------

BACKTEST_TYPES = (MsgType.CANCEL_REQUEST, MsgType.ORDER_UPDATE, MsgType.FILL, MsgType.ACK)


def _field_values(layout):
    """A Hypothesis strategy of one payload's field values, from the layout (declared once in format.py)."""
    kinds = {"u32": hs.integers(0, 2**32 - 1), "u64": hs.integers(0, 2**64 - 1), "f64": hs.floats(width=64)}
    return hs.fixed_dictionaries({
        f.name: (hs.text(alphabet="ABCXYZ019.-", max_size=f.size) if f.is_text else kinds[f.kind])
        for f in layout.fields})


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=hs.data())
def test_backtest_types_round_trip_through_a_journal(tmp_path_factory, data):
    from kftools.journal.format import BUILTIN_LAYOUTS

    path = str(tmp_path_factory.mktemp("rt") / "j.dat")
    written = []
    with Writer(path, page_size=4096) as w:  # small pages: rollover too
        for _ in range(data.draw(hs.integers(0, 60))):
            mt = data.draw(hs.sampled_from(BACKTEST_TYPES))
            values = data.draw(_field_values(BUILTIN_LAYOUTS[mt]))
            src = data.draw(hs.integers(0, 2**32 - 1))
            w.write(int(mt), **values, source=src, trigger_time=data.draw(hs.integers(-(2**63), 2**63 - 1)))
            written.append((int(mt), values, src))
    with Reader(path) as r:
        got = [(f.msg_type, f.fields, f.source) for f in r]
    assert len(got) == len(written)
    for (mt, want, src), (gmt, fields, gsrc) in zip(written, got, strict=True):
        assert (gmt, gsrc) == (mt, src)
        for k, v in want.items():
            assert fields[k] == v or (v != v and fields[k] != fields[k]), k  # NaN is NaN


def test_an_order_journal_exports_and_imports_losslessly(tmp_path):
    src = tmp_path / "s.orders.dat"
    with Writer(str(src), page_size=1 << 16) as w:
        w.write_order("AAPL", 1, 0, 0, 100.5, 3.0, 0.0, "bt-1", trigger_time=5)
        w.write(int(MsgType.CANCEL_REQUEST), symbol="AAPL", order_id=1, trigger_time=6)
        w.write(int(MsgType.ACK), frames=42)
        w.write(int(MsgType.FILL), symbol="AAPL", fill_id=1, order_id=1, side=1, liquidity=1, price=1.5, quantity=2.0,
                fee=0.01, flags=1, dest=3)
        w.write(int(MsgType.ORDER_UPDATE), symbol="AAPL", order_id=1, status=2, quantity=2.0, avg_price=1.5)
    assert run_cli("export", src, tmp_path / "o.parquet", timeout=GUARD).returncode == 0
    assert run_cli("import", tmp_path / "o.parquet", tmp_path / "back.dat", timeout=GUARD).returncode == 0
    a = run_cli("cat", src, "-F", "jsonl", timeout=GUARD).stdout
    b = run_cli("cat", tmp_path / "back.dat", "-F", "jsonl", timeout=GUARD).stdout
    assert a == b and '"type":"Ack"' in a and '"frames":42' in a


@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
@given(latency=hs.sampled_from([0, 300_000]), response=hs.sampled_from([0, 200_000]),
       model=hs.sampled_from(["touch", "queue"]))
def test_lockstep_equals_in_process_with_timers_and_every_order_type(recording, tmp_path_factory, latency, response,
                                                                     model):
    path = os.path.join(ROOT, "tests", "strategies", "every_type.py")
    d = tmp_path_factory.mktemp("types")
    cfg = ExchangeConfig(fill_model=model, latency_ns=latency, response_latency_ns=response)
    inproc = lockstep_equals_in_process(recording, d, path, cfg)
    by = inproc.summary["orders_by_status"]
    assert by["expired"] and by["canceled"] and by["rejected"] and inproc.summary["modifies"]
    assert inproc.summary["timers_fired"]
