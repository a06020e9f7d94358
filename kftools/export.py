"""Export journals to Parquet (one file, one file per type, or a hive-partitioned dataset) and import them back.

Every committed frame becomes a row. Header columns, typed payload columns for
every registered type, and a ``payload`` binary column that holds the exact
payload bytes only where the typed columns cannot rebuild them (unknown types,
non-zero padding, bytes after a text field's NUL, text that is not UTF-8).
``import_parquet`` rebuilds a journal whose frames are byte-identical.

Batches of frames become Arrow arrays with numpy over the mapped pages: there
is no Python step per frame on the export path.
"""

from __future__ import annotations

import contextlib
import enum
import json
import mmap
import os
import queue
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import KftoolsError, NotAJournal, OutputError, SchemaError, UnknownType, UsageError
from .journal import yijinjing
from .journal.format import FRAME_HEADER, PAGE_HEADER_SIZE
from .journal.page import journals_in
from .journal.reader import FrameBatch, Reader
from .journal.registry import MessageType, TypeRegistry
from .outputs import STDOUT, check_output, create_temporary, create_temporary_folder, remove_journal
from .parquet_input import check_rows, check_schema, parse_metadata

#: bumped when the column scheme changes incompatibly. 2: ``type`` is the name and ``msg_type`` the number (as in
#: text, JSON lines and CSV), named values (``side``, ``order_type``) are their names, an unset trigger_time is null.
#: Import reads both.
EXPORT_FORMAT = 2
IMPORT_FORMATS = (1, 2)
META_KEY = b"kftools"
COMPRESSIONS = ("zstd", "snappy", "none")
DEFAULT_ROW_GROUP = 100_000
_READ_BATCH = 65_536
_DAY_NS = 86_400 * 10**9
#: with --follow, rows are written at least this often (seconds) when the writer is slow
FOLLOW_FLUSH_S = 1.0

_SCALAR_ARROW = {
    "bool": pa.bool_(), "i8": pa.int8(),
    "u8": pa.uint8(), "u16": pa.uint16(), "u32": pa.uint32(), "u64": pa.uint64(),
    "i32": pa.int32(), "i64": pa.int64(), "f32": pa.float32(), "f64": pa.float64(),
}
_TS = pa.timestamp("ns", tz="UTC")
_DICT_STR = pa.dictionary(pa.int32(), pa.string())
#: text fields with few distinct values, stored dictionary-encoded
_DICT_FIELDS = frozenset({"symbol"})
#: beyond this many distinct values a dictionary column gets a dictionary per batch
_MEMO_LIMIT = 100_000

# header columns: (name, arrow type, meaning). Frame header fields come from FRAME_HEADER.
_HEADER_DOCS = {
    "gen_time": "frame header `gen_time`, ns since the epoch, UTC",
    "trigger_time": "frame header `trigger_time`; null when unset (0)",
    "type": "the type's name (`type<N>` when no schema names it; in a dataset, the `type=` folder)",
    "msg_type": "frame header `msg_type` (the number)",
    "source": "frame header `source`",
    "dest": "frame header `dest`",
    "length": "frame header `length`: payload bytes, padding included",
    "page": "index of the page the frame was in",
    "offset": "offset of the frame in its page",
    "journal": "file name of the journal (datasets only)",
}


@dataclass
class _Col:
    name: str
    kind: str  # a Field kind, or "text"
    arrow: pa.DataType
    members: dict = field(default_factory=dict)  # type id -> field name
    width: int = 0  # widest text field
    labels: type[enum.IntEnum] | None = None  # names the values: stored as names (buy, sell), as everywhere


