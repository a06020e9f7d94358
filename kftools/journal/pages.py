"""A journal's pages: naming, listing, opening read-only, releasing, the end, the writer's state, rollover.

This is the one module that knows which files are the pages of a journal and
how a walk moves from one page to the next. :class:`PageSet` serves every
reader (through :mod:`.walk`); the naming rule comes from the journal's
:class:`~.format.JournalFormat` (kftools: ``<path>.<n>``; Kungfu:
``{dest:08x}.{n}.journal``), one page file is :mod:`.page`.

What is not a page of the journal: a file that is not a regular file, a page
whose header names another page index (both errors or damage where a walk
meets them), and a gap: a page missing before a later one, which is damage at
the end of the page before it.
"""

from __future__ import annotations

import collections
import mmap
import os
import stat
import sys

from ..errors import JournalChanged, KftoolsError, MissingExtra, NotAJournal, UnreadablePage
from . import yijinjing
from .codec import keep_spare
from .format import ARCHIVE_SUFFIX, KFTOOLS, SIDECAR_SUFFIXES, TYPES_SUFFIX, JournalFormat, PageFlag, WriterState
from .lock import is_locked
from .page import ArchivedPage, NotYetWritten, Page, open_page, page_exists
from .registry import DEFAULT_REGISTRY, TypeRegistry

Position = tuple[int, int]  # (page index, offset in page)
#: pages a page set keeps referenced (least recently used are dropped; frames still holding one keep it mapped)
MAX_OPEN_PAGES = 32
#: archived pages live in anonymous memory, not the page cache: keep few of them
MAX_ARCHIVED_PAGES = 2


