"""One page file: open it, check its header, map it."""

from __future__ import annotations

import mmap
import os
import stat
import struct
from typing import TYPE_CHECKING

import numpy as np

from ..errors import CorruptJournal, KftoolsError, NotAJournal, UnreadablePage, UnsupportedVersion
from . import yijinjing
from .format import (
    CURSOR_OFFSET,
    FLAGS_OFFSET,
    KFTOOLS,
    MAGIC,
    PAGE_HEADER,
    PAGE_HEADER_SIZE,
    VERSION,
    WAITERS_OFFSET,
    JournalFormat,
    PageFlag,
    archive_path,
)
from .layout import BYTE_ORDER
from .registry import DEFAULT_REGISTRY, TypeRegistry
from .scan import OK, WRITTEN_END, scan

if TYPE_CHECKING:
    from .codec import ArchiveInfo

#: the page header's u32 fields (write_cursor, flags), read live from a mapping
U32: struct.Struct = struct.Struct(BYTE_ORDER + PAGE_HEADER.field("write_cursor").struct_code)
_SEALED = int(PageFlag.SEALED)


def load_cursor(mm) -> int:
    """A page's write cursor, read live from its mapping (x86-64 and aarch64 loads of an aligned u32 are
    single-copy atomic; the frame bytes are read after it)."""
    return U32.unpack_from(mm, CURSOR_OFFSET)[0]


class _PyCursor:
    """publish_cursor without the C extension: one 4-byte store through a view (no futex wake: a follower
    parked on the page waits out its park timeout)."""

    def __init__(self, mm) -> None:
        # struct.pack_into zero-fills its target before writing it: the cursor would read 0 for an instant
        # on every commit. A view's item store is one aligned 4-byte store (native order: the format is
        # little-endian, as are x86-64 and aarch64 Linux).
        self._view = memoryview(mm)[CURSOR_OFFSET : CURSOR_OFFSET + 4].cast("I")

    def publish(self, pos: int) -> None:
        self._view[0] = pos

    def load(self) -> int:
        return self._view[0]

    def release(self) -> None:
        self._view.release()


try:
    from ._framestream import Cursor as _CCursor  # type: ignore[attr-defined]  # built by setup.py; no stub
except ImportError:  # pragma: no cover - the extension is built by pip install
    _CCursor = None


def cursor_publisher(mm) -> _PyCursor:
    """A writer's handle on its page's write cursor: ``publish(pos)`` is publish_cursor (one store after
    the frame's bytes, then a futex wake when the header's ``waiters`` says followers are parked: C's
    ``cursor.h``), ``load()`` load_cursor, ``release()`` lets go of the mapping."""
    if _CCursor is not None:
        return _CCursor(mm, CURSOR_OFFSET, WAITERS_OFFSET)
    return _PyCursor(mm)


