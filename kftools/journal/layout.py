"""Declare a packed binary layout once; derive struct formats, numpy dtypes and doc tables.

Every on-disk structure of the journal is a :class:`Layout`. Nothing else in
kftools spells a struct format string or a numpy dtype by hand.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

import numpy as np

#: The journal is little-endian everywhere; this is the only place that says so.
BYTE_ORDER = "<"

# scalar kind -> (struct code, numpy code, size, C type)
_SCALARS = {
    "u8": ("B", "u1", 1, "uint8_t"),
    "u16": ("H", "u2", 2, "uint16_t"),
    "u32": ("I", "u4", 4, "uint32_t"),
    "u64": ("Q", "u8", 8, "uint64_t"),
    "i32": ("i", "i4", 4, "int32_t"),
    "i64": ("q", "i8", 8, "int64_t"),
    "f32": ("f", "f4", 4, "float"),
    "f64": ("d", "f8", 8, "double"),
}


@dataclass(frozen=True)
class Field:
    """One field: ``kind`` is a scalar kind (``u32``, ``f64``...) or ``char[N]``."""

    name: str
    kind: str
    doc: str = ""
    #: an IntEnum whose member names label the values (``side``: buy/sell) in text, JSON, CSV and Parquet
    labels: type[enum.IntEnum] | None = None

    @property
    def is_text(self) -> bool:
        return self.kind.startswith("char[")

    def label(self, value):
        """The value as outputs show it: its lowercase name when ``labels`` has one, else the value itself."""
        if self.labels is not None:
            try:
                return self.labels(value).name.lower()
            except ValueError:
                pass
        return value

    def unlabel(self, shown):
        """Inverse of :meth:`label`: a name (any case) or a number -> the stored number."""
        if self.labels is not None and isinstance(shown, str):
            try:
                return int(self.labels[shown.upper()])
            except KeyError:
                return int(shown)
        return shown

    @property
    def size(self) -> int:
        if self.is_text:
            return int(self.kind[5:-1])
        return _SCALARS[self.kind][2]

    @property
    def struct_code(self) -> str:
        return f"{self.size}s" if self.is_text else _SCALARS[self.kind][0]

    @property
    def numpy_code(self) -> str:
        return f"S{self.size}" if self.is_text else BYTE_ORDER + _SCALARS[self.kind][1]

    @property
    def c_decl(self) -> str:
        if self.is_text:
            return f"char {self.name}[{self.size}];"
        return f"{_SCALARS[self.kind][3]} {self.name};"


def field_from_numpy(name: str, dt: np.dtype) -> Field:
    """The :class:`Field` for a numpy scalar or bytes dtype (used by registered types)."""
    if dt.kind == "S":
        return Field(name, f"char[{dt.itemsize}]")
    for kind, (_s, code, _size, _c) in _SCALARS.items():
        if dt == np.dtype(BYTE_ORDER + code):
            return Field(name, kind)
    raise ValueError(f"field {name!r}: dtype {dt} is not a supported scalar (u8..u64, i32, i64, f32, f64, S<n>)")


class Layout:
    """A packed little-endian record: an ordered list of fields with no padding."""

    def __init__(self, name: str, fields: list[Field], doc: str = ""):
        self.name = name
        self.fields = tuple(fields)
        self.doc = doc
        self.struct = struct.Struct(BYTE_ORDER + "".join(f.struct_code for f in self.fields))
        self.size = self.struct.size
        self.dtype = np.dtype([(f.name, f.numpy_code) for f in self.fields])
        assert self.dtype.itemsize == self.size, name
        self.names = tuple(f.name for f in self.fields)
        self.text_fields = frozenset(f.name for f in self.fields if f.is_text)
        self.labelled = {f.name: f for f in self.fields if f.labels is not None}
        self._offsets = {}
        off = 0
        for f in self.fields:
            self._offsets[f.name] = off
            off += f.size

    def offset(self, field: str) -> int:
        """Byte offset of ``field`` inside the record."""
        return self._offsets[field]

    def field(self, name: str) -> Field:
        return self.fields[self.names.index(name)]

    def unpack(self, buf, offset: int = 0) -> dict:
        """Decode one record into a dict, text fields as ``str`` without NUL padding."""
        values = self.struct.unpack_from(buf, offset)
        out = {}
        for f, v in zip(self.fields, values, strict=False):
            out[f.name] = v.split(b"\0", 1)[0].decode("utf-8", "replace") if f.is_text else v
        return out

    def markdown_table(self, base: int = 0) -> str:
        """The doc table FORMAT.md carries for this layout."""
        rows = ["| offset | size | field | type | meaning |", "|---:|---:|---|---|---|"]
        for f in self.fields:
            rows.append(f"| {base + self.offset(f.name)} | {f.size} | `{f.name}` | {f.kind} | {f.doc} |")
        return "\n".join(rows)

    def c_struct(self) -> str:
        """A packed C struct declaration of this layout (for cpp/ and FORMAT.md)."""
        body = "\n".join(f"    {f.c_decl}" for f in self.fields)
        return f"struct {self.name} {{\n{body}\n}};  // {self.size} bytes, packed"

    def __repr__(self) -> str:
        return f"Layout({self.name}, {self.size} bytes)"