class PageSet:
    """The pages of the journal ``path`` names, opened read-only on demand.

    ``path`` is a journal's first page; for a Kungfu journal also any of its
    page files or a folder holding one journal. ``path`` becomes the first
    page's path, ``name`` how commands show the journal, ``fmt`` its format.
    """

    def __init__(self, path: str | os.PathLike, *, registry: TypeRegistry | None = None, name: str | None = None):
        self.path = os.fspath(path)
        #: how commands show the journal: its path, or a Kungfu journal's location and dest
        self.name = self.path
        self.fmt: JournalFormat = KFTOOLS
        self.registry = registry or DEFAULT_REGISTRY
        self.kungfu = kungfu_journal(self.path)
        if self.kungfu is None and (registry is None or registry.defaulted):
            self.registry = declared_types(self.path) or self.registry
        if self.kungfu is not None:
            # Kungfu's journals: the same walk over their page and frame layouts, their longfist types
            gen = kungfu_generation(self.kungfu.first_page)
            self.fmt, self.path, self.name = gen.fmt, self.kungfu.first_page, self.kungfu.name
            self.registry = gen.registry
        if name is not None:  # the label the resolver gave it (distinct among the journals opened together)
            self.name = name
        self.first = self.fmt.first_page
        #: Kungfu v4 makes a page ahead of time (wire v1, status PreOpen): until its writer begins it, it is not
        #: a page of the journal yet; the pages seen begun (the status is read again only for those not)
        self._made_ahead = self.fmt is yijinjing.KUNGFU_WIRE_V1.fmt
        self._begun: set[int] = set()
        self._open: collections.OrderedDict[int, Page] = collections.OrderedDict()
        self._probe_fd = -1

    # -- naming and listing ------------------------------------------------------
    def path_of(self, index: int) -> str:
        """The file of page ``index`` by the format's naming rule."""
        return self.fmt.page_path(self.path, index)

    def exists(self, index: int) -> bool:
        """Page ``index``'s file (or its archive) is there, and its writer has begun it: a Kungfu wire-v1 page
        made ahead of time (PreOpen) is not there yet for walks, followers and page counts alike."""
        path = self.path_of(index)
        if not page_exists(path):
            return False
        if not self._made_ahead or index in self._begun:
            return True
        if yijinjing.made_ahead(path):
            return False
        self._begun.add(index)
        return True

    def indices(self) -> range:
        """Indices of the consecutive page files present, in order (at least the first)."""
        i = self.first
        while self.exists(i):
            i += 1
        return range(self.first, max(i, self.first + 1))

    def count(self) -> int:
        """Number of consecutive page files present from the first (at least 1)."""
        return len(self.indices())

    def paths(self) -> list[str]:
        """Paths of the consecutive page files present, in order (empty if there is no first page)."""
        return [self.path_of(i) for i in self.indices() if self.exists(i)]

    def later_page(self, index: int) -> int | None:
        """The lowest page number above ``index`` whose file (or archive) exists, or None."""
        folder = os.path.dirname(self.path) or "."
        try:
            names = os.listdir(folder)
        except OSError:
            return None
        best = None
        for name in names:
            n = self.fmt.page_number(self.path, name.removesuffix(ARCHIVE_SUFFIX))
            if n is not None and n > index and (best is None or n < best):
                best = n
        return best

    # -- opening and releasing -----------------------------------------------------
    def page(self, index: int) -> Page:
        """Page ``index``, mapped read-only (raises NotYetWritten if it is not there)."""
        p = self._open.get(index)
        if p is not None:
            self._open.move_to_end(index)
            return p
        # drop the archived pages over the limit before opening another: the memory of one no one reads any more
        # then holds the next (which may be archived too) instead of fresh memory
        held = [i for i, q in self._open.items() if isinstance(q, ArchivedPage)]
        for i in held[: len(held) - MAX_ARCHIVED_PAGES + 1]:
            self._drop(i)
        p = open_page(self.path_of(index), index, fmt=self.fmt)
        p.registry = self.registry
        p.journal = self.name
        self._open[index] = p
        if len(self._open) > MAX_OPEN_PAGES:
            self._drop(next(iter(self._open)))
        return p

    def _drop(self, index: int) -> None:
        """Forget page ``index``; an archived page's memory is kept for the next one if nothing else refers to it."""
        page = self._open.pop(index)
        # two references (`page`, getrefcount's argument): no frame or batch holds the page, which is unreachable
        # once this returns; keep_spare checks that no view holds its memory
        if isinstance(page, ArchivedPage) and sys.getrefcount(page) == 2:
            keep_spare(page)

    @staticmethod
    def release(page: Page, start: int = 0, stop: int | None = None) -> int:
        """Drop ``[start, stop)`` of a page's mapping from our resident memory (the page cache keeps it).

        Rounded to whole memory pages; returns where the released range ends
        (``start`` rounded down if nothing was released). Readers refault what
        they touch again. An archived page keeps its memory: it is the only copy.
        """
        if isinstance(page, ArchivedPage):
            return start - start % mmap.PAGESIZE
        end = len(page.mm) if stop is None else stop
        end -= end % mmap.PAGESIZE
        start -= start % mmap.PAGESIZE
        if end <= start:
            return start
        try:
            page.mm.madvise(mmap.MADV_DONTNEED, start, end - start)
        except (OSError, ValueError, AttributeError):
            return start
        page.populated = min(page.populated, start)  # a walk there populates it again
        return end

    def close(self) -> None:
        # drop our references only: frames still held keep their page mapped (and valid)
        for index in list(self._open):
            self._drop(index)
        if self._probe_fd >= 0:
            os.close(self._probe_fd)
            self._probe_fd = -1

    # -- where a page's frames end, and what comes after ------------------------------
    @staticmethod
    def page_end(page: Page) -> tuple[int, str | None]:
        """``(end, problem)``: the committed end of ``page`` (its cursor), or how far a walk may read
        when the cursor cannot be trusted, and why."""
        problem = page.header_problem()
        if problem:
            # a Kungfu page's end is where its chain of frames ends (no cursor to distrust): a short page's
            # zeros after its frames are the end of what was written, not bytes to walk until the page's size
            return (page.limit() if page.fmt.native else page.cursor), problem
        return page.cursor, None

    def successor(self, page: Page) -> tuple[Page | None, str | None]:
        """The rollover rule: ``(next page, None)``; ``(None, None)`` if it is not there yet; ``(None, problem)``
        when the journal is damaged after ``page``.

        Writers finish a page before sealing the one before it (kftools' rename
        it into place whole; Kungfu's write its header in place first), so
        after a sealed page a missing or unwritten page is damage, as is a page
        missing before a later one (a gap), or a next page that is not a page
        of this journal.
        """
        index = page.index
        nxt = self.path_of(index + 1)
        # Whether this page was sealed before the next one is looked at: a writer (Kungfu's makes its next page
        # in place) may finish the next page and seal this one in between, and must not be taken for damage.
        sealed = page.sealed
        if not self.exists(index + 1):
            if sealed:
                return None, f"page is sealed but the next page {nxt} is missing"
            later = self.later_page(index + 1)
            if later is not None and not self.exists(index + 1):  # looked again: writers make pages in order
                return None, f"next page {nxt} is missing but page {later} ({self.path_of(later)}) exists"
            return None, None
        try:
            return self.page(index + 1), None
        except (UnreadablePage, MissingExtra):  # about the file or this install, never damage
            raise  # an error about the file, not damage: nothing may be cut because of it
        except NotYetWritten as e:
            # an unwritten page after a sealed one, or before a later page, lost its bytes (power loss)
            if sealed:
                return None, f"next page {e}"
            if not self.exists(index + 2):
                return None, None
            try:  # looked again after seeing a later page: its writer finished this one before making that
                return self.page(index + 1), None
            except NotYetWritten as again:
                return None, f"next page {again}"
        except KftoolsError as e:
            return None, f"next page {e}"

    def end_position(self) -> Position:
        """(page, offset) just after the last committed frame, right now."""
        last = self.indices()[-1]
        try:
            p = self.page(last)
        except (UnreadablePage, MissingExtra):  # about the file or this install, never damage
            raise
        except KftoolsError as e:
            if last > self.first and (self.page(last - 1).sealed or not isinstance(e, NotYetWritten)):
                try:  # looked again: its writer may have finished it, then sealed the one before, meanwhile
                    p = self.page(last)
                except (UnreadablePage, MissingExtra):  # about the file or this install, never damage
                    raise
                except KftoolsError:
                    # a sealed page's successor is bad, not in the making: end there so a walk reports it
                    return last, self.fmt.frame_start
            else:
                last -= 1
                p = self.page(last)
        return last, self.page_end(p)[0]  # a bad cursor: as far as a walk reads it

    @staticmethod
    def check_unchanged(page: Page) -> None:
        """Raise :class:`JournalChanged` if ``page``'s file was removed, replaced (another file at its path:
        the journal was deleted and created again) or truncated since it was mapped. Followers call it when
        idle: they never splice another journal's pages, nor read a truncated mapping (SIGBUS)."""
        if page.identity == (0, 0):
            return  # an archived page, decompressed into memory: no file to change under us
        path = page.path
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise JournalChanged(f"{path}: the journal was removed while being followed") from None
        except OSError as e:
            raise UnreadablePage(f"{path}: cannot stat: {e.strerror}") from None
        if (st.st_dev, st.st_ino) != page.identity:
            raise JournalChanged(f"{path}: the journal was replaced (a new file at its path) while being followed;"
                                 " start again to read the new one")
        if st.st_size < page.file_size:
            raise JournalChanged(f"{path}: the page was truncated from {page.file_size:,} to {st.st_size:,} bytes"
                                 " while being followed")

    def committed_bytes(self, until: Position | None = None) -> int:
        """Frame bytes committed up to ``until`` (default: now), for progress totals."""
        last, cur = until or self.end_position()
        total = 0
        for i in range(self.first, last + 1):
            try:
                p = self.page(i)
            except KftoolsError:
                break
            total += (cur if i == last else min(p.cursor, p.limit())) - p.frame_start
        return max(total, 0)

    def capacities(self) -> list[int]:
        """Capacity of each readable page from the first, in order."""
        caps = []
        for i in self.indices():
            try:
                caps.append(self.page(i).capacity)
            except KftoolsError:
                break
        return caps

    def usage(self) -> tuple[int, int]:
        """``(capacity, used bytes)`` summed over the readable pages (a page in the making counts as empty)."""
        cap = used = 0
        for i in self.indices():
            try:
                p = self.page(i)
            except KftoolsError:
                continue
            cap += p.capacity
            used += min(p.cursor, p.limit())
        return cap, used

    def writer_state(self) -> tuple[WriterState, int]:
        """``(state, pid)``; state is ALIVE, EXITED, CRASHED or UNKNOWN (an engine that leaves no trace)."""
        if self._probe_fd < 0:
            self._probe_fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        last = self.page(self.first)
        for i in reversed(self.indices()[1:]):
            try:
                last = self.page(i)
                break
            except KftoolsError:
                continue  # a page in the making (or damaged): the one before it tells
        pid = last.header().get("writer_pid", 0)
        if is_locked(self._probe_fd):
            return WriterState.ALIVE, pid
        if last.flags & PageFlag.CLOSED:
            return WriterState.EXITED, pid
        if last.magic and pid:
            return WriterState.CRASHED, pid
        return WriterState.UNKNOWN, pid


