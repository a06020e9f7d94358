"""A finished backtest as numbers, Parquet tables, a summary and a chart (the result folder).

Everything here depends only on the simulation (the recording's clock), never
on the wall clock: the same inputs give the same files, byte for byte.
"""

from __future__ import annotations

import enum
import json
import math
import os
import shutil
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import OutputError
from ..journal.format import Liquidity, OrderStatus, OrderType, RejectReason, Side
from ..journal.layout import display_name
from .loop import AnyBacktest as Backtest
from .loop import records_of
from .records import Records
from .report import bar_statistics, sharpe_period

#: the files a result folder holds; --force replaces a folder only if it holds nothing else
RESULT_FILES = ("orders.parquet", "updates.parquet", "fills.parquet", "equity.parquet", "summary.json", "chart.png",
                "report.html")

_TS = pa.timestamp("ns", tz="UTC")
PENDING = {-1: "pending"}  # an order's status before it reached the exchange (no OrderStatus: never sent as one)
_SYM = pa.dictionary(pa.int32(), pa.string())


def _fnum(v: float | None) -> float | None:
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else float(v)


def summarize(bt: Backtest, strategy_name: str = "") -> dict:
    """The summary of a finished backtest (what ``--json`` prints and summary.json holds)."""
    ex = bt.exchange
    acc = ex.account
    marks = bt.marks()
    cfg = ex.config
    rec = _records(bt)
    o = rec.orders
    ordered_qty = sum(o["quantity"].tolist())  # sum() in order, as the twin always added them
    filled_qty = sum(o["filled"].tolist())
    times, equity = rec.samples["time"], rec.samples["equity"]
    dd = _drawdown(equity)
    stats = bar_statistics(times, equity, acc.start_cash)
    per_symbol: dict[str, dict] = {}
    fills_by_sym: dict[str, int] = {}
    for s in rec.symbol_names(rec.fills["sym"]):
        fills_by_sym[s] = fills_by_sym.get(s, 0) + 1
    for s in sorted(set(acc.qty) | set(rec.symbol_names(o["sym"]))):
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
    names = {int(v): display_name(v) for v in OrderStatus} | PENDING
    for k, n in zip(*np.unique(o["status"], return_counts=True), strict=True):
        status_count[names[int(k)]] += int(n)
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
        "orders": len(o),
        "orders_by_status": status_count,
        "cancels": len(rec.cancels),
        "modifies": len(rec.modifies),
        "timers_fired": bt.timers_fired,
        "timers_not_fired": bt.timers_dropped,
        "fills": len(rec.fills),
        "maker_fills": int((rec.fills["liquidity"] == Liquidity.MAKER).sum()),
        "taker_fills": int((rec.fills["liquidity"] == Liquidity.TAKER).sum()),
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


def _records(bt: Backtest) -> Records:
    """The backtest's records, made once (the summary and the tables both read them)."""
    rec = getattr(bt, "_records_cache", None)
    if rec is None:
        rec = records_of(bt)
        bt._records_cache = rec  # type: ignore[union-attr]
    return rec


def _drawdown(equity: np.ndarray) -> float:
    if not len(equity):
        return 0.0
    return float((np.maximum.accumulate(equity) - equity).max())


