"""Backtests: a simulated exchange that fills a strategy's orders against a replayed recording.

``kftools replay rec.dat --strategy s.py`` runs one; see docs/backtest.md.
"""

from .engine import Backtest, BacktestContext, Fill, OrderUpdate, OrderView
from .exchange import FILL_MODELS, Account, ExchangeConfig, Fees, SimExchange, SimOrder
from .options import exchange_config, parse_fees, parse_latency

__all__ = [
    "FILL_MODELS", "Account", "Backtest", "BacktestContext", "ExchangeConfig", "Fees", "Fill", "OrderUpdate",
    "OrderView", "SimExchange", "SimOrder", "exchange_config", "parse_fees", "parse_latency",
]
