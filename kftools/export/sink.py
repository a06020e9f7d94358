"""Parquet files written in row groups by a background thread."""

from __future__ import annotations

import contextlib
import queue
import sys
import threading

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import OutputError
from .columns import Columns


class RowGroupWriter:
    """The background thread that compresses and writes the row groups of one export's Parquet files, in order.

    pyarrow releases the GIL while it compresses, so decoding the next frames overlaps writing. One row group is
    written at a time, whichever file it belongs to, and the files together hold at most one row group's rows
    waiting (the fullest is written early when they would hold more): an export to many files (one per type,
    or per day and type) holds no more in memory than an export to one file.
    """

    def __init__(self) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._thread: threading.Thread | None = None
        self._sinks: list[ParquetSink] = []
        self.held = 0  # rows the sinks hold, not yet queued

    def add_sink(self, sink: ParquetSink) -> None:
        self._sinks.append(sink)

    def bound(self, rows: int) -> None:
        """Write the fullest files' rows until the files hold at most ``rows``."""
        while self.held > rows:
            max(self._sinks, key=lambda s: s.held).flush()

    def submit(self, sink: ParquetSink, table: pa.Table) -> None:
        """Queue ``table`` for ``sink`` once every row group queued before it is written."""
        self.wait()
        if self._thread is None:
            self._thread = threading.Thread(target=self._drain, name="kftools-parquet", daemon=True)
            self._thread.start()
        self._queue.put((sink, table))

    def wait(self) -> None:
        """Until every queued row group is written."""
        self._queue.join()

    def close(self) -> None:
        """Stop the thread (after the row groups queued); a file not closed by then is abandoned (see
        :meth:`ParquetSink.abort`)."""
        for sink in self._sinks:
            sink.abort()
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def _drain(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                self._queue.task_done()
                return
            sink, table = job
            del job
            sink._write(table)
            del table
            # hand freed row groups back, so peak RSS measured from outside stays near what is live
            pa.default_memory_pool().release_unused()
            self._queue.task_done()


class ParquetSink:
    """A Parquet file being written under a temporary name, in row groups of ``row_group_size``.

    Row groups are written by a :class:`RowGroupWriter` (``writer``, shared by the files of one export; by
    default one of its own): one is written while the next is decoded, which bounds memory.
    """

    def __init__(self, path, cols: Columns, compression: str, row_group_size: int, meta: dict, name: str = "",
                 writer: RowGroupWriter | None = None):
        # ``path``: a file name, or a binary file object (a temporary made exclusively, standard output)
        self.path = name or (path if isinstance(path, str) else "standard output")
        self.cols = cols
        self.row_group_size = row_group_size
        self.rows = 0
        self._pending: list[pa.RecordBatch] = []
        self.held = 0  # rows in _pending
        self._writer = pq.ParquetWriter(
            path, cols.schema.with_metadata(cols.metadata(meta)),
            compression=None if compression == "none" else compression,
        )
        self._error: BaseException | None = None
        self._closed = False
        self._rows_writer = writer or RowGroupWriter()
        self._rows_writer.add_sink(self)
        self._own_writer = writer is None

    def _write(self, table: pa.Table) -> None:
        # in the writer thread
        if self._error is None:
            try:
                self._writer.write_table(table, row_group_size=self.row_group_size)
            except BaseException as e:  # noqa: BLE001 - re-raised in the exporting thread
                self._error = e

    def _check(self) -> None:
        if self._error is not None:
            e, self._error = self._error, None
            raise OutputError(f"{self.path}: cannot write: {e}") from e

    def add(self, rb: pa.RecordBatch) -> None:
        while len(rb):
            take = min(len(rb), self.row_group_size - self.held)
            self._pending.append(rb.slice(0, take))
            self.held += take
            self._rows_writer.held += take
            rb = rb.slice(take)
            if self.held >= self.row_group_size:
                self.flush()
        self._rows_writer.bound(2 * self.row_group_size)

    def flush(self) -> None:
        self._check()
        if self.held:
            table = pa.Table.from_batches(self._pending, schema=self.cols.schema)
            self._rows_writer.held -= self.held
            self._pending, self.held = [], 0
            self._rows_writer.submit(self, table)  # waits for the row group being written
            self._check()
            self.rows += table.num_rows

    def abort(self) -> None:
        """Stop without finishing the file (an export that failed, whose caller removes it); after
        :meth:`close`, nothing."""
        if self._closed:
            return
        self._closed = True
        self._rows_writer.wait()
        if self._own_writer:
            self._rows_writer.close()
        with contextlib.suppress(OSError, ValueError, pa.ArrowException):
            self._writer.close()

    def close(self) -> None:
        """Write what is held and the footer; raises what writing met."""
        self._closed = True
        try:
            self.flush()
            if self.rows == 0:
                # zero rows still carry the full schema
                self._rows_writer.submit(self, self.cols.empty())
        finally:
            self._rows_writer.wait()
            if self._own_writer:
                self._rows_writer.close()
            try:
                self._writer.close()  # writes the footer
            except (OSError, pa.ArrowException) as e:
                if sys.exc_info()[0] is None and self._error is None:  # not already failing: this is the error
                    self._error = e
        self._check()
