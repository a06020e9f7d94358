"""Message types: the built-in ones and those users register (numpy dtype or schema file).

A schema file is TOML (or JSON with the same shape)::

    [[types]]
    id = 100
    name = "Quote"
    fields = [
      { name = "symbol", type = "char[16]" },
      { name = "bid", type = "f64" },
      { name = "ask", type = "f64" },
    ]

Every command takes ``--schema FILE`` (repeatable); ``KFTOOLS_SCHEMA`` may
hold more files separated by ``:``.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass

import numpy as np

from ..errors import SchemaError, UnknownType
from .format import BUILTIN_LAYOUTS, FRAME_HEADER_SIZE, MAX_PAGE_SIZE, PAGE_HEADER_SIZE
from .layout import _SCALARS, Field, Layout, field_from_numpy

#: the scanner's table of minimum payload lengths holds frame lengths
_U32_DTYPE = Field("length", "u32").numpy_code

#: the largest payload a frame can hold: a whole page of the largest size, less the headers
MAX_PAYLOAD = MAX_PAGE_SIZE - PAGE_HEADER_SIZE - FRAME_HEADER_SIZE
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MIN_TABLE = 4096  # type ids below this are length-checked by the scanner itself
_RESERVED_NAMES = {"type", "msg_type", "length", "gen_time", "trigger_time", "source", "dest", "page", "offset", "payload"}


@dataclass(frozen=True)
class MessageType:
    """A message type id bound to a name and a payload layout."""

    id: int
    name: str
    layout: Layout


class TypeRegistry:
    """Maps message type ids and names to :class:`MessageType`."""

    #: the text field ``--symbol`` matches
    symbol_field = "symbol"
    #: show unregistered payloads that hold a JSON document as text (Kungfu writes some types so)
    json_text = False

    def __init__(self, builtins: bool = True):
        self._by_id: dict[int, MessageType] = {}
        self._mins: np.ndarray | None = None
        #: nothing was asked for (no schema): a journal that declares its own types (``<journal>.types``) uses those
        self.defaulted = False
        if builtins:
            for t, layout in BUILTIN_LAYOUTS.items():
                self._by_id[int(t)] = MessageType(int(t), layout.name, layout)

    def min_lengths(self) -> np.ndarray:
        """uint32 table of each type's layout size by id (ids below 4096), for the scanner's length check."""
        if self._mins is None:
            small = [mt for mt in self._by_id.values() if mt.id < _MIN_TABLE]
            table = np.zeros(max([mt.id for mt in small], default=0) + 1, dtype=_U32_DTYPE)
            for mt in small:
                table[mt.id] = mt.layout.size
            self._mins = table
        return self._mins

    def large_ids(self) -> list[MessageType]:
        """Registered types whose id is past the scanner's table (checked separately)."""
        return [mt for mt in self._by_id.values() if mt.id >= _MIN_TABLE]

    @classmethod
    def declared(cls, layouts: dict[int, tuple[str, Layout]], *, symbol_field: str = "symbol",
                 json_text: bool = False) -> TypeRegistry:
        """A registry of types kftools declares itself (another journal family's), without the user-type checks:
        their field names may repeat frame header column names (Kungfu's ``offset``)."""
        reg = cls(builtins=False)
        reg._by_id = {i: MessageType(i, name, layout) for i, (name, layout) in layouts.items()}
        reg.symbol_field = symbol_field
        reg.json_text = json_text
        return reg

    def copy(self) -> TypeRegistry:
        other = TypeRegistry(builtins=False)
        other._by_id = dict(self._by_id)
        other.symbol_field = self.symbol_field
        other.json_text = self.json_text
        return other

    def register(self, msg_id: int, name: str, fields: np.dtype | list[tuple[str, str]] | Layout) -> MessageType:
        """Register a type from a packed numpy dtype, ``[(name, kind), ...]`` or a Layout.

        Registering the same id, name and fields again is a no-op; anything else
        that would replace a built-in or an earlier type is refused: frames
        already written with that id would be decoded with the wrong layout.
        """
        # bool is an int subclass: `id = true` in a schema must not become type 1
        if not isinstance(msg_id, int) or isinstance(msg_id, bool) or not 0 < msg_id <= 0xFFFF_FFFF:
            raise SchemaError(f"type {name!r}: id {msg_id!r} must be an integer in 1..4294967295")
        if not isinstance(name, str) or not _NAME.match(name):
            raise SchemaError(f"type id {msg_id}: name {name!r} is not an identifier")
        for other in self._by_id.values():
            if other.name.lower() == name.lower() and other.id != msg_id:
                raise SchemaError(f"type {name!r} (id {msg_id}): the name is already used by id {other.id}")
        declared = fields.fields if isinstance(fields, Layout) else _to_fields(name, fields)
        size = sum(f.size for f in declared)
        if size > MAX_PAYLOAD:  # before numpy sees it: a dtype that large is not a layout (an assertion, a MemoryError)
            raise SchemaError(f"type {name!r}: a {size:,}-byte layout cannot fit in a frame "
                              f"(at most {MAX_PAYLOAD:,} bytes: a page holds at most {MAX_PAGE_SIZE:,})")
        layout = fields if isinstance(fields, Layout) else Layout(name, declared)
        for fname in layout.names:
            if fname in _RESERVED_NAMES:
                raise SchemaError(f"type {name!r}: field name {fname!r} is reserved for frame header columns")
        old = self._by_id.get(msg_id)
        if old is not None:
            if old.name == name and _shape(old.layout) == _shape(layout):
                return old
            what = "built-in type" if msg_id in BUILTIN_LAYOUTS else "type"
            raise SchemaError(f"type {name!r}: id {msg_id} is already the {what} {old.name!r} (choose another id)")
        mt = MessageType(msg_id, name, layout)
        self._by_id[msg_id] = mt
        self._mins = None
        return mt

    def load_schema(self, path: str | os.PathLike) -> list[MessageType]:
        """Register every type declared in a TOML or JSON schema file."""
        path = os.fspath(path)
        try:
            with open(path, "rb") as fh:
                raw = fh.read()
        except OSError as e:
            raise SchemaError(f"{path}: cannot read schema: {e.strerror}") from None
        try:
            doc = json.loads(raw) if path.endswith(".json") else tomllib.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise SchemaError(f"{path}: not a valid schema file: {e}") from None
        except RecursionError:
            raise SchemaError(f"{path}: not a valid schema file: nested too deeply") from None
        types = doc.get("types") if isinstance(doc, dict) else None
        if not isinstance(types, list) or not types:
            raise SchemaError(f"{path}: expected a non-empty [[types]] list")
        out = []
        seen: dict[object, int] = {}
        for i, t in enumerate(types):
            if not isinstance(t, dict) or not {"id", "name", "fields"} <= t.keys():
                raise SchemaError(f"{path}: types[{i}] needs id, name and fields")
            if t["id"] in seen and not isinstance(t["id"], bool):
                raise SchemaError(f"{path}: types[{i}] repeats id {t['id']!r} of types[{seen[t['id']]}]")
            seen.setdefault(t["id"], i)
            fields = t["fields"]
            if not isinstance(fields, list) or not fields:
                raise SchemaError(f"{path}: type {t['name']!r} has no fields")
            pairs = []
            for f in fields:
                if isinstance(f, dict) and {"name", "type"} <= f.keys():
                    pairs.append((f["name"], f["type"]))
                elif isinstance(f, list) and len(f) == 2:
                    pairs.append((f[0], f[1]))
                else:
                    raise SchemaError(f"{path}: type {t['name']!r}: field {f!r} needs a name and a type")
            try:
                out.append(self.register(t["id"], t["name"], pairs))
            except SchemaError as e:
                raise SchemaError(f"{path}: {e}") from None
        return out

    def get(self, msg_id: int) -> MessageType | None:
        return self._by_id.get(msg_id)

    def resolve(self, name_or_id: str | int) -> int:
        """The id for a type name (case-insensitive) or a numeric id."""
        if isinstance(name_or_id, int) or str(name_or_id).isdigit():
            return int(name_or_id)
        for mt in self._by_id.values():
            if mt.name.lower() == str(name_or_id).lower():
                return mt.id
        known = ", ".join(mt.name for mt in self.types())
        raise UnknownType(f"unknown message type {name_or_id!r} (known: {known})")

    def name(self, msg_id: int) -> str:
        mt = self._by_id.get(msg_id)
        return mt.name if mt else f"type{msg_id}"

    def types(self) -> list[MessageType]:
        return sorted(self._by_id.values(), key=lambda m: m.id)

    def __contains__(self, msg_id: int) -> bool:
        return msg_id in self._by_id


