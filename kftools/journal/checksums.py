"""Checksums of sealed pages, kept beside the journal where every reader finds them.

The page format has no checksum, and engines must keep reading it unchanged,
so the CRC-32 of each sealed page is appended to ``<journal>.checksums`` (an
archived page carries its own in the archive header). They are computed off the
writer's hot path, by ``kftools monitor`` and ``kftools archive``; ``verify``
checks them and names the page whose bytes changed since it was sealed.

The last page is not sealed: a writer may resume it. Once no writer holds it,
a *prefix* record (KFP1) covers its frames so far, [64, cursor): committed
frames never change, so the record stays true when a writer appends more (the
header, which changes then, is left out), and a later record supersedes it.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
import zlib

from ..errors import KftoolsError
from .codec import crc32_of
from .format import (
    CHECKSUM_MAGIC,
    CHECKSUM_PREFIX_MAGIC,
    CHECKSUM_RECORD,
    MAGIC,
    PAGE_HEADER_SIZE,
    WAITERS_OFFSET,
    PageFlag,
    WriterState,
    checksums_path,
    page_path,
)
from .outputs import create_temporary
from .page import ArchivedPage, Page, open_page
from .pages import journal_pages
from .positions import open_side_file, read_side_file

_WAITERS_END = WAITERS_OFFSET + 4


def page_crc(mm, size: int) -> int:
    """CRC-32 of a page's bytes [0, size) (KFC1) with the header's ``waiters`` read as 0: a follower parked on
    the page while its checksum is taken changes that count, never the page (journals from before the field
    had zero there, so their records still match)."""
    if size < _WAITERS_END:
        return crc32_of(mm, size)
    crc = zlib.crc32(bytes(4), crc32_of(mm, WAITERS_OFFSET))
    with memoryview(mm) as mv, mv[_WAITERS_END:size] as rest:
        return zlib.crc32(rest, crc)


def read_checksums(journal: str | os.PathLike) -> dict[int, dict]:
    """The last record of each page (records are appended; a later one supersedes)."""
    data = read_side_file(checksums_path(journal), "page checksums")
    out: dict[int, dict] = {}
    size = CHECKSUM_RECORD.size
    for at in range(0, len(data) - size + 1, size):  # a torn last record (killed mid-append) is ignored
        rec = CHECKSUM_RECORD.unpack(data, at)
        if rec["magic"] in (CHECKSUM_MAGIC, CHECKSUM_PREFIX_MAGIC):
            out[rec["page_index"]] = rec
    return out


def drop_checksums(journal: str | os.PathLike, from_page: int) -> int:
    """Forget the records of pages ``from_page`` on (cut or rewritten), keeping every other page's; returns how
    many records were kept. The file is replaced whole (a temporary renamed over it)."""
    path = checksums_path(journal)
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return 0  # not ours to rewrite; verify says what it is
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return 0
    except OSError as e:
        raise KftoolsError(f"{path}: cannot read: {e.strerror}") from None
    size = CHECKSUM_RECORD.size
    kept = [data[at:at + size] for at in range(0, len(data) - size + 1, size)
            if CHECKSUM_RECORD.unpack(data, at)["page_index"] < from_page]
    if not kept:
        os.unlink(path)
        return 0
    fd, tmp = create_temporary(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(b"".join(kept))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return len(kept)


def is_final(page: Page, has_successor: bool) -> bool:
    """No writer will add to this page: SEALED, or (an engine that sets no flags) a later page exists."""
    return bool(page.flags & PageFlag.SEALED) or (page.magic != MAGIC and has_successor)


def record_checksums(journal: str | os.PathLike) -> int:
    """Append a record for each final page that has none yet, and a prefix record of the last page when no
    writer holds it and its frames changed since the last record; returns how many were recorded."""
    journal = os.fspath(journal)
    known = read_checksums(journal)
    pages = journal_pages(journal)
    new = []
    if pages:
        last = _prefix_record(journal, len(pages) - 1, known.get(len(pages) - 1))
        if last is not None:
            new.append(last)
    for i in range(len(pages) - 1):  # the last page is the writer's
        if (i in known and known[i]["magic"] == CHECKSUM_MAGIC) or not os.path.exists(page_path(journal, i)):
            continue  # recorded already, or archived (the archive holds its own checksum)
        try:
            page = open_page(page_path(journal, i), i)
        except KftoolsError:
            continue  # damaged or in the making: verify reports it
        try:
            if not is_final(page, True) or page.header_problem():
                continue
            cursor = page.cursor
            crc = page_crc(page.mm, cursor)
            new.append(CHECKSUM_RECORD.struct.pack(CHECKSUM_MAGIC, i, cursor, crc, page.file_size, time.time_ns()))
        finally:
            page.close()
    if new:
        # O_APPEND: records from two processes (monitor and archive) interleave whole, never torn
        fd = open_side_file(checksums_path(journal), os.O_WRONLY | os.O_APPEND | os.O_CREAT, "page checksums")
        try:
            os.write(fd, b"".join(new))
        finally:
            os.close(fd)
    return len(new)


def _prefix_record(journal: str, index: int, known: dict | None) -> bytes | None:
    """A KFP1 record of the last page's frames, if no writer holds the journal and they are not recorded yet."""
    from .pages import PageSet

    path = page_path(journal, index)
    if not os.path.exists(path):
        return None
    pages = PageSet(journal)
    try:
        if not pages.fmt.native or pages.writer_state()[0] == WriterState.ALIVE:
            return None
        page = open_page(path, index)
    except (KftoolsError, OSError):
        return None  # damaged or in the making: verify reports it
    finally:
        pages.close()
    try:
        cursor = page.cursor
        if page.header_problem() or cursor <= PAGE_HEADER_SIZE:
            return None
        if known is not None and (known["magic"] == CHECKSUM_MAGIC or known["write_cursor"] == cursor):
            return None  # sealed and recorded, or these frames are recorded already
        with memoryview(page.mm)[PAGE_HEADER_SIZE:cursor] as frames:
            crc = crc32_of(frames, cursor - PAGE_HEADER_SIZE)
        return CHECKSUM_RECORD.struct.pack(CHECKSUM_PREFIX_MAGIC, index, cursor, crc, page.file_size, time.time_ns())
    finally:
        page.close()


