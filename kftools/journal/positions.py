"""Named reader positions: a small memory-mapped file beside the journal.

A follower that gives a name claims a slot in ``<journal>.readers`` and, while
it reads, stores one aligned 8-byte value per frame (or batch) there: the page
and offset of the last frame it consumed. No system call in the hot loop; the
monitor, ``info`` and the tail read the slots to compute each reader's lag.
A slot names its process (pid and start time), so a reader that is gone is
recognised as such and its slot can be cleared.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import stat
import time
from dataclasses import dataclass

from ..errors import KftoolsError, UnreadablePage, UsageError
from .format import (
    PAGE_HEADER_SIZE,
    READER_SLOT,
    READERS_HEADER,
    READERS_MAGIC,
    pack_position,
    pid_tmp_path,
    readers_path,
    unpack_position,
)
from .frames import frame_at

SLOT_COUNT = 64
MAX_NAME = READER_SLOT.field("name").size
_HEADER_SIZE = READERS_HEADER.size
_FILE_SIZE = _HEADER_SIZE + SLOT_COUNT * READER_SLOT.size
_POSITION_AT = READER_SLOT.offset("position")
FREE, CLAIMED, RELEASED = 0, 1, 2


def positions_path(journal: str | os.PathLike) -> str:
    """The reader-positions file of a journal (given its first page)."""
    return readers_path(journal)


def read_side_file(path: str, what: str) -> bytes:
    """The whole of a file kept beside a journal, opened as :func:`open_side_file` opens it (b"" when there is
    none yet)."""
    try:
        fd = open_side_file(path, os.O_RDONLY, what)
    except FileNotFoundError:
        return b""
    try:
        with os.fdopen(fd, "rb") as fh:
            return fh.read()
    except OSError as e:
        raise KftoolsError(f"{path}: cannot read: {e.strerror}") from None


def open_side_file(path: str, flags: int, what: str, mode: int = 0o644) -> int:
    """Open a file kept beside a journal (``.readers``, ``.checksums``) the way pages are opened: never blocking
    on a FIFO (``O_NONBLOCK``), never through a link (``O_NOFOLLOW``), and only a regular file (``fstat``);
    anything else is :class:`UnreadablePage`, one line naming the file. ``FileNotFoundError`` passes through."""
    try:
        fd = os.open(path, flags | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except FileNotFoundError:
        raise
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UnreadablePage(f"{path}: a symbolic link where the {what} should be; not followed") from None
        if e.errno == errno.ENXIO:  # a FIFO opened for writing with no reader
            raise UnreadablePage(f"{path}: not a regular file (a FIFO, device or socket is never the {what})") from None
        raise UnreadablePage(f"{path}: cannot open the {what}: {e.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnreadablePage(f"{path}: not a regular file (a FIFO, device or socket is never the {what})")
        # a regular file never blocks; reads and writes stay plain (O_NONBLOCK only guarded the open)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_reader_name(name: str) -> bytes:
    """The name's UTF-8 bytes, or :class:`UsageError` when it cannot be a reader name: empty, longer than
    the slot holds, not UTF-8 (a command line's undecodable bytes), or holding a control character (a
    newline would forge a line in ``kftools readers``)."""
    try:
        raw = name.encode()
    except UnicodeEncodeError:
        raise UsageError(f"reader name {name!r} is not UTF-8") from None
    if not name or len(raw) > MAX_NAME or any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in name):
        raise UsageError(f"reader name {name!r} must be 1 to {MAX_NAME} bytes of UTF-8 without control characters")
    return raw


def process_start_ticks(pid: int) -> int:
    """The process's start time in clock ticks since boot (0 if it is gone): tells a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return 0
    # the command name (field 2) may hold spaces and parentheses: count fields after its last ')'
    return int(stat[stat.rindex(b")") + 2 :].split()[19])


