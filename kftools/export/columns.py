"""The Arrow schema of an export, and the conversion of frame batches to it (numpy, no Python step per frame).

Every committed frame becomes a row: header columns, typed payload columns for
every registered type, and a ``payload`` binary column that holds the exact
payload bytes only where the typed columns cannot rebuild them (unknown types,
non-zero padding, bytes after a text field's NUL, text that is not UTF-8).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from ..journal.layout import display_name, scalar_dtype
from ..journal.reader import FrameBatch
from ..journal.registry import MessageType, TypeRegistry

#: bumped when the column scheme changes incompatibly. 2: ``type`` is the name and ``msg_type`` the number (as in
#: text, JSON lines and CSV), named values (``side``, ``order_type``) are their names, an unset trigger_time is null.
#: Import reads both.
EXPORT_FORMAT = 2
IMPORT_FORMATS = (1, 2)
META_KEY = b"kftools"
_SCALAR_ARROW = {
    "bool": pa.bool_(), "i8": pa.int8(),
    "u8": pa.uint8(), "u16": pa.uint16(), "u32": pa.uint32(), "u64": pa.uint64(),
    "i32": pa.int32(), "i64": pa.int64(), "f32": pa.float32(), "f64": pa.float64(),
}
_TS = pa.timestamp("ns", tz="UTC")
_TS_US = pa.timestamp("us", tz="UTC")
_DICT_STR = pa.dictionary(pa.int32(), pa.string())
#: text fields with few distinct values, stored dictionary-encoded
_DICT_FIELDS = frozenset({"symbol"})
#: beyond this many distinct values a dictionary column gets a dictionary per batch
_MEMO_LIMIT = 100_000
#: the shortest cached all-null column (a read batch is at most this long in a plain export)
_NULLS_AT_LEAST = 65_536

# header columns: (name, arrow type, meaning). Frame header fields come from FRAME_HEADER.
_HEADER_DOCS = {
    "gen_time": "frame header `gen_time`, ns since the epoch, UTC (with `--timestamps us`, a dataset's default: "
                "µs, rounded down; exact in `gen_time_ns`)",
    "trigger_time": "frame header `trigger_time`; null when unset (0) (`--timestamps us`: µs, rounded down)",
    "gen_time_ns": "`--timestamps us` only: frame header `gen_time` exactly, int64 ns since the epoch",
    "trigger_time_ns": "`--timestamps us` only: frame header `trigger_time` exactly, int64 ns; null when unset",
    "type": "the type's name (`type<N>` when no schema names it; in a dataset, the `type=` folder)",
    "msg_type": "frame header `msg_type` (the number)",
    "source": "frame header `source`",
    "dest": "frame header `dest`",
    "length": "frame header `length`: payload bytes, padding included",
    "page": "index of the page the frame was in",
    "offset": "offset of the frame in its page",
    "journal": "the journal the frame is from: its file name (a Kungfu journal: its location); datasets and "
               "exports of several journals only",
}


@dataclass
class _Col:
    name: str
    kind: str  # a Field kind, or "text"
    arrow: pa.DataType
    members: dict = field(default_factory=dict)  # type id -> field name
    width: int = 0  # widest text field
    labels: type[enum.IntEnum] | None = None  # names the values: stored as names (buy, sell), as everywhere


def _member(key, k: int) -> int | None:
    """The type id of a column member key if it is one of the k-th registry's types, else None."""
    if isinstance(key, tuple):
        return key[1] if key[0] == k else None
    return key if k == 0 else None


