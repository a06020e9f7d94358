"""Write a journal in Kungfu's own format, so a Kungfu strategy can read a recording (``replay --format``).

A :class:`KungfuWriter` makes the runtime journal of one Kungfu location:
``KF_HOME/runtime/{category}/{group}/{name}/journal/{mode}/{dest:08x}.{page_id}.journal``, pages of the size
Kungfu gives that location, frames stored in Kungfu's order (the header but its ``length``, the data, the next
header zeroed, ``gen_time``, the page's ``last_frame_position``, ``length`` last), a ``PageEnd`` frame after the
last frame of a full page (written once the next page exists), ``SessionStart`` first and ``SessionEnd`` at a
clean close, and ``source`` the location's uid (MurmurHash3 x86_32 of ``category/group/name/mode``, seed 42).
Layouts come from :mod:`.yijinjing`, one generation's at a time.
"""

from __future__ import annotations

import mmap
import os
import struct
import time

import numpy as np

from ..errors import OutputError, UsageError
from . import yijinjing as kf
from .format import FRAME_HEADER
from .layout import BYTE_ORDER

CATEGORIES = ("md", "td", "strategy", "system")
MODES = ("live", "data", "replay", "backtest")
#: generations ``replay --format`` can write, by name
WRITABLE = {g.name: g for g in kf.GENERATIONS}
_U32 = struct.Struct(BYTE_ORDER + "I")
_I64 = struct.Struct(BYTE_ORDER + "q")
_I32 = struct.Struct(BYTE_ORDER + "i")
_U64 = struct.Struct(BYTE_ORDER + "Q")


def murmur3_32(data: bytes, seed: int = 42) -> int:
    """MurmurHash3 x86_32, the hash Kungfu makes location uids with."""
    c1, c2, mask = 0xCC9E2D51, 0x1B873593, 0xFFFFFFFF
    h = seed & mask
    n = len(data) - len(data) % 4
    for (k,) in _U32.iter_unpack(data[:n]):
        k = (k * c1) & mask
        k = ((k << 15) | (k >> 17)) & mask
        h ^= (k * c2) & mask
        h = ((h << 13) | (h >> 19)) & mask
        h = (h * 5 + 0xE6546B64) & mask
    tail, k = data[n:], 0
    for i in reversed(range(len(tail))):
        k = (k << 8) | tail[i]
    if tail:
        k = (k * c1) & mask
        k = ((k << 15) | (k >> 17)) & mask
        h ^= (k * c2) & mask
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & mask
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & mask
    return h ^ (h >> 16)


def parse_location(location: str) -> tuple[str, str, str, str]:
    """``category/group/name/mode`` checked: Kungfu's categories and modes, no empty part."""
    parts = location.strip("/").split("/")
    if len(parts) != 4 or not all(parts) or any(p in (".", "..") for p in parts):
        raise UsageError(f"--location {location!r}: give category/group/name/mode (md/sim/feed/replay)")
    if parts[0] not in CATEGORIES:
        raise UsageError(f"--location {location!r}: category {parts[0]!r} is not one of {', '.join(CATEGORIES)}")
    if parts[3] not in MODES:
        raise UsageError(f"--location {location!r}: mode {parts[3]!r} is not one of {', '.join(MODES)}")
    return parts[0], parts[1], parts[2], parts[3]


def page_size_for(category: str, dest: int) -> int:
    """The page size Kungfu gives a journal of ``category`` to ``dest``."""
    if category == "md" and dest != 1:
        return 128 << 20
    if category in ("td", "strategy") and dest != 0:
        return 16 << 20
    return 1 << 20


