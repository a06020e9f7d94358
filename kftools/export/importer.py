"""Rebuild a journal from a kftools Parquet export, frames byte-identical to the original."""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import KftoolsError, NotAJournal, SchemaError, UnknownType, UsageError
from ..journal.format import FRAME_HEADER, FRAME_HEADER_SIZE
from ..journal.registry import TypeRegistry
from ..outputs import check_journal_output, create_temporary_folder, remove_journal
from ..parquet_input import check_rows, check_schema, parse_metadata
from .columns import IMPORT_FORMATS, META_KEY

#: rows read from Parquet at a time
IMPORT_BATCH = 65_536
#: frames up to this many bytes are built as rows of one matrix; a batch with a wider one is built frame by frame
WIDEST_MATRIX_ROW = 1024


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


def _read_meta(path: str, filesystem=None) -> tuple[pq.ParquetFile, dict]:
    try:
        pf = pq.ParquetFile(path if filesystem is None else filesystem.open_input_file(path))
    except (OSError, pa.ArrowException) as e:
        raise NotAJournal(f"{path}: not a Parquet file ({e})") from None
    raw = (pf.schema_arrow.metadata or {}).get(META_KEY)
    if raw is None:
        raise UsageError(f"{path}: not a kftools export (no '{META_KEY.decode()}' metadata)")
    meta = parse_metadata(path, raw)
    check_schema(path, pf.schema_arrow, meta)
    return pf, meta


def _source_files(src: str, journal: str | None) -> tuple[list[str], object, str | None]:
    """``(files, filesystem, journal)``: the Parquet files ``src`` names (a file, a ``--split`` folder, or a
    dataset ``kftools export`` wrote: a folder or ``s3://``/``gs://`` prefix with ``date=/type=`` partitions and
    its manifest, whose committed files are read), the pyarrow filesystem they are in (None: local), and the
    journal whose rows to take from a dataset (None: every row)."""
    from .dataset import MANIFEST, _Target, is_remote

    remote = is_remote(src)
    if remote or os.path.isfile(os.path.join(src, MANIFEST)):
        target = _Target(src)
        manifest = target.read_manifest()
        if manifest is None:
            raise NotAJournal(f"{src}: no kftools dataset here (no {MANIFEST})")
        names = sorted(manifest["journals"])
        if journal is None and len(names) > 1:
            raise UsageError(f"{src}: the dataset holds {len(names)} journals ({', '.join(names)}); choose one "
                             "with --journal NAME")
        if journal is not None and journal not in names:
            raise UsageError(f"{src}: the dataset holds no journal {journal!r} (it holds {', '.join(names)})")
        files = [target._join(rel) for rel in manifest.get("files", []) if rel.endswith(".parquet")]
        if not files:
            raise NotAJournal(f"{src}: the dataset holds no frame (its manifest lists no file)")
        return files, target.fs, journal if journal is not None else names[0]
    if journal is not None:
        raise UsageError(f"{src}: --journal chooses a journal of a dataset; this is no kftools dataset")
    if os.path.isdir(src):
        files = sorted(os.path.join(src, f) for f in os.listdir(src) if f.endswith(".parquet"))
        if not files:
            raise NotAJournal(f"{src}: no .parquet file in this folder")
        return files, None, None
    if os.path.exists(src):
        return [src], None, None
    raise NotAJournal(f"{src}: no such file")


