"""The backtest's newer rules, each on a hand-computed case: order types, modify, timers, depth and queues,
the public API and the command."""

from __future__ import annotations

import json
import os

import pytest
from kftest import ROOT, run_cli
from test_backtest import MS, T0, buy, fills, run, sell

import kftools
from kftools import Liquidity, OrderStatus, OrderType, RejectReason, Side, Writer
from kftools.backtest import ExchangeConfig
from kftools.replay import Replay

MAKER = os.path.join(ROOT, "examples", "strategy_maker.py")
BOOK = [("t", 0, "A", 100.0, 100.0, 101.0, 0.0), ("t", 1, "A", 100.0, 100.0, 101.0, 0.0),
        ("t", 2, "A", 100.0, 100.0, 101.0, 0.0)]  # quotes, no prints


def statuses(s):
    return [(u.order_id, OrderStatus(u.status).name, RejectReason(u.reject_reason).name) for u in s.updates]


def test_ioc_takes_what_it_can_and_expires_the_rest(tmp_path):
    s, ex, _ = run(tmp_path, BOOK, {0: lambda c: (buy(101.0, 2, order_type=OrderType.LIMIT_IOC)(c),
                                                  buy(100.5, 2, order_type=OrderType.LIMIT_IOC)(c))})
    assert fills(ex) == [(0.0, 1, Side.BUY, Liquidity.TAKER, 101.0, 2.0)]
    assert statuses(s) == [(1, "ACCEPTED", "NONE"), (1, "FILLED", "NONE"), (2, "ACCEPTED", "NONE"),
                           (2, "EXPIRED", "NONE")]


def test_post_only_is_rejected_when_it_would_take_and_rests_otherwise(tmp_path):
    s, ex, _ = run(tmp_path, BOOK, {0: lambda c: (buy(101.0, 1, order_type=OrderType.POST_ONLY)(c),
                                                  buy(100.0, 1, order_type=OrderType.POST_ONLY)(c))})
    assert ex.fills == []
    assert statuses(s) == [(1, "REJECTED", "POST_ONLY_WOULD_TAKE"), (2, "ACCEPTED", "NONE")]


def test_fok_fills_entirely_or_not_at_all_against_depth(tmp_path):
    path = tmp_path / "d.dat"
    with Writer(str(path)) as w:
        for k in range(3):
            w.write_depth("A", [(100.0, 5.0)], [(101.0, 3.0), (101.5, 4.0)], gen_time=T0 + k * MS)

    class S:
        def on_start(self, ctx):
            self.n = 0

        def on_depth(self, ctx, f):
            if self.n == 0:
                ctx.send_order("A", Side.BUY, 101.5, 8.0, order_type=OrderType.LIMIT_FOK)  # 7 shown: expires
                ctx.send_order("A", Side.BUY, 101.5, 6.0, order_type=OrderType.LIMIT_FOK)  # 3 @ 101 + 3 @ 101.5
            self.n += 1

    res = kftools.backtest(str(path), S)
    got = [(r["order_id"], r["price"], r["quantity"], r["liquidity"]) for r in res.fills.to_pylist()]
    assert got == [(2, 101.0, 3.0, "taker"), (2, 101.5, 3.0, "taker")]
    assert res.summary["orders_by_status"]["expired"] == 1


def test_modify_keeps_or_loses_the_queue(tmp_path):
    # depth: 5 ahead of us at 100. Reducing our size keeps the place; raising the price to 100 again after a
    # move resets the queue to the size displayed then.
    path = tmp_path / "q.dat"
    with Writer(str(path)) as w:
        w.write_depth("A", [(100.0, 5.0)], [(101.0, 5.0)], gen_time=T0)
        w.write_depth("A", [(100.0, 5.0)], [(101.0, 5.0)], gen_time=T0 + MS)  # modify (smaller) sent here
        w.write_trade("A", 1, 100.0, 6.0, Side.SELL, gen_time=T0 + 2 * MS)  # 5 ahead, then 1 to us
        w.write_depth("A", [(100.0, 8.0)], [(101.0, 5.0)], gen_time=T0 + 3 * MS)

    class S:
        def __init__(self, grow=False):
            self.grow = grow
            self.k = 0

        def on_frame(self, ctx, f):
            if self.k == 0:
                ctx.send_order("A", Side.BUY, 100.0, 4.0)
            elif self.k == 1:
                ctx.modify(1, quantity=6.0 if self.grow else 3.0)
            self.k += 1

        on_depth = on_trade = on_frame

    keep = kftools.backtest(str(path), S, fill_model="queue")
    assert [(r["quantity"], r["liquidity"]) for r in keep.fills.to_pylist()] == [(1.0, "maker")]
    lose = kftools.backtest(str(path), S, params={"grow": True}, fill_model="queue")
    # a larger quantity re-queues behind the 5 shown at 1 ms: the same print of 6 still reaches it, 1 of it
    assert [(r["quantity"]) for r in lose.fills.to_pylist()] == [1.0]
    upd = lose.updates.to_pylist()
    assert [(u["status"], u["side"], u["order_type"]) for u in upd][:2] == [("accepted", "buy", "limit"),
                                                                             ("modified", "buy", "limit")]