class Columns:
    """The Arrow schema for a registry's types, and the conversion of frame batches to it."""

    def __init__(self, registry: TypeRegistry, types: Iterable[MessageType] | None = None, journal: bool = False,
                 *, timestamps: str = "ns", type_column: bool = True, more: Iterable[TypeRegistry] = ()):
        """``journal``: add the ``journal`` column; ``type_column=False``: leave out ``type`` (a dataset's
        ``type=`` folders hold it); ``timestamps``: one of :data:`TIMESTAMPS`. ``more``: the registries of other
        journals in the same file (Kungfu generations number their types differently): their types' fields
        are columns too, a column member keyed ``(k, id)`` for the k-th registry (``id`` alone for the first)."""
        self.registry = registry
        self.registries = [registry, *(r for r in dict.fromkeys(more) if r is not registry)]
        self.types = list(types) if types is not None else registry.types()
        self.journal = journal
        self.timestamps = timestamps
        ts = _TS if timestamps == "ns" else _TS_US
        exact = [("gen_time_ns", pa.int64()), ("trigger_time_ns", pa.int64())] if timestamps == "us" else []
        header = [
            ("gen_time", ts), ("trigger_time", ts), *exact, ("type", _DICT_STR), ("msg_type", pa.uint32()),
            ("source", pa.uint32()), ("dest", pa.uint32()), ("length", pa.uint32()),
            ("page", pa.uint32()), ("offset", pa.uint32()),
        ]
        if not type_column:
            # a dataset's files sit in type=<Name>/ folders: the folder is the type column (a column of the same
            # name in the files would clash with it in pyarrow and pandas)
            header = [h for h in header if h[0] != "type"]
        if journal:
            header.append(("journal", _DICT_STR))
        self._header_names = [n for n, _ in header]
        taken = {n for n, _ in header} | {"payload"}
        cols: dict[str, _Col] = {}
        typed: list[tuple[int | tuple[int, int], MessageType]] = [(mt.id, mt) for mt in self.types]
        typed += [((k, mt.id), mt) for k, reg in enumerate(self.registries[1:], 1) for mt in reg.types()]
        for key, mt in typed:
            for f in mt.layout.fields:
                kind = "text" if f.is_text else "label" if f.labels is not None else f.kind
                # same name, different meaning: keep both, qualified by the type (and by the registry)
                for name in (f.name, f"{mt.name}.{f.name}", f"{mt.name}.{f.name}.{key[0] if isinstance(key, tuple) else 0}"):
                    c = cols.get(name)
                    if name not in taken and (c is None or c.kind == kind):
                        break
                if c is None:
                    if f.labels is not None:  # side, order_type: their names, as in every output
                        arrow = _DICT_STR
                    elif f.is_text:
                        arrow = _DICT_STR if f.name in _DICT_FIELDS else pa.string()
                    elif f.is_array:  # Kungfu's ten bid/ask levels: a list column
                        arrow = pa.list_(_SCALAR_ARROW[f.scalar], f.count)
                    else:
                        arrow = _SCALAR_ARROW[f.kind]
                    c = cols[name] = _Col(name, kind, arrow, labels=f.labels)
                c.members[key] = f.name
                if f.is_text:
                    c.width = max(c.width, f.size)
        self.fields = list(cols.values())
        self._memo: dict[str, tuple[dict, list]] = {}
        self._dict_cache: dict[str, pa.Array] = {}
        self._null_cache: dict[pa.DataType, pa.Array] = {}
        self.schema = pa.schema(
            [pa.field(n, t, nullable=n not in ("gen_time", "gen_time_ns", "type", "msg_type", "length"))
             for n, t in header]
            + [pa.field(c.name, c.arrow) for c in self.fields]
            + [pa.field("payload", pa.binary())]
        )

    def _type_names(self, present: np.ndarray, inverse: np.ndarray, k: int = 0) -> pa.Array:
        # a stable dictionary (every type seen so far), so row groups share it
        index, values = self._memo.setdefault("type", ({}, []))
        lut = np.empty(len(present), dtype=np.int32)
        for i, t in enumerate(present.tolist()):
            j = index.get((k, t))
            if j is None:
                j = index[(k, t)] = len(values)
                values.append(self.registries[k].name(t))
            lut[i] = j
        return pa.DictionaryArray.from_arrays(from_numpy(lut[inverse]), self._dict_values("type", values))

    def metadata(self, extra: dict | None = None) -> dict:
        """The Parquet key-value metadata import needs: types, column mapping, page capacity."""
        doc = {
            "format": EXPORT_FORMAT,
            "types": [
                {"id": mt.id, "name": mt.name, "fields": [[f.name, f.kind] for f in mt.layout.fields]}
                for mt in self.registry.types()
            ],
            "columns": {c.name: {str(t): f for t, f in c.members.items() if not isinstance(t, tuple)}
                        for c in self.fields},
        }
        doc.update(extra or {})
        return {META_KEY: json.dumps(doc).encode(), b"pandas": _pandas_metadata(self.schema)}

    def empty(self) -> pa.Table:
        return self.schema.empty_table()

    def _times(self, gen: np.ndarray, trig: np.ndarray) -> list[pa.Array]:
        """gen_time and trigger_time (and with "us" timestamps their exact ``*_ns`` columns)."""
        unset = trig == 0
        # 0 is "not set" (writers default to it): null, not 1970-01-01
        valid = _bitmap(~unset) if unset.any() else None
        if self.timestamps == "ns":
            return [from_numpy(gen, _TS), from_numpy(trig, _TS, valid)]
        # floor division: a time before the epoch still lands in its own microsecond
        return [from_numpy(gen // 1000, _TS_US), from_numpy(trig // 1000, _TS_US, valid),
                from_numpy(gen, pa.int64()), from_numpy(trig, pa.int64(), valid)]

    def convert(self, batch: FrameBatch, journal: str | None = None) -> pa.RecordBatch:
        """One batch of frames (one page) as an Arrow record batch of this schema, vectorized."""
        h = batch.headers
        n = len(h)
        ids = np.ascontiguousarray(h["msg_type"])
        lengths = np.ascontiguousarray(h["length"])
        if n and int(ids.max()) < 65536:
            # ids are small: a lookup table is much cheaper than np.unique's sort
            seen = np.bincount(ids, minlength=1)
            present = np.flatnonzero(seen).astype(np.uint32)
            lut = np.zeros(len(seen), dtype=np.int32)
            lut[present] = np.arange(len(present), dtype=np.int32)
            inverse = lut[ids]
        else:
            present, inverse = np.unique(ids, return_inverse=True)
        arrays = self._times(np.ascontiguousarray(h["gen_time"]), np.ascontiguousarray(h["trigger_time"]))
        # the registry of the batch's journal (a Kungfu generation's), k-th of this file's
        k = next((i for i, r in enumerate(self.registries) if r is batch.page.registry), 0)
        if "type" in self._header_names:
            arrays.append(self._type_names(present, inverse, k))
        arrays += [
            from_numpy(ids),
            from_numpy(h["source"]),
            from_numpy(h["dest"]),
            from_numpy(lengths),
            from_numpy(np.full(n, batch.page.index, dtype=np.uint32)),
            from_numpy(batch.offsets.astype(np.uint32)),
        ]
        if self.journal:
            arrays.append(pa.DictionaryArray.from_arrays(
                from_numpy(np.zeros(n, np.int32)), _strings([journal or ""])))
        need_raw = np.zeros(n, dtype=bool)
        # per type present: the mask of its rows and its typed payloads
        typed: dict[int, tuple[np.ndarray | None, np.ndarray]] = {}
        reg = self.registries[k]
        mine = {mt.id for mt in self.types} if k == 0 else {mt.id for mt in reg.types()}
        for i, t in enumerate(present.tolist()):
            mt = reg.get(t)
            mask = None if len(present) == 1 else inverse == i
            if mt is None or t not in mine:
                need_raw[slice(None) if mask is None else mask] = True
                continue
            typed[t] = (None if mask is None else np.flatnonzero(mask), batch.payload(t, mask))
            size = mt.layout.size
            sel_len = lengths if mask is None else lengths[mask]
            longer = sel_len > size
            if longer.any():
                # padding is rebuilt as zeros: keep the raw bytes only when it is not
                m2 = _sub(mask, n, longer)
                data, ends = batch.raw_payloads(m2)
                nz = np.zeros(len(data) + 1, dtype=np.int64)
                np.cumsum(data != 0, out=nz[1:])
                bad = nz[ends[1:]] - nz[ends[:-1] + size] > 0
                need_raw[np.flatnonzero(m2)[bad]] = True
        for c in self.fields:
            arrays.append(self._field(c, typed, n, need_raw, k))
        arrays.append(_raw_column(batch, need_raw, lengths) if need_raw.any() else self._nulls(n, pa.binary()))
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def _field(self, c: _Col, typed: dict, n: int, need_raw: np.ndarray, k: int = 0) -> pa.Array:
        hits = [(typed[t], fname) for key, fname in c.members.items() if (t := _member(key, k)) in typed]
        if not hits:
            return self._nulls(n, c.arrow)
        if c.kind == "label":
            return self._labels(c, hits, n)
        if pa.types.is_fixed_size_list(c.arrow) or pa.types.is_boolean(c.arrow):
            # arrays (a fixed-size list per row) and bools (bit-packed in Arrow): numpy fills, Arrow masks
            first = hits[0][0][1][hits[0][1]]
            values = np.zeros((n, *first.shape[1:]), dtype=first.dtype)
            valid = np.zeros(n, dtype=bool)
            for (idx, rec), fname in hits:
                m = slice(None) if idx is None else idx
                values[m] = rec[fname]
                valid[m] = True
            bitmap = None if valid.all() else _bitmap(valid)
            if pa.types.is_boolean(c.arrow):
                return pa.Array.from_buffers(c.arrow, n, [bitmap, _bitmap(values)])
            flat = from_numpy(values.reshape(-1), c.arrow.value_type)
            return pa.FixedSizeListArray.from_buffers(c.arrow, n, [bitmap], children=[flat])
        if c.kind != "text":
            if len(hits) == 1 and hits[0][0][0] is None:
                return from_numpy(hits[0][0][1][hits[0][1]])
            values = np.zeros(n, dtype=_SCALAR_NP[c.kind])
            valid = np.zeros(n, dtype=bool)
            for (idx, rec), fname in hits:
                values[idx] = rec[fname]
                valid[idx] = True
            # (pa.array(mask=) is a thousand times slower than building the bitmap here)
            return pa.Array.from_buffers(c.arrow, n, [_bitmap(valid), pa.py_buffer(values)])
        # text: gather the fixed-width bytes, hash them to a dictionary, and strip, check
        # and decode only the distinct values (a handful of symbols per million frames)
        w = c.width
        fixed = np.zeros(n, dtype=f"S{w}")
        text_valid = np.zeros(n, dtype=bool) if len(hits) > 1 or hits[0][0][0] is not None else None
        for (idx, rec), fname in hits:
            m = idx if idx is not None else slice(None)
            fixed[m] = rec[fname]
            if text_valid is not None:
                text_valid[m] = True
        bitmap = None if text_valid is None else _bitmap(text_valid)
        fsb = pa.FixedSizeBinaryArray.from_buffers(pa.binary(w), n, [bitmap, pa.py_buffer(fixed)])
        enc = fsb.dictionary_encode()
        strings, garbage = _decode_text(enc.dictionary, w)
        if garbage.any():
            bad = np.isin(_int32s(enc.indices, text_valid), np.flatnonzero(garbage))
            need_raw |= bad if text_valid is None else bad & text_valid
        if c.arrow != _DICT_STR:
            return pa.DictionaryArray.from_arrays(enc.indices, strings).dictionary_decode()
        memo = self._memo.setdefault(c.name, ({}, []))
        if len(memo[1]) + len(strings) > _MEMO_LIMIT:
            return pa.DictionaryArray.from_arrays(enc.indices, strings)
        # one growing dictionary for the whole file: the Parquet writer keeps it across row groups
        index, texts = memo
        lut = np.empty(len(strings), dtype=np.int32)
        for i, (key, text) in enumerate(zip(enc.dictionary.to_pylist(), strings.to_pylist(), strict=True)):
            j = index.get(key)
            if j is None:
                j = index[key] = len(texts)
                texts.append(text)
            lut[i] = j
        if enc.indices.null_count and text_valid is None:
            raise AssertionError(f"column {c.name!r}: null dictionary indices but every row has a value")
        glob = from_numpy(lut[_int32s(enc.indices, text_valid)], valid=None if text_valid is None else _bitmap(text_valid))
        return pa.DictionaryArray.from_arrays(glob, self._dict_values(c.name, texts))

    def _labels(self, c: _Col, hits: list, n: int) -> pa.Array:
        """Named values (side, order_type) as a dictionary of their names; a value with no name as its number."""
        assert c.labels is not None
        values = np.zeros(n, dtype=np.int64)
        valid = np.zeros(n, dtype=bool)
        for (idx, rec), fname in hits:
            m = idx if idx is not None else slice(None)
            values[m] = rec[fname]
            valid[m] = True
        index, texts = self._memo.setdefault(c.name, ({}, []))
        if not texts:  # the names first, in value order: dictionary index == value for every named value
            for member in sorted(c.labels, key=int):
                index[int(member)] = len(texts)
                texts.append(display_name(member))
        present = np.unique(values[valid]).tolist()
        for v in present:
            if v not in index:
                index[v] = len(texts)
                texts.append(str(v))
        named = len(c.labels)
        if all(int(m) == k for k, m in enumerate(sorted(c.labels, key=int))) and (not present or present[-1] < named):
            codes: np.ndarray = values.astype(np.int32)  # the common case: every value named, no lookup needed
        else:
            lut = {v: index[v] for v in present}
            codes = np.fromiter((lut.get(v, 0) for v in values.tolist()), dtype=np.int32, count=n)
        bitmap = None if valid.all() else _bitmap(valid)
        idx_arr = pa.Array.from_buffers(pa.int32(), n, [bitmap, pa.py_buffer(codes)])
        return pa.DictionaryArray.from_arrays(idx_arr, self._dict_values(c.name, texts))

    def _nulls(self, n: int, arrow: pa.DataType) -> pa.Array:
        """``n`` nulls of ``arrow``: a slice of one array per type, so the columns a batch lacks (most of them)
        cost no memory per row group."""
        cached = self._null_cache.get(arrow)
        if cached is None or len(cached) < n:
            cached = self._null_cache[arrow] = pa.nulls(max(n, _NULLS_AT_LEAST), arrow)
        return cached.slice(0, n)

    def _dict_values(self, name: str, values: list) -> pa.Array:
        cached = self._dict_cache.get(name)
        if cached is None or len(cached) != len(values):
            cached = self._dict_cache[name] = _strings(values)
        return cached


def _pandas_metadata(schema: pa.Schema) -> bytes:
    """pandas metadata naming nullable integer dtypes, so ``pd.read_parquet`` gives ids as ``UInt64`` with
    ``<NA>`` on other types' rows, not float64 with NaN (which cannot hold every uint64)."""
    cols = []
    for f in schema:
        if pa.types.is_integer(f.type):
            name = str(f.type)  # uint64 -> UInt64, int32 -> Int32
            pd_name = ("U" + name[1:].capitalize()) if name.startswith("u") else name.capitalize()
            cols.append({"name": f.name, "field_name": f.name, "pandas_type": name, "numpy_type": pd_name,
                         "metadata": None})
    doc = {"index_columns": [], "column_indexes": [], "columns": cols,
           "creator": {"library": "kftools", "version": str(EXPORT_FORMAT)}, "pandas_version": "2.1.0"}
    return json.dumps(doc).encode()


def from_numpy(values: np.ndarray, arrow: pa.DataType | None = None, valid: pa.Buffer | None = None) -> pa.Array:
    """A 1-d numpy array of fixed-width numbers as an Arrow array of ``arrow`` (by default its own type), no copy.

    Not ``pa.array()``: given a numpy array it imports pandas (to ask whether it is a Series), which would
    add some 50 MB to the peak RSS of every export where pandas is installed.
    """
    values = np.ascontiguousarray(values)
    assert values.ndim == 1, values.shape
    return pa.Array.from_buffers(arrow or pa.from_numpy_dtype(values.dtype), len(values), [valid, pa.py_buffer(values)])


def _strings(values: list[str]) -> pa.StringArray:
    """Python strings as an Arrow string array (not ``pa.array()``, which imports pandas: see :func:`from_numpy`)."""
    data = [v.encode() for v in values]
    offsets = np.zeros(len(data) + 1, dtype=np.int32)
    np.cumsum([len(b) for b in data], out=offsets[1:])
    return pa.StringArray.from_buffers(len(data), pa.py_buffer(offsets), pa.py_buffer(b"".join(data)))


def _int32s(arr: pa.Array, valid: np.ndarray | None) -> np.ndarray:
    """An int32 Arrow array's values as numpy, 0 where ``valid`` is False.

    Not ``to_numpy()``, which imports pandas, nor ``fill_null()``, whose first call costs some 30 MB of RSS.
    """
    raw = np.frombuffer(arr.buffers()[1], dtype=np.int32, count=arr.offset + len(arr))[arr.offset:]
    return raw if valid is None else np.where(valid, raw, 0)


def _bitmap(valid: np.ndarray) -> pa.Buffer:
    return pa.py_buffer(np.packbits(valid, bitorder="little"))


def _decode_text(values: pa.FixedSizeBinaryArray, w: int) -> tuple[pa.Array, np.ndarray]:
    """Distinct fixed-width text values as strings without NUL padding, and which ones a string cannot rebuild."""
    k = len(values)
    mat = np.frombuffer(values.buffers()[1], dtype=np.uint8, count=k * w).reshape(k, w)
    zero = mat == 0
    cut = np.where(zero.any(axis=1), zero.argmax(axis=1), w)
    after = np.arange(w)[None, :] >= cut[:, None]
    # bytes after the first NUL that are not NUL: the string alone cannot rebuild them
    garbage = (~zero & after).any(axis=1)
    offsets = np.zeros(k + 1, dtype=np.int32)
    np.cumsum(cut, out=offsets[1:])
    arr = pa.StringArray.from_buffers(k, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(mat[~after])))
    try:
        arr.validate(full=True)
    except pa.ArrowInvalid:
        # rare: text that is not UTF-8. Show it with replacement characters and keep the raw bytes.
        out = []
        for i in range(k):
            b = mat[i, : cut[i]].tobytes()
            try:
                out.append(b.decode("utf-8"))
            except UnicodeDecodeError:
                out.append(b.decode("utf-8", "replace"))
                garbage[i] = True
        arr = _strings(out)
    return arr, garbage