class Columns:
    """The Arrow schema for a registry's types, and the conversion of frame batches to it."""

    def __init__(self, registry: TypeRegistry, types: Iterable[MessageType] | None = None, journal: bool = False):
        self.registry = registry
        self.types = list(types) if types is not None else registry.types()
        self.journal = journal
        header = [
            ("gen_time", _TS), ("trigger_time", _TS), ("type", _DICT_STR), ("msg_type", pa.uint32()),
            ("source", pa.uint32()), ("dest", pa.uint32()), ("length", pa.uint32()),
            ("page", pa.uint32()), ("offset", pa.uint32()),
        ]
        if journal:
            # a dataset's files sit in type=<Name>/ folders: the folder is the type column (a column of the same
            # name in the files would clash with it in pyarrow and pandas)
            header = [h for h in header if h[0] != "type"]
            header.append(("journal", _DICT_STR))
        self._header_names = [n for n, _ in header]
        taken = {n for n, _ in header} | {"payload"}
        cols: dict[str, _Col] = {}
        for mt in self.types:
            for f in mt.layout.fields:
                kind = "text" if f.is_text else "label" if f.labels is not None else f.kind
                name = f.name
                c = cols.get(name)
                if name in taken or (c is not None and c.kind != kind):
                    # same name, different meaning: keep both, qualified by the type
                    name = f"{mt.name}.{f.name}"
                    c = cols.get(name)
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
                c.members[mt.id] = f.name
                if f.is_text:
                    c.width = max(c.width, f.size)
        self.fields = list(cols.values())
        self._memo: dict[str, tuple[dict, list]] = {}
        self._dict_cache: dict[str, pa.Array] = {}
        self.schema = pa.schema(
            [pa.field(n, t, nullable=n not in ("gen_time", "type", "msg_type", "length"))
             for n, t in header]
            + [pa.field(c.name, c.arrow) for c in self.fields]
            + [pa.field("payload", pa.binary())]
        )

    def _type_names(self, present: np.ndarray, inverse: np.ndarray) -> pa.Array:
        # a stable dictionary (every type seen so far), so row groups share it
        index, values = self._memo.setdefault("type", ({}, []))
        lut = np.empty(len(present), dtype=np.int32)
        for i, t in enumerate(present.tolist()):
            j = index.get(t)
            if j is None:
                j = index[t] = len(values)
                values.append(self.registry.name(t))
            lut[i] = j
        return pa.DictionaryArray.from_arrays(pa.array(lut[inverse]), self._dict_values("type", values))

    def metadata(self, extra: dict | None = None) -> dict:
        """The Parquet key-value metadata import needs: types, column mapping, page capacity."""
        doc = {
            "format": EXPORT_FORMAT,
            "types": [
                {"id": mt.id, "name": mt.name, "fields": [[f.name, f.kind] for f in mt.layout.fields]}
                for mt in self.registry.types()
            ],
            "columns": {c.name: {str(t): f for t, f in c.members.items()} for c in self.fields},
        }
        doc.update(extra or {})
        return {META_KEY: json.dumps(doc).encode(), b"pandas": _pandas_metadata(self.schema)}

    def empty(self) -> pa.Table:
        return self.schema.empty_table()

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
        trig = np.ascontiguousarray(h["trigger_time"])
        unset = trig == 0
        arrays: list[pa.Array] = [
            pa.array(np.ascontiguousarray(h["gen_time"]), type=_TS),
            # 0 is "not set" (writers default to it): null, not 1970-01-01
            pa.Array.from_buffers(_TS, n, [_bitmap(~unset), pa.py_buffer(trig)]) if unset.any()
            else pa.array(trig, type=_TS),
        ]
        if "type" in self._header_names:
            arrays.append(self._type_names(present, inverse))
        arrays += [
            pa.array(ids),
            pa.array(np.ascontiguousarray(h["source"])),
            pa.array(np.ascontiguousarray(h["dest"])),
            pa.array(lengths),
            pa.array(np.full(n, batch.page.index, dtype=np.uint32)),
            pa.array(batch.offsets.astype(np.uint32)),
        ]
        if self.journal:
            arrays.append(pa.DictionaryArray.from_arrays(
                pa.array(np.zeros(n, np.int32)), pa.array([journal or ""], pa.string())))
        need_raw = np.zeros(n, dtype=bool)
        # per type present: the mask of its rows and its typed payloads
        typed: dict[int, tuple[np.ndarray | None, np.ndarray]] = {}
        mine = {mt.id for mt in self.types}
        for k, t in enumerate(present.tolist()):
            mt = self.registry.get(t)
            mask = None if len(present) == 1 else inverse == k
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
            arrays.append(self._field(c, typed, n, need_raw))
        arrays.append(_raw_column(batch, need_raw, lengths))
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def _field(self, c: _Col, typed: dict, n: int, need_raw: np.ndarray) -> pa.Array:
        hits = [(typed[t], fname) for t, fname in c.members.items() if t in typed]
        if not hits:
            return pa.nulls(n, c.arrow)
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
            mask = None if valid.all() else pa.array(~valid)
            if pa.types.is_boolean(c.arrow):
                return pa.array(values, type=c.arrow, mask=None if mask is None else ~valid)
            flat = pa.array(np.ascontiguousarray(values).reshape(-1), type=c.arrow.value_type)
            return pa.FixedSizeListArray.from_arrays(flat, c.arrow.list_size, mask=mask)
        if c.kind != "text":
            if len(hits) == 1 and hits[0][0][0] is None:
                return pa.array(np.ascontiguousarray(hits[0][0][1][hits[0][1]]))
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
            need_raw |= np.isin(enc.indices.to_numpy(zero_copy_only=False), np.flatnonzero(garbage))
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
        idx = enc.indices.to_numpy(zero_copy_only=False)
        if enc.indices.null_count:
            if text_valid is None:
                raise AssertionError(f"column {c.name!r}: null dictionary indices but every row has a value")
            glob = pa.Array.from_buffers(pa.int32(), n, [_bitmap(text_valid), pa.py_buffer(lut[np.nan_to_num(idx).astype(np.int64)])])
        else:
            glob = pa.array(lut[idx])
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
                texts.append(member.name.lower())
        present = np.unique(values[valid]).tolist()
        for v in present:
            if v not in index:
                index[v] = len(texts)
                texts.append(str(v))
        named = len(c.labels)
        if all(int(m) == k for k, m in enumerate(sorted(c.labels, key=int))) and (not present or present[-1] < named):
            codes = values.astype(np.int32)  # the common case: every value named, no lookup needed
        else:
            lut = {v: index[v] for v in present}
            codes = np.fromiter((lut.get(v, 0) for v in values.tolist()), dtype=np.int32, count=n)
        bitmap = None if valid.all() else _bitmap(valid)
        idx_arr = pa.Array.from_buffers(pa.int32(), n, [bitmap, pa.py_buffer(codes)])
        return pa.DictionaryArray.from_arrays(idx_arr, self._dict_values(c.name, texts))

    def _dict_values(self, name: str, values: list) -> pa.Array:
        cached = self._dict_cache.get(name)
        if cached is None or len(cached) != len(values):
            cached = self._dict_cache[name] = pa.array(values, pa.string())
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
        arr = pa.array(out, pa.string())
    return arr, garbage


