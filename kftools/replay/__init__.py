"""``kftools replay``: play a recording back as if it were live (see docs/replay.md)."""

from .core import (
    Controller,
    KeyReader,
    ManualClock,
    MonotonicClock,
    Replay,
    ReplayStats,
    StrategyContext,
    default_output,
    load_strategy,
    replay,
    set_column,
)

__all__ = [
    "Controller", "KeyReader", "ManualClock", "MonotonicClock", "Replay", "ReplayStats", "StrategyContext",
    "default_output", "load_strategy", "replay", "set_column",
]