def park_header(page: Page) -> mmap.mmap | None:
    """A writable mapping of ``page``'s header, where a parking follower counts itself in ``waiters`` so the
    writer wakes it; None when the follower may not write to the page file (it then parks timed only)."""
    if not page.fmt.native or page.identity == (0, 0):
        return None
    try:
        fd = os.open(page.path, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != page.identity or st.st_size < PAGE_HEADER_SIZE:
            return None  # not the file that was mapped (replaced meanwhile)
        return mmap.mmap(fd, PAGE_HEADER_SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    except OSError:
        return None
    finally:
        os.close(fd)


class NotYetWritten(NotAJournal):
    """The page is missing, empty or its header is still zero: a follower waits for it."""


class Page:
    """A mapped page file. ``cursor`` is read live from the mapping on each access."""

    fmt: JournalFormat = KFTOOLS
    frame_header_size = KFTOOLS.frame_header_size
    #: offset of the first frame
    frame_start = PAGE_HEADER_SIZE

    __slots__ = (
        "path", "index", "mm", "fd", "file_size", "capacity", "version", "magic", "page_index", "writer_pid", "registry",
        "identity", "journal", "populated",
    )

    def __init__(self, path: str, index: int, mm: mmap.mmap, fd: int, file_size: int, header: dict):
        self.path = path
        self.index = index
        self.mm = mm
        self.fd = fd
        self.file_size = file_size
        self.capacity = header["capacity"]
        self.version = header["version"]
        self.magic = header["magic"]
        self.page_index = header["page_index"]
        self.writer_pid = header["writer_pid"]
        self.registry: TypeRegistry = DEFAULT_REGISTRY  # the reader that opens it sets its own
        self.identity: tuple[int, int] = (0, 0)  # (st_dev, st_ino) of the file mapped; (0, 0): not a file
        self.journal: str | None = None  # the name of the journal it is a page of (its reader sets it)
        #: the mapping is populated (in this process's page tables) up to here, by walks; a release lowers it
        self.populated = 0

    @property
    def cursor(self) -> int:
        return load_cursor(self.mm)

    @property
    def flags(self) -> PageFlag:
        return PageFlag(U32.unpack_from(self.mm, FLAGS_OFFSET)[0] & 3)

    @property
    def sealed(self) -> bool:
        return bool(U32.unpack_from(self.mm, FLAGS_OFFSET)[0] & _SEALED)  # an int: followers ask it in their loop

    def header(self) -> dict:
        return PAGE_HEADER.unpack(self.mm, 0)

    def limit(self) -> int:
        """Highest offset frames may be read up to: the mapped size bounds a bad cursor."""
        return min(self.capacity, len(self.mm))

    def header_problem(self) -> str | None:
        """Why this page's cursor cannot be trusted, or None."""
        cur = self.cursor
        if cur < PAGE_HEADER_SIZE:
            return f"write cursor {cur} is below the 64-byte page header"
        if cur > self.capacity:
            return f"write cursor {cur} is past the page capacity {self.capacity}"
        if cur > self.file_size:
            return f"write cursor {cur} is past the end of the file ({self.file_size} bytes; truncated?)"
        return None

    def close(self) -> None:
        try:
            self.mm.close()
        except BufferError:
            pass  # numpy views still reference the mapping; it closes when they go
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class KungfuPage(Page):
    """A mapped Kungfu page. It has no write cursor: ``cursor`` is where its chain of frames ends
    (the first header with length 0, or just after the PageEnd frame that seals it), found by walking
    on from where the last look ended; past the page's end when the chain breaks, so the walk meets it."""

    #: its generation (each has its own subclass: the walk reads its layouts from the class)
    generation = yijinjing.KUNGFU_2_4
    fmt = yijinjing.FORMAT
    frame_header_size = yijinjing.FRAME_HEADER.size
    frame_start = yijinjing.PAGE_HEADER.size

    __slots__ = ("_end", "_sealed", "_broken", "_scratch")

    def __init__(self, path: str, index: int, mm: mmap.mmap, fd: int, file_size: int, header: dict):
        self.path = path
        self.index = index
        self.mm = mm
        self.fd = fd
        self.file_size = file_size
        self.capacity = header["page_size"]
        self.version = header["version"]
        self.magic = 0
        self.page_index = index
        self.writer_pid = 0
        self.registry = self.generation.registry
        self.identity = (0, 0)
        self.journal = None
        self.populated = 0
        self._end = self.frame_start
        self._sealed = self._broken = False
        self._scratch = np.empty(4096, dtype=np.int64)

    def _advance(self) -> None:
        if self._sealed or self._broken:
            return
        hdr, fmt, out = self.frame_header_size, self.fmt, self._scratch
        while True:
            n, nxt, err = scan(self.mm, self._end, self.limit(), out, b"", hdr, fmt.type_offset, 1, fmt.page_end_type or 0)
            if n and _I32.unpack_from(self.mm, int(out[n - 1]) + fmt.type_offset)[0] == fmt.page_end_type:
                self._sealed = True
            self._end = nxt
            if self._sealed or err != OK or n < len(out):
                # a full page with no PageEnd ends its chain at the page's end: nothing more can come
                self._broken = err not in (OK, WRITTEN_END)
                return

    @property
    def cursor(self) -> int:
        self._advance()
        return self.limit() if self._broken else self._end

    @property
    def flags(self) -> PageFlag:
        return PageFlag.SEALED if self.sealed else PageFlag(0)

    @property
    def sealed(self) -> bool:
        self._advance()
        return self._sealed

    def header(self) -> dict:
        return self.fmt.page_header.unpack(self.mm, 0)

    def header_problem(self) -> str | None:
        if self.file_size < self.capacity:
            return f"page file is {self.file_size:,} bytes but its header says {self.capacity:,} (truncated?)"
        return None


def _kungfu_page_class(gen: yijinjing.Generation) -> type[KungfuPage]:
    if gen is yijinjing.KUNGFU_2_4:
        return KungfuPage
    attrs = {"__slots__": (), "generation": gen, "fmt": gen.fmt, "frame_header_size": gen.fmt.frame_header.size,
             "frame_start": gen.fmt.page_header.size}
    return type(f"KungfuPage_{gen.name.replace('-', '_').replace('.', '_')}", (KungfuPage,), attrs)


#: the page class of each Kungfu generation
KUNGFU_PAGES = {g.name: _kungfu_page_class(g) for g in yijinjing.GENERATIONS}

#: a Kungfu frame's msg_type (signed; at offset 24 in every generation)
_I32 = struct.Struct(BYTE_ORDER + yijinjing.FRAME_HEADER.field("msg_type").struct_code)


class ArchivedPage(Page):
    """A sealed page read from its archive (``<page>.zst``), decompressed into anonymous memory."""

    __slots__ = ("archive",)
    archive: ArchiveInfo


def open_archived_page(path: str, index: int) -> ArchivedPage:
    """Page ``index`` from ``<path>.zst`` (raises FileNotFoundError when there is no archive either)."""
    from .codec import decompress_archive  # zstandard, loaded only where an archived page is read

    mm, info = decompress_archive(archive_path(path))
    try:
        header = PAGE_HEADER.unpack(mm, 0)
        check_header(path, header, index)
        if header["magic"] == MAGIC and header["capacity"] != info.file_size:
            # a page file is as long as its capacity (writers make it so): one of the two sizes is damaged
            raise CorruptJournal(f"{info.path}: the archive says the page was {info.file_size:,} bytes, its page "
                                 f"header says {header['capacity']:,}")
    except BaseException:
        mm.close()
        raise
    page = ArchivedPage(path, index, mm, -1, info.file_size, header)
    page.archive = info
    return page


def page_exists(path: str) -> bool:
    """The page file, or its archive, is there."""
    return os.path.exists(path) or os.path.exists(archive_path(path))


def open_page(
    path: str, index: int = 0, writable: bool = False, keep_fd: bool = False, fmt: JournalFormat | None = None
) -> Page:
    """Open and validate page ``index`` at ``path``; read-only unless ``writable``.

    A page that was archived is read from its archive (read-only).
    """
    try:
        # O_NONBLOCK: a FIFO where a page should be must not block the open; fstat below refuses it
        fd = os.open(path, (os.O_RDWR if writable else os.O_RDONLY) | os.O_NONBLOCK)
    except FileNotFoundError:
        if index and not writable:
            try:
                return open_archived_page(path, index)
            except FileNotFoundError:
                pass
        raise NotYetWritten(f"{path}: no such journal") from None
    except IsADirectoryError:
        raise NotAJournal(f"{path}: is a directory, not a journal") from None
    except PermissionError:
        raise UnreadablePage(f"{path}: permission denied") from None
    except OSError as e:
        raise UnreadablePage(f"{path}: cannot open: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise NotAJournal(f"{path}: is a directory, not a journal")
        if not stat.S_ISREG(st.st_mode):
            raise NotAJournal(f"{path}: not a regular file (a FIFO, device or socket is never a page)")
        if st.st_size == 0:
            raise NotYetWritten(f"{path}: empty file, not a journal (no page header)")
        if st.st_size < PAGE_HEADER_SIZE:
            raise NotAJournal(f"{path}: {st.st_size} bytes is too small for a 64-byte page header")
        try:
            head = os.pread(fd, PAGE_HEADER_SIZE, 0)
        except OSError as e:
            raise UnreadablePage(f"{path}: cannot read: {e.strerror}") from None
        cls: type[Page] = Page
        gen = yijinjing.generation_of(path, head) if yijinjing.parse_page_name(path) else None
        if gen is not None:
            cls = KUNGFU_PAGES[gen.name]
            header = gen.fmt.page_header.unpack(head)
            check_kungfu_header(path, header, gen)
        else:
            header = PAGE_HEADER.unpack(head)
            check_header(path, header, index)
        if fmt is not None and cls.fmt is not fmt:
            raise NotAJournal(f"{path}: a {cls.fmt.name} page in a {fmt.name} journal")
        try:
            mm = mmap.mmap(fd, 0, access=mmap.ACCESS_WRITE if writable else mmap.ACCESS_READ)
        except OSError as e:
            raise KftoolsError(f"{path}: cannot map {st.st_size:,} bytes: {e.strerror}") from None
    except BaseException:
        os.close(fd)
        raise
    if not keep_fd:
        os.close(fd)  # the mapping keeps its own reference to the file
        fd = -1
    page = cls(path, index, mm, fd, st.st_size, header)
    page.identity = (st.st_dev, st.st_ino)
    return page


def check_kungfu_header(path: str, header: dict, gen: yijinjing.Generation = yijinjing.KUNGFU_2_4) -> None:
    """Raise the specific error for a Kungfu page header kftools cannot read (its generation is known)."""
    if header.get("status") == yijinjing.PageStatus.PreOpen:
        raise NotYetWritten(f"{path}: Kungfu page made ahead of time (PreOpen), no frame written yet")
    if header["page_size"] < gen.fmt.page_header.size + gen.fmt.frame_header.size:
        raise NotAJournal(f"{path}: Kungfu page size {header['page_size']} is smaller than its headers")
    if header["page_size"] > 1 << 40:
        raise NotAJournal(f"{path}: Kungfu page size {header['page_size']:,} is not a page size")


def check_header(path: str, header: dict, index: int) -> None:
    """Raise the specific error for a header no reader should trust."""
    if header["version"] == 0 and header["capacity"] == 0 and header["write_cursor"] == 0:
        raise NotYetWritten(f"{path}: page header not written yet (all zero)")
    if header["magic"] not in (0, MAGIC):
        raise NotAJournal(f"{path}: not a journal (magic {header['magic']:#010x} at offset 16)")
    if header["version"] == 0:
        # writers store the version last: a writer is between its two header writes (or died there)
        raise NotYetWritten(f"{path}: page header not written yet (no version)")
    if header["version"] != VERSION:
        raise UnsupportedVersion(f"{path}: unsupported journal version {header['version']} (this kftools reads {VERSION})")
    if header["capacity"] < PAGE_HEADER_SIZE:
        raise NotAJournal(f"{path}: page capacity {header['capacity']} is smaller than its own header")
    if header["magic"] == MAGIC and index == 0 and header["page_index"] > 0:
        # the user named a later page: say which journal it belongs to instead of calling it damaged
        n = header["page_index"]
        suffix = f".{n}"
        first = path[: -len(suffix)] if path.endswith(suffix) else None
        whose = f"of {first}; give the journal's first page, {first}" if first else "of a journal, not its first page"
        raise NotAJournal(f"{path}: this is page {n} {whose}")
    if header["magic"] == MAGIC and header["page_index"] != index:
        raise CorruptJournal(f"{path}: page header says page {header['page_index']}, expected page {index}")