_SCALAR_NP = {k: np.dtype("<" + v) for k, v in
              {"i8": "i1", "u8": "u1", "u16": "u2", "u32": "u4", "u64": "u8", "i32": "i4", "i64": "i8", "f32": "f4", "f64": "f8"}.items()}


def _sub(mask: np.ndarray | None, n: int, sub: np.ndarray) -> np.ndarray:
    """The full-length mask of the rows of ``mask`` selected by ``sub``."""
    out = np.zeros(n, dtype=bool)
    idx = np.arange(n) if mask is None else np.flatnonzero(mask)
    out[idx[sub]] = True
    return out


def _raw_column(batch: FrameBatch, need: np.ndarray, lengths: np.ndarray) -> pa.Array:
    n = len(need)
    if not need.any():
        return pa.nulls(n, pa.binary())
    data, _ends = batch.raw_payloads(need)
    lens = np.where(need, lengths, 0).astype(np.int64)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    if offsets[-1] >= 2**31:
        return pa.array([batch.raw_payloads(np.arange(n) == i)[0].tobytes() if need[i] else None
                         for i in range(n)], pa.large_binary()).cast(pa.binary())
    bitmap = _bitmap(need)
    return pa.BinaryArray.from_buffers(pa.binary(), n, [bitmap, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data)])


# -- writing ---------------------------------------------------------------------------


class _Sink:
    """A Parquet file being written under a temporary name, in row groups of ``row_group_size``.

    Row groups are compressed and written by a background thread (pyarrow
    releases the GIL), so decoding the next frames overlaps writing; at most
    one row group waits, which bounds memory.
    """

    def __init__(self, path, cols: Columns, compression: str, row_group_size: int, meta: dict, name: str = ""):
        # ``path``: a file name, or a binary file object (a temporary made exclusively, standard output)
        self.path = name or (path if isinstance(path, str) else "standard output")
        self.cols = cols
        self.row_group_size = row_group_size
        self.rows = 0
        self._pending: list[pa.RecordBatch] = []
        self._held = 0
        self._writer = pq.ParquetWriter(
            path, cols.schema.with_metadata(cols.metadata(meta)),
            compression=None if compression == "none" else compression,
        )
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, name="kftools-parquet", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while True:
            t = self._queue.get()
            if t is None:
                return
            if self._error is None:
                try:
                    self._writer.write_table(t, row_group_size=self.row_group_size)
                except BaseException as e:  # noqa: BLE001 - re-raised in the exporting thread
                    self._error = e
            del t
            # mimalloc (pyarrow's default pool) keeps freed row groups mapped: hand them back, so peak
            # RSS measured from outside stays near what is live (260 MB -> see docs/export.md)
            pa.default_memory_pool().release_unused()
            self._queue.task_done()

    def _check(self) -> None:
        if self._error is not None:
            e, self._error = self._error, None
            raise OutputError(f"{self.path}: cannot write: {e}") from e

    def add(self, rb: pa.RecordBatch) -> None:
        while len(rb):
            take = min(len(rb), self.row_group_size - self._held)
            self._pending.append(rb.slice(0, take))
            self._held += take
            rb = rb.slice(take)
            if self._held >= self.row_group_size:
                self.flush()

    def flush(self) -> None:
        self._check()
        if self._held:
            # one row group being written while the next is decoded: two in memory at most
            self._queue.join()
            self._check()
            self._queue.put(pa.Table.from_batches(self._pending, schema=self.cols.schema))
            self.rows += self._held
            self._pending, self._held = [], 0

    def close(self) -> None:
        try:
            self.flush()
            if self.rows == 0:
                # zero rows still carry the full schema
                self._queue.put(self.cols.empty())
            self._queue.join()
        finally:
            self._queue.put(None)
            self._thread.join()
            try:
                self._writer.close()  # writes the footer
            except (OSError, pa.ArrowException) as e:
                if sys.exc_info()[0] is None and self._error is None:  # not already failing: this is the error
                    self._error = e
        self._check()


