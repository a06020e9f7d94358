"""Frames as the walk hands them out: :class:`FrameBatch` (one page's frames as numpy arrays) and single
frames (``framestream.Frame``), in any journal format (another format's headers come as kftools lays them out)."""

from __future__ import annotations

import numpy as np

from ..errors import KftoolsError
from .format import FRAME_HEADER, FRAME_HEADER_SIZE
from .framestream import Frame, frames_at, frames_from_headers
from .layout import Field
from .page import Page
from .scan import gather, gather_var

HEADER_DTYPE: np.dtype = FRAME_HEADER.dtype
#: ``read_batch`` rows: where each frame is, then its header
INDEX_DTYPE: np.dtype = np.dtype([("page", Field("page", "u32").numpy_code), ("offset", Field("offset", "i64").numpy_code),
                        *[(n, HEADER_DTYPE[n]) for n in FRAME_HEADER.names]])


class FrameBatch:
    """Frames of one page as numpy arrays: ``offsets`` (int64) and ``headers`` (frame header dtype).

    The headers of a kftools page are copied out of the mapping when first asked for (``headers=None``): a
    consumer that counts, validates or picks a few frames (``cat -n``, ``verify``, a writer resuming, the
    per-frame reader) never pays for them. The frames were validated by the walk and committed frames never
    change, so a later copy reads what the walk saw."""

    __slots__ = ("page", "offsets", "_headers")

    def __init__(self, page: Page, offsets: np.ndarray, headers: np.ndarray | None = None):
        self.page = page
        self.offsets = offsets
        self._headers = headers
        if headers is None and not page.fmt.native:
            raise ValueError("another format's headers are decoded by the walk: pass them")

    @property
    def headers(self) -> np.ndarray:
        if self._headers is None:
            self._headers = np.empty(len(self.offsets), dtype=HEADER_DTYPE)
            gather(self.page.mm, np.ascontiguousarray(self.offsets), 0, FRAME_HEADER_SIZE, self._headers)
        return self._headers

    def column(self, name: str) -> np.ndarray:
        """Header field ``name`` of every frame: from the headers when copied, else that field alone."""
        if self._headers is not None:
            return self._headers[name]
        return header_field(self.page, self.offsets, name)

    def __len__(self) -> int:
        return len(self.offsets)

    @property
    def page_index(self) -> int:
        return self.page.index

    def select(self, mask: np.ndarray | slice) -> FrameBatch:
        return FrameBatch(self.page, self.offsets[mask], None if self._headers is None else self._headers[mask])

    def payload(self, msg_type: int, mask: np.ndarray | None = None) -> np.ndarray:
        """The typed payloads of this batch's frames of ``msg_type`` (or of ``mask``), as a structured array."""
        mt = self.page.registry.get(msg_type)
        if mt is None:
            raise KftoolsError(f"message type {msg_type} is not registered")
        if mask is None:
            mask = self.headers["msg_type"] == msg_type
        offs = np.ascontiguousarray(self.offsets[mask])
        out = np.empty(len(offs), dtype=mt.layout.dtype)
        gather(self.page.mm, offs, self.page.frame_header_size, mt.layout.size, out)
        return out

    def field_bytes(self, rel: int, width: int, mask: np.ndarray | None = None) -> np.ndarray:
        """``width`` payload bytes at payload offset ``rel`` of each (masked) frame, as ``S<width>``."""
        offs = np.ascontiguousarray(self.offsets if mask is None else self.offsets[mask])
        out = np.empty(len(offs), dtype=f"S{width}")
        gather(self.page.mm, offs, self.page.frame_header_size + rel, width, out)
        return out

    def raw_payloads(self, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Payload bytes concatenated (uint8) and their int64 end offsets, as Arrow binary wants."""
        offs = self.offsets if mask is None else self.offsets[mask]
        lens = (self.headers["length"] if mask is None else self.headers["length"][mask]).astype(np.int64)
        data = np.empty(int(lens.sum()), dtype=np.uint8)
        gather_var(self.page.mm, np.ascontiguousarray(offs), lens, self.page.frame_header_size, data)
        ends = np.zeros(len(lens) + 1, dtype=np.int64)
        np.cumsum(lens, out=ends[1:])
        return data, ends

    def raw_frames(self) -> tuple[np.ndarray, np.ndarray]:
        """A writable copy of the whole frames (header and payload) concatenated, and their
        start offsets in it plus the end. Frames of another format (Kungfu's) come re-headed
        in kftools' layout, payload bytes unchanged: what a kftools journal of them holds."""
        if not self.page.fmt.native:
            return self._as_kftools_frames()
        lens = self.headers["length"].astype(np.int64) + self.page.frame_header_size
        offs = self.offsets
        if len(offs) and int(offs[-1] + lens[-1] - offs[0]) == int(lens.sum()):
            # unfiltered frames lie back to back in the page: one copy beats a per-frame gather
            base = int(offs[0])
            data = np.frombuffer(bytearray(self.page.mm[base : base + int(lens.sum())]), dtype=np.uint8)
            starts = np.empty(len(offs) + 1, np.int64)
            starts[:-1] = offs - base
            starts[-1] = len(data)
            return data, starts
        data = np.empty(int(lens.sum()), dtype=np.uint8)
        gather_var(self.page.mm, np.ascontiguousarray(self.offsets), lens, 0, data)
        starts = np.zeros(len(lens) + 1, dtype=np.int64)
        np.cumsum(lens, out=starts[1:])
        return data, starts

    def _as_kftools_frames(self) -> tuple[np.ndarray, np.ndarray]:
        lens = self.headers["length"].astype(np.int64)
        starts = np.zeros(len(lens) + 1, dtype=np.int64)
        np.cumsum(lens + FRAME_HEADER_SIZE, out=starts[1:])
        data = np.empty(int(starts[-1]), dtype=np.uint8)
        payload = np.empty(int(lens.sum()), dtype=np.uint8)
        gather_var(self.page.mm, np.ascontiguousarray(self.offsets), lens, self.page.frame_header_size, payload)
        is_header = np.zeros(len(data), dtype=bool)
        at = (starts[:-1, None] + np.arange(FRAME_HEADER_SIZE)).reshape(-1)
        is_header[at] = True
        data[at] = np.ascontiguousarray(self.headers).view(np.uint8)
        data[~is_header] = payload
        return data, starts

    def symbols(self, mask: np.ndarray | None = None) -> np.ndarray:
        """The symbol field (``symbol``; Kungfu's ``instrument_id``) of each frame, b"" where the type has none."""
        h = self.headers if mask is None else self.headers[mask]
        offs = self.offsets if mask is None else self.offsets[mask]
        registry = self.page.registry
        name = registry.symbol_field
        width = max((mt.layout.field(name).size for mt in registry.types() if name in mt.layout.names), default=16)
        out = np.zeros(len(offs), dtype=f"S{width}")
        for t in np.unique(h["msg_type"]).tolist():
            mt = registry.get(t)
            if mt is None or name not in mt.layout.names:
                continue
            sel = h["msg_type"] == t
            f = mt.layout.field(name)
            out[sel] = FrameBatch(self.page, offs[sel], h[sel]).field_bytes(mt.layout.offset(name), f.size)
        return out

    def frames(self) -> list[Frame]:
        if not self.page.fmt.native:
            return frames_from_headers(self.page, self.offsets, self.headers)  # headers as kftools lays them out
        return frames_at(self.page, self.offsets)


def empty_batch(page: Page) -> FrameBatch:
    """A batch of no frames on ``page`` (what a follower yields when it catches up)."""
    return FrameBatch(page, np.empty(0, np.int64), np.empty(0, HEADER_DTYPE))


def header_field(page: Page, offsets: np.ndarray, name: str) -> np.ndarray:
    """Frame header field ``name`` of the frames at these (validated) offsets, by the page's header layout."""
    fh = page.fmt.frame_header
    out = np.empty(len(offsets), dtype=fh.dtype[name])
    gather(page.mm, np.ascontiguousarray(offsets, dtype=np.int64), fh.offset(name), fh.field(name).size, out)
    return out


def frame_at(page: Page, offset: int) -> Frame:
    """The frame at ``offset`` of ``page`` (a position the walk validated), in any format."""
    return frames_of(page, np.array([offset], dtype=np.int64))[0]


def frames_of(page: Page, offsets: np.ndarray) -> list[Frame]:
    """The frames at these (validated) offsets of ``page``, in any format."""
    if page.fmt.native:
        return frames_at(page, offsets)
    offsets, headers, _problem = foreign_headers(page, np.ascontiguousarray(offsets, dtype=np.int64))
    return frames_from_headers(page, offsets, headers)


def foreign_headers(page: Page, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray, str | None]:
    """Frame headers of another format, as kftools' header dtype (``length`` = payload bytes).

    The frame that seals a page (Kungfu's PageEnd) is dropped: the walk moves to the next page
    on it. A header whose ``header_length`` is not its layout's size ends the valid frames.
    """
    fmt, hdr = page.fmt, page.frame_header_size
    raw: np.ndarray = np.empty(len(offsets), dtype=fmt.frame_header.dtype)
    gather(page.mm, offsets, 0, hdr, raw)
    problem = None
    if "header_length" in fmt.frame_header.names:
        bad = raw["header_length"] != hdr
        if bad.any():
            k = int(np.argmax(bad))
            problem = f"frame header_length {int(raw['header_length'][k])}, expected {hdr}"
            offsets, raw = offsets[:k], raw[:k]
    if fmt.page_end_type is not None and len(raw) and raw["msg_type"][-1] == fmt.page_end_type:
        offsets, raw = offsets[:-1], raw[:-1]
    headers = np.empty(len(raw), dtype=HEADER_DTYPE)
    for n in FRAME_HEADER.names:
        headers[n] = raw[n]
    if fmt.length_counts_header:
        headers["length"] -= hdr
    return offsets, headers, problem



__all__ = ["HEADER_DTYPE", "INDEX_DTYPE", "Frame", "FrameBatch", "empty_batch", "foreign_headers", "frame_at", "header_field",
           "frames_of"]
