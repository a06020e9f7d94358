"""What a backtest run gives back and the names and bars it uses; shared by ``kftools.backtest()`` (run.py) and a
replay's backtest session (session.py), which the replay engine imports: here, neither imports the other."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import pyarrow as pa

BARS = 200  # equity samples (and Sharpe periods) over the recording's span


@dataclass
class BacktestResult:
    """A finished backtest: ``summary`` (what summary.json holds), the result folder (None when nothing was
    written), its files, and the ``orders``, ``updates``, ``fills`` and ``equity`` tables (pyarrow; call
    ``.to_pandas()`` for a DataFrame)."""

    summary: dict
    results: str | None
    files: list[str] = field(default_factory=list)
    tables: dict[str, pa.Table] = field(default_factory=dict, repr=False)

    @property
    def orders(self) -> pa.Table:
        return self.tables["orders"]

    @property
    def updates(self) -> pa.Table:
        return self.tables["updates"]

    @property
    def fills(self) -> pa.Table:
        return self.tables["fills"]

    @property
    def equity(self) -> pa.Table:
        return self.tables["equity"]

    def to_dict(self) -> dict:
        """The summary, the folder and its files, as valid JSON values (non-finite numbers as None)."""
        from .results import finite

        d = finite(dict(self.summary))
        d["results"] = self.results
        d["result_files"] = self.files
        return d


def bar_ns(first: int | None, last: int | None) -> int:
    """Bar width: the recording span in ``BARS`` parts, rounded up to 1, 2 or 5 times a power of ten (ns)."""
    if first is None or last is None:
        return 1_000_000_000
    raw = max(1, last - first) / BARS
    nice = [m * 10**e for e in range(3, 13) for m in (1, 2, 5)]
    return min((c for c in nice if c >= raw), default=10**12)


def _display_name(spec: str) -> str:
    """``maker.py:Maker`` (the file's name, not its path)."""
    path, _, cls = spec.partition(":") if not os.path.exists(spec) else (spec, "", "")
    return os.path.basename(path) + (f":{cls}" if cls else "")


__all__ = ["BARS", "BacktestResult", "bar_ns"]