@dataclass
class ExportResult:
    """What an export wrote, and where the valid data ended if a journal was damaged."""

    out: str
    rows: int = 0
    files: int = 0
    journals: list[str] = field(default_factory=list)
    damage: list = field(default_factory=list)  # Damage per damaged journal
    crashed: list[str] = field(default_factory=list)  # journals whose writer died without closing
    skipped: list[str] = field(default_factory=list)  # files of a folder that are not journals, and why

    @property
    def status(self) -> int:
        return 3 if self.damage else 0


Progress = Callable[[int, int], None]  # (rows so far, bytes so far)


def _check_compression(compression: str) -> str:
    c = (compression or "zstd").lower()
    if c not in COMPRESSIONS:
        raise UsageError(f"unknown --compression {compression!r} ({', '.join(COMPRESSIONS)})")
    return c


def journal_bytes(reader: Reader, until=None) -> int:
    """Committed bytes (for a progress total)."""
    last, cur = until or reader.end_position()
    total = 0
    for i in range(last + 1):
        try:
            p = reader.page(i)
        except KftoolsError:
            break
        total += (cur if i == last else min(p.cursor, p.limit())) - PAGE_HEADER_SIZE
    return max(total, 0)


def _page_meta(reader: Reader) -> dict:
    caps = []
    for i in range(reader.page_count()):
        try:
            caps.append(reader.page(i).capacity)
        except KftoolsError:
            break
    return {"page_capacity": caps[0] if caps else None, "page_capacities": caps,
            "source": os.path.basename(reader.path)}


def _release(batch: FrameBatch, done: list) -> None:
    """Drop the mapped pages of frames already exported, so RSS stays bounded on big pages."""
    page = batch.page
    if done[0] is not page:
        done[0], done[1] = page, 0
    end = int(batch.offsets[-1]) + FRAME_HEADER.size + int(batch.headers["length"][-1])
    start = done[1]
    stop = end - end % mmap.PAGESIZE
    if stop > start and hasattr(page.mm, "madvise"):
        try:
            page.mm.madvise(mmap.MADV_DONTNEED, start, stop - start)
        except (OSError, ValueError):
            return
        done[1] = stop


def export(
    journal: str,
    out: str,
    *,
    registry: TypeRegistry,
    types=None,
    symbols=None,
    start: str | None = None,
    end: str | None = None,
    compression: str = "zstd",
    row_group_size: int = DEFAULT_ROW_GROUP,
    split: bool = False,
    follow: bool = False,
    stop=None,
    force: bool = False,
    progress: Progress | None = None,
    total: Callable[[int], None] | None = None,
    name: str | None = None,
) -> ExportResult:
    """Export a journal to ``out`` (a Parquet file, or with ``split`` a folder of one file per type).

    A folder of journals exports to a hive-partitioned dataset (``date=/type=``).
    ``follow`` keeps exporting new frames until ``stop`` fires; otherwise the
    frames committed when the export started are exported. The output appears
    (renamed from a temporary name) only when complete.
    """
    from .selection import Selection

    journal, out = os.fspath(journal), os.fspath(out)
    compression = _check_compression(compression)
    if row_group_size < 1:
        raise UsageError("--row-group-size must be >= 1")
    if name is not None and not follow:
        raise UsageError("--name needs --follow (it publishes a follower's position)")
    if os.path.isdir(journal) and len(yijinjing.find_journals(journal)) != 1:
        if follow:
            raise UsageError("--follow takes one journal, not a folder")
        return export_dataset(journal, out, registry=registry, types=types, symbols=symbols, start=start, end=end,
                              compression=compression, row_group_size=row_group_size, force=force,
                              progress=progress, total=total)
    to_stdout = out == STDOUT
    if to_stdout:
        if split:
            raise UsageError("--split writes a folder of files: '-' (standard output) takes one file")
        if sys.stdout.isatty():
            raise UsageError("refusing to write Parquet to a terminal: redirect or pipe standard output")
    elif split:
        check_output(out, force=force, folder=True, inputs=[journal])
    else:
        check_output(out, force=force, inputs=[journal])
    reader = Reader(journal, registry=registry)
    registry = reader.registry  # a Kungfu journal brings its own types
    try:
        sel = Selection.parse(reader, registry, types, symbols, start, end)
        chosen = [registry.get(t) for t in sel.types] if sel.types else None
        meta = _page_meta(reader)
        res = ExportResult(out, journals=[journal])
        until = None if follow else reader.end_position()
        if total:
            total(journal_bytes(reader, until))
        if follow:
            batches = _follow_then_drain(reader, stop, sel.filters(), name=name)
        else:
            batches = reader.batches(_READ_BATCH, until=until, **sel.filters())
        if to_stdout:
            cols = Columns(registry, [t for t in chosen if t] if chosen else None)
            sink = _Sink(sys.stdout.buffer, cols, compression, row_group_size, meta)
            _pump(batches, lambda b: sink.add(cols.convert(b)), sink.flush if follow else None, res, progress)
            sink.close()
            sys.stdout.buffer.flush()
            res.files = 1
        else:
            _export_to_file(out, split, force, batches, registry, chosen, compression, row_group_size, meta, res,
                            progress, follow)
        if reader.damage is not None:
            res.damage.append(reader.damage)
        elif _crashed(reader):
            res.crashed.append(journal)
        return res
    finally:
        reader.close()