def import_parquet(
    src: str, out: str, *, registry: TypeRegistry | None = None, page_size: int | None = None, force: bool = False,
    journal: str | None = None,
) -> ImportResult:
    """Rebuild a journal from a kftools export (a file, a ``--split`` folder, or a dataset exported to a folder or
    to ``s3://``/``gs://``: ``journal`` names the one to rebuild when it holds several).

    Frames are rebuilt byte-identical (headers, payloads and padding) in the
    order of their original (page, offset); pages get the exported capacity.
    """
    from ..journal.writer import Writer

    src, out = os.fspath(src), os.fspath(out)
    files, filesystem, journal = _source_files(src, journal)
    check_journal_output(out, force=force, what="imported journal")
    d = os.path.dirname(os.path.abspath(out))
    opened = [_read_meta(f, filesystem) for f in files]
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
            if len(opened) == 1 and journal is None:
                for rb in opened[0][0].iter_batches(batch_size=IMPORT_BATCH, columns=_columns_read(opened[0])):
                    check_rows(src, rb, res.frames, opened[0][1])
                    res.frames += _write_rows(w, rb, reg, opened[0][1])
            else:
                # a --split folder, or a dataset's files: merge them back in journal order
                t = pa.concat_tables([pf.read() for pf, _ in opened], promote_options="default")
                if journal is not None:  # a dataset holds the rows of every journal exported into it
                    import pyarrow.compute as pc

                    t = t.filter(pc.equal(t.column("journal").cast(pa.string()), journal))
                t = t.sort_by([("page", "ascending"), ("offset", "ascending")])
                merged = dict(meta, columns={})
                for _pf, m in opened:
                    for cname, members in m.get("columns", {}).items():
                        merged["columns"].setdefault(cname, {}).update(members)
                for rb in t.to_batches(max_chunksize=IMPORT_BATCH):
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


def _columns_read(opened: tuple[pq.ParquetFile, dict]) -> list[str]:
    """The columns a frame is rebuilt from: not ``type`` (the name beside the number), ``page``, ``offset``."""
    fields = opened[1].get("columns", {})
    return [n for n in opened[0].schema_arrow.names if n not in SHOWN_ONLY or n in fields]


