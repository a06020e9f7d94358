"""A backtest attached to a replay: checks before anything is written, the engine, the result folder."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..journal.writer import Writer
from .engine import Backtest
from .exchange import ExchangeConfig
from .gateway import Gateway, check_order_journal
from .results import check_results_dir, summarize, write_results

BARS = 200  # equity samples (and Sharpe periods) over the recording's span


@dataclass
class BacktestResult:
    """What a finished backtest reports: its summary and where its files are."""

    summary: dict
    results: str | None
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = dict(self.summary)
        d["results"] = self.results
        d["result_files"] = self.files
        return d


class BacktestSession:
    """Owns one backtest for a :class:`~kftools.replay.Replay` (created by it when a strategy is given)."""

    def __init__(self, replay, config: ExchangeConfig | None, results: str | None, *, chart: bool = True,
                 write: bool = True, strategy_name: str = "", order_journals: list[str] | None = None,
                 lockstep: bool = True):
        self.order_journals = list(order_journals or [])
        for p in self.order_journals:
            check_order_journal(p)
        self.lockstep = lockstep
        self.config = config or ExchangeConfig()
        self.results = os.fspath(results) if results is not None else default_results(replay.out)
        self.write = write
        self.chart = chart
        self.force = replay.force
        self.strategy_name = strategy_name or (
            type(replay.strategy).__name__ if replay.strategy is not None
            else "order journal " + ", ".join(self.order_journals))
        if write:
            check_results_dir(self.results, self.force)
        self.bar_ns = _bar_ns(replay)
        self.engine: Backtest | None = None
        self.result: BacktestResult | None = None

    def start(self, strategy: object, orders: Writer | None, output: Writer, clock,
              stopped=None) -> Backtest | Gateway:
        """The replay's dispatcher: the in-process engine, or the gateway to the order journals."""
        self.engine = Backtest(strategy, self.config, orders=orders, output=output, clock=clock, bar_ns=self.bar_ns)
        if self.order_journals:
            return Gateway(self.engine, output, self.order_journals, lockstep=self.lockstep, stopped=stopped,
                           wall=clock.wall)
        return self.engine

    def finish(self) -> BacktestResult:
        """Summarise and write the result folder (call once the replay ended without a strategy error)."""
        assert self.engine is not None
        summary = summarize(self.engine, self.strategy_name)
        files = write_results(self.engine, self.results, summary, force=self.force, chart=self.chart) \
            if self.write else []
        self.result = BacktestResult(summary, self.results if self.write else None, files)
        return self.result


def default_results(out: str) -> str:
    """``<stem>.backtest/`` beside the output journal."""
    base = out[:-4] if out.endswith(".dat") else out
    if base.endswith(".replay"):
        base = base[: -len(".replay")]
    return base + ".backtest"


def _bar_ns(replay) -> int:
    """Bar width: the selection's recording span in ``BARS`` parts, rounded to a readable size."""
    r = replay.reader
    f = replay.selection.filters()
    first = next(iter(r.batches(batch_size=1, until=replay.end_position, **f)), None)
    last = r.last(1, until=replay.end_position, **f)
    if first is None or not last or not len(first):
        return 1_000_000_000
    span = max(1, last[0].gen_time - int(first.headers["gen_time"][0]))
    raw = span / BARS
    nice = [m * 10**e for e in range(3, 13) for m in (1, 2, 5)]
    return min((c for c in nice if c >= raw), default=10**12)
