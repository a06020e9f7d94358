"""What a replay reports: progress while it runs (a display reads it) and the summary after."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..journal.format import WriterState
from ..journal.reader import Damage
from .lateness import LatenessLog

LATE_NS = 1_000_000


@dataclass
class ReplayStats:
    """Progress while replaying (read by a progress display) and the summary after."""

    out: str
    speed: float | None
    frames: int = 0
    loop: int = 0
    loops_done: int = 0
    position_ns: int = 0  # recording time reached in the current loop
    span_total_ns: int = 0  # recording time covered by finished loops
    recording_span_ns: int = 0
    wall_ns: int = 0
    paused_ns: int = 0
    #: recording time jumped over by single steps while paused (covered in no running time)
    stepped_ns: int = 0
    #: what the strategy left in its ``summary`` attribute (or returned from a ``summary()`` method)
    strategy_summary: object = None
    interrupted: bool = False
    following: bool = False
    writer_state: WriterState = WriterState.UNKNOWN
    writer_pid: int = 0
    damage: Damage | None = None
    orders: str | None = None
    orders_sent: int = 0
    backtest: Any = None  # a BacktestResult when a strategy ran
    lateness: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    _late: LatenessLog = field(default_factory=LatenessLog, repr=False)
    _t0: int = 0

    @property
    def achieved_speed(self) -> float | None:
        """Recording time replayed while running / wall time while running (None before any frame).

        Pauses are not slowness, and steps taken while paused are not speed: both are left out.
        """
        span = self.span_total_ns + self.position_ns - self.stepped_ns
        running = self.wall_ns - self.paused_ns
        return span / running if running > 0 and span else None

    def lateness_summary(self) -> dict:
        a = self.lateness
        if not len(a):
            return {"lateness_p50_ns": None, "lateness_p99_ns": None, "lateness_max_ns": None, "late_over_1ms": 0}
        return {
            "lateness_p50_ns": int(np.percentile(a, 50)),
            "lateness_p99_ns": int(np.percentile(a, 99)),
            "lateness_max_ns": int(a.max()),
            "late_over_1ms": int((a > LATE_NS).sum()),
        }

    def to_dict(self) -> dict:
        d = {
            "out": self.out,
            "frames": self.frames,
            "loops": self.loops_done,
            "speed": "max" if self.speed is None else self.speed,
            "wall_s": round(self.wall_ns / 1e9, 6),
            "paused_s": round(self.paused_ns / 1e9, 6),
            "frames_per_s": round(self.frames / (self.wall_ns / 1e9), 1) if self.wall_ns else None,
            "achieved_speed": None if self.achieved_speed is None else round(self.achieved_speed, 4),
        }
        d.update(self.lateness_summary())
        d.update({
            "interrupted": self.interrupted,
            "input_writer": self.writer_state,
            "damage": None if self.damage is None else str(self.damage),
            "orders": self.orders,
            "orders_sent": self.orders_sent,
            "strategy_summary": self.strategy_summary,
        })
        if self.backtest is not None:
            d["backtest"] = self.backtest.to_dict()
        return d

