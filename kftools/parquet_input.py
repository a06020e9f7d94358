"""What ``kftools import`` accepts from a Parquet file: checked before a byte is written.

An export file is input like any other: its kftools metadata may not be JSON or
not have the shape export writes, columns may be missing or of another type,
values may be null or lengths impossible, data pages may be corrupt. Each is a
:class:`~kftools.errors.UsageError` naming the file (exit 2), never a traceback.
"""

from __future__ import annotations

import json

import pyarrow as pa

from .errors import UsageError

#: columns import reads, with the Arrow types export writes them as ("msg_type": the type number; format 1
#: called it msg_type_id, see :func:`id_column`)
REQUIRED_COLUMNS = {
    "msg_type": pa.types.is_integer,
    "length": pa.types.is_integer,
    "gen_time": lambda t: pa.types.is_timestamp(t) or pa.types.is_integer(t),
    "trigger_time": lambda t: pa.types.is_timestamp(t) or pa.types.is_integer(t),
    "source": pa.types.is_integer,
    "dest": pa.types.is_integer,
    "payload": lambda t: pa.types.is_binary(t) or pa.types.is_large_binary(t),
}
#: columns that may never hold a null
NOT_NULL = ("msg_type", "length", "gen_time")
#: exact times beside microsecond timestamps (``export --timestamps us``); import reads them when present
EXACT_COLUMNS = {"gen_time_ns": pa.types.is_integer, "trigger_time_ns": pa.types.is_integer}


def id_column(meta: dict) -> str:
    """The column holding the type number: ``msg_type`` since export format 2, ``msg_type_id`` in format 1."""
    fmt = meta.get("format", 1)
    return "msg_type" if isinstance(fmt, int) and fmt >= 2 else "msg_type_id"


def parse_metadata(path: str, raw: bytes) -> dict:
    """The kftools metadata document of ``path``, checked to have the shape export writes."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # nested past the parser's depth: not ours either
        raise UsageError(f"{path}: its kftools metadata is not JSON (not a kftools export, or damaged)") from None

    def bad(what: str) -> UsageError:
        return UsageError(f"{path}: its kftools metadata is malformed: {what}")

    if not isinstance(doc, dict):
        raise bad(f"expected an object, found {type(doc).__name__}")
    types = doc.get("types", [])
    if not isinstance(types, list):
        raise bad("'types' is not a list")
    for i, t in enumerate(types):
        if not (isinstance(t, dict) and isinstance(t.get("id"), int) and not isinstance(t.get("id"), bool)
                and isinstance(t.get("name"), str) and isinstance(t.get("fields"), list)
                and all(isinstance(f, list) and len(f) == 2 and all(isinstance(x, str) for x in f)
                        for f in t["fields"])):
            raise bad(f"types[{i}] needs an integer id, a name and [name, type] fields")
    columns = doc.get("columns", {})
    if not (isinstance(columns, dict) and all(
            isinstance(m, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in m.items())
            for m in columns.values())):
        raise bad("'columns' must map column names to {type id: field name}")
    cap = doc.get("page_capacity")
    if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool)):
        raise bad("'page_capacity' is not an integer")
    return doc


def check_schema(path: str, schema: pa.Schema, meta: dict) -> None:
    """Raise if a column import needs is missing or of a type export never writes."""
    exact = schema.get_field_index("gen_time_ns") >= 0
    for name, ok in [*REQUIRED_COLUMNS.items(), *(EXACT_COLUMNS.items() if exact else ())]:
        name = id_column(meta) if name == "msg_type" else name
        i = schema.get_field_index(name)
        if i < 0:
            raise UsageError(f"{path}: column {name!r} is missing (not a complete kftools export)")
        t = schema.field(i).type
        if pa.types.is_dictionary(t):
            t = t.value_type
        if not ok(t):
            raise UsageError(f"{path}: column {name!r} has type {t}, which a kftools export never writes")


def check_rows(path: str, rb: pa.RecordBatch, first_row: int, meta: dict) -> None:
    """Raise if a row cannot be a frame: a null where every frame has a value, or a length out of range."""
    exact = ("gen_time_ns",) if rb.schema.get_field_index("gen_time_ns") >= 0 else ()
    for name in (*NOT_NULL, *exact):
        name = id_column(meta) if name == "msg_type" else name
        c = rb.column(rb.schema.get_field_index(name))
        if c.null_count:
            row = first_row + c.is_null().to_pylist().index(True)
            raise UsageError(f"{path}: row {row}: {name} is null")
    lengths = rb.column(rb.schema.get_field_index("length"))
    if len(lengths):
        import pyarrow.compute as pc

        low, high = pc.min_max(lengths).values()
        if low.as_py() < 0 or high.as_py() > 0xFFFF_FFFF:
            bad = low.as_py() if low.as_py() < 0 else high.as_py()
            raise UsageError(f"{path}: a frame length of {bad} is impossible")


__all__ = ["check_rows", "check_schema", "parse_metadata"]
