"""A Parquet file written in row groups by a background thread."""

from __future__ import annotations

import queue
import sys
import threading

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import OutputError
from .columns import Columns


class ParquetSink:
    """A Parquet file being written under a temporary name, in row groups of ``row_group_size``.

    Row groups are compressed and written by a background thread (pyarrow
    releases the GIL), so decoding the next frames overlaps writing; at most
    one row group waits, which bounds memory.
    """

    def __init__(self, path, cols: Columns, compression: str, row_group_size: int, meta: dict, name: str = ""):
        # ``path``: a file name, or a binary file object (a temporary made exclusively, standard output)
        self.path = name or (path if isinstance(path, str) else "standard output")
        self.cols = cols
        self.row_group_size = row_group_size
        self.rows = 0
        self._pending: list[pa.RecordBatch] = []
        self._held = 0
        self._writer = pq.ParquetWriter(
            path, cols.schema.with_metadata(cols.metadata(meta)),
            compression=None if compression == "none" else compression,
        )
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, name="kftools-parquet", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while True:
            t = self._queue.get()
            if t is None:
                return
            if self._error is None:
                try:
                    self._writer.write_table(t, row_group_size=self.row_group_size)
                except BaseException as e:  # noqa: BLE001 - re-raised in the exporting thread
                    self._error = e
            del t
            # mimalloc (pyarrow's default pool) keeps freed row groups mapped: hand them back, so peak
            # RSS measured from outside stays near what is live (see docs/export.md)
            pa.default_memory_pool().release_unused()
            self._queue.task_done()

    def _check(self) -> None:
        if self._error is not None:
            e, self._error = self._error, None
            raise OutputError(f"{self.path}: cannot write: {e}") from e

    def add(self, rb: pa.RecordBatch) -> None:
        while len(rb):
            take = min(len(rb), self.row_group_size - self._held)
            self._pending.append(rb.slice(0, take))
            self._held += take
            rb = rb.slice(take)
            if self._held >= self.row_group_size:
                self.flush()

    def flush(self) -> None:
        self._check()
        if self._held:
            # one row group being written while the next is decoded: two in memory at most
            self._queue.join()
            self._check()
            self._queue.put(pa.Table.from_batches(self._pending, schema=self.cols.schema))
            self.rows += self._held
            self._pending, self._held = [], 0

    def close(self) -> None:
        try:
            self.flush()
            if self.rows == 0:
                # zero rows still carry the full schema
                self._queue.put(self.cols.empty())
            self._queue.join()
        finally:
            self._queue.put(None)
            self._thread.join()
            try:
                self._writer.close()  # writes the footer
            except (OSError, pa.ArrowException) as e:
                if sys.exc_info()[0] is None and self._error is None:  # not already failing: this is the error
                    self._error = e
        self._check()