#: numpy dtype of each scalar kind, from the layout declarations' own table
_SCALAR_NP = {k: scalar_dtype(k) for k in ("i8", "u8", "u16", "u32", "u64", "i32", "i64", "f32", "f64")}


def _sub(mask: np.ndarray | None, n: int, sub: np.ndarray) -> np.ndarray:
    """The full-length mask of the rows of ``mask`` selected by ``sub``."""
    out = np.zeros(n, dtype=bool)
    idx = np.arange(n) if mask is None else np.flatnonzero(mask)
    out[idx[sub]] = True
    return out


def _raw_column(batch: FrameBatch, need: np.ndarray, lengths: np.ndarray) -> pa.Array:
    """The ``payload`` column: the exact payload of the rows in ``need`` (at least one), null elsewhere."""
    n = len(need)
    data, _ends = batch.raw_payloads(need)
    lens = np.where(need, lengths, 0).astype(np.int64)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    if offsets[-1] >= 2**31:
        return pa.array([batch.raw_payloads(np.arange(n) == i)[0].tobytes() if need[i] else None
                         for i in range(n)], pa.large_binary()).cast(pa.binary())
    bitmap = _bitmap(need)
    return pa.BinaryArray.from_buffers(pa.binary(), n, [bitmap, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data)])


def schema_table(registry: TypeRegistry | None = None) -> str:
    """The Markdown table of export columns, generated from the layouts (docs/export.md carries it)."""
    from ..journal.registry import DEFAULT_REGISTRY

    cols = Columns(registry or DEFAULT_REGISTRY)
    rows = ["| column | Arrow type | from |", "|---|---|---|"]
    fields = list(cols.schema)
    at = [f.name for f in fields].index("offset") + 1
    fields.insert(at, pa.field("journal", _DICT_STR))  # datasets and several journals only
    at = [f.name for f in fields].index("trigger_time") + 1
    fields[at:at] = [pa.field("gen_time_ns", pa.int64()), pa.field("trigger_time_ns", pa.int64())]  # timestamps us
    for f in fields:
        if f.name in _HEADER_DOCS:
            doc = _HEADER_DOCS[f.name]
        elif f.name == "payload":
            doc = ("exact payload bytes when the typed columns cannot rebuild them "
                   "(unknown type, non-zero padding, bytes after a NUL, non-UTF-8 text); else null")
        else:
            c = next(c for c in cols.fields if c.name == f.name)
            doc = ", ".join(f"{cols.registry.name(t)}.{fn}" for t, fn in c.members.items())
            if c.kind == "text":
                doc += " (NUL padding stripped)"
            if c.labels is not None:
                names = ", ".join(display_name(m) for m in sorted(c.labels, key=int))
                doc += f" as names ({names}; a value without a name as its number)"
        typ = f"dictionary<int32, {f.type.value_type}>" if pa.types.is_dictionary(f.type) else str(f.type)
        rows.append(f"| `{f.name}` | {typ} | {doc} |")
    return "\n".join(rows) + "\n"
