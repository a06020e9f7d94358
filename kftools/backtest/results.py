"""A finished backtest as numbers, Parquet tables, a summary and a chart (the result folder).

Everything here depends only on the simulation (the recording's clock), never
on the wall clock: the same inputs give the same files, byte for byte.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import OutputError
from ..journal.format import Liquidity, OrderStatus, RejectReason
from .engine import Backtest
from .exchange import FILL_FIELDS, UPDATE_FIELDS
from .report import bar_statistics, sharpe_period

#: the files a result folder holds; --force replaces a folder only if it holds nothing else
RESULT_FILES = ("orders.parquet", "updates.parquet", "fills.parquet", "equity.parquet", "summary.json", "chart.png",
                "report.html")

_TS = pa.timestamp("ns", tz="UTC")
_SYM = pa.dictionary(pa.int32(), pa.string())


def _fnum(v: float | None) -> float | None:
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else float(v)


def summarize(bt: Backtest, strategy_name: str = "") -> dict:
    """The summary of a finished backtest (what ``--json`` prints and summary.json holds)."""
    ex = bt.exchange
    acc = ex.account
    marks = bt.marks()
    cfg = ex.config
    orders = list(ex.orders.values())
    ordered_qty = sum(o.quantity for o in orders)
    filled_qty = sum(o.filled for o in orders)
    times, equity, bars = _equity_series(bt)
    dd = _drawdown(equity)
    stats = bar_statistics(times, equity, acc.start_cash)
    per_symbol: dict[str, dict] = {}
    fills_by_sym: dict[str, int] = {}
    for f in ex.fills:
        fills_by_sym[f[3]] = fills_by_sym.get(f[3], 0) + 1
    for s in sorted(set(acc.qty) | {o.symbol for o in orders}):
        q = acc.qty.get(s, 0.0)
        m = marks.get(s, math.nan)
        per_symbol[s] = {
            "quantity": q,
            "avg_price": acc.avg.get(s, 0.0) if q else 0.0,
            "mark": _fnum(m),
            "realized_pnl": acc.realized.get(s, 0.0),
            "unrealized_pnl": q * (m - acc.avg.get(s, 0.0)) if q and m == m else 0.0,
            "fills": fills_by_sym.get(s, 0),
            "volume": acc.volume.get(s, 0.0),
            "turnover": acc.turnover.get(s, 0.0),
        }
    realized = sum(acc.realized.values())
    unrealized = acc.unrealized(marks)
    status_count = {name: 0 for name in ("filled", "partially_filled", "canceled", "rejected", "expired", "accepted",
                                         "modified", "pending")}
    for o in orders:
        status_count[o.status_name] += 1
    d: dict[str, Any] = {
        "strategy": strategy_name,
        "fill_model": cfg.fill_model,
        "latency_ns": cfg.latency_ns,
        "response_latency_ns": cfg.response_latency_ns,
        "fees_schedule": cfg.fees.to_dict(),
        "cap_volume": cfg.cap_volume,
        "start_cash": acc.start_cash,
        "frames": bt.frames_seen,
        "start_time_ns": bt.first_time,
        "end_time_ns": bt.time,
        "orders": len(orders),
        "orders_by_status": status_count,
        "cancels": len(ex.cancels),
        "modifies": len(ex.modifies),
        "timers_fired": bt.timers_fired,
        "timers_not_fired": bt.timers_dropped,
        "fills": len(ex.fills),
        "maker_fills": sum(1 for f in ex.fills if f[5] == Liquidity.MAKER),
        "taker_fills": sum(1 for f in ex.fills if f[5] == Liquidity.TAKER),
        "no_quote_fills": ex.no_quote_fills,
        "fill_ratio": filled_qty / ordered_qty if ordered_qty else None,
        "traded_volume": sum(acc.volume.values()),
        "turnover": sum(acc.turnover.values()),
        "realized_pnl": realized,
        "unrealized_pnl": unrealized,
        "fees": acc.fees,
        "net_pnl": realized + unrealized - acc.fees,
        "cash": acc.cash,
        "max_drawdown": dd,
        "sharpe": _fnum(stats["sharpe"]),
        "sharpe_period": sharpe_period(stats),
        "positions": per_symbol,
        "strategy_summary": _jsonable(getattr(bt.strategy, "summary", None)),
    }
    return d


def finite(v):
    """``v`` with every non-finite float (NaN, inf) as None: result files are always valid JSON."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: finite(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [finite(x) for x in v]
    return v