#: columns an export writes for readers only: the type's name, where the frame was
SHOWN_ONLY = frozenset({"type", "page", "offset"})


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
    """Append the batch's rows as frames: built in one buffer with numpy and appended in bulk, page by page."""
    n = rb.num_rows
    if not n:
        return 0
    col = rb.column
    names = rb.schema.names

    def np_col(name, dtype):
        return _numbers(col(names.index(name))).astype(dtype)

    # format 1 named the number msg_type_id (and the name msg_type)
    ids = np_col("msg_type" if meta.get("format", 1) >= 2 else "msg_type_id", np.uint32)
    lengths = np_col("length", np.int64)
    # with --timestamps us the timestamp columns are microseconds: the exact nanoseconds are in *_ns beside them
    exact = "_ns" if "gen_time_ns" in names else ""
    headers = np.zeros(n, dtype=FRAME_HEADER.dtype)
    headers["msg_type"] = ids
    headers["gen_time"] = _numbers(col(names.index("gen_time" + exact)))
    headers["trigger_time"] = _numbers(col(names.index("trigger_time" + exact)))
    headers["source"] = _numbers(col(names.index("source")))
    headers["dest"] = _numbers(col(names.index("dest")))
    if not ids.all():
        raise UsageError(f"row {int(np.flatnonzero(ids == 0)[0])}: msg_type 0 is never a frame's (it marks damage)")
    # rows whose payload bytes were exported as they are (types without a schema): few, taken one by one
    payload = col(names.index("payload"))
    raw_rows: np.ndarray = np.flatnonzero(_valid(payload)) if payload.null_count < n else np.zeros(0, np.int64)
    raw = [v for v in payload.to_pylist() if v is not None] if len(raw_rows) else []
    typed = np.ones(n, dtype=bool)
    typed[raw_rows] = False
    sizes = lengths.copy()  # payload bytes of each frame: a typed row's length, a raw row's bytes
    for i, p in zip(raw_rows.tolist(), raw, strict=True):
        sizes[i] = len(p)
        mt = reg.get(int(ids[i]))
        if mt is not None and len(p) < mt.layout.size:
            raise UsageError(f"row {i}: a {len(p)}-byte {mt.name} payload is shorter than its layout "
                             f"({mt.layout.size} bytes)")
    starts = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(sizes + FRAME_HEADER_SIZE, out=starts[1:])
    headers["length"] = sizes
    # each row's frame in a row of one matrix (header, payload, zero padding), the frames then taken out of it
    # in row order with one mask: whole rows copied at once instead of a Python call per frame
    widths = sizes + FRAME_HEADER_SIZE
    wide = int(widths.max()) > WIDEST_MATRIX_ROW
    layouts = [mt.layout.size for mt in map(reg.get, np.unique(ids).tolist()) if mt is not None]
    width = FRAME_HEADER_SIZE + max(layouts, default=0) if wide else int(widths.max())
    frames = np.zeros((n, width), dtype=np.uint8)
    frames[:, :FRAME_HEADER_SIZE] = headers.view(np.uint8).reshape(n, FRAME_HEADER_SIZE)
    colmap = meta.get("columns", {})
    for t in np.unique(ids[typed]).tolist():
        mt = reg.get(t)
        rows = np.flatnonzero(typed & (ids == t))
        if mt is None:
            raise UsageError(f"row {int(rows[0])}: type {t} has no payload bytes and no schema")
        size = mt.layout.size
        short = np.flatnonzero(lengths[rows] < size)
        if len(short):
            i = int(rows[short[0]])
            raise UsageError(f"row {i}: length {int(lengths[i])} is smaller than the {reg.name(t)} layout "
                             f"({size} bytes)")
        rec = np.zeros(len(rows), dtype=mt.layout.dtype)
        for cname, members in colmap.items():
            fname = members.get(str(t))
            if fname is None or cname not in names:
                continue
            rec[fname] = _field_values(col(names.index(cname)), mt.layout.field(fname), rec.dtype[fname], rows,
                                       cname)
        frames[rows, FRAME_HEADER_SIZE : FRAME_HEADER_SIZE + size] = rec.view(np.uint8).reshape(len(rows), size)
    if not wide:
        for i, p in zip(raw_rows.tolist(), raw, strict=True):
            frames[i, FRAME_HEADER_SIZE : FRAME_HEADER_SIZE + len(p)] = np.frombuffer(p, dtype=np.uint8)
        buf = frames[np.arange(width) < widths[:, None]]
    else:  # a frame too wide for a matrix row (long padding or raw payloads): frame by frame
        buf = np.zeros(int(starts[-1]), dtype=np.uint8)
        raw_of = dict(zip(raw_rows.tolist(), raw, strict=True))
        for i in range(n):
            at = int(starts[i])
            p = raw_of.get(i)
            if p is None:
                buf[at : at + min(width, int(widths[i]))] = frames[i, : int(widths[i])]
            else:
                buf[at : at + FRAME_HEADER_SIZE] = frames[i, :FRAME_HEADER_SIZE]
                buf[at + FRAME_HEADER_SIZE : at + FRAME_HEADER_SIZE + len(p)] = np.frombuffer(p, dtype=np.uint8)
    return w.write_raw_frames(buf, starts)


