"""Export one journal to one Parquet file, or (``split``) to a folder of one file per message type."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from ..errors import UsageError
from ..journal.format import FRAME_HEADER_SIZE, PAGE_HEADER_SIZE
from ..journal.reader import FrameBatch, Reader
from ..journal.registry import TypeRegistry
from ..outputs import STDOUT, check_output, create_temporary, create_temporary_folder, publish_mode
from .columns import Columns
from .sink import ParquetSink, RowGroupWriter
from .stream import (
    READ_BATCH,
    ExportOptions,
    ExportResult,
    crashed,
    file_name,
    journal_bytes,
    page_meta,
    pump,
    remove_output,
)
from .tables import journal_names, merged_record_batches

#: the names of a Parquet file (what every engine, and ``kftools import``, takes for one)
PARQUET_SUFFIXES = (".parquet", ".pq")
#: names that say a text format: a folder (--split, a dataset) so named is a mistake too
TEXT_SUFFIXES = (".csv", ".tsv", ".txt", ".json", ".jsonl", ".ndjson")


def check_parquet_name(out: str, *, folder: bool = False, journal: str = "JOURNAL") -> None:
    """Refuse a Parquet output named as something else (``out.csv``): a file must end in .parquet or .pq, a
    folder of Parquet files must not end in a text format's extension."""
    name = os.path.basename(out.rstrip("/" + os.sep)).lower()
    if folder and not name.endswith(TEXT_SUFFIXES):
        return
    if not folder and name.endswith(PARQUET_SUFFIXES):
        return
    ext = os.path.splitext(name)[1]
    what = f"a {ext} name" if ext else "a name without .parquet"
    raise UsageError(f"{out}: export writes Parquet, not into {what} (name it .parquet or .pq; for text or CSV: "
                     f"kftools cat -F csv {journal} > {out})")


def export_journal(journal: str, out: str, opts: ExportOptions, *, registry: TypeRegistry, split: bool = False,
                   follow: bool = False, stop=None, name: str | None = None) -> ExportResult:
    """Export one journal to ``out`` (a Parquet file, or with ``split`` a folder of one file per type).

    The other arguments as :func:`kftools.export.export` takes them.
    """
    from ..selection import Selection

    timestamps = opts.timestamps or "ns"

    to_stdout = out == STDOUT
    if to_stdout:
        if split:
            raise UsageError("--split writes a folder of files: '-' (standard output) takes one file")
        if sys.stdout.isatty():
            raise UsageError("refusing to write Parquet to a terminal: redirect or pipe standard output")
    else:
        check_output(out, force=opts.force, folder=split, inputs=[journal])
        check_parquet_name(out, folder=split, journal=journal)
    reader = Reader(journal, registry=registry)
    registry = reader.registry  # a Kungfu journal brings its own types
    try:
        sel = Selection.parse(reader, registry, opts.types, opts.symbols, opts.start, opts.end)
        chosen = [registry.get(t) for t in sel.types] if sel.types else None
        meta = page_meta(reader)
        res = ExportResult(out, journals=[journal])
        until = None if follow else reader.end_position()
        if opts.total:
            opts.total(journal_bytes(reader, until))
        if follow:
            batches = _follow_then_drain(reader, stop, sel.filters(), name)
        else:
            batches = reader.batches(READ_BATCH, until=until, **sel.filters())
        if to_stdout:
            cols = Columns(registry, [t for t in chosen if t] if chosen else None, timestamps=timestamps)
            sink = ParquetSink(sys.stdout.buffer, cols, opts.compression, opts.row_group_size, meta)
            try:
                pump(batches, lambda b: sink.add(cols.convert(b)), sink.flush if follow else None, res, opts.progress)
                sink.close()
            finally:
                sink.abort()
            sys.stdout.buffer.flush()
            res.files = 1
        else:
            _export_to_file(out, split, opts, batches, registry, chosen, meta, res, follow, timestamps)
        if reader.damage is not None:
            res.damage.append(reader.damage)
        elif crashed(reader):
            res.crashed.append(journal)
        return res
    finally:
        reader.close()