def checksum_problem(page: Page, known: dict[int, dict]) -> str | None:
    """Why this page's bytes are not what was sealed (archive or recorded checksum), or None."""
    if isinstance(page, ArchivedPage):
        info = page.archive
        if crc32_of(page.mm, info.data_size) != info.crc32:
            return f"CRC-32 of the archived page differs from the one recorded when it was archived ({info.path})"
        return None
    rec = known.get(page.index)
    if rec is None:
        return None
    if rec["magic"] == CHECKSUM_PREFIX_MAGIC:
        cursor = rec["write_cursor"]
        if page.cursor < cursor:
            return (f"write cursor {page.cursor} is below {cursor} recorded when no writer held the page; "
                    "committed frames are gone")
        with memoryview(page.mm)[PAGE_HEADER_SIZE:cursor] as frames:
            crc = crc32_of(frames, cursor - PAGE_HEADER_SIZE)
        if crc != rec["crc32"]:
            return (f"checksum mismatch: frames committed before offset {cursor} changed since they were recorded "
                    f"(CRC-32 {crc:#010x}, recorded {rec['crc32']:#010x})")
        return None
    if page.cursor != rec["write_cursor"]:
        return (f"write cursor {page.cursor} differs from {rec['write_cursor']} recorded when the page was sealed; "
                "bytes changed since")
    crc = page_crc(page.mm, min(rec["write_cursor"], len(page.mm)))
    if crc != rec["crc32"]:
        return f"checksum mismatch: bytes changed since the page was sealed (CRC-32 {crc:#010x}, recorded {rec['crc32']:#010x})"
    return None
