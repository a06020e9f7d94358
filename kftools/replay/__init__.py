"""``kftools replay``: play a recording back as if it were live (see docs/replay.md)."""

from .core import (
    Controller,
    ManualClock,
    MonotonicClock,
    Replay,
    ReplayStats,
    default_output,
    load_strategy,
    replay,
    set_column,
)
from .options import BacktestOptions, FilterOptions, OutputOptions, PacingOptions, ReplayOptions
from .ui import KeyReader, handle_key

__all__ = [
    "BacktestOptions", "Controller", "FilterOptions", "KeyReader", "ManualClock", "MonotonicClock", "OutputOptions",
    "PacingOptions", "Replay", "ReplayOptions", "ReplayStats",
    "default_output", "handle_key", "load_strategy", "replay", "set_column",
]
