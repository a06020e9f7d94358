"""``kftools.backtest()``: one backtest of a recording, straight from its pages (no output journal)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from ..errors import UsageError
from ..journal.merge import open_journals
from ..selection import Selection
from .loop import Backtest
from .options import exchange_config
from .results import check_results_dir, summarize, tables, write_results

BARS = 200  # equity samples (and Sharpe periods) over the recording's span


@dataclass
class BacktestResult:
    """A finished backtest: ``summary`` (what summary.json holds), the result folder (None when nothing was
    written), its files, and the ``orders``, ``updates``, ``fills`` and ``equity`` tables (pyarrow; call
    ``.to_pandas()`` for a DataFrame)."""

    summary: dict
    results: str | None
    files: list[str] = field(default_factory=list)
    tables: dict[str, pa.Table] = field(default_factory=dict, repr=False)

    @property
    def orders(self) -> pa.Table:
        return self.tables["orders"]

    @property
    def updates(self) -> pa.Table:
        return self.tables["updates"]

    @property
    def fills(self) -> pa.Table:
        return self.tables["fills"]

    @property
    def equity(self) -> pa.Table:
        return self.tables["equity"]

    def to_dict(self) -> dict:
        """The summary, the folder and its files, as valid JSON values (non-finite numbers as None)."""
        from .results import finite

        d = finite(dict(self.summary))
        d["results"] = self.results
        d["result_files"] = self.files
        return d


def bar_ns(first: int | None, last: int | None) -> int:
    """Bar width: the recording span in ``BARS`` parts, rounded up to 1, 2 or 5 times a power of ten (ns)."""
    if first is None or last is None:
        return 1_000_000_000
    raw = max(1, last - first) / BARS
    nice = [m * 10**e for e in range(3, 13) for m in (1, 2, 5)]
    return min((c for c in nice if c >= raw), default=10**12)


def strategy_from(strategy: object, params: dict | None) -> tuple[object, str]:
    """(the strategy object, its name for the report) from ``path.py[:Class]``, a class, or an instance."""
    from ..replay.core import load_strategy, make_strategy

    if isinstance(strategy, str | os.PathLike):
        spec = os.fspath(strategy)
        return load_strategy(spec, params), _display_name(spec)
    if isinstance(strategy, type):
        return make_strategy(strategy, params), strategy.__name__
    if params:
        raise UsageError("params go to the strategy's constructor: pass the class or its file, not an instance")
    return strategy, type(strategy).__name__


def _display_name(spec: str) -> str:
    """``maker.py:Maker`` (the file's name, not its path)."""
    path, _, cls = spec.partition(":") if not os.path.exists(spec) else (spec, "", "")
    return os.path.basename(path) + (f":{cls}" if cls else "")


def backtest(
    recording: str | os.PathLike | Iterable[str | os.PathLike],
    strategy: object,
    *,
    params: dict[str, Any] | None = None,
    fill_model: str = "touch",
    latency: str | int = 0,
    response_latency: str | int = 0,
    fees: str | None = None,
    cash: float = 0.0,
    cap_volume: bool = False,
    results: str | os.PathLike | None = None,
    chart: bool = True,
    force: bool = False,
    types: Iterable[str | int] | None = None,
    symbols: Iterable[str] | None = None,
    start: str | None = None,
    end: str | None = None,
) -> BacktestResult:
    """Backtest ``strategy`` (``"path.py[:Class]"``, a class, or an instance) on ``recording`` (a journal, a
    folder, or several, merged by time) through the simulated exchange; docs/backtest.md states its rules.

    ``params`` go to the strategy class's constructor as keyword arguments. ``latency`` and
    ``response_latency`` take ns or text (``200us``); ``fees`` is ``maker=<bp>,taker=<bp>,order=<cash>``.
    With ``results`` the result folder is written there (``force`` replaces an earlier result folder);
    without, nothing is written. The same inputs give the same result as ``kftools backtest`` and
    ``kftools replay --max --strategy``.
    """
    config = exchange_config(fill_model, latency, response_latency, fees, cap_volume, cash)
    strat, name = strategy_from(strategy, params)
    if params:
        name += " " + " ".join(f"{k}={v!r}" for k, v in sorted(params.items()))
    out = os.fspath(results) if results is not None else None
    if out is not None:
        check_results_dir(out, force)
    paths = [os.fspath(recording)] if isinstance(recording, str | os.PathLike) else [os.fspath(p) for p in recording]
    reader = open_journals(paths)
    assert reader is not None
    try:
        sel = Selection.parse(reader, reader.registry, types, symbols, start, end)
        filters = sel.filters()
        until: Any = reader.end_position()
        first: Any = next(iter(reader.batches(batch_size=1, until=until, **filters)), None)
        last = reader.last(1, until=until, **filters)
        t0 = int(first.headers["gen_time"][0]) if first is not None and len(first) else None
        engine = Backtest(strat, config, bar_ns=bar_ns(t0, last[0].gen_time if last else None))
        engine.call("on_start")
        for b in reader.batches(until=until, **filters):
            engine.frames(b, 0, len(b), 0)
        engine.finish()
        engine.call("on_stop")
    finally:
        reader.close()
    summary = summarize(engine, name)
    if params:
        summary["params"] = dict(params)
    files = write_results(engine, out, summary, force=force, chart=chart, recordings=paths) if out is not None else []
    return BacktestResult(summary, out, files, tables(engine))
