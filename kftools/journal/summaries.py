"""Per-page summaries of sealed pages, kept beside the journal so no command has to walk them again.

A sealed page never changes, so what a walk learns about it (its frame count by type, its time range, that
every frame is valid) stays true. The writer appends a :data:`~.format.PAGE_SUMMARY` record to
``<journal>.summaries`` when it seals a page (after an fsync of the page: a record never outlives the bytes it
describes in a power loss); ``monitor`` and a writer resuming a journal add the records missing (pages a C++
writer or a killed writer sealed). Readers never write: they recompute a missing or stale summary in memory.

A record is trusted only for a final page (sealed, or with a next page) whose cursor, inode and status-change
time are those recorded (any write to the file changes its ctime), whose last frame ends at the cursor with
the recorded gen_time, and whose types' shortest payloads are at least the reader's layouts. Anything else is
rescanned by the one walk, which finds the damage the same way it always did.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..errors import KftoolsError
from .format import (
    FRAME_HEADER,
    KFTOOLS,
    PAGE_SUMMARY,
    SUMMARIES_SUFFIX,
    SUMMARY_MAGIC,
    SUMMARY_TYPE,
)
from .page import ArchivedPage, Page
from .positions import open_side_file, read_side_file
from .registry import TypeRegistry

#: frames per batch when a page is summarised: small arrays, and the mapping is released behind the scan
SUMMARY_BATCH = 1 << 16
#: a count of distinct types past which a page is not summarised (a record stays small)
MAX_TYPES = 4096


def summaries_path(journal: str | os.PathLike) -> str:
    return os.fspath(journal) + SUMMARIES_SUFFIX


@dataclass
class PageSummary:
    """What a walk of one final page found: its frames by type, time range, last frame; all valid."""

    index: int
    cursor: int
    frames: int = 0
    by_type: dict[int, int] = field(default_factory=dict)
    min_length: dict[int, int] = field(default_factory=dict)
    min_time: int | None = None
    max_time: int | None = None
    last_time: int | None = None
    last_frame: int = 64
    inode: int = 0
    ctime_ns: int = 0

    @property
    def frame_bytes(self) -> int:
        """Frame bytes (headers and payloads): a valid page's frames end exactly at its cursor."""
        return self.cursor - KFTOOLS.frame_start

    def pack(self) -> bytes:
        types = sorted(self.by_type)
        head = PAGE_SUMMARY.struct.pack(
            SUMMARY_MAGIC, self.index, self.cursor, len(types), self.frames, self.min_time or 0, self.max_time or 0,
            self.last_time or 0, self.last_frame, 0, self.inode, self.ctime_ns, time.time_ns())
        return head + b"".join(SUMMARY_TYPE.struct.pack(t, self.min_length[t], self.by_type[t]) for t in types)


def read_summaries(journal: str | os.PathLike) -> dict[int, PageSummary]:
    """The last record of each page; a torn or foreign tail (a killed append, lost blocks) ends the reading."""
    data = read_side_file(summaries_path(journal), "page summaries")
    out: dict[int, PageSummary] = {}
    at, head, entry = 0, PAGE_SUMMARY.size, SUMMARY_TYPE.size
    while at + head <= len(data):
        r = PAGE_SUMMARY.unpack(data, at)
        n = r["type_count"]
        if r["magic"] != SUMMARY_MAGIC or n > MAX_TYPES or at + head + n * entry > len(data):
            break
        s = PageSummary(r["page_index"], r["write_cursor"], r["frames"], last_frame=r["last_frame"],
                        inode=r["inode"], ctime_ns=r["ctime_ns"])
        if s.frames:
            s.min_time, s.max_time, s.last_time = r["min_gen_time"], r["max_gen_time"], r["last_gen_time"]
        for k in range(n):
            t = SUMMARY_TYPE.unpack(data, at + head + k * entry)
            s.by_type[t["msg_type"]] = t["frames"]
            s.min_length[t["msg_type"]] = t["min_length"]
        out[s.index] = s
        at += head + n * entry
    return out


def summarize_page(page: Page, registry: TypeRegistry) -> PageSummary | None:
    """Walk every frame of ``page`` up to its cursor (releasing the mapping behind the walk); its summary, or
    None when a frame is invalid or the header cannot be trusted (the walk reports that damage itself)."""
    from .pages import PageSet
    from .walk import scan_page

    if not page.fmt.native or page.header_problem():
        return None
    ident = _file_identity(page)
    cursor = page.cursor
    s = PageSummary(page.index, cursor, inode=ident[0], ctime_ns=ident[1])
    off = page.frame_start
    counts: np.ndarray = np.zeros(0, np.int64)
    mins: dict[int, int] = {}
    while off < cursor:
        offsets, headers, off, problem = scan_page(page, off, cursor, registry, SUMMARY_BATCH)
        if problem:
            return None
        n = len(offsets)
        if not n:
            continue
        assert headers is not None  # headers_wanted
        types, lengths, gens = headers["msg_type"], headers["length"], headers["gen_time"]
        c: np.ndarray = np.bincount(types)
        if len(c) > len(counts):
            c[: len(counts)] += counts
            counts = c
        else:
            counts[: len(c)] += c
        for t in np.flatnonzero(c).tolist():
            m = int(lengths[types == t].min())
            mins[t] = min(mins.get(t, m), m)
        lo, hi = int(gens.min()), int(gens.max())
        s.min_time = lo if s.min_time is None else min(s.min_time, lo)
        s.max_time = hi if s.max_time is None else max(s.max_time, hi)
        s.last_time, s.last_frame = int(gens[-1]), int(offsets[-1])
        s.frames += n
        PageSet.release(page, 0, off)
    if len(mins) > MAX_TYPES:
        return None
    s.by_type = {t: int(counts[t]) for t in sorted(mins)}
    s.min_length = mins
    return s