def declared_types(path: str) -> TypeRegistry | None:
    """The registry ``<path>.types`` names (a Kungfu generation's types), or None when there is no such file.

    Opened like a page (never through a link, never a FIFO); a file that says something else is an error."""
    side = path + TYPES_SUFFIX
    try:
        fd = os.open(side, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise NotAJournal(f"{side}: cannot be read ({e.strerror}); a types file must be a regular file") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotAJournal(f"{side}: not a regular file (a types file is JSON)")
        raw = os.read(fd, 4096)
    finally:
        os.close(fd)
    import json

    try:
        name = json.loads(raw)["types"]
    except (ValueError, KeyError, TypeError, RecursionError):
        raise NotAJournal(f"{side}: not a kftools types file (JSON {{\"types\": \"kungfu-2.4\"}})") from None
    for gen in yijinjing.GENERATIONS:
        if gen.name == name:
            return gen.registry
    raise NotAJournal(f"{side}: types {name!r} are not known to this kftools "
                      f"({', '.join(g.name for g in yijinjing.GENERATIONS)})")


def kungfu_journal(path: str) -> yijinjing.KungfuJournal | None:
    """The Kungfu journal ``path`` names (a page file or a folder holding one journal), else None."""
    if os.path.isdir(path):
        found = yijinjing.find_journals(path)
        if len(found) > 1:
            names = ", ".join(j.name for j in found[:4]) + (", ..." if len(found) > 4 else "")
            raise NotAJournal(f"{path}: holds {len(found)} Kungfu journals ({names}); open them with open_journals()")
        return found[0] if found else None
    if yijinjing.parse_page_name(path) is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # never block on a FIFO
    except OSError:
        return None  # open_page says what is wrong with it
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        head = os.pread(fd, yijinjing.HEAD_SIZE, 0)
    except OSError:
        return None
    finally:
        os.close(fd)
    # a Kungfu page of a generation kftools does not know is refused here, by name
    return yijinjing.find_journals(path)[0] if yijinjing.generation_of(path, head) else None


def kungfu_generation(first_page: str) -> yijinjing.Generation:
    """The generation of the Kungfu journal whose first page is ``first_page`` (read from its page header; 2.4
    while the page is not there yet). A later page of another generation is an error where the walk meets it."""
    try:
        with open(first_page, "rb") as fh:
            head = fh.read(yijinjing.HEAD_SIZE)
    except OSError:
        return yijinjing.KUNGFU_2_4
    return yijinjing.generation_of(first_page, head) or yijinjing.KUNGFU_2_4


def stale_pages(first_page: str | os.PathLike, fmt: JournalFormat = KFTOOLS) -> list[str]:
    """Files (or archives) named as later pages of ``first_page`` (page 1 on), in page order: beside a
    journal that does not exist yet, they are another journal's pages, never to be adopted."""
    first = os.fspath(first_page)
    try:
        names = os.listdir(os.path.dirname(first) or ".")
    except OSError:
        return []
    found = []
    for name in names:
        n = fmt.page_number(first, name.removesuffix(ARCHIVE_SUFFIX))
        if n is not None and n > fmt.first_page:
            found.append((n, os.path.join(os.path.dirname(first), name)))
    return [p for _n, p in sorted(found)]


def journal_pages(first_page: str | os.PathLike, fmt: JournalFormat = KFTOOLS) -> list[str]:
    """Paths of the consecutive page files (or archives) present, in order, given the first page's path."""
    first = os.fspath(first_page)
    pages: list[str] = []
    i = fmt.first_page
    while page_exists(fmt.page_path(first, i)):
        pages.append(fmt.page_path(first, i))
        i += 1
    return pages


__all__ = ["MAX_OPEN_PAGES", "SIDECAR_SUFFIXES", "PageSet", "Position", "journal_pages",
           "kungfu_journal", "stale_pages"]
