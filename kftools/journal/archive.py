"""Archived pages: sealed pages compressed into the zstd seekable format, read back transparently.

``<page>.zst`` holds, in order: a skippable zstd frame carrying the kftools
:data:`ARCHIVE_HEADER` (page index, original size, CRC-32 of the original bytes),
one zstd frame per ``chunk_size`` bytes of the page (each with its own content
checksum), and the seek table of zstd's seekable format. Any zstd decoder
(``zstd -d``) reads it; kftools maps it back as a page (decompressed into
anonymous memory) wherever a page file is missing.

Archiving never loses a byte: the archive is written under a temporary name,
synced, read back and compared with the page, renamed into place and the
directory synced, and only then is the page file removed. A kill at any
instant leaves the page, the archive, or both (identical), never neither.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
import stat
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

import numpy as np

from ..errors import CorruptJournal, JournalLocked, KftoolsError, NotAJournal, UsageError, needs_extra
from .format import (
    ARCHIVE_HEADER,
    ARCHIVE_MAGIC,
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    PAGE_HEADER,
    SEEK_ENTRY,
    SEEK_FOOTER,
    SKIPPABLE_HEADER,
    ZSTD_SEEKABLE_FOOTER_MAGIC,
    ZSTD_SEEKTABLE_MAGIC,
    ZSTD_SKIPPABLE_MAGIC,
)
from .page import ARCHIVE_SUFFIX

PART_SUFFIX = ".part"  # temporaries: never `.tmp`, which writers sweep as their own
DEFAULT_CHUNK = 1 << 20
DEFAULT_LEVEL = 3
_CRC_STEP = 64 << 20


def _zstandard():
    """The zstandard module: only archiving and reading archived pages need it (``kftools[archive]``), so it is
    imported where they start, never at a command's start."""
    try:
        import zstandard
    except ImportError:
        raise needs_extra("archiving pages and reading archived ones", "archive") from None
    return zstandard

def archive_path(page_file: str) -> str:
    return page_file + ARCHIVE_SUFFIX


def crc32_of(buf, size: int) -> int:
    """CRC-32 of ``buf[:size]`` without copying it."""
    crc = 0
    with memoryview(buf) as mv:
        for lo in range(0, size, _CRC_STEP):
            with mv[lo : min(size, lo + _CRC_STEP)] as part:
                crc = zlib.crc32(part, crc)
    return crc


@dataclass(frozen=True)
class ArchiveInfo:
    """The kftools header of an archive, and where its frames are."""

    path: str
    page_index: int
    file_size: int
    data_size: int
    crc32: int
    write_cursor: int
    chunk_size: int
    frames: tuple[tuple[int, int, int], ...]  # (offset in the archive, compressed size, decompressed size)
    archive_size: int


def data_extent(mm, cursor: int) -> int:
    """Bytes of the page worth storing: up to the cursor, or further if anything non-zero lies beyond it."""
    size = len(mm)
    cursor = min(cursor, size)
    tail = np.frombuffer(mm, dtype=np.uint8, offset=cursor)
    if not tail.any():
        return cursor
    return cursor + int(np.flatnonzero(tail)[-1]) + 1


def write_archive(page_mm, page_index: int, out_fd: int, *, level: int = DEFAULT_LEVEL,
                  chunk_size: int = DEFAULT_CHUNK) -> ArchiveInfo:
    """Compress a page (its mapping) into ``out_fd`` in the seekable form; returns what was written."""
    header = PAGE_HEADER.unpack(page_mm, 0)
    file_size = len(page_mm)
    data_size = data_extent(page_mm, header["write_cursor"])
    crc = crc32_of(page_mm, data_size)
    ah = ARCHIVE_HEADER.struct.pack(ARCHIVE_MAGIC, 1, page_index, chunk_size, file_size, data_size, crc,
                                    header["write_cursor"], b"")
    out = [SKIPPABLE_HEADER.struct.pack(ZSTD_SKIPPABLE_MAGIC, len(ah)), ah]
    zstandard = _zstandard()

    cctx = zstandard.ZstdCompressor(level=level, write_checksum=True, write_content_size=True)
    entries = []
    with memoryview(page_mm) as mv:
        for lo in range(0, data_size, chunk_size):
            with mv[lo : min(data_size, lo + chunk_size)] as raw:
                frame = cctx.compress(raw)
                out.append(frame)
                entries.append(SEEK_ENTRY.struct.pack(len(frame), len(raw)))
    table = b"".join(entries) + SEEK_FOOTER.struct.pack(len(entries), 0, ZSTD_SEEKABLE_FOOTER_MAGIC)
    out += [SKIPPABLE_HEADER.struct.pack(ZSTD_SEEKTABLE_MAGIC, len(table)), table]
    blob = b"".join(out)
    view = memoryview(blob)
    while view:
        view = view[os.write(out_fd, view):]
    return read_archive_info_bytes(blob, "<new archive>")