def _crashed(reader: Reader) -> bool:
    try:
        return reader.writer_state()[0] == "crashed"
    except (OSError, KftoolsError):
        return False


def _export_to_file(out, split, force, batches, registry, chosen, compression, row_group_size, meta, res, progress,
                    follow) -> None:
    """Write under an exclusive temporary beside ``out``; rename it into place only when complete."""
    if split:
        tmp = create_temporary_folder(out)
    else:
        fd, tmp = create_temporary(out)
    try:
        if split:
            _export_split(batches, registry, chosen, tmp, compression, row_group_size, meta, res, progress)
        else:
            fh = os.fdopen(fd, "wb", buffering=0)  # unbuffered: a write error surfaces in the writer, not at close
            try:
                cols = Columns(registry, [t for t in chosen if t] if chosen else None)
                sink = _Sink(fh, cols, compression, row_group_size, meta, name=out)
                _pump(batches, lambda b: sink.add(cols.convert(b)), sink.flush if follow else None, res, progress)
                sink.close()
            finally:
                with contextlib.suppress(OSError):
                    fh.close()
            res.files = 1
        if force and split and os.path.isdir(out) and not os.path.islink(out):
            shutil.rmtree(out)
        os.replace(tmp, out) if not split else os.rename(tmp, out)
    except BaseException:
        _remove(tmp)
        raise