def _jsonable(v):
    if v is None:
        return None
    try:
        return json.loads(json.dumps(v, default=str))
    except (TypeError, ValueError):
        return str(v)


def _equity_series(bt: Backtest) -> tuple[np.ndarray, np.ndarray, list]:
    rows = bt.equity
    t = np.asarray([r[0] for r in rows], np.int64)
    e = np.asarray([r[1] for r in rows], np.float64)
    return t, e, rows


def _drawdown(equity: np.ndarray) -> float:
    if not len(equity):
        return 0.0
    return float((np.maximum.accumulate(equity) - equity).max())


# -- tables --------------------------------------------------------------------------------------------
def tables(bt: Backtest) -> dict[str, pa.Table]:
    """orders, updates, fills and equity as Arrow tables, typed like ``kftools export``."""
    ex = bt.exchange
    orders = sorted(ex.orders.values(), key=lambda o: o.order_id)
    t_orders = pa.table({
        "order_id": pa.array([o.order_id for o in orders], pa.uint64()),
        "client_order_id": pa.array([o.client_order_id for o in orders], pa.string()),
        "symbol": pa.array([o.symbol for o in orders], pa.string()).dictionary_encode(),
        "side": pa.array([o.side for o in orders], pa.uint32()),
        "order_type": pa.array([o.order_type for o in orders], pa.uint32()),
        "price": pa.array([o.price for o in orders], pa.float64()),
        "quantity": pa.array([o.quantity for o in orders], pa.float64()),
        "sent_time": pa.array([o.sent_time for o in orders], _TS),
        "arrival_time": pa.array([o.arrival_time for o in orders], _TS),
        "status": pa.array([o.status_name for o in orders], pa.string()).dictionary_encode(),
        "reject_reason": pa.array([o.reject_reason for o in orders], pa.uint32()),
        "filled_quantity": pa.array([o.filled for o in orders], pa.float64()),
        "avg_price": pa.array([o.avg_price for o in orders], pa.float64()),
        "fee": pa.array([o.fee for o in orders], pa.float64()),
    })
    u = list(zip(*ex.updates, strict=True)) or [()] * len(UPDATE_FIELDS)
    status_names = {int(v): v.name.lower() for v in OrderStatus}
    reason_names = {int(v): v.name.lower() for v in RejectReason}
    t_updates = pa.table({
        "gen_time": pa.array(u[0], _TS),
        "order_id": pa.array(u[1], pa.uint64()),
        "symbol": pa.array(u[2], pa.string()).dictionary_encode(),
        "status": pa.array(u[3], pa.uint32()),
        "status_name": pa.array([status_names[x] for x in u[3]], pa.string()).dictionary_encode(),
        "reject_reason": pa.array(u[4], pa.uint32()),
        "reject_reason_name": pa.array([reason_names[x] for x in u[4]], pa.string()).dictionary_encode(),
        "side": pa.array(u[5], pa.uint32()),
        "order_type": pa.array(u[6], pa.uint32()),
        "price": pa.array(u[7], pa.float64()),
        "quantity": pa.array(u[8], pa.float64()),
        "filled_quantity": pa.array(u[9], pa.float64()),
        "remaining_quantity": pa.array(u[10], pa.float64()),
        "avg_price": pa.array(u[11], pa.float64()),
    })
    f = list(zip(*ex.fills, strict=True)) or [()] * len(FILL_FIELDS)
    t_fills = pa.table({
        "gen_time": pa.array(f[0], _TS),
        "fill_id": pa.array(f[1], pa.uint64()),
        "order_id": pa.array(f[2], pa.uint64()),
        "symbol": pa.array(f[3], pa.string()).dictionary_encode(),
        "side": pa.array(f[4], pa.uint32()),
        "liquidity": pa.array(["maker" if x == Liquidity.MAKER else "taker" for x in f[5]], pa.string()).dictionary_encode(),
        "price": pa.array(f[6], pa.float64()),
        "quantity": pa.array(f[7], pa.float64()),
        "fee": pa.array(f[8], pa.float64()),
        "flags": pa.array(f[9], pa.uint32()),
    })
    rows = bt.equity
    eq = np.asarray([r[1] for r in rows], np.float64)
    cols: dict[str, pa.Array] = {
        "gen_time": pa.array([r[0] for r in rows], _TS),
        "equity": pa.array(eq, pa.float64()),
        "pnl": pa.array(eq - ex.account.start_cash, pa.float64()),
        "drawdown": pa.array(np.maximum.accumulate(eq) - eq if len(eq) else eq, pa.float64()),
        "cash": pa.array([r[2] for r in rows], pa.float64()),
        "realized_pnl": pa.array([r[3] for r in rows], pa.float64()),
        "unrealized_pnl": pa.array([r[4] for r in rows], pa.float64()),
        "fees": pa.array([r[5] for r in rows], pa.float64()),
        "bar": pa.array([bool(r[7]) for r in rows], pa.bool_()),
    }
    symbols = sorted({s for r in rows for s in r[6]})
    for s in symbols:
        cols[f"position.{s}"] = pa.array([r[6].get(s, 0.0) for r in rows], pa.float64())
    return {"orders": t_orders, "updates": t_updates, "fills": t_fills, "equity": pa.table(cols)}


