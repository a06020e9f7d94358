"""Frame-chain walking and gathering, in C when the extension is built, else in Python.

Both implementations share one contract, and the tests run the same inputs
through both (``IMPLEMENTATIONS``).
"""

from __future__ import annotations

import struct

import numpy as np

from .format import FRAME_HEADER
from .layout import BYTE_ORDER, Labelled


class ScanError(Labelled):
    """Why ``scan`` stopped (its third value; the C scanner returns the same numbers); ``SCAN_ERRORS`` says
    the damage ones in words."""

    OK = 0
    HEADER_PAST_END = 1
    PAYLOAD_PAST_END = 2
    ZERO_TYPE = 3
    SHORT_PAYLOAD = 4
    WRITTEN_END = 5  # Kungfu: a zero length, the end of what is written
    SHORT_LENGTH = 6


OK, HEADER_PAST_END, PAYLOAD_PAST_END, ZERO_TYPE, SHORT_PAYLOAD, WRITTEN_END, SHORT_LENGTH = tuple(ScanError)
SCAN_ERRORS: dict[int, str] = {
    HEADER_PAST_END: "frame header runs past the write cursor",
    PAYLOAD_PAST_END: "frame length {length} runs past the write cursor",
    ZERO_TYPE: "msg_type 0 (zeroed or garbage bytes)",
    SHORT_LENGTH: "frame length {length} is shorter than the frame header",
}

#: the frame header's u32 ``length`` and ``msg_type`` fields
_U32 = struct.Struct(BYTE_ORDER + FRAME_HEADER.field("length").struct_code)


def py_scan(
    buf, start: int, end: int, out: np.ndarray, min_lengths=b"", header_size: int = 32, type_at: int = 4,
    counts_header: int = 0, stop_type: int = 0, populate_from: int = -1,
) -> tuple[int, int, int]:
    """Walk frames from ``start`` to ``end``; fill ``out`` (int64) with their offsets.

    ``min_lengths`` is a uint32 table indexed by type id: a payload shorter
    than its entry stops the walk (ids past the table are not checked).
    A frame header has a u32 ``length`` at 0 and a ``msg_type`` at ``type_at``;
    with ``counts_header`` (Kungfu) the length includes the header, a length of
    0 is the end of what is written (``WRITTEN_END``) and msg_type is signed.
    A frame of ``stop_type`` (Kungfu's PageEnd) ends the walk just after it.
    ``populate_from``: where a mapped ``buf`` may still be unmapped (the C walk populates it ahead of itself
    from there; -1: never); it changes no result.
    Returns ``(count, next_offset, error)``; ``next_offset`` is where the walk
    stopped (``end`` when every byte was consumed).
    """
    mins = memoryview(min_lengths).cast("B").cast("I") if len(min_lengths) else ()
    end = min(end, len(buf))
    hdr = max(header_size, type_at + 4)
    off, n, cap = start, 0, len(out)
    while off < end and n < cap:
        if end - off < hdr:
            return n, off, HEADER_PAST_END
        length = _U32.unpack_from(buf, off)[0]
        msg_type = _U32.unpack_from(buf, off + type_at)[0]
        if counts_header:
            if length == 0:
                return n, off, WRITTEN_END
            if length < hdr:
                return n, off, SHORT_LENGTH
            length -= hdr
            if msg_type >= 1 << 31:
                msg_type = 0
        if length > end - off - hdr:
            return n, off, PAYLOAD_PAST_END
        if msg_type == 0:
            return n, off, ZERO_TYPE
        if msg_type < len(mins) and length < mins[msg_type]:
            return n, off, SHORT_PAYLOAD
        out[n] = off
        n += 1
        off += hdr + length
        if stop_type and msg_type == stop_type:
            break
    return n, off, OK


def py_gather(buf, offsets: np.ndarray, add: int, width: int, out) -> None:
    arr = np.frombuffer(buf, dtype=np.uint8)
    if len(offsets) == 0:
        return
    if offsets.min() + add < 0 or offsets.max() + add + width > len(arr):
        raise ValueError("gather out of bounds")
    idx = (offsets[:, None] + add) + np.arange(width, dtype=np.int64)
    np.frombuffer(out, dtype=np.uint8)[: len(offsets) * width] = arr[idx].reshape(-1)


def py_gather_var(buf, offsets: np.ndarray, lengths: np.ndarray, add: int, out) -> int:
    mv = memoryview(buf)
    dst = memoryview(out).cast("B")
    pos = 0
    for off, ln in zip(offsets.tolist(), lengths.tolist(), strict=False):
        if off + add + ln > len(mv) or pos + ln > len(dst):
            raise ValueError("gather_var out of bounds")
        dst[pos : pos + ln] = mv[off + add : off + add + ln]
        pos += ln
    return pos


IMPLEMENTATIONS = {"python": (py_scan, py_gather, py_gather_var)}
try:
    from . import _scan  # type: ignore[attr-defined]  # the C extension setup.py builds; no stub

    IMPLEMENTATIONS["c"] = (_scan.scan, _scan.gather, _scan.gather_var)
    scan, gather, gather_var = IMPLEMENTATIONS["c"]
    NATIVE = True
except ImportError:  # pragma: no cover - the extension is built by pip install
    scan, gather, gather_var = IMPLEMENTATIONS["python"]
    NATIVE = False


def exit_on_sigbus(message: bytes, code: int) -> bool:
    """From now on, a SIGBUS (a mapped page truncated under this process) prints ``message`` and exits
    with ``code`` instead of killing the process silently. For programs (the CLI), not libraries.

    False when the C extension is not built (the signal then kills the process as before).
    """
    if not NATIVE:
        return False
    _scan.exit_on_sigbus(message, code)
    return True
