"""A test writer of Kungfu journals of every generation, following the rules in ../shared/kungfu/README.md and
each generation's public headers (see docs/kungfu.md).

Not kftools' writer (kftools/journal/kungfu_out.py is): it exists so the tests can generate journals with random
frames, a half-written last frame and lost pages, in each generation's layout, and compare what the reader finds
with what was written.
"""

from __future__ import annotations

import mmap
import os

import numpy as np

from kftools.journal import yijinjing as kf

HDR = kf.FRAME_HEADER
PAGE = kf.PAGE_HEADER


def pack(layout, **values) -> bytes:
    """``layout``'s bytes with ``values`` set and every other field (padding included) zero."""
    rec = np.zeros(1, dtype=layout.dtype)
    for k, v in values.items():
        if k in layout.names:
            rec[k] = v
    return rec.tobytes()


class KungfuTestWriter:
    """Appends frames to ``folder/{dest:08x}.{page_id}.journal`` in Kungfu's order of stores."""

    def __init__(self, folder: str, dest: int = 0, page_size: int = 1 << 20, source: int = 0x1234,
                 generation: kf.Generation = kf.KUNGFU_2_4):
        os.makedirs(folder, exist_ok=True)
        self.gen = generation
        self.hdr = generation.fmt.frame_header
        self.page_layout = generation.fmt.page_header
        self.journal = kf.KungfuJournal(folder, dest)
        self.page_size = page_size
        self.source = source
        self.page_id = 0
        self.frame_nb = 0
        self.written: list[dict] = []  # what a reader must find, in order
        self._mm: mmap.mmap | None = None
        self._fd = -1
        self._open_page(1)

    def _page_header(self, last_frame_position: int) -> bytes:
        return pack(self.page_layout, version=self.gen.version, page_header_length=self.page_layout.size,
                    page_size=self.page_size, frame_header_length=self.hdr.size,
                    last_frame_position=last_frame_position)

    def preopen(self) -> None:
        """Make the next page ahead of time, as Kungfu v4 does: its header says PreOpen and no frame is in it."""
        assert self.gen is kf.KUNGFU_WIRE_V1
        with open(self.journal.page_path(self.page_id + 1), "xb") as fh:
            fh.write(pack(self.page_layout, version=self.gen.version, page_header_length=self.page_layout.size,
                          page_size=self.page_size, frame_header_length=self.hdr.size,
                          status=int(kf.PageStatus.PreOpen)))
            fh.truncate(self.page_size)

    def _open_page(self, page_id: int) -> None:
        path = self.journal.page_path(page_id)
        made = os.path.exists(path) and self.gen is kf.KUNGFU_WIRE_V1  # made ahead of time: the writer takes it
        fd = os.open(path, os.O_RDWR if made else os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        os.ftruncate(fd, self.page_size)
        mm = mmap.mmap(fd, self.page_size)
        mm[: self.page_layout.size] = self._page_header(0)
        self._close_map()
        self._mm, self._fd, self.page_id, self.pos, self.frame_nb = mm, fd, page_id, self.page_layout.size, 0

    def _close_map(self) -> None:
        if self._mm is not None:
            self._mm.close()
            os.close(self._fd)
            self._mm = None

    def _store(self, msg_type: int, data: bytes, gen_time: int, trigger_time: int, dest: int, publish: bool,
               data_type: int = 0) -> int:
        mm, off, hdr = self._mm, self.pos, self.hdr
        assert mm is not None
        length = hdr.size + len(data)
        # header_length, trigger_time, msg_type, source, dest (and the later fields); then the data; then zero the
        # next header; then gen_time; length last
        head = pack(hdr, header_length=hdr.size, trigger_time=trigger_time, msg_type=msg_type, source=self.source,
                    dest=dest, data_type=data_type, initial_source=self.source,
                    frame_uid=(self.page_id << 32) | self.frame_nb, journal_frame_uid=(self.page_id << 32) | self.frame_nb)
        mm[off + 4 : off + hdr.size] = head[4:]
        mm[off + hdr.size : off + length] = data
        nxt = off + length
        if nxt + hdr.size <= self.page_size:
            mm[nxt : nxt + hdr.size] = bytes(hdr.size)
        if publish:
            at = hdr.offset("gen_time")
            mm[off + at : off + at + 8] = gen_time.to_bytes(8, "little", signed=True)
            mm[: self.page_layout.size] = self._page_header(off)
            mm[off : off + 4] = length.to_bytes(4, "little")
            self.pos = nxt
            self.frame_nb += 1
        return off

    def _data(self, data: bytes) -> bytes:
        if self.gen is kf.KUNGFU_WIRE_V1:  # v4 rounds every payload up to a whole machine word
            data = data + bytes(-len(data) % 8)
        return data

    def write(self, msg_type: int, data: bytes, gen_time: int, trigger_time: int = 0, dest: int = 0,
              data_type: int = 0) -> None:
        data = self._data(data)
        if self.pos + self.hdr.size + len(data) > self.page_size - self.hdr.size:
            # the next frame would not fit before the page's border: a new page, and PageEnd after the old page's
            # last frame (Kungfu makes the next page first)
            old_mm, old_fd, old_pos, old_id, old_nb = self._mm, self._fd, self.pos, self.page_id, self.frame_nb
            self._mm = None
            self._open_page(self.page_id + 1)
            new = (self._mm, self._fd, self.pos, self.page_id)
            self._mm, self._fd, self.pos, self.page_id, self.frame_nb = old_mm, old_fd, old_pos, old_id, old_nb
            self._store(self.gen.page_end, b"", gen_time, 0, 0, publish=True)
            self._close_map()
            self._mm, self._fd, self.pos, self.page_id = new
            self.frame_nb = 0
        off = self._store(msg_type, data, gen_time, trigger_time, dest, publish=True, data_type=data_type)
        self.written.append({"page": self.page_id, "offset": off, "msg_type": int(msg_type), "gen_time": gen_time,
                             "trigger_time": trigger_time, "source": self.source, "dest": dest, "payload": bytes(data)})

    def write_half(self, msg_type: int, data: bytes) -> None:
        """A writer killed mid-frame: header and data stored, ``gen_time`` and ``length`` never."""
        data = self._data(data)
        if self.pos + self.hdr.size + len(data) <= self.page_size - self.hdr.size:
            self._store(msg_type, data, 0, 0, 0, publish=False)

    def close(self) -> None:
        self._close_map()
