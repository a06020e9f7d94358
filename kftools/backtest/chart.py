"""chart.png: the report's content as one picture, for people who want a file (see report.py for the page).

P&L and drawdown on the recording's clock (UTC) in the account's units, price of the most traded symbol with
its fills (markers only while they stay readable, else fills per bar), position per symbol as one small step
panel each, and P&L per symbol. The legend sits outside the data; the title names the strategy, not its path.
"""

from __future__ import annotations

import os

import numpy as np

from ..extras import require

MAX_MARKERS = 150  # more fills than this are drawn as counts per bar: markers would bury the line
MAX_POSITION_PANELS = 6


def draw_folder(folder: str, path: str | None = None, recordings: list[str] | None = None) -> str:
    """Write ``chart.png`` (or ``path``) for the result folder ``folder``; returns the path."""
    require("backtest", "a backtest chart")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    from .report import ANNUALISATION, duration, fill_sides, market_prices, money, ratio, read_result, strategy_name

    path = path or os.path.join(folder, "chart.png")
    s, st, unit, eq, fills, t_ns, pnl, dd, symbols = read_result(folder)
    t = t_ns.astype("datetime64[ns]")
    fsym = np.asarray(fills.column("symbol").cast("string").to_pylist(), dtype=object)
    ft = fills.column("gen_time").cast("int64").to_numpy().astype("datetime64[ns]")
    fpx = fills.column("price").to_numpy()
    fside = fill_sides(fills)
    vol = {sym: float(np.sum(fsym == sym)) for sym in symbols}
    shown = sorted(symbols, key=lambda x: (-vol[x], x))[:MAX_POSITION_PANELS]
    top = shown[0] if shown else None

    n_pos = max(1, len(shown))
    ratios = [3.0, 1.1, 2.4, 0.8] + [0.55] * n_pos
    fig = plt.figure(figsize=(12, 3.2 + 3.4 + 0.55 * n_pos + 1.4))
    gs = fig.add_gridspec(len(ratios), 2, height_ratios=ratios, width_ratios=[4.2, 1], hspace=0.4, wspace=0.22)
    ax1 = fig.add_subplot(gs[0, 0])
    axes = [ax1] + [fig.add_subplot(gs[k, 0], sharex=ax1) for k in range(1, 4 + n_pos)]
    fig.suptitle(f"{strategy_name(s)}  ·  fill model {s['fill_model']}  ·  latency {duration(s['latency_ns'])} in / "
                 f"{duration(s['response_latency_ns'])} back", fontsize=12, x=0.02, ha="left")
    a = axes[0]
    a.step(t, pnl, where="post", color="#1f5fa8", lw=1.3, label="P&L net of fees\n(marked to mid)")
    a.axhline(0, color="#888", lw=0.7)
    a.set_ylabel(unit)
    a.set_title(f"net P&L {money(s['net_pnl'], unit)}  ·  max drawdown {money(s['max_drawdown'])}  ·  "
                f"Sharpe {ratio(st['sharpe'])} "
                + (f"({st['bars']} bars of {st['bar']}, {ANNUALISATION})" if st["bars"] else f"(none: {st['bar']})"),
                fontsize=9, loc="left")
    a = axes[1]
    a.fill_between(t, -dd, 0, step="post", color="#c0392b", alpha=0.35, lw=0, label="drawdown")
    a.set_ylabel(unit)
    a = axes[2]
    if top is not None:
        prices = market_prices(recordings, [top]) if recordings else {}
        if top in prices:
            pt, py = prices[top]
            a.plot(pt.astype("datetime64[ns]"), py, color="#6b7280", lw=0.8, label=f"{top} mid")
        sel = fsym == top
        if sel.sum() <= MAX_MARKERS:
            b, sl = sel & (fside == 0), sel & (fside == 1)
            a.scatter(ft[b], fpx[b], marker="^", s=22, color="#1a7f37", label="buy fill", zorder=3)
            a.scatter(ft[sl], fpx[sl], marker="v", s=22, color="#b3261e", label="sell fill", zorder=3)
            if top not in prices:
                a.step(ft[sel], fpx[sel], where="post", color="#6b7280", lw=0.8, label=f"{top} fill price")
        else:
            if top not in prices:
                a.step(ft[sel], fpx[sel], where="post", color="#6b7280", lw=0.8, label=f"{top} fill price")
        # fills per bar: buys up, sells down (a count stays readable where markers would bury the price)
        edges = np.linspace(t[0].astype(np.int64), t[-1].astype(np.int64), 121)
        bx = axes[3]
        for side, sign, color, lab in ((0, 1, "#1a7f37", "buy fills"), (1, -1, "#b3261e", "sell fills")):
            c, _ = np.histogram(ft[sel & (fside == side)].astype(np.int64), edges)
            bx.stairs(sign * c, edges.astype(np.int64).astype("datetime64[ns]"), fill=True, color=color, label=lab)
        bx.axhline(0, color="#888", lw=0.6)
        bx.set_ylabel("fills", fontsize=8)
        bx.tick_params(axis="y", labelsize=7)
        bx.set_title(f"{top} fills per bar of {duration(int(edges[1] - edges[0]))}", fontsize=9, loc="left")
        a.set_ylabel(f"{top} price")
        a.set_title(f"{top}: the most traded symbol", fontsize=9, loc="left")
    for k, sym in enumerate(shown):
        a = axes[4 + k]
        a.step(t, eq.column(f"position.{sym}").to_numpy(), where="post", color="#7b3fa0", lw=1.0)
        a.axhline(0, color="#aaa", lw=0.6)
        a.set_ylabel(sym, rotation=0, ha="right", va="center", fontsize=8)
        a.tick_params(axis="y", labelsize=7)
    if shown:
        axes[4].set_title("position per symbol" + (f" ({len(shown)} most traded of {len(symbols)})"
                                                    if len(symbols) > len(shown) else ""), fontsize=9, loc="left")
    for a in axes:
        a.grid(alpha=0.3)
        if a is not axes[-1]:
            plt.setp(a.get_xticklabels(), visible=False)
            a.xaxis.get_offset_text().set_visible(False)
    for a in axes[:4]:
        if not a.get_legend() and a.get_legend_handles_labels()[0]:
            a.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
    loc = mdates.AutoDateLocator()
    axes[-1].xaxis.set_major_locator(loc)
    axes[-1].xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))
    axes[-1].set_xlabel("time (UTC, recording clock)")
    # P&L per symbol, beside the price panel
    pos = s.get("positions") or {}
    ax = fig.add_subplot(gs[4:, 1])
    names = list(pos)[::-1]
    ax.barh(names, [pos[n]["realized_pnl"] for n in names], color="#1f5fa8", label="realised")
    ax.barh(names, [pos[n]["unrealized_pnl"] for n in names], left=[pos[n]["realized_pnl"] for n in names],
            color="#8fb3de", label="unrealised")
    ax.axvline(0, color="#888", lw=0.7)
    ax.set_title(f"P&L per symbol\nbefore fees ({unit})", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.06), ncol=2)
    ax.grid(alpha=0.3, axis="x")
    fig.subplots_adjust(left=0.08, right=0.97, top=0.93, bottom=0.06)
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return path
