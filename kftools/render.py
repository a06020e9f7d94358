"""Frames as text lines, JSON lines and CSV rows (for ``cat``, ``tail --plain``): the one rendering rule.

One convention in every output (text, JSON lines, CSV, Parquet, the tail,
backtest results): ``type`` is the type's name and ``msg_type`` its number; a
field whose layout declares ``labels`` (``side``, ``order_type``, ``status``,
``reject_reason``, ``liquidity``) shows its value's display name (``buy``,
``limit``, ``partially_filled``), or the number when the value has none; a
time declared ``zero_is_unset`` (``trigger_time``) that is 0 is null (JSON
``null``, an empty CSV cell; the tail reads ``unset``); floats print as the
shortest text that reads back to the same double (Python's ``repr``).

:func:`shown` is the rule for one value, :func:`label_array` for a column of
them (Parquet: dictionary strings).
"""

from __future__ import annotations

import csv
import datetime as dt
import enum
import io
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .journal.format import FRAME_HEADER
from .journal.layout import Field, display_name
from .journal.reader import Frame
from .journal.registry import TypeRegistry
from .timeparse import format_time

FORMATS = ("text", "jsonl", "csv")
_HEADER_COLUMNS = ["type", "msg_type", "gen_time", "trigger_time", "source", "dest"]
#: header fields whose 0 means "not set"
_UNSET_HEADERS = FRAME_HEADER.unset_times

if TYPE_CHECKING:
    import pyarrow as pa


def shown(field: Field, value):
    """``value`` of ``field`` as every output shows it: a display name for a labelled value that has one,
    None for an unset time, else the value itself (floats are then printed with :func:`exact`)."""
    if field.labels is not None:
        return field.label(value)
    if field.zero_is_unset and value == 0:
        return None
    return value


def label_array(labels: type[enum.IntEnum], values) -> pa.DictionaryArray:
    """A column of enum values as Parquet and Arrow carry them: dictionary strings, the display names in
    value order first (so a named value's index is its value when they are 0..n-1), then each value without
    a name as its number (``"7"``), which ``kftools import`` reads back."""
    import numpy as np
    import pyarrow as pa

    vals = np.asarray(values, dtype=np.int64)
    members = sorted(labels, key=int)
    texts = [display_name(m) for m in members]
    index = {int(m): k for k, m in enumerate(members)}
    for v in np.unique(vals).tolist():
        if v not in index:
            index[v] = len(texts)
            texts.append(str(v))
    keys = np.array(sorted(index), dtype=np.int64)
    codes = np.array([index[k] for k in keys.tolist()], dtype=np.int32)
    idx = codes[np.searchsorted(keys, vals)] if len(vals) else np.zeros(0, np.int32)
    return pa.DictionaryArray.from_arrays(pa.array(idx, pa.int32()), pa.array(texts, pa.string()))


def exact(v) -> str:
    """A value as text; a float as the shortest text that round-trips (``98765.43``, not ``98765.4``); an unset
    time (None) as ``unset``."""
    if v is None:
        return "unset"
    return repr(v) if isinstance(v, float) else str(v)


def labelled_fields(frame: Frame) -> dict:
    """The frame's payload fields, named values (``side``, ``order_type``) as their names."""
    f = frame.fields
    mt = frame.page.registry.get(frame.msg_type)
    if not f or mt is None or not (mt.layout.labelled or mt.layout.unset_times):
        return f
    out = dict(f)
    for name, field in mt.layout.labelled.items():
        out[name] = field.label(out[name])
    for name in mt.layout.unset_times:
        if out[name] == 0:
            out[name] = None
    return out


def record(frame: Frame) -> dict:
    """What JSON lines and CSV carry: header fields then labelled payload fields (``payload`` hex if unknown)."""
    d = frame.to_dict()
    d.update((k, v) for k, v in labelled_fields(frame).items() if k in d)
    for k in _UNSET_HEADERS:
        if d[k] == 0:
            d[k] = None
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