def process_alive(pid: int, start_ticks: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: it exists
    return start_ticks == 0 or process_start_ticks(pid) == start_ticks


@dataclass(frozen=True)
class ReaderEntry:
    """One named reader as the positions file records it."""

    name: str
    pid: int
    state: str  # alive, exited (released its name), gone (its process died without releasing)
    position: tuple[int, int] | None  # (page, offset) of the last frame it consumed
    claimed_time: int

    @property
    def shown(self) -> str:
        """The name as a line may show it: quoted and escaped if a file written elsewhere put a control
        character in it (a newline would forge a line)."""
        return self.name if self.name.isprintable() else repr(self.name)

    @property
    def stale(self) -> bool:
        return self.state != "alive"

    def to_dict(self) -> dict:
        return {"name": self.name, "pid": self.pid, "state": self.state,
                "position": list(self.position) if self.position else None, "claimed_time": self.claimed_time}


class _File:
    """The mapped positions file; creates it (atomically, complete) when ``create``."""

    def __init__(self, journal: str, create: bool):
        self.path = positions_path(journal)
        flags = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = open_side_file(self.path, os.O_RDWR, "reader positions")
        except FileNotFoundError:
            if not create:
                raise
            fd = self._create(flags)
        try:
            st = os.fstat(fd)
            head = os.pread(fd, _HEADER_SIZE, 0)
            if st.st_size < _FILE_SIZE or READERS_HEADER.unpack(head)["magic"] != READERS_MAGIC:
                raise KftoolsError(f"{self.path}: not a kftools reader-positions file")
            self.mm = mmap.mmap(fd, _FILE_SIZE)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd

    def _create(self, flags: int) -> int:
        tmp = pid_tmp_path(self.path)
        try:
            fd = os.open(tmp, flags | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError as e:
            raise KftoolsError(f"{self.path}: cannot create the reader positions: {e.strerror}") from None
        try:
            os.ftruncate(fd, _FILE_SIZE)
            os.pwrite(fd, READERS_HEADER.struct.pack(READERS_MAGIC, 1, SLOT_COUNT, READER_SLOT.size, b""), 0)
            try:
                os.link(tmp, self.path)  # never replaces a file another reader created meanwhile
            except FileExistsError:
                os.close(fd)
                fd = open_side_file(self.path, os.O_RDWR, "reader positions")
        finally:
            os.unlink(tmp)
        return fd

    def slot_at(self, i: int) -> int:
        return _HEADER_SIZE + i * READER_SLOT.size

    def slots(self) -> list[dict]:
        return [READER_SLOT.unpack(self.mm, self.slot_at(i)) for i in range(SLOT_COUNT)]

    def write_slot(self, i: int, **values) -> None:
        slot = READER_SLOT.unpack(self.mm, self.slot_at(i))
        slot.update(values)
        slot["name"] = slot["name"].encode() if isinstance(slot["name"], str) else slot["name"]
        READER_SLOT.struct.pack_into(self.mm, self.slot_at(i), *(slot[n] for n in READER_SLOT.names))

    def locked(self):
        return _Flock(self.fd)

    def close(self) -> None:
        self.mm.close()
        os.close(self.fd)


class _Flock:
    """Held only while claiming or clearing a slot, never while reading."""

    def __init__(self, fd: int):
        self.fd = fd

    def __enter__(self):
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)


def _state(slot: dict) -> str:
    if slot["state"] == RELEASED:
        return "exited"
    return "alive" if process_alive(slot["pid"], slot["start_ticks"]) else "gone"


class PositionSlot:
    """A claimed name. ``store(page, offset)`` publishes the last consumed frame: one 8-byte store.

    ``cell`` is the raw 8-byte cell (a ``memoryview`` of one ``Q``) for loops that store
    ``cell[0] = pack_position(page, offset)`` themselves (the frame stream, in C: ``kf_pack_position``).
    """

    def __init__(self, journal: str, name: str):
        raw = check_reader_name(name)
        self.name = name
        self._file = _File(journal, create=True)
        with self._file.locked():
            self.index = self._claim(raw)
        at = self._file.slot_at(self.index) + _POSITION_AT
        self.cell = memoryview(self._file.mm)[at : at + 8].cast("Q")

    def _claim(self, raw: bytes) -> int:
        slots = self._file.slots()
        me = os.getpid()
        fresh = {"pid": me, "state": CLAIMED, "start_ticks": process_start_ticks(me), "claimed_time": time.time_ns()}
        for i, s in enumerate(slots):
            if s["name"] == raw.decode() and s["state"] != FREE:
                if _state(s) == "alive" and s["pid"] != me:
                    raise UsageError(f"{self._file.path}: reader name {raw.decode()!r} is in use by pid {s['pid']}")
                self._file.write_slot(i, **fresh)  # a restarted reader takes its name back, position kept
                return i
        for i, s in enumerate(slots):
            if s["state"] == FREE:
                self._file.write_slot(i, name=raw, position=0, **fresh)
                return i
        gone = [i for i, s in enumerate(slots) if _state(s) != "alive"]
        if not gone:
            raise KftoolsError(f"{self._file.path}: all {SLOT_COUNT} reader names are in use")
        i = min(gone, key=lambda k: slots[k]["claimed_time"])
        self._file.write_slot(i, name=raw, position=0, **fresh)
        return i

    def store(self, page: int, offset: int) -> None:
        self.cell[0] = pack_position(page, offset)

    def release(self) -> None:
        """Mark the name released (the position stays, for info and the monitor)."""
        if self._file is None:
            return
        self.cell.release()
        with self._file.locked():
            self._file.write_slot(self.index, state=RELEASED)
        self._file.close()
        self._file = None  # type: ignore[assignment]

    def __enter__(self) -> PositionSlot:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def read_positions(journal: str | os.PathLike) -> list[ReaderEntry]:
    """Every named reader of a journal, in slot order (empty when none ever claimed a name)."""
    path = positions_path(journal)
    try:
        fd = open_side_file(path, os.O_RDONLY, "reader positions")
    except FileNotFoundError:
        return []
    try:
        data = os.pread(fd, _FILE_SIZE, 0)
    except OSError as e:
        raise KftoolsError(f"{path}: cannot read the reader positions: {e.strerror}") from None
    finally:
        os.close(fd)
    if len(data) < _FILE_SIZE or READERS_HEADER.unpack(data)["magic"] != READERS_MAGIC:
        raise KftoolsError(f"{path}: not a kftools reader-positions file")
    out = []
    for i in range(SLOT_COUNT):
        s = READER_SLOT.unpack(data, _HEADER_SIZE + i * READER_SLOT.size)
        if s["state"] == FREE:
            continue
        out.append(ReaderEntry(s["name"], s["pid"], _state(s), unpack_position(s["position"]), s["claimed_time"]))
    return out


def clear_positions(journal: str | os.PathLike, names: list[str] | None = None) -> list[str]:
    """Free the slots of readers that are gone or exited (only ``names`` if given); returns the names cleared.

    A live reader's slot is never cleared.
    """
    try:
        f = _File(os.fspath(journal), create=False)
    except FileNotFoundError:
        return []
    cleared = []
    try:
        with f.locked():
            for i, s in enumerate(f.slots()):
                if s["state"] == FREE or (names is not None and s["name"] not in names):
                    continue
                if _state(s) == "alive":
                    if names is not None:
                        raise UsageError(f"{f.path}: reader {s['name']!r} is alive (pid {s['pid']}); not cleared")
                    continue
                f.mm[f.slot_at(i) : f.slot_at(i + 1)] = bytes(READER_SLOT.size)
                cleared.append(s["name"])
    finally:
        f.close()
    return cleared


@dataclass(frozen=True)
class ReaderLag:
    """How far a named reader is behind the journal's end."""

    entry: ReaderEntry
    frames: int
    bytes: int
    seconds: float

    def to_dict(self) -> dict:
        return {**self.entry.to_dict(), "lag_frames": self.frames, "lag_bytes": self.bytes,
                "lag_seconds": self.seconds}


def reader_lags(
    reader, entries: list[ReaderEntry] | None = None, *, end: tuple[int, int] | None = None, newest: int | None = None
) -> list[ReaderLag]:
    """Lag in frames, bytes and seconds of each named reader of ``reader``'s journal (a :class:`Reader`).

    ``end`` and ``newest`` (the end position and the last frame's gen_time) are found when not given.
    """
    entries = read_positions(reader.path) if entries is None else entries
    if not entries:
        return []
    if end is None:
        end = reader.end_position()
        newest = _last_gen_time(reader, end)
    out = []
    for e in entries:
        try:
            out.append(_lag(reader, e, end, newest))
        except (KftoolsError, OSError, ValueError):
            out.append(ReaderLag(e, 0, 0, 0.0))  # its page is gone (recovered or cut): nothing to measure
    return out


def _lag(reader, e: ReaderEntry, end: tuple[int, int], newest: int | None) -> ReaderLag:
    if e.position is None:
        nxt, seen = (0, PAGE_HEADER_SIZE), None
    else:
        page, off = e.position
        f = frame_at(reader.page(page), off)
        nxt, seen = (page, off + f.page.frame_header_size + f.length), f.gen_time
    if nxt >= end:
        return ReaderLag(e, 0, 0, 0.0)
    frames = 0
    first = None
    for b in reader.batches(start=nxt, until=end, batch_size=1 << 20):
        if first is None and len(b):
            first = int(b.headers["gen_time"][0])
        frames += len(b)
    nbytes = 0
    for i in range(nxt[0], end[0] + 1):
        lo = nxt[1] if i == nxt[0] else PAGE_HEADER_SIZE
        hi = end[1] if i == end[0] else min(reader.page(i).cursor, reader.page(i).limit())
        nbytes += max(0, hi - lo)
    if not frames or newest is None:
        return ReaderLag(e, frames, nbytes, 0.0)
    since = seen if seen is not None else first
    return ReaderLag(e, frames, nbytes, max(0, newest - since) / 1e9 if since is not None else 0.0)


def _last_gen_time(reader, end: tuple[int, int]) -> int | None:
    """gen_time of the frame that ends at ``end`` (walking back to the last non-empty page)."""
    for i in range(end[0], -1, -1):
        last = None
        for b in reader.batches(start=(i, PAGE_HEADER_SIZE), until=(i, end[1]) if i == end[0] else (i, 1 << 32),
                                batch_size=1 << 20):
            if len(b):
                last = int(b.headers["gen_time"][-1])
        if last is not None:
            return last
    return None
