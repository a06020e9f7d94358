"""Archive and unarchive whole journals: their sealed pages compressed into ``<page>.zst`` and restored.

The page codec (the archive's layout, compressing, decompressing) is :mod:`.codec`; readers read archived
pages through it transparently.

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
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from ..errors import JournalLocked, KftoolsError, UsageError
from .checksums import is_final, record_checksums
from .codec import (
    DEFAULT_CHUNK,
    DEFAULT_LEVEL,
    ArchiveInfo,
    crc32_of,
    decompress_archive,
    read_archive_info,
    write_archive,
)
from .format import PART_SUFFIX, archive_path, page_path
from .page import open_page
from .pages import journal_pages


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
