"""Frames as text lines, JSON lines and CSV rows (for ``cat``, ``tail --plain``)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable

from .journal.format import OrderType, Side
from .journal.reader import Frame
from .journal.registry import TypeRegistry
from .timeparse import format_time

FORMATS = ("text", "jsonl", "csv")
_HEADER_COLUMNS = ["type", "msg_type", "gen_time", "trigger_time", "source", "dest"]


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def text_line(frame: Frame) -> str:
    """One human-readable line: time, type, source>dest, fields."""
    f = frame.fields
    name = frame.type_name
    if f:
        parts = []
        for k, v in f.items():
            if k == "side":
                v = Side(v).name.lower() if v in (0, 1) else v
            elif k == "order_type":
                v = OrderType(v).name.lower() if v in (0, 1) else v
            elif k == "reserved":
                continue
            parts.append(f"{k}={_fmt(v)}")
        body = " ".join(parts)
    else:
        payload = frame.payload
        body = f"payload={payload[:32].hex()}{'…' if len(payload) > 32 else ''} ({len(payload)} bytes)"
    return f"{format_time(frame.gen_time)} {name:<7} {frame.source}>{frame.dest} {body}"


def json_line(frame: Frame) -> str:
    return json.dumps(frame.to_dict(), separators=(",", ":"))


def csv_columns(registry: TypeRegistry, types: Iterable[int] | None = None) -> list[str]:
    """Header columns then every field of the (selected) registered types, first appearance order."""
    cols = list(_HEADER_COLUMNS)
    wanted = set(types) if types else None
    for mt in registry.types():
        if wanted is not None and mt.id not in wanted:
            continue
        for n in mt.layout.names:
            if n not in cols and n != "reserved":
                cols.append(n)
    cols.append("payload")
    return cols


class CsvWriter:
    """CSV rows with one fixed header; fields a frame's type lacks stay empty."""

    def __init__(self, out, columns: list[str]):
        self._buf = io.StringIO()
        self._csv = csv.DictWriter(self._buf, columns, extrasaction="ignore")
        self._out = out
        self._csv.writeheader()
        self._flush()

    def _flush(self):
        self._out.write(self._buf.getvalue())
        self._buf.seek(0)
        self._buf.truncate()

    def line(self, frame: Frame) -> str:
        self._csv.writerow(frame.to_dict())
        v = self._buf.getvalue()
        self._buf.seek(0)
        self._buf.truncate()
        return v.rstrip("\r\n")