# -- the folder ------------------------------------------------------------------------------------------
def check_results_dir(path: str, force: bool) -> None:
    """Raise unless ``path`` can become the result folder (nothing is written here)."""
    if os.path.islink(path):
        raise OutputError(f"{path}: is a symbolic link (results are never written through one)")
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise OutputError(f"{path}: exists and is not a folder")
        entries = os.listdir(path)
        if entries and not force:
            raise OutputError(f"{path}: result folder exists (use --force to replace it, or --results DIR)")
        foreign = sorted(set(entries) - set(RESULT_FILES))
        foreign += sorted(e for e in entries if e in RESULT_FILES and (
            os.path.islink(os.path.join(path, e)) or not os.path.isfile(os.path.join(path, e))))
        if foreign:
            raise OutputError(f"{path}: holds {foreign[0]!r}, not a kftools result file; not replacing it")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise OutputError(f"{path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"{path}: folder {parent} is not writable")


def write_results(bt: Backtest, path: str, summary: dict, *, force: bool = False, chart: bool = True,
                  recordings: list[str] | None = None) -> list[str]:
    """Write the result folder atomically (a temporary folder renamed into place); returns the files.

    ``chart``: also chart.png and report.html, drawn from the folder's own files (``recordings``, when given,
    add the market's price to them)."""
    check_results_dir(path, force)
    parent = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(parent, f".{os.path.basename(os.path.abspath(path))}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        os.mkdir(tmp)
        _write_folder(bt, tmp, summary, chart, recordings)
        if os.path.isdir(path):
            for name in os.listdir(path):  # checked above: only our own result files
                os.unlink(os.path.join(path, name))
            os.rmdir(path)
        os.rename(tmp, path)
    except OSError as e:  # a full disk, a folder gone: one line, and nothing half-written left behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(f"{path}: cannot write the results: {e.strerror or e}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return sorted(os.listdir(path))


def _write_folder(bt: Backtest, tmp: str, summary: dict, chart: bool, recordings: list[str] | None) -> None:
    try:
        for name, table in tables(bt).items():
            pq.write_table(table, os.path.join(tmp, f"{name}.parquet"), compression="zstd")
        with open(os.path.join(tmp, "summary.json"), "w") as fh:
            json.dump(finite(summary), fh, indent=2, sort_keys=True, allow_nan=False)
            fh.write("\n")
        if chart:
            from .chart import draw_folder
            from .report import write_report

            draw_folder(tmp, recordings=recordings)
            write_report(tmp, recordings=recordings)
    except pa.ArrowException as e:  # Arrow's own I/O errors (a full disk while writing Parquet)
        raise OSError(str(e)) from None