# -- tables --------------------------------------------------------------------------------------------
def tables(bt: Backtest) -> dict[str, pa.Table]:
    """orders, updates, fills and equity as Arrow tables, typed like ``kftools export``."""
    cached = getattr(bt, "_tables_cache", None)
    if cached is not None:
        return cached
    rec = _records(bt)
    start_cash = bt.exchange.account.start_cash
    order_ix = np.argsort(rec.orders["order_id"], kind="stable")
    o = rec.orders[order_ix]
    filled = o["filled"]
    with np.errstate(invalid="ignore", divide="ignore"):
        avg = np.where(filled != 0, o["notional"] / np.where(filled != 0, filled, 1.0), 0.0)
    t_orders = pa.table({
        "order_id": _num(o["order_id"], np.uint64),
        "client_order_id": _strings([rec.client_order_ids[k] for k in order_ix.tolist()]),
        "symbol": _symbols(rec, o["sym"]),
        "side": _labels(o["side"], Side),
        "order_type": _labels(o["order_type"], OrderType),
        "price": _num(o["price"], np.float64),
        "quantity": _num(o["quantity"], np.float64),
        "sent_time": _times(o["sent_time"]),
        "arrival_time": _times(o["arrival_time"]),
        "status": _labels(o["status"], OrderStatus, PENDING),
        "reject_reason": _labels(o["reject_reason"], RejectReason),
        "filled_quantity": _num(filled, np.float64),
        "avg_price": _num(avg, np.float64),
        "fee": _num(o["fee"], np.float64),
    })
    u = rec.updates
    t_updates = pa.table({
        "gen_time": _times(u["time"]),
        "order_id": _num(u["order_id"], np.uint64),
        "symbol": _symbols(rec, u["sym"]),
        "status": _labels(u["status"], OrderStatus),
        "reject_reason": _labels(u["reject_reason"], RejectReason),
        "side": _labels(u["side"], Side),
        "order_type": _labels(u["order_type"], OrderType),
        "price": _num(u["price"], np.float64),
        "quantity": _num(u["quantity"], np.float64),
        "filled_quantity": _num(u["filled_quantity"], np.float64),
        "remaining_quantity": _num(u["remaining_quantity"], np.float64),
        "avg_price": _num(u["avg_price"], np.float64),
    })
    f = rec.fills
    t_fills = pa.table({
        "gen_time": _times(f["time"]),
        "fill_id": _num(f["fill_id"], np.uint64),
        "order_id": _num(f["order_id"], np.uint64),
        "symbol": _symbols(rec, f["sym"]),
        "side": _labels(f["side"], Side),
        "liquidity": _labels(f["liquidity"], Liquidity),
        "price": _num(f["price"], np.float64),
        "quantity": _num(f["quantity"], np.float64),
        "fee": _num(f["fee"], np.float64),
        "flags": _num(f["flags"], np.uint32),
    })
    sm = rec.samples
    eq = sm["equity"]
    cols: dict[str, pa.Array] = {
        "gen_time": _times(sm["time"]),
        "equity": _num(eq, np.float64),
        "pnl": _num(eq - start_cash, np.float64),
        "drawdown": _num(np.maximum.accumulate(eq) - eq if len(eq) else eq, np.float64),
        "cash": _num(sm["cash"], np.float64),
        "realized_pnl": _num(sm["realized"], np.float64),
        "unrealized_pnl": _num(sm["unrealized"], np.float64),
        "fees": _num(sm["fees"], np.float64),
        "bar": _bools(sm["bar"] != 0),
    }
    # a sample's positions: every symbol traded by then (0 when flat), in rows pos_start .. pos_start + npos
    row = np.repeat(np.arange(len(sm)), sm["npos"])
    pos = rec.positions
    for k in sorted(set(pos["sym"].tolist()), key=lambda k: rec.symbols[k]):
        col = np.zeros(len(sm))
        sel = pos["sym"] == k
        col[row[sel]] = pos["qty"][sel]
        cols[f"position.{rec.symbols[k]}"] = _num(col, np.float64)
    out = {"orders": t_orders, "updates": t_updates, "fills": t_fills, "equity": pa.table(cols)}
    bt._tables_cache = out  # type: ignore[union-attr]
    return out


# Columns are made from buffers: pyarrow's pa.array() imports pandas on its first call (a second of start-up).
_ARROW = {np.dtype(np.uint64): pa.uint64(), np.dtype(np.uint32): pa.uint32(), np.dtype(np.int32): pa.int32(),
          np.dtype(np.int64): pa.int64(), np.dtype(np.float64): pa.float64()}


def _num(values: np.ndarray, dtype) -> pa.Array:
    """A numeric column."""
    a = np.ascontiguousarray(values, dtype)
    return pa.Array.from_buffers(_ARROW[a.dtype], len(a), [None, pa.py_buffer(a)])


def _bools(values: np.ndarray) -> pa.Array:
    return pa.Array.from_buffers(pa.bool_(), len(values), [None, pa.py_buffer(np.packbits(values, bitorder="little"))])


def _strings(values: list[str]) -> pa.Array:
    data = [v.encode() for v in values]
    offsets = np.zeros(len(data) + 1, np.int32)
    np.cumsum([len(b) for b in data], out=offsets[1:])
    return pa.Array.from_buffers(pa.string(), len(data), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(data))])


def _times(ns: np.ndarray) -> pa.Array:
    """ns since the epoch as UTC timestamps."""
    return _num(ns, np.int64).view(_TS)


def _symbols(rec: Records, sym: np.ndarray) -> pa.Array:
    """A symbol index column (-1: no symbol) as dictionary strings."""
    return _dictionary(np.where(sym < 0, len(rec.symbols), sym), [*rec.symbols, ""])


def _labels(values: np.ndarray, labels: type[enum.IntEnum], extra: dict[int, str] | None = None) -> pa.Array:
    """An enum column as every output shows it (``display_name``, the layout declaration's rule): dictionary
    strings, the names in value order, then a value without a name as its number (as the export writes them)."""
    names = {int(m): display_name(m) for m in labels} | (extra or {})
    for v in np.unique(values).tolist():
        names.setdefault(int(v), str(v))
    keys = sorted(names)
    codes = np.searchsorted(keys, values).astype(np.int32)
    return pa.DictionaryArray.from_arrays(_num(codes, np.int32), _strings([names[k] for k in keys]))


def _dictionary(codes: np.ndarray, names: list[str]) -> pa.Array:
    """``names[codes]`` dictionary-encoded as ``dictionary_encode`` would: the values present, in the order
    they first appear."""
    codes = np.asarray(codes, np.int64)
    if not len(codes):
        return pa.DictionaryArray.from_arrays(_num(codes, np.int32), _strings([]))
    used = np.flatnonzero(np.bincount(codes, minlength=len(names)))
    first = np.array([int(np.argmax(codes == k)) for k in used.tolist()]) if len(used) <= 32 else \
        np.unique(codes, return_index=True)[1]
    order = used[np.argsort(first, kind="stable")]
    rank = np.zeros(len(names), np.int32)
    rank[order] = np.arange(len(order), dtype=np.int32)
    return pa.DictionaryArray.from_arrays(_num(rank[codes], np.int32), _strings([names[k] for k in order.tolist()]))


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
