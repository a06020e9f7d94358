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
from ..journal.registry import TypeRegistry
from ..outputs import check_journal_output, create_temporary_folder, remove_journal
from ..parquet_input import check_rows, check_schema, parse_metadata
from .columns import IMPORT_FORMATS, META_KEY

#: rows read from Parquet at a time
IMPORT_BATCH = 65_536


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
                for rb in opened[0][0].iter_batches(batch_size=IMPORT_BATCH):
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
    # with --timestamps us the timestamp columns are microseconds: the exact nanoseconds are in *_ns beside them
    exact = "_ns" if "gen_time_ns" in names else ""
    gen = col(names.index("gen_time" + exact)).cast(pa.int64()).to_numpy(zero_copy_only=False)
    trig = col(names.index("trigger_time" + exact)).fill_null(0).cast(pa.int64()).to_numpy(zero_copy_only=False)
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