def _field_values(c: pa.Array, fdecl, dtype: np.dtype, rows: np.ndarray, cname: str) -> np.ndarray:
    """Column ``c`` at ``rows`` as values of the field ``fdecl``: whole columns converted from their buffers and
    indexed with numpy (``take`` with an index array from numpy imports pandas, as ``to_numpy`` does)."""
    dictionary = pa.types.is_dictionary(c.type)
    if fdecl.is_text and not dictionary and _offsets_dtype(c.type) is not None:
        return _fixed_text(c, rows, dtype)
    if fdecl.is_text and dictionary and _offsets_dtype(c.dictionary.type) is not None:
        table = _fixed_text(c.dictionary, np.arange(len(c.dictionary)), dtype)
        idx = _numbers(c.indices, -1)[rows]
        if not len(table):
            return np.zeros(len(rows), dtype)
        return np.where(idx < 0, np.zeros((), dtype), table[np.maximum(idx, 0)])
    if fdecl.is_text or (fdecl.labels is not None and (dictionary or pa.types.is_string(c.type))):
        if dictionary:
            values, idx = c.dictionary.to_pylist(), _numbers(c.indices, -1)[rows]
        else:
            values, idx = c.to_pylist(), rows
        if fdecl.is_text:  # fixed-width bytes, NUL-padded
            table = np.array([v.encode() if isinstance(v, str) else v for v in values] + [b""], dtype=dtype)
        else:  # names back to numbers, once per distinct name
            try:
                table = np.array([fdecl.unlabel("0" if v is None else v) for v in values] + [0], dtype=np.int64)
            except ValueError:
                shown = sorted({str(v) for v in values})
                raise UsageError(f"column {cname}: values {shown} are not all {fdecl.labels.__name__} names or "
                                 "numbers") from None
        if not dictionary:  # one value per row: nulls are None, read as "" or 0 above
            table[:-1][~_valid(c)] = table[-1]
        return table[np.where(idx < 0, len(table) - 1, idx)]
    if dictionary:
        return _numbers(c.dictionary)[_numbers(c.indices)[rows]]
    if pa.types.is_fixed_size_list(c.type):  # Depth's levels: the child values, list_size per row
        k = c.type.list_size
        return _numbers(c.values.slice(c.offset * k, len(c) * k)).reshape(len(c), k)[rows]
    return _numbers(c)[rows]


def _offsets_dtype(t: pa.DataType) -> np.dtype | None:
    if pa.types.is_string(t) or pa.types.is_binary(t):
        return np.dtype(np.int32)
    if pa.types.is_large_string(t) or pa.types.is_large_binary(t):
        return np.dtype(np.int64)
    return None


def _fixed_text(c: pa.Array, rows: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """A string or binary column at ``rows`` as fixed-width NUL-padded bytes (longer values cut, as numpy's
    ``S<n>`` does), read from its offsets and data buffers; nulls are empty."""
    width = dtype.itemsize
    off_dtype = _offsets_dtype(c.type)
    assert off_dtype is not None
    _validity, offsets_buf, data_buf = c.buffers()[:3]
    offsets = np.frombuffer(offsets_buf, dtype=off_dtype, count=len(c) + 1, offset=c.offset * off_dtype.itemsize)
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(1, np.uint8)
    start = offsets[rows].astype(np.int64)
    length = np.minimum(offsets[rows + 1] - start, width)
    if c.null_count:
        length = np.where(_valid(c)[rows], length, 0)
    out = np.zeros((len(rows), width), dtype=np.uint8)
    take = np.arange(width) < length[:, None]
    out[take] = data[(start[:, None] + np.arange(width))[take]]
    return out.view(dtype).reshape(len(rows))


def _numbers(arr: pa.Array, null: int = 0) -> np.ndarray:
    """A numeric column as numpy, nulls as ``null``, read from its Arrow buffers (``to_numpy`` and ``fill_null``
    import pandas: that import alone took a fifth of an import's time)."""
    t = arr.type
    kind = "f" if pa.types.is_floating(t) else "i" if pa.types.is_signed_integer(t) or pa.types.is_timestamp(t) \
        else "u" if pa.types.is_unsigned_integer(t) else None
    if kind is None:  # fixed-size lists (Depth's levels), booleans: rare, small
        return np.array([null if v is None else v for v in arr.to_pylist()])
    dtype = np.dtype(f"{kind}{t.bit_width // 8}")
    data = np.frombuffer(arr.buffers()[1], dtype=dtype, count=len(arr), offset=arr.offset * dtype.itemsize)
    if arr.null_count:
        data = np.where(_valid(arr), data, np.array(null).astype(dtype))
    return data


def _valid(arr: pa.Array) -> np.ndarray:
    """Which rows of ``arr`` hold a value, from its validity bitmap."""
    bitmap = arr.buffers()[0]
    if bitmap is None:
        return np.ones(len(arr), dtype=bool)
    bits = np.unpackbits(np.frombuffer(bitmap, dtype=np.uint8), bitorder="little")
    return bits[arr.offset : arr.offset + len(arr)].astype(bool)