def _file_identity(page: Page) -> tuple[int, int]:
    """(inode, ctime ns) of the file mapped, (0, 0) for an archived page or a file replaced since."""
    if isinstance(page, ArchivedPage) or page.identity == (0, 0):
        return 0, 0
    try:
        st = os.stat(page.path)
    except OSError:
        return 0, 0
    if (st.st_dev, st.st_ino) != page.identity:
        return 0, 0
    return st.st_ino, st.st_ctime_ns


def _still_true(page: Page, s: PageSummary, registry: TypeRegistry) -> bool:
    """``s`` describes ``page`` as it is now, and a walk with ``registry`` would find its frames valid."""
    if s.index != page.index or s.cursor != page.cursor or not s.inode:
        return False
    if _file_identity(page) != (s.inode, s.ctime_ns):
        return False
    for t, m in s.min_length.items():
        mt = registry.get(t)
        if mt is not None and m < mt.layout.size:
            return False  # this reader's layout is longer: those frames are damage to it
    if not s.frames:
        return s.cursor == page.frame_start
    h = FRAME_HEADER.unpack(page.mm, s.last_frame)
    return (s.last_frame + FRAME_HEADER.size + h["length"] == s.cursor and h["gen_time"] == s.last_time
            and h["msg_type"] in s.by_type)


def append_summaries(journal: str | os.PathLike, summaries: list[PageSummary]) -> None:
    """Append records (one write, O_APPEND: records of two processes interleave whole)."""
    if not summaries:
        return
    fd = open_side_file(summaries_path(journal), os.O_WRONLY | os.O_APPEND | os.O_CREAT, "page summaries")
    try:
        os.write(fd, b"".join(s.pack() for s in summaries))
    finally:
        os.close(fd)


def summarize_sealed(path: str, index: int, registry: TypeRegistry) -> PageSummary | None:
    """The summary of sealed page ``index`` (file ``path``) once its bytes are on disk (fsync first: a record
    must never describe bytes a power loss can still take away); None if it cannot be had (damaged, not
    sealed): a reader recomputes it. Reads only: the writer appends the record itself."""
    from .page import open_page

    try:
        page = open_page(path, index, keep_fd=True)
    except (KftoolsError, OSError):
        return None
    try:
        if not page.sealed:
            return None
        os.fsync(page.fd)
        return summarize_page(page, registry)
    except (KftoolsError, OSError):
        return None
    finally:
        page.close()


def drop_summaries(journal: str | os.PathLike) -> None:
    """Forget every record (the journal was cut or created again); a reader recomputes what it needs."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(summaries_path(journal))


class Summaries:
    """The summaries of a journal's final pages, for one pass: the recorded ones that still hold, the others
    recomputed (and, with ``record``, appended: only a process that may write beside the journal)."""

    def __init__(self, pages, *, record: bool = False):
        self.pages = pages
        self.registry = pages.registry
        self.record = record
        self.recomputed: list[PageSummary] = []
        try:
            self.known = read_summaries(pages.path) if pages.fmt.native else {}
        except KftoolsError:
            self.known = {}  # a bad summaries file: every page is walked, as if there were none

    def final(self, page: Page) -> bool:
        return page.sealed or self.pages.exists(page.index + 1)

    def of(self, page: Page) -> PageSummary | None:
        """The summary of final page ``page``: recorded and still true, or recomputed; None when the page is not
        final, not a kftools page, or its frames are not all valid (the walk then finds why)."""
        if not page.fmt.native or not self.final(page) or page.header_problem():
            return None
        s = self.known.get(page.index)
        if s is not None and _still_true(page, s, self.registry):
            return s
        s = summarize_page(page, self.registry)
        if s is None:
            return None
        self.known[page.index] = s
        if s.inode:
            self.recomputed.append(s)
        return s

    def skipper(self, on_page: Callable[[PageSummary], None] | None = None) -> Callable[[Page], bool]:
        """A ``skip`` for :meth:`~.walk.Walk.snapshot`: True (and ``on_page`` told) for a page its summary
        covers."""

        def skip(page: Page) -> bool:
            s = self.of(page)
            if s is None:
                return False
            if on_page is not None:
                on_page(s)
            return True

        return skip

    def save(self) -> None:
        """Append the recomputed records (``record`` only; an unwritable folder is no error: readers recompute)."""
        if self.record and self.recomputed:
            with contextlib.suppress(KftoolsError, OSError):
                for s in self.recomputed:  # on disk before a record says what they hold
                    fd = os.open(self.pages.path_of(s.index), os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                append_summaries(self.pages.path, self.recomputed)
            self.recomputed = []


__all__ = ["PageSummary", "Summaries", "append_summaries", "drop_summaries", "read_summaries", "summarize_page",
           "summarize_sealed", "summaries_path"]
