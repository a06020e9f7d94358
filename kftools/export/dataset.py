"""Export journals to one hive-partitioned dataset (``date=YYYY-MM-DD/type=Name/``), in a local folder or in
object storage (``s3://``, ``gs://``, through pyarrow's filesystems), incrementally.

Layout: ``OUT/date=YYYY-MM-DD/type=Name/part-<run>.parquet`` and ``OUT/_kftools_export.json`` (the manifest:
how far each journal was exported, and which files the dataset holds). Exporting the same journals to the same
dataset again adds only the frames committed since, as a new ``part-<run>.parquet`` in each partition it
touches; nothing is rewritten. A run writes its files in a private temporary folder (beside the dataset, or a
local one for object storage) and moves each into the dataset only once every file is complete, then replaces
the manifest. An interrupted run leaves nothing visible, except when interrupted while moving: then the next
run first removes the files the manifest does not list, so no frame is ever counted twice.

A run on a local dataset holds a lock (``flock`` on ``OUT/_kftools_export.lock``): a second export into it at
the same time is refused. Each journal's entry in the manifest records a CRC-32 of the bytes just before where
its export stopped: a journal cut below that point since (``recover --in-place``) and written again is refused,
never resumed past frames that were never exported. ``--force`` replaces only a dataset of files kftools wrote.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import re
import stat
import tempfile
import time
import zlib
from datetime import timedelta
from typing import Any

import numpy as np

from ..errors import JournalLocked, KftoolsError, NotAJournal, OutputError, UsageError
from ..journal.reader import FrameBatch, Reader
from ..journal.registry import TypeRegistry
from ..journal.resolve import JournalRef, resolve_journals
from ..outputs import check_output, create_temporary_folder, publish_mode
from .columns import Columns
from .files import check_parquet_name
from .sink import ParquetSink, RowGroupWriter
from .stream import (
    READ_BATCH,
    ExportOptions,
    ExportResult,
    crashed,
    file_name,
    journal_bytes,
    pump,
    remove_output,
)

_DAY_NS = 86_400 * 10**9
MANIFEST = "_kftools_export.json"
MANIFEST_FORMAT = 1
#: held (``flock``) by the run exporting into a local dataset; readers skip ``_`` names, as the manifest's
LOCK = "_kftools_export.lock"
#: bytes before the position a journal's export stopped at whose CRC-32 the manifest records
TAIL_BYTES = 4096
#: how long an object-storage call to Google Cloud Storage is retried before it is an error (seconds)
GCS_RETRY_S = 60
#: the files of ours in a dataset (what an interrupted run may leave, what ``--force`` removes): a run's name
#: is its UTC start and process id, which no other tool's part files carry
_PART = re.compile(r"^date=[0-9-]+/type=[^/]+/part-[0-9]{8}T[0-9]{6}Z(-[0-9]+)+\.parquet$")
_RUNS = itertools.count()
#: the folders of a local dataset
_FOLDER = re.compile(r"^date=[0-9-]+(/type=[^/]+)?$")


def is_remote(out: str) -> bool:
    """Whether ``out`` names object storage (``s3://``, ``gs://``...) rather than a local folder."""
    return re.match(r"^[a-z][a-z0-9+.-]*://", out) is not None


def _filesystem(out: str):
    """(pyarrow filesystem, path in it) of an object-storage URI; credentials come from the environment."""
    from pyarrow import fs

    try:
        if out.startswith("s3://"):
            # an S3-compatible server (AWS_ENDPOINT_URL): newer Arrow reads the variable itself, older does not
            endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
            kw: dict = {}
            if endpoint:
                scheme, sep, host = endpoint.partition("://")
                kw = {"endpoint_override": host.rstrip("/"), "scheme": scheme} if sep else {"endpoint_override": endpoint}
            region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
            if region:
                kw["region"] = region
            return fs.S3FileSystem(**kw), out[len("s3://"):].rstrip("/")
        if out.startswith(("gs://", "gcs://")):
            # Google's default credentials; an unreachable service fails after a minute, not after GCS's 15
            gcs = fs.GcsFileSystem(retry_time_limit=timedelta(seconds=GCS_RETRY_S))
            return gcs, out.split("://", 1)[1].rstrip("/")
    except Exception as e:  # noqa: BLE001 - pyarrow raises several kinds; the user needs the one line
        raise OutputError(f"{out}: cannot open this location ({_first_line(e)})") from None
    raise UsageError(f"{out}: unknown location (a folder, s3://bucket/prefix or gs://bucket/prefix)")


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    if not text:
        return type(e).__name__
    line = text[0] if len(text[0]) <= 240 else text[0][:240] + "…"  # cloud SDKs repeat themselves at length
    return f"{type(e).__name__}: {line}"


class _Target:
    """Where the dataset lives: a local folder, or a prefix in object storage."""

    def __init__(self, out: str):
        self.out = out
        self.remote = is_remote(out)
        self.fs: Any = None
        self.root: str = out
        if self.remote:
            self.fs, self.root = _filesystem(out)

    def _join(self, rel: str) -> str:
        return f"{self.root}/{rel}" if self.remote else os.path.join(self.root, *rel.split("/"))

    def files(self) -> list[str]:
        """Paths (relative, with /) of the files in the dataset."""
        if self.remote:
            from pyarrow import fs

            try:
                infos = self.fs.get_file_info(fs.FileSelector(self.root, recursive=True, allow_not_found=True))
            except OSError as e:
                raise OutputError(f"{self.out}: cannot list it ({_first_line(e)})") from None
            return sorted(i.path[len(self.root) + 1:] for i in infos if i.type == fs.FileType.File)
        if not os.path.isdir(self.root):
            return []
        out = []
        for d, _dirs, names in os.walk(self.root):
            out += [os.path.relpath(os.path.join(d, n), self.root).replace(os.sep, "/") for n in names]
        return sorted(rel for rel in out if rel != LOCK)

    def folders(self) -> list[str]:
        """Paths (relative, with /) of the folders in a local dataset."""
        out = []
        for d, dirs, _names in os.walk(self.root):
            out += [os.path.relpath(os.path.join(d, n), self.root).replace(os.sep, "/") for n in dirs]
        return sorted(out)

    def read_manifest(self) -> dict | None:
        try:
            if self.remote:
                with self.fs.open_input_stream(self._join(MANIFEST)) as f:
                    raw = f.read()
            else:
                with open(self._join(MANIFEST), "rb") as f:
                    raw = f.read()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise OutputError(f"{self.out}: cannot read {MANIFEST} ({_first_line(e)})") from None
        try:
            m = json.loads(raw)
        except (ValueError, RecursionError):
            raise OutputError(f"{self.out}: {MANIFEST} is not JSON (not a kftools dataset, or damaged)") from None
        if not isinstance(m, dict) or m.get("format") != MANIFEST_FORMAT or not isinstance(m.get("journals"), dict):
            raise OutputError(f"{self.out}: {MANIFEST} is not a kftools manifest of format {MANIFEST_FORMAT}")
        return m

    def remove(self, rel: str) -> None:
        try:
            if self.remote:
                self.fs.delete_file(self._join(rel))
            else:
                os.unlink(self._join(rel))
        except FileNotFoundError:
            pass
        except OSError as e:
            raise OutputError(f"{self.out}: cannot remove {rel} ({_first_line(e)})") from None

    def put(self, local: str, rel: str) -> None:
        """Move a finished local file into the dataset whole (a rename, or one object upload)."""
        dest = self._join(rel)
        try:
            if self.remote:
                from pyarrow import fs

                fs.copy_files(local, dest, destination_filesystem=self.fs)
            else:
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                os.rename(local, dest)
        except OSError as e:
            raise OutputError(f"{self.out}: cannot write {rel} ({_first_line(e)})") from None

    def write_manifest(self, manifest: dict, scratch: str) -> None:
        data = json.dumps(manifest, indent=1, sort_keys=True).encode()
        tmp = os.path.join(scratch, MANIFEST)
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if self.remote:
            self.put(tmp, MANIFEST)  # an object appears whole
        else:
            os.replace(tmp, self._join(MANIFEST))


def _lock(out: str) -> int:
    """Hold ``out`` (a local dataset) for this run; the kernel lets go when the process ends, however it ends."""
    try:
        fd = os.open(os.path.join(out, LOCK), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    except OSError as e:
        raise OutputError(f"{out}: cannot open {LOCK} ({_first_line(e)})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise JournalLocked(f"{out}: another kftools export is writing this dataset; run again once it has "
                            "finished") from None
    return fd


def _refuse_inputs_inside(out: str, journals: list[str]) -> None:
    """A local dataset is never made in a folder that holds an input journal: replacing it would delete it."""
    root = os.path.realpath(out)
    for j in journals:
        real = os.path.realpath(j)
        if os.path.commonpath([root, real]) == root:
            raise UsageError(f"{out}: holds the input journal {j}; export to another folder")


def _refuse_foreign(target: _Target, existing: list[str]) -> None:
    """``--force`` replaces a dataset only if every file in it is one kftools wrote (by name: the manifest, the
    lock, a run's part files): what kftools cannot prove it wrote is never deleted."""
    out = target.out
    foreign = [rel for rel in existing if rel != MANIFEST and not _PART.match(rel)]
    if not target.remote:
        foreign += [rel + "/" for rel in target.folders() if not _FOLDER.match(rel)]
    if foreign:
        more = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
        raise OutputError(f"{out}: holds {foreign[0]}{more}, which kftools did not write; refusing to replace it "
                          "(remove what is not a kftools dataset, or export to another folder)")


def _tail(r: Reader, position) -> dict | None:
    """The CRC-32 of up to TAIL_BYTES committed bytes just before ``position`` (in its page, or the page before
    when it is a page's start): what proves, next run, that the journal still holds there what was exported."""
    page, end = int(position[0]), int(position[1])
    try:
        p = r.page(page)
        if end <= p.frame_start and page > r.page_indices()[0]:
            page -= 1
            p = r.page(page)
            end = p.cursor
        size = max(0, min(TAIL_BYTES, end - p.frame_start))
        if not size or end > len(p.mm):
            return None
        with memoryview(p.mm)[end - size:end] as window:
            crc = zlib.crc32(window)
    except (KftoolsError, OSError):
        return None
    return {"page": page, "end": end, "size": size, "crc32": crc}


def _check_resume(r: Reader, out: str, st: dict) -> None:
    """Refuse to resume a journal at the position recorded in the manifest unless it still holds, up to there,
    the frames exported: a journal cut below it (``recover --in-place``) and written again would otherwise have
    the frames written over that range skipped."""
    position = tuple(st["position"])
    end = tuple(r.end_position())
    where = f"page {position[0]} offset {position[1]}"
    if end < position:
        raise UsageError(f"{r.path}: ends at page {end[0]} offset {end[1]}, before {where} where its export to {out} "
                         "stopped (cut since?); export to a new dataset, or --force to replace it")
    tail = st.get("tail")
    if tail is None:
        return
    try:
        p = r.page(tail["page"])
        ok = p.cursor >= tail["end"] and tail["end"] <= len(p.mm)
        if ok:
            with memoryview(p.mm)[tail["end"] - tail["size"]:tail["end"]] as window:
                ok = zlib.crc32(window) == tail["crc32"]
    except (KftoolsError, OSError):
        ok = False
    if not ok:
        raise UsageError(f"{r.path}: the frames before {where}, where its export to {out} stopped, are not the ones "
                         "exported (cut and written again since?); export to a new dataset, or --force to replace it")


def _first_frame(reader: Reader) -> str | None:
    """The first frame's header (hex): tells whether a journal is the one exported before under its name."""
    for b in reader.batches(1):
        return b.headers[:1].tobytes().hex()
    return None


def _selection_diff(was, now: dict) -> str:
    """How a dataset's selection differs from this run's, in the CLI's words."""
    if not isinstance(was, dict):
        return "another selection"
    words = {"types": "--type", "symbols": "--symbol", "start": "--start", "end": "--end",
             "timestamps": "--timestamps"}

    def say(v) -> str:
        return "none" if v is None else ",".join(map(str, v)) if isinstance(v, list) else str(v)

    diff = [f"{opt} {say(was.get(k))} (this run: {say(now.get(k))})" for k, opt in words.items()
            if was.get(k) != now.get(k)]
    return "another selection: " + "; ".join(diff) if diff else "another selection"


def _check_local(out: str, force: bool, fresh: bool) -> None:
    if fresh:
        check_output(out, force=force, folder=True)
        return
    st = os.lstat(out)
    if stat.S_ISLNK(st.st_mode):
        raise OutputError(f"{out}: is a symbolic link; kftools never writes through links (give the real path)")
    if not os.access(out, os.W_OK):
        raise OutputError(f"{out}: folder is not writable")


def export_dataset(sources: str | list[str], out: str, opts: ExportOptions, *, registry: TypeRegistry) -> ExportResult:
    """Export journals (a folder, or a list of journals and folders) to the hive-partitioned dataset ``out``
    (a folder, ``s3://bucket/prefix`` or ``gs://bucket/prefix``); when ``out`` is already a kftools dataset,
    add only what is new since.

    Every file has the same schema (every type's columns, and ``journal``), so
    DuckDB, Polars, pandas and Spark read the folder as one table. Timestamps are
    "us" unless ``opts`` says otherwise (Spark needs "us"). ``opts.force``
    replaces the dataset instead of adding to it.
    """
    sources = [sources] if isinstance(sources, str) else list(sources)
    refs = resolve_journals(sources)  # a missing journal is the error to show, before any network call
    paths = [r.path for r in refs]
    lock = None
    if not is_remote(out):
        check_parquet_name(out, folder=True, journal=" ".join(sources))
        _refuse_inputs_inside(out, paths)
        if os.path.isfile(os.path.join(out, MANIFEST)) and not os.path.islink(out):
            lock = _lock(out)  # a kftools dataset (a new one appears whole, with one rename)
    try:
        return _export_dataset(sources, refs, out, opts, registry)
    finally:
        if lock is not None:
            os.close(lock)


def _export_dataset(sources: list[str], refs: list[JournalRef], out: str, opts: ExportOptions,
                    registry: TypeRegistry) -> ExportResult:
    from ..journal.filter import journal_types
    from ..selection import Selection

    types, symbols, start, end, force = opts.types, opts.symbols, opts.start, opts.end, opts.force
    timestamps = opts.timestamps or "us"
    target = _Target(out)
    manifest = None if force else target.read_manifest()
    existing = target.files()
    selection = json.loads(json.dumps({"types": types, "symbols": symbols, "start": start, "end": end,
                                       "timestamps": timestamps}))
    if force:
        _refuse_foreign(target, existing)
    elif manifest is None and existing:
        raise OutputError(f"{out}: is not empty and not a kftools dataset (use --force to replace it)")
    elif manifest is not None and manifest.get("selection") != selection:
        raise UsageError(f"{out}: was exported with {_selection_diff(manifest.get('selection'), selection)}; "
                         "export to a new dataset, or --force to replace it")
    if not target.remote:
        _check_local(out, force, fresh=manifest is None)
    readers: list[Reader] = []
    skipped: list[str] = []
    try:
        for ref in refs:
            try:
                readers.append(Reader(ref.path, registry=registry, name=ref.label))
            except NotAJournal as e:
                if not ref.in_folder:
                    raise
                skipped.append(str(e))  # a schema file or a note beside the journals
        if not readers:
            raise NotAJournal(f"{', '.join(sources)}: no journal in this folder ({'; '.join(skipped)})")
        # a Kungfu journal by its location, ours by file name
        names = [r.name if r.kungfu is not None else os.path.basename(r.path) for r in readers]
        if readers[0].kungfu is not None:
            registry = readers[0].registry
        if len(set(names)) < len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise UsageError(f"two journals are named {dup}: the dataset's journal column could not tell them apart")
        done: dict = dict((manifest or {}).get("journals", {}))
        starts = []
        for r, name in zip(readers, names, strict=True):
            st = done.get(name)
            if st is not None and st.get("first") is not None and st["first"] != _first_frame(r):
                raise UsageError(f"{r.path}: is not the journal exported to {out} before under this name (its first "
                                 "frame differs); export to a new dataset, or --force to replace it")
            if st is not None and st.get("first") is not None:
                _check_resume(r, out, st)
            starts.append(tuple(st["position"]) if st is not None and st.get("first") is not None else None)
        sels = [Selection.parse(r, registry, None, symbols, start, end) for r in readers]
        # a type name in each journal's own generation (Kungfu's are numbered differently)
        per = journal_types([r.registry for r in readers], types or None)
        ends = [r.end_position() for r in readers]
        if opts.total:
            opts.total(sum(journal_bytes(r, u) - (journal_bytes(r, b) if b else 0)
                      for r, b, u in zip(readers, starts, ends, strict=True)))
        cols = Columns(registry, None, journal=True, timestamps=timestamps, type_column=False,
                       more=[r.registry for r in readers])
        res = ExportResult(out, journals=[r.path for r in readers], skipped=skipped)
        # a run's files never take another's name: two runs of one process within a second differ by a count
        run = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"-{os.getpid()}-{next(_RUNS)}"
        scratch = tempfile.mkdtemp(prefix="kftools-export-") if target.remote else create_temporary_folder(out)
        sinks: dict[tuple[int, int], tuple[str, ParquetSink]] = {}
        writer = RowGroupWriter()  # one for every file: one row group written at a time
        rows_before = 0
        try:
            for i, (r, name, sel, begin, until) in enumerate(zip(readers, names, sels, starts, ends, strict=True)):
                filters = sel.filters() if per is None else dict(sel.filters(), types=per[i])

                def consume(b: FrameBatch, jname=name) -> None:
                    days = b.headers["gen_time"] // _DAY_NS
                    key = days.astype(np.int64) * 2**32 + b.headers["msg_type"].astype(np.int64)
                    # journals of Kungfu generations that number their types differently: a sink per registry too
                    gen = cols.registries.index(b.page.registry) if b.page.registry in cols.registries else 0
                    for k in np.unique(key).tolist():
                        entry = sinks.get((gen, k))
                        if entry is None:
                            day, t = divmod(k, 2**32)
                            date = np.datetime64(day, "D").astype(str)
                            stem = f"{run}-{gen}" if gen else run  # the same type name from two generations: two files
                            rel = f"date={date}/type={file_name(cols.registries[gen].name(t))}/part-{stem}.parquet"
                            local = os.path.join(scratch, *rel.split("/"))
                            os.makedirs(os.path.dirname(local), exist_ok=True)
                            entry = sinks[(gen, k)] = (rel, ParquetSink(local, cols, opts.compression, opts.row_group_size,
                                                                 {"source": None}, writer=writer))
                        part = b if len(key) and (key == k).all() else b.select(key == k)
                        entry[1].add(cols.convert(part, jname))

                def prog(rows, nbytes, base=rows_before):
                    if opts.progress:
                        opts.progress(base + rows, nbytes)

                sub = ExportResult(out)
                pump(r.batches(READ_BATCH, start=begin, until=until, **filters), consume, None, sub, prog)
                res.rows += sub.rows
                rows_before = res.rows
                position = until
                if r.damage is not None:
                    res.damage.append(r.damage)
                    position = (r.damage.page, r.damage.offset)  # where the valid frames end
                elif crashed(r):
                    res.crashed.append(r.path)
                prev = done.get(name, {})
                done[name] = {"first": _first_frame(r), "position": list(position), "tail": _tail(r, position),
                              "frames": prev.get("frames", 0) + sub.rows}
            for _rel, s in sinks.values():
                s.close()
            writer.close()
            res.files = len(sinks)
            new = sorted(rel for rel, _s in sinks.values())
            committed = set() if manifest is None else set(manifest.get("files", []))
            doc = {"format": MANIFEST_FORMAT, "selection": selection, "journals": done,
                   "files": sorted(committed | set(new)),
                   "runs": [*(manifest or {}).get("runs", []), {"run": run, "rows": res.rows, "files": len(new)}]}
            _commit(target, scratch, manifest, existing, committed, new, doc, force)
        finally:
            writer.close()
            remove_output(scratch)
        return res
    finally:
        for r in readers:
            r.close()


def _clear(out: str, ours: list[str]) -> None:
    """Empty a local dataset being replaced: its files (each proven ours before), its lock, then its folders,
    deepest first; a folder something else appeared in meanwhile stays, and the rename over it fails."""
    for rel in [*ours, LOCK]:
        try:
            os.unlink(os.path.join(out, *rel.split("/")))
        except FileNotFoundError:
            pass
        except OSError as e:
            raise OutputError(f"{out}: cannot remove {rel} ({_first_line(e)})") from None
    for d, _dirs, _names in sorted(os.walk(out), key=lambda w: -w[0].count(os.sep)):
        if d != out:
            try:
                os.rmdir(d)
            except OSError:
                pass


def _commit(target: _Target, scratch: str, manifest: dict | None, existing: list[str], committed: set[str],
            new: list[str], doc: dict, force: bool) -> None:
    """Make a finished run's files part of the dataset, the manifest last."""
    out = target.out
    if not target.remote and (manifest is None or not os.path.isdir(out)):
        # a new (or replaced) local dataset appears whole, with one rename
        with open(os.path.join(scratch, MANIFEST), "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
        open(os.path.join(scratch, LOCK), "wb").close()  # there from the start: a later run's lock writes nothing
        if force and os.path.isdir(out) and not os.path.islink(out):
            _clear(out, existing)
        publish_mode(scratch, folder=True)
        try:
            os.rename(scratch, out)  # (over an empty folder; never over a non-empty one)
        except OSError as e:
            raise OutputError(f"{out}: cannot make the dataset ({_first_line(e)}): another export made it meanwhile? "
                              "Nothing was written; run again to add to it") from None
        return
    # clear what an interrupted run left (files of ours the manifest does not list), then move the new files in
    for rel in existing:
        if _PART.match(rel) and (force or rel not in committed):
            target.remove(rel)
    for rel in new:
        target.put(os.path.join(scratch, *rel.split("/")), rel)
    target.write_manifest(doc, scratch)
