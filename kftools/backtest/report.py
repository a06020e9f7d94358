"""The backtest summary as terminal lines (numbers exact: floats as their shortest round-tripping text)."""

from __future__ import annotations


def _num(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return repr(0.0 if v == 0 else v)
    return f"{v:,}"


def _ns(v: int) -> str:
    if v % 1_000_000 == 0:
        return f"{v // 1_000_000} ms"
    if v % 1_000 == 0:
        return f"{v // 1_000} µs"
    return f"{v} ns"


def summary_lines(d: dict) -> list[str]:
    """The backtest part of ``kftools replay --strategy``'s report."""
    fees = d["fees_schedule"]
    by = d["orders_by_status"]
    lines = [
        f"backtest       {d['strategy']}: fill model {d['fill_model']}, latency {_ns(d['latency_ns'])} in / "
        f"{_ns(d['response_latency_ns'])} back, fees maker {_num(fees['maker_bps'])} bp, taker "
        f"{_num(fees['taker_bps'])} bp, {_num(fees['per_order'])} per order" + (", volume-capped" if d["cap_volume"] else ""),
        f"orders         {d['orders']:,} ({by['filled']:,} filled, {by['partially_filled']:,} partly, "
        f"{by['canceled']:,} canceled, {by['rejected']:,} rejected, {by['accepted'] + by['pending']:,} open)",
        f"fills          {d['fills']:,} ({d['maker_fills']:,} maker, {d['taker_fills']:,} taker"
        + (f", {d['no_quote_fills']:,} at the last price: no quotes" if d["no_quote_fills"] else "")
        + f"), fill ratio {_num(d['fill_ratio'])}",
        f"traded         volume {_num(d['traded_volume'])}, turnover {_num(d['turnover'])}",
        f"P&L            net {_num(d['net_pnl'])} = realised {_num(d['realized_pnl'])} + unrealised "
        f"{_num(d['unrealized_pnl'])} - fees {_num(d['fees'])}",
        f"risk           max drawdown {_num(d['max_drawdown'])}, Sharpe-like {_num(d['sharpe'])} ({d['sharpe_period']})",
    ]
    if d["positions"]:
        lines.append(f"{'symbol':<14} {'position':>12} {'avg price':>20} {'realised':>20} {'unrealised':>20} "
                     f"{'fills':>6} {'volume':>10}")
        for s, p in d["positions"].items():
            lines.append(f"{s:<14} {_num(p['quantity']):>12} {_num(p['avg_price']):>20} {_num(p['realized_pnl']):>20} "
                         f"{_num(p['unrealized_pnl']):>20} {p['fills']:>6,} {_num(p['volume']):>10}")
    if d.get("strategy_summary") is not None:
        lines.append(f"strategy says  {d['strategy_summary']}")
    if d.get("results"):
        lines.append(f"results        {d['results']}/ ({', '.join(d.get('result_files') or ())})")
    return lines

