"""Export a folder of journals to one hive-partitioned dataset (``date=YYYY-MM-DD/type=Name/``)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

import numpy as np

from ..errors import NotAJournal
from ..journal import yijinjing
from ..journal.pages import journals_in
from ..journal.reader import FrameBatch, Reader
from ..journal.registry import TypeRegistry
from ..outputs import check_output, create_temporary_folder
from .columns import Columns
from .sink import ParquetSink
from .stream import (
    DEFAULT_ROW_GROUP,
    READ_BATCH,
    ExportResult,
    Progress,
    crashed,
    file_name,
    journal_bytes,
    page_meta,
    pump,
    remove_output,
)

_DAY_NS = 86_400 * 10**9


def export_dataset(
    folder: str, out: str, *, registry: TypeRegistry, types=None, symbols=None, start=None, end=None,
    compression: str = "zstd", row_group_size: int = DEFAULT_ROW_GROUP, force: bool = False,
    progress: Progress | None = None, total: Callable[[int], None] | None = None,
) -> ExportResult:
    """Export every journal in ``folder`` to a hive-partitioned dataset ``out/date=YYYY-MM-DD/type=Name/``.

    Every file has the same schema (all types' columns, and ``journal``), so
    DuckDB, Polars, pandas and Spark read the folder as one table.
    """
    from ..selection import Selection

    check_output(out, force=force, folder=True)
    # a Kungfu KF_HOME or runtime folder: every journal under it, each shown by its location
    paths = [j.first_page for j in yijinjing.find_journals(folder)] or journals_in(folder)
    if not paths:
        raise NotAJournal(f"{folder}: no journal in this folder")
    readers = []
    skipped = []
    try:
        for p in paths:
            try:
                readers.append(Reader(p, registry=registry))
            except NotAJournal as e:
                skipped.append(str(e))  # a schema file or a note beside the journals
        if not readers:
            raise NotAJournal(f"{folder}: no journal in this folder ({'; '.join(skipped)})")
        paths = [r.name for r in readers]
        if readers[0].kungfu is not None:
            registry = readers[0].registry
        sels = [Selection.parse(r, registry, types, symbols, start, end) for r in readers]
        ends = [r.end_position() for r in readers]
        if total:
            total(sum(journal_bytes(r, u) for r, u in zip(readers, ends, strict=True)))
        cols = Columns(registry, None, journal=True)
        res = ExportResult(out, journals=paths, skipped=skipped)
        tmp = create_temporary_folder(out)
        sinks: dict[tuple[int, int], ParquetSink] = {}
        rows_before = 0
        try:
            for r, sel, until in zip(readers, sels, ends, strict=True):
                jname = r.name if r.kungfu is not None else os.path.basename(r.path)
                meta = page_meta(r)
                meta["source"] = None  # many journals: see the journal column

                def consume(b: FrameBatch, jname=jname) -> None:
                    days = b.headers["gen_time"] // _DAY_NS
                    key = days.astype(np.int64) * 2**32 + b.headers["msg_type"].astype(np.int64)
                    for k in np.unique(key).tolist():
                        sink = sinks.get(k)
                        day, t = divmod(k, 2**32)
                        if sink is None:
                            date = np.datetime64(day, "D").astype(str)
                            d = os.path.join(tmp, f"date={date}", f"type={file_name(registry.name(t))}")
                            os.makedirs(d, exist_ok=True)
                            sink = sinks[k] = ParquetSink(os.path.join(d, "part-0.parquet"), cols, compression,
                                                    row_group_size, {"source": None})
                        part = b if len(key) and (key == k).all() else b.select(key == k)
                        sink.add(cols.convert(part, jname))

                def prog(rows, nbytes, base=rows_before):
                    if progress:
                        progress(base + rows, nbytes)

                sub = ExportResult(out)
                pump(r.batches(READ_BATCH, until=until, **sel.filters()), consume, None, sub, prog)
                res.rows += sub.rows
                rows_before = res.rows
                if r.damage is not None:
                    res.damage.append(r.damage)
                elif crashed(r):
                    res.crashed.append(r.path)
            for s in sinks.values():
                s.close()
            res.files = len(sinks)
            if os.path.isdir(out):
                shutil.rmtree(out)
            os.rename(tmp, out)
        except BaseException:
            remove_output(tmp)
            raise
        return res
    finally:
        for r in readers:
            r.close()
