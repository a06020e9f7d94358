"""Frames as text lines, JSON lines and CSV rows (for ``cat``, ``tail --plain``).

One convention in every output (text, JSON lines, CSV, Parquet): ``type`` is the
type's name and ``msg_type`` its number; fields with named values (``side``,
``order_type``) show the name (``buy``, ``limit``), or the number when it has
none; floats print as the shortest text that reads back to the same double.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterable

from .journal.reader import Frame
from .journal.registry import TypeRegistry
from .timeparse import format_time

FORMATS = ("text", "jsonl", "csv")
_HEADER_COLUMNS = ["type", "msg_type", "gen_time", "trigger_time", "source", "dest"]


def exact(v) -> str:
    """A value as text; a float as the shortest text that round-trips (``98765.43``, not ``98765.4``)."""
    return repr(v) if isinstance(v, float) else str(v)


def labelled_fields(frame: Frame) -> dict:
    """The frame's payload fields, named values (``side``, ``order_type``) as their names."""
    f = frame.fields
    mt = frame.page.registry.get(frame.msg_type)
    if not f or mt is None or not mt.layout.labelled:
        return f
    out = dict(f)
    for name, field in mt.layout.labelled.items():
        out[name] = field.label(out[name])
    return out


def record(frame: Frame) -> dict:
    """What JSON lines and CSV carry: header fields then labelled payload fields (``payload`` hex if unknown)."""
    d = frame.to_dict()
    d.update((k, v) for k, v in labelled_fields(frame).items() if k in d)
    return d


def json_payload(frame: Frame) -> str | None:
    """The payload as JSON text when the frame's journal writes JSON (Kungfu's JSON frames), else None."""
    if not frame.page.registry.json_text or frame.page.registry.get(frame.msg_type) is not None:
        return None
    from .journal.yijinjing import json_text

    return json_text(frame.payload)


def text_line(frame: Frame, tz: dt.tzinfo | None = None, journal: bool = False) -> str:
    """One human-readable line: time (UTC unless ``tz``), (``journal``,) type, source>dest, fields."""
    name = frame.type_name
    if frame.fields:
        body = " ".join(f"{k}={exact(v)}" for k, v in labelled_fields(frame).items() if k != "reserved")
    elif (text := json_payload(frame)) is not None:
        body = text
    else:
        payload = frame.payload
        body = f"payload={payload[:32].hex()}{'…' if len(payload) > 32 else ''} ({len(payload)} bytes)"
    where = f"{frame.journal} " if journal else ""
    return f"{format_time(frame.gen_time, tz)} {where}{name:<7} {frame.source}>{frame.dest} {body}"


def json_line(frame: Frame, journal: bool = False) -> str:
    d = record(frame)
    if journal:
        d = {"journal": frame.journal, **d}
    return json.dumps(d, separators=(",", ":"))


def csv_columns(registry: TypeRegistry, types: Iterable[int] | None = None, journal: bool = False) -> list[str]:
    """Header columns (``journal`` first if asked) then every field of the (selected) registered types."""
    cols = (["journal"] if journal else []) + list(_HEADER_COLUMNS)
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

    def __init__(self, out, columns: list[str], journal: bool = False):
        self._journal = journal
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
        d = record(frame)
        if self._journal:
            d["journal"] = frame.journal
        self._csv.writerow(d)
        v = self._buf.getvalue()
        self._buf.seek(0)
        self._buf.truncate()
        return v.rstrip("\r\n")
