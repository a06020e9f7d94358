"""Backtests on Kungfu's own journals: its Quote is the book (10 levels a side), its Transaction a print with
its aggressor, a cancellation reported as a Transaction is no print; 2.4 and the later generations alike."""

from __future__ import annotations

import pytest
from kungfu_writer import KungfuTestWriter, pack

import kftools
from kftools import OrderType, Side
from kftools.journal import yijinjing as kf

T0 = 1_700_000_000_000_000_000
MS = 1_000_000
GENERATIONS = [
    (kf.KUNGFU_2_4, kf.MsgType.Quote, kf.MsgType.Transaction, kf.QUOTE, kf.TRANSACTION),
    (kf.KUNGFU_2_X_65, kf.LaterMsgType.Quote, kf.LaterMsgType.Transaction,
     kf.LATER_LAYOUTS[kf.LaterMsgType.Quote], kf.LATER_LAYOUTS[kf.LaterMsgType.Transaction]),
]


def quote(layout, bids, asks) -> bytes:
    pad = [0.0] * 10
    return pack(layout, instrument_id=b"600000", exchange_id=b"SSE", last_price=10.0, volume=123456,
                bid_price=([p for p, _ in bids] + pad)[:10], bid_volume=([v for _, v in bids] + pad)[:10],
                ask_price=([p for p, _ in asks] + pad)[:10], ask_volume=([v for _, v in asks] + pad)[:10])


def transaction(layout, price, volume, buyer: bool, cancel: bool = False) -> bytes:
    if "bs_flag" in layout.names:  # 2.4: BsFlag Buy 1, Sell 2
        aggressor = {"bs_flag": 1 if buyer else 2}
    else:  # later: Side Buy 0, Sell 1
        aggressor = {"side": 0 if buyer else 1}
    return pack(layout, instrument_id=b"600000", exchange_id=b"SSE", price=price, volume=volume,
                exec_type=1 if cancel else 2, **aggressor)


class Sell:
    """At the first Quote: a sell resting at the best ask (2 lots), and a buy market order of 5 lots."""

    def on_start(self, ctx):
        self.n = 0
        self.seen = []

    def on_frame(self, ctx, f):
        self.seen.append((f.type_name, ctx.quote("600000")))
        if self.n == 0:
            ctx.send_order("600000", Side.SELL, 10.01, 2.0)
            ctx.send_order("600000", Side.BUY, 0.0, 5.0, order_type=OrderType.MARKET)
        self.n += 1


@pytest.mark.parametrize("gen,quote_t,trans_t,quote_l,trans_l", GENERATIONS, ids=[g[0].name for g in GENERATIONS])
def test_a_kungfu_recording_is_a_book_and_prints(tmp_path, gen, quote_t, trans_t, quote_l, trans_l):
    w = KungfuTestWriter(str(tmp_path / "md" / "live"), generation=gen)
    w.write(int(quote_t), quote(quote_l, [(10.0, 9)], [(10.01, 3), (10.02, 4)]), T0)
    w.write(int(trans_t), transaction(trans_l, 10.01, 100, buyer=True, cancel=True), T0 + MS)  # withdrawn: no print
    w.write(int(trans_t), transaction(trans_l, 10.01, 50, buyer=False), T0 + 2 * MS)  # a seller took: not our sell
    w.write(int(trans_t), transaction(trans_l, 10.01, 4, buyer=True), T0 + 3 * MS)  # 3 ahead of us, then 1 for us
    w.write(int(quote_t), quote(quote_l, [(10.0, 9)], [(10.01, 1), (10.02, 4)]), T0 + 4 * MS)
    w.close()
    res = kftools.backtest(str(tmp_path / "md" / "live"), Sell, fill_model="queue")
    got = [(r["order_id"], r["price"], r["quantity"], r["liquidity"]) for r in res.fills.to_pylist()]
    # the market buy walks the book: 3 at 10.01, 2 at 10.02; the resting sell is 4th in the queue at 10.01 (3
    # shown when it joined): the withdrawn 100 and the seller-initiated 50 do not move it, the buyer's 4 fills 1
    assert got == [(2, 10.01, 3.0, "taker"), (2, 10.02, 2.0, "taker"), (1, 10.01, 1.0, "maker")]
    assert res.summary["frames"] == 5
    assert res.summary["positions"]["600000"]["quantity"] == 5.0 - 1.0
