"""Structural validation (verify) and salvage of the valid prefix (recover)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import KftoolsError, NotAJournal, OutputError, UsageError
from .checksums import checksum_problem, drop_checksums, read_checksums
from .format import FLAGS_OFFSET, MAGIC, PAGE_HEADER, PAGE_HEADER_SIZE, PID_OFFSET, PageFlag, archive_path, page_path
from .lock import try_lock
from .outputs import check_journal_output, create_temporary, remove_journal
from .page import U32, ArchivedPage, Page, open_page
from .reader import Reader
from .registry import TypeRegistry
from .summaries import drop_summaries
from .walk import Damage, scan_page, validate_page


@dataclass
class PageReport:
    index: int
    path: str
    capacity: int
    cursor: int
    frames: int
    flags: str


@dataclass
class VerifyReport:
    """What ``kftools verify`` found."""

    path: str
    pages: list[PageReport] = field(default_factory=list)
    frames: int = 0
    first_time: int | None = None
    last_time: int | None = None
    damage: Damage | None = None

    @property
    def clean(self) -> bool:
        return self.damage is None

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "clean": self.clean,
            "pages": len(self.pages),
            "frames": self.frames,
            "first_gen_time": self.first_time,
            "last_gen_time": self.last_time,
            "damage": None if self.damage is None else {
                "page": self.damage.page, "path": self.damage.path, "offset": self.damage.offset,
                "reason": self.damage.reason,
            },
            "page_list": [p.__dict__ for p in self.pages],
        }


def verify(path: str | os.PathLike, registry: TypeRegistry | None = None, *, quick: bool = False,
           progress: Callable[[int, int | None], None] | None = None) -> VerifyReport:
    """Validate every page and frame; read-only.

    ``quick``: a sealed page whose summary still holds (see :mod:`.summaries`) is trusted without walking it or
    checking its checksum; the other pages are checked in full. ``progress`` is called with the frames walked.
    """
    from .pages import PageSet
    from .summaries import PageSummary, Summaries

    with Reader(path, registry=registry) as r:
        rep = VerifyReport(r.name)
        counts: dict[int, int] = {}
        trusted: set[int] = set()

        def times(lo: int, hi: int) -> None:
            rep.first_time = lo if rep.first_time is None else min(rep.first_time, lo)
            rep.last_time = hi if rep.last_time is None else max(rep.last_time, hi)

        def summarised(s: PageSummary) -> None:
            trusted.add(s.index)
            counts[s.index] = s.frames
            rep.frames += s.frames
            if s.frames:
                times(s.min_time, s.max_time)  # type: ignore[arg-type]

        skip = Summaries(r.pages).skipper(summarised) if quick else None
        for b in r.batches(batch_size=1 << 16, skip=skip):
            counts[b.page.index] = counts.get(b.page.index, 0) + len(b)
            g = b.headers["gen_time"]
            times(int(g.min()), int(g.max()))
            rep.frames += len(b)
            PageSet.release(b.page, 0, int(b.offsets[-1]))
            if progress is not None:
                progress(rep.frames, None)
        rep.damage = r.damage
        known = read_checksums(r.path)
        for i in r.page_indices():
            try:
                p = r.page(i)
            except KftoolsError:
                continue  # in the making, or the damage already reported
            flags = str(p.flags.name or "") + (" archived" if isinstance(p, ArchivedPage) else "")
            rep.pages.append(PageReport(i, p.path, p.capacity, p.cursor, counts.get(i, 0), flags.strip()))
            if (rep.damage is None or i < rep.damage.page) and i not in trusted:
                # damage that leaves every header plausible shows only in a sealed page's checksum
                problem = checksum_problem(p, known)
                PageSet.release(p)
                if problem:
                    rep.damage = Damage(p.path, i, PAGE_HEADER_SIZE, problem)
        return rep


@dataclass
class RecoverResult:
    """What ``kftools recover`` kept (``frames`` in ``pages``) and dropped (from ``damage`` on; None: nothing lost)."""

    out: str
    frames: int
    pages: int
    damage: Damage | None = None
    dropped_pages: int = 0
    #: bytes after the damage (in its page and every later page) that the result leaves out
    dropped_bytes: int = 0
    #: frames that validate on their own in the dropped later pages (the damaged bytes are not counted as frames)
    dropped_frames: int = 0


def recover(
    path: str | os.PathLike, out: str | os.PathLike | None = None, *, in_place: bool = False,
    force: bool = False, registry: TypeRegistry | None = None,
) -> RecoverResult:
    """Write the valid prefix of ``path`` to ``out`` (page layout and frame bytes kept), or cut it in place."""
    path = os.fspath(path)
    if in_place == (out is not None):
        raise OutputError("give either an output path or --in-place")
    with Reader(path, registry=registry) as r:
        if r.kungfu is not None:
            # kftools never writes into a Kungfu journal, and a recovered copy would need Kungfu's writer rules
            raise UsageError(
                f"{r.name}: a Kungfu journal; kftools reads it but does not recover it"
                " (the valid frames: `kftools export` or `kftools replay`)"
            )
        frames = sum(len(b) for b in r.batches(batch_size=1 << 20))
        damage = r.damage
        npages = r.page_count()
        if damage is None:
            last_page, last_end = r.end_position()
        else:
            last_page, last_end = damage.page, damage.offset
        keep_pages = last_page + 1
        lost = _dropped(r, damage, npages)
        if in_place:
            res = _cut_in_place(path, r, damage, keep_pages, last_end, frames, npages)
            res.dropped_bytes, res.dropped_frames = lost
            return res
        if out is None:  # unreachable: checked above, for the type checker
            raise OutputError("give either an output path or --in-place")
        out = os.fspath(out)
        check_journal_output(out, force=force, inputs=[path], what="recovered journal")
        written: list[str] = []
        try:
            for i in range(keep_pages):
                src = r.page(i)
                # pages before the last one kept are valid to their cursor
                cursor = last_end if i == last_page else src.cursor
                # an exclusive temporary (never through a planted link), renamed when all pages are written
                fd, dst = create_temporary(page_path(out, i))
                written.append(dst)
                _write_page_prefix(src, fd, cursor, i, last=(i == last_page))
            if force:
                # every other file of a replaced output (later pages, archived ones, checksums, readers): the
                # new journal must not read on into the old one's pages, nor be checked against its checksums
                remove_journal(out, keep=keep_pages)
            for i in reversed(range(len(written))):  # the first page last: the journal appears whole
                os.replace(written[i], page_path(out, i))
        except (OSError, OutputError) as e:
            for w in written:
                if os.path.lexists(w):
                    os.unlink(w)
            if isinstance(e, OutputError):
                raise
            raise OutputError(f"{out}: cannot write: {e.strerror}") from None
        return RecoverResult(out, frames, keep_pages, damage, npages - keep_pages, *lost)


def _dropped(r: Reader, damage: Damage | None, npages: int) -> tuple[int, int]:
    """(bytes, frames) left out by keeping only what comes before ``damage``."""
    if damage is None:
        return 0, 0
    nbytes = frames = 0
    for i in range(damage.page, npages):
        try:
            page = r.page(i)
        except (KftoolsError, OSError):
            try:  # a page no reader can open: all of it past the header is gone
                nbytes += max(0, os.path.getsize(r.page_path(i)) - PAGE_HEADER_SIZE)
            except OSError:
                pass
            continue
        end = page.limit() if page.header_problem() else min(page.cursor, page.limit())
        start = damage.offset if i == damage.page else PAGE_HEADER_SIZE
        nbytes += max(0, end - start)
        if i == damage.page:
            continue
        off = PAGE_HEADER_SIZE
        while off < end:
            offsets, _h, off, problem = scan_page(page, off, end, r.registry, 1 << 20, headers_wanted=False)
            frames += len(offsets)
            if problem or not len(offsets):
                break
    return nbytes, frames


def _pages_past_gaps(r: Reader, last_kept: int) -> set[int]:
    """Page numbers above ``last_kept`` whose files exist, past a missing page too (a gap is damage:
    what follows it goes aside with the rest, or a writer would meet it again)."""
    out: set[int] = set()
    nxt = r.pages.later_page(last_kept)
    while nxt is not None:
        out.add(nxt)
        nxt = r.pages.later_page(nxt)
    return out


def _write_page_prefix(src: Page, fd: int, cursor: int, index: int, last: bool) -> None:
    os.fchmod(fd, 0o644)  # a journal page, like the writer's (the temporary was made 0600)
    with os.fdopen(fd, "wb") as fh:
        header = PAGE_HEADER.unpack(src.mm, 0)
        header.update(
            write_cursor=cursor, magic=MAGIC, page_index=index, writer_pid=0,
            flags=int(PageFlag.CLOSED if last else PageFlag.SEALED), waiters=0, reserved=b"",
            capacity=min(src.capacity, src.file_size),  # never past the bytes that exist
        )
        fh.write(PAGE_HEADER.struct.pack(*(header[n] if n != "reserved" else b"" for n in PAGE_HEADER.names)))
        fh.write(src.mm[PAGE_HEADER_SIZE:cursor])
        fh.truncate(min(src.capacity, src.file_size))
        fh.flush()
        os.fsync(fh.fileno())


def _cut_in_place(path, r, damage, keep_pages, last_end, frames, npages) -> RecoverResult:
    if damage is None:
        return RecoverResult(path, frames, npages, None, 0)
    fd = os.open(path, os.O_RDWR)
    try:
        if not try_lock(fd):
            raise KftoolsError(f"{path}: a writer holds the journal; stop it before recovering in place")
        page = open_page(page_path(path, keep_pages - 1), keep_pages - 1, writable=True)
        try:
            cursor = memoryview(page.mm)[0:4].cast("I")  # one store: pack_into zero-fills first
            cursor[0] = last_end
            cursor.release()
            U32.pack_into(page.mm, PID_OFFSET, 0)
            U32.pack_into(page.mm, FLAGS_OFFSET, int(PageFlag.CLOSED))
            page.mm.flush()
        finally:
            page.close()
        dropped = 0
        later = sorted(set(range(keep_pages, npages)) | _pages_past_gaps(r, keep_pages - 1))
        for i in later:
            p = page_path(path, i)
            moved = False
            for f in (p, archive_path(p)):
                if os.path.exists(f):
                    shutil.move(f, f + ".damaged")  # kept aside, never deleted
                    moved = True
            dropped += moved
        # the cut page's recorded checksum no longer holds (monitor and archive record it again), and the pages
        # moved aside are no longer this journal's; the records of the pages kept still say what they held
        drop_checksums(path, keep_pages - 1)
        drop_summaries(path)  # the cut page's no longer holds; the others are recomputed where needed
    finally:
        os.close(fd)
    return RecoverResult(path, frames, keep_pages, damage, dropped)


__all__ = ["verify", "recover", "validate_page", "VerifyReport", "RecoverResult", "NotAJournal"]
