"""Parquet: export and import."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..errors import CorruptJournal
from .app import command
from .common import (
    EndOpt,
    NameOpt,
    SchemaOpt,
    StartOpt,
    SymbolOpt,
    TypeOpt,
    export_progress_bar,
    registry_for,
    stop_on_signals,
)
from .exits import Reported, warn


def arrow_allocator() -> None:
    """Use Arrow's jemalloc pool in this process unless the user chose one (``ARROW_DEFAULT_MEMORY_POOL``).

    Arrow reads the variable when pyarrow is imported. Its default pool, mimalloc, kept about four times an
    export's live Arrow memory resident (17-20 MB of peak RSS); jemalloc returns it and is as fast
    (docs/export.md, "Speed and memory"). Only where pyarrow's build says it has jemalloc (its wheels do):
    naming a pool Arrow lacks prints a warning on every run.
    """
    import importlib.util

    if "pyarrow" in sys.modules or "ARROW_DEFAULT_MEMORY_POOL" in os.environ:
        return
    spec = importlib.util.find_spec("pyarrow")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        try:
            with open(os.path.join(folder, "include", "arrow", "util", "config.h"), encoding="utf-8") as fh:
                has_jemalloc = "#define ARROW_JEMALLOC\n" in fh.read()
        except OSError:
            continue
        if has_jemalloc:
            os.environ["ARROW_DEFAULT_MEMORY_POOL"] = "jemalloc"
        return


@command(name="export")
def export_cmd(
    journals: Annotated[list[Path], typer.Argument(
        help="A journal (first page); several journals or a folder of them make a dataset (or one file merged by "
             "gen_time when OUT ends in .parquet or .pq).", show_default=False, metavar="JOURNAL...")],
    out: Annotated[str, typer.Argument(
        help="Output .parquet file (- for standard output); a folder with --split; for a dataset a folder, "
             "s3://bucket/prefix or gs://bucket/prefix.", show_default=False, metavar="PATH")],
    type_: TypeOpt = None,
    symbol: SymbolOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    compression: Annotated[str, typer.Option("--compression", help="zstd, snappy or none.")] = "zstd",
    row_group_size: Annotated[int, typer.Option("--row-group-size", help="Rows per Parquet row group.")] = 100_000,
    split: Annotated[bool, typer.Option("--split", help="One Parquet file per message type, in folder OUT.")] = False,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep exporting new frames until interrupted (every frame committed by then is exported).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing output.")] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No progress bar.")] = False,
    name: NameOpt = None,
    timestamps: Annotated[str | None, typer.Option(
        "--timestamps", metavar="us|ns",
        help="gen_time/trigger_time as timestamp[us] (Spark reads it) beside exact int64 gen_time_ns/trigger_time_ns, "
             "or as exact timestamp[ns]. Default: us for a dataset, ns for a file.", show_default=False)] = None,
    schema: SchemaOpt = None,
) -> None:
    """Export frames to Parquet (typed columns, lossless); several journals or a folder to a hive-partitioned
    dataset (exporting again adds only what is new)."""
    stop = stop_on_signals() if follow else None  # before the imports: a signal during them still stops cleanly
    arrow_allocator()
    from ..export import export

    with export_progress_bar(quiet, follow) as (on_total, on_progress):
        res = export([str(j) for j in journals], out, registry=registry_for(schema), types=type_, symbols=symbol, start=start,
                     end=end, compression=compression, row_group_size=row_group_size, split=split, follow=follow,
                     stop=stop, force=force, progress=on_progress, total=on_total, name=name, timestamps=timestamps)
    if not quiet:
        typer.echo(f"wrote {res.rows:,} rows to {res.out}" + (f" ({res.files} files)" if res.files > 1 else ""),
                   err=True)
    for c in res.crashed:
        warn(f"{c}: the writer died without closing; exported every committed frame")
    for why in res.skipped:
        warn(f"skipped {why}")
    for d in res.damage:
        warn(f"{d}; exported the valid frames before it and dropped the rest")
    if res.damage:
        raise Reported(CorruptJournal(str(res.damage[0])))


@command(name="import")
def import_cmd(
    src: Annotated[str, typer.Argument(help="A kftools Parquet export, a --split folder, or a dataset (a folder, "
                                       "s3://bucket/prefix or gs://bucket/prefix).", show_default=False,
                                       metavar="PARQUET")],
    out: Annotated[Path, typer.Argument(help="The new journal (first page path).", show_default=False,
                                        metavar="JOURNAL")],
    page_size: Annotated[int | None, typer.Option("--page-size", help="Bytes per page (default: the exported one).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing journal.")] = False,
    journal: Annotated[str | None, typer.Option("--journal", help="The journal to rebuild from a dataset that holds "
                                                                  "several (its journal column).")] = None,
    schema: SchemaOpt = None,
) -> None:
    """Rebuild a journal from a Parquet export, frames byte-identical to the original."""
    from ..export import import_parquet

    res = import_parquet(src, str(out), registry=registry_for(schema), page_size=page_size, force=force,
                         journal=journal)
    typer.echo(f"wrote {res.frames:,} frames in {res.pages} page(s) to {res.out}", err=True)

