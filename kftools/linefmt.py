"""Text, JSON lines and CSV at pipe speed: render.py's rule compiled into line programs.

Each message type of a registry becomes, per output style, a *line program*:
a list of ops, each a literal prefix and one value read from the frame header
or the payload (an int, a float, a text field, a labelled value, a time). The
C extension ``kftools._format`` runs the programs over a run of frames and
returns the lines as bytes; :class:`PyFormatter` is its pure-Python twin. Both
are byte-identical to :mod:`kftools.render`'s per-frame functions (the tests
run all three over every layout); a type that no program covers (unknown,
no fields, a field named like a header key) and a value no fast path covers
(a time outside years 1000-9999) are rendered by those functions.

Text lines use the C path only for UTC times (``--tz`` elsewhere goes through
:func:`kftools.render.text_line`).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import struct
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from .journal.format import FRAME_HEADER, FRAME_HEADER_SIZE
from .journal.frames import HEADER_DTYPE, frames_of
from .journal.layout import BYTE_ORDER, Field, Layout, display_name
from .journal.registry import TypeRegistry
from .render import CsvWriter, json_line, text_line

try:
    from . import _format
except ImportError:  # pragma: no cover - the extension is optional
    _format = None  # type: ignore[assignment]

STYLES = {"text": 0, "jsonl": 1, "csv": 2}
TEXT, JSON, CSV = 0, 1, 2
(OP_NONE, OP_BOOL, OP_I8, OP_U8, OP_U16, OP_U32, OP_U64, OP_I32, OP_I64, OP_F32, OP_F64, OP_TEXT, OP_TIME, OP_OPTTIME,
 OP_JOURNAL, OP_TYPENAME, OP_HEX) = range(17)
#: the key of the program for types the registry does not know
UNKNOWN = -1
_SCALAR_OPS = {"bool": OP_BOOL, "i8": OP_I8, "u8": OP_U8, "u16": OP_U16, "u32": OP_U32, "u64": OP_U64, "i32": OP_I32,
               "i64": OP_I64, "f32": OP_F32, "f64": OP_F64}
_STRUCT = {OP_BOOL: "?", OP_I8: "b", OP_U8: "B", OP_U16: "H", OP_U32: "I", OP_U64: "Q", OP_I32: "i", OP_I64: "q",
           OP_F32: "f", OP_F64: "d"}
_HEADER_KEYS = {"journal", "type", "msg_type", "length", "gen_time", "trigger_time", "source", "dest", "page", "offset",
                "payload", "text"}
_MAX_LABEL = 4096
assert HEADER_DTYPE.itemsize == FRAME_HEADER_SIZE == 32, "_format.c reads 32-byte kftools frame headers"

Op = tuple  # (prefix, code, src, offset, count, is_array, size, labels)


def csv_quote(text: str) -> str:
    """``text`` as one CSV cell (the csv module's QUOTE_MINIMAL)."""
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _hop(name: str, code: int) -> tuple[int, int, int]:
    return code, 0, FRAME_HEADER.offset(name)


def _field_op(prefix: str, f: Field, offset: int, style: int) -> Op | None:
    """The op of one payload field, or None when only the per-frame rule renders it."""
    if f.is_text:
        return (prefix.encode(), OP_TEXT, 1, offset, 1, 0, f.size, None)
    code = _SCALAR_OPS.get(f.scalar)
    if code is None:
        return None
    labels = None
    if f.labels is not None:
        values = [int(m) for m in f.labels]
        if f.is_array or min(values) < 0 or max(values) >= _MAX_LABEL:
            return None
        table: list[bytes | None] = [None] * (max(values) + 1)
        for m in f.labels:
            name = display_name(m)
            shown = json.dumps(name) if style == JSON else csv_quote(name) if style == CSV else name
            table[int(m)] = shown.encode()
        labels = tuple(table)
    elif f.zero_is_unset:
        if f.scalar != "i64" or f.is_array:
            return None
        code = OP_OPTTIME
    return (prefix.encode(), code, 1, offset, f.count, int(f.is_array), f.size, labels)


def compile_program(style: int, registry: TypeRegistry, msg_type: int, *, journal: bool,
                    columns: list[str] | None = None) -> tuple[Op, ...] | None:
    """The line program of ``msg_type`` in ``style`` (CSV: in ``columns``' order), or None. ``UNKNOWN``: the
    program of every type the registry does not know (the payload as hex)."""
    if msg_type == UNKNOWN:
        if registry.json_text:  # a Kungfu journal's unknown frames may be JSON text: the per-frame rule
            return None
        layout = Layout("unknown", [])
        name = None
    else:
        mt = registry.get(msg_type)
        if mt is None or not mt.layout.fields:
            return None
        layout = mt.layout
        name = mt.name
    if any(n in _HEADER_KEYS for n in layout.names):
        return None
    ops: list[Op] = []
    pending = ""

    def emit(code: int, src: int, offset: int, size: int = 0) -> None:
        nonlocal pending
        ops.append((pending.encode(), code, src, offset, 1, 0, size, None))
        pending = ""

    if style == TEXT:
        body = [f for f in layout.fields if f.name != "reserved"]
        if not body and name is not None:
            return None
        emit(*_hop("gen_time", OP_TIME))
        pending = " "
        if journal:
            emit(OP_JOURNAL, 0, 0)
            pending = " "
        if name is None:
            emit(OP_TYPENAME, 0, 0)
            pending = " "
        else:
            pending += f"{name:<7} "
        emit(*_hop("source", OP_U32))
        pending = ">"
        emit(*_hop("dest", OP_U32))
        pending = " "
        if name is None:
            pending += "payload="
            emit(OP_HEX, 1, 0)
        for k, f in enumerate(body):
            op = _field_op(f"{pending}{'' if k == 0 else ' '}{f.name}=", f, layout.offset(f.name), style)
            if op is None:
                return None
            ops.append(op)
            pending = ""
    elif style == JSON:
        pending = "{"
        if journal:
            pending += '"journal":'
            emit(OP_JOURNAL, 0, 0)
            pending = ","
        if name is None:
            pending += '"type":'
            emit(OP_TYPENAME, 0, 0)
            pending = ',"msg_type":'
            emit(*_hop("msg_type", OP_U32))
            pending = ',"gen_time":'
        else:
            pending += f'"type":{json.dumps(name)},"msg_type":{msg_type},"gen_time":'
        emit(*_hop("gen_time", OP_I64))
        pending = ',"trigger_time":'
        emit(*_hop("trigger_time", OP_OPTTIME))
        pending = ',"source":'
        emit(*_hop("source", OP_U32))
        pending = ',"dest":'
        emit(*_hop("dest", OP_U32))
        if name is None:
            pending += ',"payload":'
            emit(OP_HEX, 1, 0)
        for f in layout.fields:
            op = _field_op(f",{json.dumps(f.name)}:", f, layout.offset(f.name), style)
            if op is None:
                return None
            ops.append(op)
        pending = "}"
    else:
        assert columns is not None
        header = {"gen_time": OP_I64, "trigger_time": OP_OPTTIME, "source": OP_U32, "dest": OP_U32}
        for k, c in enumerate(columns):
            if k:
                pending += ","
            if c == "journal" and journal:
                emit(OP_JOURNAL, 0, 0)
            elif c == "type":
                if name is None:
                    emit(OP_TYPENAME, 0, 0)
                else:
                    pending += csv_quote(name)
            elif c == "msg_type":
                if name is None:
                    emit(*_hop("msg_type", OP_U32))
                else:
                    pending += str(msg_type)
            elif c == "payload" and name is None:
                emit(OP_HEX, 1, 0)
            elif c in header:
                emit(*_hop(c, header[c]))
            elif c in layout.names:
                f = layout.field(c)
                op = _field_op(pending, f, layout.offset(c), style)
                if op is None:
                    return None
                ops.append(op)
                pending = ""
    ops.append((pending.encode(), OP_NONE, 0, 0, 1, 0, 0, None))
    return tuple(ops)


def compile_programs(style: int, registry: TypeRegistry, *, journal: bool,
                     columns: list[str] | None = None) -> dict[int, tuple[Op, ...] | None]:
    """The line program of every type of ``registry`` (None: the per-frame rule renders it) and, under
    ``UNKNOWN``, of the types it does not know."""
    out: dict[int, tuple[Op, ...] | None] = {}
    for mt in registry.types():
        out[mt.id] = compile_program(style, registry, mt.id, journal=journal, columns=columns)
    unknown = compile_program(style, registry, UNKNOWN, journal=journal, columns=columns)
    if unknown is not None:
        out[UNKNOWN] = unknown
    return out


# ---- the pure-Python twin of _format.Formatter ----------------------------------------------------

def _float(x: float, style: int) -> str:
    if style == JSON and (x != x or x in (float("inf"), float("-inf"))):
        return "NaN" if x != x else ("Infinity" if x > 0 else "-Infinity")
    return repr(x)


def _scalar(v: Any, code: int, style: int) -> str:
    if code == OP_BOOL:
        return ("true" if v else "false") if style == JSON else str(v)
    if code in (OP_F32, OP_F64):
        return _float(v, style)
    return str(v)


def _time(ns: int) -> str | None:
    sec, frac = divmod(ns, 1_000_000_000)
    days, rem = divmod(sec, 86400)
    try:
        d = dt.date(1970, 1, 1) + dt.timedelta(days=days)
    except OverflowError:
        return None
    if not 1000 <= d.year <= 9999:
        return None
    return f"{d.isoformat()}T{rem // 3600:02d}:{rem // 60 % 60:02d}:{rem % 60:02d}.{frac:09d}Z"


def _text(raw: bytes, style: int) -> str:
    s = raw.split(b"\0", 1)[0].decode("utf-8", "replace")
    if style == JSON:
        return json.dumps(s)
    if style == CSV:
        return csv_quote(s)
    return s


class PyFormatter:
    """The pure-Python twin of ``_format.Formatter``: same programs, same bytes."""

    def __init__(self, style: int, programs: dict[int, tuple[Op, ...]]):
        if style not in (TEXT, JSON, CSV):
            raise ValueError("style is 0 (text), 1 (JSON) or 2 (CSV)")
        self.style = style
        self.programs = dict(programs)

    def _op(self, op: Op, hdr: bytes, length: int, msg_type: int, mm, pay: int, journal: bytes) -> str | None:
        prefix, code, src, offset, count, is_array, size, labels = op
        style = self.style
        out = prefix.decode()
        if code == OP_NONE:
            return out
        if code == OP_JOURNAL:
            return out + journal.decode()
        if code == OP_TYPENAME:
            name = f"type{msg_type}"
            return out + (json.dumps(name) if style == JSON else f"{name:<7}" if style == TEXT else name)
        if code == OP_HEX:
            data = bytes(mm[pay : pay + length])
            if style == TEXT:
                return out + f"{data[:32].hex()}{'…' if length > 32 else ''} ({length} bytes)"
            return out + (f'"{data.hex()}"' if style == JSON else data.hex())
        at = pay + offset if src else offset
        buf = mm if src else hdr
        if code == OP_TEXT:
            return out + _text(bytes(buf[at : at + size]), style)
        if code in (OP_TIME, OP_OPTTIME):
            v = struct.unpack_from(BYTE_ORDER + _STRUCT[OP_I64], buf, at)[0]
            if code == OP_TIME:
                t = _time(v)
                return None if t is None else out + t
            if v == 0:
                return out + ("null" if style == JSON else "unset" if style == TEXT else "")
            return out + str(v)
        fmt = _STRUCT[code]
        if not is_array:
            v = struct.unpack_from(BYTE_ORDER + fmt, buf, at)[0]
            if labels is not None and 0 <= v < len(labels) and labels[v] is not None:
                return out + labels[v].decode()
            return out + _scalar(v, code, style)
        vals = struct.unpack_from(f"{BYTE_ORDER}{count}{fmt}", buf, at)
        inner = JSON if style == JSON else TEXT
        text = ("," if style == JSON else ", ").join(_scalar(v, code, inner) for v in vals)
        text = f"[{text}]"
        if style == CSV and count > 1:
            text = f'"{text}"'
        return out + text

    def run(self, mm, header_size: int, offsets, headers, journal: bytes, fallback: Callable[[int], bytes]) -> bytes:
        offs = np.asarray(offsets, dtype=np.int64).tolist()
        hdrs = bytes(headers)
        if len(hdrs) != HEADER_DTYPE.itemsize * len(offs):
            raise ValueError("run: offsets and headers disagree")
        table = np.frombuffer(hdrs, HEADER_DTYPE)
        lengths, types = table["length"].tolist(), table["msg_type"].tolist()
        size = HEADER_DTYPE.itemsize
        lines = []
        for i, at in enumerate(offs):
            hdr = hdrs[size * i : size * (i + 1)]
            msg_type = types[i]
            prog = self.programs[msg_type] if msg_type in self.programs else self.programs.get(UNKNOWN)
            line = None
            if prog is not None:
                pay = at + header_size
                parts = [self._op(op, hdr, lengths[i], msg_type, mm, pay, journal) for op in prog]
                if all(p is not None for p in parts):
                    line = "".join(parts).encode()  # type: ignore[arg-type]
            lines.append(line if line is not None else fallback(i))
            lines.append(b"\n")
        return b"".join(lines)


IMPLEMENTATIONS: dict[str, type] = {"python": PyFormatter}
if _format is not None:
    IMPLEMENTATIONS["c"] = _format.Formatter


# ---- running programs over batches ------------------------------------------------------------------

class LineRenderer:
    """Whole batches (``FrameBatch`` or ``MergedBatch``) as the lines ``cat`` prints, as bytes.

    ``fmt`` is ``text``, ``jsonl`` or ``csv`` (CSV: ``columns`` as :func:`kftools.render.csv_columns`
    gives them); ``journal`` puts each frame's journal first, as for several journals."""

    def __init__(self, fmt: str, *, journal: bool = False, columns: list[str] | None = None,
                 tz: dt.tzinfo | None = None, implementation: str | None = None):
        self.style = STYLES[fmt]
        self.journal = journal
        self.columns = columns
        self.tz = tz
        impl = implementation or ("c" if "c" in IMPLEMENTATIONS else "python")
        self._make = IMPLEMENTATIONS[impl]
        self._formatters: dict[int, tuple[TypeRegistry, Any]] = {}
        self._journals: dict[int, tuple[Any, bytes]] = {}
        self._line: Callable[[Any], str]
        if self.style == JSON:
            self._line = lambda f: json_line(f, journal=journal)
        elif self.style == CSV:
            assert columns is not None
            sink = io.StringIO()
            self._line = CsvWriter(sink, columns, journal=journal).line
        else:
            self._line = lambda f: text_line(f, tz=tz, journal=journal)
        #: text in a zone other than UTC: every line from render.text_line
        self.fast = not (self.style == TEXT and tz is not None and tz is not dt.UTC)

    def _formatter(self, registry: TypeRegistry):
        got = self._formatters.get(id(registry))
        if got is None or got[0] is not registry:
            progs = compile_programs(self.style, registry, journal=self.journal, columns=self.columns)
            got = self._formatters[id(registry)] = (registry, self._make(self.style, progs))
        return got[1]

    def _journal(self, page, offsets: np.ndarray) -> bytes:
        if not self.journal:
            return b""
        got = self._journals.get(id(page))
        if got is None or got[0] is not page:
            name = frames_of(page, offsets[:1])[0].journal
            shown = json.dumps(name) if self.style == JSON else csv_quote(name) if self.style == CSV else name
            got = self._journals[id(page)] = (page, shown.encode())
        return got[1]

    def run(self, page, offsets: np.ndarray, headers: np.ndarray) -> bytes:
        """The lines of the frames at ``offsets`` of ``page`` (``headers`` in kftools' layout)."""
        if not len(offsets):
            return b""
        offsets = np.ascontiguousarray(offsets, dtype=np.int64)

        def fallback(i: int) -> bytes:
            return self._line(frames_of(page, offsets[i : i + 1])[0]).encode()

        if not self.fast:
            return b"".join(fallback(i) + b"\n" for i in range(len(offsets)))
        hdrs = np.ascontiguousarray(headers, dtype=HEADER_DTYPE)
        return self._formatter(page.registry).run(page.mm, page.frame_header_size, offsets, hdrs,
                                                  self._journal(page, offsets), fallback)

    def batch(self, batch) -> bytes:
        """The lines of a ``FrameBatch`` or a ``MergedBatch``, in its order."""
        if hasattr(batch, "runs"):
            headers = batch.headers
            parts, i = [], 0
            for page, offsets in batch.runs():
                k = len(offsets)
                parts.append(self.run(page, offsets, headers[i : i + k]))
                i += k
            return b"".join(parts)
        return self.run(batch.page, batch.offsets, batch.headers)

    def batches(self, batches) -> Iterator[bytes]:
        for b in batches:
            yield self.batch(b)


def csv_header(columns: list[str]) -> str:
    """The CSV header line (no line end)."""
    buf = io.StringIO()
    csv.writer(buf).writerow(columns)
    return buf.getvalue().rstrip("\r\n")