def test_queue_models_on_depth_match_hand_computation(tmp_path):
    # our buy 2 @ 100 joins 10 shown (front 10, nobody behind). 6 join behind us (16 shown), then 6 leave (10):
    # risk-averse keeps front = min(10, 10) = 10; power-3 probability takes the decrease from the front with
    # p = 10**3 / (6**3 + 10**3): front = 10 - (1 - 6**3 / (6**3 + 10**3)) * 6 = 5.0658 (hftbacktest's formula).
    # Then a sell print of 6 at 100: risk-averse, 4 still ahead: nothing; prob, 0.9342 reaches us.
    path = tmp_path / "p.dat"
    with Writer(str(path)) as w:
        w.write_depth("A", [(100.0, 10.0)], [(101.0, 5.0)], gen_time=T0)
        w.write_depth("A", [(100.0, 16.0)], [(101.0, 5.0)], gen_time=T0 + MS)
        w.write_depth("A", [(100.0, 10.0)], [(101.0, 5.0)], gen_time=T0 + 2 * MS)
        w.write_trade("A", 1, 100.0, 6.0, Side.SELL, gen_time=T0 + 3 * MS)
        w.write_trade("A", 2, 100.0, 9.0, Side.BUY, gen_time=T0 + 4 * MS)  # a buyer: never fills our bid

    class S:
        def on_depth(self, ctx, f):
            if not ctx.orders_sent:
                ctx.send_order("A", Side.BUY, 100.0, 2.0)

    ra = kftools.backtest(str(path), S, fill_model="queue")
    assert ra.fills.num_rows == 0
    pb = kftools.backtest(str(path), S, fill_model="prob:3")
    front = 10 - (1 - 6**3 / (6**3 + 10**3)) * 6
    assert [(r["quantity"], r["price"]) for r in pb.fills.to_pylist()] == [(pytest.approx(6 - front), 100.0)]
    with pytest.raises(kftools.UsageError, match="fill-model"):
        kftools.backtest(str(path), S, fill_model="prob:-1")


