"""How a backtest reads: the terminal summary (rounded for reading) and report.html (Plotly, in the browser).

Everything here is a function of a result folder (orders/fills/equity Parquet and summary.json), never of the
engine, so a report can be drawn again from the files. summary.json keeps the exact numbers; what is shown
here is rounded. report.html is self-contained: plotly.js is inlined (or, for the many runs of a sweep, read
from the sweep folder's own copy), so it opens in any browser with no network.
"""

from __future__ import annotations

import html
import json
import math
import os
from typing import Any

import numpy as np

from ..extras import require

#: bar lengths the statistics may use (seconds), the longest giving at least MIN_BARS bars is chosen
BAR_CHOICES = ((86_400, "1 day"), (3_600, "1 hour"), (900, "15 min"), (300, "5 min"), (60, "1 min"), (10, "10 s"),
               (1, "1 s"))
MIN_BARS = 30
#: annualisation: a trading year of 252 days of 6.5 hours (equities); a daily bar counts as 252 a year
YEAR_DAYS = 252
DAY_SECONDS = 6.5 * 3600
ANNUALISATION = "annualised over 252 trading days of 6.5 h"
SCREEN_POINTS = 2_000  # points per line drawn: about a screen's width in pixels, min and max kept per pixel


# -- rounding for reading --------------------------------------------------------------------------------
def money(v: float | None, unit: str = "") -> str:
    """``-132.80809999998954`` -> ``-132.81`` (thousands separated)."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    s = f"{v:,.2f}"
    s = "0.00" if s == "-0.00" else s
    return f"{s} {unit}".rstrip()


def price(v: float | None) -> str:
    """A price: as many decimals as it has, up to 6 (``100.015``, ``99.5``)."""
    if v is None or not math.isfinite(v):
        return "-"
    s = f"{v:,.6f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def qty(v: float | None) -> str:
    if v is None or not math.isfinite(v):
        return "-"
    return f"{int(v):,}" if float(v).is_integer() else price(v)


def pct(v: float | None) -> str:
    """``0.9737820919894765`` -> ``97.4%``."""
    if v is None or not math.isfinite(v):
        return "-"
    return f"{v * 100:.1f}%"


def ratio(v: float | None) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{v:.2f}"


def duration(ns: int) -> str:
    """``1_000_000`` -> ``1 ms``, ``200_000`` -> ``200 µs``, ``1_500_000`` -> ``1.5 ms``."""
    if ns == 0:
        return "0"
    for unit, size in (("s", 10**9), ("ms", 10**6), ("µs", 10**3)):
        if abs(ns) >= size:
            return f"{ns / size:.3f}".rstrip("0").rstrip(".") + f" {unit}"
    return f"{ns} ns"


def _fees_text(fees: dict) -> str:
    return (f"maker {price(fees['maker_bps'])} bp, taker {price(fees['taker_bps'])} bp, "
            f"{money(fees['per_order'])} per order")


def summary_lines(d: dict) -> list[str]:
    """The backtest part of ``kftools replay --strategy``'s report, rounded for reading (summary.json is exact)."""
    fees = d["fees_schedule"]
    by = d["orders_by_status"]
    unit = currency(d)
    lines = ["INTERRUPTED    the replay was stopped early: these results cover only the frames before"] \
        if d.get("interrupted") else []
    lines += [
        f"backtest       {d['strategy']}: fill model {d['fill_model']}, latency {duration(d['latency_ns'])} in / "
        f"{duration(d['response_latency_ns'])} back, fees {_fees_text(fees)}"
        + (", volume-capped" if d["cap_volume"] else ""),
        f"orders         {d['orders']:,} ({by['filled']:,} filled, {by['partially_filled']:,} partly, "
        f"{by['canceled']:,} canceled, {by['rejected']:,} rejected, {by.get('expired', 0):,} expired, "
        f"{by['accepted'] + by.get('modified', 0) + by['pending']:,} open)",
        f"fills          {d['fills']:,} ({d['maker_fills']:,} maker, {d['taker_fills']:,} taker"
        + (f", {d['no_quote_fills']:,} at the last price: no quotes" if d["no_quote_fills"] else "")
        + f"), fill ratio {pct(d['fill_ratio'])}",
        f"traded         volume {qty(d['traded_volume'])}, turnover {money(d['turnover'], unit)}",
        f"P&L            net {money(d['net_pnl'])} = realised {money(d['realized_pnl'])} + unrealised "
        f"{money(d['unrealized_pnl'])} - fees {money(d['fees'])} ({unit})",
        f"risk           max drawdown {money(d['max_drawdown'], unit)}, Sharpe {ratio(d['sharpe'])} "
        f"({d['sharpe_period']})",
    ]
    if d["positions"]:
        lines.append(f"{'symbol':<14} {'position':>12} {'avg price':>14} {'realised':>14} {'unrealised':>14} "
                     f"{'fills':>6} {'volume':>10}")
        for s, p in d["positions"].items():
            lines.append(f"{s:<14} {qty(p['quantity']):>12} {price(p['avg_price']):>14} "
                         f"{money(p['realized_pnl']):>14} {money(p['unrealized_pnl']):>14} {p['fills']:>6,} "
                         f"{qty(p['volume']):>10}")
    if d.get("strategy_summary") is not None:
        lines.append(f"strategy says  {d['strategy_summary']}")
    if d.get("results"):
        lines.append(f"results        {d['results']}/ ({', '.join(d.get('result_files') or ())})")
    return lines


