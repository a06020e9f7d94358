"""``kftools.backtest()``: one backtest of a recording, straight from its pages (no output journal)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from ..errors import UsageError
from ..journal.merge import open_journals
from ..selection import Selection
from .loop import Backtest
from .options import exchange_config
from .outcome import BacktestResult, _display_name, bar_ns
from .results import check_results_dir, summarize, tables, write_results


def strategy_from(strategy: object, params: dict | None) -> tuple[object, str]:
    """(the strategy object, its name for the report) from ``path.py[:Class]``, a class, or an instance."""
    from ..replay.strategy import load_strategy, make_strategy

    if isinstance(strategy, str | os.PathLike):
        spec = os.fspath(strategy)
        return load_strategy(spec, params), _display_name(spec)
    if isinstance(strategy, type):
        return make_strategy(strategy, params), strategy.__name__
    if params:
        raise UsageError("params go to the strategy's constructor: pass the class or its file, not an instance")
    return strategy, type(strategy).__name__


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
