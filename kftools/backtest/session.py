"""A backtest attached to a replay: checks before anything is written, the engine, the result folder."""

from __future__ import annotations

import os

from ..journal.writer import Writer
from .exchange import ExchangeConfig
from .gateway import Gateway, check_order_journal
from .loop import Backtest
from .outcome import BacktestResult, _display_name, bar_ns
from .results import check_results_dir, summarize, tables, write_results


class BacktestSession:
    """Owns one backtest attached to a :class:`~kftools.replay.Replay` (created by it when a strategy is given).

    ``out`` is the replay's output (the result folder defaults to ``<stem>.backtest/`` beside it), ``inputs``
    the recordings, ``bar_ns`` the bar width (:func:`bar_ns_of`), ``strategy`` the in-process strategy (None:
    strategies in their own processes, following ``order_journals``).
    """

    def __init__(self, config: ExchangeConfig | None, results: str | None, *, out: str, inputs: list[str],
                 bar_ns: int, strategy: object = None, force: bool = False, chart: bool = True, write: bool = True,
                 strategy_name: str = "", order_journals: list[str] | None = None, lockstep: bool = True):
        self.order_journals = list(order_journals or [])
        for p in self.order_journals:
            check_order_journal(p)
        self.lockstep = lockstep
        self.config = config or ExchangeConfig()
        self.results = os.fspath(results) if results is not None else default_results(out)
        self.write = write
        self.chart = chart
        self.force = force
        self.strategy_name = _display_name(strategy_name) if strategy_name else (
            type(strategy).__name__ if strategy is not None
            else "order journal " + ", ".join(self.order_journals))
        if write:
            check_results_dir(self.results, self.force)
        self.bar_ns = bar_ns
        self.recordings = list(inputs)
        self.engine: Backtest | None = None
        self.result: BacktestResult | None = None

    def start(self, strategy: object, orders: Writer | None, output: Writer, clock) -> Backtest:
        """The engine: the in-process strategy's dispatcher, or the one behind the :meth:`gateway`."""
        self.engine = Backtest(strategy, self.config, orders=orders, output=output, clock=clock, bar_ns=self.bar_ns)
        return self.engine

    def gateway(self, output: Writer, clock, stopped=None) -> Gateway:
        """The dispatcher for strategies in their own processes (``order_journals``), in front of the engine."""
        assert self.engine is not None
        return Gateway(self.engine, output, self.order_journals, lockstep=self.lockstep, stopped=stopped,
                       wall=clock.wall)

    def finish(self, interrupted: bool = False) -> BacktestResult:
        """Summarise and write the result folder (call once the replay ended without a strategy error); a
        replay stopped early says so in the summary (``interrupted``) and the report."""
        assert self.engine is not None
        summary = summarize(self.engine, self.strategy_name)
        summary["interrupted"] = bool(interrupted)
        files = write_results(self.engine, self.results, summary, force=self.force, chart=self.chart,
                              recordings=self.recordings) if self.write else []
        self.result = BacktestResult(summary, self.results if self.write else None, files, tables(self.engine))
        return self.result


def default_results(out: str) -> str:
    """``<stem>.backtest/`` beside the output journal."""
    base = out[:-4] if out.endswith(".dat") else out
    if base.endswith(".replay"):
        base = base[: -len(".replay")]
    return base + ".backtest"


def bar_ns_of(reader, until, filters: dict) -> int:
    """Bar width over the selection's recording span (as :func:`kftools.backtest` computes it)."""
    first = next(iter(reader.batches(batch_size=1, until=until, **filters)), None)
    last = reader.last(1, until=until, **filters)
    t0 = int(first.headers["gen_time"][0]) if first is not None and len(first) else None
    return bar_ns(t0, last[0].gen_time if last else None)
