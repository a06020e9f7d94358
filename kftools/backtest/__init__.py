"""Backtests: a simulated exchange that fills a strategy's orders against a replayed recording.

``kftools replay rec.dat --strategy s.py`` runs one; see docs/backtest.md.
"""

import sys
import types

from .engine import BacktestContext, OrderView, Timer
from .exchange import FILL_MODELS, Account, ExchangeConfig, Fees, Fill, OrderUpdate, SimExchange, SimOrder
from .loop import Backtest
from .options import exchange_config, parse_fees, parse_latency
from .run import BacktestResult, backtest

__all__ = [
    "FILL_MODELS", "Account", "Backtest", "BacktestContext", "BacktestResult", "ExchangeConfig", "Fees", "Fill",
    "OrderUpdate", "OrderView", "SimExchange", "SimOrder", "Timer", "backtest", "exchange_config", "parse_fees",
    "parse_latency",
]


class _CallableModule(types.ModuleType):
    """``kftools.backtest(recording, strategy, ...)`` runs a backtest; ``kftools.backtest.X`` is this package."""

    def __call__(self, recording, strategy, **options) -> BacktestResult:
        return backtest(recording, strategy, **options)


sys.modules[__name__].__class__ = _CallableModule
