"""Export journals to Parquet (one file, one file per type, or a hive-partitioned dataset) and import them back.

Every committed frame becomes a row (see :mod:`.columns` for the scheme);
``import_parquet`` rebuilds a journal whose frames are byte-identical.
Batches of frames become Arrow arrays with numpy over the mapped pages: there
is no Python step per frame on the export path.

The package: ``columns`` (schema and conversion), ``sink`` (the Parquet file
writer thread), ``stream`` (what every export shares: result, progress,
pumping batches), ``files`` (one journal to a file or a split folder),
``dataset`` (a folder of journals), ``importer`` (Parquet back to a journal).
Progress is reported through callbacks; the CLI draws the bar.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from ..errors import UsageError
from ..journal import yijinjing
from ..journal.registry import TypeRegistry
from .columns import EXPORT_FORMAT, META_KEY, Columns, schema_table
from .dataset import export_dataset, journals_in
from .files import export_journal
from .importer import ImportResult, import_parquet
from .stream import COMPRESSIONS, DEFAULT_ROW_GROUP, ExportResult, Progress, check_compression


def export(
    journal: str,
    out: str,
    *,
    registry: TypeRegistry,
    types=None,
    symbols=None,
    start: str | None = None,
    end: str | None = None,
    compression: str = "zstd",
    row_group_size: int = DEFAULT_ROW_GROUP,
    split: bool = False,
    follow: bool = False,
    stop=None,
    force: bool = False,
    progress: Progress | None = None,
    total: Callable[[int], None] | None = None,
    name: str | None = None,
) -> ExportResult:
    """Export a journal to ``out`` (a Parquet file, or with ``split`` a folder of one file per type).

    A folder of journals exports to a hive-partitioned dataset (``date=/type=``).
    ``follow`` keeps exporting new frames until ``stop`` fires; otherwise the
    frames committed when the export started are exported. The output appears
    (renamed from a temporary name) only when complete. ``total(bytes)`` is
    called once with the bytes to export, ``progress(rows, bytes)`` as they go.
    """
    journal, out = os.fspath(journal), os.fspath(out)
    compression = check_compression(compression)
    if row_group_size < 1:
        raise UsageError("--row-group-size must be >= 1")
    if name is not None and not follow:
        raise UsageError("--name needs --follow (it publishes a follower's position)")
    if os.path.isdir(journal) and len(yijinjing.find_journals(journal)) != 1:
        if follow:
            raise UsageError("--follow takes one journal, not a folder")
        return export_dataset(journal, out, registry=registry, types=types, symbols=symbols, start=start, end=end,
                              compression=compression, row_group_size=row_group_size, force=force,
                              progress=progress, total=total)
    return export_journal(journal, out, registry=registry, types=types, symbols=symbols, start=start, end=end,
                          compression=compression, row_group_size=row_group_size, split=split, follow=follow,
                          stop=stop, force=force, progress=progress, total=total, name=name)


__all__ = [
    "COMPRESSIONS", "DEFAULT_ROW_GROUP", "EXPORT_FORMAT", "META_KEY", "Columns", "ExportResult", "ImportResult",
    "Progress", "export", "export_dataset", "export_journal", "import_parquet", "journals_in", "schema_table",
]