class KungfuWriter:
    """The Kungfu journal of ``location`` (``category/group/name/mode``) under ``kf_home``, to ``dest``.

    Refuses a location whose journal to ``dest`` already has pages unless ``force`` (then they are removed).
    """

    def __init__(self, kf_home: str | os.PathLike, location: str, generation: kf.Generation = kf.KUNGFU_2_4, *,
                 dest: int = 0, page_size: int | None = None, force: bool = False):
        category, group, name, mode = parse_location(location)
        self.gen = generation
        self.location = "/".join((category, group, name, mode))
        self.uid = murmur3_32(self.location.encode())
        self.dest = dest
        self.folder = os.path.join(os.fspath(kf_home), "runtime", category, group, name, "journal", mode)
        self.journal = kf.KungfuJournal(self.folder, dest)
        self.page_size = page_size or page_size_for(category, dest)
        self.hdr = generation.fmt.frame_header
        self.ph = generation.fmt.page_header
        if self.page_size < self.ph.size + 2 * self.hdr.size:
            raise UsageError(f"Kungfu page size {self.page_size} is too small")
        os.makedirs(self.folder, exist_ok=True)
        existing = [n for n in os.listdir(self.folder) if (p := kf.parse_page_name(n)) and p[0] == dest]
        if existing and not force:
            raise UsageError(f"{self.folder}: already holds a Kungfu journal to dest {dest:08x} "
                             f"({len(existing)} page(s)); --force replaces it")
        for n in existing:
            os.unlink(os.path.join(self.folder, n))
        self.frames_written = 0
        self._head = self._template()
        self._at_trigger, self._at_type = self.hdr.offset("trigger_time"), self.hdr.offset("msg_type")
        uid_field = next((f for f in ("frame_uid", "journal_frame_uid") if f in self.hdr.names), None)
        self._at_uid = None if uid_field is None else self.hdr.offset(uid_field)
        self._at_last = self.ph.offset("last_frame_position")
        self.page_id = 0
        self._mm: mmap.mmap | None = None
        self._pos = 0
        self._frame_nb = 0
        self._open_page(1)
        if generation.session_start is not None:
            self._write(generation.session_start, b"", time.time_ns(), 0)

    # -- pages -----------------------------------------------------------------------------------------------
    def _page_header(self, last_frame_position: int) -> bytes:
        rec = np.zeros(1, dtype=self.ph.dtype)
        rec["version"], rec["page_header_length"], rec["page_size"] = self.gen.version, self.ph.size, self.page_size
        rec["frame_header_length"], rec["last_frame_position"] = self.hdr.size, last_frame_position
        return rec.tobytes()

    def _open_page(self, page_id: int) -> mmap.mmap:
        path = self.journal.page_path(page_id)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError as e:
            raise OutputError(f"{path}: cannot create: {e.strerror}") from None
        try:
            os.ftruncate(fd, self.page_size)
            mm = mmap.mmap(fd, self.page_size)
        except OSError as e:
            raise OutputError(f"{path}: cannot make a {self.page_size:,}-byte page: {e.strerror}") from None
        finally:
            os.close(fd)
        mm[: self.ph.size] = self._page_header(0)
        self._mm, self.page_id, self._pos, self._frame_nb = mm, page_id, self.ph.size, 0
        return mm

    # -- frames ----------------------------------------------------------------------------------------------
    def _template(self) -> bytearray:
        """The fields every frame header of this writer shares (the rest are set per frame)."""
        rec = np.zeros(1, dtype=self.hdr.dtype)
        rec["header_length"], rec["source"], rec["dest"] = self.hdr.size, self.uid, self.dest
        if "initial_source" in self.hdr.names:
            rec["initial_source"] = self.uid
        return bytearray(rec.tobytes())

    def _store(self, msg_type: int, data: bytes, gen_time: int, trigger_time: int) -> None:
        mm, off, hsize, head = self._mm, self._pos, self.hdr.size, self._head
        assert mm is not None
        length = hsize + len(data)
        _I64.pack_into(head, self._at_trigger, trigger_time)
        _I32.pack_into(head, self._at_type, msg_type)
        if self._at_uid is not None:
            _U64.pack_into(head, self._at_uid, (self.page_id << 32) | self._frame_nb)
        mm[off + 4 : off + hsize] = head[4:]
        mm[off + hsize : off + length] = data
        if off + length + hsize <= self.page_size:
            mm[off + length : off + length + hsize] = bytes(hsize)
        _I64.pack_into(mm, off + self.hdr.offset("gen_time"), gen_time)
        _U64.pack_into(mm, self._at_last, off)
        _U32.pack_into(mm, off, length)  # published last: a reader sees the frame from here on
        self._pos = off + length
        self._frame_nb += 1

    def _write(self, msg_type: int, data: bytes, gen_time: int, trigger_time: int) -> None:
        if self.gen is kf.KUNGFU_WIRE_V1 and len(data) % 8:
            data = bytes(data) + bytes(-len(data) % 8)  # v4 rounds every payload up to a whole machine word
        if self.ph.size + 2 * self.hdr.size + len(data) > self.page_size:
            raise OutputError(f"{self.journal.first_page}: a {len(data):,}-byte frame does not fit a "
                              f"{self.page_size:,}-byte Kungfu page")
        if self._pos + self.hdr.size + len(data) > self.page_size - self.hdr.size:
            # Kungfu makes the next page before it marks the full one with PageEnd (readers find it there)
            old = (self._mm, self._pos, self._frame_nb, self.page_id)
            self._open_page(self.page_id + 1)
            new = (self._mm, self._pos, self._frame_nb, self.page_id)
            self._mm, self._pos, self._frame_nb, self.page_id = old
            self._store(self.gen.page_end, b"", gen_time, 0)
            old[0].close()  # type: ignore[union-attr]
            self._mm, self._pos, self._frame_nb, self.page_id = new
        self._store(msg_type, data, gen_time, trigger_time)

    def write(self, msg_type: int, data: bytes, gen_time: int, trigger_time: int = 0) -> None:
        """One frame of ``msg_type`` holding ``data``."""
        if self._mm is None:
            raise OutputError(f"{self.journal.first_page}: the Kungfu writer is closed")
        self._write(msg_type, data, gen_time, trigger_time)
        self.frames_written += 1

    def write_raw_frames(self, data, starts, first: int = 0, last: int | None = None) -> int:
        """Frames ``first..last-1`` of kftools frames back to back in ``data`` (``starts``: their offsets and
        the end), each as a Kungfu frame with its type, payload, gen_time and trigger_time (the replay's)."""
        if last is None:
            last = len(starts) - 1
        buf = memoryview(data).cast("B") if not isinstance(data, memoryview) or data.format != "B" else data
        hs = FRAME_HEADER.size
        for k in range(first, last):
            a = int(starts[k])
            length, msg_type, gen_time, trigger_time, _src, _dest = FRAME_HEADER.struct.unpack_from(buf, a)
            self.write(msg_type, bytes(buf[a + hs : a + hs + length]), gen_time, trigger_time)
        return max(last - first, 0)

    def close(self) -> None:
        """``SessionEnd`` (when the generation has it), then unmap."""
        if self._mm is None:
            return
        end = self.gen.msg_types.__members__.get("SessionEnd")
        if end is not None:
            self._write(int(end), b"", time.time_ns(), 0)
        self._mm.close()
        self._mm = None

    def __enter__(self) -> KungfuWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class KungfuOutput:
    """Where ``replay --format kungfu-*`` writes: a Kungfu location's journal, checked before anything is
    written; :meth:`open` makes its :class:`KungfuWriter`."""

    def __init__(self, gen: kf.Generation, kf_home: str, location: str, force: bool):
        self.gen, self.kf_home, self.location, self.force = gen, kf_home, location, force
        category, group, name, mode = parse_location(location)
        folder = os.path.join(kf_home, "runtime", category, group, name, "journal", mode)
        self.journal = kf.KungfuJournal(folder, 0)
        self.first_page = self.journal.first_page
        if os.path.exists(self.first_page) and not force:
            raise UsageError(f"{folder}: already holds a Kungfu journal; --force replaces it")
        self.writer: KungfuWriter | None = None

    def open(self) -> KungfuWriter:
        self.writer = KungfuWriter(self.kf_home, self.location, self.gen, force=self.force)
        return self.writer

    def remove(self) -> None:
        for n in os.listdir(self.journal.folder):
            if (p := kf.parse_page_name(n)) and p[0] == self.journal.dest:
                os.unlink(os.path.join(self.journal.folder, n))