def read_archive_info_bytes(data: bytes | mmap.mmap, path: str) -> ArchiveInfo:
    """Parse and bound-check an archive's header and seek table."""
    def bad(why: str) -> CorruptJournal:
        return CorruptJournal(f"{path}: not a valid kftools page archive: {why}")

    hs = SKIPPABLE_HEADER.size
    if len(data) < hs + ARCHIVE_HEADER.size + SEEK_FOOTER.size + hs:
        raise bad(f"{len(data)} bytes is too short")
    sk = SKIPPABLE_HEADER.unpack(data, 0)
    if sk["magic"] != ZSTD_SKIPPABLE_MAGIC or sk["size"] != ARCHIVE_HEADER.size:
        raise bad("no kftools header frame at offset 0")
    ah = ARCHIVE_HEADER.unpack(data, hs)
    if ah["magic"] != ARCHIVE_MAGIC or ah["version"] != 1:
        raise bad(f"header magic {ah['magic']:#010x} version {ah['version']}")
    foot = SEEK_FOOTER.unpack(data, len(data) - SEEK_FOOTER.size)
    if foot["magic"] != ZSTD_SEEKABLE_FOOTER_MAGIC or foot["descriptor"] != 0:
        raise bad("no seek table footer at the end (truncated?)")
    # every size is bounded by what a page can be before anything is allocated from it: one flipped bit in
    # file_size would otherwise ask for terabytes (and every command would die of it)
    file_size, data_size, chunk = ah["file_size"], ah["data_size"], ah["chunk_size"]
    if not PAGE_HEADER.size <= file_size <= MAX_PAGE_SIZE:
        raise bad(f"page size {file_size:,} is not one a page can have ({PAGE_HEADER.size} to {MAX_PAGE_SIZE:,})")
    if data_size > file_size or ah["write_cursor"] > file_size:
        raise bad(f"stored size {data_size:,} or write cursor {ah['write_cursor']:,} is past the page size "
                  f"{file_size:,}")
    if not 1 <= chunk <= MAX_PAGE_SIZE:
        raise bad(f"chunk size {chunk:,} is not one a page can have")
    n = foot["frames"]
    if n != -(-data_size // chunk):
        raise bad(f"{n:,} frames of {chunk:,} bytes cannot hold the {data_size:,} bytes stored")
    table_size = n * SEEK_ENTRY.size + SEEK_FOOTER.size
    table_at = len(data) - table_size
    if table_at - hs < hs + ARCHIVE_HEADER.size:
        raise bad(f"seek table of {n} frames does not fit")
    sk = SKIPPABLE_HEADER.unpack(data, table_at - hs)
    if sk["magic"] != ZSTD_SEEKTABLE_MAGIC or sk["size"] != table_size:
        raise bad("seek table header mismatch")
    frames = []
    at = hs + ARCHIVE_HEADER.size
    total = 0
    for i in range(n):
        e = SEEK_ENTRY.unpack(data, table_at + i * SEEK_ENTRY.size)
        if e["decompressed_size"] != min(chunk, data_size - i * chunk):
            raise bad(f"frame {i} holds {e['decompressed_size']:,} bytes, not a chunk's")
        frames.append((at, e["compressed_size"], e["decompressed_size"]))
        at += e["compressed_size"]
        total += e["decompressed_size"]
    if at != table_at - hs or total != data_size:
        raise bad("seek table does not cover the frames")
    return ArchiveInfo(path, ah["page_index"], ah["file_size"], ah["data_size"], ah["crc32"], ah["write_cursor"],
                       ah["chunk_size"], tuple(frames), len(data))


def _map_file(path: str) -> mmap.mmap | bytes:
    """The archive's bytes, mapped read-only (reading them into memory cost a third of decompressing them)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise NotAJournal(f"{path}: cannot open: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotAJournal(f"{path}: not a regular file")
        if st.st_size == 0:
            return b""  # (an empty file cannot be mapped) too short: the header check says so
        return mmap.mmap(fd, st.st_size, access=mmap.ACCESS_READ)
    finally:
        os.close(fd)


def read_archive_info(path: str) -> ArchiveInfo:
    data = _map_file(path)
    try:
        return read_archive_info_bytes(data, path)
    finally:
        if isinstance(data, mmap.mmap):
            data.close()


def decompress_archive(path: str, *, check_crc: bool = False) -> tuple[mmap.mmap, ArchiveInfo]:
    """The original page in anonymous memory (zeros after ``data_size``, as in the sparse page file)."""
    _zstandard()  # said before any view of the page exists (a missing extra is one line, nothing held)
    data = _map_file(path)
    try:
        info = read_archive_info_bytes(data, path)
        try:
            mm = _page_memory(info.file_size, info.data_size)
        except (OSError, MemoryError) as e:
            raise KftoolsError(f"{path}: cannot allocate the {info.file_size:,} bytes of the page "
                               f"({getattr(e, 'strerror', None) or type(e).__name__})") from None
    except BaseException:
        if isinstance(data, mmap.mmap):
            data.close()
        raise
    try:
        with memoryview(data) as src, memoryview(mm) as dst:
            jobs, pos = [], 0
            for at, csize, dsize in info.frames:
                jobs.append((src[at : at + csize], dst[pos : pos + dsize], f"{path}: archived frame at {at}"))
                pos += dsize
            # the frames are independent (that is what the seek table is for), and zstd lets go of the
            # GIL while it works: decompress them on every core, each straight into its place
            if len(jobs) < 2:
                problems = list(map(_decompress_into, jobs))
            else:
                running = [_pool().submit(_decompress_into, job) for job in jobs]
                try:
                    problems = [f.result() for f in running]
                finally:
                    wait(running)  # interrupted or not, no thread may still write into the views
            for s, d, _ in jobs:
                s.release()
                d.release()
        problem = next((p for p in problems if p), None)
        if problem:
            raise CorruptJournal(problem)
        if check_crc and crc32_of(mm, info.data_size) != info.crc32:
            raise CorruptJournal(f"{path}: CRC-32 of the restored bytes differs from the archived page's")
    except BaseException:
        mm.close()
        raise
    finally:
        if isinstance(data, mmap.mmap):
            data.close()
    return mm, info


def _page_memory(size: int, data_size: int) -> mmap.mmap:
    """Memory for a decompressed page: zeros from ``data_size`` on; the bytes before it are about to be written."""
    for i, spare in enumerate(_SPARES):
        if len(spare) == size:
            del _SPARES[i]
            with memoryview(spare)[data_size:] as tail:
                np.frombuffer(tail, dtype=np.uint8)[:] = 0
            return spare
    # private, not mmap's default shared anonymous memory: that is shmem, which takes no huge pages here
    # and faults slower
    mm = mmap.mmap(-1, max(size, 1), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    with contextlib.suppress(AttributeError, OSError):
        # huge pages: faulting in a page's worth of 4 KiB pages one by one cost as much as decompressing it
        mm.madvise(mmap.MADV_HUGEPAGE)
    return mm


#: memory of archived pages no one can read any more, kept for the next archived page: faulting fresh memory in
#: (zeroing it, and compacting for huge pages) took from 10% to 100% of the time decompressing into it took
_SPARES: list[mmap.mmap] = []
MAX_SPARES = 2
#: what a process keeps once its readers are closed: two default-sized pages (larger pages are not kept)
MAX_SPARE_BYTES = 2 * DEFAULT_PAGE_SIZE


def keep_spare(page) -> bool:
    """Keep an archived page's memory for the next archived page, if nothing but ``page`` refers to it.

    For a page no one else refers to: its memory is taken from it. Every page,
    frame, batch, numpy array or memoryview that can read the memory holds a
    reference to the mapping, so a count of two (``mm`` and getrefcount's
    argument) proves none is left.
    """
    mm = page.mm
    del page.mm
    if (sys.getrefcount(mm) != 2 or len(_SPARES) >= MAX_SPARES
            or len(mm) + sum(len(m) for m in _SPARES) > MAX_SPARE_BYTES):
        return False
    _SPARES.append(mm)
    return True


def _decompress_into(job: tuple[memoryview, memoryview, str]) -> str | None:
    """Decompress one zstd frame into exactly ``dst``; what is wrong with it, or None.

    Problems are returned, not raised: a traceback would keep the decoder, and
    with it the views of the page, alive after the call.
    """
    import zstandard  # decompress_archive checked it is there (kftools[archive])

    src, dst, where = job
    try:
        with zstandard.ZstdDecompressor().stream_reader(src, read_size=max(len(src), 1)) as reader:
            got = 0
            while got < len(dst):
                with dst[got:] as rest:
                    n = reader.readinto(rest)
                if not n:
                    break
                got += n
            # reading past the end finishes the frame, which checks its content checksum
            if got != len(dst) or reader.read(1):
                return f"{where} does not hold the {len(dst):,} bytes its seek table says"
    except zstandard.ZstdError as e:
        return f"{where} does not decompress: {e}"
    return None


_POOL: tuple[int, ThreadPoolExecutor] | None = None


def _pool() -> ThreadPoolExecutor:
    """Threads for decompressing, made again in a forked child (whose copy has no threads behind it)."""
    global _POOL
    if _POOL is None or _POOL[0] != os.getpid():
        _POOL = (os.getpid(), ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="kftools-unzstd"))
    return _POOL[1]


def fsync_dir(path: str) -> None:
    fd = os.open(os.path.dirname(os.path.abspath(path)) or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_part(path: str) -> tuple[str, int]:
    part = path + PART_SUFFIX
    try:
        os.unlink(part)  # a kill -9'd run's leftover: the name is ours (the page name + .zst.part / .part)
    except FileNotFoundError:
        pass
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    return part, fd


def archive_page(page_file: str, page_index: int, *, level: int = DEFAULT_LEVEL,
                 chunk_size: int = DEFAULT_CHUNK) -> ArchiveInfo:
    """Archive one sealed page file and remove it once the archive is durable and verified."""
    target = archive_path(page_file)
    fd = os.open(page_file, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        page_mm = mmap.mmap(fd, size, access=mmap.ACCESS_READ)
    finally:
        os.close(fd)
    try:
        if os.path.exists(target):
            info = _verify_against(target, page_mm)  # an earlier run stopped after its rename
        else:
            part, out = _create_part(target)
            try:
                write_archive(page_mm, page_index, out, level=level, chunk_size=chunk_size)
                os.fsync(out)
            finally:
                os.close(out)
            _verify_against(part, page_mm)
            os.rename(part, target)
            fsync_dir(target)
            info = read_archive_info(target)
    finally:
        page_mm.close()
    os.unlink(page_file)
    fsync_dir(page_file)
    return info


def _verify_against(archive: str, page_mm) -> ArchiveInfo:
    mm, info = decompress_archive(archive)
    try:
        n = info.file_size
        same = n == len(page_mm) and np.array_equal(np.frombuffer(mm, np.uint8, n), np.frombuffer(page_mm, np.uint8, n))
        if not same:
            raise KftoolsError(f"{archive}: does not hold the same bytes as the page; left both in place")
        if crc32_of(mm, info.data_size) != info.crc32:
            raise KftoolsError(f"{archive}: CRC-32 mismatch right after writing it; left the page in place")
    finally:
        mm.close()
    return info


def unarchive_page(page_file: str) -> ArchiveInfo:
    """Restore ``page_file`` byte-identical from its archive, then remove the archive."""
    source = archive_path(page_file)
    mm, info = decompress_archive(source, check_crc=True)
    try:
        if os.path.exists(page_file):
            _verify_file(source, page_file)  # an earlier run stopped after its rename
        else:
            part, out = _create_part(page_file)
            try:
                os.ftruncate(out, info.file_size)  # sparse beyond the data, as the writer made it
                off = 0
                with memoryview(mm) as mv:
                    while off < info.data_size:
                        with mv[off : info.data_size] as rest:
                            off += os.pwrite(out, rest, off)
                os.fsync(out)
            finally:
                os.close(out)
            _verify_file(source, part)
            os.rename(part, page_file)
            fsync_dir(page_file)
    finally:
        mm.close()
    os.unlink(source)
    fsync_dir(source)
    return info


def _verify_file(archive: str, page_file: str) -> None:
    fd = os.open(page_file, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        mm = mmap.mmap(fd, os.fstat(fd).st_size, access=mmap.ACCESS_READ)
    finally:
        os.close(fd)
    try:
        _verify_against(archive, mm)
    finally:
        mm.close()


@dataclass
class ArchiveResult:
    """What ``kftools archive`` / ``unarchive`` did: pages done, bytes before and after, pages left alone and why."""

    pages: list[ArchiveInfo]
    bytes_before: int = 0
    bytes_after: int = 0
    skipped: list[str] | None = None

    @property
    def ratio(self) -> float:
        return self.bytes_before / self.bytes_after if self.bytes_after else 0.0

    def to_dict(self) -> dict:
        return {"pages": [i.path for i in self.pages], "bytes_before": self.bytes_before,
                "bytes_after": self.bytes_after, "ratio": round(self.ratio, 3), "skipped": self.skipped or []}


def archivable_pages(journal: str, older_than: float | None = None, now: float | None = None) -> tuple[list[int], list[str]]:
    """Pages of ``journal`` that may be archived, and why the others may not.

    The first page stays (it carries the writer lock and is the path engines open),
    the last stays (the writer's), and a page must be final: SEALED, or followed by
    another page in a journal whose engine sets no flags.
    """
    from .checksums import is_final
    from .format import page_path
    from .page import open_page
    from .pages import journal_pages

    now = time.time() if now is None else now
    pages = journal_pages(journal)
    todo, skipped = [], []
    for i in range(1, len(pages) - 1):
        p = page_path(journal, i)
        if not os.path.exists(p):
            continue  # archived already
        try:
            page = open_page(p, i)
        except KftoolsError as e:
            skipped.append(f"{p}: {e}")
            continue
        try:
            if not is_final(page, True):
                skipped.append(f"{p}: not sealed")
                continue
        finally:
            page.close()
        if older_than is not None and now - os.stat(p).st_mtime < older_than:
            continue
        todo.append(i)
    return todo, skipped


def archive(
    journals: list[str], *, older_than: float | None = None, level: int = DEFAULT_LEVEL,
    progress: Callable[[str], None] | None = None,
) -> ArchiveResult:
    """Archive the final pages of each journal (see :func:`archivable_pages`); record the others' checksums."""
    from .checksums import record_checksums
    from .format import page_path
    from .page import open_page

    if not 1 <= level <= 22:
        raise UsageError(f"--level must be between 1 and 22, not {level}")
    res = ArchiveResult([], skipped=[])
    for journal in journals:
        open_page(journal, 0).close()  # a bad first page is an error, not a silent skip
        with _one_run(journal):
            todo, skipped = archivable_pages(journal, older_than)
            if todo or skipped:  # a journal with no sealed page to archive gets nothing written beside it
                record_checksums(journal)
            res.skipped.extend(skipped)  # type: ignore[union-attr]
            for i in todo:
                p = page_path(journal, i)
                if progress:
                    progress(p)
                before = os.stat(p).st_size
                info = archive_page(p, i, level=level)
                res.pages.append(info)
                res.bytes_before += before
                res.bytes_after += info.archive_size
    return res


def unarchive(journals: list[str], *, progress: Callable[[str], None] | None = None) -> ArchiveResult:
    """Restore every archived page of each journal, byte-identical."""
    from .format import page_path
    from .page import open_page
    from .pages import journal_pages

    res = ArchiveResult([], skipped=[])
    for journal in journals:
        open_page(journal, 0).close()
        with _one_run(journal):
            for i in range(1, len(journal_pages(journal))):
                p = page_path(journal, i)
                if not os.path.exists(archive_path(p)):
                    continue
                if progress:
                    progress(p)
                info = unarchive_page(p)
                res.pages.append(info)
                res.bytes_before += info.archive_size
                res.bytes_after += info.file_size
    return res


@contextlib.contextmanager
def _one_run(journal: str) -> Iterator[None]:
    """Hold ``journal`` for one archive or unarchive run, and remove what a killed run left.

    A BSD ``flock`` on the first page: Linux keeps it apart from the writer's OFD
    lock, so writers and readers never notice it, and the kernel drops it when
    the run dies. Holding it proves that the ``.part`` temporaries beside the
    journal's pages belong to a run that is gone: they are ours to remove.
    """
    from .format import page_path
    from .pages import journal_pages

    fd = os.open(journal, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise JournalLocked(f"{journal}: another archive or unarchive run is working on this journal") from None
        for i in range(len(journal_pages(journal))):
            p = page_path(journal, i)
            for leftover in (p + PART_SUFFIX, archive_path(p) + PART_SUFFIX):
                if os.path.lexists(leftover):
                    os.unlink(leftover)
        yield
    finally:
        os.close(fd)  # releases the flock
