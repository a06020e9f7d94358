"""What a replay is asked to do, in named groups: pacing, output, the frames selected, the backtest.

``Replay(path, out, speed=10, strategy="s.py")`` takes them as keywords (each keyword is a field of one group);
the command line builds a :class:`ReplayOptions` and passes it whole.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from ..errors import UsageError

if TYPE_CHECKING:
    from ..backtest.exchange import ExchangeConfig

MIN_SPEED, MAX_SPEED = 1e-3, 1e6  # beyond these a schedule overflows or is --max in all but name


@dataclass(frozen=True)
class PacingOptions:
    """When frames go out: ``speed`` None as fast as possible; ``loops`` 0 repeats until stopped; ``follow`` then
    relays frames as they are committed (``wait``: how the follower waits; ``name``: its published position)."""

    speed: float | None = 1.0
    loops: int = 1
    follow: bool = False
    wait: str = "busy"
    name: str | None = None

    def check(self) -> None:
        speed = self.speed
        if speed is not None and (
            isinstance(speed, bool) or not isinstance(speed, int | float) or not MIN_SPEED <= speed <= MAX_SPEED
        ):
            raise UsageError(f"--speed must be a number from {MIN_SPEED:g} to {MAX_SPEED:g} (--max: no pacing), not {speed!r}")
        if self.loops < 0:
            raise UsageError("--loop must be >= 0 (0 repeats until stopped)")
        if self.follow and self.loops != 1:
            raise UsageError("--follow and --loop cannot be combined")
        if self.name is not None and not self.follow:
            raise UsageError("--name needs --follow (it publishes a follower's position)")


@dataclass(frozen=True)
class OutputOptions:
    """Where frames go: ``out`` (default ``<stem>.replay.dat`` beside the input), replaced only with ``force``;
    ``format`` kftools or a Kungfu journal (``kf_home`` and ``location`` then say where)."""

    out: str | os.PathLike | None = None
    force: bool = False
    page_size: int | None = None
    format: str = "kftools"
    kf_home: str | os.PathLike | None = None
    location: str | None = None


@dataclass(frozen=True)
class FilterOptions:
    """Which frames: types (names or ids), symbols, and a gen_time range (as ``kftools cat`` reads them)."""

    types: Iterable[str | int] | None = None
    symbols: Iterable[str] | None = None
    start: str | None = None
    end: str | None = None


@dataclass(frozen=True)
class BacktestOptions:
    """A backtest on the replayed stream: an in-process ``strategy`` (an object or ``path.py[:Class]``) or
    strategies in their own processes (``order_journals``), the exchange, and where results go."""

    strategy: object | str | None = None
    orders: str | os.PathLike | None = None
    exchange: ExchangeConfig | None = None
    results: str | os.PathLike | None = None
    chart: bool = True
    order_journals: Iterable[str | os.PathLike] | None = None
    lockstep: bool = True


@dataclass(frozen=True)
class ReplayOptions:
    """Everything a replay is asked to do (the run's clock, controls and callbacks are the Replay's own)."""

    pacing: PacingOptions = field(default_factory=PacingOptions)
    output: OutputOptions = field(default_factory=OutputOptions)
    filters: FilterOptions = field(default_factory=FilterOptions)
    backtest: BacktestOptions = field(default_factory=BacktestOptions)

    @classmethod
    def from_keywords(cls, out: str | os.PathLike | None = None, **keywords: Any) -> ReplayOptions:
        """The groups from flat keywords (``speed=``, ``strategy=``, ...: each a field of one group)."""
        groups: dict[str, Any] = {}
        for name, group in (("pacing", PacingOptions), ("output", OutputOptions), ("filters", FilterOptions),
                            ("backtest", BacktestOptions)):
            mine = {f.name for f in fields(group)}
            groups[name] = group(**{k: keywords.pop(k) for k in list(keywords) if k in mine})
        if keywords:
            raise TypeError(f"Replay() got an unexpected keyword argument {next(iter(keywords))!r}")
        groups["output"] = replace(groups["output"], out=out)
        return cls(**groups)