def _shape(layout: Layout) -> list[tuple[str, str]]:
    return [(f.name, f.kind) for f in layout.fields]


def _to_fields(type_name: str, spec) -> list[Field]:
    if isinstance(spec, np.dtype):
        by_name = spec.fields
        if spec.names is None or by_name is None:
            raise SchemaError(f"type {type_name!r}: dtype must be structured")
        fields = []
        expected = 0
        for n in spec.names:
            dt, off = by_name[n][:2]
            if off != expected:
                raise SchemaError(f"type {type_name!r}: dtype must be packed (field {n!r} at {off}, expected {expected})")
            try:
                fields.append(field_from_numpy(n, dt))
            except ValueError as e:
                raise SchemaError(f"type {type_name!r}: {e}") from None
            expected += dt.itemsize
        return fields
    fields = []
    for item in spec:
        try:
            n, kind = item
        except (TypeError, ValueError):
            raise SchemaError(f"type {type_name!r}: field {item!r} must be (name, type)") from None
        if not isinstance(n, str) or not _NAME.match(n):
            raise SchemaError(f"type {type_name!r}: field name {n!r} is not an identifier")
        kind = str(kind)
        m = re.fullmatch(r"char\[(\d+)\]", kind)
        if not (kind in _SCALARS or (m and 0 < int(m.group(1)) <= 65536)):
            raise SchemaError(f"type {type_name!r}: field {n!r} has unknown type {kind!r} (use u8..u64, i32, i64, f32, f64, char[N])")
        fields.append(Field(n, kind))
    if len({f.name for f in fields}) != len(fields):
        raise SchemaError(f"type {type_name!r}: duplicate field names")
    return fields


#: The process-wide registry: built-ins plus what ``register_type`` adds.
DEFAULT_REGISTRY = TypeRegistry()


def register_type(msg_id: int, name: str, fields) -> MessageType:
    """Register a user message type in the process-wide registry."""
    return DEFAULT_REGISTRY.register(msg_id, name, fields)
