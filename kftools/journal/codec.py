"""The compressed-page codec: a sealed page in the zstd seekable format, and back into memory.

``<page>.zst`` holds, in order: a skippable zstd frame carrying the kftools
:data:`ARCHIVE_HEADER` (page index, original size, CRC-32 of the original bytes),
one zstd frame per ``chunk_size`` bytes of the page (each with its own content
checksum), and the seek table of zstd's seekable format. Any zstd decoder
(``zstd -d``) reads it; kftools maps it back as a page (decompressed into
anonymous memory) wherever a page file is missing. The commands that archive and
restore whole journals are :mod:`.archive`.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import stat
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

import numpy as np

from ..errors import CorruptJournal, KftoolsError, NotAJournal, needs_extra
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
    zstandard = _zstandard()

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
