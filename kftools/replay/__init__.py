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
from .ui import KeyReader, handle_key

__all__ = [
    "Controller", "KeyReader", "ManualClock", "MonotonicClock", "Replay", "ReplayStats",
    "default_output", "handle_key", "load_strategy", "replay", "set_column",
]
