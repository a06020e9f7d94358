"""What every export shares: the result, progress reporting, and pumping frame batches into sinks."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import KftoolsError, UsageError
from ..journal.format import FRAME_HEADER, WriterState
from ..journal.pages import PageSet
from ..journal.reader import FrameBatch, Reader

#: how ``gen_time`` / ``trigger_time`` are stored: "ns" timestamps (exact; pyarrow, pandas, DuckDB, Polars), or
#: "us" timestamps (what Spark reads) beside the exact int64 ``gen_time_ns`` / ``trigger_time_ns`` import uses
TIMESTAMPS = ("ns", "us")
COMPRESSIONS = ("zstd", "snappy", "none")
DEFAULT_ROW_GROUP = 100_000
#: frames decoded at a time. Small enough that a batch's numpy temporaries and the mapped pages not yet released
#: stay a few MB (65,536 cost some 20 MB more peak RSS), large enough that the Python step per batch is noise
READ_BATCH = 16_384
#: with --follow, rows are written at least this often (seconds) when the writer is slow
FOLLOW_FLUSH_S = 1.0


@dataclass
class ExportResult:
    """What an export wrote, and where the valid data ended if a journal was damaged."""

    out: str
    rows: int = 0
    files: int = 0
    journals: list[str] = field(default_factory=list)
    damage: list = field(default_factory=list)  # Damage per damaged journal
    crashed: list[str] = field(default_factory=list)  # journals whose writer died without closing
    skipped: list[str] = field(default_factory=list)  # files of a folder that are not journals, and why


Progress = Callable[[int, int], None]  # (rows so far, bytes so far)


@dataclass(frozen=True)
class ExportOptions:
    """What an export selects and how it writes, as :func:`kftools.export.export` takes them; checked here."""

    types: Any = None  # names or ids (a list or a comma list), as the CLI's --type
    symbols: Any = None
    start: str | None = None
    end: str | None = None
    compression: str = "zstd"
    row_group_size: int = DEFAULT_ROW_GROUP
    force: bool = False
    progress: Progress | None = None
    total: Callable[[int], None] | None = None  # called once with the bytes to export
    timestamps: str | None = None  # one of TIMESTAMPS; None: the output's default

    def __post_init__(self) -> None:
        object.__setattr__(self, "compression", check_compression(self.compression))
        if self.row_group_size < 1:
            raise UsageError("--row-group-size must be >= 1")
        if self.timestamps is not None and self.timestamps not in TIMESTAMPS:
            raise UsageError(f"unknown --timestamps {self.timestamps!r} ({', '.join(TIMESTAMPS)})")


def check_compression(compression: str) -> str:
    c = (compression or "zstd").lower()
    if c not in COMPRESSIONS:
        raise UsageError(f"unknown --compression {compression!r} ({', '.join(COMPRESSIONS)})")
    return c

def journal_bytes(reader: Reader, until=None) -> int:
    """Committed bytes (for a progress total)."""
    return reader.pages.committed_bytes(until)


def page_meta(reader: Reader) -> dict:
    caps = reader.pages.capacities()
    return {"page_capacity": caps[0] if caps else None, "page_capacities": caps,
            "source": os.path.basename(reader.path)}


def release_exported(batch: FrameBatch, done: list) -> None:
    """Drop the mapped pages of frames already exported, so RSS stays bounded on big pages."""
    page = batch.page
    if done[0] is not page:
        done[0], done[1] = page, 0
    end = int(batch.offsets[-1]) + page.frame_header_size + int(batch.headers["length"][-1])
    done[1] = PageSet.release(page, done[1], end)

def crashed(reader: Reader) -> bool:
    try:
        return reader.writer_state()[0] == WriterState.CRASHED
    except (OSError, KftoolsError):
        return False


def remove_output(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.exists(path):
        os.unlink(path)


def pump(batches, consume, flush, res: ExportResult, progress: Progress | None) -> None:
    done: list = [None, 0]
    nbytes = 0
    flushed = time.monotonic()
    for b in batches:
        if not len(b):
            if flush and time.monotonic() - flushed > FOLLOW_FLUSH_S:
                # caught up with a live writer: hand what we have to the file, but not in
                # a tiny row group each time we catch up
                flush()
                flushed = time.monotonic()
            continue
        consume(b)
        res.rows += len(b)
        nbytes += int(b.headers["length"].sum(dtype=np.int64)) + FRAME_HEADER.size * len(b)
        if isinstance(b, FrameBatch):  # (a merged batch spans pages of several journals)
            release_exported(b, done)
        if progress:
            progress(res.rows, nbytes)


def file_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
