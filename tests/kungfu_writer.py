"""A test writer of Kungfu 2.4 journals that follows the rules in ../shared/kungfu/README.md.

Not part of kftools (kftools never writes Kungfu journals): it exists so the
tests can generate journals with random frames, a half-written last frame and
lost pages, and compare what the reader finds with what was written.
"""

from __future__ import annotations

import mmap
import os

from kftools.journal import yijinjing as kf

HDR = kf.FRAME_HEADER
PAGE = kf.PAGE_HEADER


class KungfuTestWriter:
    """Appends frames to ``folder/{dest:08x}.{page_id}.journal`` in Kungfu's order of stores."""

    def __init__(self, folder: str, dest: int = 0, page_size: int = 1 << 20, source: int = 0x1234):
        os.makedirs(folder, exist_ok=True)
        self.journal = kf.KungfuJournal(folder, dest)
        self.page_size = page_size
        self.source = source
        self.page_id = 0
        self.written: list[dict] = []  # what a reader must find, in order
        self._mm: mmap.mmap | None = None
        self._fd = -1
        self._open_page(1)

    def _open_page(self, page_id: int) -> None:
        path = self.journal.page_path(page_id)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        os.ftruncate(fd, self.page_size)
        mm = mmap.mmap(fd, self.page_size)
        PAGE.struct.pack_into(mm, 0, kf.VERSION, PAGE.size, self.page_size, HDR.size, 0)
        self._close_map()
        self._mm, self._fd, self.page_id, self.pos = mm, fd, page_id, PAGE.size

    def _close_map(self) -> None:
        if self._mm is not None:
            self._mm.close()
            os.close(self._fd)
            self._mm = None

    def _store(self, msg_type: int, data: bytes, gen_time: int, trigger_time: int, dest: int, publish: bool) -> int:
        mm, off = self._mm, self.pos
        assert mm is not None
        length = HDR.size + len(data)
        # header_length, trigger_time, msg_type, source, dest; then the data; then zero the next header
        HDR.struct.pack_into(mm, off, 0, HDR.size, 0, trigger_time, msg_type, self.source, dest)
        mm[off + HDR.size : off + length] = data
        nxt = off + length
        if nxt + HDR.size <= self.page_size:
            mm[nxt : nxt + HDR.size] = bytes(HDR.size)
        if publish:
            # gen_time, then length last: a reader sees the frame from here on
            mm[off + HDR.offset("gen_time") : off + HDR.offset("gen_time") + 8] = gen_time.to_bytes(8, "little", signed=True)
            mm[off : off + 4] = length.to_bytes(4, "little")
            PAGE.struct.pack_into(mm, 0, kf.VERSION, PAGE.size, self.page_size, HDR.size, off)
            self.pos = nxt
        return off

    def write(self, msg_type: int, data: bytes, gen_time: int, trigger_time: int = 0, dest: int = 0) -> None:
        if self.pos + HDR.size + len(data) > self.page_size - HDR.size:
            # the next frame would not fit before page_size - 36: a new page, and PageEnd after the old page's last frame
            old_mm, old_fd, old_pos = self._mm, self._fd, self.pos
            self._mm = None
            self._open_page(self.page_id + 1)
            new = (self._mm, self._fd, self.pos)
            self._mm, self._fd, self.pos = old_mm, old_fd, old_pos
            self._store(kf.MsgType.PageEnd, b"", gen_time, 0, 0, publish=True)
            self._close_map()
            self._mm, self._fd, self.pos = new
        off = self._store(msg_type, data, gen_time, trigger_time, dest, publish=True)
        self.written.append({"page": self.page_id, "offset": off, "msg_type": int(msg_type), "gen_time": gen_time,
                             "trigger_time": trigger_time, "source": self.source, "dest": dest, "payload": bytes(data)})

    def write_half(self, msg_type: int, data: bytes) -> None:
        """A writer killed mid-frame: header and data stored, ``gen_time`` and ``length`` never."""
        if self.pos + HDR.size + len(data) <= self.page_size - HDR.size:
            self._store(msg_type, data, 0, 0, 0, publish=False)

    def close(self) -> None:
        self._close_map()