def test_timers_fire_on_the_recording_clock_in_order(tmp_path):
    class S:
        def on_start(self, ctx):
            self.log = []

        def on_ticker(self, ctx, f):
            if ctx.now() == T0:
                ctx.schedule(after=MS // 2, data="a")  # between the 0 and 1 ms frames
                ctx.schedule(at=T0 + MS, data="b")  # at a frame's time: after the frame (market data first)
                ctx.schedule(at=T0 + 50 * MS, data="c")  # after the recording: never
            self.log.append(("tick", ctx.now()))

        def on_timer(self, ctx, timer):
            self.log.append((timer.data, ctx.now()))
            if timer.data == "a":
                ctx.send_order("A", Side.BUY, 0, 1, order_type=OrderType.MARKET)

        def on_stop(self, ctx):
            self.summary = {"log": [(k, t - T0) for k, t in self.log]}

    s, ex, st = run(tmp_path, BOOK, strategy=S())
    assert s.summary["log"] == [("tick", 0), ("a", MS // 2), ("tick", MS), ("b", MS), ("tick", 2 * MS)]
    assert fills(ex) == [(0.5, 1, Side.BUY, Liquidity.TAKER, 101.0, 1.0)]
    assert (st.backtest.summary["timers_fired"], st.backtest.summary["timers_not_fired"]) == (2, 1)


def test_non_finite_quotes_are_not_quotes(tmp_path):
    events = [("t", 0, "A", 100.0, 100.0, 101.0, 1.0), ("t", 1, "A", 100.0, 100.0, float("inf"), 1.0),
              ("t", 2, "A", 100.0, 100.0, 101.0, 1.0)]
    _s, ex, st = run(tmp_path, events, {1: buy(0, 1, order_type=OrderType.MARKET)})
    assert fills(ex) == [(1.0, 1, Side.BUY, Liquidity.TAKER, 101.0, 1.0)]  # the ask in force stayed 101


def test_api_and_command_give_the_replays_result(tmp_path):
    path = tmp_path / "rec.dat"
    with Writer(str(path)) as w:
        for k in range(3000):
            px = round(100 + ((k * 7919) % 13 - 6) * 0.01, 2)
            w.write_ticker("A", px, round(px - 0.01, 2), round(px + 0.01, 2), float(1 + k % 4), gen_time=T0 + k * 1000)
            if k % 5 == 0:
                w.write_trade("A", k, px, 2.0, k % 2, gen_time=T0 + k * 1000 + 500)
    opts = dict(fill_model="queue", latency="200us")
    api = kftools.backtest(str(path), MAKER, params={"size": 2}, results=str(tmp_path / "api"), chart=False, **opts)
    res = run_cli("backtest", str(path), "--strategy", MAKER, "--param", "size=2", "--fill-model", "queue",
                  "--latency", "200us", "--results", str(tmp_path / "cli"), "--no-chart", "--json")
    assert res.returncode == 0, res.stderr
    cli = json.loads(res.stdout)
    assert cli["params"] == {"size": 2} and api.summary["fills"] > 10
    for k in ("fills", "orders", "net_pnl", "realized_pnl", "fees", "max_drawdown", "orders_by_status"):
        assert cli[k] == api.summary[k], k
    for name in ("orders", "fills", "equity", "updates"):
        a = (tmp_path / "api" / f"{name}.parquet").read_bytes()
        assert a == (tmp_path / "cli" / f"{name}.parquet").read_bytes(), name


@pytest.fixture(autouse=True)
def _examples_on_path(monkeypatch):
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("examples_maker", MAKER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setitem(sys.modules, "examples_maker", mod)


def test_replay_max_and_backtest_agree(tmp_path):
    import examples_maker

    path = tmp_path / "rec.dat"
    with Writer(str(path)) as w:
        for k in range(2000):
            px = round(100 + ((k * 31) % 9 - 4) * 0.01, 2)
            w.write_ticker("A", px, round(px - 0.01, 2), round(px + 0.01, 2), 2.0, gen_time=T0 + k * 1000)
    api = kftools.backtest(str(path), examples_maker.Maker, params={"size": 3}, fill_model="touch",
                           latency=300_000)
    rep = Replay(str(path), str(tmp_path / "o.dat"), speed=None, strategy=examples_maker.Maker(size=3),
                 exchange=ExchangeConfig(fill_model="touch", latency_ns=300_000), chart=False)
    st = rep.run()
    assert api.fills.num_rows > 5
    assert api.fills.equals(st.backtest.fills) and api.orders.equals(st.backtest.orders)
    assert api.equity.equals(st.backtest.equity)


def test_param_errors_are_one_line(tmp_path):
    path = tmp_path / "rec.dat"
    with Writer(str(path)) as w:
        w.write_ticker("A", 100.0, 99.0, 101.0, 1.0, gen_time=T0)
    res = run_cli("backtest", str(path), "--strategy", MAKER, "--param", "nope=1")
    assert res.returncode == 2 and "does not take these parameters" in res.stderr and "Traceback" not in res.stderr
    res = run_cli("backtest", str(path), "--strategy", MAKER, "--param", "size")
    assert res.returncode == 2 and "NAME=VALUE" in res.stderr
    assert not (tmp_path / "rec.backtest").exists()


def test_sell_side_mirror(tmp_path):
    # a resting sell at 101 fills when a buyer prints through it, not when a seller does
    events = [("t", 0, "A", 100.0, 100.0, 101.5, 1.0), ("x", 1, "A", 101.5, 3.0, Side.SELL),
              ("x", 2, "A", 101.5, 3.0, Side.BUY)]
    _s, ex, _ = run(tmp_path, events, {0: sell(101.0, 2)})
    assert fills(ex) == [(2.0, 1, Side.SELL, Liquidity.MAKER, 101.0, 2.0)]


def test_result_files_are_valid_json_and_huge_orders_are_rejected(tmp_path):
    # issue 24 item 9: an ask of inf is no quote; an order whose notional is not finite is rejected
    events = [("t", 0, "A", 100.0, 100.0, float("inf"), 0.0), ("t", 1, "A", 100.0, 100.0, 101.0, 0.0)]
    s, ex, st = run(tmp_path, events, {0: lambda c: (buy(0, 1, order_type=OrderType.MARKET)(c),
                                                     buy(1e300, 1e300)(c))})
    assert statuses(s)[0] == (1, "REJECTED", "NO_MARKET")  # the inf ask is no quote, and nothing printed yet
    assert (2, "REJECTED", "NOT_FINITE") in statuses(s)
    text = (tmp_path / "out.backtest" / "summary.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"summary.json holds {c}"))


def test_an_interrupted_replay_marks_its_results(tmp_path):
    # issue 24 item 10: a replay stopped early writes a result folder that says so
    from test_backtest import record

    src = record(tmp_path / "rec.dat", [("t", k, "A", 100.0, 99.0, 101.0, 1.0) for k in range(50)])

    class Stopper:
        def __init__(self):
            self.n = 0

        def on_ticker(self, ctx, f):
            self.n += 1

    strat = Stopper()
    rep = Replay(src, str(tmp_path / "o.dat"), speed=None, strategy=strat, chart=False,
                 stop=lambda: strat.n >= 10)
    st = rep.run()
    assert st.interrupted and st.backtest.summary["interrupted"] is True
    with open(tmp_path / "o.backtest" / "summary.json") as fh:
        assert json.load(fh)["interrupted"] is True
    from kftools.backtest.report import summary_lines

    assert summary_lines(st.backtest.to_dict())[0].startswith("INTERRUPTED")


@pytest.mark.parametrize("value", ["1e12s", "1e400", "2e13ms", "-1ms", "nan"])
def test_out_of_range_latencies_are_one_line_before_the_run(tmp_path, value):
    # issue 24 item 16: refused before anything runs, one line, nothing written
    path = tmp_path / "rec.dat"
    with Writer(str(path)) as w:
        w.write_ticker("A", 100.0, 99.0, 101.0, 1.0, gen_time=T0)
    res = run_cli("backtest", str(path), "--strategy", MAKER, "--latency", value)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "--latency" in res.stderr, res.stderr
    assert not (tmp_path / "rec.backtest").exists()


@pytest.mark.parametrize("body, says", [
    ("raise SystemExit(0)", "SystemExit: 0"),
    ("raise SystemExit(3)", "SystemExit: 3"),
])
def test_a_strategy_that_exits_is_a_strategy_error_not_the_commands_exit(tmp_path, body, says):
    # issue 24 item 14: sys.exit(0) in a strategy made replay exit 0 with no results, SystemExit(3) exit 3
    path = tmp_path / "rec.dat"
    with Writer(str(path)) as w:
        for k in range(5):
            w.write_ticker("A", 100.0, 99.0, 101.0, 1.0, gen_time=T0 + k * MS)
    strat = tmp_path / "quits.py"
    strat.write_text(f"class Quits:\n    def on_ticker(self, ctx, f):\n        {body}\n")
    for args in (["backtest", str(path), "--strategy", str(strat)],
                 ["replay", str(path), "--max", "-o", str(tmp_path / "o.dat"), "--strategy", str(strat), "--force"]):
        res = run_cli(*args)
        assert res.returncode == 1, (args, res.returncode, res.stderr)
        assert res.stderr.count("\n") == 1 and "Quits.on_ticker failed" in res.stderr and says in res.stderr
        assert not (tmp_path / "rec.backtest").exists() and not (tmp_path / "o.backtest").exists()


def test_result_folder_problems_are_one_line(tmp_path):
    # issue 24 item 15: a folder named like a result file inside --force's folder is refused before the run
    path = tmp_path / "rec.dat"
    with Writer(str(path)) as w:
        w.write_ticker("A", 100.0, 99.0, 101.0, 1.0, gen_time=T0)
    res_dir = tmp_path / "res"
    (res_dir / "orders.parquet").mkdir(parents=True)
    res = run_cli("backtest", str(path), "--strategy", MAKER, "--results", str(res_dir), "--force")
    assert res.returncode == 2 and "not a kftools result file" in res.stderr and res.stderr.count("\n") == 1
    assert (res_dir / "orders.parquet").is_dir()


def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path):
    # issue 24 item 15: the results cannot be written (a tiny tmpfs stands in for a full disk)
    import subprocess

    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (not root)")
    try:
        path = tmp_path / "rec.dat"
        with Writer(str(path)) as w:
            for k in range(3000):
                w.write_ticker("A", 100.0 + (k % 5) * 0.01, 99.99, 100.05, 1.0, gen_time=T0 + k * 1000)
        res = run_cli("backtest", str(path), "--strategy", MAKER, "--results", str(mnt / "res"), "--no-chart")
        assert res.returncode != 0 and res.stderr.count("\n") == 1 and "cannot write the results" in res.stderr, \
            res.stderr
        assert os.listdir(mnt) == []
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)
