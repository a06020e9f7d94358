"""Declare a packed binary layout once; derive struct formats, numpy dtypes and doc tables.

Every on-disk structure of the journal is a :class:`Layout`. Nothing else in
kftools spells a struct format string or a numpy dtype by hand.
"""

from __future__ import annotations

import enum
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: The journal is little-endian everywhere; this is the only place that says so.
BYTE_ORDER = "<"

# scalar kind -> (struct code, numpy code, size, C type)
_SCALARS = {
    "bool": ("?", "?", 1, "bool"),
    "i8": ("b", "i1", 1, "int8_t"),
    "u8": ("B", "u1", 1, "uint8_t"),
    "u16": ("H", "u2", 2, "uint16_t"),
    "u32": ("I", "u4", 4, "uint32_t"),
    "u64": ("Q", "u8", 8, "uint64_t"),
    "i32": ("i", "i4", 4, "int32_t"),
    "i64": ("q", "i8", 8, "int64_t"),
    "f32": ("f", "f4", 4, "float"),
    "f64": ("d", "f8", 8, "double"),
}


def scalar_dtype(kind: str) -> np.dtype:
    """The numpy dtype of a scalar kind (``u32``, ``f64``...)."""
    return np.dtype(BYTE_ORDER + _SCALARS[kind][1])


_ARRAY = re.compile(r"(\w+)\[(\d+)\]")


def display_name(member: enum.IntEnum) -> str:
    """How every output names an enum value: an all-caps name lower-cased (``PARTIALLY_FILLED`` as
    ``partially_filled``), a name in another journal family's own spelling (Kungfu's ``PartialFilledActive``)
    as it is."""
    name = member.name
    return name.lower() if name.isupper() else name


class Labelled(enum.IntEnum):
    """An IntEnum a layout field declares as its ``labels``: its display names are what outputs show."""

    @property
    def label(self) -> str:
        """The display name (``Side.SELL.label == "sell"``)."""
        return display_name(self)

    @classmethod
    def from_label(cls, shown: str | int) -> Labelled:
        """A display name (any case) or a number -> the member."""
        if isinstance(shown, str):
            for member in cls:
                if member.name.lower() == shown.lower():
                    return member
            return cls(int(shown))
        return cls(shown)


@dataclass(frozen=True)
class Field:
    """One field: ``kind`` is a scalar kind (``u32``, ``f64``...), ``char[N]`` (text) or an array
    ``<scalar>[N]`` (``f64[10]``)."""

    name: str
    kind: str
    doc: str = ""
    #: an IntEnum whose member names label the values (``side``: buy/sell) in text, JSON, CSV and Parquet
    labels: type[enum.IntEnum] | None = None
    #: a time (ns) where 0 means "not set": JSON null, an empty CSV cell, a Parquet null, ``unset`` in the tail
    zero_is_unset: bool = False

    @property
    def is_text(self) -> bool:
        return self.kind.startswith("char[")

    def label(self, value):
        """The value as outputs show it: its name when ``labels`` has one (``BUY`` as ``buy``; names in
        another journal family's own spelling, such as Kungfu's ``PartialFilledActive``, as they are),
        else the value itself."""
        if self.labels is not None:
            try:
                return display_name(self.labels(value))
            except ValueError:
                return value
        return value

    def unlabel(self, shown):
        """Inverse of :meth:`label`: a name (any case) or a number -> the stored number."""
        if self.labels is not None and isinstance(shown, str):
            for member in self.labels:
                if member.name.lower() == shown.lower():
                    return int(member)
            return int(shown)
        return shown

    @property
    def is_array(self) -> bool:
        return not self.is_text and _ARRAY.fullmatch(self.kind) is not None

    @property
    def count(self) -> int:
        """Elements of an array field; 1 for scalars and text."""
        m = _ARRAY.fullmatch(self.kind)
        return int(m.group(2)) if m and not self.is_text else 1

    @property
    def scalar(self) -> str:
        """The element kind of a scalar or array field."""
        m = _ARRAY.fullmatch(self.kind)
        return m.group(1) if m else self.kind

    @property
    def size(self) -> int:
        if self.is_text:
            return int(self.kind[5:-1])
        return _SCALARS[self.scalar][2] * self.count

    @property
    def struct_code(self) -> str:
        if self.is_text:
            return f"{self.size}s"
        code = _SCALARS[self.scalar][0]
        return f"{self.count}{code}" if self.is_array else code

    @property
    def numpy_code(self) -> str:
        """The numpy type code of one element (text: ``S<N>``)."""
        return f"S{self.size}" if self.is_text else BYTE_ORDER + _SCALARS[self.scalar][1]

    @property
    def numpy_spec(self):
        """What numpy's structured dtype takes for this field: a code, or (code, (N,)) for arrays."""
        if self.is_array:
            return (self.numpy_code, (self.count,))
        return self.numpy_code

    @property
    def c_decl(self) -> str:
        if self.is_text:
            return f"char {self.name}[{self.size}];"
        if self.is_array:
            return f"{_SCALARS[self.scalar][3]} {self.name}[{self.count}];"
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

    def __init__(self, name: str, fields: Sequence[Field], doc: str = ""):
        self.name = name
        self.fields = tuple(fields)
        self.doc = doc
        self.struct = struct.Struct(BYTE_ORDER + "".join(f.struct_code for f in self.fields))
        self.size = self.struct.size
        self.dtype = np.dtype([(f.name, f.numpy_spec) for f in self.fields])
        assert self.dtype.itemsize == self.size, name
        self.names = tuple(f.name for f in self.fields)
        self.text_fields = frozenset(f.name for f in self.fields if f.is_text)
        self.labelled = {f.name: f for f in self.fields if f.labels is not None}
        #: times whose 0 means "not set"
        self.unset_times = tuple(f.name for f in self.fields if f.zero_is_unset)
        # arrays need more than a zip of the struct's values
        self._plain = not any(f.is_array for f in self.fields)
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
        if self._plain:
            for f, v in zip(self.fields, values, strict=False):
                out[f.name] = v.split(b"\0", 1)[0].decode("utf-8", "replace") if f.is_text else v
            return out
        i = 0
        for f in self.fields:
            if f.is_array:
                n = f.count
                out[f.name] = list(values[i : i + n])
                i += n
                continue
            v = values[i]
            i += 1
            if f.is_text:
                v = v.split(b"\0", 1)[0].decode("utf-8", "replace")
            out[f.name] = v
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