def currency(summary: dict) -> str:
    """The account currency when the summary names one, else "quote units" (prices' own unit)."""
    return str(summary.get("currency") or "quote units")


def strategy_name(summary: dict) -> str:
    """The strategy's name as a person reads it: a class and file name, never a directory path."""
    name = str(summary.get("strategy") or "strategy")
    path, _, cls = name.rpartition(":") if ":" in os.path.basename(name) else (name, "", "")
    if os.sep in path or path.endswith(".py"):
        base = os.path.basename(path)
        return f"{cls} ({base})" if cls else base
    return name


# -- statistics ------------------------------------------------------------------------------------------
def bar_statistics(times_ns: np.ndarray, equity: np.ndarray, start_cash: float = 0.0) -> dict:
    """Return volatility and Sharpe of an equity curve on a stated bar length, annualised (stated).

    The bar is the longest of BAR_CHOICES that gives at least MIN_BARS bars over the span; a span too short
    for MIN_BARS one-second bars gets no Sharpe (None) rather than a number from milliseconds of noise. The
    per-bar changes are of P&L in the account's units when it starts with no cash, else returns (fractions)."""
    out: dict[str, Any] = {"bar": None, "bars": 0, "volatility": None, "sharpe": None, "returns": "pnl",
                           "annualisation": ANNUALISATION}
    if len(times_ns) < 2:
        return out
    span_s = (int(times_ns[-1]) - int(times_ns[0])) / 1e9
    for secs, label in BAR_CHOICES:  # noqa: B007 - the loop picks (secs, label)
        if span_s / secs >= MIN_BARS:
            break
    else:
        out["bar"] = f"span {span_s:.3g} s: under {MIN_BARS} bars of 1 s"
        return out
    step = int(secs * 1e9)
    edges = np.arange(int(times_ns[0]) - int(times_ns[0]) % step + step, int(times_ns[-1]) + 1, step, dtype=np.int64)
    idx = np.searchsorted(times_ns, edges, side="right") - 1  # the equity at each bar's end
    vals = np.concatenate([[equity[0]], equity[idx]])
    if start_cash > 0:
        r = np.diff(vals) / vals[:-1]
        out["returns"] = "returns"
    else:
        r = np.diff(vals)
    per_year = YEAR_DAYS * max(1.0, DAY_SECONDS / secs) if secs < 86_400 else YEAR_DAYS
    sd = float(r.std(ddof=1)) if len(r) > 1 else 0.0
    out.update(bar=label, bars=int(len(r)), volatility=sd * math.sqrt(per_year) if len(r) > 1 else None)
    if sd > 0:
        out["sharpe"] = float(r.mean() / sd * math.sqrt(per_year))
    return out


def sharpe_period(st: dict) -> str:
    """How a Sharpe was computed, in words (summary.json's ``sharpe_period``)."""
    if not st["bars"]:
        return f"none: {st['bar'] or 'too few samples'}"
    return f"{st['bars']} bars of {st['bar']}, {ANNUALISATION}"


