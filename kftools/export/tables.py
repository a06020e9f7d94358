"""A reader's frames as one Arrow table, exactly as the Parquet export writes them (``Reader.to_arrow``).

The columns, the enum labels and the times come from :class:`~.columns.Columns`, the export's own builder, so a
table here equals ``pq.read_table`` of ``kftools export`` of the same journal with the same selection.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pyarrow as pa

from ..errors import UsageError
from ..journal.merge import MergedBatch, MergedReader
from ..journal.reader import Reader
from .columns import Columns, from_numpy
from .stream import READ_BATCH, TIMESTAMPS, page_meta


def journal_names(reader: MergedReader) -> list[str]:
    """The ``journal`` column's value of each journal: a Kungfu journal by its label, ours by file name."""
    return [r.name if r.kungfu is not None else os.path.basename(r.path) for r in reader.readers]


def merged_record_batches(cols: Columns, names: list[str], b: MergedBatch) -> Iterator[pa.RecordBatch]:
    """One merged batch as record batches of ``cols`` (with the journal column), in merged order."""
    parts = [cols.convert(p, names[j]) for j, p in zip(b.part_journal, b.parts, strict=True)]
    if len(parts) == 1 and b.order is None:
        yield parts[0]
        return
    t = pa.Table.from_batches(parts, schema=cols.schema)
    yield from (t if b.order is None else t.take(from_numpy(b.order))).to_batches()


def reader_table(reader: Reader | MergedReader, *, types=None, symbols=None, start_time=None, end_time=None,
                 timestamps: str = "ns") -> pa.Table:
    """The frames committed now that match the filters (as ``batches`` and ``kftools export`` take them), one row
    each, with the schema and metadata of the export (several journals: a ``journal`` column)."""
    from ..selection import Selection

    if timestamps not in TIMESTAMPS:
        raise UsageError(f"timestamps must be one of {', '.join(TIMESTAMPS)}, not {timestamps!r}")
    registry = reader.registry
    sel = Selection.parse(reader, registry, types, symbols, start_time, end_time)
    chosen = [t for t in (registry.get(x) for x in sel.types) if t] if sel.types else None
    out: list[pa.RecordBatch] = []
    if isinstance(reader, MergedReader):
        cols = Columns(registry, chosen, journal=True, timestamps=timestamps,
                       more=[] if chosen else [r.registry for r in reader.readers])
        names = journal_names(reader)
        meta = page_meta(reader.readers[0])
        meta["source"] = None  # several journals: see the journal column
        for mb in reader.batches(READ_BATCH, until=reader.end_position(), **sel.filters()):
            out.extend(merged_record_batches(cols, names, mb))
    else:
        cols = Columns(registry, chosen, timestamps=timestamps)
        meta = page_meta(reader)
        end = reader.end_position()
        out.extend(cols.convert(b) for b in reader.batches(READ_BATCH, until=end, **sel.filters()))
    schema = cols.schema.with_metadata(cols.metadata(meta))
    return pa.Table.from_batches(out, schema=schema)


__all__ = ["journal_names", "merged_record_batches", "reader_table"]