def kungfu_output(fmt: str, kf_home, location, out, force: bool, strategy=None,
                  order_journals=()) -> KungfuOutput | None:
    """The Kungfu output ``replay --format fmt --kf-home --location`` names, checked; None for ``kftools``."""
    if fmt == "kftools":
        if kf_home is not None or location is not None:
            raise UsageError("--kf-home and --location are for --format kungfu-2.4 (or a later Kungfu generation)")
        return None
    gen = kf.BY_NAME.get(fmt)
    if gen is None:
        raise UsageError(f"--format {fmt!r}: one of kftools, {', '.join(kf.BY_NAME)}")
    if kf_home is None or location is None:
        raise UsageError(f"--format {fmt} writes a Kungfu journal: give --kf-home DIR and --location "
                         "category/group/name/mode")
    if out is not None:
        raise UsageError(f"--format {fmt} writes into --kf-home at --location, not to -o")
    if strategy is not None or order_journals:
        raise UsageError(f"--format {fmt}: a backtest answers in a kftools journal; drop --format for it")
    return KungfuOutput(gen, os.fspath(kf_home), location, force)


__all__ = ["CATEGORIES", "MODES", "WRITABLE", "KungfuOutput", "KungfuWriter", "kungfu_output", "murmur3_32",
           "page_size_for", "parse_location"]
