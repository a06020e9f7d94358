"""What ``kftools sweep`` shows: a rich progress bar (runs done, ETA, best run so far) and the closing lines."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

from ..backtest.report import duration, money
from .core import Progress, SweepResult


def describe(row: dict | None, short: bool = False) -> str:
    """A run in one phrase: its parameters, fill model, latency and net P&L (``short``: for the progress line)."""
    if row is None:
        return "-"
    params = ", ".join(f"{k[len('param.'):]}={v!r}" for k, v in row.items() if k.startswith("param."))
    if short:
        return f"{money(row.get('net_pnl'))} ({params + ', ' if params else ''}{row['fill_model']}, {duration(row['latency_ns'])})"
    return (f"net {money(row.get('net_pnl'))} ({params + ', ' if params else ''}{row['fill_model']}, "
            f"latency {duration(row['latency_ns'])}, run {row['run']})")


@contextlib.contextmanager
def progress_bar(quiet: bool = False) -> Iterator[Callable[[Progress], None] | None]:
    """An ``on_progress`` callback drawing on stderr; None off a terminal or when quiet."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    from rich.progress import Progress as Bar

    columns = [TextColumn("[bold]sweep"), BarColumn(bar_width=16), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn(), TextColumn("best net {task.fields[best]}")]
    with Bar(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task("sweep", total=None, best="-")

        def on_progress(p: Progress) -> None:
            bar.update(task, total=p.total, completed=p.done, best=describe(p.best, short=True))

        yield on_progress


def closing_lines(res: SweepResult) -> list[str]:
    rows = res.runs.to_pylist()
    ok = [r for r in rows if r["error"] is None]
    lines = [f"swept {len(rows):,} run(s) into {res.out}/: {res.ran:,} run now, {res.skipped:,} finished earlier, "
             f"{len(res.failed):,} failed"]
    if ok:
        best = max(ok, key=lambda r: (r["net_pnl"], r["run"]))
        lines.append(f"best           {describe(best)}")
    lines.append(f"results        {res.out}/runs.parquet, {res.out}/report.html, {res.out}/runs/<run>/")
    return lines