def run_statistics(folder: str) -> dict:
    """The report's statistics of a result folder (exact floats; the report rounds them)."""
    import pyarrow.parquet as pq

    with open(os.path.join(folder, "summary.json")) as fh:
        s = json.load(fh)
    # ParquetFile, not read_table: read_table goes through pyarrow.dataset, which imports pandas (0.22 s a process)
    eq = pq.ParquetFile(os.path.join(folder, "equity.parquet")).read(columns=["gen_time", "equity"])
    t = eq.column("gen_time").cast("int64").to_numpy()
    e = eq.column("equity").to_numpy()
    st = bar_statistics(t, e, s.get("start_cash", 0.0))
    fills = s.get("fills") or 0
    st["maker_share"] = s["maker_fills"] / fills if fills else None
    st["taker_share"] = s["taker_fills"] / fills if fills else None
    return st


# -- screen-sized lines ----------------------------------------------------------------------------------
def downsample(t: np.ndarray, y: np.ndarray, points: int = SCREEN_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most about ``points`` points: per time bucket its first, min, max and last (the line looks the same)."""
    n = len(t)
    if n <= points:
        return t, y
    buckets = max(1, points // 4)
    b = ((t - t[0]) * (buckets / max(1, int(t[-1] - t[0]) + 1))).astype(np.int64)
    starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
    ends = np.r_[starts[1:], n] - 1
    keep = [starts, ends]
    mins = np.minimum.reduceat(y, starts)
    maxs = np.maximum.reduceat(y, starts)
    # first index of the min and max in each bucket
    for target in (mins, maxs):
        hit = np.flatnonzero(y == np.repeat(target, np.diff(np.r_[starts, n])))
        first = np.unique(np.searchsorted(starts, hit, side="right") - 1, return_index=True)[1]
        keep.append(hit[first])
    k = np.unique(np.concatenate(keep))
    return t[k], y[k]


def market_prices(recordings: list[str], symbols: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each symbol's mid (or last price where a side is missing) from the recordings' tickers and trades."""
    from ..journal import Reader
    from ..journal.format import MsgType

    parts: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {s: [] for s in symbols}
    want = {s.encode() for s in symbols}
    for path in recordings:
        with Reader(path) as r:
            for b in r.batches(types=[int(MsgType.TICKER), int(MsgType.TRADE)]):
                mt = b.headers["msg_type"]
                for m in (int(MsgType.TICKER), int(MsgType.TRADE)):
                    mask = mt == m
                    if not mask.any():
                        continue
                    p = b.payload(m, mask)
                    tt = b.headers["gen_time"][mask].astype(np.int64)
                    if m == int(MsgType.TICKER):
                        bid, ask = p["bid_price"], p["ask_price"]
                        px = np.where((bid > 0) & (ask > 0), (bid + ask) / 2, p["last_price"])
                    else:
                        px = p["price"]
                    sy = p["symbol"]
                    for s in set(sy.tolist()) & want:
                        sel = sy == s
                        parts[s.decode()].append((tt[sel], px[sel].astype(np.float64)))
    out = {}
    for s, chunks in parts.items():
        if chunks:
            t = np.concatenate([c[0] for c in chunks])
            y = np.concatenate([c[1] for c in chunks])
            o = np.argsort(t, kind="stable")
            out[s] = (t[o], y[o])
    return out


# -- report.html of a backtest ---------------------------------------------------------------------------
_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#1d2430;background:#fff}
h1{font-size:20px;margin:0 0 4px} .sub{color:#5a6473;font-size:13px;margin:0 0 16px}
table{border-collapse:collapse;font-size:13px} td,th{padding:4px 10px;border-bottom:1px solid #e3e7ee}
th{text-align:left;background:#f4f6f9;position:sticky;top:0} td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.grid{display:flex;gap:28px;align-items:flex-start;flex-wrap:wrap} .note{color:#5a6473;font-size:12px;max-width:70em}
th.sortable{cursor:pointer} th.sortable:after{content:" \\2195";color:#9aa3b0} .neg{color:#b3261e} .pos{color:#1a7f37}
"""


def _js_tag(plotlyjs: str) -> str:
    if plotlyjs == "inline":
        require("backtest", "a backtest report")
        from plotly.offline import get_plotlyjs

        return f"<script>{get_plotlyjs()}</script>"
    return f'<script src="{html.escape(plotlyjs)}"></script>'


def _fig_html(fig, div_id: str, modebar: bool = True) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                       config={"displaylogo": False, "responsive": True, "displayModeBar": modebar})


def _page(title: str, sub: str, body: str, plotlyjs: str) -> str:
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_CSS}</style>{_js_tag(plotlyjs)}</head><body>\n<h1>{html.escape(title)}</h1>"
            f'<p class="sub">{sub}</p>\n{body}\n</body></html>\n')


def _el(tag: str, inner: str, attrs: str = "") -> str:
    """``<tag attrs>inner</tag>``."""
    return f"<{tag}{' ' + attrs if attrs else ''}>{inner}</{tag}>"


def _table(rows: list[tuple[str, str]], table_id: str) -> str:
    cells = "".join(f"<tr><td>{html.escape(k)}</td><td class=n>{html.escape(v)}</td></tr>" for k, v in rows)
    return f'<table id="{table_id}"><tbody>{cells}</tbody></table>'


def statistics_rows(s: dict, st: dict) -> list[tuple[str, str]]:
    """The statistics table of a backtest: (label, rounded value)."""
    unit = currency(s)
    vol_unit = "" if st["returns"] == "returns" else f" {unit}"
    vol = st["volatility"]
    return [
        ("Net P&L", money(s["net_pnl"], unit)),
        ("Realised P&L", money(s["realized_pnl"], unit)),
        ("Unrealised P&L", money(s["unrealized_pnl"], unit)),
        ("Fees", money(s["fees"], unit)),
        ("Max drawdown", money(s["max_drawdown"], unit)),
        ("Turnover", money(s["turnover"], unit)),
        ("Traded volume", qty(s["traded_volume"])),
        ("Orders", f"{s['orders']:,}"),
        ("Fills", f"{s['fills']:,}"),
        ("Fill ratio (filled / ordered quantity)", pct(s["fill_ratio"])),
        ("Maker share of fills", pct(st["maker_share"])),
        ("Taker share of fills", pct(st["taker_share"])),
        (f"Volatility of {'returns' if st['returns'] == 'returns' else 'P&L'} ({ANNUALISATION})",
         "-" if vol is None else (pct(vol) if st["returns"] == "returns" else money(vol, vol_unit.strip()))),
        ("Sharpe ratio (same bars, annualised)", ratio(st["sharpe"])),
        ("Bar length of the two above", st["bar"] if st["bars"] else f"none ({st['bar'] or 'too few samples'})"),
        ("Bars", f"{st['bars']:,}"),
        ("Start cash", money(s.get("start_cash", 0.0), unit)),
        ("Frames replayed", f"{s['frames']:,}"),
    ]


def _utc(ns: np.ndarray) -> np.ndarray:
    return ns.astype("datetime64[ns]")



def read_result(folder: str) -> tuple:
    """What the chart and the report draw from a result folder: (summary, statistics, currency, equity table,
    fills table, times as int64 ns, P&L, drawdown, symbols held at some point)."""
    import pyarrow.parquet as pq

    with open(os.path.join(folder, "summary.json")) as fh:
        s = json.load(fh)
    eq = pq.ParquetFile(os.path.join(folder, "equity.parquet")).read()
    fills = pq.ParquetFile(os.path.join(folder, "fills.parquet")).read()
    symbols = sorted(c[len("position."):] for c in eq.column_names if c.startswith("position."))
    return (s, run_statistics(folder), currency(s), eq, fills, eq.column("gen_time").cast("int64").to_numpy(),
            eq.column("pnl").to_numpy(), eq.column("drawdown").to_numpy(), symbols)

def fill_sides(fills) -> np.ndarray:
    """0 (buy) or 1 (sell) per fill: the table names the side (``buy``, ``sell``)."""
    col = fills.column("side")
    if str(col.type).startswith(("uint", "int")):  # a result folder an older kftools wrote
        return col.to_numpy()
    return (np.asarray(col.cast("string").to_pylist(), dtype=object) == "sell").astype(np.int64)


def write_report(folder: str, recordings: list[str] | None = None, plotlyjs: str = "inline") -> str:
    """Write ``folder/report.html`` for the result folder ``folder``; returns its path.

    ``recordings``: the recording(s) the backtest replayed, for the price panel (without them, the fill
    prices stand in for the market's). ``plotlyjs``: ``"inline"`` (self-contained), or a relative URL of a
    local copy of plotly.js (a sweep's runs share one).
    """
    require("backtest", "a backtest report")
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    s, st, unit, eq, fills, t, pnl, dd, symbols = read_result(folder)
    ft = fills.column("gen_time").cast("int64").to_numpy()
    fsym = np.asarray(fills.column("symbol").cast("string").to_pylist(), dtype=object)
    fpx = fills.column("price").to_numpy()
    fq = fills.column("quantity").to_numpy()
    fside = fill_sides(fills)
    fliq = np.asarray(fills.column("liquidity").cast("string").to_pylist(), dtype=object)
    prices = market_prices(recordings, symbols) if recordings else {}

    fig = make_subplots(rows=4, cols=1, shared_xaxes=True, vertical_spacing=0.035,
                        row_heights=[0.34, 0.14, 0.32, 0.20],
                        subplot_titles=(f"P&L net of fees ({unit})", f"Drawdown ({unit})",
                                        "Price and fills (choose the symbol above)", "Position (the chosen symbol)"))
    tx, px_ = downsample(t, pnl)
    fig.add_trace(go.Scatter(x=_utc(tx), y=px_, mode="lines", name="P&L", line={"color": "#1f5fa8", "width": 1.6},
                               hovertemplate="%{x}<br>P&L %{y:,.2f} " + unit + "<extra></extra>"), row=1, col=1)
    tx, dx = downsample(t, -dd)
    fig.add_trace(go.Scatter(x=_utc(tx), y=dx, mode="lines", fill="tozeroy", name="drawdown",
                               line={"color": "#c0392b", "width": 1},
                               hovertemplate="%{x}<br>drawdown %{y:,.2f} " + unit + "<extra></extra>"), row=2, col=1)
    price_traces: dict[str, list[int]] = {}
    for k, sym in enumerate(symbols):
        idx = price_traces.setdefault(sym, [])
        visible = k == 0
        if sym in prices:
            mt, my = downsample(*prices[sym])
            idx.append(len(fig.data))
            fig.add_trace(go.Scatter(x=_utc(mt), y=my, mode="lines", name=f"{sym} mid", visible=visible,
                                       line={"color": "#6b7280", "width": 1}, legendgroup="price",
                                       hovertemplate="%{x}<br>" + sym + " %{y}<extra></extra>"), row=3, col=1)
        sel = fsym == sym
        for side, name, color, marker in ((0, "buy", "#1a7f37", "triangle-up"), (1, "sell", "#b3261e", "triangle-down")):
            m = sel & (fside == side)
            idx.append(len(fig.data))
            fig.add_trace(go.Scatter(
                x=_utc(ft[m]), y=fpx[m], mode="markers", name=f"{sym} {name} fills", visible=visible,
                marker={"symbol": marker, "size": 6, "color": color, "opacity": 0.55}, legendgroup="price",
                customdata=np.stack([fq[m], fliq[m]], axis=-1) if m.any() else None,
                hovertemplate="%{x}<br>" + name + " %{customdata[0]} @ %{y} (%{customdata[1]})<extra></extra>"),
                row=3, col=1)
    for k, sym in enumerate(symbols):
        pos = eq.column(f"position.{sym}").to_numpy()
        change = np.r_[True, pos[1:] != pos[:-1]] | np.r_[pos[1:] != pos[:-1], True]  # corners of the steps
        price_traces[sym].append(len(fig.data))
        fig.add_trace(go.Scatter(x=_utc(t[change]), y=pos[change], mode="lines", line_shape="hv",
                                   name=f"{sym} position", visible=k == 0, line={"width": 1.3, "color": "#7b3fa0"},
                                   hovertemplate="%{x}<br>" + sym + " position %{y}<extra></extra>"), row=4, col=1)
    n_fixed = 2
    if len(symbols) > 1:
        buttons = []
        all_price = {i for v in price_traces.values() for i in v}
        for sym in symbols:
            vis = [True if i < n_fixed or i not in all_price else i in price_traces[sym] for i in range(len(fig.data))]
            buttons.append({"label": sym, "method": "restyle", "args": [{"visible": vis}]})
        fig.update_layout(updatemenus=[{"buttons": buttons, "type": "buttons", "direction": "right", "x": 0,
                                        "xanchor": "left", "y": 0.5, "yanchor": "bottom", "showactive": True,
                                        "pad": {"t": 2, "b": 2}}])
    fig.update_layout(height=980, margin={"l": 70, "r": 180, "t": 40, "b": 50}, hovermode="closest",
                      legend={"x": 1.01, "xanchor": "left", "y": 1, "font": {"size": 11}}, template="plotly_white")
    fig.update_yaxes(title_text=unit, row=1, col=1)
    fig.update_yaxes(title_text=unit, row=2, col=1)
    fig.update_yaxes(title_text="price", row=3, col=1)
    fig.update_yaxes(title_text="quantity", row=4, col=1)
    fig.update_xaxes(title_text="time (UTC, recording clock)", row=4, col=1)
    # per-symbol P&L, realised and unrealised
    pos_d = s.get("positions") or {}
    sy = list(pos_d)
    fig2 = go.Figure()
    fig2.add_trace(go.Bar(y=sy, x=[pos_d[k]["realized_pnl"] for k in sy], name="realised", orientation="h",
                          marker_color="#1f5fa8", hovertemplate="%{y} realised %{x:,.2f}<extra></extra>"))
    fig2.add_trace(go.Bar(y=sy, x=[pos_d[k]["unrealized_pnl"] for k in sy], name="unrealised", orientation="h",
                          marker_color="#8fb3de", hovertemplate="%{y} unrealised %{x:,.2f}<extra></extra>"))
    fig2.update_layout(barmode="relative", height=120 + 36 * max(1, len(sy)), template="plotly_white",
                       title=f"P&L per symbol before fees ({unit})", margin={"l": 70, "r": 20, "t": 50, "b": 40},
                       legend={"orientation": "h", "y": -0.25})
    name = strategy_name(s)
    t0 = s.get("start_time_ns")
    t1 = s.get("end_time_ns")
    span = (f"{np.datetime64(int(t0), 'ns').astype('datetime64[ms]')} to "
            f"{np.datetime64(int(t1), 'ns').astype('datetime64[ms]')} UTC" if t0 is not None and t1 is not None else "")
    sub = html.escape(f"{span} · fill model {s['fill_model']} · latency {duration(s['latency_ns'])} in / "
                      f"{duration(s['response_latency_ns'])} back · fees {_fees_text(s['fees_schedule'])}")
    note = ("Numbers are rounded for reading; summary.json holds them exact. Lines are drawn at screen "
            "resolution (each pixel keeps its minimum and maximum); every fill is a marker: zoom to tell them apart. Plain SVG, no WebGL: any browser draws it."
            + ("" if prices else " The recording was not given: the price panel shows the fill prices only."))
    warning = (_el("p", html.escape("INTERRUPTED: the replay was stopped early; these results cover only the "
                                     "frames before it stopped."), 'class="note" id="interrupted"')
               if s.get("interrupted") else "")
    body = warning + (_el("div", _el("div", _table(statistics_rows(s, st), "stats"))
                + _el("div", _fig_html(fig2, "per-symbol", modebar=False), 'style="flex:1;min-width:380px"'),
                'class="grid"')
            + _el("p", html.escape(note), 'class="note"') + _fig_html(fig, "panels"))
    path = os.path.join(folder, "report.html")
    tmp = path + f".{os.getpid()}.tmp"
    with open(tmp, "w") as fh:
        fh.write(_page(f"Backtest: {name}", sub, body, plotlyjs))
    os.replace(tmp, path)
    return path


# -- report.html of a sweep ------------------------------------------------------------------------------
#: statistics the sweep's heatmap can show: (column, label, how to print)
SWEEP_STATS = (("net_pnl", "net P&L", money), ("sharpe", "Sharpe (annualised)", ratio),
               ("max_drawdown", "max drawdown", money), ("fill_ratio", "fill ratio", pct),
               ("maker_share", "maker share", pct), ("turnover", "turnover", money), ("fills", "fills", qty))

_SORT_JS = r"""
document.querySelectorAll('table.sortable').forEach(function(t){
  t.querySelectorAll('th').forEach(function(th, i){
    th.classList.add('sortable');
    th.addEventListener('click', function(){
      var body = t.tBodies[0], rows = Array.from(body.rows);
      var asc = th.dataset.dir !== 'asc'; th.dataset.dir = asc ? 'asc' : 'desc';
      rows.sort(function(a, b){
        var x = a.cells[i].dataset.v, y = b.cells[i].dataset.v;
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
        return asc ? c : -c;
      });
      rows.forEach(function(r){ body.appendChild(r); });
    });
  });
});
// report.html#sort=net_pnl- opens sorted (a column's key; "-" descending)
(function(){
  var m = location.hash.match(/sort=([\w.]+)(-?)/); if (!m) return;
  var th = document.querySelector('table.sortable th[data-key="' + m[1] + '"]'); if (!th) return;
  th.click(); if (m[2]) th.click();
})();
"""


def _cell(v: Any, text: str, cls: str = "n") -> str:
    sort = "" if v is None else (repr(float(v)) if isinstance(v, int | float) and not isinstance(v, bool) else str(v))
    return f'<td class="{cls}" data-v="{html.escape(sort)}">{text}</td>'


def _param_text(v: Any) -> str:
    return price(v) if isinstance(v, float) else str(v)


def write_sweep_report(out: str, runs, params: list[str], title: str = "Sweep", plotlyjs: str = "inline") -> str:
    """Write ``out/report.html`` for a sweep: a sortable table of its runs and heatmaps of a chosen statistic
    over two parameters, one per fill model and latency. ``runs`` is runs.parquet's table."""
    require("backtest", "a backtest report")
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rows = runs.to_pylist()
    ok = [r for r in rows if r.get("error") is None]
    unit = "quote units"
    pcols = [f"param.{p}" for p in params]
    head = ["run", "recording", "fill model", "latency", *params, f"net P&L ({unit})", "realised", "fees",
            "max drawdown", "Sharpe", "fill ratio", "maker share", "fills", "turnover", "error"]
    keys = ["run", "recording", "fill_model", "latency_ns", *pcols, "net_pnl", "realized_pnl", "fees",
            "max_drawdown", "sharpe", "fill_ratio", "maker_share", "fills", "turnover", "error"]
    body = []
    for r in rows:
        link = f'<a href="{html.escape(r["folder"])}/report.html">{r["run"]}</a>' if r.get("folder") else r["run"]
        cells = [_cell(r["run"], link, "t"), _cell(os.path.basename(r["recording"]),
                                                    html.escape(os.path.basename(r["recording"])), "t"),
                 _cell(r["fill_model"], r["fill_model"], "t"), _cell(r["latency_ns"], duration(r["latency_ns"]))]
        cells += [_cell(r[c], html.escape(_param_text(r[c]))) for c in pcols]
        cells += [_cell(r.get("net_pnl"), money(r.get("net_pnl"))), _cell(r.get("realized_pnl"), money(r.get("realized_pnl"))),
                  _cell(r.get("fees"), money(r.get("fees"))), _cell(r.get("max_drawdown"), money(r.get("max_drawdown"))),
                  _cell(r.get("sharpe"), ratio(r.get("sharpe"))), _cell(r.get("fill_ratio"), pct(r.get("fill_ratio"))),
                  _cell(r.get("maker_share"), pct(r.get("maker_share"))), _cell(r.get("fills"), qty(r.get("fills"))),
                  _cell(r.get("turnover"), money(r.get("turnover"))),
                  _cell(r.get("error") or "", html.escape(r.get("error") or ""), "t")]
        body.append("<tr>" + "".join(cells) + "</tr>")
    ths = "".join(f'<th class="{"t" if k < 3 else "n"}" data-key="{html.escape(key)}">{html.escape(h)}</th>'
                  for k, (h, key) in enumerate(zip(head, keys, strict=True)))
    table = f'<table id="runs" class="sortable"><thead><tr>{ths}</tr></thead><tbody>{"".join(body)}</tbody></table>'

    # heatmaps: x, y = the first two parameters (else what varies), one panel per fill model and latency
    axes_cols = pcols[:2]
    if len(axes_cols) < 2:
        recs = sorted({r["recording"] for r in ok})
        axes_cols = axes_cols + (["recording"] if len(recs) > 1 or not axes_cols else [])
    panels = sorted({(r["fill_model"], r["latency_ns"]) for r in ok})
    heat_html = "<p class=note>No finished run to draw.</p>"
    if ok and panels:
        ncols = min(3, len(panels))
        nrows = -(-len(panels) // ncols)
        fig = make_subplots(rows=nrows, cols=ncols, subplot_titles=[f"{m}, latency {duration(lat)}" for m, lat in panels],
                            horizontal_spacing=0.08, vertical_spacing=0.16)

        def label(col: str, v: Any) -> str:
            return os.path.basename(v) if col == "recording" else _param_text(v)

        xcol = axes_cols[0] if axes_cols else None
        ycol = axes_cols[1] if len(axes_cols) > 1 else None
        xs = sorted({r[xcol] for r in ok}, key=_order) if xcol else ["all"]
        ys = sorted({r[ycol] for r in ok}, key=_order) if ycol else ["all"]
        zs: dict[str, list] = {}
        for col, _, _ in SWEEP_STATS:
            zs[col] = []
            for m, lat in panels:
                grid = []
                for yv in ys:
                    line = []
                    for xv in xs:
                        vals = [r[col] for r in ok if r["fill_model"] == m and r["latency_ns"] == lat
                                and (xcol is None or r[xcol] == xv) and (ycol is None or r[ycol] == yv)
                                and r[col] is not None]
                        line.append(float(np.mean(vals)) if vals else None)
                    grid.append(line)
                zs[col].append(grid)
        first = SWEEP_STATS[0][0]
        for k, _ in enumerate(panels):
            fig.add_trace(go.Heatmap(
                z=zs[first][k], x=[label(xcol, v) if xcol else v for v in xs],
                y=[label(ycol, v) if ycol else v for v in ys], coloraxis="coloraxis",
                texttemplate="%{z:,.2f}", hovertemplate=(f"{xcol or ''} %{{x}}<br>{ycol or ''} %{{y}}<br>"
                                                         "%{z:,.4g}<extra></extra>")),
                row=k // ncols + 1, col=k % ncols + 1)
        # signed statistics are centred on 0; a drawdown is better small (its scale reversed)
        buttons = [{"label": lab, "method": "update",
                    "args": [{"z": zs[col]}, {"coloraxis.colorbar.title.text": lab,
                                              "coloraxis.cmid": 0 if col in ("net_pnl", "sharpe") else None,
                                              "coloraxis.reversescale": col == "max_drawdown"}]}
                   for col, lab, _ in SWEEP_STATS]
        fig.update_layout(
            height=160 + 300 * nrows, template="plotly_white", margin={"l": 80, "r": 40, "t": 90, "b": 60},
            coloraxis={"colorscale": "RdYlGn", "cmid": 0, "colorbar": {"title": {"text": SWEEP_STATS[0][1]}}},
            updatemenus=[{"buttons": buttons, "type": "buttons", "direction": "right", "x": 0, "xanchor": "left",
                          "y": 1.0 + 60 / (160 + 300 * nrows), "yanchor": "bottom", "showactive": True}])
        fig.update_xaxes(title_text=(xcol or "").removeprefix("param."), type="category")
        fig.update_yaxes(title_text=(ycol or "").removeprefix("param."), type="category")
        heat_html = _fig_html(fig, "heatmap")
    agg = ("each cell the mean over " + ", ".join(
        [c.removeprefix("param.") for c in pcols[2:]] + (["recordings"] if "recording" not in axes_cols
                                                          and len({r["recording"] for r in ok}) > 1 else []))
           if len(pcols) > 2 or ("recording" not in axes_cols and len({r["recording"] for r in ok}) > 1)
           else "one run per cell")
    sub = html.escape(f"{len(rows):,} runs ({len(ok):,} finished) · parameters {', '.join(params) or 'none'} · "
                      f"P&L in {unit} · Sharpe on each run's stated bars, {ANNUALISATION}")
    body_html = (_el("h2", "Statistic over two parameters")
                 + _el("p", f"Choose the statistic with the buttons; {html.escape(agg)}. Hover a cell for its exact "
                            "value.", 'class="note"') + heat_html
                 + _el("h2", "Runs")
                 + _el("p", "Click a column's title to sort (report.html#sort=net_pnl- opens sorted); a run's id opens "
                            "its own report.", 'class="note"')
                 + table + _el("script", _SORT_JS))
    path = os.path.join(out, "report.html")
    tmp = path + f".{os.getpid()}.tmp"
    with open(tmp, "w") as fh:
        fh.write(_page(title, sub, body_html, plotlyjs))
    os.replace(tmp, path)
    return path


def _order(v: Any) -> tuple:
    return (0, v, "") if isinstance(v, int | float) and not isinstance(v, bool) else (1, 0, str(v))
