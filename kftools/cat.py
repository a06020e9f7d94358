"""``kftools cat``: print frames as text, JSON lines or CSV; optionally follow."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

from .journal.reader import Damage, Reader
from .journal.registry import TypeRegistry
from .render import CsvWriter, csv_columns, json_line, text_line
from .selection import Selection


def cat(
    path: str,
    *,
    registry: TypeRegistry,
    out=None,
    fmt: str = "text",
    types=None,
    symbols=None,
    start: str | None = None,
    end: str | None = None,
    last: int | None = None,
    follow: bool = False,
    wait: str = "backoff",
    stop: threading.Event | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> Damage | None:
    """Write the selected frames to ``out``; returns where the journal was damaged, if it was."""
    out = out or sys.stdout
    reader = Reader.wait_open(path, registry=registry, stop=stop, on_wait=on_wait) if follow else Reader(path, registry=registry)
    if reader is None:
        return None
    with reader:
        sel = Selection.parse(reader, registry, types, symbols, start, end)
        if fmt == "jsonl":
            line = json_line
        elif fmt == "csv":
            line = CsvWriter(out, csv_columns(registry, sel.types)).line
        else:
            line = text_line
        write = out.write
        if not follow:
            frames = reader.last(last, **sel.filters()) if last is not None else reader.frames(**sel.filters())
            for f in frames:
                write(line(f) + "\n")
            return reader.damage
        pos = reader.end_position() if last is not None else None
        if last is not None:
            for f in reader.last(last, until=pos, **sel.filters()):
                write(line(f) + "\n")
            if reader.damage is not None:
                return reader.damage  # never follow past damage
        for batch in reader.follow_batches(pos or "beginning", wait, stop=stop, **sel.filters()):
            if not len(batch):
                out.flush()  # caught up: show what we have
                continue
            for f in batch.frames():
                write(line(f) + "\n")
        return reader.damage
