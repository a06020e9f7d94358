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
from ..journal.registry import DEFAULT_REGISTRY, TypeRegistry
from ..journal.resolve import names_one
from .columns import EXPORT_FORMAT, META_KEY, Columns, schema_table
from .dataset import MANIFEST, export_dataset, is_remote
from .files import PARQUET_SUFFIXES, export_journal, export_journals
from .importer import ImportResult, import_parquet
from .stream import COMPRESSIONS, DEFAULT_ROW_GROUP, TIMESTAMPS, ExportOptions, ExportResult, Progress


def export(
    journal: str | os.PathLike | list[str | os.PathLike],
    out: str,
    *,
    registry: TypeRegistry | None = None,
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
    timestamps: str | None = None,
) -> ExportResult:
    """Export a journal to ``out`` (a Parquet file, or with ``split`` a folder of one file per type).

    Several journals, or a folder of them, export to a hive-partitioned dataset
    (``date=/type=``, incremental: see :mod:`.dataset`) in a folder, ``s3://`` or
    ``gs://``; or, when ``out`` ends in ``.parquet`` (or is ``-``), to one file
    merged by ``gen_time`` with a ``journal`` column (a file's name must end in
    ``.parquet`` or ``.pq``). ``timestamps`` (see
    :data:`TIMESTAMPS`): "us" by default for a dataset (what Spark reads, exact
    times in ``*_ns`` columns), "ns" for a file.
    ``follow`` keeps exporting new frames until ``stop`` fires; otherwise the
    frames committed when the export started are exported. The output appears
    (renamed from a temporary name) only when complete. ``total(bytes)`` is
    called once with the bytes to export, ``progress(rows, bytes)`` as they go.
    """
    registry = registry or DEFAULT_REGISTRY  # the built-in types (a Kungfu journal brings its own)
    sources = [os.fspath(journal)] if isinstance(journal, str | os.PathLike) else [os.fspath(j) for j in journal]
    out = os.fspath(out)
    opts = ExportOptions(types=types, symbols=symbols, start=start, end=end, compression=compression,
                         row_group_size=row_group_size, force=force, progress=progress, total=total,
                         timestamps=timestamps)
    if name is not None and not follow:
        raise UsageError("--name needs --follow (it publishes a follower's position)")
    if not sources:
        raise UsageError("no journal given")
    # a folder holding one Kungfu journal is that journal (see kftools.journal.resolve)
    one = len(sources) == 1 and names_one(sources[0])
    if not one or is_remote(out):
        if follow:
            raise UsageError("--follow takes one journal and a local file")
        if split:
            raise UsageError("--split is for one journal (a dataset is already split by type)")
        if out == "-" or (out.lower().endswith(PARQUET_SUFFIXES) and not is_remote(out)):
            return export_journals(sources, out, opts, registry=registry)
        return export_dataset(sources, out, opts, registry=registry)
    return export_journal(sources[0], out, opts, registry=registry, split=split, follow=follow, stop=stop, name=name)


__all__ = [
    "COMPRESSIONS", "DEFAULT_ROW_GROUP", "EXPORT_FORMAT", "MANIFEST", "META_KEY", "TIMESTAMPS", "Columns",
    "ExportOptions", "ExportResult", "ImportResult", "Progress", "export", "export_dataset", "export_journal", "export_journals",
    "import_parquet", "schema_table",
]