def export_journals(paths: list[str], out: str, opts: ExportOptions, *, registry: TypeRegistry) -> ExportResult:
    """Export several journals (or folders of them) to one Parquet file, in one timeline merged by ``gen_time``
    (ties as ``kftools cat`` orders them), with a ``journal`` column naming each row's journal."""
    from ..journal.merge import MergedReader
    from ..selection import Selection

    timestamps = opts.timestamps or "ns"
    to_stdout = out == STDOUT
    if to_stdout and sys.stdout.isatty():
        raise UsageError("refusing to write Parquet to a terminal: redirect or pipe standard output")
    reader = MergedReader(paths, registry=registry)
    try:
        if not to_stdout:
            check_output(out, force=opts.force, inputs=[r.path for r in reader.readers])
            check_parquet_name(out, journal=" ".join(paths))
        registry = reader.registry  # Kungfu journals bring their own types
        names = journal_names(reader)  # a Kungfu journal by its label, ours by file name, as in a dataset
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup is not None:
            raise UsageError(f"two journals are named {dup}: the journal column could not tell them apart")
        sel = Selection.parse(reader, registry, opts.types, opts.symbols, opts.start, opts.end)
        chosen = [registry.get(t) for t in sel.types] if sel.types else None
        several = len({id(r.registry) for r in reader.readers}) > 1  # Kungfu generations: each its own types
        cols = Columns(registry, [t for t in chosen if t] if chosen else None, journal=True, timestamps=timestamps,
                       more=[r.registry for r in reader.readers] if several or not chosen else [])
        meta = page_meta(reader.readers[0])
        meta["source"] = None  # several journals: see the journal column
        res = ExportResult(out, journals=[r.path for r in reader.readers], skipped=list(reader.skipped))
        until = reader.end_position()
        if opts.total:
            opts.total(sum(journal_bytes(r, u) for r, u in zip(reader.readers, until, strict=True)))

        def rows(b) -> Iterator[pa.RecordBatch]:
            return merged_record_batches(cols, names, b)

        def write(fh) -> None:
            sink = ParquetSink(fh, cols, opts.compression, opts.row_group_size, meta, name=out)

            def consume(b) -> None:
                for rb in rows(b):
                    sink.add(rb)

            try:
                pump(reader.batches(READ_BATCH, until=until, **sel.filters()), consume, None, res, opts.progress)
                sink.close()
            finally:
                sink.abort()

        if to_stdout:
            write(sys.stdout.buffer)
            sys.stdout.buffer.flush()
        else:
            fd, tmp = create_temporary(out)
            try:
                with os.fdopen(fd, "wb", buffering=0) as fh:
                    write(fh)
                publish_mode(tmp)
                os.replace(tmp, out)
            except BaseException:
                remove_output(tmp)
                raise
        res.files = 1
        if reader.damage is not None:
            res.damage.append(reader.damage)
        res.crashed += [r.path for r in reader.readers if r.damage is None and crashed(r)]
        return res
    finally:
        reader.close()


def _export_to_file(out, split, opts: ExportOptions, batches, registry, chosen, meta, res, follow, timestamps) -> None:
    """Write under an exclusive temporary beside ``out``; rename it into place only when complete."""
    if split:
        tmp = create_temporary_folder(out)
    else:
        fd, tmp = create_temporary(out)
    try:
        if split:
            _export_split(batches, registry, chosen, tmp, opts, meta, res, timestamps)
        else:
            fh = os.fdopen(fd, "wb", buffering=0)  # unbuffered: a write error surfaces in the writer, not at close
            try:
                cols = Columns(registry, [t for t in chosen if t] if chosen else None, timestamps=timestamps)
                sink = ParquetSink(fh, cols, opts.compression, opts.row_group_size, meta, name=out)
                try:
                    pump(batches, lambda b: sink.add(cols.convert(b)), sink.flush if follow else None, res,
                         opts.progress)
                    sink.close()
                finally:
                    sink.abort()
            finally:
                with contextlib.suppress(OSError):
                    fh.close()
            res.files = 1
        publish_mode(tmp, folder=split)
        if opts.force and split and os.path.isdir(out) and not os.path.islink(out):
            shutil.rmtree(out)
        os.replace(tmp, out) if not split else os.rename(tmp, out)
    except BaseException:
        remove_output(tmp)
        raise


def _export_split(batches, registry, chosen, tmpdir, opts: ExportOptions, meta, res, timestamps) -> None:
    sinks: dict[int, tuple[Columns, ParquetSink]] = {}
    writer = RowGroupWriter()  # one for every file: one row group written at a time

    def sink_for(t: int):
        s = sinks.get(t)
        if s is None:
            mt = registry.get(t)
            cols = Columns(registry, [mt] if mt else [], timestamps=timestamps)
            name = file_name(registry.name(t)) + ".parquet"
            s = sinks[t] = (cols, ParquetSink(os.path.join(tmpdir, name), cols, opts.compression, opts.row_group_size,
                                              meta, writer=writer))
        return s

    if chosen:
        for mt in chosen:
            if mt is not None:
                sink_for(mt.id)

    def consume(b: FrameBatch) -> None:
        ids = b.headers["msg_type"]
        for t in np.unique(ids).tolist():
            cols, sink = sink_for(t)
            part = b if len(sinks) == 1 and (ids == t).all() else b.select(ids == t)
            sink.add(cols.convert(part))

    def flush_all() -> None:
        for _, s in sinks.values():
            s.flush()

    try:
        pump(batches, consume, flush_all, res, opts.progress)
        for _, s in sinks.values():
            s.close()
    finally:
        writer.close()
    res.files = len(sinks)


def _follow_then_drain(reader: Reader, stop, filters: dict, name: str | None = None) -> Iterator[FrameBatch]:
    """Follow until ``stop`` fires, then take every frame committed by then.

    Ctrl-C ends a live export; it must not drop the frames the writer committed
    before it that this export had not reached yet.
    """
    pos = (0, PAGE_HEADER_SIZE)
    for b in reader.follow_batches("beginning", "sleep", stop=stop, batch_size=READ_BATCH, name=name, **filters):
        if len(b):
            pos = (b.page.index, int(b.offsets[-1]) + FRAME_HEADER_SIZE + int(b.headers["length"][-1]))
        yield b
    if reader.damage is None:
        yield from reader.batches(READ_BATCH, start=pos, until=reader.end_position(), **filters)