def _remove(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.exists(path):
        os.unlink(path)


def _follow_then_drain(reader: Reader, stop, filters: dict, name: str | None = None) -> Iterator[FrameBatch]:
    """Follow until ``stop``; then the frames committed by that moment that the follow had not reached.

    So Ctrl-C ends ``export --follow`` with every frame committed when it was pressed,
    not with whatever the follower happened to have read.
    """
    last = (0, PAGE_HEADER_SIZE)
    for b in reader.follow_batches("beginning", "sleep", stop=stop, batch_size=_READ_BATCH, name=name, **filters):
        if len(b):
            last = (b.page.index, int(b.offsets[-1]) + FRAME_HEADER.size + int(b.headers["length"][-1]))
        yield b
    if reader.damage is None:
        yield from reader.batches(_READ_BATCH, start=last, until=reader.end_position(), **filters)


def _pump(batches, consume, flush, res: ExportResult, progress: Progress | None) -> None:
    done: list = [None, 0]
    nbytes = 0
    flushed = time.monotonic()
    for b in batches:
        if not len(b):
            if flush and time.monotonic() - flushed > FOLLOW_FLUSH_S:
                # caught up with a live writer: hand what we have to the file, but not in
                # a tiny row group each time we catch up
                flush()
                flushed = time.monotonic()
            continue
        consume(b)
        res.rows += len(b)
        nbytes += int(b.headers["length"].sum(dtype=np.int64)) + FRAME_HEADER.size * len(b)
        _release(b, done)
        if progress:
            progress(res.rows, nbytes)


def _file_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def _export_split(batches, registry, chosen, tmpdir, compression, row_group_size, meta, res, progress) -> None:
    sinks: dict[int, tuple[Columns, _Sink]] = {}

    def sink_for(t: int):
        s = sinks.get(t)
        if s is None:
            mt = registry.get(t)
            cols = Columns(registry, [mt] if mt else [])
            name = _file_name(registry.name(t)) + ".parquet"
            s = sinks[t] = (cols, _Sink(os.path.join(tmpdir, name), cols, compression, row_group_size, meta))
        return s

    if chosen:
        for mt in chosen:
            if mt is not None:
                sink_for(mt.id)

    def consume(b: FrameBatch) -> None:
        ids = b.headers["msg_type"]
        for t in np.unique(ids).tolist():
            cols, sink = sink_for(t)
            part = b if len(sinks) == 1 and (ids == t).all() else b.select(ids == t)
            sink.add(cols.convert(part))

    def flush_all() -> None:
        for _, s in sinks.values():
            s.flush()

    _pump(batches, consume, flush_all, res, progress)
    for _, s in sinks.values():
        s.close()
    res.files = len(sinks)


def export_dataset(
    folder: str, out: str, *, registry: TypeRegistry, types=None, symbols=None, start=None, end=None,
    compression: str = "zstd", row_group_size: int = DEFAULT_ROW_GROUP, force: bool = False,
    progress: Progress | None = None, total: Callable[[int], None] | None = None,
) -> ExportResult:
    """Export every journal in ``folder`` to a hive-partitioned dataset ``out/date=YYYY-MM-DD/type=Name/``.

    Every file has the same schema (all types' columns, and ``journal``), so
    DuckDB, Polars, pandas and Spark read the folder as one table.
    """
    from .selection import Selection

    check_output(out, force=force, folder=True)
    # a Kungfu KF_HOME or runtime folder: every journal under it, each shown by its location
    paths = [j.first_page for j in yijinjing.find_journals(folder)] or journals_in(folder)
    if not paths:
        raise NotAJournal(f"{folder}: no journal in this folder")
    readers = []
    skipped = []
    try:
        for p in paths:
            try:
                readers.append(Reader(p, registry=registry))
            except NotAJournal as e:
                skipped.append(str(e))  # a schema file or a note beside the journals
        if not readers:
            raise NotAJournal(f"{folder}: no journal in this folder ({'; '.join(skipped)})")
        paths = [r.name for r in readers]
        if readers[0].kungfu is not None:
            registry = readers[0].registry
        sels = [Selection.parse(r, registry, types, symbols, start, end) for r in readers]
        ends = [r.end_position() for r in readers]
        if total:
            total(sum(journal_bytes(r, u) for r, u in zip(readers, ends, strict=True)))
        cols = Columns(registry, None, journal=True)
        res = ExportResult(out, journals=paths, skipped=skipped)
        tmp = create_temporary_folder(out)
        sinks: dict[tuple[int, int], _Sink] = {}
        rows_before = 0
        try:
            for r, sel, until in zip(readers, sels, ends, strict=True):
                jname = r.name if r.kungfu is not None else os.path.basename(r.path)
                meta = _page_meta(r)
                meta["source"] = None  # many journals: see the journal column

                def consume(b: FrameBatch, jname=jname) -> None:
                    days = b.headers["gen_time"] // _DAY_NS
                    key = days.astype(np.int64) * 2**32 + b.headers["msg_type"].astype(np.int64)
                    for k in np.unique(key).tolist():
                        sink = sinks.get(k)
                        day, t = divmod(k, 2**32)
                        if sink is None:
                            date = np.datetime64(day, "D").astype(str)
                            d = os.path.join(tmp, f"date={date}", f"type={_file_name(registry.name(t))}")
                            os.makedirs(d, exist_ok=True)
                            sink = sinks[k] = _Sink(os.path.join(d, "part-0.parquet"), cols, compression,
                                                    row_group_size, {"source": None})
                        part = b if len(key) and (key == k).all() else b.select(key == k)
                        sink.add(cols.convert(part, jname))

                def prog(rows, nbytes, base=rows_before):
                    if progress:
                        progress(base + rows, nbytes)

                sub = ExportResult(out)
                _pump(r.batches(_READ_BATCH, until=until, **sel.filters()), consume, None, sub, prog)
                res.rows += sub.rows
                rows_before = res.rows
                if r.damage is not None:
                    res.damage.append(r.damage)
                elif _crashed(r):
                    res.crashed.append(r.path)
            for s in sinks.values():
                s.close()
            res.files = len(sinks)
            if os.path.isdir(out):
                shutil.rmtree(out)
            os.rename(tmp, out)
        except BaseException:
            _remove(tmp)
            raise
        return res
    finally:
        for r in readers:
            r.close()


# -- import ----------------------------------------------------------------------------


@dataclass
class ImportResult:
    out: str
    frames: int = 0
    pages: int = 0


def _registry_from(meta: dict, registry: TypeRegistry | None) -> TypeRegistry:
    reg = (registry or TypeRegistry()).copy()
    for t in meta.get("types", []):
        if reg.get(t["id"]) is None:
            reg.register(t["id"], t["name"], [tuple(f) for f in t["fields"]])
    return reg


def _read_meta(path: str) -> tuple[pq.ParquetFile, dict]:
    try:
        pf = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as e:
        raise NotAJournal(f"{path}: not a Parquet file ({e})") from None
    raw = (pf.schema_arrow.metadata or {}).get(META_KEY)
    if raw is None:
        raise UsageError(f"{path}: not a kftools export (no '{META_KEY.decode()}' metadata)")
    meta = parse_metadata(path, raw)
    check_schema(path, pf.schema_arrow, meta)
    return pf, meta


def import_parquet(
    src: str, out: str, *, registry: TypeRegistry | None = None, page_size: int | None = None, force: bool = False,
) -> ImportResult:
    """Rebuild a journal from a kftools export (a file, or a ``--split`` folder).

    Frames are rebuilt byte-identical (headers, payloads and padding) in the
    order of their original (page, offset); pages get the exported capacity.
    """
    from .journal.writer import Writer

    src, out = os.fspath(src), os.fspath(out)
    if os.path.isdir(src):
        files = sorted(os.path.join(src, f) for f in os.listdir(src) if f.endswith(".parquet"))
        if not files:
            raise NotAJournal(f"{src}: no .parquet file in this folder")
    elif os.path.exists(src):
        files = [src]
    else:
        raise NotAJournal(f"{src}: no such file")
    check_output(out, force=force, what="imported journal")
    d = os.path.dirname(os.path.abspath(out))
    opened = [_read_meta(f) for f in files]
    meta = opened[0][1]
    if meta.get("format") not in IMPORT_FORMATS:
        raise UsageError(f"{files[0]}: export format {meta.get('format')} is not one this kftools reads "
                         f"({', '.join(map(str, IMPORT_FORMATS))})")
    try:
        reg = _registry_from(meta, registry)
    except SchemaError as e:
        raise SchemaError(f"{files[0]}: {e}") from None
    cap = page_size or meta.get("page_capacity") or None
    tmpdir = create_temporary_folder(out)
    tmp = os.path.join(tmpdir, os.path.basename(out))
    res = ImportResult(out)
    try:
        with Writer(tmp, page_size=cap, registry=reg) as w, _as_bad_input(src):
            if len(opened) == 1:
                for rb in opened[0][0].iter_batches(batch_size=_READ_BATCH):
                    check_rows(src, rb, res.frames, opened[0][1])
                    res.frames += _write_rows(w, rb, reg, opened[0][1])
            else:
                # a --split folder: merge the files back in journal order
                t = pa.concat_tables([pf.read() for pf, _ in opened], promote_options="default")
                t = t.sort_by([("page", "ascending"), ("offset", "ascending")])
                merged = dict(meta, columns={})
                for _pf, m in opened:
                    for cname, members in m.get("columns", {}).items():
                        merged["columns"].setdefault(cname, {}).update(members)
                for rb in t.to_batches(max_chunksize=_READ_BATCH):
                    check_rows(src, rb, res.frames, merged)
                    res.frames += _write_rows(w, rb, reg, merged)
            res.pages = w.page_index + 1
        if os.path.exists(out) and force:
            remove_journal(out)
        pages = sorted(os.listdir(tmpdir), key=lambda n: (len(n), n), reverse=True)
        for name in pages:  # the first page last, so the journal appears whole
            os.rename(os.path.join(tmpdir, name), os.path.join(d, os.path.basename(out) + name[len(os.path.basename(out)):]))
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return res


@contextlib.contextmanager
def _as_bad_input(src: str):
    """Whatever a hostile file makes pyarrow or numpy raise is one error about the file (exit 2)."""
    try:
        yield
    except (UsageError, UnknownType, SchemaError) as e:
        if str(e).startswith(src):
            raise
        raise type(e)(f"{src}: {e}") from None
    except KftoolsError:
        raise
    except (pa.ArrowException, OSError, ValueError, TypeError, OverflowError, KeyError, IndexError) as e:
        raise UsageError(f"{src}: cannot import: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


def _write_rows(w, rb: pa.RecordBatch, reg: TypeRegistry, meta: dict) -> int:
    n = rb.num_rows
    if not n:
        return 0
    col = rb.column
    names = rb.schema.names

    def np_col(name, dtype):
        return col(names.index(name)).to_numpy(zero_copy_only=False).astype(dtype)

    # format 1 named the number msg_type_id (and the name msg_type)
    ids = np_col("msg_type" if meta.get("format", 1) >= 2 else "msg_type_id", np.uint32)
    lengths = np_col("length", np.int64)
    gen = col(names.index("gen_time")).cast(pa.int64()).to_numpy(zero_copy_only=False)
    trig = col(names.index("trigger_time")).fill_null(0).cast(pa.int64()).to_numpy(zero_copy_only=False)
    src = col(names.index("source")).fill_null(0).to_numpy(zero_copy_only=False)
    dst = col(names.index("dest")).fill_null(0).to_numpy(zero_copy_only=False)
    raw = col(names.index("payload")).to_pylist()
    payloads: list = [None] * n
    colmap = meta.get("columns", {})
    for t in np.unique(ids).tolist():
        mt = reg.get(t)
        rows = np.flatnonzero(ids == t)
        if mt is None:
            continue
        rec = np.zeros(len(rows), dtype=mt.layout.dtype)
        for cname, members in colmap.items():
            fname = members.get(str(t))
            if fname is None or cname not in names:
                continue
            arr = col(names.index(cname)).take(pa.array(rows))
            if pa.types.is_dictionary(arr.type):
                arr = arr.dictionary_decode()
            fdecl = mt.layout.field(fname)
            if fdecl.is_text:
                vals = arr.cast(pa.binary()).fill_null(b"").to_numpy(zero_copy_only=False)
                rec[fname] = np.array(vals.tolist(), dtype=rec.dtype[fname]) if len(vals) else rec[fname]
            elif fdecl.labels is not None and pa.types.is_string(arr.type):
                # names back to numbers, once per distinct name
                enc = arr.fill_null("0").dictionary_encode()
                try:
                    lut = np.array([fdecl.unlabel(x) for x in enc.dictionary.to_pylist()], dtype=np.int64)
                except ValueError:
                    raise UsageError(f"column {cname}: values {enc.dictionary.to_pylist()} are not all "
                                     f"{fdecl.labels.__name__} names or numbers") from None
                if len(lut):
                    rec[fname] = lut[enc.indices.to_numpy(zero_copy_only=False)]
            else:
                rec[fname] = arr.fill_null(0).to_numpy(zero_copy_only=False)
        size = mt.layout.size
        buf = rec.tobytes()
        for k, i in enumerate(rows.tolist()):
            if raw[i] is None:
                payloads[i] = buf[k * size : (k + 1) * size]
    write = w.write
    for i in range(n):
        p = raw[i]
        if p is not None:
            write(int(ids[i]), p, gen_time=int(gen[i]), trigger_time=int(trig[i]), source=int(src[i]), dest=int(dst[i]))
        else:
            p = payloads[i]
            if p is None:
                raise UsageError(f"row {i}: type {int(ids[i])} has no payload bytes and no schema")
            if int(lengths[i]) < len(p):
                raise UsageError(f"row {i}: length {int(lengths[i])} is smaller than the {reg.name(int(ids[i]))} "
                                 f"layout ({len(p)} bytes)")
            write(int(ids[i]), p, gen_time=int(gen[i]), trigger_time=int(trig[i]), source=int(src[i]),
                  dest=int(dst[i]), padding=int(lengths[i]) - len(p))
    return n


# -- progress (for the CLI) --------------------------------------------------------------


@contextlib.contextmanager
def progress_bar(quiet: bool = False, follow: bool = False):
    """``(on_total, on_progress)`` callbacks drawing a rich bar on stderr; no-ops off a terminal or if quiet."""
    import sys

    if quiet or not sys.stderr.isatty():
        yield None, None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = [TextColumn("[bold]export"), BarColumn(), TextColumn("{task.fields[rows]:,} frames"),
               TransferSpeedColumn(), TimeRemainingColumn() if not follow else TimeElapsedColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=False) as prog:
        task = prog.add_task("export", total=None, rows=0)

        def on_total(nbytes: int) -> None:
            if not follow:
                prog.update(task, total=max(nbytes, 1))

        def on_progress(rows: int, nbytes: int) -> None:
            prog.update(task, completed=nbytes, rows=rows)

        yield on_total, on_progress


# -- documentation ---------------------------------------------------------------------


def schema_table(registry: TypeRegistry | None = None) -> str:
    """The Markdown table of export columns, generated from the layouts (docs/export.md carries it)."""
    from .journal.registry import DEFAULT_REGISTRY

    cols = Columns(registry or DEFAULT_REGISTRY)
    rows = ["| column | Arrow type | from |", "|---|---|---|"]
    fields = list(cols.schema)
    at = [f.name for f in fields].index("offset") + 1
    fields.insert(at, pa.field("journal", _DICT_STR))  # datasets only
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
                names = ", ".join(m.name.lower() for m in sorted(c.labels, key=int))
                doc += f" as names ({names}; a value without a name as its number)"
        typ = f"dictionary<int32, {f.type.value_type}>" if pa.types.is_dictionary(f.type) else str(f.type)
        rows.append(f"| `{f.name}` | {typ} | {doc} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(schema_table())
