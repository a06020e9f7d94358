"""Parameter sweeps: one strategy over a grid of parameters, fill models, latencies and recordings.

``kftools sweep`` and :func:`sweep` run every combination, each the backtest ``kftools replay --max --strategy``
runs, in local processes or on a Dask cluster, into one results folder (runs.parquet, each run's result
folder, report.html); see docs/sweep.md.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .core import SweepResult


def sweep(recordings: Any, strategy: str, out: str, **options: Any) -> SweepResult:
    """Backtest ``strategy`` over every combination into the folder ``out``: see :func:`kftools.sweep.core.sweep`."""
    from .core import sweep as run

    return run(recordings, strategy, out, **options)


class _Callable(types.ModuleType):
    """``kftools.sweep(...)`` calls :func:`sweep` while ``kftools.sweep.core`` stays the package's module."""

    def __call__(self, recordings: Any, strategy: str, out: str, **options: Any) -> SweepResult:
        return sweep(recordings, strategy, out, **options)


sys.modules[__name__].__class__ = _Callable

__all__ = ["sweep"]
