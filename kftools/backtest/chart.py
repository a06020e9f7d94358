"""The backtest chart: P&L (equity less starting cash) with fills, drawdown, and position per symbol (PNG)."""

from __future__ import annotations

import numpy as np

from .engine import Backtest


def draw(bt: Backtest, summary: dict, path: str) -> None:
    """Write a PNG of the P&L curve, drawdown and positions over simulated time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = bt.equity
    start = bt.first_time if bt.first_time is not None else (rows[0][0] if rows else 0)
    t = (np.asarray([r[0] for r in rows], np.int64) - start) / 1e9
    pnl = np.asarray([r[1] for r in rows], np.float64) - bt.exchange.account.start_cash
    dd = np.maximum.accumulate(pnl) - pnl if len(pnl) else pnl
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(10, 7.5), sharex=True,
                                        gridspec_kw={"height_ratios": [3, 1.2, 1.6]})
    title = (f"{summary.get('strategy') or 'strategy'}  ·  fill model {summary['fill_model']}  ·  latency "
             f"{summary['latency_ns'] / 1e3:g} µs / {summary['response_latency_ns'] / 1e3:g} µs")
    fig.suptitle(title, fontsize=11)
    ax1.step(t, pnl, where="post", color="#1f5fa8", lw=1.4, label="P&L, net of fees (marked to mid)")
    ax1.axhline(0, color="#888", lw=0.7)
    fills = bt.exchange.fills
    if fills:
        ft = (np.asarray([f[0] for f in fills], np.int64) - start) / 1e9
        fv = np.interp(ft, t, pnl) if len(t) else np.zeros(len(ft))
        buys = np.asarray([f[4] == 0 for f in fills])
        ax1.scatter(ft[buys], fv[buys], marker="^", s=18, color="#2a9d4b", label="buy fill", zorder=3)
        ax1.scatter(ft[~buys], fv[~buys], marker="v", s=18, color="#c0392b", label="sell fill", zorder=3)
    net = summary["net_pnl"]
    sharpe = summary["sharpe"]
    ax1.set_title(f"net P&L {net:,.2f}  (realised {summary['realized_pnl']:,.2f}, unrealised "
                  f"{summary['unrealized_pnl']:,.2f}, fees {summary['fees']:,.2f})  ·  max drawdown "
                  f"{summary['max_drawdown']:,.2f}  ·  Sharpe-like {'-' if sharpe is None else f'{sharpe:.2f}'}",
                  fontsize=9)
    ax1.set_ylabel("P&L")
    ax1.legend(loc="upper left", fontsize=8, frameon=False)
    ax1.grid(alpha=0.3)
    ax2.fill_between(t, -dd, 0, step="post", color="#c0392b", alpha=0.35, lw=0)
    ax2.set_ylabel("drawdown")
    ax2.grid(alpha=0.3)
    symbols = sorted({s for r in rows for s in r[6]})
    for s in symbols:
        ax3.step(t, [r[6].get(s, 0.0) for r in rows], where="post", lw=1.1, label=s)
    ax3.axhline(0, color="#888", lw=0.7)
    ax3.set_ylabel("position")
    ax3.set_xlabel("seconds since the first frame (recording time)")
    if symbols:
        ax3.legend(loc="upper left", fontsize=8, frameon=False, ncol=min(6, len(symbols)))
    ax3.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
